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
import { parse } from "acorn";
import { simple } from "acorn-walk";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import mqtt, { type MqttClient } from "mqtt";
import { findTool, freePort, isExecutable, launchMosquitto, type MosquittoProcess } from "../../tools/broker/mosquitto.ts";
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
  /** the environment variable that names its file */
  variable: string;
  /** where it came from, for messages: `ESPRUINO_MQTT_MODULE=/path` */
  who: string;
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

export class LinuxTarget implements Target {
  /** one working directory per target: its Storage (espruino.flash) carries over from phase to phase */
  readonly dir = mkdtempSync(path.join(tmpdir(), "wisp-bench-device-"));
  private child: ChildProcess | undefined;
  /** JavaScript instructions of the last phase run under callgrind (see `instructions`) */
  lastInstructions: number | undefined;

  /** `callgrind`: run each phase under valgrind's callgrind and count instructions (see --instructions) */
  constructor(
    readonly binary: string,
    /** where it came from, for messages: `ESPRUINO_BIN=/path` */
    readonly who: string,
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
    let spawnError: Error | undefined;
    // "close", not "exit": it comes once stdout has been read to the end; "error": it could not be
    // started (or killed), which Node throws from the process unless it is handled here
    const exited = new Promise<void>((resolve) => {
      child.once("close", () => resolve());
      child.once("error", (err) => {
        spawnError = err;
        resolve();
      });
    });
    child.stdin!.on("error", () => undefined);
    let text = "";
    let output = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      text = takeReports(text + chunk.toString("latin1"), events);
      output = (output + chunk.toString("latin1")).slice(-4000);
    });
    child.stderr!.on("data", (chunk: Buffer) => (output = (output + chunk.toString("latin1")).slice(-4000)));
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
        if (spawnError) failure ??= new Error(`${this.who}: cannot run it: ${spawnError.message}`);
        if (!settled) failure ??= new Error(`the interpreter (${this.who}) exited before the phase finished; its last output:\n${output.trim()}`);
      }),
    ]);
    settled = true;
    // under callgrind the probe ends itself (callgrind writes its counts at the exit, not on SIGKILL)
    if (this.callgrind && !failure) await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 30_000))]);
    if (!spawnError && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
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

async function startBroker(host: string, dir: string): Promise<Broker> {
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

/**
 * The benchmark's own subscriber or publisher on this machine. An error after it connected (the broker
 * gone mid-run) is said on stderr rather than thrown as an unhandled 'error' event: the phase then ends
 * by its own deadline, and the run's cleanup stops what it started.
 */
async function hostClient(broker: Broker, id: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://${broker.host}:${broker.port}`, { clientId: id, reconnectPeriod: 0 });
  client.on("error", (e) => console.error(`bench:device: the benchmark's MQTT client ${id} on ${broker.host}:${broker.port}: ${e.message}`));
  return client;
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

/** Each interpreter's own report of itself (its first phase's): version, commit, BOARD, blocksize. */
const interpreters = new Map<Target, Report>();

/** What a peer module is, for the messages that say a file is not it. */
const PEERS: Record<Exclude<Kind, "wisp">, { what: string; source: string; events: string[] }> = {
  espruino: { what: "the EspruinoDocs MQTT module", source: "modules/MQTT.js in EspruinoDocs, minified", events: ["connected", "subscribed", "puback"] },
  tiny: { what: "tinyMQTT", source: "modules/tinyMQTT.js in EspruinoDocs, minified", events: ["connected", "message"] },
};

/** The message for a module that failed on the interpreter: its variable and file first, not its kind. */
export function moduleFailure(module: Pick<Module, "kind" | "variable" | "who">, phase: string, message: string): string {
  const peer = module.kind === "wisp" ? undefined : PEERS[module.kind];
  return (
    `${module.who}: the ${phase} phase failed on the interpreter: ${message}` +
    (peer ? `\n  (it does not look like ${peer.what}: ${module.variable} must name ${peer.source})` : "")
  );
}

/**
 * Runs a phase until `done` (by default: the probe's `want` report, which it resolves with); an
 * `error` report from the probe fails it, with the module's variable and file.
 */
async function phase(
  probe: Probe,
  module: Module,
  config: ProbeConfig,
  want: string,
  options: { ms?: number; onEvent?: (phase: string, report: Report) => void; done?: Promise<unknown> } = {},
): Promise<Report> {
  let resolve!: (r: Report) => void;
  let reject!: (e: Error) => void;
  const result = new Promise<Report>((res, rej) => ((resolve = res), (reject = rej)));
  const events = (name: string, report: Report) => {
    if (name === "interpreter" && !interpreters.has(probe.target)) interpreters.set(probe.target, report);
    if (name === "error") reject(new Error(String(report.message)));
    if (name === want) resolve(report);
    options.onEvent?.(name, report);
  };
  const ms = options.ms ?? 60_000;
  const done = options.done ? Promise.race([options.done, result]) : result;
  try {
    await probe.target.run(config, events, Promise.race([done, timeout(ms, "the probe")]));
  } catch (err) {
    const message = (err as Error).message;
    // the interpreter itself could not be started: not the module's fault
    if (/: cannot run it: /.test(message) || interrupted) throw err;
    throw new Error(moduleFailure(module, config.phase, message));
  }
  return options.done ? {} : result;
}

async function memory(probe: Probe, module: Module, load: ProbeConfig["load"]): Promise<Report> {
  if (probe.target instanceof BoardTarget) await probe.target.store(module);
  else if (load === "storage") await phase(probe, module, configOf(probe, module, "store", load, "", 0), "stored");
  return phase(probe, module, configOf(probe, module, "mem", load, "", 0), "mem");
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
    await phase(probe, module, { ...configOf(probe, module, "q0", "cached", topic, count), quit: probe.callgrind ? quietMs + 5000 : 0 }, "", {
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
    const report = await phase(probe, module, configOf(probe, module, "rx", "cached", topic, count), "rx", {
      ms: probe.callgrind ? 1_800_000 : 120_000,
      onEvent: (name) => {
        // CPU time over the window the probe's own rate is timed over: first message to last
        if (name === "first") cpuStart = probe.target.cpu();
        if (name === "rx") cpu = cpuSince(probe, cpuStart);
        if (name !== "ready") return;
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
  const report = await phase(probe, module, configOf(probe, module, "q1", "cached", `bench/q1/${module.kind}`, COUNTS.q1), "q1", {
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

/** The options, the environment variables and what each does (`--help`, and after an unknown option). */
export const USAGE = `Usage: npm run bench:device [-- OPTIONS]

Wisp's MQTT client on the Espruino interpreter next to the EspruinoDocs MQTT module (and tinyMQTT):
bytes, JsVars and rates, in one run against a Mosquitto it starts itself.

Options:
  --port PATH        run on a board on this serial port, not on the Linux builds
  --host ADDRESS     with --port: the address the board reaches the benchmark's Mosquitto at
                     (default: this machine's LAN address)
  --config FILE      with --port: the Wi-Fi the board joins when it is on none (default: flash.config.json)
  --baud N           with --port: the console's baud rate (default: 115200)
  --rounds N         measure each rate N times, alternating modules, and show the median (default: ${ROUNDS})
  --instructions     Linux builds: also count instructions with valgrind's callgrind (the same figure
                     every run, at some 50 times the run time; apt-get install valgrind)
  -v, --verbose      print every round's rates
  -h, --help         print this text

Environment:
  ESPRUINO_BIN              a Linux build of Espruino (the rates come from it); not needed with --port
  ESPRUINO_BIN32            the build with the ESP32's 14-byte JsVars, for the JsVars
                            (default: espruino32 beside ESPRUINO_BIN)
  ESPRUINO_BIN32_FLASH      the same running code from Storage in flash, as an ESP32 does
                            (default: espruino32-flash beside ESPRUINO_BIN)
  ESPRUINO_MQTT_MODULE      the EspruinoDocs MQTT module (modules/MQTT.js), minified with esbuild
  ESPRUINO_TINYMQTT_MODULE  tinyMQTT (modules/tinyMQTT.js in EspruinoDocs), minified: adds a column
  WISP_MQTT_JS              another build of Wisp's client to bench (default: dist/mqtt.js)
  WISP_MOSQUITTO            the mosquitto program (default: found on PATH or in /usr/sbin)

Without ESPRUINO_MQTT_MODULE (or without ESPRUINO_BIN and --port) it says how to get them and exits 0.`;

/** The steps to get what is missing: the interpreter unless a board is given (--port), the module. */
export function howTo(missing: { bin: boolean; module: boolean; board: boolean }): string {
  const steps: string[] = [];
  if (missing.bin && !missing.board)
    steps.push(`Espruino 2v29 for Linux, built from its public source in a few minutes: docs/espruino-notes.md,
     "Building Espruino for Linux". Then
       export ESPRUINO_BIN=~/src/Espruino/bin/espruino
     (the rates come from it; the JsVars from espruino32 and espruino32-flash beside it, which have the
     ESP32's 14-byte JsVars, or from ESPRUINO_BIN32 and ESPRUINO_BIN32_FLASH).`);
  if (missing.module)
    steps.push(`The EspruinoDocs MQTT module, minified with this project's esbuild (run npx from inside the
     project, so that it runs the pinned esbuild, not whatever npx would download):
       git clone --depth 1 https://github.com/espruino/EspruinoDocs /tmp/EspruinoDocs
       cd ${PROJECT_ROOT}
       npx esbuild --minify /tmp/EspruinoDocs/modules/MQTT.js --outfile=/tmp/MQTT.min.js
       export ESPRUINO_MQTT_MODULE=/tmp/MQTT.min.js
     Optionally tinyMQTT, the same way:
       npx esbuild --minify /tmp/EspruinoDocs/modules/tinyMQTT.js --outfile=/tmp/tinyMQTT.min.js
       export ESPRUINO_TINYMQTT_MODULE=/tmp/tinyMQTT.min.js
     Keep both out of this repository.`);
  steps.push(`npm run bench:device${missing.board ? " -- --port PORT" : ""}`);
  const needs = missing.board ? "the Espruino MQTT module to compare with" : "a Linux build of Espruino and the Espruino MQTT module (or a board: --port)";
  return `npm run bench:device needs ${needs}.

${steps.map((step, i) => `  ${i + 1}. ${step}`).join("\n")}

Mosquitto 2 must be installed (apt-get install mosquitto mosquitto-clients); the benchmark starts its own.
npm run bench:device -- --help lists the options.`;
}

export type Options = {
  port?: string;
  host?: string;
  config?: string;
  baud: number;
  rounds: number;
  verbose: boolean;
  instructions: boolean;
};

/**
 * The command line, checked: `options`, or what to print and the exit code (0 for --help, 2 for a
 * usage error, which prints the usage too).
 */
export function parseOptions(argv: string[]): { options: Options } | { exit: number; text: string } {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        port: { type: "string" },
        baud: { type: "string" },
        host: { type: "string" },
        config: { type: "string" },
        rounds: { type: "string" },
        verbose: { type: "boolean", short: "v" },
        instructions: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    return { exit: 2, text: `bench:device: ${(err as Error).message}\n\n${USAGE}` };
  }
  if (values.help) return { exit: 0, text: USAGE };
  const usageError = (message: string) => ({ exit: 2, text: `bench:device: ${message}\n\n${USAGE}` });
  const positive = (name: string, value: string | undefined, fallback: number) => {
    if (value === undefined) return fallback;
    return /^[1-9]\d*$/.test(value.trim()) ? Number(value) : undefined;
  };
  const rounds = positive("rounds", values.rounds, ROUNDS);
  if (rounds === undefined) return usageError(`--rounds ${JSON.stringify(values.rounds)}: give a whole number of rounds, 1 or more`);
  const baud = positive("baud", values.baud, 115200);
  if (baud === undefined) return usageError(`--baud ${JSON.stringify(values.baud)}: give the baud rate as a whole number, e.g. 115200`);
  if (!values.port) {
    const boardOnly = (["host", "config", "baud"] as const).filter((name) => values[name] !== undefined);
    if (boardOnly.length) return usageError(`${boardOnly.map((n) => `--${n}`).join(", ")} apply to a board: give its serial port with --port too`);
  } else if (values.instructions) return usageError("--instructions counts instructions on the Linux builds, not on a board: leave out --port or --instructions");
  return {
    options: {
      port: values.port,
      host: values.host,
      config: values.config,
      baud,
      rounds,
      verbose: !!values.verbose,
      instructions: !!values.instructions,
    },
  };
}

/** The hint for a path given with a "~" that no shell expanded (a quoted one, or one from a .env file). */
function tildeHint(variable: string, file: string): string {
  return file.startsWith("~")
    ? ` (a "~" inside quotes is not expanded by the shell: write ${variable}=$HOME${file.slice(1)} or the full path)`
    : "";
}

/**
 * Why `file` cannot be run as an Espruino interpreter, or undefined when it can: it must be an
 * executable regular file holding an ELF binary or a #! script. `who` names where it came from
 * (`ESPRUINO_BIN=...`), `variable` the variable to fix.
 */
export function checkProgram(who: string, variable: string, file: string): string | undefined {
  let stat;
  try {
    stat = statSync(file);
  } catch {
    return `${who}: no such file${tildeHint(variable, file)}`;
  }
  if (stat.isDirectory()) {
    const inside = ["espruino", "bin/espruino"].map((name) => path.join(file, name)).find((p) => existsSync(p));
    return `${who}: is a directory, not the interpreter: set ${variable} to the program itself${inside ? `, e.g. ${inside}` : ""}`;
  }
  if (!stat.isFile()) return `${who}: not a regular file: set ${variable} to the Espruino program built for Linux`;
  if (!isExecutable(file)) return `${who}: not executable: chmod +x ${file} (or set ${variable} to the build itself)`;
  const head = Buffer.alloc(5);
  const fd = openSync(file, "r");
  try {
    readSync(fd, head, 0, 5, 0);
  } finally {
    closeSync(fd);
  }
  const elf = head.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  if (!elf && head.subarray(0, 2).toString("latin1") !== "#!") return `${who}: not a program (neither an ELF binary nor a #! script): set ${variable} to the Espruino build`;
  if (elf && head[4] === 1 && process.arch === "x64" && !findTool("qemu-i386")) return `${who}: a 32-bit build, which needs qemu-i386 here: apt-get install qemu-user`;
  return undefined;
}

/** Names the property an `exports.X = ...` / `module.exports.X = ...` assignment sets. */
function exported(node: { type: string; object?: any; property?: any; computed?: boolean }): string | undefined {
  if (node.type !== "MemberExpression" || node.computed || node.property?.type !== "Identifier") return undefined;
  const o = node.object;
  const isExports = (o?.type === "Identifier" && o.name === "exports") || (o?.type === "MemberExpression" && o.object?.name === "module" && o.property?.name === "exports");
  return isExports ? node.property.name : undefined;
}

/**
 * Why `file` is not the module `kind` the probe drives, or undefined when it looks like it: it must be
 * a non-empty JavaScript file that parses, exports what the probe calls (Wisp: `connect`; the peers:
 * `create`) and, for a peer, names the events the probe listens to. `variable` is the variable that
 * named it.
 */
export function checkModule(kind: Kind, variable: string, file: string, who = `${variable}=${file}`): string | undefined {
  let stat;
  try {
    stat = statSync(file);
  } catch {
    return `${who}: no such file${tildeHint(variable, file)}`;
  }
  if (!stat.isFile()) return `${who}: not a regular file${stat.isDirectory() ? " but a directory" : ""}: set ${variable} to the minified module's file`;
  const peer = kind === "wisp" ? undefined : PEERS[kind];
  const notIt = peer ? `: it does not look like ${peer.what} (${variable} must name ${peer.source})` : ": npm run build makes it";
  if (stat.size === 0) return `${who}: the file is empty${notIt}`;
  const text = readFileSync(file, "latin1");
  let ast;
  try {
    ast = parse(text, { ecmaVersion: "latest", sourceType: "script", allowReturnOutsideFunction: true, allowHashBang: true });
  } catch (err) {
    return `${who}: not JavaScript (${(err as Error).message})${notIt}`;
  }
  const exports = new Set<string>();
  const strings = new Set<string>();
  simple(ast, {
    AssignmentExpression(node) {
      const name = exported(node.left as never);
      if (name) exports.add(name);
    },
    Literal(node) {
      if (typeof node.value === "string") strings.add(node.value);
    },
  });
  const entry = kind === "wisp" ? "connect" : "create";
  if (!exports.has(entry)) return `${who}: it sets no exports.${entry}${notIt}`;
  if (!peer) return undefined;
  if (kind === "tiny" && strings.has("puback")) return `${who}: it emits "puback", as the EspruinoDocs MQTT module does, not tinyMQTT: ${variable} must name ${peer.source}`;
  const missing = peer.events.filter((e) => !strings.has(e));
  if (missing.length) {
    const other = kind === "espruino" && !strings.has("puback") && strings.has("message") ? " (it looks like tinyMQTT: that one goes in ESPRUINO_TINYMQTT_MODULE)" : "";
    return `${who}: it never emits ${missing.map((e) => JSON.stringify(e)).join(", ")}${notIt}${other}`;
  }
  return undefined;
}

/** One build's line of the header: which program, its version and BOARD, the size of its JsVars. */
export function buildLine(role: string, name: string, report: Report | undefined, jsvars: boolean): string {
  if (!report) return `  ${role}: ${name}`;
  const blocksize = Number(report.blocksize);
  let line = `  ${role}: ${name}, Espruino ${report.version ?? "?"} (commit ${report.commit ?? "?"}), BOARD ${report.board ?? "?"}, ${blocksize || "?"}-byte JsVars`;
  if (jsvars && blocksize === 14) line += " as on an ESP32";
  else if (jsvars) line += ": not an ESP32's (14 bytes), so these JsVar counts are not an ESP32's (put espruino32 and espruino32-flash beside ESPRUINO_BIN, or set ESPRUINO_BIN32 and ESPRUINO_BIN32_FLASH)";
  return line;
}

function lanAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return undefined;
}

/** A build: the variable's value, else `name` beside ESPRUINO_BIN when it is there. */
function resolveBinary(variable: string, beside: string | undefined, name: string): { file: string; who: string } | undefined {
  const given = process.env[variable];
  if (given) return { file: given, who: `${variable}=${given}` };
  if (!beside) return undefined;
  const candidate = path.join(path.dirname(beside), name);
  return existsSync(candidate) ? { file: candidate, who: `${candidate} (found beside ESPRUINO_BIN; ${variable} names another)` } : undefined;
}

// --- stopping what the run started, on every way out ----------------------------------------------

/** Set once Ctrl-C (SIGINT) or SIGTERM came: what fails after it is the stopping, not a fault. */
let interrupted = false;
/** What to undo, newest last: the interpreters (and their folders), Mosquitto, its folder. */
const cleanups: (() => Promise<void> | void)[] = [];

/** Runs every cleanup once, newest first; each gets 10 s (a board that no longer answers). */
async function release(): Promise<void> {
  while (cleanups.length) {
    const cleanup = cleanups.pop()!;
    await Promise.race([Promise.resolve().then(cleanup), new Promise((resolve) => setTimeout(resolve, 10_000).unref())]).catch(() => undefined);
  }
}

function onSignal(signal: NodeJS.Signals): void {
  // a second Ctrl-C: out now
  if (interrupted) process.exit(130);
  interrupted = true;
  console.error(`\nbench:device: ${signal}: stopping the interpreter and Mosquitto (Ctrl-C again to leave them)`);
  void release().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
}

/** Starts the run's Mosquitto; it and its folder go on every way out, also when stopped while it starts. */
async function startBrokerForRun(host: string): Promise<Broker> {
  const dir = mkdtempSync(path.join(tmpdir(), "wisp-bench-mosquitto-"));
  const starting = startBroker(host, dir);
  cleanups.push(async () => {
    const broker = await starting.catch(() => undefined);
    await broker?.process.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return starting;
}

async function main(argv: string[]): Promise<number> {
  const parsed = parseOptions(argv);
  if ("exit" in parsed) {
    (parsed.exit ? console.error : console.log)(parsed.text);
    return parsed.exit;
  }
  const values = parsed.options;
  const bin = process.env.ESPRUINO_BIN;
  const peerFile = process.env.ESPRUINO_MQTT_MODULE;
  if (!peerFile || (!values.port && !bin)) {
    console.log(howTo({ bin: !bin, module: !peerFile, board: !!values.port }));
    return 0;
  }
  // everything checked before anything starts: a bad path is named with its variable and how to fix it
  const problems: string[] = [];
  const wispGiven = process.env.WISP_MQTT_JS;
  const wispFile = wispGiven ?? path.join(PROJECT_ROOT, "dist/mqtt.js");
  const modules: Module[] = [
    { label: "Wisp", kind: "wisp", file: wispFile, name: "wisp-mqtt", variable: "WISP_MQTT_JS", who: wispGiven ? `WISP_MQTT_JS=${wispGiven}` : wispFile },
    { label: "EspruinoDocs MQTT (minified)", kind: "espruino", file: peerFile, name: "MQTT", variable: "ESPRUINO_MQTT_MODULE", who: `ESPRUINO_MQTT_MODULE=${peerFile}` },
  ];
  const tiny = process.env.ESPRUINO_TINYMQTT_MODULE;
  if (tiny) modules.push({ label: "tinyMQTT (minified)", kind: "tiny", file: tiny, name: "tinyMQTT", variable: "ESPRUINO_TINYMQTT_MODULE", who: `ESPRUINO_TINYMQTT_MODULE=${tiny}` });
  for (const m of modules) {
    const problem = !wispGiven && m.kind === "wisp" && !existsSync(wispFile) ? `${wispFile} is missing: npm run build first` : checkModule(m.kind, m.variable, m.file, m.who);
    if (problem) problems.push(problem);
  }
  let builds: { speed: { file: string; who: string }; b32?: { file: string; who: string }; b32flash?: { file: string; who: string } } | undefined;
  if (!values.port) {
    builds = {
      speed: { file: bin!, who: `ESPRUINO_BIN=${bin}` },
      b32: resolveBinary("ESPRUINO_BIN32", bin, "espruino32"),
      b32flash: resolveBinary("ESPRUINO_BIN32_FLASH", bin, "espruino32-flash"),
    };
    for (const [variable, build] of [["ESPRUINO_BIN", builds.speed], ["ESPRUINO_BIN32", builds.b32], ["ESPRUINO_BIN32_FLASH", builds.b32flash]] as const) {
      const problem = build && checkProgram(build.who, variable, build.file);
      if (problem) problems.push(problem);
    }
  }
  let callgrind: LinuxTarget["callgrind"];
  if (values.instructions) {
    const valgrind = findTool("valgrind");
    const annotate = findTool("callgrind_annotate");
    if (!valgrind || !annotate) problems.push("--instructions needs valgrind: apt-get install valgrind");
    else callgrind = { valgrind, annotate };
  }
  const host = values.port ? (values.host ?? lanAddress()) : "127.0.0.1";
  if (!host) problems.push("no LAN address found for the board to reach the broker at: pass --host ADDRESS");
  if (problems.length) {
    console.error(`bench:device: ${problems.join("\n")}`);
    return 1;
  }

  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const broker = await startBrokerForRun(host!);
  const results: Results[] = modules.map((m) => ({ bytes: statSync(m.file).size, q0: [], rx: [], intact: [], q1: [] }));
  const started = performance.now();
  const rounds = values.rounds;
  try {
    let notes: { jsvarsCached: string; jsvarsStorage: string; rates: string };
    let speed: Target, cached: Target, storage: Target | undefined;
    let wifi: Probe["wifi"];
    const adopt = <T extends Target>(target: T): T => {
      cleanups.push(() => target.close());
      return target;
    };
    if (values.port) {
      const board = adopt(await BoardTarget.open(values.port, values.baud));
      speed = cached = storage = board;
      const config = values.config ?? path.join(PROJECT_ROOT, "flash.config.json");
      if (existsSync(config)) {
        const rendered = renderDeviceConfig(loadFlashConfig(config));
        wifi = { ssid: rendered.wifi.ssid, pass: rendered.wifi.password };
      } else if (values.config) throw new Error(`--config ${values.config}: no such file`);
      notes = { jsvarsCached: "on the board", jsvarsStorage: "on the board", rates: "on the board" };
    } else {
      const { b32, b32flash } = builds!;
      speed = adopt(new LinuxTarget(builds!.speed.file, builds!.speed.who, callgrind));
      cached = b32 ? adopt(new LinuxTarget(b32.file, b32.who)) : speed;
      storage = b32flash ? adopt(new LinuxTarget(b32flash.file, b32flash.who)) : undefined;
      notes = {
        jsvarsCached: (cached as LinuxTarget).describe(),
        jsvarsStorage: storage ? (storage as LinuxTarget).describe() : "no espruino32-flash: not measured",
        rates: (speed as LinuxTarget).describe(),
      };
    }
    const probeOf = (target: Target): Probe => ({ target, broker, host: host!, wifi, callgrind: target instanceof LinuxTarget && !!target.callgrind });
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
    const runs = `Mosquitto on ${host}; median of ${rounds} round${rounds === 1 ? "" : "s"}`;
    if (values.port) {
      console.log(`${speed.describe()}; ${runs}`);
      console.log(buildLine("board", values.port, interpreters.get(speed), false) + "\n");
    } else {
      const lines = [`Linux builds of Espruino; ${runs}`, buildLine("rates", (speed as LinuxTarget).binary, interpreters.get(speed), false)];
      lines.push(buildLine("JsVars, Modules.addCached", (cached as LinuxTarget).binary, interpreters.get(cached), true));
      lines.push(storage ? buildLine("JsVars, from Storage", (storage as LinuxTarget).binary, interpreters.get(storage), true) : "  JsVars, from Storage: not measured (no espruino32-flash beside ESPRUINO_BIN, no ESPRUINO_BIN32_FLASH)");
      console.log(lines.join("\n") + "\n");
    }
    console.log(table(modules, results, notes));
    console.log(`\n(${((performance.now() - started) / 1000).toFixed(1)} s; a ratio above 1 favours Wisp for rates, below 1 for bytes and JsVars)`);
    return 0;
  } finally {
    await release();
  }
}

const isMain = !!process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (isMain) {
  process.exitCode = await main(process.argv.slice(2)).catch(async (err: Error) => {
    await release();
    if (!interrupted) console.error(`bench:device failed: ${err.message}`);
    return interrupted ? 130 : 1;
  });
}
