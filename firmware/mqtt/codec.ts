// MQTT 3.1.1 packet codec (OASIS standard, 29 October 2014). Pure: bytes in, packet objects out and back.
//
// Packets travel as strings whose chars are bytes, the way Espruino sockets deliver them. Text fields
// (topics, client id, user name) are UTF-8 on the wire [MQTT-1.5.3]; the codec encodes and decodes that
// itself because the ESP32 build of Espruino has no Unicode support.
//
// The client bundles only what a client needs: the encoders of client-to-server packets and the decoder
// of server-to-client packets. The other direction lives in codec-server.ts, for tests and host tools;
// the bundler leaves it out of the device build.

export const enum PacketType {
  CONNECT = 1,
  CONNACK,
  PUBLISH,
  PUBACK,
  PUBREC,
  PUBREL,
  PUBCOMP,
  SUBSCRIBE,
  SUBACK,
  UNSUBSCRIBE,
  UNSUBACK,
  PINGREQ,
  PINGRESP,
  DISCONNECT,
}

export interface Will {
  topic: string;
  payload: string;
  qos?: number;
  retain?: boolean;
}

export interface ConnectOptions {
  clientId: string;
  /** seconds */
  keepalive: number;
  /** true unless false */
  clean?: boolean;
  username?: string;
  password?: string;
  will?: Will;
}

/** What the decoders return. Fields beyond `type` depend on the packet type. */
export interface Packet {
  type: number;
  messageId?: number;
  // CONNACK
  sessionPresent?: boolean;
  returnCode?: number;
  // PUBLISH
  topic?: string;
  payload?: string;
  qos?: number;
  dup?: boolean;
  retain?: boolean;
  // SUBACK
  granted?: number[];
  /** a PUBLISH over maxPacket: why it is not delivered; `payload` is only its start (see nextPacket) */
  over_?: string;
  // server-bound packets: see codec-server.ts
  [field: string]: any;
}

export const chr = String.fromCharCode;

/** Thrown for every protocol violation found while decoding; the client closes the connection on it. */
export function fail(reason: string): never {
  throw Error("malformed packet: " + reason);
}

/**
 * Text to UTF-8 bytes. encodeURIComponent does the work: on a host it encodes Unicode, and on an
 * ESP32, whose strings already hold the UTF-8 bytes of the source text, it gives them back unchanged.
 */
export function utf8Encode(s: string): string {
  // `\w`, not `.`: V8's `.` does not match line terminators and Espruino's does (docs/espruino-notes.md)
  return encodeURIComponent(s).replace(/%\w\w/g, percentToByte);
}

// A top-level function, not a literal in the call: Espruino copies a function literal's source into
// RAM each time the enclosing code runs.
function percentToByte(hex: string): string {
  return chr(+("0x" + hex.substr(1)));
}

/**
 * UTF-8 bytes to text, strictly: no overlong forms, surrogates or code points past U+10FFFF
 * [MQTT-1.5.3-1], no U+0000 [MQTT-1.5.3-2]. Checked here because Espruino's decodeURIComponent
 * does not check; then decodeURIComponent decodes, as utf8Encode encodes.
 */
export function utf8Decode(s: string): string {
  let escaped = "";
  for (let i = 0; i < s.length; ) {
    let c = s.charCodeAt(i);
    // continuation bytes after this lead byte (9: not a lead byte), and the least code point they may encode
    const n = c < 0x80 ? 0 : c < 0xc2 ? 9 : c < 0xe0 ? 1 : c < 0xf0 ? 2 : c < 0xf5 ? 3 : 9,
      min = [0, 0x80, 0x800, 0x10000][n];
    c &= 0x7f >> n;
    for (let k = 0; k <= n; k++) {
      const b = s.charCodeAt(i++); // NaN past the end: not a continuation byte
      escaped += "%" + (b + 256).toString(16).substr(1);
      if (k) c = (b & 0xc0) == 0x80 ? (c << 6) | (b & 63) : -1;
    }
    // c >> 11 == 27: a surrogate, U+D800 to U+DFFF
    if (!(c >= min) || !c || c > 0x10ffff || c >> 11 == 27) fail("bad UTF-8");
  }
  return decodeURIComponent(escaped);
}

export function u16(n: number): string {
  return chr(n >> 8, n & 255);
}

/** A length-prefixed UTF-8 string [MQTT-1.5.3]. */
export function str(s: string): string {
  s = utf8Encode(s);
  return u16(s.length) + s;
}

/** Fixed header: type and flags, then the remaining length in 1 to 4 bytes of 7 bits [MQTT-2.2.3]. */
export function frame(header: number, rest: string): string {
  let n = rest.length,
    out = chr(header);
  for (; n > 127; n >>= 7) out += chr((n & 127) | 128);
  return out + chr(n) + rest;
}

export function encodeConnect(o: ConnectOptions): string {
  const w = o.will,
    user = o.username,
    pass = o.password;
  let flags = o.clean != false ? 2 : 0,
    tail = "";
  if (w) {
    flags |= 4 | ((w.qos || 0) << 3) | (w.retain ? 32 : 0);
    tail += str(w.topic) + u16(w.payload.length) + w.payload;
  }
  // [MQTT-3.1.2-22] a password only with a user name
  if (user != null) {
    flags |= 128;
    tail += str(user);
    if (pass != null) {
      flags |= 64;
      tail += str(pass);
    }
  }
  // protocol name "MQTT" and level 4 [MQTT-3.1.2-1], [MQTT-3.1.2-2]
  return frame(0x10, "\0\x04MQTT\x04" + chr(flags) + u16(o.keepalive) + str(o.clientId) + tail);
}

export function encodePublish(topic: string, payload: string, qos: number, retain: any, dup: any, id: number): string {
  return frame(0x30 | (dup ? 8 : 0) | (qos << 1) | (retain ? 1 : 0), str(topic) + (qos ? u16(id) : "") + payload);
}

/**
 * SUBSCRIBE when `qos` is given: the requested QoS of every topic, or of each in turn (Espruino
 * throws on indexing a number, hence typeof). UNSUBSCRIBE without it.
 */
export function encodeSubscribe(topics: string[], qos: number | number[] | undefined, id: number): string {
  let rest = u16(id);
  for (let i = 0; i < topics.length; i++) rest += str(topics[i]) + (qos == null ? "" : chr(typeof qos == "number" ? qos : qos[i]));
  return frame(qos == null ? 0xa2 : 0x82, rest); // [MQTT-3.8.1-1], [MQTT-3.10.1-1] flags 0010
}

/** PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: a packet id and nothing else. */
export function encodeAck(type: number, id: number): string {
  return frame((type << 4) | (type == PacketType.PUBREL ? 2 : 0), u16(id)); // [MQTT-3.6.1-1]
}

export const PINGREQ = "\xc0\0";
export const PINGRESP = "\xd0\0";
export const DISCONNECT = "\xe0\0";

// The body being decoded and the read position. Module state rather than a reader object: that would
// be allocated per packet, and every read would pay for `this.` in the function source Espruino keeps.
let body = "",
  at = 0;

/** Starts reading a packet body. Each read checks the bytes are there, so a short packet is malformed. */
export function readFrom(b: string): void {
  body = b;
  at = 0;
}

export function readU8(): number {
  return at < body.length ? body.charCodeAt(at++) : fail("too short");
}

export function readU16(): number {
  return (readU8() << 8) | readU8();
}

/** [MQTT-2.3.1-1] a packet id is never 0 */
export function readId(): number {
  return ((readU8() << 8) | readU8()) || fail("packet id 0");
}

/** A length-prefixed byte string; utf8Decode() it for text. */
export function readBin(): string {
  const n = (readU8() << 8) | readU8();
  if ((at += n) > body.length) fail("too short");
  return body.substr(at - n, n);
}

export function readText(): string {
  return utf8Decode(readBin());
}

export function moreToRead(): boolean {
  return at < body.length;
}

/** Decodes the packets a server sends a client; any other type is a protocol violation. */
export function decodeClientBound(header: number, b: string): Packet {
  const type = header >> 4,
    flags = header & 15,
    p: Packet = { type };
  let c;
  body = b;
  at = 0;
  // [MQTT-2.2.2-1], [MQTT-2.2.2-2]: reserved flag bits; PUBREL has 0010, PUBLISH its own
  if (type != PacketType.PUBLISH && flags != (type == PacketType.PUBREL ? 2 : 0)) fail("reserved flag bits set");
  if (type == PacketType.CONNACK) {
    p.sessionPresent = (c = readU8()) == 1;
    // [MQTT-3.2.2-1] bits 7-1 reserved; [MQTT-3.2.2-4] no session with a refusal; return codes 0-5
    if (c > 1 || (p.returnCode = readU8()) > 5 || (c && p.returnCode)) fail("bad CONNACK");
  } else if (type == PacketType.PUBLISH) {
    c = p.qos = (flags >> 1) & 3;
    // [MQTT-3.3.1-4] QoS 3 is malformed; [MQTT-3.3.1-2] DUP only with QoS > 0;
    // [MQTT-3.3.2-2] no wildcards in a topic name, [MQTT-4.7.3-1] at least one char
    p.topic = utf8Decode(readBin());
    if (c > 2 || (!c && flags & 8) || !p.topic || /[+#]/.test(p.topic)) fail("bad PUBLISH");
    if (c) p.messageId = readId();
    p.payload = body.substr(at);
    at = body.length;
    p.dup = flags > 7;
    p.retain = !!(flags & 1);
  } else if ((0xaf0 >> type) & 1) {
    // bits 4-7, 9, 11: PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK start with a packet id
    p.messageId = readId();
    if (type == PacketType.SUBACK) {
      const g: number[] = (p.granted = []);
      do if ((c = readU8()) > 2 && c != 128) fail("bad SUBACK"); // [MQTT-3.9.3-2]
      while (g.push(c) && at < body.length);
    }
  } else if (type != PacketType.PINGRESP) fail("unexpected packet type " + type);
  if (at < body.length) fail("wrong remaining length");
  return p;
}

/** The bytes received and not yet decoded, and how many bytes of a PUBLISH too big to take are still to come. */
export interface Stream {
  buf_: string;
  skip_: number;
}

/**
 * Streaming decoding: appends a socket read (if any) to `stream` and returns the next whole packet,
 * or undefined until more bytes come. Packets may be split at any byte and several may come in one
 * read. Throws on a malformed packet; the connection must be closed then, since the stream cannot be
 * resynchronised. `max` is the largest packet taken, fixed header included (the client's maxPacket).
 * A PUBLISH over `max` is not malformed, and it is not buffered whole: it is decoded from its first
 * `max` bytes (topic, packet id, the start of the payload) with `over_` saying why it cannot be
 * delivered, and the rest of its bytes are discarded as they arrive.
 */
export function nextPacket(stream: Stream, max: number, decode: (header: number, body: string) => Packet, data?: string): Packet | undefined {
  let b = (stream.buf_ += data || ""),
    len = stream.skip_,
    mul = 1,
    i = 1,
    c,
    p;
  if (len) {
    stream.skip_ -= len = Math.min(len, b.length);
    b = stream.buf_ = b.substr(len);
    len = 0;
  }
  do {
    if (i > 4) fail("remaining length over 4 bytes"); // [MQTT-2.2.3]
    if (i >= b.length) return;
    c = b.charCodeAt(i++);
    len += (c & 127) * mul;
    mul *= 128;
  } while (c & 128);
  c = b.charCodeAt(0);
  // mul: the size of a packet over max, 0 for one that fits
  if ((mul = (len += i) > max ? len : 0)) {
    if (c >> 4 != PacketType.PUBLISH) fail("packet of " + len + " bytes is over maxPacket " + max);
    len = max;
  }
  if (b.length < len) return;
  stream.buf_ = b.substr(len);
  p = decode(c, b.substr(i, len - i));
  if (mul) {
    stream.skip_ = mul - max;
    p.over_ = p.topic + ": message of " + mul + " bytes is over maxPacket " + max;
  }
  return p;
}

/** A decoder as one function: `next(data)` then `next()` until undefined. For hosts and tests. */
export function decoder(max: number, decode: (header: number, body: string) => Packet): (data?: string) => Packet | undefined {
  const stream = { buf_: "", skip_: 0 };
  return function (data) {
    return nextPacket(stream, max, decode, data);
  };
}
