// Session state of one client [MQTT-4.1]: packet ids, outgoing QoS 1/2 flows in flight, incoming QoS 2
// ids awaiting PUBREL. Pure functions over plain data: no sockets, no timers. The state outlives a
// connection, which is what a persistent session needs, and keeps the order in which messages were
// first sent for redelivery [MQTT-4.6.0-1].

import { PacketType, chr, decodeClientBound, encodeAck, fail, nextLong } from "./codec";
import "./features";

export type Callback = (err: Error | null, result?: any) => void;

/** One packet waiting for its acknowledgement. */
export interface Pending {
  id_: number;
  /** the packet type that completes this step: PUBACK, PUBREC then PUBCOMP, SUBACK or UNSUBACK */
  wait_: number;
  /** the bytes to send again after a reconnect */
  packet_: string;
  done_: Callback;
  /** a SUBSCRIBE's topic filters */
  filters_?: string[];
  /** a SUBSCRIBE's requested QoS: one for all filters, or one per filter */
  qos_?: number | number[];
}

export interface Session {
  pending_: Pending[];
  /** the packet ids of pending_, as keys: whether an id is in use, without a search */
  ids_: { [id: number]: 1 };
  /** incoming QoS 2 packet ids delivered and not yet released by PUBREL */
  received_: { [id: number]: 1 };
  lastId_: number;
}

export function newSession(): Session {
  return { pending_: [], ids_: {}, received_: {}, lastId_: 0 };
}

/**
 * Registers a packet that will wait for `wait`, under a new packet id: never 0, never one in use
 * [MQTT-2.3.1-2]. The caller encodes the packet with `id_` and stores it in `packet_`.
 */
export function track(s: Session, wait: number, done: Callback): Pending {
  let id = s.lastId_,
    e;
  do id = (id % 65535) + 1;
  while (s.ids_[id]);
  s.ids_[(s.lastId_ = id)] = 1;
  s.pending_.push((e = { id_: id, wait_: wait, packet_: "", done_: done }));
  return e;
}

/**
 * An acknowledgement of `type` arrived for `id`. Returns the entry it completes, or undefined when
 * nothing waits for it (a duplicate, or a PUBREC again after PUBREL). PUBREC moves a QoS 2 publish on
 * to PUBREL in place, so redelivery keeps the original order [MQTT-4.3.3-1]. Malformed, and the entry
 * stays pending: an acknowledgement of another kind than the packet with that id waits for (a PUBACK
 * for a QoS 2 publish, a SUBACK for an UNSUBSCRIBE, ...), a SUBACK whose return codes (`granted`) are
 * not one per filter of its SUBSCRIBE [MQTT-3.9.3-1] or grant more than was asked [MQTT-3.9.3-3].
 */
export function acknowledge(s: Session, type: number, id: number, granted?: number[]): Pending | undefined {
  const l = s.pending_;
  let i = 0,
    e;
  // the oldest first: acknowledgements mostly come in the order their packets went
  while ((e = l[i]) && e.id_ != id) i++;
  if (e && e.wait_ != type && !(type == PacketType.PUBREC && e.wait_ == PacketType.PUBCOMP)) fail("unexpected packet type " + type);
  if (e && e.wait_ == type) {
    if (granted && granted.length != (e.filters_ as string[]).length) fail("SUBACK for " + (e.filters_ as string[]).length + " filters with " + granted.length + " return codes");
    if (granted) for (let k = 0; k < granted.length; k++) if (granted[k] < 128 && granted[k] > (typeof e.qos_ == "number" ? e.qos_ : (e.qos_ as number[])[k])) fail("SUBACK grants more than asked");
    if ((typeof WISP_QOS2 == "undefined" || WISP_QOS2) && type == PacketType.PUBREC) {
      e.wait_ = PacketType.PUBCOMP;
      e.packet_ = encodeAck(PacketType.PUBREL, id);
    } else {
      l.splice(i, 1);
      delete s.ids_[id];
    }
    return e;
  }
}

/** Packets to send again after reconnecting, in order; a PUBLISH goes again with DUP=1 [MQTT-4.4.0-1]. */
export function redeliver(s: Session): string[] {
  const out = [];
  for (const e of s.pending_) {
    const p = e.packet_,
      h = p.charCodeAt(0);
    out.push((e.packet_ = h >> 4 == PacketType.PUBLISH ? chr(h | 8) + p.substr(1) : p));
  }
  return out;
}

/**
 * Whether an entry a SessionStore's load() gave can be restored: "i<id>" (an incoming QoS 2 id), or
 * "o<id>" with the whole QoS 1/2 PUBLISH or the PUBREL of packet id <id> (1 to 65535, in decimal).
 * A store's flash cut short by a power cut or corrupted gives anything else, which, sent on every
 * connection, would have the broker close it every time.
 */
export function restorable(key: any, packet: any): boolean {
  const s = { buf_: packet, at_: 0, skip_: 0 };
  let p: any;
  if (!/^[io][1-9][0-9]*$/.test(key)) return false;
  if (key[0] == "i") return true;
  try {
    p = nextLong(s, 1e9, decodeClientBound);
  } catch (e) {}
  return !!p && s.at_ == packet.length && (p.type == PacketType.PUBLISH || p.type == PacketType.PUBREL) && p.messageId == +key.substr(1);
}

/** Incoming QoS 2: true the first time `id` is seen, false for a resend before PUBREL [MQTT-4.3.3-2]. */
export function receive(s: Session, id: number): boolean {
  const fresh = !s.received_[id];
  s.received_[id] = 1;
  return fresh;
}

/** Every waiting callback gets `err`, and the session forgets them. */
export function abandon(s: Session, err: Error): void {
  s.ids_ = {};
  for (const e of s.pending_.splice(0)) e.done_(err);
}

/**
 * Delay before reconnect attempt `attempt` (0-based): doubling from `base`, capped at a minute (or at
 * `base` when that is longer), with jitter over the upper half so a fleet does not reconnect in step.
 */
export function backoff(attempt: number, base: number, random: number): number {
  const d = Math.min(base * Math.pow(2, attempt), Math.max(base, 60000));
  return (d * (1 + random)) / 2;
}
