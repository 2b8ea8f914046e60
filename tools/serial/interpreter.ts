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
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { ESPError, ESPLoader, HardReset, Transport, UnexpectedChipIdError, UnexpectedChipMagicError } from "esptool-js";
import type { Board } from "../../boards/types.ts";
import { type AppImage, espruinoVersion, imageChipName, ImageError, type Partition, PARTITION_TABLE_BYTES, parseAppImage, parsePartitionTable, partitionKind } from "./esp-image.ts";
import { listPorts } from "./port.ts";
import { startProgress } from "./progress.ts";
import { hasPacketProtocol } from "./protocol.ts";
import { DownloadError, downloadEspruino, type DownloadOptions, isEspruinoVersion, TESTED_ESPRUINO } from "./espruino-download.ts";
import { NodeSerialPort } from "./webserial.ts";

/** Where Espruino's ESP32 build is published, for messages. */
export const ESPRUINO_DOWNLOAD = "https://www.espruino.com/Download";
/** The ROM bootloader's rate, which the chip starts at (esptool's ESP_ROM_BAUD). */
export const ROM_BAUD = 115_200;
/** The rate esptool writes ESP32s at (Espruino's make/targets/ESP32.make FLASH_BAUD). */
export const DEFAULT_FLASH_BAUD = 921_600;
/** The rates --flash-baud takes: what the ROM autobauds from, up to what CP210x and CH340 bridges reach. */
export const FLASH_BAUD = { min: 9600, max: 3_000_000, unit: "bits per second (e.g. 921600)" };
/** Attempts per region when its MD5 does not match what was sent. */
const REGION_ATTEMPTS = 3;

export class InterpreterError extends Error {
  constructor(
    message: string,
    readonly code: "files" | "download" | "old-interpreter" | "no-download-mode" | "wrong-chip" | "flash-size" | "md5" | "closed" | "flash",
  ) {
    super(message);
  }
}

export interface Region {
  /** The file it came from. */
  name: string;
  kind: "bootloader" | "partition-table" | "app";
  address: number;
  data: Uint8Array;
}

export interface Interpreter {
  /** The folder the files were read from. */
  dir: string;
  /** The Espruino version the app image carries (`2v29`), when it says. */
  version: string | undefined;
  /** In the order they are written. */
  regions: Region[];
  /** The partition the app goes in, from the partition table. */
  appPartition: Partition;
}

const hex = (n: number) => "0x" + n.toString(16);
const bytes = (n: number) => n.toLocaleString("en-US");

/** What to tell someone who has no Espruino ESP32 files yet. */
export function whereToGetEspruino(board: Board): string {
  const names = board.interpreter.files.map((f) => f.name).join(", ");
  return (
    `Get Espruino for ${board.chip.name} from ${ESPRUINO_DOWNLOAD} (the folder espruino_2v29_${board.espruinoBuild} of its binaries, also at ` +
    `https://www.espruino.com/binaries/espruino_2v29_${board.espruinoBuild}/), with ${names}, and pass that folder: npx wisp flash --interpreter ./espruino_2v29_${board.espruinoBuild}`
  );
}

/**
 * Reads and checks Espruino's files for `board` from `dir` (or from the one subfolder of `dir`
 * that has them, as in Espruino's release zip): each file by name, each image's magic byte,
 * segments, checksum and SHA-256, the chip it is built for, that the bootloader ends before the
 * partition table, that the partition table has the app partition the interpreter goes in, and
 * that the interpreter fits it. Throws an InterpreterError that names the file and the fix.
 */
export function readInterpreter(dir: string, board: Board): Interpreter {
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    throw new InterpreterError(`${dir} is not a folder. ${whereToGetEspruino(board)}`, "files");
  }
  const names = board.interpreter.files.map((f) => f.name);
  const has = (d: string) => names.every((n) => existsSync(join(d, n)));
  let folder = root;
  if (!has(root)) {
    const inside = readdirSync(root, { withFileTypes: true })
      .filter((e) => e.isDirectory() && has(join(root, e.name)))
      .map((e) => join(root, e.name));
    if (inside.length === 1) folder = inside[0]!;
    else {
      const missing = names.filter((n) => !existsSync(join(root, n)));
      throw new InterpreterError(`${dir} has no ${missing.join(", ")}. ${whereToGetEspruino(board)}`, "files");
    }
  }
  const chipId = board.chip.imageChipId;
  const regions: Region[] = board.interpreter.files.map((f) => ({ name: f.name, kind: f.kind, address: f.address, data: new Uint8Array(readFileSync(join(folder, f.name))) }));
  const region = (kind: Region["kind"]) => regions.find((r) => r.kind === kind)!;
  const image = (r: Region, what: string): AppImage => {
    let parsed: AppImage;
    try {
      parsed = parseAppImage(r.data);
    } catch (err) {
      if (!(err instanceof ImageError)) throw err;
      throw new InterpreterError(`${r.name} is not ${what}: ${err.message}. Download Espruino's ESP32 build again (${ESPRUINO_DOWNLOAD})`, "files");
    }
    if (parsed.chipId !== chipId) {
      throw new InterpreterError(`${r.name} is built for the ${imageChipName(parsed.chipId)}, not the ${board.chip.name} of board ${board.id}: take Espruino's ${board.chip.name} build (${ESPRUINO_DOWNLOAD})`, "files");
    }
    return parsed;
  };
  const table = region("partition-table");
  const app = region("app");
  const bootloader = region("bootloader");
  image(bootloader, `an ${board.chip.name} bootloader image`);
  if (bootloader.address + bootloader.data.length > table.address) {
    throw new InterpreterError(
      `${bootloader.name} is ${bytes(bootloader.data.length)} bytes: written at ${hex(bootloader.address)} it would run into the partition table at ${hex(table.address)} (at most ${bytes(table.address - bootloader.address)} bytes)`,
      "files",
    );
  }
  if (table.data.length > PARTITION_TABLE_BYTES) {
    throw new InterpreterError(`${table.name} is ${bytes(table.data.length)} bytes; a partition table has at most ${bytes(PARTITION_TABLE_BYTES)}`, "files");
  }
  let partitions: Partition[];
  try {
    partitions = parsePartitionTable(table.data);
  } catch (err) {
    if (!(err instanceof ImageError)) throw err;
    throw new InterpreterError(`${table.name} is not a partition table: ${err.message}`, "files");
  }
  const appPartition = partitions.find((p) => p.type === 0 && p.offset === app.address);
  if (!appPartition) {
    const list = partitions.map((p) => `${p.label} (${partitionKind(p)}) at ${hex(p.offset)}`).join(", ");
    throw new InterpreterError(`${table.name} has no app partition at ${hex(app.address)}, where ${app.name} goes; it has ${list}`, "files");
  }
  const appImage = image(app, `an ${board.chip.name} app image`);
  if (app.data.length > appPartition.size) {
    throw new InterpreterError(
      `${app.name} is ${bytes(app.data.length)} bytes; its partition (${appPartition.label} at ${hex(appPartition.offset)}) holds ${bytes(appPartition.size)}`,
      "files",
    );
  }
  for (const r of regions) {
    if (r.address + r.data.length > board.flash.chipBytes) throw new InterpreterError(`${r.name} at ${hex(r.address)} does not fit the board's ${board.flash.chipBytes / 1048576} MB flash`, "files");
  }
  const version = espruinoVersion(app.data.subarray(0, appImage.length)) ?? (/^\d+v\d+/.test(appImage.appVersion ?? "") ? appImage.appVersion : undefined);
  const m = version ? /^(\d+)v(\d+)/.exec(version) : null;
  if (m && !hasPacketProtocol(Number(m[1]), Number(m[2]))) {
    throw new InterpreterError(`${app.name} is Espruino ${version}; Wisp needs 2v25 or newer (the console's packet protocol). Take Espruino 2v29 for ESP32 from ${ESPRUINO_DOWNLOAD}`, "old-interpreter");
  }
  return { dir: folder, version, regions, appPartition };
}

/**
 * The interpreter `spec` names: a folder (readInterpreter), or a version such as `2v29` (or
 * nothing: the version Wisp is tested with) fetched from espruino.com into the cache first
 * (espruino-download.ts). Either way every check of readInterpreter applies.
 */
export async function findInterpreter(spec: string | undefined, board: Board, options: DownloadOptions = {}): Promise<Interpreter> {
  if (spec !== undefined && !(isEspruinoVersion(spec) && !existsSync(spec))) return readInterpreter(spec, board);
  const version = spec ?? TESTED_ESPRUINO;
  let dir: string;
  try {
    dir = await downloadEspruino(version, board, options);
  } catch (err) {
    if (!(err instanceof DownloadError)) throw err;
    throw new InterpreterError(`${err.message}. ${whereToGetEspruino(board)}`, "download");
  }
  return readInterpreter(dir, board);
}

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

/** `espruino_esp32.bin at 0x10000 (1,523,456 bytes)` lines for a summary. */
export function describeRegions(interpreter: Interpreter): string {
  return interpreter.regions.map((r) => `${r.name} at ${hex(r.address)} (${bytes(r.data.length)} bytes)`).join(", ") + ` from ${basename(interpreter.dir)}`;
}
