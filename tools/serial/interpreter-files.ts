// Espruino's build for a board, checked before anything touches the board: the three files of its
// release folder (or of the cached download), each read as what it must be (a file, not a folder
// or a dangling link; not empty; not a web page saved under its name), each image as the bootloader
// checks it (esp-image.ts), the application as an application (its app description, its
// flash-mapped segments, an Espruino version) and the partition table as a layout the board can
// boot and that keeps Espruino's Storage out of the interpreter's way:
//
// - every partition inside the flash chip, after the partition table's sector, aligned (apps on
//   64 KB, data on 4 KB: gen_esp32part.py), none overlapping another;
// - a data partition over Storage (board.flash.storageAddress/storageBytes): Espruino keeps the
//   node's files there, and an app partition over it would be erased by the next interpreter write;
// - the app partition at the interpreter's address is the one the bootloader starts: ESP-IDF 4.4's
//   bootloader (bootloader_utility.c) starts the factory app when the table has one (and no OTA
//   data selects another), else the first OTA slot; a table with OTA data could start an older app.

import { lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import type { Board } from "../../boards/types.ts";
import { type AppImage, espruinoVersion, imageChipName, ImageError, isFlashMapped, type Partition, PARTITION_TABLE_BYTES, parseAppImage, parsePartitionTable, partitionKind } from "./esp-image.ts";
import { DownloadError, downloadEspruino, type DownloadOptions, isEspruinoVersion, TESTED_ESPRUINO } from "./espruino-download.ts";
import { hasPacketProtocol } from "./protocol.ts";
import { STAND_IN_PROJECT } from "./stand-in.ts";

/** Where Espruino's ESP32 build is published, for messages. */
export const ESPRUINO_DOWNLOAD = "https://www.espruino.com/Download";
/** A partition table's own sector: partitions start after it (ESP-IDF: 0x8000 + 0x1000). */
const TABLE_SECTOR_BYTES = 0x1000;
/** gen_esp32part.py's alignment of app partitions and of data partitions. */
const APP_ALIGN = 0x10000;
const DATA_ALIGN = 0x1000;

export class InterpreterError extends Error {
  constructor(
    message: string,
    readonly code: "files" | "download" | "old-interpreter" | "no-download-mode" | "wrong-chip" | "flash-size" | "md5" | "closed" | "flash" | "link" | "interrupted",
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
  /** The Espruino version the app image carries (`2v29`). */
  version: string;
  /** In the order they are written. */
  regions: Region[];
  /** The partition the app goes in, from the partition table. */
  appPartition: Partition;
  /** Wisp's stand-in for the simulator (stand-in.ts), not Espruino: no real board can run it. */
  standIn: boolean;
}

const hex = (n: number) => "0x" + n.toString(16);
const bytes = (n: number) => n.toLocaleString("en-US");
const versionParts = (v: string) => /^(\d+)v(\d+)/.exec(v);

/** What to tell someone who has no Espruino ESP32 files yet (for `version`, default the tested one). */
export function whereToGetEspruino(board: Board, version = TESTED_ESPRUINO): string {
  const names = board.interpreter.files.map((f) => f.name).join(", ");
  const folder = `espruino_${version}_${board.espruinoBuild}`;
  return (
    `Get Espruino for ${board.chip.name} from ${ESPRUINO_DOWNLOAD} (the folder ${folder} of its binaries, also at ` +
    `https://www.espruino.com/binaries/${folder}/), with ${names}, and pass that folder: npx wisp flash --interpreter ./${folder}`
  );
}

/** An Espruino version Wisp can use (the console's packet protocol came with 2v25); `what` carries it. */
export function checkVersion(version: string, what?: string): void {
  const m = versionParts(version);
  if (m && !hasPacketProtocol(Number(m[1]), Number(m[2]))) {
    throw new InterpreterError(
      `${what ? `${what} is ` : ""}Espruino ${version}; Wisp needs 2v25 or newer (the console's packet protocol). Take Espruino ${TESTED_ESPRUINO} for ESP32 from ${ESPRUINO_DOWNLOAD}, or --interpreter ${TESTED_ESPRUINO}`,
      "old-interpreter",
    );
  }
}

/**
 * A file of the build, read as a file: a folder, a dangling link, an unreadable or empty file, or
 * a web page (an error page or a captive portal's, saved under the file's name) is named as such.
 */
function readBuildFile(folder: string, name: string, maxBytes: number): Uint8Array {
  const path = join(folder, name);
  const bad = (why: string) => new InterpreterError(`${path} ${why}`, "files");
  let link: string | undefined;
  try {
    if (lstatSync(path).isSymbolicLink()) link = readlinkSync(path);
  } catch {
    // missing: statSync says so below
  }
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (link !== undefined && code === "ENOENT") throw bad(`is a link to ${link}, which does not exist`);
    if (code === "ENOENT") throw bad("does not exist");
    throw bad(`cannot be read (${code ?? (err as Error).message})`);
  }
  if (st.isDirectory()) throw bad("is a folder, not a file: the build's files sit side by side in one folder");
  if (!st.isFile()) throw bad("is not a regular file");
  if (st.size === 0) throw bad("is empty (0 bytes): a download that stopped? Download Espruino's build again");
  if (st.size > maxBytes) throw bad(`is ${bytes(st.size)} bytes, more than the ${bytes(maxBytes)} it can be here`);
  let data: Uint8Array;
  try {
    data = new Uint8Array(readFileSync(path));
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw bad(`cannot be read (${code === "EACCES" ? "permission denied" : (code ?? (err as Error).message)})`);
  }
  const head = Buffer.from(data.subarray(0, 256)).toString("latin1").trimStart().toLowerCase();
  if (head.startsWith("<!doctype") || head.startsWith("<html") || head.startsWith("<?xml") || head.startsWith("<head")) {
    throw bad("is a web page (HTML), not a binary: an error page or a Wi-Fi login page was saved under its name. Download Espruino's build again");
  }
  return data;
}

/** Is `path` something (even a dangling link)? */
function present(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads and checks Espruino's files for `board` from `dir` (or from the one subfolder of `dir`
 * that has them, as in Espruino's release zip): each file as a file, each image's magic byte,
 * segments, checksum and SHA-256, the chip it is built for, that the bootloader is a bootloader
 * and the interpreter an Espruino application, that the bootloader ends before the partition
 * table, and that the partition table boots the interpreter's partition, keeps Storage clear and
 * fits the flash. Throws an InterpreterError that names the file and the fix.
 */
export function readInterpreter(dir: string, board: Board): Interpreter {
  if (dir.trim() === "") throw new InterpreterError(`an empty folder name: pass Espruino's folder or a version (${TESTED_ESPRUINO}). ${whereToGetEspruino(board)}`, "files");
  const root = resolve(dir);
  let rootStat;
  try {
    rootStat = statSync(root);
  } catch {
    throw new InterpreterError(`${dir} does not exist. ${whereToGetEspruino(board)}`, "files");
  }
  if (!rootStat.isDirectory()) throw new InterpreterError(`${dir} is not a folder. ${whereToGetEspruino(board)}`, "files");
  const names = board.interpreter.files.map((f) => f.name);
  const has = (d: string) => names.every((n) => present(join(d, n)));
  let folder = root;
  if (!has(root)) {
    let inside: string[];
    try {
      inside = readdirSync(root, { withFileTypes: true })
        .filter((e) => e.isDirectory() && has(join(root, e.name)))
        .map((e) => join(root, e.name));
    } catch (err) {
      throw new InterpreterError(`${dir} cannot be read (${(err as { code?: string }).code ?? (err as Error).message})`, "files");
    }
    if (inside.length === 1) folder = inside[0]!;
    else if (inside.length > 1) {
      throw new InterpreterError(`${dir} has Espruino's files in ${inside.length} subfolders (${inside.map((d) => basename(d)).join(", ")}): pass the one you mean, e.g. --interpreter ${join(dir, basename(inside[0]!))}`, "files");
    } else {
      const missing = names.filter((n) => !present(join(root, n)));
      throw new InterpreterError(`${dir} has no ${missing.join(", ")}. ${whereToGetEspruino(board)}`, "files");
    }
  }
  const file = (kind: Region["kind"]) => board.interpreter.files.find((f) => f.kind === kind)!;
  const tableAt = file("partition-table").address;
  const limits: Record<Region["kind"], number> = {
    // the bootloader's own check below names the partition table it would run into
    bootloader: tableAt,
    "partition-table": PARTITION_TABLE_BYTES,
    app: board.flash.chipBytes - file("app").address,
  };
  const regions: Region[] = board.interpreter.files.map((f) => ({ name: f.name, kind: f.kind, address: f.address, data: readBuildFile(folder, f.name, Math.max(limits[f.kind], 0)) }));
  const region = (kind: Region["kind"]) => regions.find((r) => r.kind === kind)!;
  const again = `Download Espruino's ${board.chip.name} build again (${ESPRUINO_DOWNLOAD})`;
  const image = (r: Region, what: string): AppImage => {
    let parsed: AppImage;
    try {
      parsed = parseAppImage(r.data);
    } catch (err) {
      if (!(err instanceof ImageError)) throw err;
      throw new InterpreterError(`${r.name} is not ${what}: ${err.message}. ${again}`, "files");
    }
    if (parsed.chipId !== board.chip.imageChipId) {
      throw new InterpreterError(`${r.name} is built for the ${imageChipName(parsed.chipId)}, not the ${board.chip.name} of board ${board.id}: take Espruino's ${board.chip.name} build (${ESPRUINO_DOWNLOAD})`, "files");
    }
    return parsed;
  };
  const segmentsAt = (img: AppImage) => img.segments.map((s) => hex(s.loadAddress)).join(", ");
  const table = region("partition-table");
  const app = region("app");
  const bootloader = region("bootloader");

  const boot = image(bootloader, `an ${board.chip.name} bootloader image`);
  if (boot.appDescription || boot.segments.some((s) => isFlashMapped(board.chip.name, s.loadAddress) === true)) {
    throw new InterpreterError(`${bootloader.name} is an application image, not a bootloader (its segments load at ${segmentsAt(boot)}): were the files renamed? ${again}`, "files");
  }
  if (bootloader.address + bootloader.data.length > table.address) {
    throw new InterpreterError(
      `${bootloader.name} is ${bytes(bootloader.data.length)} bytes: written at ${hex(bootloader.address)} it would run into the partition table at ${hex(table.address)} (at most ${bytes(table.address - bootloader.address)} bytes)`,
      "files",
    );
  }

  let partitions: Partition[];
  try {
    partitions = parsePartitionTable(table.data);
  } catch (err) {
    if (!(err instanceof ImageError)) throw err;
    throw new InterpreterError(`${table.name} is not a partition table: ${err.message}. ${again}`, "files");
  }
  const appPartition = checkPartitions(partitions, board, table, app);

  const appImage = image(app, `an ${board.chip.name} app image`);
  const first = appImage.segments[0];
  if (!appImage.appDescription || !first || isFlashMapped(board.chip.name, first.loadAddress) === false) {
    const boots = appImage.segments.every((s) => isFlashMapped(board.chip.name, s.loadAddress) === false);
    throw new InterpreterError(
      `${app.name} is not an application: ${boots ? `it is a bootloader image (its segments load at ${segmentsAt(appImage)})${app.data.length > appImage.length ? ", followed by more data: a merged image (bootloader, table and app in one file) saved under this name?" : ""}` : "it has no app description (esp_app_desc_t)"}. ${again}`,
      "files",
    );
  }
  if (app.data.length > appPartition.size) {
    throw new InterpreterError(
      `${app.name} is ${bytes(app.data.length)} bytes; its partition (${appPartition.label} at ${hex(appPartition.offset)}) holds ${bytes(appPartition.size)}`,
      "files",
    );
  }
  const version = espruinoVersion(app.data.subarray(0, appImage.length)) ?? (versionParts(appImage.appVersion ?? "") ? appImage.appVersion : undefined);
  if (version === undefined) {
    const says = [appImage.projectName, appImage.appVersion].filter((s) => s).join(" ");
    throw new InterpreterError(`${app.name} carries no Espruino version (such as 2v29)${says ? `; its app description says "${says}"` : ""}: it is not Espruino's build. ${whereToGetEspruino(board)}`, "files");
  }
  checkVersion(version, app.name);
  return { dir: folder, version, regions, appPartition, standIn: appImage.projectName === STAND_IN_PROJECT };
}

/** The partition table's checks (see the header); returns the interpreter's partition. */
function checkPartitions(partitions: Partition[], board: Board, table: Region, app: Region): Partition {
  const bad = (why: string) => new InterpreterError(`${table.name}: ${why}. Use the partition table of Espruino's own ${board.chip.name} build (${ESPRUINO_DOWNLOAD})`, "files");
  const name = (p: Partition) => `${p.label} (${partitionKind(p)}) at ${hex(p.offset)}`;
  const flashBytes = board.flash.chipBytes;
  const firstFree = table.address + TABLE_SECTOR_BYTES;
  for (const p of partitions) {
    const align = p.type === 0 ? APP_ALIGN : DATA_ALIGN;
    if (p.size === 0) throw bad(`${name(p)} has no size`);
    if (p.offset % align !== 0) throw bad(`${name(p)} is not aligned to ${hex(align)}`);
    if (p.offset < firstFree) throw bad(`${name(p)} lies over the bootloader or the partition table (partitions start at ${hex(firstFree)})`);
    if (p.offset + p.size > flashBytes) throw bad(`${name(p)} with ${bytes(p.size)} bytes ends at ${hex(p.offset + p.size)}, past the end of the board's ${flashBytes / 1048576} MB flash`);
  }
  const sorted = [...partitions].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    if (a.offset + a.size > b.offset) throw bad(`${name(a)} (${bytes(a.size)} bytes) overlaps ${name(b)}`);
  }
  const appPartition = partitions.find((p) => p.type === 0 && p.offset === app.address);
  if (!appPartition) {
    throw new InterpreterError(`${table.name} has no app partition at ${hex(app.address)}, where ${app.name} goes; it has ${partitions.map(name).join(", ")}`, "files");
  }
  const storageStart = board.flash.storageAddress;
  const storageEnd = storageStart + board.flash.storageBytes;
  const storage = `Espruino's Storage (the node's files) at ${hex(storageStart)}-${hex(storageEnd)}`;
  const overStorage = partitions.find((p) => p.type === 0 && p.offset < storageEnd && p.offset + p.size > storageStart);
  if (overStorage) throw bad(`the app partition ${name(overStorage)} (${bytes(overStorage.size)} bytes) runs over ${storage}: writing the interpreter would erase them`);
  if (!partitions.some((p) => p.type === 1 && p.offset <= storageStart && p.offset + p.size >= storageEnd)) {
    throw bad(`it has no data partition over ${storage}, so nothing keeps an app out of them`);
  }
  const otaData = partitions.find((p) => p.type === 1 && p.subtype === 0);
  if (otaData) throw bad(`it has OTA data (${name(otaData)}): the bootloader would start the app that the OTA data on the board names, which may not be ${app.name}`);
  // ESP-IDF's bootloader: the factory app, else the first OTA slot
  const apps = partitions.filter((p) => p.type === 0);
  const factory = apps.find((p) => p.subtype === 0);
  const starts = factory ?? apps.filter((p) => p.subtype >= 0x10 && p.subtype < 0x20).sort((a, b) => a.subtype - b.subtype)[0];
  if (starts !== appPartition) {
    throw bad(`the bootloader starts ${starts ? name(starts) : "no app"}, not ${name(appPartition)} where ${app.name} goes`);
  }
  return appPartition;
}

/**
 * The interpreter `spec` names: a folder (readInterpreter), or a version such as `2v29` (or
 * nothing: the version Wisp is tested with) fetched from espruino.com into the cache first
 * (espruino-download.ts). Either way every check of readInterpreter applies, and a version too
 * old for Wisp is refused before anything is downloaded.
 */
export async function findInterpreter(spec: string | undefined, board: Board, options: DownloadOptions = {}): Promise<Interpreter> {
  if (spec !== undefined && spec.trim() === "") {
    throw new InterpreterError(`the interpreter given is empty (""): pass Espruino's folder or a version such as ${TESTED_ESPRUINO}`, "files");
  }
  if (spec !== undefined && !(isEspruinoVersion(spec) && !present(spec))) return readInterpreter(spec, board);
  const version = spec ?? TESTED_ESPRUINO;
  checkVersion(version);
  let dir: string;
  try {
    dir = await downloadEspruino(version, board, { ...options, check: (d) => readInterpreter(d, board) });
  } catch (err) {
    if (!(err instanceof DownloadError)) throw err;
    throw new InterpreterError(`${err.message} ${whereToGetEspruino(board, version)}`, "download");
  }
  return readInterpreter(dir, board);
}

/** `espruino_esp32.bin at 0x10000 (1,523,456 bytes)` lines for a summary. */
export function describeRegions(interpreter: Interpreter): string {
  return interpreter.regions.map((r) => `${r.name} at ${hex(r.address)} (${bytes(r.data.length)} bytes)`).join(", ") + ` from ${basename(interpreter.dir)}`;
}
