// The MQTT 3.1.1 client: the public API in the style of MQTT.js, over an Espruino socket from
// require("net") or require("tls"). One connection at a time; the session outlives it.
//
// Written as one closure rather than a class: on the device the minified source is also the RAM
// it takes, and closure variables minify to one letter where `this.x` does not.

import { ConnectOptions, DISCONNECT, PINGREQ, Packet, PacketType, Will, decodeClientBound, decoder, encodeAck, encodeConnect, encodePublish, encodeSubscribe, encodeUnsubscribe } from "./codec";
import { Callback, abandon, acknowledge, backoff, newSession, receive, redeliver, track } from "./session";
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

export interface Client {
  connected: boolean;
  publish(topic: string, message: string | Uint8Array, options?: PublishOptions | Callback, callback?: Callback): Client;
  subscribe(topic: string | string[], options?: PublishOptions | Callback, callback?: Callback): Client;
  unsubscribe(topic: string | string[], options?: object | Callback, callback?: Callback): Client;
  end(force?: boolean | Callback, callback?: Callback): Client;
}

// CONNACK return codes 1-5 [MQTT-3.2.2.3]
const REFUSED = ",unacceptable protocol version,identifier rejected,server unavailable,bad username or password,not authorized".split(",");

function noop() {}

/**
 * Clears a timer that may have fired already and returns 0 to store in its place. Espruino reuses
 * timer ids as soon as they are free, so a stale id would clear somebody else's timer: every timer
 * variable here is zeroed when its timer fires or is cleared. And Espruino rejects clearTimeout(undefined).
 */
function clear(timer: number): 0 {
  if (timer) clearTimeout(timer);
  return 0;
}

/** Payloads are strings whose chars are bytes; a Uint8Array becomes one. */
function bytes(payload: string | Uint8Array): string {
  return typeof payload == "string" ? payload : E.toString(payload);
}

export function connect(url: string, options?: ClientOptions): Client {
  const o = options || {},
    proto = url.split(":")[0],
    // "mqtt://host:port/": the third part is the authority
    authority = (url.split("/")[2] || "").split(":"),
    tls = proto == "mqtts",
    period = o.reconnectPeriod == null ? 1000 : o.reconnectPeriod,
    session = newSession(),
    /** subscriptions to restore when the broker has no session for us: filter -> requested QoS */
    subscriptions: { [filter: string]: number } = {},
    /** work waiting for a connection or a free in-flight slot, in order, with the callback to fail */
    queue: [() => void, Callback][] = [],
    client: Client = { connected: false, publish, subscribe, unsubscribe, end },
    emit = client.emit.bind(client);
  let socket: Espruino.Socket | undefined,
    attempt = 0,
    ended: Callback | undefined,
    pingTimer = 0,
    pongTimer = 0,
    connectTimer = 0,
    reconnectTimer = 0;

  if (!/^(mqtts?|tcp)$/.test(proto)) throw Error("unsupported URL " + url + ": use mqtt://host:port or mqtts://host:port");
  if (o.clientId == null) o.clientId = "wisp_" + ((Math.random() * 1e9) | 0).toString(36);
  if (o.keepalive == null) o.keepalive = 60;
  if (o.will) o.will.payload = bytes(o.will.payload);
  // the options double as the socket's: host, port, and ca, cert, key for TLS
  (o as any).host = authority[0];
  (o as any).port = +authority[1] || (tls ? 8883 : 1883);
  const keepalive = (o.keepalive as number) * 1000;

  function open(): void {
    const next = decoder(o.maxPacket || 4096, decodeClientBound),
      s = (socket = require(tls ? "tls" : "net").connect(o, function () {
        write(encodeConnect(o as ConnectOptions));
      }) as Espruino.Socket);
    connectTimer = setTimeout(function () {
      connectTimer = 0;
      drop("connect timeout");
    }, o.connectTimeout || 30000);
    s.on("data", function (data) {
      for (let p: Packet | undefined; ; data = "") {
        try {
          if (!(p = next(data))) return;
        } catch (e) {
          return drop((e as Error).message);
        }
        try {
          handle(p);
        } catch (e) {
          // a throwing event handler of the user's must not stop the packets behind it
          emit("error", e);
        }
      }
    });
    s.on("error", function (e: any) {
      emit("error", Error(e.message || e));
    });
    s.on("close", closed);
  }

  function write(packet: string): void {
    if (!socket) return;
    socket.write(packet);
    // [MQTT-3.1.2-23] a PINGREQ when nothing else was sent within the keepalive period
    pingTimer = clear(pingTimer);
    if (keepalive)
      pingTimer = setTimeout(function () {
        pingTimer = 0;
        write(PINGREQ);
        if (!pongTimer)
          pongTimer = setTimeout(function () {
            pongTimer = 0;
            drop("keepalive timeout");
          }, keepalive);
      }, keepalive);
  }

  /** Closes the connection on a protocol error or a timeout; the close handler reconnects. */
  function drop(reason: string): void {
    emit("error", Error(reason));
    if (socket) socket.end();
  }

  function closed(): void {
    const was = client.connected;
    socket = undefined;
    client.connected = false;
    pingTimer = clear(pingTimer);
    pongTimer = clear(pongTimer);
    connectTimer = clear(connectTimer);
    emit("close");
    if (was) emit("offline");
    if (ended) finish();
    else if (period)
      reconnectTimer = setTimeout(function () {
        reconnectTimer = 0;
        emit("reconnect");
        open();
      }, backoff(attempt++, period, Math.random()));
    else fail(Error("connection closed"));
  }

  function handle(p: Packet): void {
    const type = p.type,
      id = p.messageId as number,
      rc = p.returnCode as number;
    let e: any;
    if (type == PacketType.CONNACK) {
      connectTimer = clear(connectTimer);
      if (rc) {
        // attempt is not reset, so a refused login backs off instead of looping
        e = Error("Connection refused: " + REFUSED[rc]);
        e.code = rc;
        emit("error", e);
        return socket && socket.end();
      }
      attempt = 0;
      client.connected = true;
      if (!p.sessionPresent) {
        session.received_ = {};
        e = Object.keys(subscriptions);
        if (e.length) send(PacketType.SUBACK, encodeSubscribe.bind(null, e, e.map((t: string) => subscriptions[t])), noop);
      }
      redeliver(session).forEach(write);
      emit("connect", p);
      flush();
    } else if (type == PacketType.PUBLISH) {
      if (p.qos == 2) {
        write(encodeAck(PacketType.PUBREC, id));
        if (!receive(session, id)) return; // [MQTT-4.3.3-2] a resend with DUP: deliver once
      } else if (p.qos) write(encodeAck(PacketType.PUBACK, id));
      emit("message", p.topic, p.payload, p);
    } else if (type == PacketType.PUBREL) {
      delete session.received_[id];
      write(encodeAck(PacketType.PUBCOMP, id));
    } else if (type == PacketType.PINGRESP) {
      pongTimer = clear(pongTimer);
    } else if ((e = acknowledge(session, type, id))) {
      if (type == PacketType.PUBREC) write(e.packet_);
      else e.done_(null, p.granted);
      // a graceful end() waits for the last acknowledgement
      if (ended) session.pending_.length || end(0, ended);
      else flush();
    }
  }

  function send(wait: number, encode: (id: number) => string, done: Callback): void {
    write(track(session, wait, encode, done));
  }

  /** True when `work` can go now: connected, nothing queued before it, room in flight. Else it waits, or fails when the queue is full. */
  function ready(work: () => void, done: Callback): boolean | void {
    if (client.connected && !queue.length && session.pending_.length < (o.inflight || 8)) return true;
    if (ended || queue.length >= (o.queueSize || 16)) done(Error(ended ? "client ended" : "queue full"));
    else queue.push([work, done]);
  }

  function flush(): void {
    while (client.connected && queue.length && session.pending_.length < (o.inflight || 8)) (queue.shift() as [() => void, Callback])[0]();
  }

  /** Fails everything waiting: nothing is dropped without its callback hearing of it. */
  function fail(err: Error): void {
    queue.splice(0).forEach(function (w) {
      w[1](err);
    });
    abandon(session, err);
  }

  /**
   * Runs `work` for an API call now or, while offline or the window is full, later by calling the
   * method again with the same `args`. `bad` says why the arguments cannot be used.
   */
  function request(bad: string, done: Callback, method: Function, args: IArguments, work: () => void): Client {
    if (bad) done(Error(bad));
    else if (ready(function () {
      method.apply(client, args);
    }, done)) work();
    return client;
  }

  function publish(topic: string, message: string | Uint8Array, opts?: any, callback?: Callback): Client {
    const qos = (opts && opts.qos) | 0,
      retain = opts && opts.retain,
      done = callbackOf(opts, callback);
    return request(topicError(topic) || qosError(qos), done, publish, arguments, function () {
      const payload = bytes(message);
      if (qos) send(qos + 3, encodePublish.bind(null, topic, payload, qos, retain, 0), done); // waits for PUBACK (4) or PUBREC (5)
      else {
        write(encodePublish(topic, payload, 0, retain, 0, 0));
        done(null);
      }
    });
  }

  function subscribe(topic: string | string[], opts?: any, callback?: Callback): Client {
    const topics = typeof topic == "string" ? [topic] : topic,
      qos = (opts && opts.qos) | 0,
      done = callbackOf(opts, callback);
    return request(topics.map(filterError).join("") || qosError(qos), done, subscribe, arguments, function () {
      send(PacketType.SUBACK, encodeSubscribe.bind(null, topics, topics.map(() => qos)), function (err, granted: number[]) {
        if (err) return done(err);
        done(
          null,
          granted.map(function (g, i) {
            if (g < 128) subscriptions[topics[i]] = qos;
            return { topic: topics[i], qos: g };
          }),
        );
      });
    });
  }

  function unsubscribe(topic: string | string[], opts?: any, callback?: Callback): Client {
    const topics = typeof topic == "string" ? [topic] : topic,
      done = callbackOf(opts, callback);
    return request(topics.map(filterError).join(""), done, unsubscribe, arguments, function () {
      topics.forEach(function (t) {
        delete subscriptions[t];
      });
      send(PacketType.UNSUBACK, encodeUnsubscribe.bind(null, topics), done);
    });
  }

  /**
   * Disconnects and stops reconnecting. Without `force`, messages in flight get their acknowledgements
   * first, then a DISCONNECT goes, so the broker discards the will [MQTT-3.14.4-3]. Queued work fails.
   */
  function end(force?: any, callback?: Callback): Client {
    const s = socket;
    ended = callbackOf(force, callback);
    reconnectTimer = clear(reconnectTimer);
    queue.splice(0).forEach(function (w) {
      w[1](Error("client ended"));
    });
    if (force === true || !session.pending_.length || !client.connected) {
      if (s) {
        if (force !== true && client.connected) write(DISCONNECT);
        client.connected = false;
        s.end();
      } else finish();
    }
    return client;
  }

  function finish(): void {
    fail(Error("client ended"));
    emit("end");
    (ended as Callback)(null);
  }

  open();
  return client;
}

/** Options are optional, as in MQTT.js: the callback may come in their place. */
function callbackOf(options: any, callback?: Callback): Callback {
  return typeof options == "function" ? options : callback || noop;
}

function filterError(t: string): string {
  return topicError(t, true);
}

function qosError(qos: number): string {
  return qos > 2 || qos < 0 ? "invalid QoS " + qos : "";
}
