// `wisp sim`: sensor nodes on this machine, running the built firmware (dist/firmware.js, byte for
// byte what `wisp flash` uploads) against a local MQTT broker, with a live view.

import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { createSimulation, DEFAULT_NODE_CONFIG, type NodeConfig, type Simulation } from "../host-sim/sim.ts";
import { startLiveView, startPlainView, type View } from "../host-sim/view.ts";
import { PROJECT_ROOT } from "./paths.ts";

const USAGE = `usage: wisp sim [options]

Runs simulated ESP32 sensor nodes with the firmware built for the config (for flash.config.json:
dist/firmware.js, rebuilt when the sources are newer; for another --config, built in memory)
against an embedded MQTT broker, and shows their state, readings and traffic.

  -n, --nodes N        how many nodes (default 1); each has its own serial, client id and Storage
  -s, --scenario FILE  environment and faults over time (default scenarios/default.json)
  -b, --broker URL     use this broker (mqtt://host:port) instead of the embedded one
  -p, --port P         embedded broker port (default 1883, or the next free one)
  -d, --duration S     stop after S seconds (default: run until Ctrl-C)
  -c, --config FILE    flash config (default flash.config.json); its sensors are simulated
      --seed N         serials, sensor calibration and noise derive from it (default 0)
      --storage DIR    keep each node's Storage in DIR/node-<i>/ across runs
      --plain          one line per event even on a terminal
      --no-build       use dist/firmware.js as it is, whatever it was built for
  -h, --help           this text

The command that watches the nodes' topics is printed at start (mosquitto_sub -h ... -t '<prefix>/#').`;

const SOURCE_DIRS = ["firmware", "drivers", "boards"];

/** Newest modification time of the files under `dirs` (0 when none). */
function newestSource(root: string, dirs: string[]): number {
  let newest = 0;
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  for (const d of dirs) walk(path.join(root, d));
  return newest;
}

/** True when dist/firmware.js is missing, older than a source file, or was built for another config. */
export function needsBuild(root = PROJECT_ROOT, config = path.join(root, "flash.config.json")): boolean {
  const out = path.join(root, "dist", "firmware.js");
  if (!existsSync(out)) return true;
  if (newestSource(root, SOURCE_DIRS) > statSync(out).mtimeMs) return true;
  if (existsSync(config) && statSync(config).mtimeMs > statSync(out).mtimeMs) return true;
  // `wisp build --config other.json` leaves a firmware with other drivers behind
  try {
    const built = JSON.parse(readFileSync(path.join(root, "dist", "firmware.json"), "utf8")) as { label?: string };
    return built.label !== path.relative(root, config);
  } catch {
    return true;
  }
}

/** wisp.json for the simulated nodes, from flash.config.json (Wi-Fi and broker are the simulation's). */
async function nodeConfig(file: string): Promise<NodeConfig> {
  const overrides = { wifi: { ssid: "wisp-sim", password: "wisp-sim-password" }, mqttUrl: DEFAULT_NODE_CONFIG.mqtt.url };
  let configModule: typeof import("./config.ts") | undefined;
  try {
    configModule = await import("./config.ts");
  } catch {
    configModule = undefined;
  }
  if (configModule) {
    return configModule.renderDeviceConfig(configModule.loadFlashConfig(file), overrides) as unknown as NodeConfig;
  }
  const raw = JSON.parse(readFileSync(file, "utf8")) as Partial<NodeConfig> & { mqtt?: Record<string, unknown> };
  return { ...DEFAULT_NODE_CONFIG, ...raw, wifi: overrides.wifi, mqtt: { ...DEFAULT_NODE_CONFIG.mqtt, ...raw.mqtt, url: overrides.mqttUrl } } as NodeConfig;
}

/** The part of a topic prefix before the first `{id}` segment: `wisp/{id}` → `wisp`. */
export function prefixBase(prefix: string): string {
  const parts = prefix.split("/");
  const i = parts.findIndex((p) => p.includes("{id}"));
  return (i < 0 ? parts : parts.slice(0, i)).join("/") || "#";
}

export function watchCommand(brokerUrl: string, prefix: string): string {
  const url = new URL(brokerUrl);
  const base = prefixBase(prefix);
  const topic = base === "#" ? "#" : `${base}/#`;
  return `mosquitto_sub -h ${url.hostname.replace(/^\[|\]$/g, "")} -p ${url.port || "1883"} -v -t '${topic}'`;
}

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be a whole number >= 0, got ${JSON.stringify(value)}`);
  return n;
}

class UsageError extends Error {}

export async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        nodes: { type: "string", short: "n" },
        scenario: { type: "string", short: "s" },
        broker: { type: "string", short: "b" },
        port: { type: "string", short: "p" },
        duration: { type: "string", short: "d" },
        config: { type: "string", short: "c" },
        seed: { type: "string" },
        storage: { type: "string" },
        plain: { type: "boolean" },
        "no-build": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }).values;
  } catch (err) {
    console.error(`wisp sim: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  let nodes: number, port: number, seed: number, duration: number | undefined;
  try {
    nodes = positiveInt("nodes", args.nodes, 1);
    if (nodes < 1) throw new UsageError("--nodes must be at least 1");
    port = positiveInt("port", args.port, 1883);
    seed = positiveInt("seed", args.seed, 0);
    if (args.duration !== undefined) {
      duration = Number(args.duration);
      if (!(duration > 0)) throw new UsageError(`--duration must be a number of seconds > 0, got ${JSON.stringify(args.duration)}`);
    }
    if (args.broker !== undefined && !/^mqtts?:\/\/[^/]+/.test(args.broker)) throw new UsageError(`--broker must look like mqtt://host:port, got ${JSON.stringify(args.broker)}`);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`wisp sim: ${err.message}\n\n${USAGE}`);
    return 2;
  }

  const defaultConfig = path.join(PROJECT_ROOT, "flash.config.json");
  const configFile = path.resolve(args.config ?? defaultConfig);
  let firmware: string | undefined;
  if (!args["no-build"] && configFile === defaultConfig && needsBuild()) {
    console.log("dist/firmware.js is missing, older than its sources, or built for another config: building");
    const { build } = await import("./build.ts");
    const result = await build({});
    if (!result.ok) {
      console.error("wisp sim: the build failed; fix it or run with --no-build to use the old dist/firmware.js");
      return 1;
    }
  } else if (!args["no-build"] && configFile !== defaultConfig) {
    // another config: its own drivers, built in memory; dist/ stays what flash.config.json needs
    const { build } = await import("./build.ts");
    const lines: string[] = [];
    const result = await build({ config: configFile, write: false, log: (l) => lines.push(l) });
    if (!result.ok) {
      console.error(lines.join("\n"));
      console.error(`wisp sim: the firmware for ${path.relative(process.cwd(), configFile)} did not build`);
      return 1;
    }
    const report = result.reports.find((r) => r.target)!;
    firmware = report.bundle!.code;
    const t = report.target!;
    console.log(`built the firmware for ${path.relative(process.cwd(), configFile)} in memory: ${report.bytes.toLocaleString("en-US")} bytes (types: ${t.types.join(", ")}${t.discovery ? "; Home Assistant discovery" : ""})`);
  }

  const scenarioFile = path.resolve(args.scenario ?? path.join(PROJECT_ROOT, "scenarios", "default.json"));
  let sim: Simulation;
  try {
    const config = await nodeConfig(configFile);
    sim = await createSimulation({
      nodes,
      clock: "real",
      brokerUrl: args.broker,
      port,
      portFallback: args.port === undefined,
      scenario: scenarioFile,
      firmwarePath: path.join(PROJECT_ROOT, "dist", "firmware.js"),
      firmware,
      config,
      seed,
      storageDir: args.storage ? path.resolve(args.storage) : undefined,
      powerOn: false,
    });
  } catch (err) {
    console.error(`wisp sim: ${(err as Error).message}`);
    return 1;
  }

  const prefix = sim.nodes[0]?.config()?.prefix ?? "wisp/{id}";
  const watch = watchCommand(sim.brokerUrl, prefix);
  const tty = process.stdout.isTTY === true && !args.plain;
  if (!tty) console.log(`wisp sim: ${nodes} node${nodes === 1 ? "" : "s"}, broker ${sim.brokerUrl}, scenario ${path.relative(process.cwd(), scenarioFile)}\nwatch: ${watch}`);
  const view: View = tty ? startLiveView(sim, { watch }) : startPlainView(sim);
  await sim.powerOn();

  await new Promise<void>((resolve) => {
    const finish = () => {
      process.off("SIGINT", finish);
      process.off("SIGTERM", finish);
      if (timer) clearTimeout(timer);
      resolve();
    };
    const timer = duration === undefined ? undefined : setTimeout(finish, duration * 1000);
    process.on("SIGINT", finish);
    process.on("SIGTERM", finish);
  });
  // The terminal keeps the last live frame; piped output also reports the shutdown itself.
  if (tty) view.stop();
  await sim.stop();
  if (!tty) view.stop();
  if (tty) console.log(`stopped: ${sim.messages} messages from ${nodes} node${nodes === 1 ? "" : "s"}; broker closed`);
  else console.log("wisp sim: stopped");
  return 0;
}
