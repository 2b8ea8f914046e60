// `wisp hil`: the hardware-in-the-loop suite (test/hil/) on one board: a real one on a USB serial
// port, or with --sim a simulated one on a pseudo-terminal. It picks the board (hil.map.json names
// boards by USB serial number and lists the fixtures wired to each), starts a broker the board can
// reach (or takes --broker), renders the config the board is flashed with, runs the suite with
// vitest and writes JUnit XML and one serial log per test. Never prompts.

import { Ajv } from "ajv";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import * as path from "node:path";
import type { HilTarget } from "../test/hil/target.ts";
import { ensureBuilt, PROJECT_ROOT } from "./build.ts";
import { ConfigError, type FlashConfig, loadFlashConfig, renderDeviceConfig, schemaProblems } from "./config.ts";
import { displayPath, FileError, readJsonFile } from "./files.ts";
import { BAUD, brokerOption, intOption, parseOptions, UsageError, usageFailure, formatHelp } from "./options.ts";
import { describePort, listPorts, PortError } from "./serial/port.ts";

const USAGE = `usage: wisp hil [--port PATH | --sim] [options]

Flashes a board with the built node and tests it: the boot line, online retained, a reading from
each configured sensor within its interval, each command's reply, restart, the files by CRC-32.
Without --port or --sim it looks for a board of hil.map.json among the USB serial ports; with none
found it skips (exit 0), unless WISP_HIL=required.

  -p, --port PATH      the board's serial port
      --sim            a simulated board on a pseudo-terminal (what CI runs; needs socat)
  -b, --broker URL     the broker the board connects to and the tests watch, e.g.
                       mqtt://192.168.1.20:1883: one that runs there, or, when that is an address
                       of this machine and nothing listens on it, an embedded broker started there
                       (default: an embedded broker at this machine's LAN address; the board must
                       reach it)
      --username U, --password P   a login for --broker
  -c, --config FILE    node configuration (default flash.config.json); its mqtt.url becomes the broker
  -m, --map FILE       boards and fixtures (default hil.map.json)
      --junit FILE     JUnit XML report (default .wisp/hil/junit.xml)
      --logs DIR       one serial log per test (default .wisp/hil/logs)
      --baud N         console baud rate (default 115200)
  -h, --help           this text`;

export interface HilMapBoard {
  id: string;
  serial?: string;
  port?: string;
  board?: string;
  fixtures: { type: string; address?: number }[];
}

/** Reads and checks hil.map.json against hil.map.schema.json; a missing file is an empty map. */
export function loadHilMap(file: string): HilMapBoard[] {
  if (!existsSync(file)) return [];
  let value: unknown;
  try {
    value = readJsonFile(file, "the board map", "-m FILE names another (default hil.map.json)");
  } catch (e) {
    if (e instanceof FileError) throw ConfigError.fromFile(e);
    throw e;
  }
  const validate = new Ajv({ allErrors: true, verbose: true }).compile(JSON.parse(readFileSync(path.join(PROJECT_ROOT, "hil.map.schema.json"), "utf8")));
  if (!validate(value)) throw new ConfigError(file, schemaProblems(validate.errors, value));
  return (value as { boards: HilMapBoard[] }).boards;
}

/** This machine's first LAN IPv4 address (what a board on the same network reaches it at). */
function lanAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return undefined;
}

/** `host` is one of this machine's addresses. */
function isLocalAddress(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "");
  if (h === "localhost") return true;
  return Object.values(networkInterfaces()).some((list) => (list ?? []).some((a) => a.address === h));
}

/** Something accepts TCP connections on host:port. */
function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: host.replace(/^\[|\]$/g, ""), port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
    socket.setTimeout(2000, () => done(false));
  });
}

class HilUsage extends Error {}

/** Marks a folder of serial logs as wisp hil's, so that a later run may empty it. */
const LOG_MARK = ".wisp-hil-logs";

/**
 * The logs folder, emptied of the last run's logs. A folder wisp hil did not make is used only
 * when it is empty: nothing of the user's is deleted.
 */
function prepareLogDir(dir: string): void {
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new HilUsage(`--logs ${dir} is a file; give a folder`);
    const entries = readdirSync(dir);
    if (entries.length > 0 && !entries.includes(LOG_MARK)) {
      throw new HilUsage(`--logs ${dir} is not empty and was not made by wisp hil; give a new or empty folder (nothing in it was touched)`);
    }
    for (const e of entries) if (e.endsWith(".log")) rmSync(path.join(dir, e), { force: true });
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, LOG_MARK), "serial logs of wisp hil; the next run replaces the .log files\n");
}


/**
 * Connects to the broker the tests will watch, so that a wrong address stops the run with the
 * reason instead of failing every test. Returns the problem, or undefined when it answered.
 */
async function brokerProblem(url: string, username?: string, password?: string): Promise<string | undefined> {
  const { default: mqtt } = await import("mqtt");
  const { describeConnectError } = await import("./connect-error.ts");
  try {
    const client = await mqtt.connectAsync(url, { username, password, reconnectPeriod: 0, connectTimeout: 5000, clientId: `wisp-hil-check-${process.pid}` });
    await client.endAsync(true);
    return undefined;
  } catch (err) {
    return describeConnectError(err, url, username);
  }
}

export async function main(argv: string[]): Promise<number> {
  let args, baud: number;
  try {
    args = parseOptions(argv, {
        port: { type: "string", short: "p" },
        sim: { type: "boolean" },
        broker: { type: "string", short: "b" },
        username: { type: "string" },
        password: { type: "string" },
        config: { type: "string", short: "c" },
        map: { type: "string", short: "m" },
        junit: { type: "string" },
        logs: { type: "string" },
        baud: { type: "string" },
        help: { type: "boolean", short: "h" },
    }).values;
    if (args.help) {
      console.log(formatHelp(USAGE));
      return 0;
    }
    if (args.port && args.sim) throw new UsageError("--port and --sim exclude each other: test a board, or a simulated one");
    brokerOption("broker", args.broker);
    if ((args.username !== undefined || args.password !== undefined) && args.broker === undefined) throw new UsageError("--username and --password are the login for --broker URL");
    baud = intOption("baud", args.baud, 115_200, BAUD);
  } catch (err) {
    if (err instanceof UsageError) return usageFailure("hil", err);
    throw err;
  }
  const required = process.env.WISP_HIL === "required";
  const configFile = path.resolve(args.config ?? path.join(PROJECT_ROOT, "flash.config.json"));
  const mapFile = path.resolve(args.map ?? path.join(PROJECT_ROOT, "hil.map.json"));
  const junit = path.resolve(args.junit ?? path.join(PROJECT_ROOT, ".wisp", "hil", "junit.xml"));
  const logDir = path.resolve(args.logs ?? path.join(PROJECT_ROOT, ".wisp", "hil", "logs"));

  const cleanup: (() => Promise<void> | void)[] = [];
  // Ctrl-C or a CI timeout: the simulated board, the broker and the temporary files go too
  const interrupted = async () => {
    for (const c of cleanup.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
    process.exit(130);
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  try {
    // the files first: a mistake in them shows before a board is looked for or a build waited for
    const config = loadFlashConfig(configFile) as unknown as Record<string, any>;
    if (args.map !== undefined && !existsSync(mapFile)) throw new HilUsage(`--map ${args.map}: no such file`);
    const map = loadHilMap(mapFile);
    if (existsSync(junit) && statSync(junit).isDirectory()) throw new HilUsage(`--junit ${junit} is a folder; give a file name, e.g. ${path.join(junit, "junit.xml")}`);

    let target: Omit<HilTarget, "configFile" | "logDir" | "brokerUrl"> & { brokerUrl?: string };
    let wifi: { ssid: string; password: string } | undefined;
    if (args.sim) {
      const { createSimulation } = await import("../host-sim/sim.ts");
      const sim = await createSimulation({ clock: "real", serial: true, flash: false, nodes: 1 });
      cleanup.push(() => sim.stop());
      const node = sim.nodes[0]!;
      wifi = { ssid: sim.ap.ssid, password: sim.ap.password };
      target = {
        boardId: `simulated ${node.serial}`,
        port: node.consolePath!,
        baud,
        brokerUrl: args.broker ?? sim.brokerUrl,
        // the simulated board carries a model of each sensor its config names
        fixtures: (config.sensors as { type: string; address?: number }[]).map((s) => ({ type: s.type, address: s.address })),
      };
      console.log(`wisp hil: simulated board ${node.serial} on ${node.consolePath}`);
    } else {
      let port = args.port;
      let entry: HilMapBoard | undefined;
      let listed: Awaited<ReturnType<typeof listPorts>> = [];
      let unlisted = "";
      try {
        listed = await listPorts();
      } catch (err) {
        if (!(err instanceof PortError)) throw err;
        unlisted = ` (${err.message})`;
      }
      // a map entry's fixed port is the same device as a port when both lead to one file (links, by-path names)
      const device = (p: string) => (existsSync(p) ? realpathSync(p) : p);
      if (port) {
        const info = listed.find((p) => device(p.path) === device(port!));
        entry = map.find((b) => (b.port !== undefined && device(b.port) === device(port!)) || (b.serial !== undefined && b.serial === info?.serialNumber));
      } else {
        const found = map.flatMap((b) => {
          if (b.port !== undefined && existsSync(b.port)) return [{ b, p: { path: b.port } }];
          const p = listed.find((l) => b.serial !== undefined && l.serialNumber === b.serial);
          return p ? [{ b, p }] : [];
        });
        if (found.length === 0) {
          const why = map.length
            ? `none of the ${map.length} board${map.length === 1 ? "" : "s"} of ${displayPath(mapFile)} is plugged in`
            : `${displayPath(mapFile)} names no boards`;
          const ports = listed.length
            ? ` USB serial ports here: ${listed.map((p) => `${p.path} (${describePort(p)})`).join("; ")}.`
            : ` No USB serial ports here${unlisted}.`;
          const msg = `no board to test: ${why}.${ports} Pass --port PATH, add the board's USB serial number to the map (npx wisp ports shows it), or run --sim.`;
          if (required) {
            console.error(`wisp hil: ${msg} (WISP_HIL=required)`);
            return 1;
          }
          console.log(`wisp hil: skipped: ${msg}`);
          return 0;
        }
        if (found.length > 1) {
          console.error(`wisp hil: ${found.length} boards of the map are plugged in; pick one with --port:\n${found.map((f) => `  --port ${f.p.path}   ${f.b.id}`).join("\n")}`);
          return 1;
        }
        entry = found[0]!.b;
        port = found[0]!.p.path;
      }
      target = { boardId: entry?.id ?? port, port, baud, brokerUrl: args.broker, fixtures: entry ? entry.fixtures : null };
      console.log(`wisp hil: ${entry ? `board ${entry.id} on ${port}` : `the board on ${port} (not in ${displayPath(mapFile)}: its sensor tests are skipped)`}`);
    }

    // a board to test: its secrets must be there before anything is written to it (a simulated
    // board joins the simulation's access point, so its Wi-Fi password is not needed)
    renderDeviceConfig(config as unknown as FlashConfig, { file: configFile, wifi: args.sim ? { ssid: "simulated" } : undefined });
    if (!(await ensureBuilt(console.log, configFile))) {
      console.error("wisp hil: the build failed; nothing was tested");
      return 1;
    }

    let brokerUrl = target.brokerUrl;
    const { startBroker } = await import("../host-sim/broker.ts");
    if (!brokerUrl) {
      const lan = lanAddress();
      if (!lan) throw new HilUsage("this machine has no LAN address the board could reach; pass --broker with a broker the board can reach");
      const broker = await startBroker({ host: "0.0.0.0", port: 1883, fallback: true });
      cleanup.push(() => broker.close());
      brokerUrl = `mqtt://${lan}:${broker.port}`;
      const moved = broker.port !== 1883 ? `; port 1883 is taken (another broker), so it is on ${broker.port}` : "";
      console.log(`wisp hil: embedded broker on ${brokerUrl} (the board must reach this address; --broker picks another${moved})`);
    } else {
      const url = new URL(brokerUrl);
      const port = Number(url.port || (url.protocol === "mqtts:" ? 8883 : 1883));
      if (!(await listening(url.hostname, port))) {
        if (url.protocol !== "mqtt:" || !isLocalAddress(url.hostname)) {
          throw new HilUsage(`nothing answers at ${url.host} (--broker): start the broker there, or give an address of this machine to have an embedded broker started on it`);
        }
        const broker = await startBroker({ host: url.hostname.replace(/^\[|\]$/g, ""), port });
        cleanup.push(() => broker.close());
        console.log(`wisp hil: nothing listened on ${url.host}: embedded broker started there`);
      } else {
        // something listens: that it speaks MQTT and takes the login is checked once, not in every test
        const problem = await brokerProblem(brokerUrl, args.username, args.password);
        if (problem) {
          console.error(`wisp hil: --broker ${brokerUrl}: ${problem}; nothing was tested`);
          return 1;
        }
      }
    }

    prepareLogDir(logDir);
    // the config the board is flashed with: the user's, pointed at this broker (and the simulated Wi-Fi)
    const dir = mkdtempSync(path.join(tmpdir(), "wisp-hil-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const hilConfig = path.join(dir, "flash.config.json");
    const flashed = { ...config, $schema: path.join(PROJECT_ROOT, "flash.schema.json"), ...(wifi ? { wifi } : {}), mqtt: { ...config.mqtt, url: brokerUrl } };
    renderDeviceConfig(flashed as unknown as FlashConfig, { file: configFile }); // a missing secret stops here, not in every test
    writeFileSync(hilConfig, JSON.stringify(flashed));
    mkdirSync(path.dirname(junit), { recursive: true });
    const full: HilTarget = {
      ...target,
      brokerUrl,
      brokerUsername: args.username,
      brokerPassword: args.password,
      configFile: hilConfig,
      logDir,
    };
    process.env.WISP_HIL = JSON.stringify(full);
    // vitest colours its report for a terminal; a log file gets plain text
    if (!process.stdout.isTTY) process.env.NO_COLOR = "1";

    const { startVitest } = await import("vitest/node");
    const vitest = await startVitest(
      "test",
      [],
      {
        config: false,
        root: PROJECT_ROOT,
        include: ["test/hil/**/*.hil.ts"],
        watch: false,
        fileParallelism: false,
        reporters: ["verbose", ["junit", { outputFile: junit, suiteName: `wisp hil: ${full.boardId}` }]],
      },
      {},
    );
    const failed = vitest.state.getCountOfFailedTests();
    const files = vitest.state.getFiles();
    await vitest.close();
    addSkipReasons(junit);
    const ok = failed === 0 && files.length > 0 && files.every((f) => f.result?.state !== "fail");
    console.log(`wisp hil: ${ok ? "passed" : "FAILED"}; JUnit: ${displayPath(junit)}, serial logs: ${displayPath(logDir)}/`);
    return ok ? 0 : 1;
  } catch (err) {
    if (err instanceof ConfigError || err instanceof PortError || err instanceof HilUsage) {
      console.error(`wisp hil: ${err.message}`);
      return 1;
    }
    throw err;
  } finally {
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
    for (const c of cleanup.splice(0).reverse()) await c();
    // vitest leaves process.exitCode set from its own run; the command's code is what it returns
    process.exitCode = undefined;
  }
}

/** vitest's JUnit writes a bare <skipped/>; the reason the test gave (its skip-reason annotation) goes into its message. */
function addSkipReasons(file: string): void {
  if (!existsSync(file)) return;
  const xml = readFileSync(file, "utf8").replace(
    /<skipped\/>(\s*<properties>\s*<property name="skip-reason" value="([^"]*)">\s*<\/property>)/g,
    (_, props: string, reason: string) => `<skipped message="${reason}"/>${props}`,
  );
  writeFileSync(file, xml);
}
