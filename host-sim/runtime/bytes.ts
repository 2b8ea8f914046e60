// Byte helpers of Espruino's `E` object, following its C source (2v29):
// - E.toString / E.toUint8Array walk their arguments with jsvIterateCallback (src/jsvariterator.c):
//   numbers and booleans give one byte (low 8 bits), strings one byte per char, typed arrays and
//   ArrayBuffers one byte per element, arrays recurse, `{data, count}` repeats, `{callback}` calls;
//   anything else is a TypeError.
// - E.CRC32 (src/jswrap_espruino.c) is the reflected CRC-32 (poly 0xEDB88320, init and final
//   xor 0xFFFFFFFF) over each element's integer value cast to uint8, returned unsigned.
//   A non-iterable argument returns undefined.

export interface ByteRealm {
  Uint8Array: Uint8ArrayConstructor;
  TypeError: TypeErrorConstructor;
}

function byteOf(value: unknown): number {
  const n = Number(value);
  return Number.isFinite(n) ? Math.trunc(n) & 0xff : 0;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value) &&
    Object.prototype.toString.call(value) === "[object Object]";
}

function isArrayBuffer(value: unknown): value is ArrayBuffer {
  return Object.prototype.toString.call(value) === "[object ArrayBuffer]";
}

function describe(value: unknown): string {
  if (value === null) return "null";
  return typeof value;
}

/** jsvIterateCallback: feed every byte the arguments describe to `out`. */
export function iterateBytes(data: unknown, out: (byte: number) => void, realm: ByteRealm): void {
  if (typeof data === "number" || typeof data === "boolean") {
    out(byteOf(data));
  } else if (typeof data === "string") {
    for (let i = 0; i < data.length; i++) out(data.charCodeAt(i) & 0xff);
  } else if (isArrayBuffer(data)) {
    for (const b of new Uint8Array(data)) out(b);
  } else if (ArrayBuffer.isView(data)) {
    const view = data as unknown as ArrayLike<number>;
    if (typeof view.length !== "number") {
      // DataView: its bytes
      const dv = data as DataView;
      for (let i = 0; i < dv.byteLength; i++) out(dv.getUint8(i));
    } else {
      for (let i = 0; i < view.length; i++) out(byteOf(view[i]));
    }
  } else if (Array.isArray(data)) {
    for (let i = 0; i < data.length; i++) iterateBytes(data[i], out, realm);
  } else if (isPlainObject(data)) {
    if (typeof data.callback === "function") {
      const result = (data.callback as () => unknown)();
      if (result !== undefined) iterateBytes(result, out, realm);
      return;
    }
    if (data.count !== undefined && data.data !== undefined && typeof data.count === "number") {
      for (let n = Math.trunc(data.count); n > 0; n--) iterateBytes(data.data, out, realm);
      return;
    }
    throw new realm.TypeError(
      "If specifying an object, it must be of the form {data : ..., count : N} or {callback : fn} - got " +
        safeJson(data),
    );
  } else {
    throw new realm.TypeError("Expecting Number or iterable, got " + describe(data));
  }
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

function collect(args: unknown[], realm: ByteRealm): number[] {
  const bytes: number[] = [];
  for (const arg of args) iterateBytes(arg, (b) => bytes.push(b), realm);
  return bytes;
}

/** E.toString(...args): a string whose chars are the bytes. */
export function bytesToString(args: unknown[], realm: ByteRealm): string {
  const bytes = collect(args, realm);
  let s = "";
  // chunked so huge payloads don't exceed the argument limit of fromCharCode.apply
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode.apply(null, bytes.slice(i, i + 8192));
  return s;
}

/** E.toUint8Array(...args), allocated in the device's realm. */
export function bytesToUint8Array(args: unknown[], realm: ByteRealm): Uint8Array {
  const bytes = collect(args, realm);
  const arr = new realm.Uint8Array(bytes.length);
  arr.set(bytes);
  return arr;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** E.CRC32(data): iterates elements (not recursively), each cast to uint8. */
export function crc32(data: unknown): number | undefined {
  let values: ArrayLike<unknown>;
  if (typeof data === "string") {
    values = Array.prototype.map.call(data, (ch: string) => ch.charCodeAt(0)) as number[];
  } else if (isArrayBuffer(data)) {
    values = new Uint8Array(data);
  } else if (Array.isArray(data) || (ArrayBuffer.isView(data) && "length" in data)) {
    values = data as ArrayLike<unknown>;
  } else if (typeof data === "object" && data !== null) {
    values = Object.values(data);
  } else if (typeof data === "function") {
    values = [];
  } else {
    return undefined;
  }
  let crc = 0xffffffff;
  for (let i = 0; i < values.length; i++) crc = CRC_TABLE[(crc ^ byteOf(values[i])) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** Latin-1 string (chars are bytes; chars above 255 keep their low byte, as Espruino's 8-bit strings do). */
export function stringToBuffer(s: string): Buffer {
  const buf = Buffer.allocUnsafe(s.length);
  for (let i = 0; i < s.length; i++) buf[i] = s.charCodeAt(i) & 0xff;
  return buf;
}

export function bufferToString(buf: Uint8Array): string {
  return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString("latin1");
}
