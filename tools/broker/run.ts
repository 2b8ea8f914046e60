// Running a broker folder on this machine for the simulator and the tests: the folder's own
// mosquitto.conf, logins, ACL and certificates, with its listeners moved to free loopback ports, its
// persistence and log in a scratch directory, and (edge-cloud) the bridge pointed at the simulated link.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort, launchMosquitto } from "./mosquitto.ts";

export interface RunningBroker {
  host: string;
  /** The first plain listener, if any. */
  port?: number;
  url?: string;
  /** The TLS listener, if any. */
  tlsPort?: number;
  tlsUrl?: string;
  /** The mosquitto.conf actually run (in the scratch directory). */
  config: string;
  log(): string;
  waitForLog(pattern: RegExp, timeoutMs?: number, fromOffset?: number): Promise<string>;
  /** Stops Mosquitto and removes the scratch directory. */
  stop(): Promise<void>;
}

export interface StartFolderOptions {
  /** The configuration to run, default `<dir>/mosquitto.conf`. */
  config?: string;
  /** host:port to put in the bridge's `address` line. */
  bridgeAddress?: string;
  /** Leave the bridge out (a simulation must not send its readings to a real central broker). */
  noBridge?: boolean;
  /** Replace the log_type lines (e.g. ["all"] in tests, to see every packet). */
  logTypes?: string[];
  /** Wanted port of the first plain listener (used when free, else a free one). */
  port?: number;
}

interface Listener {
  line: number;
  tls: boolean;
}

/** The listener lines of a mosquitto.conf and whether each block configures TLS (a certfile). */
export function listenersOf(lines: string[]): Listener[] {
  const found: Listener[] = [];
  let current: Listener | undefined;
  lines.forEach((raw, i) => {
    const word = raw.trim().split(/\s+/)[0];
    if (word === "listener") {
      current = { line: i, tls: false };
      found.push(current);
    } else if (word === "connection") current = undefined;
    else if (word === "certfile" && current) current.tls = true;
  });
  return found;
}

/** Starts Mosquitto with the folder's configuration on free loopback ports. */
export async function startBrokerFolder(dir: string, options: StartFolderOptions = {}): Promise<RunningBroker> {
  const source = options.config ?? path.join(dir, "mosquitto.conf");
  const original = readFileSync(source, "utf8").split("\n");
  const scratch = mkdtempSync(path.join(tmpdir(), "wisp-broker-"));
  const cleanup = () => rmSync(scratch, { recursive: true, force: true });
  try {
    let lastError: unknown;
    // The ports are free when picked but may be taken before Mosquitto binds them: retry with new ones.
    for (let attempt = 0; attempt < 3; attempt++) {
      const lines = options.noBridge ? withoutBridges(original) : [...original];
      const listeners = listenersOf(lines);
      if (!listeners.length) throw new Error(`${source} has no listener`);
      const ports: number[] = [];
      for (const [i, l] of listeners.entries()) {
        const wanted = i === 0 && attempt === 0 ? options.port : undefined;
        const port = wanted !== undefined && (await isFree(wanted)) ? wanted : await freePort();
        ports.push(port);
        lines[l.line] = `listener ${port} 127.0.0.1`;
      }
      let logTypesDone = false;
      for (let i = 0; i < lines.length; i++) {
        const word = lines[i]!.trim().split(/\s+/)[0];
        if (word === "persistence_location") lines[i] = `persistence_location ${scratch}`;
        else if (word === "log_dest") lines[i] = `log_dest file ${path.join(scratch, "mosquitto.log")}`;
        else if (word === "address" && options.bridgeAddress) lines[i] = `address ${options.bridgeAddress}`;
        else if (word === "log_type" && options.logTypes) {
          lines[i] = logTypesDone ? "" : options.logTypes.map((t) => `log_type ${t}`).join("\n");
          logTypesDone = true;
        }
      }
      const config = path.join(scratch, "mosquitto.conf");
      writeFileSync(config, lines.join("\n"), { mode: 0o600 });
      const plainIndex = listeners.findIndex((l) => !l.tls);
      const tlsIndex = listeners.findIndex((l) => l.tls);
      // A TCP probe of a TLS port only logs a failed handshake; a plain one is preferred.
      const probePort = ports[plainIndex >= 0 ? plainIndex : 0]!;
      try {
        const broker = await launchMosquitto({ config, logFile: path.join(scratch, "mosquitto.log"), probePort, cleanup });
        const port = plainIndex >= 0 ? ports[plainIndex] : undefined;
        const tlsPort = tlsIndex >= 0 ? ports[tlsIndex] : undefined;
        return {
          host: "127.0.0.1",
          port,
          url: port === undefined ? undefined : `mqtt://127.0.0.1:${port}`,
          tlsPort,
          tlsUrl: tlsPort === undefined ? undefined : `mqtts://127.0.0.1:${tlsPort}`,
          config,
          log: broker.log,
          waitForLog: broker.waitForLog,
          stop: broker.stop,
        };
      } catch (err) {
        lastError = err;
        if (!/address already in use/i.test(String((err as Error).message))) break;
      }
    }
    throw lastError;
  } catch (err) {
    cleanup();
    throw err;
  }
}

/** The configuration without its `connection` blocks (each runs to the next listener or the end). */
export function withoutBridges(lines: string[]): string[] {
  const out: string[] = [];
  let inBridge = false;
  for (const line of lines) {
    const word = line.trim().split(/\s+/)[0];
    if (word === "connection") inBridge = true;
    else if (word === "listener") inBridge = false;
    if (!inBridge) out.push(line);
  }
  return out;
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}
