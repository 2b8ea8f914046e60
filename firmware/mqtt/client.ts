// The MQTT 3.1.1 client: the public API in the style of MQTT.js, over an Espruino socket from
// require("net") or require("tls"). One connection at a time; the session outlives it.
//
// Shaped by what Espruino keeps in RAM: a function literal's source is copied into JsVars each
// time the code around it runs, so the work is done by top-level functions taking the client as
// their first argument (socket listeners find it as `this.client_`), and the public methods live
// once on the class prototype. Internal fields end in `_` so the build gives them one-letter names.
// The client is its own session state (session.ts) and its own decoder stream (codec.ts).

import { ConnectOptions, DISCONNECT, PINGREQ, Packet, PacketType, Will, decodeClientBound, encodeAck, encodeConnect, encodePublish, encodeSubscribe, nextPacket } from "./codec";
import { Callback, Pending, Session, abandon, acknowledge, backoff, receive, redeliver, track } from "./session";
import { topicError } from "./topic";

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
}

export interface PublishOptions {
  qos?: number;
  retain?: boolean;
}

/** A SUBSCRIBE waiting for its SUBACK: what to record when it comes. A resubscription has neither. */
interface Subscribing extends Pending {
  filters_?: string[];
  qos_?: number;
}

type Socket = Espruino.Socket & { client_: Client };

// CONNACK return codes 1-5 [MQTT-3.2.2.3]
const REFUSED = ",unacceptable protocol version,identifier rejected,server unavailable,bad username or password,not authorized".split(",");
const ENDED = "client ended";

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

/** Payloads are strings whose chars are bytes; a Uint8Array becomes one. */
function bytes(payload: string | Uint8Array): string {
  return typeof payload == "string" ? payload : E.toString(payload);
}

/** Options are optional, as in MQTT.js: the callback may come in their place. */
function callbackOf(options: any, callback?: Callback): Callback {
  return typeof options == "function" ? options : callback || noop;
}

function qosError(qos: number): string {
  return qos > 2 || qos < 0 ? "invalid QoS " + qos : "";
}

/** One filter or a list of them, and why they cannot be used ("" when they can). */
function filters(topic: string | string[]): [string[], string] {
  const list = typeof topic == "string" ? [topic] : topic;
  let bad = "";
  for (const t of list) bad = bad || topicError(t, true);
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
  /** API calls waiting for a connection or a free in-flight slot: [method, arguments, callback] */
  queue_: [Function, IArguments, Callback][] = [];
  socket_: Socket | undefined;
  /** bytes received and not decoded yet */
  buf_!: string;
  attempt_ = 0;
  /** 1 while flush() makes a waiting call again */
  replaying_ = 0;
  ended_: Callback | undefined;
  // timer ids, 0 or undefined when none runs
  pingTimer_!: number;
  pongTimer_!: number;
  connectTimer_!: number;
  reconnectTimer_!: number;

  constructor(url: string, options?: ClientOptions) {
    const o: any = (this.options_ = options || ({} as any)),
      proto = url.split(":")[0],
      tls = proto == "mqtts",
      // "mqtt://host:port/": the third part is the authority
      authority = (url.split("/")[2] || "").split(":");
    if (proto != "mqtt" && !tls && proto != "tcp") throw Error("unsupported URL " + url);
    this.net_ = tls ? require("tls") : require("net");
    if (o.clientId == null) o.clientId = "wisp_" + ((Math.random() * 1e9) | 0).toString(36);
    if (o.keepalive == null) o.keepalive = 60;
    if (o.will) o.will.payload = bytes(o.will.payload);
    // the options double as the socket's: host, port, and ca, cert, key for TLS
    o.host = authority[0];
    o.port = +authority[1] || (tls ? 8883 : 1883);
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
      write(this, packet);
      if (!e) done(null); // QoS 0: once written
    }
    return this;
  }

  subscribe(topic: string | string[], options?: PublishOptions | Callback, callback?: Callback): this {
    const f = filters(topic),
      qos = ((options as any) || {}).qos | 0,
      done = callbackOf(options, callback);
    if (request(this, f[1] || qosError(qos), done, this.subscribe, arguments)) {
      const e: Subscribing = track(this, PacketType.SUBACK, done);
      e.filters_ = f[0];
      e.qos_ = qos;
      write(this, (e.packet_ = encodeSubscribe(f[0], qos, e.id_)));
    }
    return this;
  }

  unsubscribe(topic: string | string[], options?: object | Callback, callback?: Callback): this {
    const f = filters(topic),
      done = callbackOf(options, callback);
    if (request(this, f[1], done, this.unsubscribe, arguments)) {
      for (const t of f[0]) delete this.subscriptions_[t];
      const e = track(this, PacketType.UNSUBACK, done);
      write(this, (e.packet_ = encodeSubscribe(f[0], undefined, e.id_)));
    }
    return this;
  }

  /**
   * Disconnects and stops reconnecting. Without `force`, messages in flight get their acknowledgements
   * first, then a DISCONNECT goes, so the broker discards the will [MQTT-3.14.4-3]. Queued calls fail.
   */
  end(force?: boolean | Callback, callback?: Callback): this {
    const s = this.socket_,
      done = callbackOf(force, callback),
      before = this.ended_;
    // a second end() while the first is under way: both callbacks run
    this.ended_ = before && before != done ? function () {
      before(null);
      done(null);
    } : done;
    this.reconnectTimer_ = clear(this.reconnectTimer_);
    fail(this, Error(ENDED), true);
    if (force === true || !this.pending_.length || !this.connected) {
      if (s) {
        if (force !== true && this.connected) write(this, DISCONNECT);
        this.connected = false;
        s.end();
      } else finish(this);
    }
    return this;
  }
}

/** Connects; `again` for a reconnect attempt, from its timer. */
function open(c: Client, again?: 1): void {
  const o = c.options_;
  let s: Socket;
  if (again) {
    c.reconnectTimer_ = 0;
    c.emit("reconnect");
  }
  try {
    s = c.socket_ = c.net_.connect(o, connected) as Socket;
  } catch (e) {
    // Espruino throws when it cannot create the socket at all (measured: a refused port on 2v29).
    // Reported on the next tick: Espruino queues an event with the listeners it has when emitted,
    // and in connect() the caller has not attached any yet.
    return setTimeout(unreachable, 0, c, e) as any;
  }
  s.client_ = c;
  c.buf_ = "";
  c.connectTimer_ = setTimeout(timeout, o.connectTimeout || 30000, c, "connect");
  s.on("data", received);
  s.on("error", socketError);
  s.on("close", closed);
}

function unreachable(c: Client, e: Error): void {
  c.emit("error", e);
  closed.call({ client_: c } as Socket);
}

// Socket listeners: Espruino calls them with the socket as `this`.

function connected(this: Socket): void {
  write(this.client_, encodeConnect(this.client_.options_));
}

function socketError(this: Socket, e: any): void {
  this.client_.emit("error", Error(e.message || e));
}

function received(this: Socket, data: string): void {
  const c = this.client_;
  for (let p: Packet | undefined; ; data = "") {
    try {
      if (!(p = nextPacket(c, c.options_.maxPacket || 4096, decodeClientBound, data))) return;
    } catch (e) {
      return drop(c, e as Error);
    }
    try {
      handle(c, p);
    } catch (e) {
      // a user's callback that throws must not hold up the packets behind it
      c.emit("error", e);
    }
  }
}

function closed(this: Socket): void {
  const c = this.client_,
    was = c.connected,
    period = c.options_.reconnectPeriod;
  c.socket_ = undefined;
  c.connected = false;
  c.pingTimer_ = clear(c.pingTimer_);
  c.pongTimer_ = clear(c.pongTimer_);
  c.connectTimer_ = clear(c.connectTimer_);
  c.emit("close");
  if (was) c.emit("offline");
  if (c.ended_) finish(c);
  else if (period != 0) c.reconnectTimer_ = setTimeout(open, backoff(c.attempt_++, period || 1000, Math.random()), c, 1);
  else fail(c, Error("connection closed"));
}

function write(c: Client, packet: string): void {
  const s = c.socket_,
    ka = c.options_.keepalive * 1000;
  if (!s) return;
  s.write(packet);
  // [MQTT-3.1.2-23] a PINGREQ when nothing else was sent within the keepalive period
  c.pingTimer_ = clear(c.pingTimer_);
  if (ka) c.pingTimer_ = setTimeout(ping, ka, c);
}

function ping(c: Client): void {
  c.pingTimer_ = 0;
  write(c, PINGREQ);
  if (!c.pongTimer_) c.pongTimer_ = setTimeout(timeout, c.options_.keepalive * 1000, c, "keepalive");
}

function timeout(c: Client, what: string): void {
  if (what == "connect") c.connectTimer_ = 0;
  else c.pongTimer_ = 0;
  drop(c, Error(what + " timeout"));
}

/** Closes the connection on a protocol error, a refusal or a timeout; the close handler reconnects. */
function drop(c: Client, err: Error): void {
  c.emit("error", err);
  if (c.socket_) c.socket_.end();
}

function finish(c: Client): void {
  fail(c, Error(ENDED));
  c.emit("end");
  (c.ended_ as Callback)(null);
}

/** Fails everything waiting, queued calls and (unless `queueOnly`) the session's: nothing is dropped unheard. */
function fail(c: Client, err: Error, queueOnly?: boolean): void {
  for (const w of c.queue_.splice(0)) w[2](err);
  if (!queueOnly) abandon(c, err);
}

function handle(c: Client, p: Packet): void {
  const type = p.type,
    id = p.messageId as number,
    rc = p.returnCode as number,
    subs = c.subscriptions_,
    g = p.granted as number[];
  let e: any, list: any, i;
  if (type == PacketType.CONNACK) {
    c.connectTimer_ = clear(c.connectTimer_);
    if (rc) {
      // attempt_ is not reset, so a refused login backs off instead of looping
      e = Error("Connection refused: " + REFUSED[rc]);
      e.code = rc;
      return drop(c, e);
    }
    c.attempt_ = 0;
    c.connected = true;
    for (e of redeliver(c)) write(c, e);
    if (!p.sessionPresent) {
      c.received_ = {};
      list = [];
      i = [];
      for (e in subs) {
        list.push(e);
        i.push(subs[e]);
      }
      if (list.length) {
        e = track(c, PacketType.SUBACK, noop);
        write(c, (e.packet_ = encodeSubscribe(list, i, e.id_)));
      }
    }
    c.emit("connect", p);
    flush(c);
  } else if (type == PacketType.PUBLISH) {
    // PUBACK for QoS 1, PUBREC for QoS 2; [MQTT-4.3.3-2] a QoS 2 resend with DUP is delivered once
    if (p.qos) write(c, encodeAck(p.qos + 3, id));
    if ((p.qos as number) < 2 || receive(c, id)) c.emit("message", p.topic, p.payload, p);
  } else if (type == PacketType.PUBREL) {
    delete c.received_[id];
    write(c, encodeAck(PacketType.PUBCOMP, id));
  } else if (type == PacketType.PINGRESP) c.pongTimer_ = clear(c.pongTimer_);
  else if ((e = acknowledge(c, type, id))) {
    if (type == PacketType.PUBREC) write(c, e.packet_);
    else {
      // a SUBACK: remember the granted filters for resubscribing, and report them as MQTT.js does
      if (e.filters_)
        for (list = [], i = 0; i < g.length; i++) {
          if (g[i] < 128) subs[e.filters_[i]] = e.qos_;
          list.push({ topic: e.filters_[i], qos: g[i] });
        }
      e.done_(null, list);
    }
    // a graceful end() waits for the last acknowledgement
    if (c.ended_) c.pending_.length || c.end(0 as any, c.ended_);
    else flush(c);
  }
}

/** Room in flight for one more request, on a live connection. */
function ready(c: Client): boolean {
  return c.connected && c.pending_.length < (c.options_.inflight || 8);
}

/**
 * Whether an API call can go now: its arguments are valid (`bad` says why not), the client is
 * connected, nothing is queued before it, and there is room in flight. Otherwise the call waits in
 * the queue to be made again with the same `args`, or fails when the queue is full.
 */
function request(c: Client, bad: string, done: Callback, method: Function, args: IArguments): boolean | void {
  const q = c.queue_,
    // flush() replays the head of the queue: that call goes first, and calls its callbacks make go behind
    replayed = c.replaying_;
  c.replaying_ = 0;
  if (bad) done(Error(bad));
  else if ((replayed || !q.length) && ready(c)) return true;
  else if (c.ended_ || q.length >= (c.options_.queueSize || 16)) done(Error(c.ended_ ? ENDED : "queue full"));
  else q.push([method, args, done]);
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
