// Simulated boards with their consoles on pseudo-terminals (socat), running against the embedded
// broker, and a flash.config.json for them (their access point and broker), for the tests of
// `wisp flash`, `wisp monitor` and `wisp hil`.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
