// The MQTT 3.1.1 client: the public API in the style of MQTT.js, over an Espruino socket from
// require("net") or require("tls"). One connection at a time; the session outlives it.
//
// Shaped by what the interpreter charges (measured on Espruino 2v29, docs/espruino-notes.md):
// - Time: the source is interpreted as it is read, no JIT, so a call costs in proportion to the text
//   of the function it runs, branches it skips included (about as much per character as per
//   instruction of a small statement). The hot paths (publish on a live connection, a PUBLISH or an
//   acknowledgement received) run through short functions, and what they rarely need (CONNACK, a
//   topic seen for the first time, the queue) is in functions of its own. A published topic is
//   checked and encoded once and reused while the application publishes to it; a received one is
//   checked with one native RegExp test when it is plain ASCII.
// - RAM: every function costs 5 to 6 JsVars for as long as the module is loaded, plus one per
//   parameter, even with its code in flash; so there are no more functions than the above needs,
//   they take the client as their first argument (socket listeners find it as `this.client_`), the
//   public methods live once on the class prototype, and no function literal is created at run time
//   (its source would be copied into RAM each time).
// - Internal fields end in `_` so the build gives them one-letter names (shorter source is faster too).
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

import { Packet, PacketType, Will, chr, decodeClientBound, encodeAck, encodeConnect, encodeSubscribe, fail as malformed, frame, nextLong, str, text, utf8Decode, utf8Encode } from "./codec";
import { Callback, Pending, acknowledge, backoff, redeliver, restorable, track } from "./session";
import "./features";
import { topicError } from "./topic";

/**
 * Where a client with `clean: false` keeps its session so that it outlives a reboot [MQTT-4.1]: the
 * client calls put() when a QoS 1/2 PUBLISH is first sent ("o" + packet id, its bytes, and the `ref`
 * of its publish options), when its PUBREC turns it into a PUBREL (same key, the PUBREL's bytes) and
 * when an incoming QoS 2 id is first seen ("i" + packet id, ""); remove() when its flow completes
 * (PUBACK, PUBCOMP, PUBREL). load() runs once, in the constructor: what it returns is in flight again,
 * sent with DUP=1 on the first connection. Calls are synchronous, in the order the session changed,
 * and must not throw (a store reports its own failures). Only in a build with WISP_STORE (features.ts).
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
  /** with clean: false, keeps the session through a reboot (a build with WISP_STORE) */
  store?: SessionStore;
}

export interface PublishOptions {
  qos?: number;
  retain?: boolean;
  /** handed to the store's put() with this message's packet (an outbox ties it to its entry) */
  ref?: any;
}

/** A SUBSCRIBE or UNSUBSCRIBE waiting for its acknowledgement: what to record when it comes. */
type Subscribing = Pending;

/** `hello_`: the connect callback has run (the same listener then hears "drain"); `closing_`: hung up */
type Socket = Espruino.Socket & { client_: Client; closing_: 0 | 1; hello_?: 1 };

/** Why a build without QoS 2 refuses it (topicError() checks the QoS range); only such a build has it. */
const NO_QOS2 = "QoS 2 is not in this build";

/** unsent_ while calls cannot go because of the connection's state, whatever is written (an enum: inlined) */
const enum Gate {
  CLOSED = 1e9,
}

// Messages are written out where they are used, not kept in module constants: a constant is a JsVar
// or more for as long as the module is loaded, a literal in code run from flash costs RAM only while used.

/** Calls a user's callback, if any; what it throws is the application's error, reported, not the client's. */
function call(c: Client, callback: Callback | undefined, err: Error | null, result?: any): void {
  if (callback)
    try {
      callback(err, result);
    } catch (e) {
      // after "end" no event may come: thrown on its own, as from a listener (an uncaught exception)
      // (a function made here, on this rare path, rather than one held by the module)
      c.finished_
        ? setTimeout(() => {
            throw e;
          }, 0)
        : c.emit("error", e);
    }
}

/**
 * A payload as bytes: a string as it is, null or undefined as an empty payload (as in MQTT.js), a typed
 * array or DataView as its bytes (the same on both engines: Espruino's E.toString refuses a DataView),
 * anything else its text (not E.toString for a number: it makes one byte of it); undefined for an
 * object without toString, or one whose toString throws, which, given the client `c`, fails the
 * publish through its callback `done` (here, not in publish(): its text is read on every publish).
 */
function bytes(m: any, c?: Client, done?: Callback): string | undefined {
  let s;
  try {
    // (an object without toString: V8's "" + m throws, Espruino's gives "[object Object]"; refused on both)
    s = m == null ? "" : m.buffer ? E.toString(new Uint8Array(m.buffer, m.byteOffset, m.byteLength)) : m.toString && "" + m;
  } catch (e) {}
  if (s == null && c) call(c, done, Error("payload: not a string, typed array or number"));
  return s;
}

export class Client {
  // Espruino finds a property by walking the object's properties in the order they were made, so the
  // fields the hot paths read come first.
  /**
   * The last topic published to, and its length-prefixed UTF-8 (valid: it was checked). NaN until
   * then: no argument is === NaN, not even NaN. It also says that no call waits in the queue, so
   * publish()'s short way does not read the queue (an array read costs some 5% of a QoS 0 publish on
   * the interpreter): NaN whenever a call is queued (request()); the publish that finds the queue
   * empty again (through request()) sets it.
   */
  topic_: any = NaN;
  head_ = "";
  connected = false;
  /** once end() was called: the callbacks of end() calls still to run */
  ended_: (Callback | undefined)[] | undefined = undefined;
  /** 1 once "end" was emitted: nothing more is */
  finished_: 1 | undefined;
  /** API calls waiting for a connection or a free in-flight slot: [method, arguments, callback] */
  queue_: [Function, IArguments, Callback | undefined][] = [];
  pending_: Pending[] = [];
  /** the index in pending_ that, when taken, means the in-flight window is full: inflight - 1 */
  window_ = 7;
  /**
   * The gate of the hot path: bytes written since the socket last reported "drain" (all sent), minus
   * sendBuffer, on a connection that took CONNACK 0 and no end(); CLOSED otherwise. Calls go while it
   * is negative (and the in-flight window has room), so one comparison answers "connected, not ended,
   * send buffer not full".
   */
  unsent_: number = Gate.CLOSED;
  /** the connection's socket, until the connection is over (its "close", or 5 s after hanging up) */
  socket_: Socket | undefined = undefined;
  /** the session store (`store` with `clean: false`), 0 without one; undefined in a build without WISP_STORE */
  store_: SessionStore | 0 = WISP_STORE ? 0 : (undefined as any);
  options_: any;
  /** keepalive periods/2 since something was received, and since the socket last drained */
  idle_ = 0;
  quiet_ = 0;
  /** the decoder stream: bytes received, where the next packet starts, bytes of an over-size PUBLISH to discard */
  buf_ = "";
  /** maxPacket, the largest packet taken */
  max_ = 4096;
  at_ = 0;
  skip_ = 0;
  ids_: { [id: number]: 1 } = {};
  received_: { [id: number]: 1 } = WISP_QOS2 ? {} : (undefined as any);
  lastId_ = 0;
  /** require("net") or require("tls") */
  net_!: { connect(options: object, callback: () => void): Espruino.Socket };
  /** subscriptions to restore when the broker has no session for us: filter -> requested QoS */
  subscriptions_: { [filter: string]: number } = {};
  /** the resubscription in flight, if any: at most one, whatever happens to the connections */
  resub_: Pending | undefined;
  /** on a connection that got CONNACK 0: the time from which it counts as lasting (see gone) */
  since_: number | undefined;
  /** failed attempts since the last connection, which sets it to `short_` (see gone) */
  attempt_ = 0;
  /** connections in a row that died within 10 s of CONNACK */
  short_ = 0;
  /** 1 while flush() makes a waiting call again, and others still wait behind it */
  replaying_: 0 | 1 | undefined;
  /**
   * The one timer a client runs, 0 when none: the CONNACK deadline while connecting, the keepalive
   * interval while connected, the wait for "close" once hung up, the next attempt while offline.
   * Espruino reuses timer ids as soon as they are free, so a stale id would clear somebody else's
   * timer: the field is zeroed whenever its timer fires or is cleared.
   */
  timer_ = 0;

  /**
   * Throws at once, before anything goes on the wire, when the URL or the options cannot work. No
   * message contains the password.
   */
  constructor(url: string, options?: ClientOptions) {
    // a copy: the socket's options are added to it, and two clients may share the caller's object
    const o: any = (this.options_ = Object.assign({}, options)),
      parts = url.split("/"),
      tls = WISP_TLS && parts[0] == "mqtts:";
    let w: any = o.will,
      // "mqtt://user:password@host:port/": the authority is the third part; credentials as in MQTT.js,
      // percent-encoded, the password after the first ":" (a build without them refuses an "@")
      a: any = parts[2] || "",
      i = a.lastIndexOf("@"),
      u: any = a.substr(0, i),
      h;
    a = a.substr(i + 1);
    // host[:port]; an IPv6 host in brackets; the port 1 to 65535 in decimal (Espruino would wrap it)
    h = a.lastIndexOf(":") > a.lastIndexOf("]") ? a.lastIndexOf(":") : a.length;
    o.port = a.substr(h + 1);
    a = a.substr(0, h);
    // h: bracketed (an IPv6 host, which may hold ':')
    o.host = (h = a[0] == "[" && a[a.length - 1] == "]") ? a.substr(1, a.length - 2) : a;
    // user[:password], percent-decoded to UTF-8: V8's decodeURIComponent throws on a bad escape or bytes
    // that are not UTF-8, Espruino's takes them; both refused here (no host: an unsupported URL)
    if (WISP_URL_LOGIN)
      try {
        i = u.indexOf(":");
        if (u) o.username = utf8Decode(utf8Encode(i < 0 ? u : u.substr(0, i), 1));
        if (i >= 0) o.password = utf8Decode(utf8Encode(u.substr(i + 1), 1));
      } catch (e) {
        o.host = "";
      }
    if (
      (parts[0] != "mqtt:" && !tls && parts[0] != "tcp:") ||
      // (not /^[^:]+$/: Espruino's negated class with + matches at the end of the string, so also "")
      !o.host ||
      /[\x5b\x5d]/.test(o.host) ||
      (!h && a.indexOf(":") >= 0) ||
      !(o.port == "" || (/^\d+$/.test(o.port) && o.port > 0 && o.port < 65536)) ||
      (!WISP_URL_LOGIN && i >= 0)
    )
      throw Error("unsupported URL");
    o.port = +o.port || (tls ? 8883 : 1883);
    if (o.clientId == null) o.clientId = "wisp_" + ((Math.random() * 1e9) | 0).toString(36);
    if (o.keepalive == null) o.keepalive = 60;
    // a number of at least 0 (maxPacket: 4, a CONNACK), or nothing for the default
    for (a of "reconnectPeriod,connectTimeout,queueSize,inflight,sendBuffer,maxPacket".split(",")) if (o[a] != null && !(o[a] >= (h = a == "maxPacket" ? 4 : 0))) throw Error(a + ": not a number of at least " + h);
    this.window_ = (o.inflight || 8) - 1;
    this.max_ = o.maxPacket || 4096;
    // a will's payload as bytes: see publish
    if (w && !WISP_WILL) throw Error("will: not in this build");
    if (!WISP_STORE && o.store) throw Error("store: not in this build");
    if (w) w = o.will = Object.assign({}, w, { payload: bytes(w.payload) });
    // [MQTT-3.1.3-7], [MQTT-3.1.2-22]; text fields are UTF-8 of at most 65,535 bytes without control characters
    u = "";
    for (a of ["clientId", "username"])
      try {
        if (o[a] != null) text(o[a]);
      } catch (e) {
        u = a + ": not UTF-8 text of at most 65535 bytes without control characters";
      }
    u = u || (!o.clientId && o.clean === false
      ? 'clientId "" needs clean: true'
      : o.password != null && o.username == null
        ? "password needs username"
        : !(o.keepalive >= 0 && o.keepalive < 65536 && o.keepalive % 1 == 0)
          ? "keepalive: not a whole number of seconds up to 65535"
          : (o.password != null && utf8Encode(o.password).length > 65535 && "password: over 65535 bytes") ||
            (w && (w.payload == null || w.payload.length > 65535 ? "will: payload not a string of at most 65535 bytes" : (u = topicError(w.topic, 0, w.qos | 0)) && "will: " + u)));
    if (u) throw Error(u);
    encodeConnect(o); // what V8 cannot encode (a lone surrogate in the password) throws now, not on every connection
    this.net_ = tls ? require("tls") : require("net");
    // The session from the store (a session that starts clean has nothing to keep): outgoing flows wait
    // for what their packet calls for (a PUBLISH for PUBACK or PUBREC by its QoS, a PUBREL for PUBCOMP),
    // incoming QoS 2 ids for their PUBREL. Here rather than in a function of its own, which would hold
    // its JsVars for as long as the module is loaded, to run once.
    // What does not decode as the packet its key says (a store's flash cut short or corrupted) is
    // dropped, and said once, on the next tick: nobody listens yet.
    if (WISP_STORE && o.clean === false && o.store) {
      a = 0;
      for (u of (this.store_ = o.store).load() || []) {
        if (!u || !restorable(u[0], u[1])) a++;
        else if (u[0][0] == "i") WISP_QOS2 && (this.received_[+u[0].substr(1)] = 1);
        else if (!this.ids_[(i = +u[0].substr(1))]) {
          this.ids_[i] = 1;
          this.pending_.push({ id_: i, wait_: u[1].charCodeAt(0) >> 4 == PacketType.PUBREL ? PacketType.PUBCOMP : ((u[1].charCodeAt(0) >> 1) & 3) + 3, packet_: u[1], done_: undefined as any });
        }
      }
      if (a) setTimeout(this.emit.bind(this), 0, "error", Error("store: " + a + " entries not whole packets, dropped"));
    }
    open(this);
  }

  /**
   * Payloads are strings whose chars are bytes; a Uint8Array becomes one, null or undefined an empty
   * payload (as in MQTT.js), anything else its text (not E.toString for a number: it makes one byte of it).
   */
  publish(topic: string, message: string | Uint8Array, options?: PublishOptions | Callback, callback?: Callback): this {
    // On the interpreter a local variable costs about as much as a property read, and `this` less than
    // a local holding it: so two locals, and the parameters take what is computed once their values are
    // not needed (the queue keeps `arguments` as they were when the call had to wait). n: the length,
    // read once (a string's length is counted through its blocks: 8,000 instructions each time)
    let qos = ((options = options || (0 as any)) as any).qos | 0,
      n;
    if (typeof options == "function") callback = options;
    // the usual call: the topic of the last publish (checked and encoded then: most applications publish
    // to few topics; see topic_ for why that also says nothing waits), a valid QoS (qos >>> 0: negative
    // ones become large), room to send (see unsent_), room in the in-flight window; request() sorts out
    // the rest
    if (
      ((topic === this.topic_ && qos >>> 0 < (WISP_QOS2 ? 3 : 2) && this.unsent_ < 0 && !this.pending_[this.window_]) ||
        (request(this, (!WISP_QOS2 && qos == 2 && NO_QOS2) || topicError(topic, 0, qos), callback, this.publish, arguments) &&
          (topic === this.topic_ || (this.head_ = str((this.topic_ = topic)))) &&
          // flush() is replaying this call and others wait behind it
          (!this.queue_[0] || !(this.topic_ = NaN)))) &&
      // the payload as bytes before a packet id is taken; what cannot be one fails through the callback
      (typeof message == "string" || (message = bytes(message, this, callback) as string) != null)
    ) {
      // topic: the fixed header's first byte [MQTT-3.3.1]; qos: what waits for PUBACK (4) or PUBREC (5)
      topic = (0x30 | (qos << 1) | ((options as any).retain ? 1 : 0)) as any;
      qos = qos && (track(this, qos + 3, callback as Callback) as any);
      message = this.head_ + (qos ? chr((qos as any).id_ >> 8, (qos as any).id_ & 255) + message : message);
      // the fixed header: a one-byte remaining length for most, frame() for the others
      message = (n = message.length) < 128 ? chr(topic as any, n) + message : frame(topic as any, message);
      // kept in the store, if any, before it leaves (the socket sends once this code returns): the
      // interpreter reads past what a QoS 0 message skips, so that is short
      if (qos) ((qos as any).packet_ = message), WISP_STORE && this.store_ && keep(this, "o" + (qos as any).id_, message, (options as any).ref);
      // on a live connection (the gate above): its socket takes it (counted with a 2-byte fixed header:
      // one of 128 bytes or more has 1 to 3 more, not worth a read of its length). What one message
      // takes past the send buffer is not counted: that shuts the gate all the same, and write()'s check
      // of a broker that does not read then counts what is written while it is shut, not this message
      (this.socket_ as Socket).write(message);
      if ((this.unsent_ += n + 2) > 0) this.unsent_ = 0;
      if (!qos && callback) call(this, callback, null); // QoS 0: once written
    }
    return this;
  }

  subscribe(topic: string | string[], options?: PublishOptions | Callback, callback?: Callback): this {
    return subscription(this, topic, ((options as any) || 0).qos | 0, typeof options == "function" ? options : callback, this.subscribe, arguments) as this;
  }

  unsubscribe(topic: string | string[], options?: object | Callback, callback?: Callback): this {
    return subscription(this, topic, undefined, typeof options == "function" ? (options as Callback) : callback, this.unsubscribe, arguments) as this;
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
    (c.ended_ = ending || []).push(typeof force == "function" ? force : callback);
    c.unsent_ = Gate.CLOSED;
    // offline: the timer is the next attempt, which will not come
    if (!c.socket_) {
      clearTimeout(c.timer_);
      c.timer_ = 0;
    }
    fail(c, Error("client ended"), 1);
    if (force === true || !c.pending_.length || !c.connected) {
      if (force !== true && c.connected) write(c, "\xe0\0");
      c.socket_ ? hangUp(c) : fail(c, Error("client ended"), 2);
    } else if (!ending) {
      // the acknowledgements are awaited for connectTimeout at most, then tick() ends the connection
      clearTimeout(c.timer_);
      c.timer_ = setTimeout(tick, c.options_.connectTimeout || 30000, c) as any;
    }
    return c;
  }
}

/**
 * Tells the store, if any, what changed in the session: `packet` put under `key` (a QoS 1/2 PUBLISH as
 * it is first sent with its publish options' `ref`), or (none) the key removed.
 */
function keep(c: Client, key: string, packet?: string, ref?: any): void {
  const s = c.store_;
  if (s) packet == null ? s.remove(key) : s.put(key, packet, ref);
}

/**
 * subscribe() with `qos`, unsubscribe() without: one filter or a list of them, at least one
 * [MQTT-3.8.3-3], [MQTT-3.10.3-2], each checked before anything is sent; then the SUBSCRIBE or
 * UNSUBSCRIBE goes, tracked until its SUBACK or UNSUBACK. Without `method`, the resubscription on
 * CONNACK (`qos`: one per filter): its filters were checked when first subscribed, it goes at once,
 * and it becomes `resub_`.
 */
function subscription(c: Client, topic: any, qos: number | number[] | undefined, done?: Callback, method?: Function, args?: IArguments): Client {
  const list = typeof topic == "string" ? [topic] : topic || [];
  let bad = list.length ? (!WISP_QOS2 && qos == 2 && NO_QOS2) || "" : "no topic filter",
    i = 0,
    e: Subscribing;
  for (; method && i < list.length; i++) bad = bad || topicError(list[i], 1, qos);
  if (!method || request(c, bad, done, method, args as IArguments)) {
    if (qos == null) for (i = 0; i < list.length; i++) delete c.subscriptions_[list[i]];
    e = track(c, qos == null ? PacketType.UNSUBACK : PacketType.SUBACK, done as Callback) as Subscribing;
    e.filters_ = list;
    e.qos_ = qos;
    write(c, (e.packet_ = encodeSubscribe(list, qos, e.id_)));
    if (!method) c.resub_ = e;
  }
  return c;
}

/** Connects (`again`: a reconnect attempt, from its timer), or reports `err`, why the last attempt could not start. */
function open(c: Client, again?: 0 | 1, err?: Error): void {
  let s: Socket;
  c.timer_ = 0;
  if (err) {
    c.emit("error", err);
    return gone(c);
  }
  if (again) c.emit("reconnect");
  try {
    s = c.socket_ = c.net_.connect(c.options_, event) as Socket;
  } catch (e) {
    // Espruino throws when it cannot create the socket at all (measured: a refused port on 2v29).
    // Reported on the next tick: Espruino queues an event with the listeners it has when emitted,
    // and in connect() the caller has not attached any yet. A timer, so end() stops it.
    c.timer_ = setTimeout(open, 0, c, 0, e) as any;
    return;
  }
  s.client_ = c;
  s.closing_ = 0;
  c.buf_ = "";
  c.at_ = c.skip_ = 0;
  c.timer_ = setTimeout(tick, c.options_.connectTimeout || 30000, c) as any;
  s.on("data", opening);
  s.on("drain", event);
  s.on("error", event);
  s.on("close", event);
}

// Socket listeners: Espruino calls them with the socket as `this`. A socket the client hung up on
// (closing_) is neither read nor written any more, and once the connection is over (gone) it is not
// the client's socket_ any more: what it still reports is not the client's business.

/**
 * Every event of the socket but "data", in one function (each function is JsVars for as long as the
 * module is loaded): "error" (an object with a message) and "close" (a boolean, hadError) end the
 * connection; the connect callback, then "drain" (the socket or nothing as the argument; Espruino emits
 * one right after connecting, and each time the socket has sent everything written to it): the first
 * time CONNECT goes, then the waiting calls may.
 */
function event(this: Socket, e?: any): void {
  const c = this.client_;
  if (e === !!e || (e && e.message)) {
    if (this == c.socket_) e.message ? c.emit("error", Error(e.message)) : gone(c);
  } else if (this.hello_) {
    c.quiet_ = 0;
    if (c.connected && !c.ended_) {
      c.unsent_ = -(c.options_.sendBuffer || 4096);
      if (c.queue_[0]) flush(c);
    }
  } else if (!this.closing_) {
    this.hello_ = 1;
    write(c, encodeConnect(c.options_));
  }
}

/**
 * Bytes from the broker before CONNACK, which must come first [MQTT-3.2.0-1]: anything else is a
 * protocol error. CONNACK: the connection is up (redeliver, resubscribe, keepalive, the waiting calls),
 * or refused. Then received() takes this read's rest and every later one (so its loop, which runs for
 * every packet, does not ask whether the connection is up).
 */
function opening(this: Socket, data: string): void {
  const c = this.client_,
    subs = c.subscriptions_,
    l = c.pending_;
  let p: any, e: any, list: any, i, fresh;
  if (!this.closing_)
    try {
      c.buf_ += data;
      if ((p = nextLong(c, c.max_, decodeClientBound))) {
        if (p.type != PacketType.CONNACK) malformed("unexpected packet type " + p.type + " before CONNACK");
        this.removeAllListeners("data");
        this.on("data", received);
        clearTimeout(c.timer_);
        c.timer_ = 0;
        if ((i = p.returnCode)) {
          // attempt_ is not reset, so a refused login backs off instead of looping; return codes [MQTT-3.2.2.3]
          e = Error("Connection refused: " + ",unacceptable protocol version,identifier rejected,server unavailable,bad username or password,not authorized".split(",")[i]);
          e.code = i;
          throw e; // (below: the connection ends with it)
        }
        // [MQTT-3.2.2-1] no session after a clean start, whatever the broker says
        fresh = !p.sessionPresent || c.options_.clean !== false;
        c.connected = true;
        // what was written before (CONNECT) went: the broker answered it
        c.unsent_ = -(c.options_.sendBuffer || 4096);
        c.since_ = Date.now() + 10000; // 10 s: then the connection counts as lasting
        c.idle_ = c.quiet_ = 0;
        if ((i = c.options_.keepalive * 500)) c.timer_ = setInterval(tick, i, c) as any;
        if (fresh) {
          if (WISP_QOS2) {
            // the broker has no session: neither has the store
            if (WISP_STORE) for (i in c.received_) keep(c, "i" + i);
            c.received_ = {};
          }
          // the broker has no session: the last resubscription is replaced by the one below
          if ((i = l.indexOf(c.resub_ as Pending)) >= 0) delete c.ids_[l.splice(i, 1)[0].id_];
        }
        for (e of redeliver(c)) write(c, e);
        if (fresh) {
          list = [];
          i = [];
          for (e in subs) {
            list.push(e);
            i.push(subs[e]);
          }
          if (list.length) subscription(c, list, i);
        }
        c.emit("connect", p);
        flush(c);
        received.call(this, "");
      }
    } catch (e) {
      hangUp(c, e as Error);
    }
}

/**
 * Bytes from the broker: every whole packet in them, in order; a malformed one ends the connection.
 * The loop is short on purpose: the interpreter reads it again for each packet.
 */
function received(this: Socket, data: string): void {
  const c = this.client_,
    max = c.max_;
  let p: any,
    b: any = c.buf_,
    n,
    i,
    k;
  // a socket hung up on is not read: its bytes are not the next connection's
  if (this.closing_) return;
  // codec's feed(), written out (one call less per read); n: where the read ends
  n = (b = c.buf_ = c.at_ < b.length ? b.substr(c.at_) + data : data).length;
  c.at_ = 0;
  // (one try for the loop, not one per packet: a malformed packet ends the connection, and the loop)
  try {
    // (the end of the read checked here, not by a call that finds nothing)
    while (!this.closing_ && (i = c.at_) < n)
      // the usual packet (all there, under 128 bytes, nothing to skip) is framed here, codec's
      // nextPacket() written out; a PUBACK as it should be, every QoS 1 publish's answer, is taken
      // without decoding a packet object (codec.ts decodes it the same way: packet id 0 is malformed
      // [MQTT-2.3.1-1]); nextLong() takes the others
      if ((k = b.charCodeAt(i + 1) + 2) < 130 && k <= max && i + k <= n && !c.skip_) {
        c.at_ = i + k;
        k == 4 && b.charCodeAt(i) == 0x40
          ? puback(c, ((b.charCodeAt(i + 2) << 8) | b.charCodeAt(i + 3)) || malformed("packet id 0"))
          : (p = decodeClientBound(b.charCodeAt(i), b.substr(i + 2, k - 2))).type == PacketType.PUBLISH
            ? published(c, p)
            : acked(c, p);
      } else if (!(p = nextLong(c, max, decodeClientBound))) break;
      else p.type == PacketType.PUBLISH ? published(c, p, p.over_) : acked(c, p);
  } catch (e) {
    hangUp(c, e as Error);
  }
  // alive (keepalive): a whole packet came; bytes alone do not count (a trickle, an over-size PUBLISH still skipped)
  if (c.at_ && !c.skip_) c.idle_ = 0;
}

/**
 * A PUBLISH: PUBACK for QoS 1, PUBREC for QoS 2; [MQTT-4.3.3-2] a QoS 2 resend with DUP is delivered
 * once. A message over maxPacket (`over`: why, from nextLong(), the only way such a packet comes) is
 * acknowledged too, so the broker does not send it again, and reported. (Told by its own argument: the
 * bytes still to skip are none when the topic filled maxPacket, and reading p.over_ on every message
 * would cost more than the parameter.)
 */
function published(c: Client, p: Packet, over?: string): void {
  const qos = p.qos as number,
    // (a new QoS 2 id is checked, and kept in the store, before its PUBREC leaves)
    again = WISP_QOS2 && qos > 1 && !acked(c, p);
  if (qos) write(c, encodeAck(qos + 3, p.messageId as number));
  if (!again) over ? c.emit("error", Error(over)) : c.emit("message", p.topic, p.payload, p);
}

/**
 * A PUBACK: the usual one, for the oldest QoS 1 publish, is done here (as acknowledge() would, which
 * finds that one first), in a function short enough for every QoS 1 publish to pass through; any
 * other goes on to acked().
 */
function puback(c: Client, id: number): true | void {
  const l = c.pending_,
    e = l[0];
  if (!e || e.id_ != id || e.wait_ != PacketType.PUBACK) return acked(c, { type: PacketType.PUBACK, messageId: id });
  l.shift();
  delete c.ids_[id];
  if (WISP_STORE && c.store_) c.store_.remove("o" + id);
  try {
    e.done_ && e.done_(null);
  } catch (x) {
    c.emit("error", x);
  }
  // a graceful end() waits for the last acknowledgement
  if (c.ended_) l.length || c.end();
  else if (c.queue_[0]) flush(c);
}

/**
 * PUBACK (other than puback()'s), PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, PINGRESP; a CONNACK here is
 * a second one. And a QoS 2 PUBLISH (from published(), whose QoS 0/1 messages read past a call, not this):
 * true the first time its id is seen, which the store is told, nothing for a resend before PUBREL
 * [MQTT-4.3.3-2]. Ids awaiting PUBREL are bounded (100; Mosquitto sends 20 at a time): past that the
 * broker is not releasing them, a protocol error, thrown before the PUBREC.
 */
function acked(c: Client, p: Packet): true | void {
  const type = p.type,
    id = p.messageId as number,
    l = c.pending_,
    g = p.granted as number[];
  let e: any, list: any, f, q, i, j;
  if (type == PacketType.CONNACK) malformed("unexpected packet type 2");
  else if (WISP_QOS2 && type == PacketType.PUBLISH) {
    if (c.received_[id]) return;
    if (Object.keys(c.received_).length > 99) throw Error("over 100 QoS 2 messages without PUBREL");
    c.received_[id] = 1;
    if (WISP_STORE) keep(c, "i" + id, "");
    return true;
  } else if (WISP_QOS2 && type == PacketType.PUBREL) {
    if (WISP_STORE && c.received_[id]) keep(c, "i" + id);
    delete c.received_[id];
    return write(c, encodeAck(PacketType.PUBCOMP, id));
  } else if (!(e = acknowledge(c, type, id, type == PacketType.SUBACK ? g : undefined))) return;
  // (a PINGRESP acknowledges nothing: that something came is all keepalive needs)
  else if (WISP_QOS2 && type == PacketType.PUBREC) {
    if (WISP_STORE) keep(c, "o" + id, e.packet_);
    return write(c, e.packet_);
  }
  if (WISP_STORE && (type == PacketType.PUBACK || type == PacketType.PUBCOMP)) keep(c, "o" + id);
  // A SUBACK's return codes: the granted filters are remembered for resubscribing (but not from a
  // resubscription: its filters are there already), and reported as MQTT.js does.
  if (type == PacketType.SUBACK)
    for (list = [], i = 0; i < g.length; i++) {
      // not a filter unsubscribed since (its UNSUBSCRIBE still waits: the broker answers in order)
      for (j = 0, f = e.filters_[i]; (q = l[j]) && !(q.wait_ == PacketType.UNSUBACK && (q.filters_ as string[]).indexOf(f) >= 0); j++);
      if (g[i] < 128 && e != c.resub_ && !q) c.subscriptions_[f] = e.qos_;
      list.push({ topic: f, qos: g[i] });
    }
  call(c, e.done_, null, list);
  // a graceful end() waits for the last acknowledgement
  if (c.ended_) l.length || c.end();
  else if (c.queue_[0]) flush(c);
}

/**
 * Writes to the socket unless it is hung up (Espruino throws on a write after end()), counting the
 * bytes until the socket drains. Acknowledgements go whatever the send buffer holds, so a broker that
 * sends and does not read would fill it: past a full send buffer (where publish() leaves the count, however
 * big its last message), sendBuffer more and what is in flight (a redelivery writes that much), the
 * link is dead.
 */
function write(c: Client, packet: string): void {
  const s = c.socket_;
  let n;
  if (s && !s.closing_) {
    s.write(packet);
    if ((c.unsent_ += packet.length) > 0 && c.unsent_ < Gate.CLOSED) {
      n = c.options_.sendBuffer || 4096;
      for (const e of c.pending_) n += e.packet_.length;
      if (c.unsent_ > n) hangUp(c, Error("send buffer: the broker does not read"));
    }
  }
}

/**
 * The client's timer. Connected: keepalive, every keepalive/2 seconds from CONNACK. A PINGREQ goes when
 * nothing was received, or nothing sent, for about the keepalive period [MQTT-3.1.2-23]; the link is
 * dead when nothing was received for 1 to 1.5 periods, or what was written was not all sent (no
 * "drain") for as long, however much the application writes. Not connected: no CONNACK in time; or, on
 * a socket hung up on, no "close" in time.
 */
function tick(c: Client): void {
  if (!c.connected || c.ended_) {
    c.timer_ = 0;
    // an end() whose acknowledgements did not come in time: the DISCONNECT all the same
    if (c.connected) write(c, "\xe0\0");
    (c.socket_ as Socket).closing_ ? gone(c) : hangUp(c, c.connected ? undefined : Error("connect timeout"));
  } else if (++c.idle_ > 2 || ++c.quiet_ > 2) hangUp(c, Error("keepalive timeout"));
  else if (c.idle_ > 1 || c.quiet_ > 1) write(c, "\xc0\0"); // PINGREQ
}

/**
 * Ends the connection (reporting `err`, a protocol error, a refusal or a timeout, if given): ends the
 * socket, if not yet, and waits for its "close". At most 5 s: Espruino's end() sends what is left
 * first, and on a stalled link that never happens (the socket keeps it until the peer reads).
 */
function hangUp(c: Client, err?: Error): void {
  const s = c.socket_ as Socket;
  if (err) c.emit("error", err);
  if (!s.closing_) {
    c.connected = false;
    c.unsent_ = Gate.CLOSED;
    clearTimeout(c.timer_);
    s.closing_ = 1;
    s.end();
    c.timer_ = setTimeout(tick, 5000, c) as any;
  }
}

/** The connection is over: "close", then a reconnect later, or the end. */
function gone(c: Client): void {
  const was = c.since_,
    period = c.options_.reconnectPeriod;
  c.connected = false;
  c.unsent_ = Gate.CLOSED;
  clearTimeout(c.timer_);
  c.timer_ = 0;
  c.socket_ = c.since_ = undefined;
  // A lost connection starts the backoff again, unless it died within 10 s of its CONNACK: n of those
  // in a row wait as long as n failed attempts, so a connection that dies right after every CONNACK
  // (a message it cannot take, a broker that drops it) backs off like a refusal.
  if (was) c.attempt_ = Date.now() < was ? c.short_++ : (c.short_ = 0);
  if (!c.ended_ && period != 0) c.timer_ = setTimeout(open, backoff(c.attempt_++, period || 1000, Math.random()), c, 1) as any;
  c.emit("close");
  if (was) c.emit("offline");
  if (c.ended_) fail(c, Error("client ended"), 2);
  else if (!c.timer_) fail(c, Error("connection closed"));
}

/**
 * Fails everything waiting with `err`: queued calls and (`only` not 1) the session's, so nothing is
 * dropped unheard. `only` 2: the client has ended, so then the callbacks of end() run, and "end" is
 * emitted (unless it was already): what they throw comes before it.
 */
function fail(c: Client, err: Error, only?: 1 | 2): void {
  for (const w of c.queue_.splice(0)) call(c, w[2], err);
  if (only != 1) for (const e of c.pending_.splice(0)) call(c, e.done_, err);
  if (only == 2) {
    for (const f of (c.ended_ as Callback[]).splice(0)) call(c, f, null);
    if (!c.finished_) {
      c.emit("end");
      c.finished_ = 1;
    }
  }
}

/**
 * Whether an API call can go now: its arguments are valid (`bad` says why not), the client is
 * connected, nothing is queued before it, and there is room. Otherwise the call waits in the queue
 * to be made again with the same `args`, or fails when the queue is full or no connection will come.
 */
function request(c: Client, bad: string, done: Callback | undefined, method: Function, args: IArguments): boolean | void {
  const q = c.queue_,
    // flush() replays the head of the queue: that call goes first, and calls its callbacks make go behind
    replayed = c.replaying_;
  c.replaying_ = 0;
  if (!bad) {
    if (c.ended_) bad = "client ended";
    else if (!c.socket_ && !c.timer_) bad = "connection closed";
    else if ((replayed || !q.length) && c.unsent_ < 0 && !c.pending_[c.window_]) return true; // room: in flight, and in the send buffer
    else if (q.length >= (c.options_.queueSize || 16)) bad = "queue full";
    else return void (q.push([method, args, done]), (c.topic_ = NaN));
  }
  call(c, done, Error(bad));
}

/** Makes the waiting calls again, in order, while they can go. */
function flush(c: Client): void {
  const q = c.queue_;
  let w;
  while (q[0] && c.unsent_ < 0 && !c.pending_[c.window_]) {
    w = q.shift() as [Function, IArguments, Callback];
    // only when others still wait (request() reads and clears it)
    c.replaying_ = q.length ? 1 : 0;
    w[0].apply(c, w[1]);
  }
}
