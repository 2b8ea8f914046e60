// A private Mosquitto 2 for one test file or benchmark: 127.0.0.1 on free ports, a plain and a TLS
// listener, password and ACL files from test/helpers/users.ts, no persistence, logging to a file.
// Free of vitest so the benchmark can use it too; the skip/fail rule lives in ./suites.ts.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { pbkdf2Sync, randomBytes } from "node:crypto";
import { accessSync, constants, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import net from "node:net";
import { tmpdir, userInfo } from "node:os";
import { delimiter, join } from "node:path";
import { makeCerts, OPENSSL, type TestCerts } from "./certs.ts";
import { ACCOUNTS, PEER, REFUSED_PREFIX, WISP } from "./users.ts";

export const MOSQUITTO_MISSING = "Mosquitto not found: apt-get install mosquitto mosquitto-clients to run this suite";

/** A program on PATH, else in the usual Debian directories. */
export function findTool(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function findMosquitto(): string | undefined {
  return findTool("mosquitto");
}

/** Everything startMosquitto needs: the broker, mosquitto_passwd (same package) and openssl. */
export function mosquittoAvailable(): boolean {
  return findMosquitto() !== undefined && findTool("mosquitto_passwd") !== undefined && isExecutable(OPENSSL);
}

export interface MosquittoOptions {
  /** Mosquitto log_type values. Default ["all"]: every packet, for diagnosing failures. */
  logTypes?: string[];
  /** Lines appended to the generated mosquitto.conf (global section). */
  extraConfig?: string;
}

export interface Mosquitto {
  host: string;
  port: number;
  tlsPort: number;
  url: string;
  tlsUrl: string;
  certs: TestCerts;
  dir: string;
  /** True when the dynamic security plugin was found: SUBSCRIBE under REFUSED_PREFIX by wisp gets 0x80. */
  refusesSubscriptions: boolean;
  /** The broker's log so far. */
  log(): string;
  /** Resolves with the first log line matching pattern (written at or after `fromOffset`, a log().length). */
  waitForLog(pattern: RegExp, timeoutMs?: number, fromOffset?: number): Promise<string>;
  /** SIGTERM, wait for exit, remove the temp dir. Idempotent. */
  stop(): Promise<void>;
}

export async function freePort(host = "127.0.0.1"): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Mosquitto's acl_file never refuses a SUBSCRIBE (it only filters delivery; security_default.c
 * skips subscribe checks), so the SUBACK 0x80 test needs the dynamic security plugin, which
 * Debian ships in the mosquitto package. It holds the same accounts and refuses the wisp user
 * REFUSED_PREFIX for subscribe, publish and delivery. Measured on 2.0.11: once the plugin
 * allows an operation the acl_file is not consulted, so its rules must be repeated here; the
 * acl_file remains the fallback when the plugin is missing.
 */
export function findDynamicSecurityPlugin(): string | undefined {
  const name = "mosquitto_dynamic_security.so";
  const dirs = ["/usr/lib", "/usr/local/lib"];
  for (const base of [...dirs]) {
    try {
      for (const entry of readdirSync(base)) if (entry.endsWith("-linux-gnu")) dirs.push(join(base, entry));
    } catch {
      // no such directory on this system
    }
  }
  return dirs.map((dir) => join(dir, name)).find((candidate) => {
    try {
      accessSync(candidate, constants.R_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function dynamicSecurityConfig(): string {
  // Hash format of the plugin (and of `mosquitto_ctrl dynsec`): PBKDF2-SHA512, 101 iterations, base64.
  const client = (account: { username: string; password: string }) => {
    const salt = randomBytes(12);
    return {
      username: account.username,
      password: pbkdf2Sync(account.password, salt, 101, 64, "sha512").toString("base64"),
      salt: salt.toString("base64"),
      iterations: 101,
      roles: account === WISP ? [{ rolename: "refused" }] : [],
    };
  };
  return JSON.stringify({
    clients: ACCOUNTS.map(client),
    groups: [],
    roles: [{
      rolename: "refused",
      acls: ["subscribePattern", "publishClientSend", "publishClientReceive"].map((acltype) => ({
        acltype, topic: `${REFUSED_PREFIX}/#`, priority: 1, allow: false,
      })),
    }],
    defaultACLAccess: { publishClientSend: true, publishClientReceive: true, subscribe: true, unsubscribe: true },
  });
}

function aclFile(): string {
  // Mosquitto's ACL wildcards, like subscriptions, do not match topics starting with "$" [MQTT-4.7.2-1],
  // so the "$wisp/..." topics of the $-topic test need their own line.
  return [
    `user ${WISP.username}`,
    `topic deny ${REFUSED_PREFIX}/#`,
    `topic deny ${REFUSED_PREFIX}`,
    "topic readwrite #",
    "topic readwrite $wisp/#",
    "",
    `user ${PEER.username}`,
    "topic readwrite #",
    "topic readwrite $wisp/#",
    "topic read $SYS/#",
    "",
  ].join("\n");
}

function config(dir: string, port: number, tlsPort: number, certs: TestCerts, options: MosquittoOptions, plugin?: string): string {
  return [
    ...(plugin ? [`plugin ${plugin}`, `plugin_opt_config_file ${join(dir, "dynamic-security.json")}`] : []),
    "per_listener_settings false",
    "allow_anonymous false",
    `password_file ${join(dir, "passwd")}`,
    `acl_file ${join(dir, "acl")}`,
    "persistence false",
    `log_dest file ${join(dir, "mosquitto.log")}`,
    ...(options.logTypes ?? ["all"]).map((type) => `log_type ${type}`),
    "log_timestamp true",
    "log_timestamp_format %H:%M:%S",
    "connection_messages true",
    // Run as root (CI), Mosquitto would otherwise switch to the "mosquitto" user, who cannot read this temp dir.
    `user ${userInfo().username}`,
    options.extraConfig ?? "",
    `listener ${port} 127.0.0.1`,
    `listener ${tlsPort} 127.0.0.1`,
    `cafile ${certs.caFile}`,
    `certfile ${certs.serverCertFile}`,
    `keyfile ${certs.serverKeyFile}`,
    "",
  ].join("\n");
}

export async function startMosquitto(options: MosquittoOptions = {}): Promise<Mosquitto> {
  const mosquitto = findMosquitto();
  const passwd = findTool("mosquitto_passwd");
  if (!mosquitto || !passwd || !isExecutable(OPENSSL)) throw new Error(MOSQUITTO_MISSING);

  const dir = mkdtempSync(join(tmpdir(), "wisp-mosquitto-"));
  try {
    const certs = makeCerts(join(dir, "certs"));
    const passwordFile = join(dir, "passwd");
    writeFileSync(passwordFile, "");
    chmodSync(passwordFile, 0o600);
    for (const account of ACCOUNTS) {
      execFileSync(passwd, ["-b", passwordFile, account.username, account.password], { stdio: "pipe" });
    }
    writeFileSync(join(dir, "acl"), aclFile());
    const plugin = findDynamicSecurityPlugin();
    if (plugin) writeFileSync(join(dir, "dynamic-security.json"), dynamicSecurityConfig());

    // The ports are free when picked but may be taken before Mosquitto binds them: retry with new ones.
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      const tlsPort = await freePort();
      writeFileSync(join(dir, "mosquitto.conf"), config(dir, port, tlsPort, certs, options, plugin));
      try {
        return await launch(mosquitto, dir, port, tlsPort, certs, plugin !== undefined);
      } catch (err) {
        lastError = err;
        if (!/address already in use/i.test(String((err as Error).message))) break;
      }
    }
    throw lastError;
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function launch(
  binary: string,
  dir: string,
  port: number,
  tlsPort: number,
  certs: TestCerts,
  refusesSubscriptions: boolean,
): Promise<Mosquitto> {
  const logFile = join(dir, "mosquitto.log");
  writeFileSync(logFile, "");
  const child = spawn(binary, ["-c", join(dir, "mosquitto.conf")], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.once("error", (err) => (output += `\n${err.message}`));

  const log = () => {
    try {
      return readFileSync(logFile, "utf8");
    } catch {
      return "";
    }
  };

  try {
    // Only the plain port is probed (a TCP probe of the TLS port logs a failed handshake): Mosquitto
    // binds every listener before it accepts on any.
    await waitUntilListening(child, exited, [port], 10_000, () => `${output}\n${log()}`);
  } catch (err) {
    child.kill("SIGKILL");
    await exited;
    throw err;
  }

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  const waitForLog = async (pattern: RegExp, timeoutMs = 5_000, fromOffset = 0): Promise<string> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = log().slice(fromOffset).split("\n").find((candidate) => pattern.test(candidate));
      if (line !== undefined) return line;
      if (Date.now() > deadline) throw new Error(`Mosquitto log has no line matching ${pattern} after ${timeoutMs} ms`);
      // Mosquitto only tells us through its log file; poll it briefly.
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  return {
    host: "127.0.0.1",
    port,
    tlsPort,
    url: `mqtt://127.0.0.1:${port}`,
    tlsUrl: `mqtts://127.0.0.1:${tlsPort}`,
    certs,
    dir,
    refusesSubscriptions,
    log,
    waitForLog,
    stop,
  };
}

async function waitUntilListening(
  child: ChildProcess,
  exited: Promise<number | null>,
  ports: number[],
  timeoutMs: number,
  diagnostics: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  void exited.then(() => (gone = true));
  for (const port of ports) {
    for (;;) {
      if (gone) throw new Error(`Mosquitto exited with code ${child.exitCode} before listening:\n${diagnostics()}`);
      if (await canConnect(port)) break;
      if (Date.now() > deadline) throw new Error(`Mosquitto did not listen on port ${port} within ${timeoutMs} ms:\n${diagnostics()}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

