// A scripted MQTT 3.1.1 broker for behaviour tests of the client: a node:net server on 127.0.0.1
// that parses what the client sends with the project's own codec, records every packet with the
// time of the (usually fake) clock at which it arrived, and lets the test decide what to answer.
//
// By default it answers like a conforming broker (see `respond`); a test replaces `broker.script`
// to ignore, delay or falsify answers, and writes packets or raw bytes itself with `send`/`write`.
// Fake time does not move while sockets do their IO, so a packet's `at` is the device time at which
// the client wrote it, provided the test waits for it (`next`) before ticking the clock again.
import net from "node:net";
import { decoder, type Packet } from "../../firmware/mqtt/codec.ts";
import { decodeAny, encode } from "../../firmware/mqtt/codec-server.ts";
import { withTimeout } from "./wisp.ts";

export const TYPES = ["reserved", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
  "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT"] as const;
export type TypeName = (typeof TYPES)[number];

/** The type number of a packet name, for building packets: `{ type: type("PUBACK"), messageId: 1 }`. */
export function type(name: TypeName): number {
  return TYPES.indexOf(name);
}

/** A packet the client sent, as the broker received it. */
export interface Received {
  /** Position in `broker.packets`. */
  index: number;
  /** Clock time at arrival. */
  at: number;
  conn: Connection;
  name: TypeName;
  packet: Packet;
  /** The packet's bytes as sent, one char per byte. */
  bytes: string;
}

export interface Connection {
  /** 1 for the first connection the broker accepted, then 2, ... */
  id: number;
  /** Clock time when the TCP connection was accepted. */
  at: number;
  /** Clock time when it closed, once it has. */
  closedAt?: number;
  /** Resolves when the socket has closed, from either side. */
  closed: Promise<void>;
  socket: net.Socket;
  send(packet: Packet): void;
  /** Raw bytes: a Buffer, or a string whose chars are bytes. */
  write(bytes: string | Buffer): void;
  /** Closes abruptly (TCP reset), as a broker crash or a lost link does. */
  drop(): void;
}

export type Match = TypeName | ((r: Received) => boolean);

export type Script = (r: Received, broker: ScriptedBroker) => void;

export interface ScriptedBrokerOptions {
  /** The time to stamp packets and connections with, e.g. `() => clock.now` of a fake clock. */
  now: () => number;
  /** Called for each accepted connection before anything is read, e.g. to drop it at once. */
  onConnection?: (conn: Connection) => void;
  /** Largest packet accepted from the client (default 1 MB). */
  maxPacket?: number;
}

export class ScriptedBroker {
  readonly connections: Connection[] = [];
  /** Every packet every client sent, in order of arrival. */
  readonly packets: Received[] = [];
  /** Decoding errors: the client sent something malformed (the connection is then dropped). */
  readonly malformed: { conn: Connection; message: string }[] = [];
  /** What to do with each packet received; `respond` unless a test says otherwise. */
  script: Script = (r) => this.respond(r);
  /** SessionPresent of the CONNACK `respond` sends. */
  sessionPresent = false;
  /** Return code of the CONNACK `respond` sends. */
  returnCode = 0;
  onConnection: ((conn: Connection) => void) | undefined;
  url = "";
  port = 0;

  private readonly server: net.Server;
  private waiters: { check: () => boolean }[] = [];
  private readonly now: () => number;
  private readonly maxPacket: number;

  constructor(options: ScriptedBrokerOptions) {
    this.now = options.now;
    this.onConnection = options.onConnection;
    this.maxPacket = options.maxPacket ?? 1 << 20;
    this.server = net.createServer((socket) => this.accept(socket));
  }

  /** Listens on 127.0.0.1, on `port` or (0) a free one. */
  async listen(port = 0): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, "127.0.0.1", resolve);
    });
    this.port = (this.server.address() as net.AddressInfo).port;
    this.url = `mqtt://127.0.0.1:${this.port}`;
    return this;
  }

  /** The newest connection. */
  get conn(): Connection {
    const c = this.connections[this.connections.length - 1];
    if (!c) throw new Error("no client has connected to the scripted broker");
    return c;
  }

  /** How many packets have been received so far: pass it as `from` to wait only for later ones. */
  mark(): number {
    return this.packets.length;
  }

  /** Received packets from index `from` on that match. */
  seen(match: Match, from = 0): Received[] {
    const test = matcher(match);
    return this.packets.slice(from).filter(test);
  }

  /** The first packet at index `from` or later that matches: received already, or the next to come. */
  next(match: Match, from = 0, timeoutMs = 5_000): Promise<Received> {
    const test = matcher(match);
    return this.until(
      () => this.packets.slice(from).find(test),
      timeoutMs,
      () => `no ${typeof match === "string" ? match : "matching packet"} from the client after packet ${from}`,
    );
  }

  /** Connection number `id` (1-based), once it has been accepted. */
  connection(id: number, timeoutMs = 5_000): Promise<Connection> {
    return this.until(() => this.connections[id - 1], timeoutMs, () => `no connection #${id} (have ${this.connections.length})`);
  }

  /** Resolves with `get()`'s value once it is defined, re-checked after every socket event. */
  until<T>(get: () => T | undefined, timeoutMs: number, what: () => string): Promise<T> {
    const now = get();
    if (now !== undefined) return Promise.resolve(now);
    let waiter!: { check: () => boolean };
    const found = new Promise<T>((resolve) => {
      waiter = {
        check: () => {
          const value = get();
          if (value === undefined) return false;
          resolve(value);
          return true;
        },
      };
      this.waiters.push(waiter);
    });
    return withTimeout(found, timeoutMs, `${what()}\n${this.transcript()}`).finally(() => {
      this.waiters = this.waiters.filter((w) => w !== waiter);
    });
  }

  /** What a conforming broker answers: CONNACK, PINGRESP, SUBACK (as requested), UNSUBACK, PUBACK/PUBREC, PUBCOMP. */
  respond(r: Received): void {
    const p = r.packet;
    const id = p.messageId;
    switch (r.name) {
      case "CONNECT":
        return r.conn.send({ type: type("CONNACK"), sessionPresent: this.returnCode ? false : this.sessionPresent, returnCode: this.returnCode });
      case "PINGREQ":
        return r.conn.send({ type: type("PINGRESP") });
      case "SUBSCRIBE":
        return r.conn.send({ type: type("SUBACK"), messageId: id, granted: p.subscriptions.map((s: { qos: number }) => s.qos) });
      case "UNSUBSCRIBE":
        return r.conn.send({ type: type("UNSUBACK"), messageId: id });
      case "PUBLISH":
        if (p.qos) r.conn.send({ type: type(p.qos === 1 ? "PUBACK" : "PUBREC"), messageId: id });
        return;
      case "PUBREL":
        return r.conn.send({ type: type("PUBCOMP"), messageId: id });
      case "DISCONNECT":
        r.conn.socket.end();
    }
  }

  /** The whole exchange, one line per packet or connection event, for failure messages and reports. */
  transcript(): string {
    const lines: { at: number; order: number; text: string }[] = [];
    let order = 0;
    for (const c of this.connections) {
      lines.push({ at: c.at, order: order++, text: `#${c.id} accepted` });
      if (c.closedAt !== undefined) lines.push({ at: c.closedAt, order: Infinity, text: `#${c.id} closed` });
    }
    for (const r of this.packets) lines.push({ at: r.at, order: order++, text: `#${r.conn.id} client -> ${describe(r.packet)}` });
    for (const m of this.malformed) lines.push({ at: Infinity, order: order++, text: `#${m.conn.id} client sent malformed bytes: ${m.message}` });
    return lines
      .sort((a, b) => a.at - b.at || a.order - b.order)
      .map((l) => `  t=${l.at} ${l.text}`)
      .join("\n");
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.connections) c.socket.destroy();
    await closed;
  }

  private accept(socket: net.Socket): void {
    let closedResolve!: () => void;
    const conn: Connection = {
      id: this.connections.length + 1,
      at: this.now(),
      closed: new Promise<void>((resolve) => (closedResolve = resolve)),
      socket,
      send: (packet) => conn.write(encode(packet)),
      write: (bytes) => {
        if (!socket.destroyed) socket.write(typeof bytes === "string" ? Buffer.from(bytes, "latin1") : bytes);
      },
      drop: () => socket.resetAndDestroy(),
    };
    this.connections.push(conn);
    socket.on("error", () => {});
    socket.on("close", () => {
      conn.closedAt = this.now();
      closedResolve();
      this.wake();
    });
    const next = decoder(this.maxPacket, decodeAny);
    // the same stream, kept undecoded to cut each packet's bytes from
    let raw = "";
    socket.on("data", (chunk) => {
      let data: string | undefined = chunk.toString("latin1");
      raw += data;
      for (;;) {
        let packet: Packet | undefined;
        try {
          packet = next(data);
        } catch (err) {
          this.malformed.push({ conn, message: (err as Error).message });
          socket.destroy();
          break;
        }
        data = undefined;
        if (!packet) break;
        const size = packetSize(raw);
        const r: Received = { index: this.packets.length, at: this.now(), conn, name: TYPES[packet.type], packet, bytes: raw.slice(0, size) };
        raw = raw.slice(size);
        this.packets.push(r);
        this.script(r, this);
        if (socket.destroyed) break;
      }
      this.wake();
    });
    this.onConnection?.(conn);
    this.wake();
  }

  private wake(): void {
    this.waiters = this.waiters.filter((w) => !w.check());
  }
}

export async function startScriptedBroker(options: ScriptedBrokerOptions, port = 0): Promise<ScriptedBroker> {
  return new ScriptedBroker(options).listen(port);
}

/** A port on 127.0.0.1 that nothing listens on (it was free a moment ago): connecting is refused. */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Bytes of the whole packet at the start of `s`: header, Remaining Length [MQTT-2.2.3], body. */
function packetSize(s: string): number {
  let length = 0;
  let i = 1;
  for (let mul = 1; ; mul *= 128) {
    const c = s.charCodeAt(i++);
    length += (c & 127) * mul;
    if (!(c & 128)) return i + length;
  }
}

function matcher(match: Match): (r: Received) => boolean {
  return typeof match === "string" ? (r) => r.name === match : match;
}

/** One packet in a line: `PUBLISH qos 1 id 3 dup "a/b" "payload"`. */
export function describe(p: Packet): string {
  const parts: string[] = [TYPES[p.type] ?? `type ${p.type}`];
  if (p.qos !== undefined) parts.push(`qos ${p.qos}`);
  if (p.messageId !== undefined) parts.push(`id ${p.messageId}`);
  if (p.dup) parts.push("dup");
  if (p.retain) parts.push("retain");
  if (p.topic !== undefined) parts.push(JSON.stringify(p.topic), JSON.stringify(p.payload));
  if (p.subscriptions) parts.push(p.subscriptions.map((s: { topic: string; qos: number }) => `${s.topic}@${s.qos}`).join(","));
  if (p.topics) parts.push(p.topics.join(","));
  if (p.type === 1) parts.push(`clientId ${JSON.stringify(p.clientId)} keepalive ${p.keepalive} clean ${p.clean}`);
  if (p.sessionPresent) parts.push("sessionPresent");
  if (p.returnCode) parts.push(`rc ${p.returnCode}`);
  return parts.join(" ");
}
