// `wisp sim`: sensor nodes on this machine, running the built firmware (dist/firmware.js, byte for
// byte what `wisp flash` uploads) against a local MQTT broker, with a live view.

import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { createSimulation, DEFAULT_NODE_CONFIG, type NodeConfig, type Simulation } from "../host-sim/sim.ts";
import { startLiveView, startPlainView, type View } from "../host-sim/view.ts";
import { ensureBuilt, PROJECT_ROOT } from "./build.ts";
import type { FleetBrokers } from "./broker/topology.ts";
import { redactUrl } from "./redact.ts";

const USAGE = `usage: wisp sim [options]

Runs simulated ESP32 sensor nodes with the firmware built for the config (for flash.config.json:
dist/firmware.js, rebuilt when the sources are newer; for another --config, built in memory)
against an embedded MQTT broker, and shows their state, readings and traffic.

  -n, --nodes N        how many nodes (default 1); each has its own serial, client id and Storage
  -s, --scenario FILE  environment and faults over time (default scenarios/default.json)
  -b, --broker URL     use this broker (mqtt://host:port, or mqtt://user:pass@host:port with a login)
                       instead of the embedded one; the nodes and the watcher log in with the login
      --username U, --password P   the login for --broker, given apart from the URL
      --broker-config DIR  run Mosquitto with a folder from \`wisp broker init\`; each node logs in
                       with its own login from it, the watcher as the operator
      --topology edge-cloud  two Mosquittos bridged as \`wisp broker init --bridge\` writes them: the
                       nodes on the edge, the watcher on the central one; the scenario fault
                       "bridge-down" cuts the link between them
  -p, --port P         port of the embedded broker (default 1883, or the next free one), or of the
                       --broker-config one (default: a free one)
  -d, --duration S     stop after S seconds (default: run until Ctrl-C)
  -c, --config FILE    flash config (default flash.config.json); its sensors are simulated
      --serial         give each node's console a serial port (a pseudo-terminal, needs socat):
                       \`wisp flash --port\`, \`wisp monitor --port\` and \`wisp hil --port\` work on it
      --baud N         the consoles' baud rate (default 115200)
      --seed N         serials, sensor calibration and noise derive from it (default 0)
      --storage DIR    keep each node's Storage in DIR/node-<i>/ across runs
      --plain          one line per event even on a terminal
      --no-build       use dist/firmware.js as it is, whatever it was built for
  -h, --help           this text

The command that watches the nodes' topics is printed at start (mosquitto_sub -h ... -t '<prefix>/#').`;

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

/**
 * The config a node needs in this simulation (its access point and broker in place of the
 * config's), for `wisp flash --port <console>`: next to the consoles, gone with them.
 */
function writeLabConfig(configFile: string, sim: Simulation): string {
  const config = JSON.parse(readFileSync(configFile, "utf8")) as Record<string, any>;
  const file = path.join(sim.consoleFolder!, "flash.config.json");
  const lab = {
    ...config,
    $schema: path.join(PROJECT_ROOT, "flash.schema.json"),
    wifi: { ssid: sim.ap.ssid, password: sim.ap.password },
    mqtt: { ...config.mqtt, url: sim.brokerUrl },
  };
  writeFileSync(file, JSON.stringify(lab, null, 2) + "\n");
  return file;
}

/** The part of a topic prefix before the first `{id}` segment: `wisp/{id}` → `wisp`. */
export function prefixBase(prefix: string): string {
  const parts = prefix.split("/");
  const i = parts.findIndex((p) => p.includes("{id}"));
  return (i < 0 ? parts : parts.slice(0, i)).join("/") || "#";
}

export interface WatchLogin {
  username: string;
  /** Shell text that gives the password (never the password itself): a $(...) or a placeholder. */
  password: string;
  /** The CA file for an mqtts:// broker. */
  cafile?: string;
}

export function watchCommand(brokerUrl: string, prefix: string, login?: WatchLogin): string {
  const url = new URL(brokerUrl);
  const base = prefixBase(prefix);
  const topic = base === "#" ? "#" : `${base}/#`;
  const tls = url.protocol === "mqtts:";
  const auth = login ? ` -u ${login.username} -P ${login.password}` : "";
  const ca = tls && login?.cafile ? ` --cafile ${login.cafile}` : "";
  return `mosquitto_sub -h ${url.hostname.replace(/^\[|\]$/g, "")} -p ${url.port || (tls ? "8883" : "1883")}${ca}${auth} -v -t '${topic}'`;
}

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be a whole number >= 0, got ${JSON.stringify(value)}`);
  return n;
}

class UsageError extends Error {}

/** Mosquitto with a broker folder (or, for edge-cloud without one, a scratch folder from the config). */
async function startBrokers(dir: string | undefined, topology: "single" | "edge-cloud", configFile: string, nodes: number, seed: number, port: number | undefined): Promise<FleetBrokers> {
  const { loadFlashConfig } = await import("./config.ts");
  const { missingLogins, startFleetBrokers } = await import("./broker/topology.ts");
  const { simulatedIds } = await import("./broker/folder.ts");
  const config = loadFlashConfig(configFile);
  if (dir !== undefined) {
    const missing = missingLogins(dir, simulatedIds(nodes, seed));
    if (missing.length) {
      throw new Error(`${missing.length} of the ${nodes} simulated nodes ${missing.length === 1 ? "has" : "have"} no login in ${dir} (${missing.slice(0, 3).join(", ")}${missing.length > 3 ? ", ..." : ""}): run wisp broker init --out ${dir} --nodes ${nodes}${seed ? " (it makes logins for --seed 0)" : ""}`);
    }
  }
  return startFleetBrokers({ dir: dir === undefined ? undefined : path.resolve(dir), topology, config, nodes, seed, port });
}

export async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        nodes: { type: "string", short: "n" },
        scenario: { type: "string", short: "s" },
        broker: { type: "string", short: "b" },
        username: { type: "string" },
        password: { type: "string" },
        "broker-config": { type: "string" },
        topology: { type: "string" },
        port: { type: "string", short: "p" },
        duration: { type: "string", short: "d" },
        config: { type: "string", short: "c" },
        seed: { type: "string" },
        storage: { type: "string" },
        plain: { type: "boolean" },
        serial: { type: "boolean" },
        baud: { type: "string" },
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
  let nodes: number, port: number, seed: number, baud: number, duration: number | undefined;
  try {
    nodes = positiveInt("nodes", args.nodes, 1);
    if (nodes < 1) throw new UsageError("--nodes must be at least 1");
    port = positiveInt("port", args.port, 1883);
    seed = positiveInt("seed", args.seed, 0);
    baud = positiveInt("baud", args.baud, 115_200);
    if (baud < 300) throw new UsageError(`--baud must be at least 300 bits per second, got ${baud}`);
    if (args.duration !== undefined) {
      duration = Number(args.duration);
      if (!(duration > 0)) throw new UsageError(`--duration must be a number of seconds > 0, got ${JSON.stringify(args.duration)}`);
    }
    if (args.broker !== undefined && !/^mqtts?:\/\/[^/]+/.test(args.broker)) throw new UsageError(`--broker must look like mqtt://host:port, got ${JSON.stringify(args.broker.replace(/\/\/[^@/]*@/, "//***@"))}`);
    if ((args.username !== undefined || args.password !== undefined) && args.broker === undefined) throw new UsageError("--username and --password are the login for --broker URL");
    if (args.password !== undefined && args.username === undefined && !/^mqtts?:\/\/[^/@]+@/.test(args.broker ?? "")) throw new UsageError("--password needs --username (or a user name in the --broker URL)");
    if (args.broker !== undefined && (args["broker-config"] !== undefined || args.topology !== undefined)) throw new UsageError("--broker uses a broker you run; --broker-config and --topology start Mosquitto here: choose one");
    if (args.topology !== undefined && args.topology !== "edge-cloud" && args.topology !== "single") throw new UsageError(`--topology must be edge-cloud (or single), got ${JSON.stringify(args.topology)}`);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`wisp sim: ${err.message}\n\n${USAGE}`);
    return 2;
  }

  const defaultConfig = path.join(PROJECT_ROOT, "flash.config.json");
  const configFile = path.resolve(args.config ?? defaultConfig);
  let firmware: string | undefined;
  if (!args["no-build"] && configFile === defaultConfig && !(await ensureBuilt())) {
    console.error("wisp sim: the build failed; fix it or run with --no-build to use the old dist/firmware.js");
    return 1;
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
  let brokers: FleetBrokers | undefined;
  let watchLogin: WatchLogin | undefined;
  let brokerUrl = args.broker;
  let login: { username: string; password: string } | undefined;
  if (args.broker !== undefined) {
    const { splitLogin } = await import("../host-sim/sim.ts");
    const given = splitLogin(args.broker);
    brokerUrl = given.url;
    const username = args.username ?? given.login?.username;
    if (username !== undefined) {
      login = { username, password: args.password ?? given.login?.password ?? "" };
      watchLogin = { username, password: "<password>" };
    }
  }
  try {
    const config = await nodeConfig(configFile);
    if (args["broker-config"] !== undefined || args.topology === "edge-cloud") {
      brokers = await startBrokers(args["broker-config"], args.topology === "edge-cloud" ? "edge-cloud" : "single", configFile, nodes, seed, args.port === undefined ? undefined : port);
      brokerUrl = brokers.nodeUrl;
      const passwords = path.join(brokers.dir, "passwords.json");
      watchLogin = {
        username: brokers.observer.username,
        password: `"$(node -p 'require(${JSON.stringify(passwords)}).operator.password')"`,
        cafile: brokers.observer.ca ? path.join(brokers.dir, "ca.crt") : undefined,
      };
    }
    sim = await createSimulation({
      nodes,
      clock: "real",
      brokerUrl,
      login,
      nodeLogin: brokers?.nodeLogin,
      observer: brokers?.observer,
      link: brokers?.link,
      port,
      portFallback: args.port === undefined,
      scenario: scenarioFile,
      firmwarePath: path.join(PROJECT_ROOT, "dist", "firmware.js"),
      firmware,
      config,
      seed,
      storageDir: args.storage ? path.resolve(args.storage) : undefined,
      powerOn: false,
      serial: args.serial,
      baud,
    });
  } catch (err) {
    await brokers?.stop();
    console.error(`wisp sim: ${(err as Error).message}`);
    return 1;
  }

  if (args.serial) {
    for (const node of sim.nodes) console.log(`node ${node.index} console: ${node.consolePath}`);
    const lab = writeLabConfig(configFile, sim);
    console.log(`flash a node: npx wisp flash --port ${sim.nodes[0]!.consolePath} --config ${lab}`);
    console.log(`test it:      npx wisp hil --port ${sim.nodes[0]!.consolePath} --config ${lab}`);
  }
  const prefix = sim.nodes[0]?.config()?.prefix ?? "wisp/{id}";
  const watch = watchCommand(brokers?.observer.url ?? sim.brokerUrl, prefix, watchLogin);
  const tty = process.stdout.isTTY === true && !args.plain;
  const where = brokers?.central ? `edge broker ${redactUrl(sim.brokerUrl)} bridged to ${redactUrl(brokers.observer.url)}` : `broker ${redactUrl(sim.brokerUrl)}`;
  if (!tty) console.log(`wisp sim: ${nodes} node${nodes === 1 ? "" : "s"}, ${where}, scenario ${path.relative(process.cwd(), scenarioFile)}\nwatch: ${watch}`);
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
  await brokers?.stop();
  if (!tty) view.stop();
  if (tty) console.log(`stopped: ${sim.messages} messages from ${nodes} node${nodes === 1 ? "" : "s"}; broker closed`);
  else console.log("wisp sim: stopped");
  return 0;
}
