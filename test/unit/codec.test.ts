// Codec fixtures, each run four ways (parse, generate, round trip, split at every byte), malformed
// input, and a property-based fuzz run of the streaming decoder.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Packet, decodeClientBound, decoder, utf8Decode, utf8Encode } from "../../firmware/mqtt/codec";
import { decodeAny, encode } from "../../firmware/mqtt/codec-server";

/** Hex with spaces to a byte string. */
const hex = (h: string) => Buffer.from(h.replace(/\s+/g, ""), "hex").toString("latin1");

const fixtures: { name: string; packet: Packet; bytes: string }[] = [
  { name: "CONNECT, minimal", packet: { type: 1, keepalive: 60, clean: true, clientId: "a" }, bytes: hex("10 0d 0004 4d515454 04 02 003c 0001 61") },
  {
    name: "CONNECT, will, user name and password, persistent session",
    packet: { type: 1, keepalive: 10, clean: false, clientId: "c", will: { topic: "w", payload: "x", qos: 1, retain: true }, username: "u", password: "p" },
    bytes: hex("10 19 0004 4d515454 04 ec 000a 0001 63 0001 77 0001 78 0001 75 0001 70"),
  },
  { name: "CONNECT, zero-length client id", packet: { type: 1, keepalive: 0, clean: true, clientId: "" }, bytes: hex("10 0c 0004 4d515454 04 02 0000 0000") },
  { name: "CONNACK", packet: { type: 2, sessionPresent: false, returnCode: 0 }, bytes: hex("20 02 00 00") },
  { name: "CONNACK, session present", packet: { type: 2, sessionPresent: true, returnCode: 0 }, bytes: hex("20 02 01 00") },
  { name: "CONNACK, not authorized", packet: { type: 2, sessionPresent: false, returnCode: 5 }, bytes: hex("20 02 00 05") },
  { name: "PUBLISH, QoS 0", packet: { type: 3, topic: "a", payload: "hi", qos: 0, dup: false, retain: false }, bytes: hex("30 05 0001 61 6869") },
  { name: "PUBLISH, QoS 1, DUP, retained", packet: { type: 3, topic: "a", payload: "hi", qos: 1, dup: true, retain: true, messageId: 10 }, bytes: hex("3b 07 0001 61 000a 6869") },
  { name: "PUBLISH, QoS 2, empty payload, id 65535", packet: { type: 3, topic: "b", payload: "", qos: 2, dup: false, retain: false, messageId: 65535 }, bytes: hex("34 05 0001 62 ffff") },
  { name: "PUBLISH, UTF-8 topic", packet: { type: 3, topic: "€/ü", payload: "x", qos: 0, dup: false, retain: false }, bytes: hex("30 09 0006 e282ac 2f c3bc 78") },
  { name: "PUBLISH, binary payload", packet: { type: 3, topic: "t", payload: "\x00\xff\x80", qos: 0, dup: false, retain: false }, bytes: hex("30 06 0001 74 00ff80") },
  {
    name: "PUBLISH, two-byte remaining length",
    packet: { type: 3, topic: "t", payload: "z".repeat(200), qos: 0, dup: false, retain: false },
    bytes: hex("30 cb01 0001 74") + "z".repeat(200),
  },
  {
    name: "PUBLISH, three-byte remaining length",
    packet: { type: 3, topic: "t", payload: "y".repeat(16384), qos: 0, dup: false, retain: false },
    bytes: hex("30 838001 0001 74") + "y".repeat(16384),
  },
  { name: "PUBACK", packet: { type: 4, messageId: 1 }, bytes: hex("40 02 0001") },
  { name: "PUBREC", packet: { type: 5, messageId: 2 }, bytes: hex("50 02 0002") },
  { name: "PUBREL", packet: { type: 6, messageId: 3 }, bytes: hex("62 02 0003") },
  { name: "PUBCOMP", packet: { type: 7, messageId: 4 }, bytes: hex("70 02 0004") },
  {
    name: "SUBSCRIBE",
    packet: { type: 8, messageId: 1, subscriptions: [{ topic: "a/+", qos: 1 }, { topic: "#", qos: 2 }] },
    bytes: hex("82 0c 0001 0003 612f2b 01 0001 23 02"),
  },
  { name: "SUBACK, one refused", packet: { type: 9, messageId: 1, granted: [1, 128] }, bytes: hex("90 04 0001 01 80") },
  { name: "UNSUBSCRIBE", packet: { type: 10, messageId: 2, topics: ["a", "b/#"] }, bytes: hex("a2 0a 0002 0001 61 0003 622f23") },
  { name: "UNSUBACK", packet: { type: 11, messageId: 2 }, bytes: hex("b0 02 0002") },
  { name: "PINGREQ", packet: { type: 12 }, bytes: hex("c0 00") },
  { name: "PINGRESP", packet: { type: 13 }, bytes: hex("d0 00") },
  { name: "DISCONNECT", packet: { type: 14 }, bytes: hex("e0 00") },
];

/** Feeds chunks to a fresh streaming decoder and collects every packet. */
function stream(chunks: string[], max = 1 << 20, decode = decodeAny): Packet[] {
  const next = decoder(max, decode),
    out: Packet[] = [];
  for (const c of chunks) for (let p = next(c); p; p = next()) out.push(p);
  return out;
}

const parse = (bytes: string) => stream([bytes]);

describe("codec fixtures", () => {
  for (const f of fixtures) {
    describe(f.name, () => {
      it("parses", () => expect(parse(f.bytes)).toEqual([f.packet]));
      it("generates", () => expect(encode(f.packet)).toBe(f.bytes));
      it("round-trips", () => expect(parse(encode(f.packet))).toEqual([f.packet]));
      it("parses when split at any byte", () => {
        const step = Math.max(1, Math.floor(f.bytes.length / 40)); // every byte of the header, samples of long bodies
        for (let i = 1; i < f.bytes.length; i += i < 8 ? 1 : step) expect(stream([f.bytes.slice(0, i), f.bytes.slice(i)])).toEqual([f.packet]);
        if (f.bytes.length < 64) expect(stream(f.bytes.split(""))).toEqual([f.packet]);
      });
    });
  }
  it("parses every fixture from one read, in order", () => {
    expect(parse(fixtures.map((f) => f.bytes).join(""))).toEqual(fixtures.map((f) => f.packet));
  });
  it("decodes the server-to-client fixtures with the client's decoder", () => {
    for (const f of fixtures.filter((f) => [2, 3, 4, 5, 6, 7, 9, 11, 13].includes(f.packet.type)))
      expect(stream([f.bytes], 1 << 20, decodeClientBound)).toEqual([f.packet]);
  });
});

describe("malformed input", () => {
  const bad: [string, string, RegExp][] = [
    ["remaining length in 5 bytes [MQTT-2.2.3]", "30 ffffffff01", /remaining length over 4 bytes/],
    ["CONNACK with reserved flags [MQTT-2.2.2-2]", "21 02 0000", /reserved flag bits/],
    ["PUBREL without its 0010 flags [MQTT-3.6.1-1]", "60 02 0001", /reserved flag bits/],
    ["PUBLISH with QoS 3 [MQTT-3.3.1-4]", "36 05 0001 61 0001", /bad PUBLISH/],
    ["PUBLISH QoS 0 with DUP [MQTT-3.3.1-2]", "38 03 0001 61", /bad PUBLISH/],
    ["PUBLISH QoS 1 with packet id 0 [MQTT-2.3.1-1]", "32 05 0001 61 0000", /packet id 0/],
    ["PUBACK with packet id 0", "40 02 0000", /packet id 0/],
    ["SUBACK with packet id 0", "90 03 0000 00", /packet id 0/],
    ["topic with a broken UTF-8 sequence", "30 04 0002 c328", /UTF-8/],
    ["topic with an overlong encoding", "30 04 0002 c0af", /UTF-8/],
    ["topic with an encoded surrogate [MQTT-1.5.3-1]", "30 05 0003 eda080", /UTF-8/],
    ["topic past U+10FFFF", "30 06 0004 f4908080", /UTF-8/],
    ["topic with U+0000 [MQTT-1.5.3-2]", "30 03 0001 00", /UTF-8/],
    ["topic cut short in a sequence", "30 03 0001 e2", /UTF-8/],
    ["topic name with a wildcard [MQTT-3.3.2-2]", "30 03 0001 23", /bad PUBLISH/],
    ["empty topic name [MQTT-4.7.3-1]", "30 02 0000", /bad PUBLISH/],
    ["topic longer than the packet", "30 03 0005 61", /too short/],
    ["CONNACK return code 6", "20 02 0006", /bad CONNACK/],
    ["CONNACK session present with a refusal [MQTT-3.2.2-4]", "20 02 0105", /bad CONNACK/],
    ["CONNACK reserved acknowledge flags [MQTT-3.2.2-1]", "20 02 0200", /bad CONNACK/],
    ["SUBACK with return code 3 [MQTT-3.9.3-2]", "90 03 0001 03", /bad SUBACK/],
    ["SUBACK without return codes", "90 02 0001", /too short/],
    ["PUBACK with a longer remaining length", "40 03 0001 00", /wrong remaining length/],
    ["PUBACK cut short", "40 01 00", /too short/],
    ["PINGRESP with a body", "d0 01 00", /wrong remaining length/],
    ["CONNECT sent to a client", "10 00", /unexpected packet type 1/],
    ["SUBSCRIBE sent to a client", "82 00", /reserved flag bits|unexpected packet type 8/],
    ["packet type 0", "00 00", /unexpected packet type 0/],
    ["packet type 15", "f0 00", /unexpected packet type 15/],
  ];
  for (const [name, bytes, message] of bad)
    it(`rejects ${name}`, () => expect(() => stream([hex(bytes)], 1 << 20, decodeClientBound)).toThrow(message));

  it("rejects a packet over the size limit as soon as its length is known", () => {
    const next = decoder(100, decodeClientBound);
    // (a PUBLISH is not rejected: see the next test; issue 7, K5)
    expect(() => next(hex("40 ff01"))).toThrow("packet of 258 bytes is over maxPacket 100");
    // a SUBACK answers the client's own SUBSCRIBE, one byte per filter: taken up to 64 KB (issue 7 round 2, K5)
    expect(decoder(100, decodeClientBound)(hex("90 ff01 0001") + "\x01".repeat(253))).toMatchObject({ type: 9, messageId: 1 });
    expect(() => decoder(100, decodeClientBound)(hex("90 ffff04"))).toThrow(/over maxPacket 100/);
  });
  it("takes a PUBLISH over the size limit from its first bytes and reads past the rest, however it is cut", () => {
    const big = encode({ type: 3, topic: "a/b", payload: "x".repeat(300), qos: 1, messageId: 7 });
    const after = encode({ type: 3, topic: "c", payload: "ok", qos: 0 });
    for (let cut = 0; cut <= big.length + after.length; cut++) {
      const wire = big + after;
      const packets = stream([wire.slice(0, cut), wire.slice(cut)], 100, decodeClientBound);
      expect(packets.map((p) => [p.topic, p.messageId, p.over_])).toEqual([
        ["a/b", 7, "a/b: message of 310 bytes is over maxPacket 100"],
        ["c", undefined, undefined],
      ]);
      expect(packets[1].payload).toBe("ok");
    }
    expect(big.length).toBe(310);
  });
  it("accepts a packet exactly at the size limit", () => {
    expect(stream([hex("30 05 0001 61 6869")], 7, decodeClientBound)).toHaveLength(1);
  });
  it("rejects server-bound malformations", () => {
    expect(() => parse(hex("10 0d 0004 4d515454 03 02 003c 0001 61"))).toThrow(/MQTT 3.1.1/);
    expect(() => parse(hex("10 0d 0004 4d515454 04 03 003c 0001 61"))).toThrow(/CONNECT flags/);
    expect(() => parse(hex("10 0f 0004 4d515454 04 42 003c 0001 61 0000"))).toThrow(/CONNECT flags/); // password without user name
    expect(() => parse(hex("80 06 0001 0001 61 00"))).toThrow(/reserved flag bits/);
    expect(() => parse(hex("82 06 0001 0001 61 03"))).toThrow(/requested QoS/);
    expect(() => parse(hex("82 02 0001"))).toThrow(/too short/);
  });
});

describe("UTF-8", () => {
  it("encodes and decodes every plane", () => {
    for (const s of ["a/b", "é", "€", "日本", "😀", "\u{10ffff}"]) {
      const bytes = utf8Encode(s);
      expect(bytes).toBe(Buffer.from(s, "utf8").toString("latin1"));
      expect(utf8Decode(bytes)).toBe(s);
    }
  });
  it("round-trips any string without U+0000 or lone surrogates", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), (s) => {
        fc.pre(!s.includes("\0"));
        expect(utf8Decode(utf8Encode(s))).toBe(s);
      }),
    );
  });
});

/** Arbitrary well-formed packets of every type. */
const id = fc.integer({ min: 1, max: 65535 });
const topic = fc.string({ unit: "grapheme", minLength: 1, maxLength: 30 }).filter((t) => !/[+#\0]/.test(t));
const bytes = fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString("latin1"));
const packet: fc.Arbitrary<Packet> = fc.oneof(
  fc.record({ type: fc.constant(1), keepalive: fc.integer({ min: 0, max: 65535 }), clean: fc.boolean(), clientId: fc.string({ maxLength: 23 }).filter((s) => !s.includes("\0")) }),
  fc.record({ type: fc.constant(2), sessionPresent: fc.constant(false), returnCode: fc.integer({ min: 0, max: 5 }) }),
  fc.integer({ min: 0, max: 2 }).chain((qos) =>
    fc.record({ type: fc.constant(3), topic, payload: bytes, qos: fc.constant(qos), dup: qos ? fc.boolean() : fc.constant(false), retain: fc.boolean(), ...(qos ? { messageId: id } : {}) }),
  ),
  fc.record({ type: fc.constantFrom(4, 5, 6, 7, 11), messageId: id }),
  fc.record({ type: fc.constant(8), messageId: id, subscriptions: fc.array(fc.record({ topic, qos: fc.integer({ min: 0, max: 2 }) }), { minLength: 1, maxLength: 4 }) }),
  fc.record({ type: fc.constant(9), messageId: id, granted: fc.array(fc.constantFrom(0, 1, 2, 128), { minLength: 1, maxLength: 4 }) }),
  fc.record({ type: fc.constant(10), messageId: id, topics: fc.array(topic, { minLength: 1, maxLength: 4 }) }),
  fc.record({ type: fc.constantFrom(12, 13, 14) }),
);

/** Cuts a string at arbitrary points. */
function chunk(s: string, cuts: number[]): string[] {
  const at = [...new Set(cuts.map((c) => c % (s.length + 1)))].sort((a, b) => a - b);
  const out: string[] = [];
  let prev = 0;
  for (const c of [...at, s.length]) {
    out.push(s.slice(prev, c));
    prev = c;
  }
  return out;
}

describe("decoder fuzz", () => {
  it("round-trips arbitrary packet sequences cut at arbitrary points", () => {
    fc.assert(
      fc.property(fc.array(packet, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 12 }), (packets, cuts) => {
        const wire = packets.map(encode).join("");
        expect(stream(chunk(wire, cuts))).toEqual(packets);
      }),
      { numRuns: 400 },
    );
  });
  it("never throws anything but a malformed-packet error on random bytes", () => {
    fc.assert(
      fc.property(bytes, fc.array(fc.nat(), { maxLength: 8 }), (data, cuts) => {
        for (const decode of [decodeAny, decodeClientBound]) {
          try {
            stream(chunk(data, cuts), 4096, decode);
          } catch (e) {
            expect((e as Error).message).toMatch(/^malformed packet: /);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
  it("never throws on random bytes after a valid header either", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), bytes, (header, body) => {
        for (const decode of [decodeAny, decodeClientBound]) {
          try {
            decode(header, body);
          } catch (e) {
            expect((e as Error).message).toMatch(/^malformed packet: /);
          }
        }
      }),
      { numRuns: 3000 },
    );
  });
});
