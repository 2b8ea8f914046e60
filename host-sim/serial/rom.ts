// The ESP32's ROM on the console UART: what it prints when the chip comes out of reset, and its
// serial bootloader ("download mode"), which a host reaches by holding IO0 low at reset (the BOOT
// button, or DTR through the board's auto-program circuit) and which esptool and esptool-js speak.
//
// The protocol, as Espressif's serial protocol documentation gives it (esptool
// docs/en/advanced-topics/serial-protocol.rst):
// - SLIP framing both ways: each packet between 0xC0 bytes, 0xC0 and 0xDB inside sent as
//   0xDB 0xDC and 0xDB 0xDD.
// - A command: direction 0x00, command, 16-bit size, 32-bit checksum (XOR of the data to write,
//   seeded 0xEF; only the _DATA commands use it), data. A response: direction 0x01, the same
//   command, size, a 32-bit value (READ_REG's result), data, then status bytes: 4 from the ESP32
//   ROM (status, error, two reserved), 2 from the flasher stub. ROM errors are 0x05 invalid
//   message, 0x06 failed to act, 0x07 bad checksum, 0x0b deflate error; the stub puts its own
//   code (0xC0 bad length, 0xC1 bad checksum, 0xC7 inflate error, 0xFF not implemented) in the
//   first status byte.
// - SYNC (0x08) is answered eight times by the ROM (esptool reads seven more after the first) with
//   the value 0x20120707, once by the stub with 0.
// - READ_REG/WRITE_REG reach a small register model: the chip-detect magic at 0x40001000, the
//   eFuse words (MAC, package, revision), APB_CTRL_DATE, UART_CLKDIV (the crystal check) and the
//   SPI1 user-command registers, enough for esptool's flash ID read (JEDEC RDID 0x9F).
// - MEM_BEGIN/DATA/END load code into RAM and jump to it. The simulated chip cannot run Xtensa
//   code: a jump into what was just loaded is taken to start esptool's flasher stub, which
//   greets with the SLIP packet "OHAI" and from then on answers as the stub (two status bytes,
//   ERASE_FLASH, ERASE_REGION, the raw-byte MD5, just-in-time erasing).
// - FLASH_BEGIN/DATA/END and FLASH_DEFL_BEGIN/DATA/END (zlib streams, inflated as they come)
//   write the simulated SPI flash; SPI_FLASH_MD5 hashes it; CHANGE_BAUDRATE moves the line to the
//   new rate after its answer; SPI_ATTACH and SPI_SET_PARAMS are accepted.
// - A command the ESP32 ROM does not know (GET_SECURITY_INFO 0x14, the stub's 0xD0–0xD3) gets
//   status 1, error 0x05 in a response that does not echo the command, sent eight times: esptool
//   takes that as "unsupported" (loader.py command(): "Unsupported command response is sent 8
//   times"), and falls back to the chip-detect magic register. The command field of that
//   response is not documented; this ROM sends 0.
//
// Time: the ROM works one command at a time and answers when done (FLASH_BEGIN erases the whole
// region first); the stub answers a data block as soon as it has it and writes it to flash while
// the next one arrives, so the answer to the next command waits for that write. Flash timings are
// spi-flash.ts's.

import { createHash } from "node:crypto";
import { constants, inflateSync } from "node:zlib";
import type { Clock } from "../runtime/timers.ts";
import type { SpiFlash } from "../spi-flash.ts";
import type { LineDevice, SerialLine } from "./line.ts";

export const Command = {
  FLASH_BEGIN: 0x02,
  FLASH_DATA: 0x03,
  FLASH_END: 0x04,
  MEM_BEGIN: 0x05,
  MEM_END: 0x06,
  MEM_DATA: 0x07,
  SYNC: 0x08,
  WRITE_REG: 0x09,
  READ_REG: 0x0a,
  SPI_SET_PARAMS: 0x0b,
  SPI_ATTACH: 0x0d,
  CHANGE_BAUDRATE: 0x0f,
  FLASH_DEFL_BEGIN: 0x10,
  FLASH_DEFL_DATA: 0x11,
  FLASH_DEFL_END: 0x12,
  SPI_FLASH_MD5: 0x13,
  GET_SECURITY_INFO: 0x14,
  ERASE_FLASH: 0xd0,
  ERASE_REGION: 0xd1,
  READ_FLASH: 0xd2,
  RUN_USER_CODE: 0xd3,
} as const;

const SLIP_END = 0xc0;
const SLIP_ESC = 0xdb;
const SLIP_ESC_END = 0xdc;
const SLIP_ESC_ESC = 0xdd;

/** ROM loader error codes (second status byte, status 1). */
const RomError = { INVALID_MESSAGE: 0x05, FAILED: 0x06, BAD_CHECKSUM: 0x07, DEFLATE: 0x0b } as const;
/** Flasher stub error codes (first status byte). */
const StubError = { BAD_DATA_LEN: 0xc0, BAD_CHECKSUM: 0xc1, INVALID_COMMAND: 0xc3, NOT_IN_FLASH_MODE: 0xc6, INFLATE: 0xc7, TOO_MUCH_DATA: 0xc9, NOT_IMPLEMENTED: 0xff } as const;

/** The value the ROM answers SYNC with. */
const SYNC_VALUE = 0x20120707;
export const CHIP_DETECT_MAGIC_REG = 0x40001000;

/** What identifies a chip to esptool: its ROM's magic value, and (ESP32-S2 and later) GET_SECURITY_INFO's chip id. */
export interface ChipModel {
  /** esptool's CHIP_NAME. */
  name: string;
  magic: number;
  securityChipId?: number;
}

/** Magic values and chip ids as esptool's targets list them (ESP32ROM.CHIP_DETECT_MAGIC_VALUE, …). */
export const CHIP_MODELS: Record<string, ChipModel> = {
  ESP32: { name: "ESP32", magic: 0x00f01d83 },
  "ESP32-S3": { name: "ESP32-S3", magic: 0x00000009, securityChipId: 9 },
  "ESP32-C3": { name: "ESP32-C3", magic: 0x1b31506f, securityChipId: 5 },
};

// --- what the ROM prints ----------------------------------------------------------------------

/** Why the chip (re)started, as the ROM prints it after `rst:`. */
export const RESET_REASONS = {
  "power-on": "rst:0x1 (POWERON_RESET)",
  software: "rst:0x3 (SW_RESET)",
  "deep-sleep": "rst:0x5 (DEEPSLEEP_RESET)",
  reboot: "rst:0xc (SW_CPU_RESET)",
  "rtc-watchdog": "rst:0x10 (RTCWDT_RTC_RESET)",
} as const;
export type ResetReason = keyof typeof RESET_REASONS;

/** The boot mode from the strapping pins, as the ROM prints it after `boot:` (IO0 low: download). */
export const BOOT_MODES = {
  flash: "boot:0x13 (SPI_FAST_FLASH_BOOT)",
  download: "boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))",
} as const;

/** The ROM's first lines after a reset (ESP32 revision 1 ROM, dated Jun 8 2016). */
export function romBanner(reason: ResetReason, mode: keyof typeof BOOT_MODES): string {
  return `ets Jun  8 2016 00:22:57\n\n${RESET_REASONS[reason]},${BOOT_MODES[mode]}\n${mode === "download" ? "waiting for download\n" : ""}`;
}

// --- registers --------------------------------------------------------------------------------

const EFUSE_BASE = 0x3ff5a000;
const APB_CTRL_DATE = 0x3ff6607c;
const UART0_CLKDIV = 0x3ff40014;
const SPI1_BASE = 0x3ff42000;
const SPI_CMD_USR = 1 << 18;
const SPIFLASH_RDID = 0x9f;
/** ESP32 APB clock in the ROM: the 40 MHz crystal. */
const XTAL_HZ = 40_000_000;

/**
 * The registers esptool reads and writes over READ_REG/WRITE_REG on an ESP32-D0WDQ6, revision 1
 * (ESP32 TRM "eFuse Controller": BLK0 words 1-2 hold the MAC, word 3 the package (bits 9-11),
 * rated CPU speed (bits 12-13) and revision bit 15, word 4 the ADC VRef, word 6 the coding
 * scheme). Anything else reads 0.
 */
class Registers {
  private readonly values = new Map<number, number>();

  constructor(
    private readonly chip: () => ChipModel,
    private readonly mac: number[],
    private readonly baud: () => number,
    private readonly flashId: number,
  ) {}

  read(address: number): number {
    if (address === CHIP_DETECT_MAGIC_REG) return this.chip().magic;
    if (address === UART0_CLKDIV) return Math.round(XTAL_HZ / this.baud());
    const stored = this.values.get(address);
    if (stored !== undefined) return stored;
    const m = this.mac;
    switch (address) {
      case EFUSE_BASE + 4:
        return ((m[2]! << 24) | (m[3]! << 16) | (m[4]! << 8) | m[5]!) >>> 0;
      case EFUSE_BASE + 8:
        // bits 16-23 hold the MAC's CRC-8, which esptool does not read; left 0 here
        return ((m[0]! << 8) | m[1]!) >>> 0;
      case EFUSE_BASE + 12:
        return (1 << 15) | (1 << 13); // revision 1, rated 240 MHz, package D0WDQ6
      case EFUSE_BASE + 16:
        return 0x531; // ADC VRef calibrated
      case APB_CTRL_DATE:
        return 0x16042000;
      default:
        return 0;
    }
  }

  write(address: number, value: number, mask: number): void {
    const old = this.values.get(address) ?? 0;
    const next = ((old & ~mask) | (value & mask)) >>> 0;
    this.values.set(address, next);
    if (address === SPI1_BASE && next & SPI_CMD_USR) this.spiUserCommand();
  }

  /** SPI1's user command (SPI_USR2's low byte), run at once: RDID answers the JEDEC id in W0. */
  private spiUserCommand(): void {
    const command = (this.values.get(SPI1_BASE + 0x24) ?? 0) & 0xff;
    this.values.set(SPI1_BASE + 0x80, command === SPIFLASH_RDID ? this.flashId : 0);
    this.values.set(SPI1_BASE, (this.values.get(SPI1_BASE)! & ~SPI_CMD_USR) >>> 0);
  }
}

// --- the loader -------------------------------------------------------------------------------

/** What the download mode needs from the chip around it. */
export interface DownloadChip {
  readonly clock: Clock;
  readonly line: SerialLine;
  readonly spiFlash: SpiFlash;
  readonly chip: ChipModel;
  /** `24:0a:c4:…` */
  readonly mac: string;
  /** FLASH_END/FLASH_DEFL_END with reboot: a CPU reset (the latched strapping pins keep it in download mode). */
  reboot(): void;
  /** FLASH_END "run user code" or the stub's RUN_USER_CODE: what flash holds starts. */
  runUserCode(): void;
}

interface FlashWrite {
  offset: number;
  /** Bytes to write (the stub's exact size; the ROM's erase size). */
  size: number;
  blockSize: number;
  blocks: number;
  nextSeq: number;
  written: number;
  compressed: boolean;
  /** Compressed bytes received so far (FLASH_DEFL_*). */
  input: Buffer[];
  /** The stub erases just in time: up to here the region is erased. */
  erasedTo: number;
}

interface MemLoad {
  offset: number;
  size: number;
  data: Uint8Array;
  received: number;
  nextSeq: number;
}

/** Counts for tests and benchmarks. */
export interface DownloadStats {
  commands: number;
  /** Responses with a non-zero status, by command name. */
  errors: Record<string, number>;
  /** Data blocks whose checksum did not match (FLASH_DATA, FLASH_DEFL_DATA, MEM_DATA). */
  checksumErrors: number;
  /** Bytes written to flash through this loader. */
  bytesWritten: number;
}

const COMMAND_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Command).map(([k, v]) => [v, k]));

/** µs the CPU needs per byte hashed (SPI_FLASH_MD5: flash read at 40 MHz DIO plus MD5 on the CPU). */
const MD5_US_PER_BYTE = 0.3;
/** µs per byte inflated (the stub's miniz). */
const INFLATE_US_PER_BYTE = 0.05;
/** ms from MEM_END's answer until the stub's "OHAI" (the jump and the stub's setup). */
const STUB_START_MS = 2;

/**
 * The serial bootloader, on the console UART from the moment the chip started in download mode
 * until the next reset. It is the line's device meanwhile: Espruino's console is not running.
 */
export class DownloadMode implements LineDevice {
  /** The flasher stub is running (after MEM_END into the loaded code and "OHAI"). */
  stub = false;
  readonly stats: DownloadStats = { commands: 0, errors: {}, checksumErrors: 0, bytesWritten: 0 };

  private readonly host: DownloadChip;
  private readonly registers: Registers;
  private frame: number[] | undefined;
  private escaping = false;
  /** When (µs of node time) the CPU is free for the next command. */
  private cpuFreeAt = 0;
  private write: FlashWrite | undefined;
  private mem: MemLoad | undefined;
  private readonly loaded: { offset: number; size: number }[] = [];
  private disposed = false;
  private readonly timers = new Set<unknown>();

  constructor(host: DownloadChip) {
    this.host = host;
    const mac = host.mac.split(":").map((h) => parseInt(h, 16));
    this.registers = new Registers(
      () => host.chip,
      mac,
      () => host.line.baud,
      // W25Q32 (Winbond 0xEF, type 0x40, 4 MB = 0x16), as an ESP32-WROOM-32 carries
      0x1640ef,
    );
  }

  /** The chip reset: nothing more goes out, pending answers are dropped. */
  dispose(): void {
    this.disposed = true;
    for (const t of this.timers) this.host.clock.clearTimeout(t);
    this.timers.clear();
  }

  received(): void {
    // no Ctrl-C check: the ROM polls its UART
  }

  idle(): void {}

  consume(byte: number): number {
    if (byte === SLIP_END) {
      const frame = this.frame;
      this.frame = [];
      this.escaping = false;
      if (frame && frame.length > 0) this.command(Uint8Array.from(frame));
      return 0;
    }
    if (!this.frame) return 0; // noise before the first packet
    if (this.escaping) {
      this.escaping = false;
      this.frame.push(byte === SLIP_ESC_END ? SLIP_END : byte === SLIP_ESC_ESC ? SLIP_ESC : byte);
    } else if (byte === SLIP_ESC) {
      this.escaping = true;
    } else {
      this.frame.push(byte);
    }
    return 0;
  }

  // --- output -----------------------------------------------------------------------------------

  private now(): number {
    return this.host.clock.Date.now() * 1000;
  }

  /** Sends a SLIP packet at node time `atUs` (now or later). */
  private sendAt(atUs: number, packet: Uint8Array, after?: () => void): void {
    const out: number[] = [SLIP_END];
    for (const b of packet) {
      if (b === SLIP_END) out.push(SLIP_ESC, SLIP_ESC_END);
      else if (b === SLIP_ESC) out.push(SLIP_ESC, SLIP_ESC_ESC);
      else out.push(b);
    }
    out.push(SLIP_END);
    const bytes = Uint8Array.from(out);
    const go = () => {
      if (this.disposed) return;
      this.host.line.send(bytes);
      after?.();
    };
    const delayMs = Math.ceil((atUs - this.now()) / 1000);
    if (delayMs <= 0) return go();
    const t = this.host.clock.setTimeout(() => {
      this.timers.delete(t);
      go();
    }, delayMs);
    this.timers.add(t);
  }

  private response(op: number, value: number, data: Uint8Array, status: number, error: number): Uint8Array {
    const statusBytes = this.stub ? [status, error] : [status, error, 0, 0];
    const size = data.length + statusBytes.length;
    const packet = new Uint8Array(8 + size);
    const view = new DataView(packet.buffer);
    packet[0] = 0x01;
    packet[1] = op;
    view.setUint16(2, size, true);
    view.setUint32(4, value >>> 0, true);
    packet.set(data, 8);
    packet.set(statusBytes, 8 + data.length);
    return packet;
  }

  /**
   * Answers `op`. `costUs` is the work the command takes: the ROM answers after it; the stub
   * (`overlap`) answers first and does it before the next command.
   */
  private reply(op: number, options: { value?: number; data?: Uint8Array; costUs?: number; overlap?: boolean; after?: () => void } = {}): void {
    const start = Math.max(this.now(), this.cpuFreeAt);
    const cost = options.costUs ?? 0;
    const at = options.overlap ? start : start + cost;
    this.cpuFreeAt = start + cost;
    this.sendAt(at, this.response(op, options.value ?? 0, options.data ?? new Uint8Array(0), 0, 0), options.after);
  }

  private fail(op: number, romError: number, stubError: number): void {
    const name = COMMAND_NAMES[op] ?? `0x${op.toString(16)}`;
    this.stats.errors[name] = (this.stats.errors[name] ?? 0) + 1;
    const at = Math.max(this.now(), this.cpuFreeAt);
    this.sendAt(at, this.stub ? this.response(op, 0, new Uint8Array(0), stubError, 0) : this.response(op, 0, new Uint8Array(0), 1, romError));
  }

  /** The ESP32 ROM's answer to a command it does not have (see the header). */
  private unsupported(op: number): void {
    if (this.stub) return this.fail(op, 0, StubError.NOT_IMPLEMENTED);
    const name = COMMAND_NAMES[op] ?? `0x${op.toString(16)}`;
    this.stats.errors[name] = (this.stats.errors[name] ?? 0) + 1;
    const at = Math.max(this.now(), this.cpuFreeAt);
    for (let i = 0; i < 8; i++) this.sendAt(at, this.response(0, 0, new Uint8Array(0), 1, RomError.INVALID_MESSAGE));
  }

  // --- commands ---------------------------------------------------------------------------------

  private command(packet: Uint8Array): void {
    if (packet.length < 8 || packet[0] !== 0x00) return; // not a request: the ROM waits for the next one
    const op = packet[1]!;
    const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
    const size = view.getUint16(2, true);
    const checksum = view.getUint32(4, true);
    const data = packet.subarray(8);
    this.stats.commands++;
    if (data.length !== size) return this.fail(op, RomError.INVALID_MESSAGE, StubError.BAD_DATA_LEN);
    const word = (i: number) => (data.length >= 4 * i + 4 ? view.getUint32(8 + 4 * i, true) : 0);
    switch (op) {
      case Command.SYNC:
        if (size !== 36 || data[0] !== 0x07 || data[1] !== 0x07 || data[2] !== 0x12 || data[3] !== 0x20) return this.fail(op, RomError.INVALID_MESSAGE, StubError.BAD_DATA_LEN);
        for (let i = 0; i < (this.stub ? 1 : 8); i++) this.reply(op, { value: this.stub ? 0 : SYNC_VALUE });
        return;
      case Command.READ_REG:
        if (size !== 4) return this.fail(op, RomError.INVALID_MESSAGE, StubError.BAD_DATA_LEN);
        return this.reply(op, { value: this.registers.read(word(0)) });
      case Command.WRITE_REG:
        if (size === 0 || size % 16 !== 0) return this.fail(op, RomError.INVALID_MESSAGE, StubError.BAD_DATA_LEN);
        for (let i = 0; i < size / 16; i++) this.registers.write(word(4 * i), word(4 * i + 1), word(4 * i + 2));
        return this.reply(op);
      case Command.SPI_SET_PARAMS:
      case Command.SPI_ATTACH:
        return this.reply(op);
      case Command.CHANGE_BAUDRATE: {
        const baud = word(0);
        if (baud < 300 || baud > 5_000_000) return this.fail(op, RomError.INVALID_MESSAGE, StubError.BAD_DATA_LEN);
        return this.reply(op, { after: () => this.host.line.setBaud(baud) });
      }
      case Command.MEM_BEGIN:
        return this.memBegin(op, word(0), word(3));
      case Command.MEM_DATA:
        return this.memData(op, data, checksum);
      case Command.MEM_END:
        return this.memEnd(op, word(0), word(1));
      case Command.FLASH_BEGIN:
      case Command.FLASH_DEFL_BEGIN:
        if (size < 16) return this.fail(op, RomError.INVALID_MESSAGE, StubError.BAD_DATA_LEN);
        return this.flashBegin(op, word(0), word(1), word(2), word(3), op === Command.FLASH_DEFL_BEGIN);
      case Command.FLASH_DATA:
      case Command.FLASH_DEFL_DATA:
        return this.flashData(op, data, checksum);
      case Command.FLASH_END:
      case Command.FLASH_DEFL_END:
        return this.flashEnd(op, size >= 4 ? word(0) : 1);
      case Command.SPI_FLASH_MD5:
        return this.md5(op, word(0), word(1));
      case Command.ERASE_FLASH:
        if (!this.stub) return this.unsupported(op);
        return this.reply(op, { costUs: this.host.spiFlash.eraseAll() });
      case Command.ERASE_REGION:
        if (!this.stub) return this.unsupported(op);
        if (!this.inFlash(word(0), word(1))) return this.fail(op, RomError.FAILED, StubError.BAD_DATA_LEN);
        return this.reply(op, { costUs: this.host.spiFlash.erase(word(0), word(1)) });
      case Command.RUN_USER_CODE:
        if (!this.stub) return this.unsupported(op);
        return this.host.runUserCode();
      case Command.GET_SECURITY_INFO: {
        const chipId = this.host.chip.securityChipId;
        if (chipId === undefined) return this.unsupported(op);
        const info = new Uint8Array(20);
        new DataView(info.buffer).setUint32(12, chipId, true);
        return this.reply(op, { data: info });
      }
      default:
        return this.unsupported(op);
    }
  }

  private inFlash(offset: number, size: number): boolean {
    return offset >= 0 && size >= 0 && offset + size <= this.host.spiFlash.size;
  }

  private memBegin(op: number, size: number, offset: number): void {
    if (size > 0x40000) return this.fail(op, RomError.FAILED, StubError.BAD_DATA_LEN);
    if (this.mem && this.mem.received > 0) this.loaded.push({ offset: this.mem.offset, size: this.mem.received });
    this.mem = { offset, size, data: new Uint8Array(size), received: 0, nextSeq: 0 };
    this.reply(op);
  }

  /** The 16 bytes before a _DATA command's payload: length, sequence number, two zero words. */
  private block(op: number, data: Uint8Array, checksum: number): { seq: number; payload: Uint8Array } | undefined {
    if (data.length < 16) {
      this.fail(op, RomError.INVALID_MESSAGE, StubError.BAD_DATA_LEN);
      return undefined;
    }
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const length = view.getUint32(0, true);
    const payload = data.subarray(16);
    if (payload.length !== length) {
      this.fail(op, RomError.INVALID_MESSAGE, StubError.BAD_DATA_LEN);
      return undefined;
    }
    let sum = 0xef;
    for (const b of payload) sum ^= b;
    if ((checksum & 0xff) !== sum) {
      this.stats.checksumErrors++;
      this.fail(op, RomError.BAD_CHECKSUM, StubError.BAD_CHECKSUM);
      return undefined;
    }
    return { seq: view.getUint32(4, true), payload };
  }

  private memData(op: number, data: Uint8Array, checksum: number): void {
    const mem = this.mem;
    if (!mem) return this.fail(op, RomError.FAILED, StubError.NOT_IN_FLASH_MODE);
    const b = this.block(op, data, checksum);
    if (!b) return;
    if (b.seq !== mem.nextSeq || mem.received + b.payload.length > mem.size) return this.fail(op, RomError.FAILED, StubError.TOO_MUCH_DATA);
    mem.data.set(b.payload, mem.received);
    mem.received += b.payload.length;
    mem.nextSeq++;
    this.reply(op);
  }

  private memEnd(op: number, stay: number, entry: number): void {
    const mem = this.mem;
    if (mem && mem.received > 0) this.loaded.push({ offset: mem.offset, size: mem.received });
    this.mem = undefined;
    const runs = stay === 0 && this.loaded.some((l) => entry >= l.offset && entry < l.offset + l.size);
    this.reply(op, {
      after: runs
        ? () => {
            const t = this.host.clock.setTimeout(() => {
              this.timers.delete(t);
              if (this.disposed) return;
              this.stub = true;
              this.write = undefined;
              this.sendAt(this.now(), Buffer.from("OHAI", "latin1"));
            }, STUB_START_MS);
            this.timers.add(t);
          }
        : undefined,
    });
    // a jump anywhere else runs whatever is there: the chip stops answering, as a real one would
    if (stay === 0 && !runs) this.disposed = true;
  }

  private flashBegin(op: number, size: number, blocks: number, blockSize: number, offset: number, compressed: boolean): void {
    if (!this.inFlash(offset, 0) || blockSize === 0 || blockSize > 0x10000) return this.fail(op, RomError.INVALID_MESSAGE, StubError.BAD_DATA_LEN);
    // the ROM's size is what to erase (rounded up to whole blocks); the stub's is the exact length
    const end = Math.min(offset + size, this.host.spiFlash.size);
    this.write = { offset, size: end - offset, blockSize, blocks, nextSeq: 0, written: 0, compressed, input: [], erasedTo: offset - (offset % 4096) };
    const costUs = this.stub ? 0 : this.host.spiFlash.erase(offset, end - offset);
    if (!this.stub) this.write.erasedTo = end;
    this.reply(op, { costUs });
  }

  private flashData(op: number, data: Uint8Array, checksum: number): void {
    const w = this.write;
    if (!w || w.compressed !== (op === Command.FLASH_DEFL_DATA)) return this.fail(op, RomError.FAILED, StubError.NOT_IN_FLASH_MODE);
    const b = this.block(op, data, checksum);
    if (!b) return;
    if (!this.stub) {
      // a block sent again after its answer got lost was written already
      if (b.seq < w.nextSeq) return this.reply(op);
      if (b.seq !== w.nextSeq) return this.fail(op, RomError.FAILED, StubError.BAD_DATA_LEN);
    }
    // the stub checks a block's length and checksum only (stub_flasher.c, ESP_FLASH_DATA and
    // ESP_FLASH_DEFLATED_DATA): a block sent again is written (inflated) again after the last one
    let bytes: Uint8Array = b.payload;
    let costUs = 0;
    if (w.compressed) {
      w.input.push(Buffer.from(b.payload));
      let out: Buffer;
      try {
        out = inflateSync(Buffer.concat(w.input), { finishFlush: constants.Z_SYNC_FLUSH });
      } catch {
        w.input.pop();
        return this.fail(op, RomError.DEFLATE, StubError.INFLATE);
      }
      bytes = out.subarray(w.written);
      costUs += out.length * INFLATE_US_PER_BYTE;
    }
    const room = w.size - w.written;
    if (bytes.length > room) {
      // the ROM writes the 0xFF padding of a last plain block; the stub refuses more than it was told
      if (w.compressed || this.stub) return this.fail(op, RomError.FAILED, StubError.TOO_MUCH_DATA);
      bytes = bytes.subarray(0, room);
    }
    const at = w.offset + w.written;
    // the stub erases ahead of what it writes: a 64 KB block where one fits in what is left of the
    // region, else a 4 KB sector (esptool's flasher stub, stub_write_flash.c start_next_erase)
    const end = w.offset + w.size;
    while (w.erasedTo < at + bytes.length) {
      const block = w.erasedTo % 65536 === 0 && end - w.erasedTo >= 65536 ? 65536 : 4096;
      costUs += this.host.spiFlash.erase(w.erasedTo, Math.min(block, this.host.spiFlash.size - w.erasedTo));
      w.erasedTo += block;
    }
    costUs += this.host.spiFlash.program(at, bytes);
    w.written += bytes.length;
    w.nextSeq++;
    this.stats.bytesWritten += bytes.length;
    this.reply(op, { costUs, overlap: this.stub });
  }

  private flashEnd(op: number, flag: number): void {
    const w = this.write;
    if (this.stub && !w) return this.fail(op, RomError.FAILED, StubError.NOT_IN_FLASH_MODE);
    this.write = undefined;
    // 0: reboot; 1: stay (stub) or run the user code (ROM)
    if (flag === 0) return this.reply(op, { after: () => this.host.reboot() });
    this.reply(op, { after: this.stub ? undefined : () => this.host.runUserCode() });
  }

  private md5(op: number, address: number, size: number): void {
    if (!this.inFlash(address, size)) return this.fail(op, RomError.FAILED, StubError.BAD_DATA_LEN);
    const digest = createHash("md5").update(this.host.spiFlash.read(address, size)).digest();
    // the ROM answers in 32 hex digits, the stub in 16 raw bytes
    const data = this.stub ? new Uint8Array(digest) : new Uint8Array(Buffer.from(digest.toString("hex"), "latin1"));
    this.reply(op, { data, costUs: size * MD5_US_PER_BYTE });
  }
}
