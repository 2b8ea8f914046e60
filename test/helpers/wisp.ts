// Wisp (the built dist/mqtt.js, run in the host simulator's Espruino emulation) and MQTT.js peers
// for integration tests, plus promise helpers that wait on events with timeouts instead of sleeping.
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { loadMqtt } from "../../host-sim/runtime.ts";

export interface WispConnack {
  sessionPresent: boolean;
  returnCode: number;
}

export interface WispPacket {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
  dup: boolean;
  messageId?: number;
}

export interface WispGranted {
  topic: string;
  qos: number;
}

type Callback = (err?: Error | null) => void;

/** The client API of dist/mqtt.js (/tmp/client-api.md), as far as the tests use it. */
export interface WispClient {
  connected: boolean;
  on(event: "connect", listener: (connack: WispConnack) => void): unknown;
  on(event: "message", listener: (topic: string, payload: string, packet: WispPacket) => void): unknown;
  on(event: "error", listener: (err: Error & { code?: number }) => void): unknown;
  on(event: "close" | "offline" | "reconnect" | "end", listener: () => void): unknown;
  subscribe(topic: string | string[], options: { qos?: number }, callback: (err: Error | null | undefined, granted?: WispGranted[]) => void): unknown;
  unsubscribe(topic: string | string[], callback: Callback): unknown;
  publish(topic: string, payload: string | Uint8Array, options: { qos?: number; retain?: boolean }, callback: Callback): unknown;
  end(force?: boolean, callback?: () => void): unknown;
}

export interface WispOptions {
  clientId?: string;
  username?: string;
  password?: string;
  keepalive?: number;
  clean?: boolean;
  connectTimeout?: number;
  reconnectPeriod?: number;
  will?: { topic: string; payload: string | Uint8Array; qos?: number; retain?: boolean };
  ca?: string;
  cert?: string;
  key?: string;
  maxPacket?: number;
  queueSize?: number;
  inflight?: number;
  sendBuffer?: number;
}

export interface WispRuntime {
  /** Closes every socket without a DISCONNECT (an abrupt drop) and clears the timers. */
  dispose(): void;
  /** Device console lines. */
  logs: string[];
}

export interface Received {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
  dup: boolean;
}

/** Records messages and lets a test wait for the one it expects. */
export class Inbox {
  readonly messages: Received[] = [];
  private waiters: { match: (m: Received) => boolean; resolve: (m: Received) => void }[] = [];

  push(message: Received): void {
    this.messages.push(message);
    this.waiters = this.waiters.filter((waiter) => {
      if (!waiter.match(message)) return true;
      waiter.resolve(message);
      return false;
    });
  }

  /** The first message (already received or yet to come) on `topic` or matching the predicate. */
  next(match: string | ((m: Received) => boolean), timeoutMs = 5_000): Promise<Received> {
    const test = typeof match === "string" ? (m: Received) => m.topic === match : match;
    const found = this.messages.find(test);
    if (found) return Promise.resolve(found);
    return withTimeout(
      new Promise<Received>((resolve) => this.waiters.push({ match: test, resolve })),
      timeoutMs,
      `no message matching ${typeof match === "string" ? match : "the predicate"} (got: ${this.messages.map((m) => m.topic).join(", ") || "nothing"})`,
    );
  }

  on(topic: string): Received[] {
    return this.messages.filter((m) => m.topic === topic);
  }
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A string whose chars are bytes (what Espruino sockets and the Wisp client hand out) as a Buffer. */
export function bytesOf(byteString: string): Buffer {
  for (let i = 0; i < byteString.length; i++) {
    if (byteString.charCodeAt(i) > 255) throw new Error(`not a byte string: char ${i} is U+${byteString.charCodeAt(i).toString(16)}`);
  }
  return Buffer.from(byteString, "latin1");
}

export interface Wisp {
  client: WispClient;
  runtime: WispRuntime;
  inbox: Inbox;
  errors: (Error & { code?: number })[];
  /** Every "connect" event's CONNACK, in order. */
  connacks: WispConnack[];
}

/**
 * The built client under test: dist/mqtt.js, or the file named by WISP_MQTT_JS (to run the suites
 * against a build made elsewhere, e.g. one that does not yet fit the size budget).
 */
export const MQTT_BUNDLE = process.env.WISP_MQTT_JS;

let unique = 0;
/** An id unlikely to clash across tests, runs and parallel files: Mosquitto and aedes outlive single tests. */
export function uniqueId(prefix: string): string {
  return `${prefix}-${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}${(unique++).toString(36)}`;
}

/** Starts and tracks Wisp clients and MQTT.js peers so each test ends them all. */
export class Clients {
  private runtimes: WispRuntime[] = [];
  private peers: MqttClient[] = [];

  wisp(url: string, options: WispOptions = {}): Wisp {
    const loaded = loadMqtt(MQTT_BUNDLE ? { path: MQTT_BUNDLE } : {});
    this.runtimes.push(loaded.runtime);
    const client: WispClient = loaded.mqtt.connect(url, { reconnectPeriod: 0, ...options });
    const wisp: Wisp = { client, runtime: loaded.runtime, inbox: new Inbox(), errors: [], connacks: [] };
    client.on("message", (topic, payload, packet) =>
      wisp.inbox.push({ topic, payload: bytesOf(payload), qos: packet.qos, retain: packet.retain, dup: packet.dup }),
    );
    client.on("error", (err) => wisp.errors.push(err));
    client.on("connect", (connack) => wisp.connacks.push(connack));
    return wisp;
  }

  async peer(url: string, options: IClientOptions = {}): Promise<{ client: MqttClient; inbox: Inbox }> {
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5_000, ...options });
    this.peers.push(client);
    const inbox = new Inbox();
    client.on("message", (topic, payload, packet) =>
      inbox.push({ topic, payload, qos: packet.qos, retain: packet.retain, dup: packet.dup }),
    );
    return { client, inbox };
  }

  async closeAll(): Promise<void> {
    const runtimes = this.runtimes.splice(0);
    const peers = this.peers.splice(0);
    for (const runtime of runtimes) runtime.dispose();
    await Promise.all(peers.map((peer) => peer.endAsync(true)));
  }
}

/** Resolves on the client's next `event` (or now, for "connect", when it is connected already). */
export function nextEvent<T = unknown>(client: WispClient, event: "connect" | "close" | "offline" | "reconnect" | "end" | "error", timeoutMs = 5_000): Promise<T> {
  let fired = false;
  return withTimeout(
    new Promise<T>((resolve) => {
      client.on(event as "close", ((value: T) => {
        // The Wisp client has no removeListener (Espruino events); ignore later calls instead.
        if (fired) return;
        fired = true;
        resolve(value);
      }) as () => void);
    }),
    timeoutMs,
    `Wisp client emitted no "${event}"`,
  );
}

export async function connected(wisp: Wisp, timeoutMs = 5_000): Promise<WispConnack> {
  if (wisp.client.connected && wisp.connacks.length) return wisp.connacks[wisp.connacks.length - 1];
  const errors = wisp.errors.length;
  try {
    return await nextEvent<WispConnack>(wisp.client, "connect", timeoutMs);
  } catch (err) {
    const seen = wisp.errors.slice(errors).map((e) => e.message).join("; ");
    throw new Error(`${(err as Error).message}${seen ? ` (errors: ${seen})` : ""}`);
  }
}

export function subscribe(client: WispClient, topic: string | string[], qos = 0, timeoutMs = 5_000): Promise<WispGranted[]> {
  return withTimeout(
    new Promise<WispGranted[]>((resolve, reject) => {
      client.subscribe(topic, { qos }, (err, granted) => (err ? reject(err) : resolve(granted ?? [])));
    }),
    timeoutMs,
    `no SUBACK for ${String(topic)}`,
  );
}

export function unsubscribe(client: WispClient, topic: string | string[], timeoutMs = 5_000): Promise<void> {
  return withTimeout(
    new Promise<void>((resolve, reject) => client.unsubscribe(topic, (err) => (err ? reject(err) : resolve()))),
    timeoutMs,
    `no UNSUBACK for ${String(topic)}`,
  );
}

export function publish(
  client: WispClient,
  topic: string,
  payload: string | Uint8Array,
  options: { qos?: number; retain?: boolean } = {},
  timeoutMs = 5_000,
): Promise<void> {
  return withTimeout(
    new Promise<void>((resolve, reject) => client.publish(topic, payload, options, (err) => (err ? reject(err) : resolve()))),
    timeoutMs,
    `publish callback for ${topic} (QoS ${options.qos ?? 0}) never fired`,
  );
}

export function end(client: WispClient, force = false, timeoutMs = 5_000): Promise<void> {
  return withTimeout(new Promise<void>((resolve) => client.end(force, () => resolve())), timeoutMs, "end() callback never fired");
}
