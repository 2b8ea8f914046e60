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

import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { iterateBytes } from "./runtime/bytes.ts";
import type { Runtime } from "./runtime.ts";

export const MAX_FILENAME = 28;
const HEADER_BYTES = 32;
const ALIGNMENT = 4;
/** ESP32 Storage: 224 pages of 4 KB (boards/esp32-devkitc.ts). */
export const ESP32_STORAGE_BYTES = 917504;

const footprint = (size: number) => Math.ceil(size / ALIGNMENT) * ALIGNMENT + HEADER_BYTES;

export interface FlashStorageOptions {
  /** Bytes of the Storage area (default: ESP32's 917504). */
  size?: number;
  /** Mirror every file to this directory (created when missing; existing files are loaded). */
  dir?: string;
}

/** Host-side handle on one node's flash: the simulator flashes files here and tests inspect them. */
export class FlashStorage {
  readonly size: number;
  readonly dir: string | undefined;
  private readonly files = new Map<string, Uint8Array>();
  /** Bytes taken by live files and trash: the end of the log. */
  private used = 0;

  constructor(options: FlashStorageOptions = {}) {
    this.size = options.size ?? ESP32_STORAGE_BYTES;
    this.dir = options.dir;
    if (this.dir) {
      mkdirSync(this.dir, { recursive: true });
      for (const entry of readdirSync(this.dir)) {
        const data = new Uint8Array(readFileSync(join(this.dir, entry)));
        this.files.set(decodeURIComponent(entry), data);
        this.used += footprint(data.length);
      }
    }
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

  /** Write as Storage.write; throws Error with Espruino's message where Espruino throws. */
  write(name: string, data: Uint8Array, offset = 0, size = 0): boolean {
    if (offset < 0 || size < 0) return false;
    const key = fileName(name);
    const fileSize = size || data.length;
    if (!fileSize) throw new Error("Can't create zero length file");
    let file = this.files.get(key);
    if (offset === 0 && (!file || file.length !== fileSize || !isErased(file, 0, fileSize))) {
      if (file && file.length === fileSize && data.length === fileSize && equal(file, data)) return true;
      if (file) this.files.delete(key); // its bytes stay in the log as trash
      file = this.create(key, fileSize);
    }
    if (!file) throw new Error("Unable to find or create file");
    if (offset + data.length > file.length) throw new Error("Too much data for file size");
    if (!isErased(file, offset, data.length)) throw new Error("File already written with different data");
    file.set(data, offset);
    this.persist(key, file);
    return true;
  }

  erase(name: string): void {
    const key = fileName(name);
    if (!this.files.delete(key)) return;
    if (this.dir) rmSync(join(this.dir, encodeURIComponent(key)), { force: true });
  }

  eraseAll(): void {
    for (const key of this.list()) this.erase(key);
    this.used = 0;
  }

  /** Drop the trash (Storage.compact). */
  compact(): void {
    this.used = 0;
    for (const data of this.files.values()) this.used += footprint(data.length);
  }

  getFree(): number {
    return this.size - this.used;
  }

  getStats(): { totalBytes: number; freeBytes: number; fileBytes: number; fileCount: number; trashBytes: number; trashCount: number } {
    let fileBytes = 0;
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

  private create(key: string, size: number): Uint8Array | undefined {
    const need = footprint(size);
    if (this.used + need > this.size) {
      let live = 0;
      for (const data of this.files.values()) live += footprint(data.length);
      // Espruino compacts only when that makes room ("better to fail fast").
      if (live + need > this.size) return undefined;
      this.used = live;
    }
    this.used += need;
    const file = new Uint8Array(size).fill(0xff);
    this.files.set(key, file);
    return file;
  }

  private persist(key: string, data: Uint8Array): void {
    if (this.dir) writeFileSync(join(this.dir, encodeURIComponent(key)), data);
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
    list: (pattern?: unknown) => {
      // jsfListFiles filters with String.prototype.match, so a string is a regular expression too.
      const names = flash.list();
      return runtime.newArray(pattern === undefined ? names : names.filter((n) => n.match(pattern as RegExp) !== null));
    },
    getFree: () => flash.getFree(),
    getStats: () => runtime.newObject(flash.getStats()),
  });
}

/** Runtime plugin: require("Storage") and Storage-backed require(name) both read `flash`. */
export function storagePlugin(flash: FlashStorage): (runtime: Runtime) => void {
  return (runtime) => {
    runtime.storage = flash;
    runtime.defineModule("Storage", (rt) => createStorageModule(rt, flash));
  };
}
