// The Espruino console's packet protocol (2v25+, README_Protocol.md of espruino/Espruino and
// src/jsinteractive.c jsiPacket*), host side, as pure functions over bytes: framing packets whose
// header bytes are never control characters, splitting a file into such packets, and taking the
// board's output apart into text, ACK/NAK, flow control and reply packets.
//
// Why header bytes matter (measured on 2v29): the console checks every received byte for 0x03
// (Ctrl-C) before the packet parser sees it, so a packet whose length byte is 3 (a 3- or 259-byte
// packet) triggers Ctrl-C handling; the Linux build exits on 0x04 and on a second Ctrl-C; a UART
// may take 0x11/0x13 as flow control. So no header byte and no payload byte sent is one of them.

export const DLE = 0x10;
export const SOH = 0x01;
export const ACK = 0x06;
export const NAK = 0x15;
export const XON = 0x11;
export const XOFF = 0x13;
export const CTRL_C = 0x03;
/** Ctrl-E on an empty line: the board prints `Espruino <version> <board>` (2v25+). */
export const ENQ = 0x05;

export const PacketType = {
  RESPONSE: 0x0000,
  EVAL: 0x2000,
  EVENT: 0x4000,
  FILE_SEND: 0x6000,
  DATA: 0x8000,
  FILE_RECV: 0xa000,
} as const;
export type PacketTypeValue = (typeof PacketType)[keyof typeof PacketType];

const TYPE_MASK = 0xe000;
const LENGTH_MASK = 0x1fff;
/** Largest DATA payload sent: fits the ESP32's 1,024-byte receive buffer with its header. */
export const MAX_DATA = 1019;
/** Shortest packet payload whose length byte can be a printable character. */
const MIN_SAFE = 0x20;

/** Bytes a payload must not contain: Ctrl-C, Ctrl-D, XON, XOFF. */
export function unsafeByte(b: number): boolean {
  return b === CTRL_C || b === 0x04 || b === XON || b === XOFF;
}

/** A header byte is safe when it is not a C0 control character or DEL. */
function safeHeaderByte(b: number): boolean {
  return b >= 0x20 && b !== 0x7f;
}

/** Whether a packet of `type` with `length` bytes of data has two safe header bytes. */
export function safeLength(type: number, length: number): boolean {
  const header = type | length;
  return length <= LENGTH_MASK && safeHeaderByte(header >> 8) && safeHeaderByte(header & 0xff);
}

/** DLE SOH, the 16-bit header, the data. Throws when a header byte would be a control character. */
export function packet(type: PacketTypeValue, data: Uint8Array | string): Uint8Array {
  const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
  if (!safeLength(type, bytes.length)) throw new RangeError(`a ${bytes.length}-byte packet would have a control character in its header`);
  const header = type | bytes.length;
  const out = new Uint8Array(4 + bytes.length);
  out.set([DLE, SOH, header >> 8, header & 0xff]);
  out.set(bytes, 4);
  return out;
}

/**
 * Text padded with trailing spaces to the shortest length whose header is safe for `type` (an
 * EVAL expression or a FILE_SEND header: spaces do not change what they mean).
 */
export function padToSafe(type: PacketTypeValue, text: string): string {
  if (text.length > LENGTH_MASK) throw new RangeError(`a packet carries at most ${LENGTH_MASK} bytes, not ${text.length}`);
  let out = text;
  while (!safeLength(type, out.length)) out += " ";
  return out;
}

/**
 * Sizes of the DATA packets that carry `total` bytes: each at most `max`, each with safe header
 * bytes. A file shorter than 32 bytes cannot be sent this way (its length byte would be a control
 * character); returns undefined then.
 */
export function planChunks(total: number, max = MAX_DATA): number[] | undefined {
  const ok = (n: number) => safeLength(PacketType.DATA, n);
  const sizes: number[] = [];
  let left = total;
  while (left > 0) {
    if (left <= max && ok(left)) {
      sizes.push(left);
      break;
    }
    if (left < MIN_SAFE) return undefined;
    // the largest safe size that leaves nothing, or at least MIN_SAFE bytes for what follows
    let n = Math.min(max, left - MIN_SAFE);
    while (n >= MIN_SAFE && !ok(n)) n--;
    if (n < MIN_SAFE) return undefined;
    sizes.push(n);
    left -= n;
  }
  return sizes;
}

/** What the board sent, taken apart. */
export type ConsoleEvent =
  | { kind: "text"; text: string }
  | { kind: "ack" }
  | { kind: "nak" }
  | { kind: "xoff" }
  | { kind: "xon" }
  | { kind: "packet"; type: number; data: string };

/**
 * Splits the board's output into events. Reply packets (DLE SOH, header, data) are gathered whole,
 * however the bytes arrive; ACK and NAK are events of their own outside packets; everything else is
 * console text. The board sends XON/XOFF ahead of anything queued, so they can fall anywhere: they
 * are taken out of text and of RESPONSE data (E.toJS escapes control bytes, so a raw one there is
 * flow control), but a header byte is a header byte (a 17- or 19-byte reply) and DATA (a file's
 * bytes, FILE_RECV) is data.
 */
export class ConsoleReader {
  private state: "text" | "dle" | "h0" | "h1" | "data" = "text";
  private header = 0;
  private data: number[] = [];
  private text: number[] = [];

  constructor(private readonly emit: (event: ConsoleEvent) => void) {}

  push(bytes: Uint8Array): void {
    for (const b of bytes) {
      const flowControlHere = this.state === "text" || this.state === "dle" || (this.state === "data" && (this.header & TYPE_MASK) === PacketType.RESPONSE);
      if (b === XOFF && flowControlHere) {
        this.flushText();
        this.emit({ kind: "xoff" });
        continue;
      }
      if (b === XON && flowControlHere) {
        this.flushText();
        this.emit({ kind: "xon" });
        continue;
      }
      switch (this.state) {
        case "dle":
          if (b === SOH) {
            this.flushText();
            this.state = "h0";
          } else {
            this.state = "text";
            this.text.push(DLE);
            this.textByte(b);
          }
          break;
        case "h0":
          this.header = b << 8;
          this.state = "h1";
          break;
        case "h1":
          this.header |= b;
          this.data = [];
          if ((this.header & LENGTH_MASK) === 0) this.finishPacket();
          else this.state = "data";
          break;
        case "data":
          this.data.push(b);
          if (this.data.length >= (this.header & LENGTH_MASK)) this.finishPacket();
          break;
        default:
          this.textByte(b);
      }
    }
    if (this.state === "text") this.flushText();
  }

  private textByte(b: number): void {
    if (b === DLE) this.state = "dle";
    else if (b === ACK || b === NAK) {
      this.flushText();
      this.emit({ kind: b === ACK ? "ack" : "nak" });
    } else this.text.push(b);
  }

  private finishPacket(): void {
    this.state = "text";
    this.emit({ kind: "packet", type: this.header & TYPE_MASK, data: Buffer.from(this.data).toString("latin1") });
    this.data = [];
  }

  private flushText(): void {
    if (this.text.length === 0) return;
    this.emit({ kind: "text", text: Buffer.from(this.text).toString("latin1") });
    this.text = [];
  }
}

/**
 * The value of an E.toJS reply (a RESPONSE packet): numbers, booleans, undefined, null, and
 * strings with Espruino's escapes (`\n`, `\xNN`, `\0`…`\7`, `\uNNNN`). Other values come back as
 * their source text.
 */
export function parseResponse(text: string): unknown {
  const t = text.trim();
  if (t === "undefined") return undefined;
  if (t === "null") return null;
  if (t === "true" || t === "false") return t === "true";
  if (/^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t) || t === "NaN" || t === "Infinity" || t === "-Infinity") return Number(t);
  if (t.length >= 2 && (t[0] === '"' || t[0] === "'") && t[t.length - 1] === t[0]) {
    return t.slice(1, -1).replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|[0-7]|.)/g, (_, e: string) => {
      if (e[0] === "x" || e[0] === "u") return String.fromCharCode(parseInt(e.slice(1), 16));
      if (/^[0-7]$/.test(e)) return String.fromCharCode(Number(e));
      return ({ n: "\n", r: "\r", t: "\t", b: "\b", f: "\f", v: "\v" } as Record<string, string>)[e] ?? e;
    });
  }
  return t;
}

/** `Espruino 2v29 ESP32` (Ctrl-E), or a `2v29.12`-style cutting-edge version. */
export function parseIdentity(text: string): { version: string; major: number; minor: number; board: string } | undefined {
  const m = /Espruino (\d+)v(\d+)(?:\.\d+)? (\S+)/.exec(text);
  if (!m) return undefined;
  return { version: m[0].split(" ")[1]!, major: Number(m[1]), minor: Number(m[2]), board: m[3]! };
}

/** `2v25` or newer: the first version with the packet protocol. */
export function hasPacketProtocol(major: number, minor: number): boolean {
  return major > 2 || (major === 2 && minor >= 25);
}

/** A JavaScript string literal for `s` with every byte outside printable ASCII escaped. */
export function jsString(s: string): string {
  return '"' + s.replace(/[\\"\x00-\x1f\x7f-\xff]/g, (c) => (c === "\\" || c === '"' ? "\\" + c : "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"))) + '"';
}
