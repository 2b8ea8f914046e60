// `npm run bench:device`: the MQTT client on the interpreter itself, next to the Espruino MQTT module,
// in one run against one private Mosquitto. The same probe (device-probe.js) runs for each module, one
// phase per fresh interpreter: JsVars after require and after connect + two subscriptions (the module
// loaded with Modules.addCached, and run from a Storage file), then QoS 0 publish, receive burst and
// QoS 1 publish rates. A benchmark, not a test: it prints a table with the ratio Wisp ÷ peer.
//
//   ESPRUINO_BIN=~/.cache/espruino-ref/espruino ESPRUINO_MQTT_MODULE=/path/MQTT.min.js npm run bench:device
//   npm run bench:device -- --port /dev/ttyUSB0 [--host 192.168.1.20] [--config flash.config.json]
//
// ESPRUINO_BIN is a Linux build of Espruino (the 64-bit one is the fastest: the rates come from it).
// The JsVar figures come from the builds with the ESP32's 14-byte JsVars beside it, `espruino32` (for
// addCached) and `espruino32-flash` (code run from Storage stays in flash, as on an ESP32), or from
// ESPRUINO_BIN32 and ESPRUINO_BIN32_FLASH; without them, from ESPRUINO_BIN. ESPRUINO_MQTT_MODULE is
// the EspruinoDocs MQTT module (modules/MQTT.js), minified with esbuild; ESPRUINO_TINYMQTT_MODULE
// optionally adds tinyMQTT. WISP_MQTT_JS benches another build of Wisp. Nothing here is committed:
// not the interpreter, not the peer's source.
//
// With --port the same probe runs on a board over its serial console (the flasher's ConsoleLink): the
// modules go to its Storage, each phase is load()ed fresh, and the board reaches the benchmark's
// Mosquitto at --host (default: this machine's LAN address), on the Wi-Fi of --config when it is not
// on one already.
//
// Rates come three ways: per second of wall-clock time; per CPU-second of the interpreter (Linux
// builds; steadier where other programs share the CPU); and with --instructions, per 10^9 instructions
// of JavaScript counted by valgrind's callgrind (deterministic: the same figure every run on any load,
// at some 50 times the run time). -v prints every round.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import mqtt, { type MqttClient } from "mqtt";
import { findTool, freePort, launchMosquitto, type MosquittoProcess } from "../../tools/broker/mosquitto.ts";
import { PROJECT_ROOT } from "../../tools/build.ts";
import { loadFlashConfig, renderDeviceConfig } from "../../tools/config.ts";
import { ConsoleLink } from "../../tools/serial/link.ts";
import { openPort } from "../../tools/serial/port.ts";

const COUNTS = { q0: 10_000, rx: 5_000, q1: 2_000 } as const;
/** QoS 1 messages in flight (Wisp's default `inflight`). */
const WINDOW = 8;
/**
 * QoS 0 messages published at a time: the peer modules, which have no flow control, then wait for their
 * socket to drain; Wisp takes a callback on the last of them (at most its default queueSize, 16).
 */
const BATCH = 16;
/** Each rate is measured this many times per module, alternating modules; the median is shown. */
const ROUNDS = 3;
const PROBE = readFileSync(new URL("./device-probe.js", import.meta.url), "utf8");

type Kind = "wisp" | "espruino" | "tiny";
type Phase = "mem" | "q0" | "rx" | "q1" | "store";

interface Module {
  label: string;
  kind: Kind;
  /** the module's file on this machine */
  file: string;
  /** its name for require() and as a Storage file */
  name: string;
}

/** What the probe is told (its `CFG`). */
interface ProbeConfig {
  phase: Phase;
  kind: Kind;
  name: string;
  load: "cached" | "storage";
  /** the module's file, read by the Linux build's fs; absent on a board (read from Storage) */
  file?: string;
  host: string;
  port: number;
  id: string;
  topic: string;
  count: number;
  batch: number;
  window: number;
  ssid?: string;
  pass?: string;
  /** ms after "sent" at which the QoS 0 probe ends itself (under callgrind), 0: the host ends it */
  quit?: number;
}

type Report = Record<string, number | string>;

/** Runs one probe phase on an interpreter; `events` gets each `BENCH` line as it comes. */
interface Target {
  describe(): string;
  /** CPU seconds the interpreter of the running phase has used so far, where the system says (Linux) */
  cpu(): number | undefined;
  run(config: ProbeConfig, events: (phase: string, report: Report) => void, until: Promise<unknown>): Promise<void>;
  close(): Promise<void>;
}

function probeSource(config: ProbeConfig): string {
  return `var CFG = ${JSON.stringify(config)};\n${PROBE}`;
}

/**
 * Takes the `BENCH <phase> {...}` reports (flat JSON objects) out of console text as they complete,
 * and returns the text still to be completed. The console's prompt and line editing come around them.
 */
function takeReports(text: string, events: (phase: string, report: Report) => void): string {
  const re = /BENCH (\w+) (\{[^{}]*\})/g;
  let end = 0;
  for (let m; (m = re.exec(text)); end = re.lastIndex) events(m[1], JSON.parse(m[2]));
  // a report may still be arriving (the console can send it a byte at a time): keep the tail
  return text.slice(Math.max(end, text.length - 1000));
}

// --- a Linux build of Espruino ------------------------------------------------------------------------

/** ELF32 binaries run under qemu-i386 where the kernel cannot run them itself (as here). */
function command(binary: string): [string, string[]] {
  const header = readFileSync(binary).subarray(0, 5);
  const qemu = findTool("qemu-i386");
  return header[4] === 1 && process.arch === "x64" && qemu ? [qemu, [binary]] : [binary, []];
}

class LinuxTarget implements Target {
  /** one working directory per target: its Storage (espruino.flash) carries over from phase to phase */
  readonly dir = mkdtempSync(path.join(tmpdir(), "wisp-bench-device-"));
  private child: ChildProcess | undefined;
  /** JavaScript instructions of the last phase run under callgrind (see `instructions`) */
  lastInstructions: number | undefined;

  /** `callgrind`: run each phase under valgrind's callgrind and count instructions (see --instructions) */
  constructor(
    readonly binary: string,
    readonly callgrind?: { valgrind: string; annotate: string },
  ) {}

  describe(): string {
    return path.basename(this.binary) + (this.callgrind ? " under callgrind" : "");
  }

  cpu(): number | undefined {
    const pid = this.child?.pid;
    if (!pid) return undefined;
    try {
      // the first field: nanoseconds on the CPU (utime and stime in /proc/PID/stat count 10 ms ticks)
      return Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[0]) / 1e9;
    } catch {
      return undefined;
    }
  }

  async run(config: ProbeConfig, events: (phase: string, report: Report) => void, until: Promise<unknown>): Promise<void> {
    writeFileSync(path.join(this.dir, "probe.js"), probeSource(config));
    const out = path.join(this.dir, "callgrind.out");
    rmSync(out, { force: true });
    let [cmd, args] = command(this.binary);
    if (this.callgrind) [cmd, args] = [this.callgrind.valgrind, ["--tool=callgrind", `--callgrind-out-file=${out}`, cmd, ...args]];
    // stdin stays open and silent: the Linux build exits when its console input ends
    const child = (this.child = spawn(cmd, [...args, "probe.js"], { cwd: this.dir, stdio: ["pipe", "pipe", "pipe"] }));
    let text = "";
    let output = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      text = takeReports(text + chunk.toString("latin1"), events);
      output = (output + chunk.toString("latin1")).slice(-4000);
    });
    child.stderr!.on("data", (chunk: Buffer) => (output = (output + chunk.toString("latin1")).slice(-4000)));
    // "close", not "exit": it comes once stdout has been read to the end
    const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
    let failure: Error | undefined;
    let settled = false;
    await Promise.race([
      until.then(
        () => {
          settled = true;
        },
        (err: Error) => ((settled = true), (failure = err)),
      ),
      // a turn later: "close" can come in the same turn as the last report, before the promises it settles
      exited.then(() => new Promise((resolve) => setImmediate(resolve))).then(() => {
        if (!settled) failure ??= new Error(`${path.basename(this.binary)} exited before the ${config.phase} phase of ${config.name} finished:\n${output.trim()}`);
      }),
    ]);
    settled = true;
    // under callgrind the probe ends itself (callgrind writes its counts at the exit, not on SIGKILL)
    if (this.callgrind && !failure) await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 30_000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
    this.child = undefined;
    if (failure) throw failure;
    if (this.callgrind) this.lastInstructions = instructions(this.callgrind.annotate, out);
  }

  async close(): Promise<void> {
    this.child?.kill("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Instructions the interpreter spent running JavaScript (every callback it ran from its event loop:
 * events, timers, socket data; the module's own work, the probe's and what they ask of the
 * interpreter), from a callgrind output file. Not counted: the idle loop between them, which spins
 * while a socket is open and so measures waiting, not work. Deterministic, unlike time on a machine
 * that others share.
 */
function instructions(annotate: string, file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const text = execFileSync(annotate, ["--inclusive=yes", file], { encoding: "utf8", maxBuffer: 64 << 20 });
  // the outermost jspExecuteFunction (recursive calls are listed as jspExecuteFunction'2 ...)
  const m = /^\s*([\d,]+) \([^)]*\)\s+\S*jsparse\.c:jspExecuteFunction(?: |$)/m.exec(text);
  return m ? Number(m[1].replace(/,/g, "")) : undefined;
}

// --- a board on a serial port ----------------------------------------------------------------------------

const PROBE_FILE = "wispbench";

class BoardTarget implements Target {
  private identity = "";
  private stored = new Set<string>();

  private constructor(
    readonly port: string,
    private readonly link: ConsoleLink,
  ) {}

  static async open(port: string, baud: number): Promise<BoardTarget> {
    const link = new ConsoleLink(await openPort(port, baud), { baud });
    const target = new BoardTarget(port, link);
    const id = await link.identify();
    target.identity = `Espruino ${id.version} ${id.board} on ${port}`;
    return target;
  }

  describe(): string {
    return this.identity;
  }

  cpu(): undefined {
    return undefined;
  }

  /** The Storage file a module goes to on the board: not a name the board's own files may have. */
  static fileOf(module: Module): string {
    return `wb-${module.kind}`;
  }

  /** Puts a module on the board's Storage once (a probe phase reads it from there). */
  async store(module: Module): Promise<void> {
    const name = BoardTarget.fileOf(module);
    if (this.stored.has(name)) return;
    await this.link.writeFile(name, readFileSync(module.file));
    this.stored.add(name);
  }

  async run(config: ProbeConfig, events: (phase: string, report: Report) => void, until: Promise<unknown>): Promise<void> {
    let text = "";
    const listener = (chunk: string) => {
      text = takeReports(text + chunk, events);
    };
    await this.link.writeFile(PROBE_FILE, Buffer.from(probeSource({ ...config, file: undefined }), "latin1"));
    this.link.onTextListener(listener);
    // load(): a soft reset, then the file runs on an interpreter with nothing else in RAM
    await this.link.send(`\x10load(${JSON.stringify(PROBE_FILE)})\n`);
    let failure: Error | undefined;
    await Promise.race([until.catch((err: Error) => (failure = err)), this.link.closedPromise.then((err) => (failure ??= err))]);
    events = () => {};
    // stop whatever the phase left running (a client, timers) before the next one
    await this.link.interrupt();
    await this.link.send(`\x10reset()\n`);
    await this.link.quiet(300, 3000);
    if (failure) throw failure;
  }

  async close(): Promise<void> {
    // the probe file holds the Wi-Fi password: leave nothing of the benchmark on the board, and start
    // its own saved code again (load() runs .bootcde)
    for (const name of [PROBE_FILE, ...this.stored]) await this.link.eval(`require("Storage").erase(${JSON.stringify(name)})`).catch(() => undefined);
    await this.link.send("\x10load()\n").catch(() => undefined);
    await this.link.close();
  }
}

// --- the broker and the host's own client -----------------------------------------------------------------

interface Broker {
  host: string;
  port: number;
  process: MosquittoProcess;
  dir: string;
}

async function startBroker(host: string): Promise<Broker> {
  const dir = mkdtempSync(path.join(tmpdir(), "wisp-bench-mosquitto-"));
  const port = await freePort(host);
  const config = path.join(dir, "mosquitto.conf");
  // anonymous on one address for the length of a benchmark; room for every message of a burst in the
  // device's queue (QoS 0 included), so a slow module is measured slow, not lossy
  writeFileSync(
    config,
    [
      `listener ${port} ${host}`,
      "allow_anonymous true",
      "persistence false",
      "max_queued_messages 0",
      "max_queued_bytes 0",
      "max_inflight_messages 0",
      `log_dest file ${path.join(dir, "mosquitto.log")}`,
      "log_type error",
      "log_type warning",
      "",
    ].join("\n"),
  );
  const process = await launchMosquitto({ config, logFile: path.join(dir, "mosquitto.log"), probePort: port, probeHost: host });
  return { host, port, process, dir };
}

async function hostClient(broker: Broker, id: string): Promise<MqttClient> {
  return mqtt.connectAsync(`mqtt://${broker.host}:${broker.port}`, { clientId: id, reconnectPeriod: 0 });
}

function timeout<T>(ms: number, what: string): Promise<T> {
  return new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no result within ${ms / 1000} s`)), ms).unref());
}

// --- one measurement per phase ---------------------------------------------------------------------------

interface Probe {
  target: Target;
  /** the rates' target runs under callgrind (--instructions) */
  callgrind?: boolean;
  broker: Broker;
  /** address the interpreter reaches the broker at */
  host: string;
  wifi?: { ssid: string; pass?: string };
}

function configOf(probe: Probe, module: Module, phase: Phase, load: ProbeConfig["load"], topic: string, count: number): ProbeConfig {
  return {
    phase,
    kind: module.kind,
    name: probe.target instanceof BoardTarget ? BoardTarget.fileOf(module) : module.name,
    load,
    file: probe.target instanceof LinuxTarget ? path.resolve(module.file) : undefined,
    host: probe.host,
    port: probe.broker.port,
    id: `bench-${module.kind}-${phase}-${process.pid}`,
    topic,
    count,
    batch: BATCH,
    window: WINDOW,
    ssid: probe.wifi?.ssid,
    pass: probe.wifi?.pass,
  };
}

/** The interpreter's own report of itself (the first phase's). */
let interpreter: Report | undefined;

/**
 * Runs a phase until `done` (by default: the probe's `want` report, which it resolves with); an
 * `error` report from the probe fails it.
 */
async function phase(
  probe: Probe,
  config: ProbeConfig,
  want: string,
  options: { ms?: number; onEvent?: (phase: string, report: Report) => void; done?: Promise<unknown> } = {},
): Promise<Report> {
  let resolve!: (r: Report) => void;
  let reject!: (e: Error) => void;
  const result = new Promise<Report>((res, rej) => ((resolve = res), (reject = rej)));
  const events = (name: string, report: Report) => {
    if (name === "interpreter") interpreter ??= report;
    if (name === "error") reject(new Error(`${config.kind} ${config.phase}: the probe failed: ${report.message}`));
    if (name === want) resolve(report);
    options.onEvent?.(name, report);
  };
  const ms = options.ms ?? 60_000;
  const done = options.done ? Promise.race([options.done, result]) : result;
  await probe.target.run(config, events, Promise.race([done, timeout(ms, `${config.name} ${config.phase}`)]));
  return options.done ? {} : result;
}

async function memory(probe: Probe, module: Module, load: ProbeConfig["load"]): Promise<Report> {
  if (probe.target instanceof BoardTarget) await probe.target.store(module);
  else if (load === "storage") await phase(probe, configOf(probe, module, "store", load, "", 0), "stored");
  return phase(probe, configOf(probe, module, "mem", load, "", 0), "mem");
}

/**
 * A rate two ways: messages per second of wall-clock time, and per second of CPU time the interpreter
 * used meanwhile (Linux builds only). On a board the interpreter has the CPU to itself; on a machine
 * that others share, wall-clock time also counts the time it waited for the CPU, and the CPU-time rate
 * is the steadier measure of what the module costs. The interpreter spins while it waits for the
 * network (it never sleeps while a socket is open), so that waiting counts as CPU time too, as it
 * counts as time on a board.
 */
interface Rate {
  wall: number;
  cpu?: number;
  /** messages per 10^9 instructions of JavaScript (--instructions) */
  ins?: number;
}

/** CPU seconds from `start` to now, or undefined where the target cannot say. */
function cpuSince(probe: Probe, start: number | undefined): number | undefined {
  const now = probe.target.cpu();
  return start === undefined || now === undefined ? undefined : now - start;
}

function rate(count: number, wall: number, cpu: number | undefined, probe?: Probe): Rate {
  const t = probe?.target instanceof LinuxTarget ? probe.target.lastInstructions : undefined;
  return { wall: wall > 0 ? count / wall : 0, cpu: cpu ? count / cpu : undefined, ins: t ? (count / t) * 1e9 : undefined };
}

/** QoS 0 publish: as a subscriber on this machine receives them, first to last. */
async function qos0(probe: Probe, module: Module): Promise<Rate> {
  const topic = `bench/q0/${module.kind}`;
  const count = COUNTS.q0;
  const subscriber = await hostClient(probe.broker, `bench-q0-${process.pid}`);
  let received = 0;
  let first = 0;
  let last = 0;
  let sent = false;
  let cpuStart: number | undefined;
  let cpu: number | undefined;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  subscriber.on("message", (t) => {
    if (t !== topic) return;
    last = performance.now();
    if (!received++) first = last;
    if (received === count) {
      cpu = cpuSince(probe, cpuStart);
      finish();
    }
  });
  // the probe has written them all and nothing came for 2 s: what came is what there is
  // (under callgrind the device is some 50 times slower: a longer wait)
  const quietMs = probe.callgrind ? 15_000 : 2000;
  const quiet = setInterval(() => sent && performance.now() - last > quietMs && finish(), 250);
  try {
    await subscriber.subscribeAsync(topic, { qos: 0 });
    await phase(probe, { ...configOf(probe, module, "q0", "cached", topic, count), quit: probe.callgrind ? quietMs + 5000 : 0 }, "", {
      ms: probe.callgrind ? 1_800_000 : 120_000,
      done,
      onEvent: (name) => {
        if (name === "ready") cpuStart = probe.target.cpu();
        if (name === "sent") sent = true;
      },
    });
    if (received < count) console.error(`  ${module.label}: QoS 0, the subscriber got ${received} of ${count}`);
    return rate(received - 1, (last - first) / 1000, cpu && cpu * ((received - 1) / received), probe);
  } finally {
    clearInterval(quiet);
    await subscriber.endAsync();
  }
}

/** Receive burst: this machine publishes them at once; intact messages per second on the device. */
async function receive(probe: Probe, module: Module): Promise<{ rate: Rate; intact: number }> {
  const topic = `bench/rx/${module.kind}`;
  const count = COUNTS.rx;
  const publisher = await hostClient(probe.broker, `bench-rx-${process.pid}`);
  let cpuStart: number | undefined;
  let cpu: number | undefined;
  try {
    const report = await phase(probe, configOf(probe, module, "rx", "cached", topic, count), "rx", {
      ms: probe.callgrind ? 1_800_000 : 120_000,
      onEvent: (name) => {
        if (name === "rx") cpu = cpuSince(probe, cpuStart);
        if (name !== "ready") return;
        cpuStart = probe.target.cpu();
        // "m" + 5 digits + the reading: the probe checks the first char and the tail
        for (let i = 0; i < count; i++) publisher.publish(topic, `m${String(i).padStart(5, "0")};21.5;48.2;1013.2`, { qos: 0 });
      },
    });
    const intact = Number(report.intact);
    // a module that loses messages ends the phase 2 s after the last one: that CPU time is not its rate's
    return { rate: rate(intact, Number(report.s), intact == count ? cpu : undefined, probe), intact: intact / count };
  } finally {
    await publisher.endAsync();
  }
}

/** QoS 1 publish, WINDOW in flight: from the first publish to the last PUBACK, on the device. */
async function qos1(probe: Probe, module: Module): Promise<Rate> {
  let cpuStart: number | undefined;
  let cpu: number | undefined;
  const report = await phase(probe, configOf(probe, module, "q1", "cached", `bench/q1/${module.kind}`, COUNTS.q1), "q1", {
    ms: probe.callgrind ? 1_800_000 : 120_000,
    onEvent: (name) => {
      if (name === "ready") cpuStart = probe.target.cpu();
      if (name === "q1") cpu = cpuSince(probe, cpuStart);
    },
  });
  return rate(Number(report.count), Number(report.s), cpu, probe);
}

// --- the run ---------------------------------------------------------------------------------------------

interface Results {
  bytes: number;
  memCached?: Report;
  memStorage?: Report;
  q0: Rate[];
  rx: Rate[];
  intact: number[];
  q1: Rate[];
}

function median(values: (number | undefined)[]): number {
  const sorted = values.filter((v): v is number => v !== undefined).sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : NaN;
}

const fmt = (n: number | undefined) => (n === undefined || !Number.isFinite(n) || n < 0 ? "—" : Math.round(n).toLocaleString("en-US"));

function table(modules: Module[], results: Results[], notes: { jsvarsCached: string; jsvarsStorage: string; rates: string }): string {
  const ratio = (values: (number | undefined)[]) => {
    const [w, p] = values;
    return w !== undefined && p !== undefined && p > 0 && w >= 0 ? (w / p).toFixed(2) : "—";
  };
  const rows: [string, (number | undefined)[], string?][] = [
    ["bytes", results.map((r) => r.bytes)],
    [`JsVars after require, from Storage (${notes.jsvarsStorage})`, results.map((r) => r.memStorage?.require as number)],
    [`JsVars, require + connect + 2 subscriptions, from Storage (${notes.jsvarsStorage})`, results.map((r) => r.memStorage?.connected as number)],
    [`JsVars after require, Modules.addCached (${notes.jsvarsCached})`, results.map((r) => r.memCached?.require as number)],
    [`JsVars, require + connect + 2 subscriptions, Modules.addCached (${notes.jsvarsCached})`, results.map((r) => r.memCached?.connected as number)],
    [`QoS 0 publish, ${COUNTS.q0.toLocaleString("en-US")} msgs, msg/s seen by a subscriber (${notes.rates})`, results.map((r) => median(r.q0.map((x) => x.wall)))],
    [`receive burst, ${COUNTS.rx.toLocaleString("en-US")} msgs, intact msgs/s (${notes.rates})`, results.map((r) => median(r.rx.map((x) => x.wall)))],
    [`QoS 1 publish, ${COUNTS.q1.toLocaleString("en-US")} msgs, ${WINDOW} in flight, msg/s (${notes.rates})`, results.map((r) => median(r.q1.map((x) => x.wall)))],
    ...(results[0].q0.some((x) => x.ins)
      ? ([
          ["QoS 0 publish, msg per 10^9 instructions of JavaScript", results.map((r) => median(r.q0.map((x) => x.ins)))],
          ["receive burst, intact msgs per 10^9 instructions", results.map((r) => median(r.rx.map((x) => x.ins)))],
          ["QoS 1 publish, msg per 10^9 instructions", results.map((r) => median(r.q1.map((x) => x.ins)))],
        ] as [string, (number | undefined)[]][])
      : []),
    ...(results[0].q0.some((x) => x.cpu)
      ? ([
          ["QoS 0 publish, msg per CPU-second of the interpreter", results.map((r) => median(r.q0.map((x) => x.cpu)))],
          ["receive burst, intact msgs per CPU-second", results.map((r) => median(r.rx.map((x) => x.cpu)))],
          ["QoS 1 publish, msg per CPU-second", results.map((r) => median(r.q1.map((x) => x.cpu)))],
        ] as [string, (number | undefined)[]][])
      : []),
  ];
  const cell = (row: string, v: number | undefined, i: number) => {
    if (row.startsWith("receive") && results[i].intact.length && median(results[i].intact) < 0.99) return `${fmt(v)} (loses ${Math.round(100 * (1 - median(results[i].intact)))}%)`;
    return fmt(v);
  };
  const header = ["measure (same run)", ...modules.map((m) => m.label), `${modules[0].label} ÷ ${modules[1].label}`];
  const cells = [header, ...rows.map(([name, values]) => [name, ...values.map((v, i) => cell(name, v, i)), ratio(values)])];
  const widths = header.map((_, c) => Math.max(...cells.map((r) => r[c].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(" | ")} |`;
  return [line(header), `|${widths.map((w, i) => (i ? "-".repeat(w + 1) + ":" : "-".repeat(w + 2))).join("|")}|`, ...cells.slice(1).map(line)].join("\n");
}

const HOW_TO = `npm run bench:device needs a Linux build of Espruino and the Espruino MQTT module (or a board: --port).

  1. Espruino 2v29 for Linux, built from its public source in a few minutes: docs/espruino-notes.md,
     "Building Espruino for Linux". Then
       export ESPRUINO_BIN=~/src/Espruino/bin/espruino
     (the rates come from it; the JsVars from espruino32 and espruino32-flash beside it, which have the
     ESP32's 14-byte JsVars, or from ESPRUINO_BIN32 and ESPRUINO_BIN32_FLASH).
  2. The EspruinoDocs MQTT module, minified:
       git clone --depth 1 https://github.com/espruino/EspruinoDocs /tmp/EspruinoDocs
       npx esbuild --minify /tmp/EspruinoDocs/modules/MQTT.js --outfile=/tmp/MQTT.min.js
       export ESPRUINO_MQTT_MODULE=/tmp/MQTT.min.js
     (optionally tinyMQTT the same way, as ESPRUINO_TINYMQTT_MODULE). Keep both out of this repository.
  3. npm run bench:device

Mosquitto 2 must be installed (apt-get install mosquitto mosquitto-clients); the benchmark starts its own.`;

function lanAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return undefined;
}

function resolveBinary(env: string | undefined, beside: string | undefined, name: string): string | undefined {
  if (env) return env;
  if (!beside) return undefined;
  const candidate = path.join(path.dirname(beside), name);
  return existsSync(candidate) ? candidate : undefined;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      port: { type: "string" },
      baud: { type: "string", default: "115200" },
      host: { type: "string" },
      config: { type: "string" },
      rounds: { type: "string", default: String(ROUNDS) },
      verbose: { type: "boolean", short: "v" },
      instructions: { type: "boolean" },
    },
  });
  const bin = process.env.ESPRUINO_BIN;
  const peerFile = process.env.ESPRUINO_MQTT_MODULE;
  if (!peerFile || (!values.port && !bin)) {
    console.log(HOW_TO);
    return 0;
  }
  for (const [what, file] of [["ESPRUINO_MQTT_MODULE", peerFile], ["ESPRUINO_BIN", bin]] as const) {
    if (file && !existsSync(file)) throw new Error(`${what}=${file}: no such file`);
  }
  const wispFile = process.env.WISP_MQTT_JS ?? path.join(PROJECT_ROOT, "dist/mqtt.js");
  if (!existsSync(wispFile)) throw new Error(`${wispFile} is missing: npm run build first`);
  const modules: Module[] = [
    { label: "Wisp", kind: "wisp", file: wispFile, name: "wisp-mqtt" },
    { label: "EspruinoDocs MQTT (minified)", kind: "espruino", file: peerFile, name: "MQTT" },
  ];
  const tiny = process.env.ESPRUINO_TINYMQTT_MODULE;
  if (tiny) modules.push({ label: "tinyMQTT (minified)", kind: "tiny", file: tiny, name: "tinyMQTT" });
  const rounds = Math.max(1, Number(values.rounds) || ROUNDS);

  const host = values.port ? (values.host ?? lanAddress()) : "127.0.0.1";
  if (!host) throw new Error("no LAN address found for the board to reach the broker at: pass --host ADDRESS");
  const broker = await startBroker(host);
  const results: Results[] = modules.map((m) => ({ bytes: statSync(m.file).size, q0: [], rx: [], intact: [], q1: [] }));
  const started = performance.now();
  const targets: Target[] = [];
  try {
    let notes: { jsvarsCached: string; jsvarsStorage: string; rates: string };
    let speed: Target, cached: Target, storage: Target | undefined;
    let wifi: Probe["wifi"];
    if (values.port) {
      const board = await BoardTarget.open(values.port, Number(values.baud));
      targets.push(board);
      speed = cached = storage = board;
      const config = values.config ?? path.join(PROJECT_ROOT, "flash.config.json");
      if (existsSync(config)) {
        const rendered = renderDeviceConfig(loadFlashConfig(config));
        wifi = { ssid: rendered.wifi.ssid, pass: rendered.wifi.password };
      }
      notes = { jsvarsCached: "on the board", jsvarsStorage: "on the board", rates: "on the board" };
    } else {
      const b32 = resolveBinary(process.env.ESPRUINO_BIN32, bin, "espruino32");
      const b32flash = resolveBinary(process.env.ESPRUINO_BIN32_FLASH, bin, "espruino32-flash");
      let callgrind: LinuxTarget["callgrind"];
      if (values.instructions) {
        const valgrind = findTool("valgrind");
        const annotate = findTool("callgrind_annotate");
        if (!valgrind || !annotate) throw new Error("--instructions needs valgrind (apt-get install valgrind)");
        callgrind = { valgrind, annotate };
      }
      speed = new LinuxTarget(bin!, callgrind);
      cached = b32 ? new LinuxTarget(b32) : speed;
      storage = b32flash ? new LinuxTarget(b32flash) : undefined;
      targets.push(...new Set([speed, cached, ...(storage ? [storage] : [])]));
      notes = {
        jsvarsCached: (cached as LinuxTarget).describe(),
        jsvarsStorage: storage ? (storage as LinuxTarget).describe() : "no espruino32-flash: not measured",
        rates: (speed as LinuxTarget).describe(),
      };
    }
    const probeOf = (target: Target): Probe => ({ target, broker, host, wifi, callgrind: target instanceof LinuxTarget && !!target.callgrind });
    for (const [i, m] of modules.entries()) {
      results[i].memCached = await memory(probeOf(cached), m, "cached");
      if (storage) results[i].memStorage = await memory(probeOf(storage), m, "storage");
    }
    for (let round = 0; round < rounds; round++) {
      for (const [i, m] of modules.entries()) {
        const p = probeOf(speed);
        results[i].q0.push(await qos0(p, m));
        const rx = await receive(p, m);
        results[i].rx.push(rx.rate);
        results[i].intact.push(rx.intact);
        if (m.kind !== "tiny") results[i].q1.push(await qos1(p, m));
        if (values.verbose) {
          const r = (x: Rate | undefined) => (x ? `${fmt(x.wall)} /s, ${fmt(x.cpu)} /CPU-s` : "-");
          console.log(`round ${round + 1}, ${m.label}: QoS 0 ${r(results[i].q0.at(-1))}; receive ${r(results[i].rx.at(-1))}; QoS 1 ${r(results[i].q1.at(-1))}`);
        }
      }
    }
    const it = interpreter ?? {};
    console.log(
      `Espruino ${it.version ?? "?"} (commit ${it.commit ?? "?"}, BOARD ${it.board ?? "?"})` +
        (values.port ? ` on ${values.port}` : `: rates on ${notes.rates}, JsVars on ${notes.jsvarsCached} and ${notes.jsvarsStorage} (14-byte JsVars)`) +
        `; Mosquitto on ${host}; median of ${rounds} round${rounds === 1 ? "" : "s"}\n`,
    );
    console.log(table(modules, results, notes));
    console.log(`\n(${((performance.now() - started) / 1000).toFixed(1)} s; a ratio above 1 favours Wisp for rates, below 1 for bytes and JsVars)`);
    return 0;
  } finally {
    for (const t of targets) await t.close().catch(() => undefined);
    await broker.process.stop();
    rmSync(broker.dir, { recursive: true, force: true });
  }
}

process.exitCode = await main().catch((err: Error) => {
  console.error(`bench:device failed: ${err.message}`);
  return 1;
});
