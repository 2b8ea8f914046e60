// Putting the Espruino interpreter itself on an ESP32: check the three files of Espruino's ESP32
// build before anything touches the board, then write them with Espressif's esptool-js through
// Wisp's Web Serial adapter (webserial.ts): reset into the ROM bootloader with DTR/RTS, detect the
// chip, refuse another family than the board file's, start the flasher stub, raise the baud rate,
// write each region compressed in 64 KB pieces checked by MD5 (skipping pieces in place), reset the
// board into what it now holds. A garbled or lost answer costs a piece, not the run: esptool's stub
// checks a block's length and checksum only, so a block esptool-js sends again after a lost answer
// is written twice; the piece is begun again instead (a new FLASH_DEFL_BEGIN), or a new session.
//
// Found while driving esptool-js 0.7.0 from Node (each is worked around here):
// - its HardReset (after "hard_reset") only releases RTS and never asserts it, so an ESP32 on a
//   DevKitC-style circuit is not reset after flashing, and Transport.setRTS() re-sends a stale DTR
//   "asserted" (setSignals() stores DTR only when true), which releases EN again at once (a 0.1 ms
//   pulse) and holds IO0 low; and after a failure (a chip it could not identify) its reset throws.
//   Wisp resets the board itself, on the port after esptool-js let go of it, as esptool.py does
//   (RTS asserted for 100 ms with DTR low, then both released): after success and after failure;
// - Transport.trace() writes to console.log whether tracing is on or not (readLoop's exit,
//   flashSizeBytes()); Wisp routes it to the log it was given;
// - it picks its reset sequence from getInfo()'s USB ids, so the adapter reports them when
//   `SerialPort.list()` knows the port;
// - Transport.write() keeps the stream's writer locked when a write fails (an unplugged board), and
//   Transport.disconnect() then waits for that lock forever; the adapter lets go of such a stream
//   before Wisp disconnects (closing the port first instead races readLoop(), whose finally then
//   calls releaseLock() on a reader disconnect() has cleared: an unhandled rejection).

import { createHash } from "node:crypto";
import { existsSync, realpathSync } from "node:fs";
export { describeRegions, ESPRUINO_DOWNLOAD, findInterpreter, type Interpreter, InterpreterError, readInterpreter, type Region, whereToGetEspruino } from "./interpreter-files.ts";
import { ESPError, ESPLoader, Transport, UnexpectedChipIdError, UnexpectedChipMagicError } from "esptool-js";
import type { Board } from "../../boards/types.ts";
import { listPorts, PortError } from "./port.ts";
import { startProgress } from "./progress.ts";
import { type Interpreter, InterpreterError, whereToGetEspruino } from "./interpreter-files.ts";
import { NodeSerialPort } from "./webserial.ts";

const hex = (n: number) => "0x" + n.toString(16);
const bytes = (n: number) => n.toLocaleString("en-US");

/** The ROM bootloader's rate, which the chip starts at (esptool's ESP_ROM_BAUD). */
export const ROM_BAUD = 115_200;
/** The rate esptool writes ESP32s at (Espruino's make/targets/ESP32.make FLASH_BAUD). */
export const DEFAULT_FLASH_BAUD = 921_600;
/**
 * The rates --flash-baud takes: the ROM's own rate up to what CP210x and CH340 bridges reach. Not
 * below 115200: the ROM talks 115200 anyway, and esptool-js gives a 16 KB block 3 s, which a
 * slower line cannot carry (at 19200 a block takes 8.5 s).
 */
export const FLASH_BAUD = { min: ROM_BAUD, max: 3_000_000, unit: "bits per second (e.g. 921600; 115200 on a poor cable)" };
/** Writes of a piece of a region (MD5 differs, or the line garbled an answer) before a run gives up. */
const REGION_ATTEMPTS = 3;
/** Writes of a piece that a garbled or lost answer interrupted, before a run gives up. */
const PIECE_FAULT_ATTEMPTS = 8;
/** Regions are written, checked and skipped when in place in pieces of this size (64 KB, an erase block). */
const PIECE_BYTES = 0x10000;
/** New sessions after transport errors in one run, at most: a line that bad will not carry 1.5 MB. */
const MAX_RESTARTS = 8;

export interface InstallOptions {
  /** The board's serial port. */
  port: string;
  interpreter: Interpreter;
  board: Board;
  /** The rate to write at once the stub runs (default 921600). */
  flashBaud?: number;
  /** Erase the whole flash first (old settings, old Storage, another firmware's data). */
  eraseAll?: boolean;
  /** Lines for the user (default console.log). */
  say?: (line: string) => void;
  /** A bar per region on stderr when it is a terminal (default true). */
  progress?: boolean;
  /** esptool-js's own log lines. */
  onLog?: (line: string) => void;
  /**
   * Stops the run (Ctrl-C): the port is closed under esptool-js, the board reset to run what it
   * holds, and an InterpreterError "interrupted" thrown.
   */
  signal?: AbortSignal;
  /** Reset-and-sync rounds before giving up on download mode (default 7, as esptool). */
  connectAttempts?: number;
}

export interface InstallResult {
  /** `ESP32-D0WDQ6 (revision 1)` */
  chip: string;
  mac: string;
  /** The rate the regions were written at (esptool-js falls back to 115200 when the board does not follow). */
  baud: number;
  /** `bytes` the region's size, `written` what had to be written (pieces already in place are not). */
  regions: { name: string; address: number; bytes: number; written: number; compressed: number; seconds: number; md5: string }[];
  /** Regions written again because their MD5 did not match. */
  retries: number;
  seconds: number;
}

/** USB ids of `path` when the system lists it (esptool-js picks its reset sequence by them). */
async function usbIds(path: string): Promise<{ usbVendorId?: number; usbProductId?: number }> {
  try {
    const real = (p: string) => (existsSync(p) ? realpathSync(p) : p);
    const port = (await listPorts({ all: true })).find((p) => real(p.path) === real(path));
    if (port?.vendorId && port.productId) return { usbVendorId: parseInt(port.vendorId, 16), usbProductId: parseInt(port.productId, 16) };
  } catch {
    // no udevadm, or not a USB port: the classic DTR/RTS reset is the one to use anyway
  }
  return {};
}

/**
 * What the board printed, read as an answer to "why did it not enter download mode?", and whether
 * holding BOOT would help (not when it did enter download mode and only its answers got lost).
 */
function whatTheBoardSaid(device: NodeSerialPort): { why: string; byHand: boolean } {
  const text = device.received;
  if (/waiting for download/.test(text)) {
    return { why: "the board entered its ROM bootloader (download mode), but none of its answers came through intact: noise on the line, a poor cable, or another program on the port", byHand: false };
  }
  if (/invalid header: 0x/.test(text)) return { why: 'it keeps booting from its flash, which is empty ("invalid header")', byHand: true };
  if (/boot:0x(13|33)\b/.test(text)) return { why: "it booted from its flash (boot:0x13), not into its ROM bootloader: DTR/RTS do not reach its IO0", byHand: true };
  if (text.length > 0) return { why: "it answered with console text, not the ROM bootloader's protocol", byHand: true };
  return { why: "it said nothing", byHand: true };
}

/** An error's message as part of a sentence: one line, no closing full stop (esptool-js ends some with one). */
function said(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s+/g, " ").trim().replace(/[.\s]+$/, "");
}

/** Whole sessions (reset, sync, stub) per run, and writes per region, before a run gives up. */
const SESSION_ATTEMPTS = 3;

/**
 * Writes the interpreter's regions to the board on `port` with esptool-js in 64 KB pieces, each
 * verified by MD5 (a piece in place already is not written again), and resets the board so that it
 * boots them. A transport error (a garbled or lost answer) costs a piece: it is written again once
 * the stub answers, or after a fresh session (reset into the ROM bootloader, sync, stub), a bounded
 * number of times. Whatever fails, and on `signal`, a board this put into its bootloader is reset
 * to run what it holds. Throws an InterpreterError with the cause and the fix (or a PortError when
 * the port would not open).
 */
export async function installInterpreter(options: InstallOptions): Promise<InstallResult> {
  const say = options.say ?? ((line: string) => console.log(line));
  const log = options.onLog ?? (() => undefined);
  const { board, interpreter } = options;
  const started = performance.now();
  const flashBaud = options.flashBaud ?? DEFAULT_FLASH_BAUD;
  const attempts = options.connectAttempts ?? 7;
  const device = new NodeSerialPort(options.port, await usbIds(options.port));
  const transport = new Transport(device as unknown as ConstructorParameters<typeof Transport>[0], false);
  transport.trace = (message: string) => log(`trace: ${message}`);
  const loader = new ESPLoader({
    transport,
    baudrate: flashBaud,
    romBaudrate: ROM_BAUD,
    terminal: { clean: () => undefined, writeLine: log, write: log },
  });
  const state = loader as unknown as { baudrate: number; IS_STUB: boolean };
  /** Where a line goes while a progress bar is up: above it. */
  let note = say;
  const advice = flashBaud > ROM_BAUD ? `Run the command again; on a long or poor cable a lower --flash-baud (${ROM_BAUD}) helps` : "Run the command again; if it repeats, try another USB cable or port";
  const closed = (): InterpreterError =>
    options.signal?.aborted ? interrupted() : new InterpreterError(
      `the port closed (${said(device.lost)}): the board was unplugged or reset its USB connection. Plug it in and run the command again; the interpreter is not complete on it`,
      "closed",
    );
  const interrupted = () =>
    new InterpreterError("interrupted: Espruino may not be complete on the board, which was reset to run what it holds. Run the same command again (what is in place already is not written again)", "interrupted");
  /** Any error of a step, as an InterpreterError naming the step (or the unplugged board). */
  const failed = (what: string, err: unknown): InterpreterError | PortError => {
    if (options.signal?.aborted) return interrupted();
    if (err instanceof InterpreterError || err instanceof PortError) return err;
    if (device.lost) return closed();
    return new InterpreterError(`${what} failed (${said(err)}): the serial line lost or garbled bytes. ${advice}`, "link");
  };
  const step = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (err) {
      throw failed(what, err);
    }
  };
  /**
   * Does the board answer a register read within 2 s? (Short tries, so one garbled try costs
   * little; a garbled command can keep the stub busy for a while: an MD5 over a size that the
   * noise made large.)
   */
  const answering = async (): Promise<boolean> => {
    for (let i = 0; i < 8; i++) {
      try {
        await loader.readReg(loader.CHIP_DETECT_MAGIC_REG_ADDR, 250);
        return true;
      } catch {
        if (device.lost) return false;
        transport.flushInput();
      }
    }
    return false;
  };
  /** Lets go of the port so that esptool-js can open it again (a new session) or Wisp can reset the board. */
  const release = async () => {
    device.dropLockedWritable();
    await transport.disconnect().catch(() => undefined);
    await device.close().catch(() => undefined);
  };

  /**
   * Resets the board into its ROM bootloader and identifies the chip. A chip read as another than
   * the board's is read again in a new session (noise can turn the chip-id answer into another
   * chip's): refused only when two reads agree.
   */
  const enterBootloader = async (): Promise<void> => {
    let earlier: string | undefined;
    for (let round = 1; ; round++) {
      let name: string;
      let unknown: string | undefined;
      try {
        await loader.detectChip("default_reset", attempts);
        name = loader.chip.CHIP_NAME;
      } catch (err) {
        if (device.lost || options.signal?.aborted) throw closed();
        if (err instanceof UnexpectedChipMagicError || err instanceof UnexpectedChipIdError) {
          name = unknown = said(err);
        } else if (err instanceof ESPError && /Failed to connect/i.test(err.message)) {
          const { why, byHand } = whatTheBoardSaid(device);
          const lines = device.modemLines === "none" ? " This port has no DTR/RTS lines to reset it with (a pseudo-terminal?)." : "";
          throw new InterpreterError(
            `${options.port}: ${byHand ? `the board did not enter its ROM bootloader (download mode): ${why}` : why}.${lines} ` +
              (byHand
                ? "Put it there by hand: hold the BOOT button down, press and release EN, let go of BOOT, and run the command again. If it still does not answer, try another USB cable (some carry power only) or port"
                : "Run the command again; if it repeats, try another USB cable or port, and close other programs that use it (a serial monitor)"),
            "no-download-mode",
          );
        } else if (err instanceof PortError) {
          throw err;
        } else if (round < SESSION_ATTEMPTS) {
          log(`identifying the chip failed (${said(err)}); starting over`);
          await release();
          continue;
        } else {
          throw failed("identifying the chip", err);
        }
      }
      if (name === board.chip.name) return;
      if (earlier === name || round >= SESSION_ATTEMPTS) {
        if (unknown) throw new InterpreterError(`${options.port}: ${unknown}. This is not an Espressif chip that esptool knows; board ${board.id} is an ${board.chip.name}`, "wrong-chip");
        throw new InterpreterError(
          `${options.port} has an ${name}, not an ${board.chip.name}: board ${board.id} (flash.config.json "board") needs an ${board.chip.name}, and Espruino's ${board.chip.name} build runs on nothing else. Pick the ${board.chip.name}'s port (wisp ports), or a board file for this chip`,
          "wrong-chip",
        );
      }
      earlier = name;
      log(`the chip read as ${name}; reading it again in a new session`);
      await release();
    }
  };

  /** A session: bootloader, chip, flasher stub, the write rate, the flash's size. */
  const session = async (first: boolean): Promise<{ description: string; mac: string }> => {
    if (!first) {
      await release();
      state.IS_STUB = false;
    }
    await enterBootloader();
    // a simulated board's port has the modem-line socket beside it; a real board's does not
    if (interpreter.standIn && device.modemLines !== "socket") {
      throw new InterpreterError(
        `${interpreter.dir} holds Wisp's stand-in files for the simulator (wisp install-espruino --stand-in), not Espruino: a real board cannot run them. ${whereToGetEspruino(board)}`,
        "files",
      );
    }
    const description = await step("reading the chip's description", () => loader.chip.getChipDescription(loader));
    const mac = await step("reading the chip's MAC address", () => loader.chip.readMac(loader));
    if (first) say(`${options.port}: ${description}, MAC ${mac}, in its ROM bootloader`);
    await step("starting esptool's flasher stub", () => loader.runStub());
    if (state.baudrate !== ROM_BAUD) await step(`changing to ${state.baudrate} baud`, () => loader.changeBaud());
    const flashId = await step("reading the flash chip's id", () => loader.readFlashId());
    const sizeCode = (flashId >> 16) & 0xff;
    const flashBytes = sizeCode >= 0x12 && sizeCode <= 0x1c ? 2 ** sizeCode : undefined;
    if (flashBytes !== undefined && flashBytes < board.flash.chipBytes) {
      throw new InterpreterError(
        `the board's flash is ${flashBytes / 1048576} MB; board ${board.id} and Espruino's layout need ${board.flash.chipBytes / 1048576} MB (Storage at ${hex(board.flash.storageAddress)})`,
        "flash-size",
      );
    }
    return { description, mac };
  };

  /** A session, started again on transport errors up to SESSION_ATTEMPTS times. */
  const startSession = async (first: boolean): Promise<{ description: string; mac: string }> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await session(first && attempt === 1);
      } catch (err) {
        if (options.signal?.aborted) throw interrupted();
        if (!(err instanceof InterpreterError) || err.code !== "link" || attempt >= SESSION_ATTEMPTS) throw err;
        note(`${err.message.replace(/\. Run the command again.*$/, "")}; starting over (${attempt + 1} of ${SESSION_ATTEMPTS})`);
      }
    }
  };

  const stop = () => {
    device.dropLockedWritable();
    void device.close().catch(() => undefined);
  };
  if (options.signal?.aborted) throw interrupted();
  options.signal?.addEventListener("abort", stop, { once: true });
  try {
    const { description, mac } = await startSession(true);
    if (options.eraseAll) {
      say("erasing the whole flash (this takes 10 to 20 s)...");
      await step("erasing the flash", () => loader.eraseFlash());
    }
    // changeBaud() goes back to the ROM's rate when the board stops answering at the new one
    const result: InstallResult = { chip: description, mac, baud: state.baudrate, regions: [], retries: 0, seconds: 0 };
    let restarts = 0;
    for (const region of interpreter.regions) {
      const t0 = performance.now();
      const bar = startProgress(region.data.length, options.progress !== false, process.stderr, say);
      note = (line) => bar.log(line);
      const done = { written: 0, inPlace: 0, compressed: 0 };
      try {
        // in pieces, each checked by MD5: one that is in place already is not written again, and
        // a line fault costs one piece, not the region
        for (let at = 0; at < region.data.length; at += PIECE_BYTES) {
          const piece = padTo4(region.data.subarray(at, at + PIECE_BYTES));
          const address = region.address + at;
          const md5 = createHash("md5").update(piece).digest("hex");
          for (let attempt = 1; ; attempt++) {
            let compressed = 0;
            try {
              if (!options.eraseAll && (await loader.flashMd5sum(address, piece.length)) === md5) {
                done.inPlace += piece.length;
                bar.update(at + piece.length, region.name);
                break;
              }
              await loader.writeFlash({
                fileArray: [{ data: piece, address }],
                flashMode: "keep",
                flashFreq: "keep",
                flashSize: "keep",
                eraseAll: false,
                compress: true,
                reportProgress: (_file, written, total) => {
                  compressed = total;
                  bar.update(at + Math.round((piece.length * written) / Math.max(total, 1)), region.name);
                },
                calculateMD5Hash: (image) => createHash("md5").update(image).digest("hex"),
              });
              done.written += piece.length;
              done.compressed += compressed;
              break;
            } catch (err) {
              if (device.lost || options.signal?.aborted) throw closed();
              const mismatch = err instanceof Error && /MD5 of file does not match/.test(err.message);
              if (mismatch ? attempt >= REGION_ATTEMPTS : attempt >= PIECE_FAULT_ATTEMPTS || restarts >= MAX_RESTARTS) {
                if (mismatch) {
                  throw new InterpreterError(
                    `${region.name}: the flash at ${hex(address)} still differs from the file after ${attempt} writes (MD5 ${md5} sent). The flash chip may be failing: run again with --erase-all, and if it repeats, use another board`,
                    "md5",
                  );
                }
                throw new InterpreterError(`writing ${region.name} at ${hex(address)} failed ${attempt} times (last: ${said(err)}): the serial line keeps losing or garbling bytes. ${advice}`, "flash");
              }
              result.retries++;
              if (mismatch) {
                bar.log(`${region.name}: the flash at ${hex(address)} does not hold what was sent (MD5 differs); writing it again`);
                continue;
              }
              log(`writing ${region.name} at ${hex(address)} failed (${said(err)}); writing that piece again`);
              // a late answer may still be on its way; then the stub, if it answers, takes a new
              // FLASH_DEFL_BEGIN (which drops what it made of a garbled block); if not, a new session
              await new Promise((r) => setTimeout(r, 50));
              await transport.drainInput(20, 200).catch(() => undefined);
              const answers = await answering();
              if (device.lost) throw closed();
              if (!answers) {
                restarts++;
                bar.log(`writing ${region.name} at ${hex(address)} failed (${said(err)}) and the board stopped answering; starting over from its bootloader (${restarts} of ${MAX_RESTARTS})`);
                await startSession(false);
                result.baud = state.baudrate;
              }
            }
          }
        }
      } finally {
        bar.stop();
        note = say;
      }
      const seconds = (performance.now() - t0) / 1000;
      const md5 = createHash("md5").update(padTo4(region.data)).digest("hex");
      result.regions.push({ name: region.name, address: region.address, bytes: region.data.length, written: done.written, compressed: done.compressed, seconds, md5 });
      if (done.written === 0) {
        say(`${region.name} at ${hex(region.address)} is in place already (${bytes(region.data.length)} bytes, MD5 verified): not written again`);
      } else {
        const kept = done.inPlace > 0 ? `; ${bytes(Math.min(done.inPlace, region.data.length))} bytes of it were in place already` : "";
        say(`wrote ${region.name} at ${hex(region.address)}: ${bytes(Math.min(done.written, region.data.length))} bytes (${bytes(done.compressed)} compressed) in ${seconds.toFixed(1)} s, MD5 verified${kept}`);
      }
    }
    result.seconds = (performance.now() - started) / 1000;
    return result;
  } catch (err) {
    throw failed("talking to the board's ROM bootloader", err);
  } finally {
    options.signal?.removeEventListener("abort", stop);
    // the board runs what it holds again: the new interpreter, or (refused, failed half-way) what it had
    await release();
    if (device.modemLines !== undefined && !device.lost) await resetToRun(device, log);
  }
}

/**
 * esptool.py's hard reset (EN low 100 ms through RTS, IO0 released), on a port of its own: it
 * works whatever state esptool-js was left in (a chip it could not identify, a session that
 * failed half-way). A port that will not open again (unplugged meanwhile) is left alone.
 */
async function resetToRun(device: NodeSerialPort, log: (line: string) => void): Promise<void> {
  try {
    await device.open({ baudRate: ROM_BAUD });
    await device.setSignals({ dataTerminalReady: false, requestToSend: true });
    await new Promise((r) => setTimeout(r, 100));
    await device.setSignals({ dataTerminalReady: false, requestToSend: false });
  } catch (err) {
    log(`resetting the board failed: ${said(err)}`);
  } finally {
    await device.close().catch(() => undefined);
  }
}

function padTo4(data: Uint8Array): Uint8Array {
  if (data.length % 4 === 0) return data;
  const out = new Uint8Array(data.length + 4 - (data.length % 4)).fill(0xff);
  out.set(data);
  return out;
}
