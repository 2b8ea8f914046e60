// The server side of the codec: decoders of the packets a client sends and encoders of the packets a
// server sends. The device build never imports this file; tests, the fuzz run and host tools do, so
// all 14 packet types can be parsed, generated and round-tripped.

import { Packet, PacketType, chr, decodeClientBound, encodeAck, encodeConnect, encodePublish, encodeSubscribe, fail, frame, moreToRead, readBin, readFrom, readId, readText, readU16, readU8, u16, DISCONNECT, PINGREQ, PINGRESP } from "./codec";

/** Decodes any of the 14 packet types, as a broker would for client-bound ones and a client for the rest. */
export function decodeAny(header: number, body: string): Packet {
  const type = header >> 4,
    flags = header & 15;
  let p: Packet;
  readFrom(body);
  if (type == PacketType.CONNECT) {
    // [MQTT-3.1.2-1] protocol name, [MQTT-3.1.2-2] level 4, [MQTT-3.1.2-3] reserved flag bit 0
    if (flags || readText() != "MQTT" || readU8() != 4) fail("not an MQTT 3.1.1 CONNECT");
    const f = readU8(),
      wq = (f >> 3) & 3;
    // [MQTT-3.1.2-11..15] will flags; [MQTT-3.1.2-22] no password without a user name
    if (f & 1 || wq > 2 || (!(f & 4) && f & 56) || (f & 64 && !(f & 128))) fail("bad CONNECT flags");
    p = { type, keepalive: readU16(), clean: (f & 2) > 0, clientId: readText() };
    if (f & 4) p.will = { topic: readText(), payload: readBin(), qos: wq, retain: (f & 32) > 0 };
    if (f & 128) p.username = readText();
    if (f & 64) p.password = readText();
  } else if (type == PacketType.SUBSCRIBE || type == PacketType.UNSUBSCRIBE) {
    if (flags != 2) fail("reserved flag bits set"); // [MQTT-3.8.1-1], [MQTT-3.10.1-1]
    p = { type, messageId: readId() };
    const topics: string[] = [],
      qos: number[] = [];
    do {
      topics.push(readText());
      if (type == PacketType.SUBSCRIBE) {
        const q = readU8();
        if (q > 2) fail("bad requested QoS"); // [MQTT-3.8.3-4]
        qos.push(q);
      }
    } while (moreToRead()); // [MQTT-3.8.3-3], [MQTT-3.10.3-2] at least one
    if (type == PacketType.SUBSCRIBE) p.subscriptions = topics.map((topic, i) => ({ topic, qos: qos[i] }));
    else p.topics = topics;
  } else if (type == PacketType.PINGREQ || type == PacketType.DISCONNECT) {
    if (flags) fail("reserved flag bits set");
    p = { type };
  } else return decodeClientBound(header, body);
  if (moreToRead()) fail("wrong remaining length");
  return p;
}

/** Encodes any packet object of the shape the decoders return. */
export function encode(p: Packet): string {
  switch (p.type) {
    case PacketType.CONNECT:
      return encodeConnect(p as any);
    case PacketType.CONNACK:
      return frame(0x20, chr(p.sessionPresent ? 1 : 0, p.returnCode || 0));
    case PacketType.PUBLISH:
      return encodePublish(p.topic as string, p.payload as string, p.qos || 0, p.retain, p.dup, p.messageId as number);
    case PacketType.SUBSCRIBE:
      return encodeSubscribe(
        p.subscriptions.map((s: any) => s.topic),
        p.subscriptions.map((s: any) => s.qos),
        p.messageId as number,
      );
    case PacketType.SUBACK:
      return frame(0x90, u16(p.messageId as number) + chr.apply(null, p.granted as number[]));
    case PacketType.UNSUBSCRIBE:
      return encodeSubscribe(p.topics, undefined, p.messageId as number);
    case PacketType.PINGREQ:
      return PINGREQ;
    case PacketType.PINGRESP:
      return PINGRESP;
    case PacketType.DISCONNECT:
      return DISCONNECT;
    default:
      return encodeAck(p.type, p.messageId as number);
  }
}

