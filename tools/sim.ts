// `wisp sim`: sensor nodes on this machine, running the built firmware (dist/firmware.js, byte for
// byte what `wisp flash` uploads) against a local MQTT broker, with a live view.

import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { NodeConfig, Simulation } from "../host-sim/sim.ts";
import type { View } from "../host-sim/view.ts";
import type { FleetBrokers } from "./broker/topology.ts";
import type { FlashConfig } from "./config.ts";
import { displayPath } from "./files.ts";
import { BAUD, brokerOption, intOption, numberOption, parseOptions, UsageError, usageFailure, formatHelp } from "./options.ts";
import { PROJECT_ROOT } from "./paths.ts";
import { redactUrl } from "./redact.ts";

const USAGE = `usage: wisp sim [options]

Runs simulated ESP32 sensor nodes with the firmware built for the config (for flash.config.json:
dist/firmware.js, rebuilt when the sources are newer; for another --config, built in memory)
against an embedded MQTT broker, and shows their state, readings and traffic. The nodes take
their settings from the config, but not its Wi-Fi and broker: they join the simulation's access
point and broker (--broker picks another broker).

  -n, --nodes N        how many nodes, 1 to 1000 (default 1); each has its own serial, client id
                       and Storage
  -s, --scenario FILE  environment and faults over time (default scenarios/default.json;
                       scenarios/faults.json has one of each fault)
      --speed N        node time runs N times faster than wall time, 1 to 100 (default 1): the
                       scenario's hours pass in minutes; the broker and the sockets stay real
  -b, --broker URL     use this broker (mqtt://host:port, or mqtt://user:pass@host:port with a login)
                       instead of the embedded one; the nodes and the watcher log in with the login
      --username U, --password P   the login for --broker, given apart from the URL
      --broker-config DIR  run Mosquitto with a folder from \`wisp broker init\`; each node logs in
                       with its own login from it, the watcher as the operator
      --topology T     single (one broker, the default) or edge-cloud: two Mosquittos bridged as
                       \`wisp broker init --bridge\` writes them, the nodes on the edge, the watcher
                       on the central one; the scenario fault "bridge-down" cuts the link between them
  -p, --port P         port of the embedded broker (default 1883, or the next free one, which it
                       says), or of the --broker-config one (default: a free one)
  -d, --duration S     stop after S seconds of node time (default: run until Ctrl-C)
  -c, --config FILE    the node configuration (default flash.config.json); its sensors are simulated
      --serial         give each node's console a serial port (a pseudo-terminal, needs socat):
                       \`wisp flash --port\`, \`wisp monitor --port\` and \`wisp hil --port\` work on
                       it (at --speed 1 only: the line runs on the node's clock)
      --baud N         the consoles' baud rate (default 115200)
      --blank          boards as a new ESP32 comes: empty flash, no Espruino; with --serial,
                       \`wisp flash --interpreter DIR --port <console>\` puts Espruino and the node on one
      --seed N         serials, sensor calibration and noise derive from it (default 0)
      --storage DIR    keep each node's Storage in DIR/node-<i>/ across runs
      --plain          one line per event even on a terminal
      --no-build       use dist/firmware.js as it is, whatever it was built for
  -h, --help           this text

It prints the command that watches the nodes' topics (mosquitto_sub -h ... -p <the port used>).`;

/** The default Wi-Fi and broker of simulated nodes, as DEFAULT_NODE_CONFIG in host-sim/sim.ts has them. */
const SIM_WIFI = { ssid: "wisp-sim", password: "wisp-sim-password" };

/**
 * wisp.json for the simulated nodes, from the config: its Wi-Fi and broker are the simulation's,
 * and its broker login is not used (the embedded broker needs none; --broker and --broker-config
 * give the nodes theirs). So the simulator reads none of the file's secrets and runs without them.
 */
async function nodeConfig(config: FlashConfig): Promise<NodeConfig> {
  const { renderDeviceConfig } = await import("./config.ts");
  const { username: _u, password: _p, ...mqtt } = config.mqtt;
  return renderDeviceConfig({ ...config, mqtt }, { wifi: SIM_WIFI, mqttUrl: "mqtt://127.0.0.1:1883" }) as unknown as NodeConfig;
}

/**
 * The config a node needs in this simulation (its access point and broker in place of the
 * config's), for `wisp flash --port <console>`: next to the consoles, gone with them.
 */
function writeLabConfig(config: FlashConfig, sim: Simulation): string {
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

/** Mosquitto with a broker folder (or, for edge-cloud without one, a scratch folder from the config). */
async function startBrokers(dir: string | undefined, topology: "single" | "edge-cloud", config: FlashConfig, configFile: string, nodes: number, seed: number, port: number | undefined): Promise<FleetBrokers> {
  const { missingLogins, startFleetBrokers } = await import("./broker/topology.ts");
  const { simulatedIds } = await import("./broker/folder.ts");
  if (dir !== undefined) {
    const missing = missingLogins(dir, simulatedIds(nodes, seed));
    if (missing.length) {
      throw new Error(`${missing.length} of the ${nodes} simulated nodes ${missing.length === 1 ? "has" : "have"} no login in ${displayPath(dir)} (${missing.slice(0, 3).join(", ")}${missing.length > 3 ? ", ..." : ""}): run npx wisp broker init --out ${displayPath(dir)} --nodes ${nodes}${seed ? " (it makes logins for --seed 0)" : ""}`);
    }
  }
  return startFleetBrokers({ dir: dir === undefined ? undefined : path.resolve(dir), topology, config, configFile: displayPath(configFile), nodes, seed, port });
}

export interface SetupNote {
  /** The whole note, printed above the live view. */
  text: string;
  /** A line for the live view, when it has room. */
  short?: string;
}

/**
 * What the user should know before the nodes start: a port that was taken, where the config's
 * broker and Wi-Fi went. Printed above the live view; the short forms stay in it while there is room.
 */
export function setupNotes(options: { configFile: string; config: FlashConfig; sim: Pick<Simulation, "brokerUrl" | "portTaken" | "ap">; username?: string; broker: "embedded" | "given" | "folder" | "edge" }): SetupNote[] {
  const notes: SetupNote[] = [];
  const { sim, config } = options;
  if (sim.portTaken !== undefined) {
    const port = new URL(sim.brokerUrl).port;
    notes.push({
      text: `port ${sim.portTaken} is taken (by another broker: a Mosquitto that \`apt-get install mosquitto\` started, or another wisp sim), so the embedded broker is on ${port}: use -p ${port} with mosquitto_sub and mosquitto_pub (or stop the other one, or pick one with --port)`,
      short: `port ${sim.portTaken} is taken: this broker is on ${port}; use -p ${port}`,
    });
  }
  const file = displayPath(options.configFile);
  if (options.broker !== "given" && config.mqtt.url !== sim.brokerUrl) {
    notes.push({
      text: `${file}'s broker ${config.mqtt.url} is for boards: the simulated nodes use ${{ embedded: "the embedded broker", folder: "the folder's Mosquitto", edge: "the simulation's edge Mosquitto" }[options.broker]} ${sim.brokerUrl}${options.broker === "embedded" ? ` (--broker ${config.mqtt.url} uses that one)` : ""}`,
      short: `the nodes use this broker, not the config's ${config.mqtt.url} (--broker URL)`,
    });
  }
  if (options.broker === "given" && options.username === "wisp-operator") {
    notes.push({
      text: "--broker logs the nodes in as wisp-operator, the operator's login of a `npx wisp broker init` folder: its ACL lets it command nodes, not publish readings, so the broker drops them. Run with --broker-config DIR: each node then logs in with its own login",
      short: "wisp-operator cannot publish readings: use --broker-config DIR",
    });
  }
  if (config.wifi.ssid !== sim.ap.ssid) notes.push({ text: `the nodes join the simulated access point "${sim.ap.ssid}", not ${file}'s "${config.wifi.ssid}"` });
  return notes;
}

export async function main(argv: string[]): Promise<number> {
  // A reader that went away (`wisp sim | head`), a closed terminal (SIGHUP; its Mosquitto would only
  // reload its files on it and live on) or SIGTERM end the simulation as Ctrl-C does, also while it
  // starts, so no broker or temporary folder outlives it; later writes to a closed pipe are ignored.
  let stopRequested = false;
  let pipeGone = false;
  let stopNow: (() => void) | undefined;
  const requestStop = () => {
    stopRequested = true;
    stopNow?.();
  };
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (!pipeGone && err.code !== "EPIPE") throw err;
    pipeGone = true;
    requestStop();
  });
  process.on("SIGHUP", requestStop);
  process.on("SIGTERM", requestStop);
  let args;
  let nodes: number, port: number, seed: number, baud: number, speed: number, duration: number | undefined;
  try {
    args = parseOptions(argv, {
      nodes: { type: "string", short: "n" },
      scenario: { type: "string", short: "s" },
      speed: { type: "string" },
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
      blank: { type: "boolean" },
      baud: { type: "string" },
      "no-build": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    }).values;
    if (args.help) {
      console.log(formatHelp(USAGE));
      return 0;
    }
    nodes = intOption("nodes", args.nodes, 1, { min: 1, max: 1000, unit: "nodes" });
    port = intOption("port", args.port, 1883, { min: 0, max: 65535, unit: "(0: any free port)" });
    seed = intOption("seed", args.seed, 0, { min: 0, max: 2 ** 31 - 1 });
    baud = intOption("baud", args.baud, 115_200, BAUD);
    speed = intOption("speed", args.speed, 1, { min: 1, max: 100, unit: "(times wall time)" });
    duration = numberOption("duration", args.duration, undefined, { above: 0, max: 10 * 365 * 86400, unit: "seconds" });
    brokerOption("broker", args.broker);
    if (args.serial && speed !== 1) {
      throw new UsageError(
        `--serial needs --speed 1: a console's serial line runs on the node's clock, so at --speed ${speed} the host would see ${(baud * speed).toLocaleString("en-US")} baud and the console's 5 s packet timeout would be ${(5 / speed).toFixed(2)} s. Run --serial without --speed`,
      );
    }
    if ((args.username !== undefined || args.password !== undefined) && args.broker === undefined) throw new UsageError("--username and --password are the login for --broker URL");
    if (args.password !== undefined && args.username === undefined && !/^mqtts?:\/\/[^/@]+@/.test(args.broker ?? "")) throw new UsageError("--password needs --username (or a user name in the --broker URL)");
    if (args.broker !== undefined && (args["broker-config"] !== undefined || args.topology !== undefined)) throw new UsageError("--broker uses a broker you run; --broker-config and --topology start Mosquitto here: choose one");
    if (args.topology !== undefined && args.topology !== "edge-cloud" && args.topology !== "single") {
      throw new UsageError(`--topology must be single (one broker, the default) or edge-cloud (two Mosquittos bridged), got ${JSON.stringify(args.topology)}`);
    }
    if (args.broker !== undefined && args.port !== undefined) throw new UsageError("--port is the port of the broker wisp sim starts; with --broker the port is the one in its URL");
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    return usageFailure("sim", err);
  }

  const { ensureBuilt } = await import("./build.ts");
  const { loadFlashConfig, ConfigError } = await import("./config.ts");
  const defaultConfig = path.join(PROJECT_ROOT, "flash.config.json");
  const configFile = path.resolve(args.config ?? defaultConfig);
  // the config first: a mistake in it is the user's to fix there, not a build failure
  let config: FlashConfig;
  try {
    config = loadFlashConfig(configFile);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`wisp sim: ${err.message}`);
    return 1;
  }
  let firmware: string | undefined;
  if (!args["no-build"] && configFile === defaultConfig && !(await ensureBuilt())) {
    const old = existsSync(path.join(PROJECT_ROOT, "dist", "firmware.js"));
    console.error(`wisp sim: the build failed (above: what to fix)${old ? "; --no-build runs the dist/firmware.js built before" : ""}`);
    return 1;
  } else if (!args["no-build"] && configFile !== defaultConfig) {
    // another config: its own drivers, built in memory; dist/ stays what flash.config.json needs
    const { build } = await import("./build.ts");
    const lines: string[] = [];
    const result = await build({ config: configFile, write: false, log: (l) => lines.push(l) });
    if (!result.ok) {
      console.error(lines.join("\n"));
      console.error(`wisp sim: the firmware for ${displayPath(configFile)} did not build`);
      return 1;
    }
    const report = result.reports.find((r) => r.target)!;
    firmware = report.bundle!.code;
    const t = report.target!;
    console.log(`built the firmware for ${displayPath(configFile)} in memory: ${report.bytes.toLocaleString("en-US")} bytes (types: ${t.types.join(", ")}${t.discovery ? "; Home Assistant discovery" : ""})`);
  }

  const scenarioFile = path.resolve(args.scenario ?? path.join(PROJECT_ROOT, "scenarios", "default.json"));
  const { createSimulation, splitLogin, WatcherError } = await import("../host-sim/sim.ts");
  let sim: Simulation;
  let brokers: FleetBrokers | undefined;
  let watchLogin: WatchLogin | undefined;
  let brokerUrl = args.broker;
  let login: { username: string; password: string } | undefined;
  if (args.broker !== undefined) {
    const given = splitLogin(args.broker);
    brokerUrl = given.url;
    const username = args.username ?? given.login?.username;
    if (username !== undefined) {
      login = { username, password: args.password ?? given.login?.password ?? "" };
      watchLogin = { username, password: "<password>" };
    }
  }
  try {
    if (args["broker-config"] !== undefined || args.topology === "edge-cloud") {
      brokers = await startBrokers(args["broker-config"], args.topology === "edge-cloud" ? "edge-cloud" : "single", config, configFile, nodes, seed, args.port === undefined ? undefined : port);
      brokerUrl = brokers.nodeUrl;
      const { operatorShellLogin } = await import("./broker/folder.ts");
      const operator = operatorShellLogin(brokers.dir, brokers.observer.username);
      watchLogin = { ...operator, cafile: brokers.observer.ca ? operator.cafile : undefined };
    }
    sim = await createSimulation({
      nodes,
      clock: "real",
      speed,
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
      config: await nodeConfig(config),
      seed,
      storageDir: args.storage ? path.resolve(args.storage) : undefined,
      powerOn: false,
      serial: args.serial,
      blank: args.blank,
      baud,
    });
  } catch (err) {
    await brokers?.stop();
    if (err instanceof ConfigError) console.error(`wisp sim: ${err.message}`);
    else if (err instanceof WatcherError) {
      const { describeConnectError } = await import("./connect-error.ts");
      const flag = args.broker !== undefined ? `--broker ${brokerUrl}` : `the broker ${err.url}`;
      const code = (err.cause as { code?: unknown }).code;
      // a login of a `wisp broker init` folder on --broker: each node needs its own, which --broker-config gives
      const refused = args.broker !== undefined && (code === 4 || code === 5) ? "; for a broker made by `npx wisp broker init`, run --broker-config DIR instead of --broker: each node logs in as itself, the watcher as the operator" : "";
      console.error(`wisp sim: ${flag}: ${describeConnectError(err.cause, err.url, err.username)}${refused}`);
    } else if ((err as { cause?: { code?: string } }).cause?.code === "EADDRINUSE" && args.port !== undefined) {
      console.error(
        `wisp sim: port ${port} is in use, so the embedded broker cannot listen there. Another broker has it: a Mosquitto service (systemctl stop mosquitto), another wisp sim or a wisp broker run (ss -ltnp 'sport = :${port}' names the program). Pick another --port, or leave --port out to take the next free one`,
      );
    } else console.error(`wisp sim: ${(err as Error).message}`);
    return 1;
  }

  const prefix = sim.nodes[0]?.config()?.prefix ?? "wisp/{id}";
  const watch = watchCommand(brokers?.observer.url ?? sim.brokerUrl, prefix, watchLogin);
  const notes = setupNotes({ configFile, config, sim, username: login?.username, broker: args.broker !== undefined ? "given" : args["broker-config"] !== undefined ? "folder" : brokers ? "edge" : "embedded" });
  const tty = process.stdout.isTTY === true && !args.plain;
  const where = brokers?.central ? `edge broker ${redactUrl(sim.brokerUrl)} bridged to ${redactUrl(brokers.observer.url)}` : `broker ${redactUrl(sim.brokerUrl)}`;
  // Printed once above the live view (and kept in the scrollback): what the frame may have no room for.
  console.log(`wisp sim: ${nodes} node${nodes === 1 ? "" : "s"}, ${where}, scenario ${displayPath(scenarioFile)}${speed === 1 ? "" : `, node time ×${speed}`}`);
  for (const n of notes) console.log(`note: ${n.text}`);
  console.log(`watch: ${watch}`);
  const first = sim.nodes[0]!;
  console.log(`send a command: ${commandExample(brokers?.observer.url ?? sim.brokerUrl, first.prefix, watchLogin)}`);
  let flashLine: string | undefined;
  if (args.serial) {
    for (const node of sim.nodes) console.log(`node ${node.index} console: ${node.consolePath}`);
    const lab = writeLabConfig(config, sim);
    // a blank board needs Espruino first: the version downloads it, a folder (wisp install-espruino
    // --stand-in DIR makes one for the simulator, offline) works too
    const interpreter = args.blank ? "--interpreter 2v29 " : "";
    flashLine = `flash a node: npx wisp flash ${interpreter}--port ${first.consolePath} --config ${displayPath(lab)}`;
    console.log(flashLine);
    console.log(`test it:      npx wisp hil --port ${first.consolePath} --config ${displayPath(lab)}${args.blank ? " (once flashed)" : ""}`);
    if (args.blank) console.log("no network? npx wisp install-espruino --stand-in DIR writes a stand-in Espruino folder for the simulator; pass --interpreter DIR");
    if (sim.nodes.length > 1) console.log(`other nodes: the same with their --port (the "node N console" lines above)`);
  }
  const { startLiveView, startPlainView } = await import("../host-sim/view.ts");
  // the flash command stays in the live view's header: the lines above scroll away
  const headerNotes = [...notes.flatMap((n) => (n.short ? [n.short] : [])), ...(flashLine ? [flashLine] : [])];
  const view: View = tty ? startLiveView(sim, { watch, notes: headerNotes }) : startPlainView(sim);
  await sim.powerOn();

  await new Promise<void>((resolve) => {
    const finish = () => {
      process.off("SIGINT", finish);
      stopNow = undefined;
      if (timer) clearTimeout(timer);
      resolve();
    };
    const timer = duration === undefined ? undefined : setTimeout(finish, (duration * 1000) / speed);
    process.on("SIGINT", finish);
    stopNow = finish;
    if (stopRequested) finish();
  });
  // The terminal keeps the last live frame; piped output also reports the shutdown itself.
  if (tty) view.stop();
  await sim.stop();
  await brokers?.stop();
  if (!tty) view.stop();
  const { plural } = await import("../host-sim/view.ts");
  if (tty) console.log(`stopped: ${plural(sim.messages, "message")} from ${plural(nodes, "node")}; broker closed`);
  else console.log("wisp sim: stopped");
  return 0;
}

/** A mosquitto_pub line that sends the node a ping (its reply comes on <prefix>/reply/ping). */
export function commandExample(brokerUrl: string, prefix: string, login?: WatchLogin): string {
  const url = new URL(brokerUrl);
  const tls = url.protocol === "mqtts:";
  const auth = login ? ` -u ${login.username} -P ${login.password}` : "";
  const ca = tls && login?.cafile ? ` --cafile ${login.cafile}` : "";
  return `mosquitto_pub -h ${url.hostname.replace(/^\[|\]$/g, "")} -p ${url.port || (tls ? "8883" : "1883")}${ca}${auth} -q 1 -t '${prefix}/cmd/ping' -m ''`;
}
