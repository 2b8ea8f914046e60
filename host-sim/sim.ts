// A simulation: one MQTT broker, one Wi-Fi access point, N sensor nodes running the built
// firmware, a scenario (environment + faults), all on one clock.
//
// API
//
//   const sim = await createSimulation({
//     nodes: 3,                       // how many nodes (default 1)
//     clock: "fake",                  // "fake" (default): one @sinonjs/fake-timers clock for every node,
//                                     //   moved only by sim.advance(ms); "real": wall-clock time
//     speed: 10,                      // with "real": node time runs 10x wall time (sockets stay real);
//                                     //   not with serial (its line is paced on the node clock)
//     startMs: Date.UTC(2025, 5, 1),  // fake clock start (default 2025-06-01T06:00:00Z)
//     brokerUrl: "mqtt://host:1883",  // use this broker; default: an embedded aedes on 127.0.0.1. A login in
//                                     //   the URL (mqtt://user:pass@host) is every node's and the watcher's
//     login: { username, password },  // the same, given apart from the URL
//     nodeLogin: (serial, index) => ({ username, password, ca }),  // each node's own login (and the
//                                     //   broker's CA, base64 DER), written into its wisp.json
//     observer: { url, username, password, ca },  // where the simulation's watcher subscribes to the
//                                     //   nodes' topics (external broker; default: brokerUrl with the login)
//     link: { down(), up() },         // the edge broker's uplink, cut by the scenario fault "bridge-down"
//     port: 0,                        // embedded broker port (default 0 = random; portFallback tries the next ones;
//                                     //   sim.portTaken says when the port asked for was taken)
//     scenario: "scenarios/faults.json" | Scenario,  // default: constant 21 °C, 45 %RH, 1013.25 hPa, 250 lx, 450 ppm, 3.9 V
//     firmwarePath: "dist/firmware.js",             // or firmware: "<source>" (tests use tiny scripts)
//     config: { ...wisp.json },       // default: DEFAULT_NODE_CONFIG; wifi/mqtt.url are the simulation's
//     seed: 0,                        // serials, calibrations and noise derive from it and the node index
//     storageDir: "/tmp/nodes",       // keep each node's Storage in <dir>/<serial>/
//     log: (line, node) => {},        // every device console line
//     powerOn: true,                  // false: call `await sim.powerOn()` later (e.g. after attaching listeners)
//   });
//   sim.nodes[0].wifi / .mqtt / .uptime / .readings / .history / .log / .status   (see SimNode)
//   await sim.advance(3_600_000);     // fake: run an hour of node time (returns when IO has settled)
//                                     // real: wait that long
//   await sim.settle();               // let socket IO between nodes and broker finish (fake clock)
//   sim.traffic                       // recent messages seen by the broker [{ at, topic, payload, node }]
//   sim.on("message", (entry) => {}) / on("fault", (event) => {}) / on("node", (node) => {})   // node: state changed
//   sim.on("log", (line, node) => {}) / on("warning", (text) => {})
//   sim.dropWifi(ms) / sim.restartBroker(ms) / sim.cutBroker(ms) / sim.stopSntp(ms) / sim.cutBridge(ms) / sim.now()
//                                     // faults by hand; now() = ms since start
//   sim.sntp                          // the network's SNTP server (UDP 123, any name): the clock, in UTC
//   sim.broker (embedded aedes: { url, port, aedes, close }, undefined while restarting or external)
//   sim.brokerUrl, sim.ap (AccessPoint: down()/restore()), sim.fakeClock, sim.messages (count)
//   sim.upcomingFaults()             // the scenario's faults still to come, soonest first
//   node.consolePath                 // with serial: true, the pseudo-terminal of its console UART;
//                                    //   DTR/RTS reach its reset circuit through `<consolePath>.lines`
//   blank: true                      // nodes with empty flash, as a new ESP32 comes (no interpreter)
//   await sim.unplugConsole(node) / plugConsole(node)   // its USB cable out and in
//   node.reboot() / powerOff() / powerOn() / unplug(sensor?) / plug(sensor?) / fault("crc" | "stuck", on, sensor?)
//   node.flash(firmware, config) / runtime.run(code) / sensors (the simulated chips, by config name)
//   await sim.stop();                 // nodes off, broker closed
//
// Deterministic mode: the fake clock is moved timer by timer (to the next timer due, at most
// `maxStepMs`), and after each move the simulation waits for real socket IO with the in-process
// broker to go quiet: rounds of setImmediate until nothing happened for a few rounds (events queued
// on any node, broker events), bounded. Network latency is therefore zero in node time.

import { EventEmitter } from "node:events";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import FakeTimers from "@sinonjs/fake-timers";
import mqtt from "mqtt";
import { esp32DevkitC } from "../boards/esp32-devkitc.ts";
import { type Broker, startBroker } from "./broker.ts";
import { type NodeConfig, SimNode } from "./node.ts";
import { type Clock, distPath, realClock, type Runtime } from "./runtime.ts";
import { scaledClock } from "./runtime/timers.ts";
import { openPty, type Pty } from "./serial/pty.ts";
import { constantScenario, environmentSource, type Fault, loadScenario, parseScenario, type Scenario } from "./scenario.ts";
import { netState } from "./net.ts";
import { SntpServer } from "./udp.ts";
import { AccessPoint, macFor, serialFromMac } from "./wifi.ts";

export type { NodeConfig } from "./node.ts";
export { SimNode } from "./node.ts";

export interface SimulationOptions {
  nodes?: number;
  clock?: "real" | "fake";
  /** With clock "real": node time runs this many times faster than wall time (default 1). */
  speed?: number;
  startMs?: number;
  brokerUrl?: string;
  port?: number;
  portFallback?: boolean;
  scenario?: Scenario | string;
  firmwarePath?: string;
  firmware?: string;
  config?: NodeConfig;
  seed?: number;
  storageDir?: string;
  ap?: { ssid?: string; password?: string };
  log?: (line: string, node: SimNode) => void;
  /** Power the nodes on at creation (default true). */
  powerOn?: boolean;
  /** Fake clock: the largest single move (default 60 s). */
  maxStepMs?: number;
  /** Messages kept in `traffic` (default 200). */
  trafficLength?: number;
  /** Wi-Fi association time per node, ms (default 1500 + up to 500). */
  wifiJoinMs?: number;
  /** DS18B20 sensors (by config name) wired for parasite power, on every node. */
  parasite?: string[];
  /** false: the nodes' Storage starts empty (nothing flashed yet; `wisp flash` puts the node on them). */
  flash?: boolean;
  /**
   * true: the nodes come as a new ESP32 does, with empty flash: no interpreter, no Storage; they
   * print their ROM's reset loop until `wisp flash --interpreter` puts Espruino on them.
   */
  blank?: boolean;
  /** Put each node's console UART on a pseudo-terminal (`node.consolePath`); needs socat. */
  serial?: boolean;
  /** Baud rate of the nodes' console UARTs (default 115,200). */
  baud?: number;
  /** Every node's broker login (default: the one in brokerUrl, if any). */
  login?: { username: string; password: string };
  /** Each node's own login, by its serial ({id}); overrides `login`. */
  nodeLogin?: (serial: string, index: number) => NodeLogin | undefined;
  /** Where and how the watcher connects (external broker only). */
  observer?: { url?: string; username?: string; password?: string; ca?: string };
  /** The uplink the "bridge-down" fault cuts. */
  link?: { down(): void; up(): void };
}

/** What a node's wisp.json gets: `mqtt.username`, `mqtt.password`, `mqtt.ca` (base64 of the CA's DER). */
export interface NodeLogin {
  username: string;
  password: string;
  ca?: string;
}

export interface TrafficEntry {
  /** ms since the start of the simulation. */
  at: number;
  topic: string;
  payload: string;
  retain: boolean;
  node: SimNode | undefined;
}

export interface FaultEvent {
  fault: Fault["fault"];
  phase: "start" | "end";
  node?: number;
  sensor?: string;
  /** ms since the start. */
  at: number;
}

/** The watcher (the simulation's own subscriber on an external broker) could not connect. */
export class WatcherError extends Error {
  constructor(
    message: string,
    readonly url: string,
    readonly username: string | undefined,
    cause: Error,
  ) {
    super(message, { cause });
  }
}

export const DEFAULT_NODE_CONFIG: NodeConfig = {
  wifi: { ssid: "wisp-sim", password: "wisp-sim-password" },
  mqtt: { url: "mqtt://127.0.0.1:1883", clientId: "wisp-{id}", keepalive: 30 },
  prefix: "wisp/{id}",
  interval: 10,
  qos: 1,
  i2c: { sda: esp32DevkitC.i2c.sda, scl: esp32DevkitC.i2c.scl, bitrate: esp32DevkitC.i2c.bitrate },
  sensors: [{ name: "climate", type: "bme280", address: 0x76 }],
  // as tools/config.ts renders them by default
  time: { server: "pool.ntp.org" },
  outbox: { maxBytes: 262144 },
};

const DEFAULT_START_MS = Date.UTC(2025, 5, 1, 6, 0, 0);
const QUIET_ROUNDS = 4;
const MAX_SETTLE_ROUNDS = 2000;
/** Real time one settle() waits at most for bytes in flight (a host under heavy load). */
const IO_WAIT_MS = 10_000;

export class Simulation extends EventEmitter {
  readonly nodes: SimNode[] = [];
  readonly ap: AccessPoint;
  /** The network's time server (UDP port 123, any host name): the simulation's clock, in UTC. */
  readonly sntp: SntpServer;
  readonly clock: Clock;
  /** The fake clock, in deterministic mode. */
  readonly fakeClock: FakeTimers.Clock | undefined;
  readonly scenario: Scenario;
  /** Node time zero (ms on the clock): the first powerOn() on a real clock, so the scenario starts there. */
  startMs: number;
  readonly traffic: TrafficEntry[] = [];
  /** The broker's URL, embedded or given. */
  brokerUrl = "";
  /** Messages seen on the broker since the start. */
  messages = 0;
  /** The embedded broker's port asked for, when it was taken and the broker moved to the next free one. */
  portTaken: number | undefined;
  /** How many times faster than wall time node time runs (1 but with `speed`). */
  readonly speed: number;
  private embedded: Broker | undefined;
  private observer: mqtt.MqttClient | undefined;
  private readonly options: SimulationOptions;
  private readonly byClientId = new Map<string, SimNode>();
  private readonly byPrefix = new Map<string, SimNode>();
  private readonly timers = new Set<unknown>();
  private readonly pending = new Set<Promise<unknown>>();
  private activity = 0;
  /** Faults of these kinds under way (they may overlap). */
  private wifiDrops = 0;
  private sntpStops = 0;
  private stopped = false;
  private started = false;
  private readonly ptys = new Map<SimNode, Pty>();
  /** Nodes that lost power with their USB cable (unplugConsole). */
  private readonly unpowered = new Set<SimNode>();
  private consoleDir: string | undefined;

  constructor(options: SimulationOptions, scenario: Scenario) {
    super();
    this.setMaxListeners(0);
    this.options = options;
    this.scenario = scenario;
    this.startMs = options.startMs ?? DEFAULT_START_MS;
    this.speed = options.speed ?? 1;
    if (!(this.speed >= 1)) throw new Error(`speed must be 1 or more, got ${options.speed}`);
    if (this.speed !== 1 && options.clock !== "real") throw new Error("speed needs clock: \"real\" (a fake clock runs as fast as sim.advance() moves it)");
    if (this.speed !== 1 && options.serial) {
      throw new Error("serial consoles need speed 1: the line is paced on the node's clock, so a host would see the baud rate and the console's timeouts sped up too");
    }
    if (options.clock === "real") {
      this.startMs = Date.now();
      this.clock = this.speed === 1 ? realClock : scaledClock(this.speed, this.startMs);
    } else {
      this.fakeClock = FakeTimers.createClock(this.startMs, 1e9);
      this.clock = this.fakeClock as unknown as Clock;
    }
    this.ap = new AccessPoint(options.ap);
    this.sntp = new SntpServer({ now: () => this.clock.Date.now() });
    this.ap.udp.byPort.set(123, this.sntp.service);
  }

  /** The embedded broker (undefined with an external brokerUrl, or while a broker-restart fault has it down). */
  get broker(): Broker | undefined {
    return this.embedded;
  }

  /** The nodes use a broker given by URL, not the embedded one. */
  get external(): boolean {
    return this.options.brokerUrl !== undefined;
  }

  /** ms of simulation time since the start. */
  now(): number {
    return this.clock.Date.now() - this.startMs;
  }

  /** Advance the simulation by `ms`: fake clock, timer by timer with IO settled; real clock, wait. */
  async advance(ms: number): Promise<void> {
    const fake = this.fakeClock;
    if (!fake) {
      await new Promise((r) => setTimeout(r, ms / this.speed));
      return;
    }
    const end = fake.now + ms;
    const maxStep = this.options.maxStepMs ?? 60_000;
    await this.settle();
    while (fake.now < end && !this.stopped) {
      const next = nextTimerAt(fake);
      const target = Math.min(end, fake.now + maxStep, next === undefined ? end : Math.max(next, fake.now));
      await fake.tickAsync(target - fake.now);
      this.activity++;
      await this.settle();
    }
  }

  /**
   * Wait until socket IO with the broker and queued node events have gone quiet (bounded). Node time
   * must not move while bytes are on their way: on a loaded host the kernel can take a long while to
   * carry them over loopback, and a node whose CONNACK is late by seconds of node time gives up and
   * reconnects, which it would not do on the real network. So a connect under way, bytes still queued
   * in a node's socket, and (with the embedded broker) bytes one side sent that the other has not read
   * all wait, in real time, up to IO_WAIT_MS.
   */
  async settle(): Promise<void> {
    let quiet = 0;
    let seen = -1;
    const started = performance.now();
    for (let round = 0; round < MAX_SETTLE_ROUNDS && quiet < QUIET_ROUNDS; round++) {
      if (this.pending.size) {
        await Promise.allSettled([...this.pending]);
        quiet = 0;
        continue;
      }
      if (this.ioInFlight() && performance.now() - started < IO_WAIT_MS) {
        await new Promise((r) => setTimeout(r, 1)); // lets the event loop block on the sockets
        quiet = 0;
        round--;
        continue;
      }
      await new Promise<void>((r) => setImmediate(r));
      if (this.activity === seen) quiet++;
      else {
        seen = this.activity;
        quiet = 0;
      }
    }
  }

  /** Some node's socket is connecting, has bytes queued, or (embedded broker) has bytes in flight either way. */
  private ioInFlight(): boolean {
    const broker = this.embedded;
    for (const node of this.nodes) {
      if (!node.runtime) continue;
      for (const socket of netState(node.runtime).sockets) {
        if (socket.connecting || socket.unsent > 0) return true;
        if (!broker || socket.tls || socket.port !== broker.port || socket.localPort === undefined) continue;
        const far = broker.wire(socket.localPort);
        if (far && (far.received < socket.sent || socket.received < far.sent)) return true;
      }
    }
    return false;
  }

  /** The access point goes down for `ms` (scenario fault "wifi-drop"). */
  dropWifi(ms: number): void {
    this.ap.down();
    this.wifiDrops++;
    this.fault({ fault: "wifi-drop", phase: "start" });
    this.after(ms, () => {
      // overlapping drops: the access point returns when the last one ends
      if (--this.wifiDrops === 0) this.ap.restore();
      this.fault({ fault: "wifi-drop", phase: "end" });
    });
  }

  /** Stop the embedded broker; start it again on the same port after `ms` (fault "broker-restart"). */
  restartBroker(ms: number): void {
    const broker = this.embedded;
    if (!broker) {
      this.fault({ fault: "broker-restart", phase: "start" });
      this.emit("warning", "broker-restart needs the embedded broker; ignored");
      return;
    }
    this.embedded = undefined;
    this.track(broker.close());
    for (const node of this.nodes) node.brokerClient(false);
    this.fault({ fault: "broker-restart", phase: "start" });
    this.after(ms, () => {
      if (this.stopped) return;
      this.track(
        startBroker({ port: broker.port, host: broker.host }).then((b) => {
          if (this.stopped) return b.close();
          this.attachBroker(b);
          this.fault({ fault: "broker-restart", phase: "end" });
        }),
      );
    });
  }

  /**
   * No route to the broker for `ms` (fault "broker-unreachable"): the nodes' connections to it drop
   * and new ones fail, while the broker (embedded or not) runs on with its sessions.
   */
  cutBroker(ms: number): void {
    const url = new URL(this.brokerUrl);
    const port = Number(url.port) || (url.protocol === "mqtts:" ? 8883 : 1883);
    this.ap.cut(url.hostname, port);
    this.fault({ fault: "broker-unreachable", phase: "start" });
    this.after(ms, () => {
      this.ap.reach(url.hostname, port);
      this.fault({ fault: "broker-unreachable", phase: "end" });
    });
  }

  /** The time server does not answer for `ms` (fault "sntp-down"). */
  stopSntp(ms: number): void {
    this.sntp.reachable = false;
    this.sntpStops++;
    this.fault({ fault: "sntp-down", phase: "start" });
    this.after(ms, () => {
      if (--this.sntpStops === 0) this.sntp.reachable = true;
      this.fault({ fault: "sntp-down", phase: "end" });
    });
  }

  /** The link between edge and central broker goes down for `ms` (fault "bridge-down", edge-cloud topology). */
  cutBridge(ms: number): void {
    const link = this.options.link;
    this.fault({ fault: "bridge-down", phase: "start" });
    if (!link) {
      this.emit("warning", "bridge-down needs two bridged brokers (wisp sim --topology edge-cloud); ignored");
      return;
    }
    link.down();
    this.after(ms, () => {
      link.up();
      this.fault({ fault: "bridge-down", phase: "end" });
    });
  }

  /** The scenario's faults that have not started yet, soonest first. */
  upcomingFaults(): Fault[] {
    const now = this.now();
    return this.scenario.faults.filter((f) => f.at * 1000 > now).sort((a, b) => a.at - b.at);
  }

  /** Nodes off, broker closed, timers cancelled. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) this.clock.clearTimeout(t);
    this.timers.clear();
    for (const node of this.nodes) node.dispose();
    await Promise.allSettled([...this.pending, ...[...this.ptys.values()].map((p) => p.close())]);
    if (this.consoleDir) rmSync(this.consoleDir, { recursive: true, force: true });
    if (this.observer) await this.observer.endAsync(true).catch(() => undefined);
    await this.embedded?.close();
    this.embedded = undefined;
  }

  /** @internal */
  async init(): Promise<void> {
    const o = this.options;
    const firmware = o.flash === false || o.blank ? undefined : (o.firmware ?? readFirmware(o.firmwarePath ?? distPath("firmware.js")));
    const config = o.config ?? DEFAULT_NODE_CONFIG;
    // A login in the URL is taken out of it: the nodes get it in wisp.json's mqtt.username/password.
    const given = o.brokerUrl ? splitLogin(o.brokerUrl) : undefined;
    const login = o.login ?? given?.login;
    if (given) {
      this.brokerUrl = given.url;
    } else {
      const broker = await startBroker({ port: o.port ?? 0, fallback: o.portFallback });
      if (o.port && broker.port !== o.port) this.portTaken = o.port;
      this.attachBroker(broker);
    }
    const count = o.nodes ?? 1;
    const countActivity = (rt: Runtime) => {
      const queue = rt.queue.bind(rt);
      rt.queue = (target, listeners, args) => {
        this.activity++;
        queue(target, listeners, args);
      };
    };
    for (let index = 0; index < count; index++) {
      const serial = serialFromMac(macFor(index, o.seed ?? 0));
      const own = o.nodeLogin ? o.nodeLogin(serial, index) : login;
      const node: SimNode = new SimNode({
        index,
        serial,
        seed: o.seed,
        clock: this.clock,
        ap: this.ap,
        brokerUrl: this.brokerUrl,
        firmware,
        config: own ? { ...config, mqtt: { ...config.mqtt, username: own.username, password: own.password, ca: (own as NodeLogin).ca ?? config.mqtt.ca } } : config,
        environment: environmentSource(this.scenario, 0, () => this.now(), ((o.seed ?? 0) << 16) + index),
        log: (line, n) => {
          o.log?.(line, n);
          this.emit("log", line, n);
        },
        storageDir: o.storageDir ? join(o.storageDir, `node-${index}`) : undefined,
        brokerEvents: !o.brokerUrl,
        wifiJoinMs: o.wifiJoinMs,
        parasite: o.parasite,
        baud: o.baud,
        blank: o.blank,
        plugins: [countActivity],
        onChange: (n) => this.emit("node", n),
      });
      this.nodes.push(node);
      this.byClientId.set(node.clientId, node);
      this.byPrefix.set(node.prefix, node);
    }
    if (o.serial) {
      this.consoleDir = mkdtempSync(join(tmpdir(), "wisp-sim-"));
      for (const node of this.nodes) await this.plugConsole(node);
    }
    if (o.brokerUrl) await this.observe({ url: this.brokerUrl, username: login?.username, password: login?.password, ...o.observer });
    if (o.powerOn !== false) await this.powerOn();
  }

  /** The folder of the nodes' console links (with `serial: true`); removed when the simulation stops. */
  get consoleFolder(): string | undefined {
    return this.consoleDir;
  }

  /**
   * Plug the node's USB cable in: its console UART appears as a pseudo-terminal at
   * `node.consolePath` (the same path every time, as a board's /dev/ttyUSB0 is).
   */
  async plugConsole(node: SimNode): Promise<void> {
    if (this.ptys.has(node)) return;
    // a board that the cable powered starts again (power-on reset)
    if (this.unpowered.delete(node) && node.power === "off") node.powerOn();
    this.consoleDir ??= mkdtempSync(join(tmpdir(), "wisp-sim-"));
    const pty = await openPty(node.line, join(this.consoleDir, `node-${node.index}`), (lines) => node.setModemLines(lines));
    this.ptys.set(node, pty);
    node.consolePath = pty.path;
  }

  /**
   * Pull the node's USB cable: its pseudo-terminal closes under whoever has it open, and a board
   * powered through it (`node.usbPowered`, a DevKitC on USB alone) loses power until it is plugged
   * in again.
   */
  async unplugConsole(node: SimNode): Promise<void> {
    const pty = this.ptys.get(node);
    if (!pty) return;
    this.ptys.delete(node);
    await pty.close();
    if (node.usbPowered && node.power !== "off") {
      node.powerOff();
      this.unpowered.add(node);
    }
  }

  /** Power on every node that is off (createSimulation does it unless `powerOn: false`). */
  async powerOn(): Promise<void> {
    if (!this.started) {
      // the scenario (its environment, its faults, the clock shown) starts with the nodes, not with the
      // setup before them (a broker, Mosquitto, the watcher), which takes seconds of node time at speed
      this.started = true;
      if (!this.fakeClock) this.startMs = this.clock.Date.now();
      this.scheduleFaults();
    }
    // Creating an interpreter takes a few ms; booting in slices keeps the broker and IO responsive.
    for (let i = 0; i < this.nodes.length; i++) {
      if (this.nodes[i]!.power === "off") this.nodes[i]!.powerOn();
      if (i % 25 === 24) await new Promise((r) => setImmediate(r));
    }
    if (this.fakeClock) await this.settle();
  }

  private attachBroker(broker: Broker): void {
    this.embedded = broker;
    this.brokerUrl = broker.url;
    const aedes = broker.aedes;
    const bump = () => {
      this.activity++;
    };
    for (const event of ["client", "clientDisconnect", "clientError", "connectionError", "keepaliveTimeout", "ack", "ping", "subscribe", "unsubscribe", "connackSent", "closed"]) {
      aedes.on(event as "client", bump);
    }
    // A node that reconnects under the same client id takes over the session; the old one's
    // disconnect may be reported after the new one is ready, so only the current client counts.
    const current = new Map<string, unknown>();
    aedes.on("clientReady", (client) => {
      this.activity++;
      current.set(client.id, client);
      this.byClientId.get(client.id)?.brokerClient(true);
    });
    aedes.on("clientDisconnect", (client) => {
      if (current.get(client.id) !== client) return;
      current.delete(client.id);
      this.byClientId.get(client.id)?.brokerClient(false);
    });
    aedes.on("publish", (packet) => {
      this.activity++;
      if (packet.topic.startsWith("$SYS")) return;
      this.record(packet.topic, Buffer.from(packet.payload as Buffer | string).toString("utf8"), packet.retain);
    });
  }

  /** With an external broker, watch the nodes' topics with an MQTT.js subscriber (with the login given). */
  private async observe(o: { url?: string; username?: string; password?: string; ca?: string }): Promise<void> {
    const bases = new Set([...this.byPrefix.keys()].map((p) => `${p.split("/")[0]}/#`));
    const url = o.url ?? this.brokerUrl;
    const client = await mqtt
      .connectAsync(url, {
        clientId: `wisp-sim-observer-${process.pid}`,
        reconnectPeriod: 1000,
        username: o.username,
        password: o.password,
        ca: o.ca,
      })
      .catch((err: Error) => {
        throw new WatcherError(`the simulation's watcher could not connect to ${url}${o.username ? ` as ${o.username}` : " without a login"}: ${err.message}`, url, o.username, err);
      });
    await client.subscribeAsync([...bases], { qos: 0 });
    client.on("message", (topic, payload, packet) => {
      this.activity++;
      this.record(topic, payload.toString("utf8"), packet.retain);
    });
    this.observer = client;
  }

  private record(topic: string, payload: string, retain: boolean): void {
    this.messages++;
    const node = this.nodeForTopic(topic);
    node?.message(topic, payload);
    const entry: TrafficEntry = { at: this.now(), topic, payload, retain, node };
    this.traffic.push(entry);
    const keep = this.options.trafficLength ?? 200;
    if (this.traffic.length > keep) this.traffic.splice(0, this.traffic.length - keep);
    this.emit("message", entry);
  }

  private nodeForTopic(topic: string): SimNode | undefined {
    for (let i = topic.indexOf("/"); i > 0; i = topic.indexOf("/", i + 1)) {
      const node = this.byPrefix.get(topic.slice(0, i));
      if (node) return node;
    }
    return undefined;
  }

  private scheduleFaults(): void {
    for (const f of this.scenario.faults) {
      this.after(f.at * 1000, () => this.startFault(f));
    }
  }

  private startFault(f: Fault): void {
    const ms = f.for * 1000;
    const targets = f.node === undefined ? this.nodes : this.nodes.filter((n) => n.index === f.node);
    switch (f.fault) {
      case "wifi-drop":
        return this.dropWifi(ms);
      case "broker-restart":
        return this.restartBroker(ms);
      case "sensor-unplug":
        for (const n of targets) n.unplug(f.sensor);
        this.fault({ fault: f.fault, phase: "start", node: f.node, sensor: f.sensor });
        this.after(ms, () => {
          for (const n of targets) n.plug(f.sensor);
          this.fault({ fault: f.fault, phase: "end", node: f.node, sensor: f.sensor });
        });
        return;
      case "sensor-crc":
      case "bus-stuck": {
        const kind = f.fault === "sensor-crc" ? "crc" : "stuck";
        const hit = targets.flatMap((n) => n.fault(kind, true, f.sensor));
        if (hit.length === 0) this.emit("warning", `${f.fault}${f.sensor ? ` on ${f.sensor}` : ""}: no sensor it applies to${kind === "crc" ? " (BME280, BH1750 and batteries have no CRC)" : ""}`);
        this.fault({ fault: f.fault, phase: "start", node: f.node, sensor: f.sensor });
        this.after(ms, () => {
          for (const n of targets) n.fault(kind, false, f.sensor);
          this.fault({ fault: f.fault, phase: "end", node: f.node, sensor: f.sensor });
        });
        return;
      }
      case "bridge-down":
        return this.cutBridge(ms);
      case "broker-unreachable":
        return this.cutBroker(ms);
      case "sntp-down":
        return this.stopSntp(ms);
      case "storage-full":
        for (const n of targets) n.flashStorage.fill();
        this.fault({ fault: f.fault, phase: "start", node: f.node });
        this.after(ms, () => {
          for (const n of targets) n.flashStorage.release();
          this.fault({ fault: f.fault, phase: "end", node: f.node });
        });
        return;
      case "power-cut":
        for (const n of targets) n.powerOff();
        this.fault({ fault: f.fault, phase: "start", node: f.node });
        this.after(ms, () => {
          for (const n of targets) n.powerOn();
          this.fault({ fault: f.fault, phase: "end", node: f.node });
        });
        return;
    }
  }

  private fault(event: Omit<FaultEvent, "at">): void {
    this.activity++;
    this.emit("fault", { ...event, at: this.now() });
  }

  /** A host timer on the simulation clock (cancelled by stop()). */
  private after(ms: number, fn: () => void): void {
    const handle = this.clock.setTimeout(() => {
      this.timers.delete(handle);
      if (!this.stopped) fn();
    }, ms);
    this.timers.add(handle);
  }

  private track(promise: Promise<unknown>): void {
    const p = promise.catch((err: unknown) => this.emit("warning", `broker: ${(err as Error).message}`));
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }
}

export async function createSimulation(options: SimulationOptions = {}): Promise<Simulation> {
  const scenario =
    options.scenario === undefined ? constantScenario() : typeof options.scenario === "string" ? loadScenario(options.scenario) : parseScenario(options.scenario);
  const sim = new Simulation(options, scenario);
  try {
    await sim.init();
  } catch (err) {
    await sim.stop();
    throw err;
  }
  return sim;
}

/** `mqtt://user:pass@host:port` → the URL without the login, and the login (percent-decoded). */
export function splitLogin(url: string): { url: string; login?: { username: string; password: string } } {
  const parsed = new URL(url);
  if (!parsed.username && !parsed.password) return { url };
  const login = { username: decodeURIComponent(parsed.username), password: decodeURIComponent(parsed.password) };
  parsed.username = "";
  parsed.password = "";
  return { url: parsed.toString().replace(/\/$/, ""), login };
}

function readFirmware(path: string): string {
  const file = resolve(path);
  if (!existsSync(file)) throw new Error(`${file} not found: run \`npm run build\` first to produce the firmware`);
  return readFileSync(file, "latin1");
}

/** When the fake clock's next timer is due (fake-timers keeps them in a heap), if any. */
function nextTimerAt(clock: FakeTimers.Clock): number | undefined {
  const heap = (clock as unknown as { timerHeap?: { peek(): { callAt: number } | undefined } }).timerHeap;
  if (heap) return heap.peek()?.callAt;
  return clock.countTimers() > 0 ? clock.now + 1 : undefined;
}
