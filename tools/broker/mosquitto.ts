// Finding and starting Mosquitto 2: for `wisp broker run`, the simulator and the test suites alike.
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, readdirSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { delimiter, join } from "node:path";

export const INSTALL_HINT =
  "install it: apt-get install mosquitto mosquitto-clients (Debian, Ubuntu, Raspberry Pi OS), brew install mosquitto (macOS), or see https://mosquitto.org/download/";

/** A program on PATH, else in the usual Debian and Homebrew directories (mosquitto lives in /usr/sbin). */
export function findTool(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/opt/homebrew/sbin"];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The broker: $WISP_MOSQUITTO when set (a build of your own), else found like findTool. */
export function findMosquitto(): string | undefined {
  const given = process.env.WISP_MOSQUITTO;
  if (given) return isExecutable(given) ? given : undefined;
  return findTool("mosquitto");
}

/**
 * The dynamic security plugin, which Debian ships in the mosquitto package
 * (/usr/lib/<arch>-linux-gnu/mosquitto_dynamic_security.so); undefined when absent.
 */
export function findDynamicSecurityPlugin(): string | undefined {
  const name = "mosquitto_dynamic_security.so";
  const dirs = ["/usr/lib", "/usr/local/lib", "/usr/lib/mosquitto", "/usr/local/lib/mosquitto"];
  for (const base of ["/usr/lib", "/usr/local/lib"]) {
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

/** True when something accepts TCP connections on host:port. */
export function canConnect(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

export interface LaunchOptions {
  /** The mosquitto binary (default: found on PATH or in /usr/sbin). */
  binary?: string;
  config: string;
  /** The file the configuration logs to (`log_dest file ...`), read by log() and waitForLog(). */
  logFile: string;
  /** A plain-TCP listener to probe: the broker is ready once it accepts there. */
  probePort: number;
  probeHost?: string;
  timeoutMs?: number;
  /** Runs when stop() has seen the process exit (e.g. remove a temp dir); not when the start fails. */
  cleanup?: () => void;
}

export interface MosquittoProcess {
  child: ChildProcess;
  /** The broker's log so far. */
  log(): string;
  /** Resolves with the first log line matching pattern (written at or after `fromOffset`, a log().length). */
  waitForLog(pattern: RegExp, timeoutMs?: number, fromOffset?: number): Promise<string>;
  /** SIGTERM, wait for exit (SIGKILL after 5 s), then cleanup. Idempotent. */
  stop(): Promise<void>;
}

/** Starts `mosquitto -c config` and resolves once it listens on probePort; rejects with its output if it exits. */
export async function launchMosquitto(options: LaunchOptions): Promise<MosquittoProcess> {
  const binary = options.binary ?? findMosquitto();
  if (!binary) throw new Error(`Mosquitto not found: ${INSTALL_HINT}`);
  writeFileSync(options.logFile, "");
  const child = spawn(binary, ["-c", options.config], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.once("error", (err) => (output += `\n${err.message}`));

  const log = () => {
    try {
      return readFileSync(options.logFile, "utf8");
    } catch {
      return "";
    }
  };

  try {
    // Only a plain port is probed (a TCP probe of a TLS port logs a failed handshake): Mosquitto binds
    // every listener before it accepts on any.
    await waitUntilListening(child, exited, options.probePort, options.probeHost ?? "127.0.0.1", options.timeoutMs ?? 10_000, () => `${output}\n${log()}`);
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
      options.cleanup?.();
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

  return { child, log, waitForLog, stop };
}

async function waitUntilListening(
  child: ChildProcess,
  exited: Promise<number | null>,
  port: number,
  host: string,
  timeoutMs: number,
  diagnostics: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  void exited.then(() => (gone = true));
  for (;;) {
    if (gone) throw new Error(`Mosquitto exited with code ${child.exitCode} before listening:\n${diagnostics()}`);
    if (await canConnect(port, host)) return;
    if (Date.now() > deadline) throw new Error(`Mosquitto did not listen on port ${port} within ${timeoutMs} ms:\n${diagnostics()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
