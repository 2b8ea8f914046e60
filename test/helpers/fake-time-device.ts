// A simulated device on a fake clock, running the BUILT client (dist/mqtt.js), wired to a scripted
// broker. Every device timer, Date and getTime follow `clock`; sockets are real, so tests await socket
// IO with promises (the broker's `next`, a device's `next`) and then move time with `clock.tick`.
import FakeTimers from "@sinonjs/fake-timers";
import { afterEach, beforeEach } from "vitest";
import { loadMqtt, type Runtime } from "../../host-sim/runtime.ts";
import { type Connection, type Received, type ScriptedBroker, type ScriptedBrokerOptions, startScriptedBroker, type } from "./scripted-broker.ts";
import { MQTT_BUNDLE, withTimeout, type WispClient, type WispOptions } from "./wisp.ts";

export type FakeClock = ReturnType<typeof FakeTimers.createClock>;

export type EventName = "connect" | "close" | "offline" | "reconnect" | "error" | "end" | "message";
export const EVENT_NAMES: EventName[] = ["connect", "close", "offline", "reconnect", "error", "end", "message"];

/** One event the client emitted, with the device time at which its listener ran. */
export interface DeviceEvent {
  index: number;
  name: EventName;
  at: number;
  args: any[];
}

/** Topic of the broker's sync messages (see `Rig.sync`); left out of `messages()`. */
export const SYNC_TOPIC = "$sync";

/** One client in a runtime, with every event it emitted. */
export class Device {
  readonly events: DeviceEvent[] = [];
  private waiters: (() => boolean)[] = [];

  constructor(
    readonly client: WispClient,
    readonly runtime: Runtime,
    private readonly clock: FakeClock,
    readonly label: string,
  ) {
    for (const name of EVENT_NAMES) {
      client.on(name as "close", (...args: unknown[]) => {
        this.events.push({ index: this.events.length, name, at: clock.now, args });
        this.waiters = this.waiters.filter((check) => !check());
      });
    }
  }

  mark(): number {
    return this.events.length;
  }

  of(name: EventName, from = 0): DeviceEvent[] {
    return this.events.slice(from).filter((e) => e.name === name && !isSync(e));
  }

  /** Messages delivered (topic, payload, packet), without the rig's sync messages. */
  messages(from = 0): { topic: string; payload: string; packet: any; at: number }[] {
    return this.of("message", from).map((e) => ({ topic: e.args[0], payload: e.args[1], packet: e.args[2], at: e.at }));
  }

  errors(from = 0): (Error & { code?: number })[] {
    return this.of("error", from).map((e) => e.args[0]);
  }

  /** The first event at index `from` or later named `name` (and passing `also`): emitted already, or the next. */
  next(name: EventName, from = 0, also: (e: DeviceEvent) => boolean = () => true, timeoutMs = 5_000): Promise<DeviceEvent> {
    const find = () => this.events.slice(from).find((e) => e.name === name && also(e));
    const found = find();
    if (found) return Promise.resolve(found);
    let check!: () => boolean;
    const promise = new Promise<DeviceEvent>((resolve) => {
      check = () => {
        const e = find();
        if (e) resolve(e);
        return e !== undefined;
      };
      this.waiters.push(check);
    });
    return withTimeout(promise, timeoutMs, `${this.label} emitted no "${name}" after event ${from}; events:\n${this.transcript()}`).finally(() => {
      this.waiters = this.waiters.filter((w) => w !== check);
    });
  }

  /** Events so far, one a line, for failure messages. */
  transcript(): string {
    return this.events
      .map((e) => `  t=${e.at} ${e.name}${e.args.length ? " " + e.args.map(show).join(" ") : ""}`)
      .join("\n");
  }
}

function isSync(e: DeviceEvent): boolean {
  return e.name === "message" && e.args[0] === SYNC_TOPIC;
}

function show(value: unknown): string {
  if (value && typeof value === "object" && "message" in value) {
    const err = value as { message: string; code?: number };
    return `Error(${JSON.stringify(err.message)}${err.code !== undefined ? `, code ${err.code}` : ""})`;
  }
  if (typeof value === "string") return JSON.stringify(value);
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

export interface RigOptions extends Omit<ScriptedBrokerOptions, "now"> {
  /** Start time of the fake clock (default 0). */
  start?: number;
  /** Another build of the client to run (default dist/mqtt.js, or $WISP_MQTT_JS). */
  path?: string;
}

/** A fake clock, a scripted broker, one runtime with the built client loaded, and the devices in it. */
export class Rig {
  readonly devices: Device[] = [];
  private syncs = 0;

  private constructor(
    readonly clock: FakeClock,
    readonly broker: ScriptedBroker,
    readonly runtime: Runtime,
    readonly mqtt: { connect(url: string, options?: WispOptions): WispClient },
  ) {}

  static async start(options: RigOptions = {}): Promise<Rig> {
    const { start = 0, path, ...brokerOptions } = options;
    const clock = FakeTimers.createClock(start);
    const broker = await startScriptedBroker({ ...brokerOptions, now: () => clock.now });
    const bundle = path ?? MQTT_BUNDLE;
    const loaded = loadMqtt({ clock, ...(bundle ? { path: bundle } : {}) });
    return new Rig(clock, broker, loaded.runtime, loaded.mqtt);
  }

  /** A client of the broker; keepalive off and a fixed client id unless `options` say otherwise. */
  connect(options: WispOptions = {}, url = this.broker.url): Device {
    const client = this.mqtt.connect(url, { clientId: `dev${this.devices.length + 1}`, keepalive: 0, ...options });
    const device = new Device(client, this.runtime, this.clock, `client ${this.devices.length + 1}`);
    this.devices.push(device);
    return device;
  }

  /** Connects and waits for the "connect" event. */
  async connected(options: WispOptions = {}): Promise<Device> {
    const device = this.connect(options);
    await device.next("connect");
    return device;
  }

  /**
   * A barrier that leaves the client's keepalive alone: the broker sends a QoS 0 PUBLISH (which the
   * client answers with nothing) and this resolves when the client has delivered it. So everything
   * the broker wrote before has been handled by the client, and, TCP being ordered both ways on
   * loopback, what the client wrote before it handled the sync has had a round trip to arrive.
   */
  async sync(device: Device = this.devices[0], conn: Connection = this.broker.conn): Promise<void> {
    const tag = String(++this.syncs);
    const from = device.mark();
    conn.send({ type: type("PUBLISH"), topic: SYNC_TOPIC, payload: tag, qos: 0 });
    await device.next("message", from, (e) => e.args[0] === SYNC_TOPIC && e.args[1] === tag);
    await this.runtime.settle();
  }

  /**
   * Fires device timers in time order until `device` starts a reconnect attempt, and returns its
   * "reconnect" event. `clock.next()` stops exactly at each timer, so event times are exact.
   */
  async nextReconnect(device: Device = this.devices[0], from = 0): Promise<DeviceEvent> {
    for (let timers = 0; timers < 10 && this.clock.countTimers() > 0; timers++) {
      this.clock.next();
      await this.runtime.settle();
      const attempt = device.of("reconnect", from)[0];
      if (attempt) return attempt;
    }
    throw new Error(`${device.label} made no reconnect attempt\n${this.transcript()}`);
  }

  /** Broker packets and device events, for failure messages and bug reports. */
  transcript(): string {
    return [`broker saw:\n${this.broker.transcript()}`, ...this.devices.map((d) => `${d.label} events:\n${d.transcript()}`),
      `device console:\n${this.runtime.logs.map((l) => "  " + l).join("\n")}`].join("\n");
  }

  async dispose(): Promise<void> {
    this.runtime.dispose();
    await this.broker.close();
  }
}

/** A fresh rig for each test of the calling file, disposed after it; its transcript is printed when the test fails. */
export function useRig(options: RigOptions = {}): () => Rig {
  let rig: Rig | undefined;
  beforeEach(async () => {
    rig = await Rig.start(options);
  });
  afterEach(async (context) => {
    if (!rig) return;
    if (context.task.result?.state === "fail") console.log(`${context.task.name}\n${rig.transcript()}`);
    await rig.dispose();
    rig = undefined;
  });
  return () => {
    if (!rig) throw new Error("no rig outside a test");
    return rig;
  };
}

/** "PUBLISH a 3 dup": type, topic, packet id and DUP of a received packet. */
export function brief(r: Received): string {
  return [r.name, r.packet.topic, r.packet.messageId, r.packet.dup && "dup"].filter((part) => part !== undefined && part !== false).join(" ");
}

/** A callback that records "`name`: ok" or "`name`: <error message>" in `log` each time it is called. */
export function recorder(log: string[], name: string): (err?: Error | null) => void {
  return (err) => {
    log.push(`${name}: ${err ? err.message : "ok"}`);
  };
}
