// Simulated boards with their consoles on pseudo-terminals (socat), running against the embedded
// broker, and a flash.config.json for them (their access point and broker), for the tests of
// `wisp flash`, `wisp monitor` and `wisp hil`.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SimNode } from "../../host-sim/node.ts";
import { createSimulation, type Simulation, type SimulationOptions } from "../../host-sim/sim.ts";
import { PROJECT_ROOT } from "../../tools/build.ts";

export interface SimBoards {
  sim: Simulation;
  /** A flash.config.json for these boards: flash.config.json with the simulation's Wi-Fi and broker. */
  configFile: string;
  stop(): Promise<void>;
}

export async function simBoards(options: SimulationOptions & { interval?: number } = {}): Promise<SimBoards> {
  const sim = await createSimulation({ clock: "real", serial: true, ...options });
  const dir = mkdtempSync(join(tmpdir(), "wisp-test-config-"));
  const config = JSON.parse(readFileSync(join(PROJECT_ROOT, "flash.config.json"), "utf8"));
  const configFile = join(dir, "flash.config.json");
  writeFileSync(
    configFile,
    JSON.stringify({
      ...config,
      $schema: join(PROJECT_ROOT, "flash.schema.json"),
      wifi: { ssid: sim.ap.ssid, password: sim.ap.password },
      mqtt: { ...config.mqtt, url: sim.brokerUrl },
      interval: options.interval ?? config.interval,
    }),
  );
  return {
    sim,
    configFile,
    stop: async () => {
      await sim.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Runs `wisp <args>` and sends it Ctrl-C (SIGINT) once it has programmed the first bytes of `node`'s
 * SPI flash (at most 60 s): the exit code and what it printed on stderr.
 */
export async function interruptWhileWriting(node: SimNode, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [join(PROJECT_ROOT, "tools", "wisp.js"), ...args], { cwd: PROJECT_ROOT });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
  const end = Date.now() + 60_000;
  while (node.spiFlash.stats.bytesProgrammed === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  child.kill("SIGINT");
  return { code: await exited, stderr };
}
