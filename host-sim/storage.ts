// Espruino's `require("Storage")` for a simulated node: a flash file system kept in memory per
// node, optionally mirrored to a directory so it survives the simulator process.
//
// Semantics follow Espruino's source (src/jsflash.c jsfWriteFile/_jsfCreateFile/jsfGetStorageStats,
// src/jswrap_storage.c; 2v29):
// - Names are at most 28 chars; longer names are silently cut (jsfNameFromVar).
// - write(name, data, offset, size): offset 0 (or omitted) creates the file, `size` bytes long
//   (default: the data's length), unless a file of that size whose bytes there are still erased
//   already exists; writing exactly the bytes already stored is a no-op. A non-zero offset writes
//   inside an existing file, only over erased bytes (0xFF): else "File already written with
//   different data"; past its end: "Too much data for file size". Unwritten bytes read as 0xFF.
// - An object (not an array) is written as JSON and always recreates the file; arrays and typed
//   arrays are written as bytes.
// - Flash is a log: each file takes its size rounded up to 4 bytes (JSF_ALIGNMENT) plus a 32-byte
//   header. Erased or replaced files stay as trash until a compaction, which happens by itself
//   when a new file does not fit otherwise (and only if it would then fit). getFree() counts the
//   space after the last file, so trash is not free.
// - A file carries flags: a StorageFile's chunks are flagged JSFF_STORAGEFILE, and writing a file
//   of the same name with other flags at offset 0 replaces it.
//
// StorageFile (`require("Storage").open(name, mode)`, src/jswrap_storage.c, 2v29), measured on the
// 32-bit Linux build (test/unit/sim-storage.test.ts replays what it printed):
// - The file is stored in chunks: files named name + String.fromCharCode(chunk), chunk 1 to 255,
//   each STORAGEFILE_CHUNKSIZE = min(page, 4096) - 32 bytes (4,064 on an ESP32), created whole
//   (erased) when the first byte goes into it. The name is cut to 28 chars and the chunk number
//   takes the place after its last char, so at most 27 of them survive.
// - The end of the data is the first 0xFF byte: open(name, "a") finds the first chunk whose last
//   byte is still erased and the first 0xFF in it. write(data) appends there, filling the chunk and
//   creating the next for the rest; data longer than a chunk fails with "Too much data for file
//   size" after the first part went into the old chunk. A failed chunk creation ("Unable to find or
//   create file", Storage full) leaves the object in mode 0: every later write fails with "Can't
//   write in this mode" (the caller must open the file again).
// - read(len) and readLine() (up to and including "\n") go on across chunks and stop at the first
//   0xFF; at the very end they give undefined. Writing needs mode "a" or "w", reading mode "r",
//   else "Can't write in this mode" / "Can't read in this mode". "w" erases every chunk first.
// - Storage.list() shows a StorageFile as its first chunk (name + "\x01"); list(re, {sf:true})
//   only StorageFiles, by their name; {sf:false} only other files.

import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { iterateBytes } from "./runtime/bytes.ts";
import type { Runtime } from "./runtime.ts";

export const MAX_FILENAME = 28;
const HEADER_BYTES = 32;
const ALIGNMENT = 4;
/** JSFF_STORAGEFILE (src/jsflash.h): the file is a chunk of a StorageFile. */
export const STORAGEFILE = 64;
/** Suffix of a mirrored file whose flags say StorageFile chunk (encodeURIComponent never writes "%%"). */
const SF_SUFFIX = "%%sf";
/** ESP32 Storage: 224 pages of 4 KB (boards/esp32-devkitc.ts). */
export const ESP32_STORAGE_BYTES = 917504;

const footprint = (size: number) => Math.ceil(size / ALIGNMENT) * ALIGNMENT + HEADER_BYTES;

export interface FlashStorageOptions {
  /** Bytes of the Storage area (default: ESP32's 917504). */
  size?: number;
  /** Erase page of the flash, bytes (default 4096, the ESP32's); sets the StorageFile chunk size. */
  pageBytes?: number;
  /** Mirror every file to this directory (created when missing; existing files are loaded). */
  dir?: string;
}

/** Host-side handle on one node's flash: the simulator flashes files here and tests inspect them. */
export class FlashStorage {
  readonly size: number;
  readonly dir: string | undefined;
  /** Bytes of a StorageFile chunk (STORAGEFILE_CHUNKSIZE). */
  readonly chunkBytes: number;
  /**
   * Bytes programmed into the flash since creation: file headers and the data of every write, each
   * write rounded out to whole 4-byte words (jshFlashWriteAligned). Compaction is not counted.
   */
  bytesWritten = 0;
  /** Told when Storage compacts by itself to make room (Espruino prints "Compacting..." then). */
  onCompact: (() => void) | undefined;
  /** Bytes taken away by the host (the "storage-full" fault), as if other files filled them. */
  private reserved = 0;
  private readonly files = new Map<string, Uint8Array>();
  private readonly flags = new Map<string, number>();
  /** Bytes taken by live files and trash: the end of the log. */
  private used = 0;

  constructor(options: FlashStorageOptions = {}) {
    this.size = options.size ?? ESP32_STORAGE_BYTES;
    this.chunkBytes = Math.min(options.pageBytes ?? 4096, 4096) - HEADER_BYTES;
    this.dir = options.dir;
    if (this.dir) {
      mkdirSync(this.dir, { recursive: true });
      for (const entry of readdirSync(this.dir)) {
        const data = new Uint8Array(readFileSync(join(this.dir, entry)));
        const sf = entry.endsWith(SF_SUFFIX);
        const key = decodeURIComponent(sf ? entry.slice(0, -SF_SUFFIX.length) : entry);
        this.files.set(key, data);
        if (sf) this.flags.set(key, STORAGEFILE);
        this.used += footprint(data.length);
      }
    }
  }

  /** The file's flags (STORAGEFILE for a StorageFile chunk), or undefined when there is no such file. */
  fileFlags(name: string): number | undefined {
    const key = fileName(name);
    return this.files.has(key) ? (this.flags.get(key) ?? 0) : undefined;
  }

  /**
   * Fault "storage-full": `bytes` of the Storage taken as if by other files (all the free space and
   * trash when omitted); release() gives them back.
   */
  fill(bytes?: number): void {
    this.compact();
    this.reserved = bytes ?? this.size - this.used;
    this.used += this.reserved;
  }

  release(): void {
    this.used -= this.reserved;
    this.reserved = 0;
  }

  /** File contents as a byte string, or undefined. `offset`/`length` as Storage.read. */
  read(name: string, offset = 0, length = 0): string | undefined {
    const data = this.files.get(fileName(name));
    if (!data) return undefined;
    let off = Math.max(0, offset | 0);
    if (off > data.length) off = data.length;
    let len = length | 0;
    if (len <= 0) len = data.length;
    if (off + len > data.length) len = data.length - off;
    return Buffer.from(data.buffer, data.byteOffset + off, Math.max(0, len)).toString("latin1");
  }

  bytes(name: string): Uint8Array | undefined {
    return this.files.get(fileName(name));
  }

  list(): string[] {
    return [...this.files.keys()];
  }

  /** Write as Storage.write (jsfWriteFile); throws Error with Espruino's message where Espruino throws. */
  write(name: string, data: Uint8Array, offset = 0, size = 0, flags = 0): boolean {
    if (offset < 0 || size < 0) return false;
    const key = fileName(name);
    const fileSize = size || data.length;
    if (!fileSize) throw new Error("Can't create zero length file");
    let file = this.files.get(key);
    const sameFlags = (this.flags.get(key) ?? 0) === flags;
    if (offset === 0 && (!file || !sameFlags || file.length !== fileSize || !isErased(file, 0, fileSize))) {
      if (file && sameFlags && file.length === fileSize && data.length === fileSize && equal(file, data)) return true;
      if (file) this.remove(key); // its bytes stay in the log as trash
      file = this.create(key, fileSize, flags);
    }
    if (!file) throw new Error("Unable to find or create file");
    if (offset + data.length > file.length) throw new Error("Too much data for file size");
    if (!isErased(file, offset, data.length)) throw new Error("File already written with different data");
    this.program(key, file, data, offset);
    return true;
  }

  /**
   * Flash.write into a file's bytes (what StorageFile.write does inside a chunk): bits only go from
   * 1 to 0, nothing is checked.
   */
  writeRaw(name: string, data: Uint8Array, offset: number): void {
    const key = fileName(name);
    const file = this.files.get(key);
    if (!file) throw new Error(`no file ${JSON.stringify(key)}`);
    const bytes = new Uint8Array(data.length);
    for (let i = 0; i < data.length && offset + i < file.length; i++) bytes[i] = file[offset + i]! & data[i]!;
    this.program(key, file, bytes.subarray(0, Math.max(0, Math.min(data.length, file.length - offset))), offset);
  }

  private program(key: string, file: Uint8Array, data: Uint8Array, offset: number): void {
    file.set(data, offset);
    if (data.length) this.bytesWritten += Math.ceil((offset + data.length) / ALIGNMENT) * ALIGNMENT - Math.floor(offset / ALIGNMENT) * ALIGNMENT;
    this.persist(key, file);
  }

  erase(name: string): boolean {
    return this.remove(fileName(name));
  }

  eraseAll(): void {
    for (const key of this.list()) this.erase(key);
    this.used = this.reserved;
  }

  /** Drop the trash (Storage.compact). */
  compact(): void {
    this.used = this.reserved;
    for (const data of this.files.values()) this.used += footprint(data.length);
  }

  private remove(key: string): boolean {
    if (!this.files.delete(key)) return false;
    const sf = this.flags.get(key) === STORAGEFILE;
    this.flags.delete(key);
    // jsfEraseFileInternal zeroes the name's first word
    this.bytesWritten += ALIGNMENT;
    if (this.dir) rmSync(join(this.dir, encodeURIComponent(key) + (sf ? SF_SUFFIX : "")), { force: true });
    return true;
  }

  getFree(): number {
    return this.size - this.used;
  }

  getStats(): { totalBytes: number; freeBytes: number; fileBytes: number; fileCount: number; trashBytes: number; trashCount: number } {
    let fileBytes = this.reserved;
    for (const data of this.files.values()) fileBytes += footprint(data.length);
    const trashBytes = this.used - fileBytes;
    return {
      totalBytes: this.size,
      freeBytes: this.size - this.used,
      fileBytes,
      fileCount: this.files.size,
      trashBytes,
      trashCount: trashBytes > 0 ? 1 : 0,
    };
  }

  private create(key: string, size: number, flags: number): Uint8Array | undefined {
    const need = footprint(size);
    if (this.used + need > this.size) {
      let live = this.reserved;
      for (const data of this.files.values()) live += footprint(data.length);
      // Espruino compacts only when that makes room ("better to fail fast").
      if (live + need > this.size) return undefined;
      this.used = live;
      this.onCompact?.();
    }
    this.used += need;
    this.bytesWritten += HEADER_BYTES;
    const file = new Uint8Array(size).fill(0xff);
    this.files.set(key, file);
    if (flags) this.flags.set(key, flags);
    return file;
  }

  private persist(key: string, data: Uint8Array): void {
    if (this.dir) writeFileSync(join(this.dir, encodeURIComponent(key) + (this.flags.get(key) === STORAGEFILE ? SF_SUFFIX : "")), data);
  }
}

function fileName(name: unknown): string {
  return String(name).slice(0, MAX_FILENAME);
}

function isErased(data: Uint8Array, offset: number, length: number): boolean {
  for (let i = offset; i < offset + length && i < data.length; i++) if (data[i] !== 0xff) return false;
  return true;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isPlainObject(value: unknown): boolean {
  return typeof value === "object" && value !== null && Object.prototype.toString.call(value) === "[object Object]";
}

/** The device's bytes of a write() argument (JSV_GET_AS_CHAR_ARRAY). */
function toBytes(runtime: Runtime, data: unknown): Uint8Array {
  if (typeof data === "string") return Buffer.from(data, "latin1");
  if (data === undefined || data === null || typeof data !== "object") return Buffer.from(String(data), "latin1");
  const out: number[] = [];
  iterateBytes(data, (b) => out.push(b), runtime.realm);
  return Uint8Array.from(out);
}

/** require("Storage") for `runtime`, backed by `flash`. Also makes `flash` the runtime's module source. */
export function createStorageModule(runtime: Runtime, flash: FlashStorage): object {
  const { realm } = runtime;
  // jsfCompactInternal prints "Compacting... ", a spinner, then a new line
  flash.onCompact = () => runtime.print("Compacting... \b|");
  const fail = (err: unknown): never => {
    throw new realm.Error((err as Error).message);
  };
  const write = (name: unknown, data: unknown, offset?: unknown, size?: unknown): boolean => {
    let bytes: Uint8Array;
    let off = Number(offset) || 0;
    let sz = Number(size) || 0;
    if (isPlainObject(data)) {
      bytes = Buffer.from(runtime.global.JSON.stringify(data), "latin1");
      off = 0;
      sz = 0;
    } else {
      bytes = toBytes(runtime, data);
    }
    try {
      return flash.write(String(name), bytes, off, sz);
    } catch (err) {
      return fail(err);
    }
  };
  const readJSON = (name: unknown, noExceptions?: unknown): unknown => {
    const text = flash.read(String(name));
    if (text === undefined) return undefined;
    try {
      return runtime.global.JSON.parse(text);
    } catch (err) {
      if (noExceptions) return undefined;
      throw err;
    }
  };
  return runtime.newObject({
    open: (name: unknown, mode: unknown) => openStorageFile(runtime, flash, name, mode),
    read: (name: unknown, offset?: unknown, length?: unknown) => flash.read(String(name), Number(offset) || 0, Number(length) || 0),
    readJSON,
    readArrayBuffer: (name: unknown) => {
      const data = flash.bytes(String(name));
      if (!data) return undefined;
      return new realm.Uint8Array(data).buffer;
    },
    write,
    writeJSON: (name: unknown, data: unknown) => write(name, runtime.global.JSON.stringify(data)),
    erase: (name: unknown) => flash.erase(String(name)),
    eraseAll: () => flash.eraseAll(),
    compact: () => flash.compact(),
    list: (pattern?: unknown, filter?: unknown) => {
      // jsfListFiles filters with String.prototype.match, so a string is a regular expression too.
      // A StorageFile shows as its first chunk; {sf:true} lists only StorageFiles, by name.
      const sf = typeof filter === "object" && filter !== null ? (filter as { sf?: unknown }).sf : undefined;
      const names: string[] = [];
      for (const n of flash.list()) {
        const isSf = flash.fileFlags(n) === STORAGEFILE;
        if ((sf === true && !isSf) || (sf === false && isSf)) continue;
        if (isSf && n.charCodeAt(n.length - 1) !== 1) continue;
        names.push(isSf && sf === true ? n.slice(0, -1) : n);
      }
      return runtime.newArray(pattern === undefined || pattern === null ? names : names.filter((n) => n.match(pattern as RegExp) !== null));
    },
    getFree: () => flash.getFree(),
    getStats: () => runtime.newObject(flash.getStats()),
  });
}

const MODE_READ = 114; // "r"
const MODE_WRITE = 119; // "w"
const MODE_APPEND = 97; // "a"

interface StorageFileState {
  name: string;
  chunk: number;
  offset: number;
  mode: number;
}

/** jswrap_storage_open: a StorageFile object (its fields are visible to code, as on the device). */
function openStorageFile(runtime: Runtime, flash: FlashStorage, nameArg: unknown, modeArg: unknown): object {
  const { realm } = runtime;
  const m = String(modeArg);
  const mode = m === "r" ? MODE_READ : m === "w" ? MODE_WRITE : m === "a" ? MODE_APPEND : 0;
  if (!mode) throw new realm.Error(`Invalid mode ${JSON.stringify(modeArg)}`);
  const name = String(nameArg).slice(0, MAX_FILENAME);
  const f = runtime.newObject({ name, chunk: 1, offset: 0, mode }) as unknown as StorageFileState & Record<string, unknown>;
  const chunkName = (chunk: number) => name.replace(/\0+$/, "").slice(0, MAX_FILENAME - 1) + String.fromCharCode(chunk);
  let chunk = 1,
    offset = 0;
  if (mode === MODE_WRITE && flash.bytes(chunkName(1))) eraseChunks(flash, chunkName);
  if (mode === MODE_APPEND) {
    let data = flash.bytes(chunkName(chunk));
    while (data && data[data.length - 1] !== 0xff && chunk < 255) data = flash.bytes(chunkName(++chunk));
    if (data) {
      const end = data.indexOf(0xff);
      offset = end < 0 ? data.length : end;
    }
  }
  f.chunk = chunk;
  f.offset = offset;
  f.mode = mode;
  const fail = (message: string): never => {
    throw new realm.Error(message);
  };
  const write = (value: unknown): void => {
    if (f.mode !== MODE_WRITE && f.mode !== MODE_APPEND) fail("Can't write in this mode");
    const data = toBytes(runtime, typeof value === "string" ? value : String(value));
    if (data.length === 0) return;
    const fname = chunkName(f.chunk);
    const file = flash.bytes(fname);
    if (!file) {
      try {
        flash.write(fname, data, 0, flash.chunkBytes, STORAGEFILE);
        f.offset = data.length;
      } catch (err) {
        f.mode = 0;
        fail((err as Error).message);
      }
      return;
    }
    const remaining = file.length - f.offset;
    if (data.length < remaining) {
      flash.writeRaw(fname, data, f.offset);
      f.offset += data.length;
      return;
    }
    flash.writeRaw(fname, data.subarray(0, remaining), f.offset);
    f.offset += remaining;
    if (f.chunk === 255) fail("File too big!");
    const next = f.chunk + 1;
    try {
      flash.write(chunkName(next), data.subarray(remaining), 0, flash.chunkBytes, STORAGEFILE);
      f.chunk = next;
      f.offset = data.length - remaining;
    } catch (err) {
      f.mode = 0;
      fail((err as Error).message);
    }
  };
  // jswrap_storagefile_read_internal: `len` bytes, or (len < 0) a line up to and including "\n"
  const read = (len: number): string | undefined => {
    if (f.mode !== MODE_READ) fail("Can't read in this mode");
    let line = len < 0;
    let file = flash.bytes(chunkName(f.chunk));
    if (!file) return undefined;
    let result: string | undefined;
    let want = line ? Infinity : len;
    while (want > 0) {
      if (file!.length - f.offset <= 0) {
        f.offset = 0;
        if (f.chunk === 255) file = undefined;
        else file = flash.bytes(chunkName(++f.chunk));
        if (!file) return result;
      }
      let end = Math.min(file.length, f.offset + want);
      let stop = false;
      for (let i = f.offset; i < end; i++) {
        if (file[i] === 0xff) {
          end = i;
          stop = true;
          break;
        }
        if (line && file[i] === 10) {
          end = i + 1;
          stop = true;
          break;
        }
      }
      if (end === f.offset) break;
      result = (result ?? "") + Buffer.from(file.subarray(f.offset, end)).toString("latin1");
      want -= end - f.offset;
      f.offset = end;
      if (stop) break;
    }
    return result;
  };
  const getLength = (): number => {
    let chunk = 1,
      length = 0;
    let file = flash.bytes(chunkName(chunk));
    while (file && file[file.length - 1] !== 0xff && chunk < 255) {
      length += file.length;
      file = flash.bytes(chunkName(++chunk));
    }
    if (file) {
      const end = file.indexOf(0xff);
      length += end < 0 ? file.length : end;
    }
    return length;
  };
  Object.assign(f, {
    write,
    read: (len: unknown) => read(Math.max(0, Number(len) | 0)),
    readLine: () => read(-1),
    getLength,
    erase: () => {
      eraseChunks(flash, chunkName);
      f.chunk = 1;
      f.offset = 0;
      f.mode = 0;
    },
  });
  return f;
}

function eraseChunks(flash: FlashStorage, chunkName: (chunk: number) => string): void {
  for (let chunk = 1; flash.erase(chunkName(chunk)); chunk++);
}

/** Runtime plugin: require("Storage") and Storage-backed require(name) both read `flash`. */
export function storagePlugin(flash: FlashStorage): (runtime: Runtime) => void {
  return (runtime) => {
    runtime.storage = flash;
    runtime.defineModule("Storage", (rt) => createStorageModule(rt, flash));
  };
}
