// `wisp broker init|run|check`: a Mosquitto 2 configuration for the fleet of flash.config.json (logins,
// topic ACL, TLS, a bridge to a central broker), run and checked. The work is in tools/broker/.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type { ParseArgsConfig } from "node:util";
import { PROJECT_ROOT } from "./build.ts";
import { ConfigError, loadFlashConfig, type FlashConfig } from "./config.ts";
import { BrokerFolderError, checkBrokerFolder, initBrokerFolder, parseNodesFile, PASSWORDS, readManifest, simulatedIds } from "./broker/folder.ts";
import { findMosquitto, INSTALL_HINT } from "./broker/mosquitto.ts";
import { listenersOf } from "./broker/run.ts";
import { closest } from "./commands.js";
import { displayPath } from "./files.ts";
import { formatHelp, intOption, parseOptions, UsageError, usageFailure } from "./options.ts";

const USAGE = `usage: wisp broker <init|run|check> [options]

  wisp broker init [--out DIR] [--nodes FILE|N] [--tls] [--bridge URL] [options]
      Writes a Mosquitto 2 configuration folder (default ./broker) for the fleet of flash.config.json:
      mosquitto.conf, a login per node and for the operator (passwd, $7$ hashes), the topic ACL, and
      with --tls a CA and server certificate. Passwords go to DIR/passwords.json (mode 0600), never to the
      terminal. Running it again keeps the passwords and certificates.

      --nodes FILE        the nodes' ids (their getSerial(), the {id} of the config), one a line
      --nodes N           the N nodes that \`wisp sim --nodes N\` runs
      --tls               a TLS listener, with a CA (ca.crt; ca.der for the nodes) and server certificate
      --host NAME         another name or address for the server certificate (repeatable)
      --bridge URL        forward the fleet to a central broker (mqtts://host:port); DIR/central/ has
                          that broker's side (its logins, ACL, certificate)
      --bridge-plain      allow --bridge mqtt://host:port: the bridge's login and the readings
                          unencrypted, for a private link only
      --bridge-ca FILE    the PEM CA of a central broker whose certificate init did not make
      --name NAME         this broker's name on the central broker (default: the host name)
      --no-tls, --no-bridge   remove them again
      --rotate            new passwords for every login (flash the nodes again afterwards)
  -c, --config FILE       flash config (default flash.config.json)

  wisp broker run [DIR] [--central] [--port P]
      Checks the folder, then runs Mosquitto with it in the foreground (Ctrl-C stops it).
      --central           run DIR/central, the central broker of a bridged fleet
      --port P            listen on P instead of mqtt.url's port (the nodes' mqtt.url must name P)

  wisp broker check [DIR] [-c FILE]
      Validates a folder: files present, modes, every login hashed in a format Mosquitto reads and
      matching passwords.json, every node an ACL block for its own topics, certificates.

  -h, --help              this text`;

export async function main(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "--help" || sub === "-h" || sub === "help") {
    console.log(formatHelp(USAGE));
    return 0;
  }
  try {
    switch (sub) {
      case "init":
        return init(rest);
      case "run":
        return await run(rest);
      case "check":
        return check(rest);
      default:
        throw new UsageError(sub === undefined ? "which one: init, run or check?" : `unknown subcommand "${sub}"${closest(sub, ["init", "run", "check"]) ? ` (did you mean ${closest(sub, ["init", "run", "check"])}?)` : " (init, run or check)"}`);
    }
  } catch (err) {
    if (err instanceof UsageError) return usageFailure("broker", err);
    if (err instanceof BrokerFolderError || err instanceof ConfigError) {
      console.error(`wisp broker: ${err.message}`);
      return 1;
    }
    throw err;
  }
}

function parse<T extends ParseArgsConfig & { args: string[]; options: NonNullable<ParseArgsConfig["options"]> }>(config: T) {
  return parseOptions(config.args, config.options as T["options"], config.allowPositionals === true);
}

const HELP = { help: { type: "boolean", short: "h" } } as const;

function configPath(value: string | undefined): string {
  return path.resolve(value ?? path.join(PROJECT_ROOT, "flash.config.json"));
}

function init(argv: string[]): number {
  const { values, positionals } = parse({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      ...HELP,
      out: { type: "string", short: "o" },
      nodes: { type: "string", short: "n" },
      tls: { type: "boolean" },
      "no-tls": { type: "boolean" },
      host: { type: "string", multiple: true },
      bridge: { type: "string" },
      "no-bridge": { type: "boolean" },
      "bridge-ca": { type: "string" },
      "bridge-plain": { type: "boolean" },
      name: { type: "string" },
      rotate: { type: "boolean" },
      config: { type: "string", short: "c" },
    },
  });
  if (values.help) {
    console.log(formatHelp(USAGE));
    return 0;
  }
  if (positionals.length) throw new UsageError(`init takes no positional argument (got ${positionals.join(" ")}); the folder is --out DIR`);
  if (values.tls && values["no-tls"]) throw new UsageError("--tls and --no-tls together");
  if (values.bridge && values["no-bridge"]) throw new UsageError("--bridge and --no-bridge together");
  if (values.bridge !== undefined && !/^mqtts?:\/\/[^/]+/.test(values.bridge)) throw new UsageError(`--bridge must look like mqtts://host:port, got ${JSON.stringify(values.bridge)}`);
  if (values["bridge-plain"] && values.bridge === undefined) throw new UsageError("--bridge-plain goes with --bridge mqtt://HOST:PORT");
  if (values["bridge-ca"] !== undefined && !existsSync(values["bridge-ca"])) throw new UsageError(`--bridge-ca ${values["bridge-ca"]}: no such file`);

  let nodes: string[] | undefined;
  if (values.nodes !== undefined) {
    if (/^\d+$/.test(values.nodes)) {
      const n = Number(values.nodes);
      if (n < 1 || n > 10_000) throw new UsageError(`--nodes N must be 1 to 10000, got ${n}`);
      nodes = simulatedIds(n);
    } else if (existsSync(values.nodes)) {
      nodes = parseNodesFile(readFileSync(values.nodes, "utf8"), values.nodes);
    } else {
      throw new UsageError(`--nodes ${values.nodes}: no such file (give a file with one node id a line, or a number)`);
    }
  }

  const file = configPath(values.config);
  const config = loadFlashConfig(file);
  const out = path.resolve(values.out ?? "broker");
  const shown = displayPath(out);
  const result = initBrokerFolder({
    dir: out,
    config,
    nodes,
    tls: values.tls ? true : values["no-tls"] ? false : undefined,
    hosts: values.host as string[] | undefined,
    bridge: values["no-bridge"] ? null : values.bridge,
    bridgeCa: values["bridge-ca"],
    bridgePlain: values["bridge-plain"],
    name: values.name,
    rotate: values.rotate === true,
  });
  const m = result.manifest;
  const listen = [`MQTT on ${m.listeners.mqtt}${m.listeners.mqttLocal ? " (this machine only)" : ""}`];
  if (m.listeners.mqtts !== undefined) listen.push(`TLS on ${m.listeners.mqtts} for ${m.tls!.hosts.join(", ")}`);
  console.log(`wisp broker init: ${shown}/ for ${m.nodes.length} node${m.nodes.length === 1 ? "" : "s"} (prefix ${m.prefix}) and the operator (${m.operator}); ${listen.join(", ")}`);
  const list = (ids: string[]) => (ids.length > 6 ? `${ids.slice(0, 5).join(", ")} and ${ids.length - 5} more` : ids.join(", "));
  if (result.rotated) console.log(`  new passwords for every login: flash the nodes again (npx wisp flash) and update the operator's clients`);
  if (result.added.length) console.log(`  new logins: ${list(result.added)}`);
  if (result.removed.length) console.log(`  removed logins: ${list(result.removed)}`);
  if (!result.rotated && !result.added.length && !result.removed.length) console.log(`  logins unchanged (passwords kept)`);
  console.log(`  passwords: ${shown}/${PASSWORDS} (mode 0600; wisp flash and wisp sim --broker-config take them from there)`);
  if (result.certificates.length) console.log(`  certificates made: ${result.certificates.join(", ")}`);
  if (m.bridge) {
    console.log(`  bridge: to ${m.bridge.url} as ${m.bridge.username}, queueing up to ${m.bridge.queue} messages while the link is down`);
    console.log(`          the central broker's side is in ${shown}/central/ (npx wisp broker run ${shown} --central, or add its passwd and acl lines to your broker)`);
  }
  for (const note of result.notes) console.log(`  note: ${note}`);
  console.log(`next: npx wisp broker check ${shown} && npx wisp broker run ${shown}`);
  return 0;
}

/** The config (when there is one) and how to name it in messages. */
function loadConfigIfThere(value: string | undefined): { config?: FlashConfig; configFile?: string } {
  const file = configPath(value);
  if (!existsSync(file)) return {};
  return { config: loadFlashConfig(file), configFile: displayPath(file) };
}

function check(argv: string[]): number {
  const { values, positionals } = parse({ args: argv, strict: true, allowPositionals: true, options: { ...HELP, config: { type: "string", short: "c" } } });
  if (values.help) {
    console.log(formatHelp(USAGE));
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`check takes one folder, got ${positionals.join(" ")}`);
  const dir = positionals[0] ?? "broker";
  const result = checkBrokerFolder(dir, loadConfigIfThere(values.config));
  for (const note of result.notes) console.log(`note: ${note}`);
  if (result.problems.length) {
    console.error(`wisp broker check: ${dir} has ${result.problems.length} problem${result.problems.length === 1 ? "" : "s"}:\n${result.problems.map((p) => `  ${p}`).join("\n")}`);
    return 1;
  }
  const m = result.manifest!;
  const parts = [`${m.nodes.length} node login${m.nodes.length === 1 ? "" : "s"} and the operator's`, "an ACL block for every node"];
  if (m.plugin) parts.push("subscriptions refused outside a node's commands");
  if (m.tls) parts.push(`TLS for ${m.tls.hosts.join(", ")}`);
  if (m.bridge) parts.push(`a bridge to ${m.bridge.url}`);
  console.log(`wisp broker check: ${dir} is ready: ${parts.join(", ")}`);
  return 0;
}

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse({ args: argv, strict: true, allowPositionals: true, options: { ...HELP, central: { type: "boolean" }, port: { type: "string", short: "p" } } });
  if (values.help) {
    console.log(formatHelp(USAGE));
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`run takes one folder, got ${positionals.join(" ")}`);
  const dir = positionals[0] ?? "broker";
  const checked = checkBrokerFolder(dir);
  if (checked.problems.length) {
    console.error(`wisp broker run: ${dir} is not ready (npx wisp broker check ${dir} says):\n${checked.problems.map((p) => `  ${p}`).join("\n")}`);
    return 1;
  }
  const manifest = readManifest(dir)!;
  if (values.central && !manifest.bridge) {
    console.error(`wisp broker run: ${dir} has no bridge, so no central broker: make one with npx wisp broker init --out ${dir} --bridge mqtts://HOST:8883`);
    return 1;
  }
  const conf = path.resolve(dir, values.central ? "central" : ".", "mosquitto.conf");
  const mosquitto = findMosquitto();
  if (!mosquitto) {
    const given = process.env.WISP_MOSQUITTO;
    console.error(given ? `wisp broker run: WISP_MOSQUITTO=${given} is not an executable file; point it at the mosquitto binary or unset it` : `wisp broker run: Mosquitto is not installed; ${INSTALL_HINT}`);
    return 1;
  }
  const lines = readFileSync(conf, "utf8").split("\n");
  const listeners = listenersOf(lines);
  const ports = listeners.map((l) => {
    const [, port, address] = lines[l.line]!.trim().split(/\s+/);
    return { port: Number(port), address, tls: l.tls };
  });
  // --port moves the first listener (mqtt.url's port): Mosquitto gets a copy of the file with that line
  // changed (its paths are absolute), in a private folder, since it may hold the bridge's password
  let runConf = conf;
  let scratch: string | undefined;
  if (values.port !== undefined) {
    const port = intOption("port", values.port, 0, { min: 1, max: 65535 });
    const first = listeners[0]!;
    ports[0]!.port = port;
    lines[first.line] = ["listener", port, ports[0]!.address].filter((w) => w !== undefined).join(" ");
    scratch = mkdtempSync(path.join(tmpdir(), "wisp-broker-run-"));
    runConf = path.join(scratch, "mosquitto.conf");
    writeFileSync(runConf, lines.join("\n"), { mode: 0o600 });
  }
  const cleanUp = () => scratch && rmSync(scratch, { recursive: true, force: true });
  for (const p of ports) {
    if (!(await portFree(p.port, p.address))) {
      cleanUp();
      const given = values.port !== undefined && p === ports[0];
      console.error(
        `wisp broker run: port ${p.port} is in use, so this broker cannot listen there. Another broker has it: a Mosquitto service (systemctl stop mosquitto), a wisp sim, or another wisp broker run (ss -ltnp 'sport = :${p.port}' names the program). Stop it${given ? "" : ", or run this one on another port with --port P (then the nodes' mqtt.url must name P)"}`,
      );
      return 1;
    }
  }
  // Ctrl-C, SIGTERM, and SIGHUP (the terminal closed: Mosquitto would only reload its files on it and
  // live on without us) stop Mosquitto. Taken before the "Ctrl-C stops it" line, so one sent as soon as
  // it is read does not find Node's default (exit at once) and leave Mosquitto running.
  let child: ReturnType<typeof spawn> | undefined;
  let stopWith: NodeJS.Signals | undefined;
  const forward = (signal: NodeJS.Signals) => {
    stopWith = signal === "SIGHUP" ? "SIGTERM" : signal;
    child?.kill(stopWith);
  };
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  process.on("SIGHUP", forward);
  console.log(`wisp broker run: mosquitto -c ${conf}${scratch ? ` (with the listener on ${ports[0]!.port})` : ""}`);
  console.log(`  listening on ${ports.map((p) => `${p.port}${p.tls ? " (TLS)" : ""}`).join(", ")}; Ctrl-C stops it`);
  child = spawn(mosquitto, ["-c", runConf], { stdio: "inherit" });
  if (stopWith) child.kill(stopWith);
  const started = child;
  const code = await new Promise<number>((resolve) => {
    started.once("error", (err) => {
      console.error(`wisp broker run: ${err.message}`);
      resolve(1);
    });
    started.once("exit", (c, signal) => resolve(c ?? (signal === "SIGINT" || signal === "SIGTERM" ? 0 : 1)));
  });
  process.off("SIGINT", forward);
  process.off("SIGTERM", forward);
  process.off("SIGHUP", forward);
  cleanUp();
  return code;
}

function portFree(port: number, address: string | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, address, () => server.close(() => resolve(true)));
  });
}
