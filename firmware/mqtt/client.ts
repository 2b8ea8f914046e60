// The MQTT 3.1.1 client: the public API in the style of MQTT.js, over an Espruino socket from
// require("net") or require("tls"). One connection at a time; the session outlives it.
//
// Shaped by what Espruino keeps in RAM: a function literal's source is copied into JsVars each
// time the code around it runs, so the work is done by top-level functions taking the client as
// their first argument (socket listeners find it as `this.client_`), and the public methods live
// once on the class prototype. Internal fields end in `_` so the build gives them one-letter names.
// The client is its own session state (session.ts) and its own decoder stream (codec.ts).
//
// The life of a connection, and what each public call does in it:
// - connecting (a socket, no CONNACK yet) and offline (no socket, a reconnect timer): calls wait in
//   the queue (up to queueSize);
// - connected (CONNACK 0 received): calls go while the in-flight window and the send buffer have room,
//   and wait in the queue otherwise;
// - hung up (the client ended the socket and waits for its "close", at most 5 s): nothing more is read
//   from or written to it; calls wait for the next connection;
// - closed for good (reconnectPeriod 0, or end()): every waiting call and each later one gets an Error.
// Every callback runs exactly once and a throwing one is reported as an "error", not thrown into the
// client; "end" is the last event.

import { ConnectOptions, DISCONNECT, PINGREQ, Packet, PacketType, Will, decodeClientBound, encodeAck, encodeConnect, encodePublish, encodeSubscribe, fail as malformed, nextPacket } from "./codec";
import { Callback, Pending, Session, acknowledge, backoff, receive, redeliver, track } from "./session";
import { topicError } from "./topic";

/**
 * The session store hooks are built in (tools/build.ts): in dist/mqtt.js always, in the firmware when
 * its config keeps an outbox. Without them a client pays nothing for the option.
 */
declare const WISP_STORE: boolean;

/**
 * Where a client with `clean: false` keeps its session so that it outlives a reboot [MQTT-4.1]: the
 * client calls put() when a QoS 1/2 PUBLISH is first sent ("o" + packet id, its bytes, and the `ref`
 * of its publish options), when its PUBREC turns it into a PUBREL (same key, the PUBREL's bytes) and
 * when an incoming QoS 2 id is first seen ("i" + packet id, ""); remove() when its flow completes
 * (PUBACK, PUBCOMP, PUBREL). load() runs once, in connect(): what it returns is in flight again, sent
 * with DUP=1 on the first connection. Calls are synchronous, in the order the session changed, and
 * must not throw (a store reports its own failures).
 */
export interface SessionStore {
  put(key: string, packet: string, ref?: any): void;
  remove(key: string): void;
  /** [key, packet] in the order they were put (a key put again keeps its place) */
  load(): string[][];
}

export interface ClientOptions {
  clientId?: string;
  username?: string;
  password?: string;
  /** seconds; 0 turns keepalive off */
  keepalive?: number;
  clean?: boolean;
  /** ms to wait for CONNACK */
  connectTimeout?: number;
  /** ms before the first reconnect attempt, doubled per failed attempt; 0 = never reconnect */
  reconnectPeriod?: number;
  will?: Will;
  ca?: string;
  cert?: string;
  key?: string;
  /** largest incoming packet, in bytes */
  maxPacket?: number;
  /** messages that may wait while offline or while the in-flight window is full */
  queueSize?: number;
  /** outgoing QoS 1/2 messages and (un)subscribe requests awaiting acknowledgement */
  inflight?: number;
  /** bytes written to the socket and not yet sent (no "drain" yet) past which calls wait */
  sendBuffer?: number;
  /** with clean: false, keeps the session through a reboot */
  store?: SessionStore | 0;
}

export interface PublishOptions {
  qos?: number;
  retain?: boolean;
  /** handed to the store's put() with this message's packet (an outbox ties it to its entry) */
  ref?: any;
}

/** A SUBSCRIBE or UNSUBSCRIBE waiting for its acknowledgement: what to record when it comes. */
interface Subscribing extends Pending {
  /** requested QoS: one for all filters, or (a resubscription) one per filter */
  qos_: number | number[] | undefined;
}

type Socket = Espruino.Socket & { client_: Client; closing_?: 1 };

// CONNACK return codes 1-5 [MQTT-3.2.2.3]
const REFUSED = ",unacceptable protocol version,identifier rejected,server unavailable,bad username or password,not authorized".split(",");
const ENDED = "client ended";
const CLOSED = "connection closed";

function noop() {}

/**
 * Clears a timer that may have fired already and returns 0 to store in its place. Espruino reuses
 * timer ids as soon as they are free, so a stale id would clear somebody else's timer: every timer
 * field here is zeroed when its timer fires or is cleared. And Espruino rejects clearTimeout(undefined).
 */
function clear(timer: number): 0 {
  if (timer) clearTimeout(timer);
  return 0;
}

/**
 * Payloads are strings whose chars are bytes; a Uint8Array becomes one, null or undefined an empty
 * payload (as in MQTT.js), anything else its text. Not E.toString for a number: it makes one byte of it.
 */
function bytes(payload: any): string {
  return typeof payload == "string" ? payload : payload == null ? "" : payload.buffer ? E.toString(payload) : "" + payload;
}

/** Options are optional, as in MQTT.js: the callback may come in their place. */
function callbackOf(options: any, callback?: Callback): Callback {
  return typeof options == "function" ? options : callback || noop;
}

/** Calls a user's callback; what it throws is the application's error, reported, not the client's. */
function call(c: Client, callback: Callback, err: Error | null, result?: any): void {
  try {
    callback(err, result);
  } catch (e) {
    c.emit("error", e);
  }
}

function qosError(qos: number): string {
  return qos > 2 || qos < 0 ? "invalid QoS " + qos : "";
}

/**
 * One filter or a list of them, and why they cannot be used ("" when they can). A SUBSCRIBE or
 * UNSUBSCRIBE carries at least one filter [MQTT-3.8.3-3], [MQTT-3.10.3-2].
 */
function filters(topic: any): [string[], string] {
  const list = typeof topic == "string" ? [topic] : topic || [];
  let bad = list.length ? "" : "no topic filter",
    i = 0;
  for (; i < list.length; i++) bad = bad || topicError(list[i], true);
  return [list, bad];
}

export class Client implements Session {
  connected = false;
  options_: ClientOptions & ConnectOptions;
  /** require("net") or require("tls") */
  net_: { connect(options: object, callback: () => void): Espruino.Socket };
  pending_: Pending[] = [];
  received_: { [id: number]: 1 } = {};
  lastId_ = 0;
  /** subscriptions to restore when the broker has no session for us: filter -> requested QoS */
  subscriptions_: { [filter: string]: number } = {};
  /** the resubscription in flight, if any: at most one, whatever happens to the connections */
  resub_: Pending | undefined;
  /** API calls waiting for a connection or a free in-flight slot: [method, arguments, callback] */
  queue_: [Function, IArguments, Callback][] = [];
  /** the connection's socket, until the connection is over (its "close", or 5 s after hanging up) */
  socket_: Socket | undefined;
  /** bytes received and not decoded yet, and bytes of an over-size PUBLISH still to discard */
  buf_!: string;
  skip_!: number;
  /** bytes written since the socket last reported "drain" (all sent) */
  unsent_!: number;
  /** keepalive periods/2 since something was received, and since the socket last drained */
  idle_!: number;
  quiet_!: number;
  /** on a connection that got CONNACK 0: the time from which it counts as lasting (see gone) */
  since_: number | undefined;
  /** failed attempts since the last connection, which sets it to `short_` (see gone) */
  attempt_ = 0;
  /** connections in a row that died within 10 s of CONNACK */
  short_ = 0;
  /** 1 while flush() makes a waiting call again */
  replaying_: 0 | 1 | undefined;
  /** once end() was called: the callbacks of end() calls still to run */
  ended_: Callback[] | undefined;
  // timer ids, 0 or undefined when none runs
  tickTimer_!: number;
  connectTimer_!: number;
  reconnectTimer_!: number;

  /**
   * Throws at once, before anything goes on the wire, when the URL or the options cannot work. No
   * message contains the password.
   */
  constructor(url: string, options?: ClientOptions) {
    const o: any = (this.options_ = options || ({} as any)),
      parts = url.split("/"),
      tls = parts[0] == "mqtts:",
      w = o.will;
    // "mqtt://user:password@host:port/": the authority is the third part; credentials as in MQTT.js,
    // percent-encoded, the password after the first ":"
    let a: any = parts[2] || "",
      i = a.lastIndexOf("@"),
      u: any = a.substr(0, i);
    a = a.substr(i + 1).split(":");
    // a bad %-escape too: Espruino's decodeURIComponent takes "%zz", V8's throws
    if ((parts[0] != "mqtt:" && !tls && parts[0] != "tcp:") || !a[0] || /%[^\dA-Fa-f]|%[^][^\dA-Fa-f]/.test(u)) throw Error("unsupported URL");
    if (i >= 0) {
      u = u.split(":");
      o.username = decodeURIComponent(u.shift());
      if (u.length) o.password = decodeURIComponent(u.join(":"));
    }
    // the options double as the socket's: host, port, and ca, cert, key for TLS
    o.host = a[0];
    o.port = +a[1] || (tls ? 8883 : 1883);
    if (o.clientId == null) o.clientId = "wisp_" + ((Math.random() * 1e9) | 0).toString(36);
    if (o.keepalive == null) o.keepalive = 60;
    if (w) w.payload = bytes(w.payload);
    // [MQTT-3.1.3-7], [MQTT-3.1.2-22]
    u = !o.clientId && o.clean === false
      ? 'clientId "" needs clean: true'
      : o.password != null && o.username == null
        ? "password needs username"
        : !(o.keepalive >= 0 && o.keepalive < 65536)
          ? "keepalive over 65535"
          : w && (u = topicError(w.topic) || qosError(w.qos | 0)) && "will: " + u;
    if (u) throw Error(u);
    encodeConnect(o); // what V8 cannot encode (a lone surrogate) throws now, not on every connection
    this.net_ = tls ? require("tls") : require("net");
    // a session that starts clean has nothing to keep
    if (WISP_STORE) o.clean === false && o.store ? restore(this, o.store.load()) : (o.store = 0);
    open(this);
  }

  publish(topic: string, message: string | Uint8Array, options?: PublishOptions | Callback, callback?: Callback): this {
    const o: any = options || {},
      qos = o.qos | 0,
      done = callbackOf(options, callback);
    if (request(this, topicError(topic) || qosError(qos), done, this.publish, arguments)) {
      const e = qos && track(this, qos + 3, done), // waits for PUBACK (4) or PUBREC (5)
        packet = encodePublish(topic, bytes(message), qos, o.retain, 0, e && e.id_);
      if (e) e.packet_ = packet;
      if (WISP_STORE && e) keep(this, "o" + e.id_, packet, o.ref);
      write(this, packet);
      if (!e) call(this, done, null); // QoS 0: once written
    }
    return this;
  }

  subscribe(topic: string | string[], options?: PublishOptions | Callback, callback?: Callback): this {
    const f = filters(topic),
      qos = ((options as any) || {}).qos | 0,
      done = callbackOf(options, callback);
    if (request(this, f[1] || qosError(qos), done, this.subscribe, arguments)) send(this, PacketType.SUBACK, f[0], qos, done);
    return this;
  }

  unsubscribe(topic: string | string[], options?: object | Callback, callback?: Callback): this {
    const f = filters(topic),
      done = callbackOf(options, callback);
    if (request(this, f[1], done, this.unsubscribe, arguments)) {
      for (let i = 0; i < f[0].length; i++) delete this.subscriptions_[f[0][i]];
      send(this, PacketType.UNSUBACK, f[0], undefined, done);
    }
    return this;
  }

  /**
   * Disconnects and stops reconnecting. Without `force`, messages in flight get their acknowledgements
   * first, then a DISCONNECT goes, so the broker discards the will [MQTT-3.14.4-3]. Queued calls fail.
   * The callback of every end() call runs once, when the client has ended (also for a call made after
   * that); "end" is the last event the client emits.
   */
  end(force?: boolean | Callback, callback?: Callback): this {
    const c = this,
      ending = c.ended_;
    (c.ended_ = ending || []).push(callbackOf(force, callback));
    c.reconnectTimer_ = clear(c.reconnectTimer_);
    fail(c, Error(ENDED), true);
    // already ended: only the callback is left to call
    if (ending && !c.socket_) finish(c, 1);
    else if (force === true || !c.pending_.length || !c.connected) {
      if (force !== true && c.connected) write(c, DISCONNECT);
      c.socket_ ? hangUp(c) : finish(c);
    }
    return c;
  }
}

/**
 * The session from the store: outgoing flows wait for what their packet calls for (a PUBLISH for
 * PUBACK or PUBREC by its QoS, a PUBREL for PUBCOMP), incoming QoS 2 ids for their PUBREL.
 */
function restore(c: Client, entries: string[][]): void {
  for (const kv of entries) {
    const id = +kv[0].substr(1),
      h = kv[1].charCodeAt(0);
    if (kv[0][0] == "i") c.received_[id] = 1;
    else c.pending_.push({ id_: id, wait_: h >> 4 == PacketType.PUBREL ? PacketType.PUBCOMP : ((h >> 1) & 3) + 3, packet_: kv[1], done_: noop });
  }
}

/** Tells the store what changed in the session: `packet` put under `key`, or (none) the key removed. */
function keep(c: Client, key: string, packet?: string, ref?: any): void {
  const s = c.options_.store;
  if (s) packet == null ? s.remove(key) : s.put(key, packet, ref);
}

/** Connects; `again` for a reconnect attempt, from its timer. */
function open(c: Client, again?: 1): void {
  const o = c.options_;
  let s: Socket;
  c.reconnectTimer_ = 0;
  if (again) c.emit("reconnect");
  try {
    s = c.socket_ = c.net_.connect(o, connected) as Socket;
  } catch (e) {
    // Espruino throws when it cannot create the socket at all (measured: a refused port on 2v29).
    // Reported on the next tick: Espruino queues an event with the listeners it has when emitted,
    // and in connect() the caller has not attached any yet. Kept as the reconnect timer, so end() stops it.
    c.reconnectTimer_ = setTimeout(unreachable, 0, c, e) as any;
    return;
  }
  s.client_ = c;
  c.buf_ = "";
  c.skip_ = c.unsent_ = 0;
  c.connectTimer_ = setTimeout(timeout, o.connectTimeout || 30000, c);
  s.on("data", received);
  s.on("drain", drained);
  s.on("error", socketError);
  s.on("close", closed);
}

function unreachable(c: Client, e: Error): void {
  c.reconnectTimer_ = 0;
  c.emit("error", e);
  gone(c);
}

// Socket listeners: Espruino calls them with the socket as `this`. A socket the client hung up on
// (closing_) is neither read nor written any more, and once the connection is over (gone) it is not
// the client's socket_ any more: what it still reports is not the client's business.

function connected(this: Socket): void {
  if (!this.closing_) write(this.client_, encodeConnect(this.client_.options_));
}

function socketError(this: Socket, e: any): void {
  if (this == this.client_.socket_) this.client_.emit("error", Error(e.message || e));
}

/** The socket sent everything written to it (Espruino's "drain"): the waiting calls may go. */
function drained(this: Socket): void {
  const c = this.client_;
  c.unsent_ = c.quiet_ = 0;
  flush(c);
}

function received(this: Socket, data: string): void {
  const c = this.client_;
  let p: Packet | undefined;
  c.idle_ = 0;
  for (; !this.closing_; data = "")
    try {
      if (!(p = nextPacket(c, c.options_.maxPacket || 4096, decodeClientBound, data))) return;
      handle(c, p);
    } catch (e) {
      drop(c, e as Error);
    }
}

function closed(this: Socket): void {
  if (this == this.client_.socket_) gone(this.client_);
}

/**
 * Writes to the socket unless it is hung up (Espruino throws on a write after end()), counting the
 * bytes until the socket drains.
 */
function write(c: Client, packet: string): void {
  const s = c.socket_;
  if (s && !s.closing_) {
    s.write(packet);
    c.unsent_ += packet.length;
  }
}

/**
 * Keepalive, every keepalive/2 seconds from CONNACK. A PINGREQ goes when nothing was received, or
 * nothing sent, for about the keepalive period [MQTT-3.1.2-23]; the link is dead when nothing was
 * received for 1 to 1.5 periods, or what was written was not all sent (no "drain") for as long,
 * however much the application writes.
 */
function tick(c: Client): void {
  if (++c.idle_ > 2 || ++c.quiet_ > 2) drop(c, Error("keepalive timeout"));
  else if (c.idle_ > 1 || c.quiet_ > 1) write(c, PINGREQ);
}

/** No CONNACK in time; or, on a socket hung up on, no "close" in time. */
function timeout(c: Client): void {
  c.connectTimer_ = 0;
  (c.socket_ as Socket).closing_ ? gone(c) : drop(c, Error("connect timeout"));
}

/** Closes the connection on a protocol error, a refusal or a timeout; then the client reconnects. */
function drop(c: Client, err: Error): void {
  c.emit("error", err);
  hangUp(c);
}

/** Stops the connection's timers; it is not connected any more. */
function stop(c: Client): void {
  c.connected = false;
  c.tickTimer_ = clear(c.tickTimer_);
  c.connectTimer_ = clear(c.connectTimer_);
}

/**
 * Ends the socket, if not yet, and waits for its "close". At most 5 s: Espruino's end() sends what
 * is left first, and on a stalled link that never happens (the socket keeps it until the peer reads).
 */
function hangUp(c: Client): void {
  const s = c.socket_ as Socket;
  if (!s.closing_) {
    stop(c);
    s.closing_ = 1;
    s.end();
    c.connectTimer_ = setTimeout(timeout, 5000, c);
  }
}

/** The connection is over: "close", then a reconnect later, or the end. */
function gone(c: Client): void {
  const was = c.since_,
    period = c.options_.reconnectPeriod;
  stop(c);
  c.socket_ = c.since_ = undefined;
  // A lost connection starts the backoff again, unless it died within 10 s of its CONNACK: n of those
  // in a row wait as long as n failed attempts, so a connection that dies right after every CONNACK
  // (a message it cannot take, a broker that drops it) backs off like a refusal.
  if (was) c.attempt_ = Date.now() < was ? c.short_++ : (c.short_ = 0);
  if (!c.ended_ && period != 0) c.reconnectTimer_ = setTimeout(open, backoff(c.attempt_++, period || 1000, Math.random()), c, 1);
  c.emit("close");
  if (was) c.emit("offline");
  if (c.ended_) finish(c);
  else if (!c.reconnectTimer_) fail(c, Error(CLOSED));
}

/** "end" (unless `again`: it was emitted already), then the callbacks of end(). */
function finish(c: Client, again?: 1): void {
  if (!again) {
    fail(c, Error(ENDED));
    c.emit("end");
  }
  for (const f of (c.ended_ as Callback[]).splice(0)) call(c, f, null);
}

/** Fails everything waiting, queued calls and (unless `queueOnly`) the session's: nothing is dropped unheard. */
function fail(c: Client, err: Error, queueOnly?: boolean): void {
  for (const w of c.queue_.splice(0)) call(c, w[2], err);
  if (!queueOnly) for (const e of c.pending_.splice(0)) call(c, e.done_, err);
}

/** Sends a SUBSCRIBE (with `qos`) or an UNSUBSCRIBE, tracked until `wait` comes. */
function send(c: Client, wait: number, list: string[], qos: number | number[] | undefined, done: Callback): Subscribing {
  const e = track(c, wait, done) as Subscribing;
  e.filters_ = list;
  e.qos_ = qos;
  write(c, (e.packet_ = encodeSubscribe(list, qos, e.id_)));
  return e;
}

function handle(c: Client, p: Packet): void {
  const type = p.type,
    id = p.messageId as number,
    rc = p.returnCode as number,
    subs = c.subscriptions_,
    g = p.granted as number[];
  let e: any, list: any, i, fresh;
  if (type == PacketType.CONNACK) {
    fresh = !p.sessionPresent;
    // one per connection [MQTT-3.2.0-1]: another would redeliver and resubscribe again
    if (c.connected) malformed("unexpected packet type 2");
    c.connectTimer_ = clear(c.connectTimer_);
    if (rc) {
      // attempt_ is not reset, so a refused login backs off instead of looping
      e = Error("Connection refused: " + REFUSED[rc]);
      e.code = rc;
      return drop(c, e);
    }
    c.connected = true;
    c.since_ = Date.now() + 10000; // 10 s: then the connection counts as lasting
    c.idle_ = c.quiet_ = 0;
    if ((i = c.options_.keepalive * 500)) c.tickTimer_ = setInterval(tick, i, c);
    if (fresh) {
      if (WISP_STORE) for (i in c.received_) keep(c, "i" + i);
      c.received_ = {};
      // the broker has no session: the last resubscription is replaced by the one below
      if ((i = c.pending_.indexOf(c.resub_ as Pending)) >= 0) c.pending_.splice(i, 1);
    }
    for (e of redeliver(c)) write(c, e);
    if (fresh) {
      list = [];
      i = [];
      for (e in subs) {
        list.push(e);
        i.push(subs[e]);
      }
      if (list.length) c.resub_ = send(c, PacketType.SUBACK, list, i, noop);
    }
    c.emit("connect", p);
    flush(c);
  } else if (type == PacketType.PUBLISH) {
    // PUBACK for QoS 1, PUBREC for QoS 2; [MQTT-4.3.3-2] a QoS 2 resend with DUP is delivered once.
    // A message over maxPacket is acknowledged too, so the broker does not send it again, and reported.
    if (p.qos) write(c, encodeAck(p.qos + 3, id));
    if ((p.qos as number) < 2 || receive(c, id)) {
      // kept before the PUBREC leaves (the socket sends once this code returns)
      if (WISP_STORE && (p.qos as number) > 1) keep(c, "i" + id, "");
      p.over_ ? c.emit("error", Error(p.over_)) : c.emit("message", p.topic, p.payload, p);
    }
  } else if (type == PacketType.PUBREL) {
    if (WISP_STORE && c.received_[id]) keep(c, "i" + id);
    delete c.received_[id];
    write(c, encodeAck(PacketType.PUBCOMP, id));
  } else if ((e = acknowledge(c, type, id, g))) {
    // (a PINGRESP acknowledges nothing here: that something came is all keepalive needs)
    if (type == PacketType.PUBREC) {
      if (WISP_STORE) keep(c, "o" + id, e.packet_);
      write(c, e.packet_);
    } else {
      if (WISP_STORE && (type == PacketType.PUBACK || type == PacketType.PUBCOMP)) keep(c, "o" + id);
      // a SUBACK: the granted filters are remembered for resubscribing, and reported as MQTT.js does
      if (type == PacketType.SUBACK)
        for (list = [], i = 0; i < g.length; i++) {
          if (g[i] < 128 && e != c.resub_) subs[e.filters_[i]] = e.qos_;
          list.push({ topic: e.filters_[i], qos: g[i] });
        }
      call(c, e.done_, null, list);
    }
    // a graceful end() waits for the last acknowledgement
    if (c.ended_) c.pending_.length || c.end();
    else flush(c);
  }
}

/** Room for one more request, on a live connection: in flight, and in the socket's send buffer. */
function ready(c: Client): boolean {
  const o = c.options_;
  return c.connected && c.pending_.length < (o.inflight || 8) && c.unsent_ < (o.sendBuffer || 4096);
}

/**
 * Whether an API call can go now: its arguments are valid (`bad` says why not), the client is
 * connected, nothing is queued before it, and there is room. Otherwise the call waits in the queue
 * to be made again with the same `args`, or fails when the queue is full or no connection will come.
 */
function request(c: Client, bad: string, done: Callback, method: Function, args: IArguments): boolean | void {
  const q = c.queue_,
    // flush() replays the head of the queue: that call goes first, and calls its callbacks make go behind
    replayed = c.replaying_;
  c.replaying_ = 0;
  if (!bad) {
    if (c.ended_) bad = ENDED;
    else if (!c.socket_ && !c.reconnectTimer_) bad = CLOSED;
    else if ((replayed || !q.length) && ready(c)) return true;
    else if (q.length >= (c.options_.queueSize || 16)) bad = "queue full";
    else return void q.push([method, args, done]);
  }
  call(c, done, Error(bad));
}

/** Makes the waiting calls again, in order, while they can go. */
function flush(c: Client): void {
  const q = c.queue_;
  let w;
  while (q.length && ready(c)) {
    w = q.shift() as [Function, IArguments, Callback];
    c.replaying_ = 1;
    w[0].apply(c, w[1]);
  }
}
