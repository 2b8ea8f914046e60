// The MQTT 3.1.1 client: the public API in the style of MQTT.js, over an Espruino socket from
// require("net") or require("tls"). One connection at a time; the session outlives it.
//
// Shaped by what Espruino keeps in RAM: a function literal's source is copied into JsVars each
// time the code around it runs, so the work is done by top-level functions taking the client as
// their first argument, and the public methods live once on the class prototype. Internal fields
// end in `_` so the build gives them one-letter names.

import { ConnectOptions, DISCONNECT, PINGREQ, Packet, PacketType, Will, decodeClientBound, encodeAck, encodeConnect, encodePublish, encodeSubscribe, nextPacket } from "./codec";
import { Callback, Pending, Session, abandon, acknowledge, backoff, newSession, receive, redeliver, track } from "./session";
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

// CONNACK return codes 1-5 [MQTT-3.2.2.3]
const REFUSED = ",unacceptable protocol version,identifier rejected,server unavailable,bad username or password,not authorized".split(",");

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

function filtersError(topics: string[]): string {
  let bad = "";
  for (const t of topics) bad = bad || topicError(t, true);
  return bad;
}

function topics(topic: string | string[]): string[] {
  return typeof topic == "string" ? [topic] : topic;
}

export class Client {
  connected = false;
  options_: ClientOptions & ConnectOptions;
  tls_: boolean;
  keepalive_: number;
  session_: Session = newSession();
  /** subscriptions to restore when the broker has no session for us: filter -> requested QoS */
  subscriptions_: { [filter: string]: number } = {};
  /** API calls waiting for a connection or a free in-flight slot: [method, arguments, callback] */
  queue_: [Function, IArguments, Callback][] = [];
  socket_: Espruino.Socket | undefined;
  /** bytes received and not decoded yet */
  buf_ = "";
  attempt_ = 0;
  ended_: Callback | undefined;
  pingTimer_ = 0;
  pongTimer_ = 0;
  connectTimer_ = 0;
  reconnectTimer_ = 0;

  constructor(url: string, options?: ClientOptions) {
    const o: any = (this.options_ = options || ({} as any)),
      proto = url.split(":")[0],
      // "mqtt://host:port/": the third part is the authority
      authority = (url.split("/")[2] || "").split(":");
    if (proto != "mqtt" && proto != "mqtts" && proto != "tcp") throw Error("unsupported URL " + url + ": use mqtt://host:port or mqtts://host:port");
    this.tls_ = proto == "mqtts";
    if (o.clientId == null) o.clientId = "wisp_" + ((Math.random() * 1e9) | 0).toString(36);
    if (o.keepalive == null) o.keepalive = 60;
    if (o.will) o.will.payload = bytes(o.will.payload);
    // the options double as the socket's: host, port, and ca, cert, key for TLS
    o.host = authority[0];
    o.port = +authority[1] || (this.tls_ ? 8883 : 1883);
    this.keepalive_ = o.keepalive * 1000;
    open(this);
  }

  publish(topic: string, message: string | Uint8Array, options?: PublishOptions | Callback, callback?: Callback): this {
    const o: any = options || {},
      qos = o.qos | 0,
      done = callbackOf(options, callback);
    if (request(this, topicError(topic) || qosError(qos), done, this.publish, arguments)) {
      const payload = bytes(message);
      if (qos) {
        const e = track(this.session_, qos + 3, done); // waits for PUBACK (4) or PUBREC (5)
        write(this, (e.packet_ = encodePublish(topic, payload, qos, o.retain, 0, e.id_)));
      } else {
        write(this, encodePublish(topic, payload, 0, o.retain, 0, 0));
        done(null);
      }
    }
    return this;
  }

  subscribe(topic: string | string[], options?: PublishOptions | Callback, callback?: Callback): this {
    const filters = topics(topic),
      qos = (options as any || {}).qos | 0,
      done = callbackOf(options, callback);
    if (request(this, filtersError(filters) || qosError(qos), done, this.subscribe, arguments)) {
      const e = track(this.session_, PacketType.SUBACK, function (err, granted: number[]) {
        done(err, granted && subscribed(e as Pending & { client_: Client }, granted));
      }) as Pending & { client_: Client; filters_: string[]; qos_: number };
      e.client_ = this;
      e.filters_ = filters;
      e.qos_ = qos;
      write(this, (e.packet_ = encodeSubscribe(filters, qos, e.id_)));
    }
    return this;
  }

  unsubscribe(topic: string | string[], options?: object | Callback, callback?: Callback): this {
    const filters = topics(topic),
      done = callbackOf(options, callback);
    if (request(this, filtersError(filters), done, this.unsubscribe, arguments)) {
      for (const t of filters) delete this.subscriptions_[t];
      const e = track(this.session_, PacketType.UNSUBACK, done);
      write(this, (e.packet_ = encodeSubscribe(filters, undefined, e.id_)));
    }
    return this;
  }

  /**
   * Disconnects and stops reconnecting. Without `force`, messages in flight get their acknowledgements
   * first, then a DISCONNECT goes, so the broker discards the will [MQTT-3.14.4-3]. Queued calls fail.
   */
  end(force?: boolean | Callback, callback?: Callback): this {
    const s = this.socket_;
    this.ended_ = callbackOf(force, callback);
    this.reconnectTimer_ = clear(this.reconnectTimer_);
    for (const w of this.queue_.splice(0)) w[2](Error("client ended"));
    if (force === true || !this.session_.pending_.length || !this.connected) {
      if (s) {
        if (force !== true && this.connected) write(this, DISCONNECT);
        this.connected = false;
        s.end();
      } else finish(this);
    }
    return this;
  }
}

/** A SUBACK arrived: remember the granted filters for resubscribing, and report them as MQTT.js does. */
function subscribed(e: Pending & { client_: Client; filters_?: string[]; qos_?: number }, granted: number[]) {
  const f = e.filters_ as string[];
  return granted.map(function (g, i) {
    if (g < 128) e.client_.subscriptions_[f[i]] = e.qos_ as number;
    return { topic: f[i], qos: g };
  });
}

function open(c: Client): void {
  const o = c.options_,
    s = (c.socket_ = require(c.tls_ ? "tls" : "net").connect(o, function () {
      write(c, encodeConnect(o));
    }) as Espruino.Socket);
  c.buf_ = "";
  c.connectTimer_ = setTimeout(timeout, o.connectTimeout || 30000, c, "connect");
  s.on("data", function (data: string) {
    received(c, data);
  });
  s.on("error", function (e: any) {
    c.emit("error", Error(e.message || e));
  });
  s.on("close", function () {
    closed(c);
  });
}

function received(c: Client, data: string): void {
  for (let p: Packet | undefined; ; data = "") {
    try {
      if (!(p = nextPacket(c, c.options_.maxPacket || 4096, decodeClientBound, data))) return;
    } catch (e) {
      return drop(c, e as Error);
    }
    handle(c, p);
  }
}

function write(c: Client, packet: string): void {
  const s = c.socket_,
    ka = c.keepalive_;
  if (!s) return;
  s.write(packet);
  // [MQTT-3.1.2-23] a PINGREQ when nothing else was sent within the keepalive period
  c.pingTimer_ = clear(c.pingTimer_);
  if (ka) c.pingTimer_ = setTimeout(ping, ka, c);
}

function ping(c: Client): void {
  c.pingTimer_ = 0;
  write(c, PINGREQ);
  if (!c.pongTimer_) c.pongTimer_ = setTimeout(timeout, c.keepalive_, c, "keepalive");
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

function closed(c: Client): void {
  const was = c.connected,
    period = c.options_.reconnectPeriod;
  c.socket_ = undefined;
  c.connected = false;
  c.pingTimer_ = clear(c.pingTimer_);
  c.pongTimer_ = clear(c.pongTimer_);
  c.connectTimer_ = clear(c.connectTimer_);
  c.emit("close");
  if (was) c.emit("offline");
  if (c.ended_) finish(c);
  else if (period != 0) c.reconnectTimer_ = setTimeout(reconnect, backoff(c.attempt_++, period || 1000, Math.random()), c);
  else fail(c, Error("connection closed"));
}

function reconnect(c: Client): void {
  c.reconnectTimer_ = 0;
  c.emit("reconnect");
  open(c);
}

function finish(c: Client): void {
  fail(c, Error("client ended"));
  c.emit("end");
  (c.ended_ as Callback)(null);
}

/** Fails everything waiting: nothing is dropped without its callback hearing of it. */
function fail(c: Client, err: Error): void {
  for (const w of c.queue_.splice(0)) w[2](err);
  abandon(c.session_, err);
}

function handle(c: Client, p: Packet): void {
  const type = p.type,
    id = p.messageId as number,
    rc = p.returnCode as number,
    s = c.session_;
  let e: any;
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
    if (!p.sessionPresent) {
      s.received_ = {};
      e = Object.keys(c.subscriptions_);
      if (e.length) {
        const r = track(s, PacketType.SUBACK, noop);
        write(c, (r.packet_ = encodeSubscribe(e, e.map(function (t: string) {
          return c.subscriptions_[t];
        }), r.id_)));
      }
    }
    for (const packet of redeliver(s)) write(c, packet);
    c.emit("connect", p);
    flush(c);
  } else if (type == PacketType.PUBLISH) {
    if (p.qos == 2) {
      write(c, encodeAck(PacketType.PUBREC, id));
      if (!receive(s, id)) return; // [MQTT-4.3.3-2] a resend with DUP: deliver once
    } else if (p.qos) write(c, encodeAck(PacketType.PUBACK, id));
    c.emit("message", p.topic, p.payload, p);
  } else if (type == PacketType.PUBREL) {
    delete s.received_[id];
    write(c, encodeAck(PacketType.PUBCOMP, id));
  } else if (type == PacketType.PINGRESP) c.pongTimer_ = clear(c.pongTimer_);
  else if ((e = acknowledge(s, type, id))) {
    if (type == PacketType.PUBREC) write(c, e.packet_);
    else e.done_(null, p.granted);
    // a graceful end() waits for the last acknowledgement
    if (c.ended_) s.pending_.length || c.end(0 as any, c.ended_);
    else flush(c);
  }
}

/**
 * Whether an API call can go now: its arguments are valid (`bad` says why not), the client is
 * connected, nothing is queued before it, and there is room in flight. Otherwise the call waits in
 * the queue to be made again with the same `args`, or fails when the queue is full.
 */
function request(c: Client, bad: string, done: Callback, method: Function, args: IArguments): boolean {
  const o = c.options_,
    q = c.queue_;
  if (bad) done(Error(bad));
  else if (c.connected && !q.length && c.session_.pending_.length < (o.inflight || 8)) return true;
  else if (c.ended_ || q.length >= (o.queueSize || 16)) done(Error(c.ended_ ? "client ended" : "queue full"));
  else q.push([method, args, done]);
  return false;
}

function flush(c: Client): void {
  const q = c.queue_;
  let w;
  while (c.connected && q.length && c.session_.pending_.length < (c.options_.inflight || 8)) {
    w = q.shift() as [Function, IArguments, Callback];
    w[0].apply(c, w[1]);
  }
}
