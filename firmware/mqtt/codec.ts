// MQTT 3.1.1 packet codec (OASIS standard, 29 October 2014). Pure: bytes in, packet objects out and back.
//
// Packets travel as strings whose chars are bytes, the way Espruino sockets deliver them. Text fields
// (topics, client id, user name) are UTF-8 on the wire [MQTT-1.5.3]; the codec encodes and decodes that
// itself because the ESP32 build of Espruino has no Unicode support.
//
// The client bundles only what a client needs: the encoders of client-to-server packets and the decoder
// of server-to-client packets. The other direction lives in codec-server.ts, for tests and host tools;
// the bundler leaves it out of the device build.

import "./features";

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

// The two character tests below are RegExp literals where they are used, not module constants: a RegExp
// held by the module is 18 JsVars for as long as it is loaded, one made where it is used costs about
// 3 µs (measured on Espruino 2v29, 64-bit) and only on the paths that run them: a topic seen for the
// first time, text that is not plain ASCII.
// - /[^\x01-\x7f]/: a character that is not printable ASCII nor a control character other than NUL;
//   a string it does not match is its own UTF-8 and holds no U+0000. Ranges stop below 0x80: Espruino
//   compares characters as signed bytes (docs/espruino-notes.md).
// - /[^\x20-\x22\x24-\x2a\x2c-\x7e]/: what a topic name needs a closer look for: anything but
//   printable ASCII (so also control characters, which [MQTT-1.5.3-2] says not to send, and bytes from
//   0x80 on), '#' and '+'.

/**
 * Text to UTF-8 bytes. encodeURIComponent does the work: on a host it encodes Unicode, and on an
 * ESP32, whose strings already hold the UTF-8 bytes of the source text, it gives them back unchanged.
 * ASCII is its own UTF-8 and is returned as it is. Throws on V8 for a lone surrogate. With `escaped`,
 * the text's %-escapes are then bytes ("%E2%82%AC" -> the three bytes of U+20AC): each two hex digits,
 * else fail (decodeURIComponent would throw on V8 and take it on Espruino). A loop, not replace()
 * with a callback, and one function for both: each function is JsVars for as long as the module is loaded.
 */
export function utf8Encode(s: string, escaped?: 1): string {
  let parts, i;
  // (encodeURIComponent gives ASCII: the call made with it goes straight to its escapes)
  if (/[^\x01-\x7f]/.test(s)) s = utf8Encode(encodeURIComponent(s), 1);
  if (escaped) {
    s = (parts = s.split("%"))[0];
    for (i = 1; i < parts.length; i++) s += (/^[\dA-Fa-f][\dA-Fa-f]/.test(parts[i]) ? chr(+("0x" + parts[i].substr(0, 2))) : fail("bad %-escape")) + parts[i].substr(2);
  }
  return s;
}

/**
 * The UTF-8 bytes of text as MQTT takes it [MQTT-1.5.3]: at most 65,535 bytes, valid UTF-8 (checked on
 * the bytes: on V8 utf8Encode makes them, on an ESP32 a string already is bytes and may be any), no
 * U+0000, and none of the control characters and noncharacters [MQTT-1.5.3-2] says not to send, which
 * Mosquitto refuses: U+0001-U+001F, U+007F-U+009F, U+FDD0-U+FDEF, U+nFFFE, U+nFFFF. Throws otherwise.
 */
export function text(s: string): string {
  utf8Decode((s = utf8Encode(s)));
  // on the bytes (classes above 0x80 on their own: see the tests above utf8Encode)
  return s.length > 65535 || /[\0-\x1f\x7f]|\xc2[\x80-\x9f]|\xef\xb7[\x90-\xaf]|[\x8f\x9f\xaf\xbf\xef]\xbf[\xbe\xbf]/.test(s) ? fail("not text") : s;
}

/**
 * UTF-8 bytes to text, strictly: no overlong forms, surrogates or code points past U+10FFFF
 * [MQTT-1.5.3-1], no U+0000 [MQTT-1.5.3-2]. Checked here because Espruino's decodeURIComponent
 * does not check; then decodeURIComponent decodes, as utf8Encode encodes. Plain ASCII is returned
 * as it is, without the loop (220 µs for 7 characters on the interpreter, against 10 for the test).
 */
export function utf8Decode(s: string): string {
  if (!/[^\x01-\x7f]/.test(s)) return s;
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

/** A 16-bit big-endian integer [MQTT-1.5.2]. The client's encoders write it out (one function less in RAM). */
export function u16(n: number): string {
  return chr(n >> 8, n & 255);
}

/** A length-prefixed UTF-8 string [MQTT-1.5.3]. */
export function str(s: string): string {
  s = utf8Encode(s);
  return chr(s.length >> 8, s.length & 255) + s;
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
  if ((typeof WISP_WILL == "undefined" || WISP_WILL) && w) {
    flags |= 4 | ((w.qos || 0) << 3) | (w.retain ? 32 : 0);
    tail += str(w.topic) + chr(w.payload.length >> 8, w.payload.length & 255) + w.payload;
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
  return frame(0x10, "\0\x04MQTT\x04" + chr(flags, o.keepalive >> 8, o.keepalive & 255) + str(o.clientId) + tail);
}

export function encodePublish(topic: string, payload: string, qos: number, retain: any, dup: any, id: number): string {
  return frame(0x30 | (dup ? 8 : 0) | (qos << 1) | (retain ? 1 : 0), str(topic) + (qos ? u16(id) : "") + payload);
}

/**
 * SUBSCRIBE when `qos` is given: the requested QoS of every topic, or of each in turn (Espruino
 * throws on indexing a number, hence typeof). UNSUBSCRIBE without it.
 */
export function encodeSubscribe(topics: string[], qos: number | number[] | undefined, id: number): string {
  let rest = chr(id >> 8, id & 255);
  for (let i = 0; i < topics.length; i++) rest += str(topics[i]) + (qos == null ? "" : chr(typeof qos == "number" ? qos : qos[i]));
  return frame(qos == null ? 0xa2 : 0x82, rest); // [MQTT-3.8.1-1], [MQTT-3.10.1-1] flags 0010
}

/** PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: a packet id and nothing else. */
export function encodeAck(type: number, id: number): string {
  return frame((type << 4) | (type == PacketType.PUBREL ? 2 : 0), chr(id >> 8, id & 255)); // [MQTT-3.6.1-1]
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

/**
 * Decodes the packets a server sends a client; any other type is a protocol violation.
 *
 * Written for the interpreter, which reads the source as it runs it: a call costs in proportion to the
 * text of the function it runs, including the branches it skips (docs/espruino-notes.md). So the
 * PUBLISH, the packet that comes most, is decoded here, with nothing else in the way, and each field
 * is read where it is; the rest is in decodeAck. A topic of plain ASCII is checked by one native test;
 * the UTF-8 loop runs only for the others.
 */
/**
 * The last plain ASCII topic decodeClientBound took: valid, and its own UTF-8. NaN until then, which
 * no topic is equal to.
 */
let lastTopic: any = NaN;

export function decodeClientBound(header: number, b: string): Packet {
  // the topic's end, where the packet id or the payload starts
  let at = ((b.charCodeAt(0) << 8) | b.charCodeAt(1)) + 2,
    qos = (header >> 1) & 3,
    t;
  if (header >> 4 != PacketType.PUBLISH) return decodeAck(header, b);
  if (!(b.length >= at + (qos ? 2 : 0))) fail("too short");
  t = b.substr(2, at - 2);
  // [MQTT-3.3.1-4] QoS 3 is malformed; [MQTT-3.3.1-2] DUP only with QoS > 0;
  // [MQTT-3.3.2-2] no wildcards in a topic name, [MQTT-4.7.3-1] at least one char. A plain ASCII
  // topic is remembered once checked: a burst to one topic is checked once.
  if (qos > (typeof WISP_QOS2 == "undefined" || WISP_QOS2 ? 2 : 1) || (!qos && header & 8)) fail("bad PUBLISH");
  if (t !== lastTopic) {
    if (!/[^\x20-\x22\x24-\x2a\x2c-\x7e]/.test(t)) lastTopic = t || fail("bad PUBLISH");
    else if (/[+#]/.test((t = utf8Decode(t)))) fail("bad PUBLISH");
  }
  t = { type: PacketType.PUBLISH, topic: t, payload: b.substr(qos ? at + 2 : at), qos, dup: (header & 8) > 0, retain: (header & 1) > 0 } as Packet;
  // [MQTT-2.3.1-1] a packet id is never 0
  if (qos) t.messageId = ((b.charCodeAt(at) << 8) | b.charCodeAt(at + 1)) || fail("packet id 0");
  return t;
}

/** The other packets a client may receive: CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, PINGRESP. */
function decodeAck(header: number, b: string): Packet {
  const type = header >> 4,
    n = b.length,
    p: Packet = { type };
  // the packet id where there is one, NaN when short
  let c = (b.charCodeAt(0) << 8) | b.charCodeAt(1),
    at = 2,
    t;
  // [MQTT-2.2.2-1], [MQTT-2.2.2-2]: reserved flag bits; PUBREL has 0010
  if ((header & 15) != (type == PacketType.PUBREL ? 2 : 0)) fail("reserved flag bits set");
  // bits 4-7, 9, 11: PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK start with a packet id (and
  // without QoS 2, bits 4, 9 and 11: PUBREC, PUBREL and PUBCOMP are unexpected)
  if (type == PacketType.PINGRESP) at = 0;
  else if (type != PacketType.CONNACK && !(((typeof WISP_QOS2 == "undefined" || WISP_QOS2 ? 0xaf0 : 0xa10) >> type) & 1)) fail("unexpected packet type " + type);
  else if (n < 2 + (type == PacketType.SUBACK ? 1 : 0)) fail("too short");
  else if (type == PacketType.CONNACK) {
    p.sessionPresent = (c >>= 8) == 1;
    t = p.returnCode = b.charCodeAt(1);
    // [MQTT-3.2.2-1] bits 7-1 reserved; [MQTT-3.2.2-4] no session with a refusal; return codes 0-5
    if (c > 1 || t > 5 || (c && t)) fail("bad CONNACK");
  } else {
    p.messageId = c || fail("packet id 0");
    if (type == PacketType.SUBACK)
      for (t = p.granted = [] as number[]; at < n; t.push(c)) if ((c = b.charCodeAt(at++)) > 2 && c != 128) fail("bad SUBACK"); // [MQTT-3.9.3-2]
  }
  if (at < n) fail("wrong remaining length");
  return p;
}

/**
 * The bytes received and not yet decoded: `buf_` from `at_` on; and how many bytes of a PUBLISH too
 * big to take are still to come.
 */
export interface Stream {
  buf_: string;
  at_: number;
  skip_: number;
}

/** Streaming decoding, step 1: appends a socket read to what `stream` has not decoded yet. */
export function feed(stream: Stream, data: string): void {
  const b = stream.buf_;
  stream.buf_ = stream.at_ < b.length ? b.substr(stream.at_) + data : data;
  stream.at_ = 0;
}

/**
 * Streaming decoding, step 2: the next whole packet of `stream`, or undefined until more bytes come.
 * Packets may be split at any byte and several may come in one read. Throws on a malformed packet;
 * the connection must be closed then, since the stream cannot be resynchronised. `max` is the largest
 * packet taken, fixed header included (the client's maxPacket).
 *
 * A read is kept whole and walked with `at_`: cutting the rest of the buffer off after every packet
 * would copy it once per packet. The usual packet (all there, under 128 bytes, nothing to skip) is
 * taken here; anything else by nextLong.
 */
export function nextPacket(stream: Stream, max: number, decode: (header: number, body: string) => Packet): Packet | undefined {
  const b = stream.buf_,
    at = stream.at_,
    // NaN when not even the length byte is there
    n = b.charCodeAt(at + 1) + 2;
  if (n < 130 && n <= max && at + n <= b.length && !stream.skip_) {
    stream.at_ = at + n;
    return decode(b.charCodeAt(at), b.substr(at + 2, n - 2));
  }
  // (n is NaN at the end of a read, the usual way out of the loop: not worth a call)
  return n > 0 ? nextLong(stream, max, decode) : undefined;
}

/**
 * nextPacket for the rest: a remaining length of 2 to 4 bytes [MQTT-2.2.3], a packet not all there
 * yet, and one over `max`. A PUBLISH over `max` is not malformed, and it is not buffered whole: it is
 * decoded from its first `max` bytes (topic, packet id, the start of the payload) with `over_` saying
 * why it cannot be delivered, and the rest of its bytes are discarded as they arrive. It takes any
 * packet, only slower than nextPacket: where speed does not matter (the client's CONNACK, a stored
 * session's check), it is called for all, and the client frames the usual packet itself.
 */
export function nextLong(stream: Stream, max: number, decode: (header: number, body: string) => Packet): Packet | undefined {
  const b = stream.buf_,
    n = b.length;
  let at = stream.at_,
    skip = stream.skip_,
    len = 0,
    mul = 1,
    i,
    c,
    p;
  if (skip) {
    stream.skip_ -= skip = Math.min(skip, n - at);
    stream.at_ = at += skip;
  }
  i = at + 1;
  do {
    if (i > at + 4) fail("remaining length over 4 bytes");
    if (i >= n) return;
    c = b.charCodeAt(i++);
    len += (c & 127) * mul;
    mul *= 128;
  } while (c & 128);
  c = b.charCodeAt(at);
  // mul: the size of a packet over max, 0 for one that fits. A SUBACK is taken up to 64 KB: it answers
  // the client's own SUBSCRIBE (a resubscription of many filters), one byte per filter.
  if ((mul = (len += i - at) > max && !(c >> 4 == PacketType.SUBACK && len < 65536) ? len : 0)) {
    if (c >> 4 != PacketType.PUBLISH) fail("packet of " + len + " bytes is over maxPacket " + max);
    // the topic and packet id are read wherever they end (NaN until their length is there)
    len = Math.min(mul, Math.max(max, i - at + 4 + ((b.charCodeAt(i) << 8) | b.charCodeAt(i + 1))));
  }
  if (!(n - at >= len)) return;
  stream.at_ = at + len;
  p = decode(c, b.substr(i, at + len - i));
  if (mul) {
    stream.skip_ = mul - len;
    p.over_ = p.topic + ": message of " + mul + " bytes is over maxPacket " + max;
  }
  return p;
}

/** A decoder as one function: `next(data)` then `next()` until undefined. For hosts and tests. */
export function decoder(max: number, decode: (header: number, body: string) => Packet): (data?: string) => Packet | undefined {
  const stream = { buf_: "", at_: 0, skip_: 0 };
  return function (data) {
    if (data) feed(stream, data);
    return nextPacket(stream, max, decode);
  };
}
