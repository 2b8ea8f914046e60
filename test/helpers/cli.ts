// Runs the `wisp` command as a user types it, for the command-line suites.
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PROJECT_ROOT } from "../../tools/build.ts";

export interface Run {
  code: number | null;
  out: string;
  err: string;
}

export interface RunOptions {
  cwd: string;
  env?: Record<string, string>;
  /**
   * Each stdout line as it comes; `stop()` sends Ctrl-C (SIGINT), `stop("SIGHUP")` another signal,
   * `stop("close-pipe")` closes the pipe the command writes to (as `| head` does when it has its lines).
   */
  onLine?: (line: string, stop: (how?: NodeJS.Signals | "close-pipe") => void) => void;
}

const running = new Set<number>();

/**
 * Kills whatever a test left running, with its children (a `wisp broker run` whose test timed out
 * would leave its Mosquitto behind): each command runs in its own process group.
 */
export function killLeftovers(): void {
  for (const pid of running) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  running.clear();
}

export function wisp(args: string[], options: RunOptions): Promise<Run> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [join(PROJECT_ROOT, "tools", "wisp.js"), ...args], {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    running.add(proc.pid!);
    let out = "",
      err = "";
    const stop = (how: NodeJS.Signals | "close-pipe" = "SIGINT") => (how === "close-pipe" ? proc.stdout.destroy() : proc.kill(how));
    proc.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      for (const line of d.toString().split("\n")) if (line) options.onLine?.(line, stop);
    });
    proc.stderr.on("data", (d: Buffer) => (err += d.toString()));
    proc.on("exit", (code) => {
      running.delete(proc.pid!);
      resolve({ code, out, err });
    });
  });
}

/** Stops the command (Ctrl-C) once `count` nodes have reported online; --duration is only a safety net. */
export function untilOnline(count: number) {
  let seen = 0;
  return (line: string, stop: () => void) => {
    if (/mqtt wisp\/[0-9a-f-]+\/status online/.test(line) && ++seen === count) stop();
  };
}

/** Every password in a broker folder's passwords.json. */
export function secrets(dir: string): string[] {
  const p = JSON.parse(readFileSync(join(dir, "passwords.json"), "utf8"));
  return [p.operator.password, ...(p.bridge ? [p.bridge.password] : []), ...Object.values(p.nodes as Record<string, string>)];
}

/** A flash.config.json for the command-line suites, its broker on 127.0.0.1:`port`. */
export function writeConfig(file: string, port: number): void {
  writeFileSync(
    file,
    JSON.stringify({
      board: "esp32-devkitc",
      wifi: { ssid: "lab", password: "wifi-password" },
      mqtt: { url: `mqtt://127.0.0.1:${port}`, clientId: "wisp-{id}", keepalive: 30 },
      prefix: "wisp/{id}",
      interval: 1,
      qos: 1,
      sensors: [{ name: "climate", type: "bme280", address: 118 }],
    }),
  );
}
