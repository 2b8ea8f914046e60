// Putting the Espruino interpreter itself on an ESP32: check the three files of Espruino's ESP32
// build before anything touches the board, then write them with Espressif's esptool-js through
// Wisp's Web Serial adapter (webserial.ts): reset into the ROM bootloader with DTR/RTS, detect the
// chip, refuse another family than the board file's, start the flasher stub, raise the baud rate,
// write each region compressed, check each by MD5, reset the board into what it now holds.
//
// Found while driving esptool-js 0.7.0 from Node (each is worked around here):
// - its HardReset (after "hard_reset") only releases RTS and never asserts it, so an ESP32 on a
//   DevKitC-style circuit is not reset after flashing; Wisp passes its own, as esptool.py does it
//   (RTS asserted for 100 ms, then released), setting DTR low with it each time: setRTS() would
//   re-send a stale DTR "asserted" (Transport.setSignals() stores DTR only when true), which
//   releases EN again at once (a 0.1 ms pulse, measured against the simulated board) and holds IO0
//   low until the port closes;
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
import { ESPError, ESPLoader, HardReset, Transport, UnexpectedChipIdError, UnexpectedChipMagicError } from "esptool-js";
import type { Board } from "../../boards/types.ts";
import { listPorts } from "./port.ts";
import { startProgress } from "./progress.ts";
import { type Interpreter, InterpreterError } from "./interpreter-files.ts";
import { NodeSerialPort } from "./webserial.ts";

const hex = (n: number) => "0x" + n.toString(16);
const bytes = (n: number) => n.toLocaleString("en-US");

/** The ROM bootloader's rate, which the chip starts at (esptool's ESP_ROM_BAUD). */
export const ROM_BAUD = 115_200;
/** The rate esptool writes ESP32s at (Espruino's make/targets/ESP32.make FLASH_BAUD). */
export const DEFAULT_FLASH_BAUD = 921_600;
/** The rates --flash-baud takes: what the ROM autobauds from, up to what CP210x and CH340 bridges reach. */
export const FLASH_BAUD = { min: 9600, max: 3_000_000, unit: "bits per second (e.g. 921600)" };
/** Attempts per region when its MD5 does not match what was sent. */
const REGION_ATTEMPTS = 3;

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
  /** Reset-and-sync rounds before giving up on download mode (default 7, as esptool). */
  connectAttempts?: number;
}

export interface InstallResult {
  /** `ESP32-D0WDQ6 (revision 1)` */
  chip: string;
  mac: string;
  /** The rate the regions were written at (esptool-js falls back to 115200 when the board does not follow). */
  baud: number;
  regions: { name: string; address: number; bytes: number; compressed: number; seconds: number; md5: string }[];
  /** Regions written again because their MD5 did not match. */
  retries: number;
  seconds: number;
}

/**
 * esptool.py's HardReset: EN low for 100 ms through RTS, then released with IO0 high. Both lines
 * are named in each request: Transport.setRTS() follows RTS with DTR at the level it remembers,
 * which stays "asserted" after the classic reset (setSignals() records DTR only when it is true),
 * and DTR with RTS releases EN at once: the pulse would last as long as one request.
 */
class RtsHardReset extends HardReset {
  override async reset(): Promise<void> {
    await this.transport.setSignals(false, true);
    await new Promise((r) => setTimeout(r, 100));
    await this.transport.setSignals(false, false);
  }
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

/** What the board printed, read as an answer to "why did it not enter download mode?". */
function whatTheBoardSaid(device: NodeSerialPort): string {
  const text = device.received;
  if (/waiting for download/.test(text)) return "it entered download mode but its bootloader did not answer: check the cable and the port, and that nothing else holds the port";
  if (/invalid header: 0x/.test(text)) return 'it keeps booting from its flash, which is empty ("invalid header")';
  if (/boot:0x(13|33)\b/.test(text)) return "it booted from its flash (boot:0x13), not into its ROM bootloader: DTR/RTS do not reach its IO0";
  if (text.length > 0) return "it answered with console text, not the ROM bootloader's protocol";
  return "it said nothing";
}

/**
 * Writes the interpreter's regions to the board on `port` with esptool-js, verifies each by MD5 and
 * resets the board so that it boots them. Throws an InterpreterError with the cause and the fix.
 */
export async function installInterpreter(options: InstallOptions): Promise<InstallResult> {
  const say = options.say ?? ((line: string) => console.log(line));
  const log = options.onLog ?? (() => undefined);
  const { board, interpreter } = options;
  const started = performance.now();
  const flashBaud = options.flashBaud ?? DEFAULT_FLASH_BAUD;
  const device = new NodeSerialPort(options.port, await usbIds(options.port));
  const transport = new Transport(device as unknown as ConstructorParameters<typeof Transport>[0], false);
  transport.trace = (message: string) => log(`trace: ${message}`);
  const loader = new ESPLoader({
    transport,
    baudrate: flashBaud,
    romBaudrate: ROM_BAUD,
    terminal: { clean: () => undefined, writeLine: log, write: log },
    resetConstructors: { hardReset: (t: Transport, usbOtg?: boolean) => new RtsHardReset(t, usbOtg) },
  });
  const lost = (err: unknown): never => {
    if (device.lost) {
      throw new InterpreterError(`the port closed (${device.lost.message}): the board was unplugged or reset its USB connection. Plug it in and run the command again; the interpreter is not complete on it`, "closed");
    }
    throw err;
  };
  let connected = false;
  try {
    try {
      await loader.detectChip("default_reset", options.connectAttempts ?? 7);
      connected = true;
    } catch (err) {
      if (err instanceof UnexpectedChipMagicError || err instanceof UnexpectedChipIdError) {
        connected = true;
        throw new InterpreterError(`${options.port}: ${err.message}. This is not an Espressif chip that esptool knows; board ${board.id} is an ${board.chip.name}`, "wrong-chip");
      }
      if (device.lost) lost(err);
      // a port that would not open (PortError) says so itself
      if (!(err instanceof ESPError)) throw err;
      const lines = device.modemLines === "none" ? " This port has no DTR/RTS lines to reset it with (a pseudo-terminal?)." : "";
      throw new InterpreterError(
        `${options.port}: the board did not enter its ROM bootloader (download mode): ${whatTheBoardSaid(device)}.${lines} ` +
          "Put it there by hand: hold the BOOT button down, press and release EN, let go of BOOT, and run the command again. " +
          "If it still does not answer, try another USB cable (some carry power only) or port",
        "no-download-mode",
      );
    }
    const chip = loader.chip;
    if (chip.CHIP_NAME !== board.chip.name) {
      throw new InterpreterError(
        `${options.port} has an ${chip.CHIP_NAME}, not an ${board.chip.name}: board ${board.id} (flash.config.json "board") needs an ${board.chip.name}, and Espruino's ${board.chip.name} build runs on nothing else. Pick the ${board.chip.name}'s port (wisp ports), or a board file for this chip`,
        "wrong-chip",
      );
    }
    const description = await chip.getChipDescription(loader);
    const mac = await chip.readMac(loader);
    say(`${options.port}: ${description}, MAC ${mac}, in its ROM bootloader`);
    await loader.runStub();
    if (flashBaud !== ROM_BAUD) await loader.changeBaud();
    const flashId = await loader.readFlashId();
    const sizeCode = (flashId >> 16) & 0xff;
    const flashBytes = sizeCode >= 0x12 && sizeCode <= 0x1c ? 2 ** sizeCode : undefined;
    if (flashBytes !== undefined && flashBytes < board.flash.chipBytes) {
      throw new InterpreterError(
        `the board's flash is ${flashBytes / 1048576} MB; board ${board.id} and Espruino's layout need ${board.flash.chipBytes / 1048576} MB (Storage at ${hex(board.flash.storageAddress)})`,
        "flash-size",
      );
    }
    if (options.eraseAll) {
      say("erasing the whole flash (this takes 10 to 20 s)...");
      await loader.eraseFlash();
    }
    // changeBaud() goes back to the ROM's rate when the board stops answering at the new one
    const baud = (loader as unknown as { baudrate: number }).baudrate;
    const result: InstallResult = { chip: description, mac, baud, regions: [], retries: 0, seconds: 0 };
    for (const region of interpreter.regions) {
      for (let attempt = 1; ; attempt++) {
        const t0 = performance.now();
        let bar: ReturnType<typeof startProgress> | undefined;
        let compressed = 0;
        const md5 = createHash("md5").update(padTo4(region.data)).digest("hex");
        try {
          await loader.writeFlash({
            fileArray: [{ data: region.data, address: region.address }],
            flashMode: "keep",
            flashFreq: "keep",
            flashSize: "keep",
            eraseAll: false,
            compress: true,
            reportProgress: (_file, written, total) => {
              compressed = total;
              bar ??= startProgress(total, options.progress !== false);
              bar.update(written, region.name);
            },
            calculateMD5Hash: (image) => createHash("md5").update(image).digest("hex"),
          });
        } catch (err) {
          bar?.stop();
          if (device.lost) lost(err);
          if (err instanceof Error && /MD5 of file does not match/.test(err.message)) {
            if (attempt < REGION_ATTEMPTS) {
              result.retries++;
              say(`${region.name}: the flash at ${hex(region.address)} does not hold what was sent (MD5 differs); writing it again`);
              continue;
            }
            throw new InterpreterError(
              `${region.name}: the flash at ${hex(region.address)} still differs from the file after ${REGION_ATTEMPTS} writes (MD5 ${md5} sent). The flash chip may be failing: run again with --erase-all, and if it repeats, use another board`,
              "md5",
            );
          }
          throw new InterpreterError(`writing ${region.name} at ${hex(region.address)} failed: ${(err as Error).message}. Run the command again; a lower --flash-baud (e.g. 115200) helps on long or poor cables`, "flash");
        }
        bar?.stop();
        const seconds = (performance.now() - t0) / 1000;
        result.regions.push({ name: region.name, address: region.address, bytes: region.data.length, compressed, seconds, md5 });
        say(`wrote ${region.name} at ${hex(region.address)}: ${bytes(region.data.length)} bytes (${bytes(compressed)} compressed) in ${seconds.toFixed(1)} s, MD5 verified`);
        break;
      }
    }
    await loader.after("hard_reset");
    connected = false;
    result.seconds = (performance.now() - started) / 1000;
    return result;
  } catch (err) {
    return lost(err);
  } finally {
    // a board left in its bootloader (refused, failed half-way) runs what it holds again
    if (connected && !device.lost) await loader.after("hard_reset").catch(() => undefined);
    // Transport.disconnect() waits for the writable's lock, which its write() keeps after a failed write
    device.dropLockedWritable();
    await transport.disconnect().catch(() => undefined);
    await device.close().catch(() => undefined);
  }
}

function padTo4(data: Uint8Array): Uint8Array {
  if (data.length % 4 === 0) return data;
  const out = new Uint8Array(data.length + 4 - (data.length % 4)).fill(0xff);
  out.set(data);
  return out;
}
