// What the outbox suites share: a scenario whose temperature tells a reading's time, the node config
// with the outbox and a time server, and the firmware built for config changes as `wisp build --config` does.
import { expect } from "vitest";
import { environmentAt, parseScenario } from "../../host-sim/scenario.ts";
import { createSimulation, DEFAULT_NODE_CONFIG, type Simulation, type SimulationOptions } from "../../host-sim/sim.ts";
import { build } from "../../tools/build.ts";

/** 12 °C an hour, back and forth: a reading's time can be told from its temperature. */
export const RAMP = parseScenario({
  name: "ramp",
  environment: [
    { at: 0, temperature: 10, humidity: 50, pressure: 1010 },
    { at: 3600, temperature: 22, humidity: 50, pressure: 1010 },
  ],
  repeat: 7200,
  faults: [],
});
export const CONFIG = { ...DEFAULT_NODE_CONFIG, interval: 10, outbox: { maxBytes: 262144 }, time: { server: "pool.ntp.org" } };

const firmwares = new Map<string, string>();
/** The firmware as `wisp build --config` makes it for these config changes (sleep, outbox: false). */
export async function firmwareFor(changes: Record<string, unknown> = {}): Promise<string> {
  const key = JSON.stringify(changes);
  if (!firmwares.has(key)) {
    const config = { $schema: "./flash.schema.json", board: "esp32-devkitc", wifi: { ssid: "x" }, mqtt: { url: "mqtt://127.0.0.1:1883" }, prefix: "wisp/{id}", interval: 10, sensors: [{ name: "climate", type: "bme280" }], ...changes };
    const result = await build({ config: config as never, write: false, log: () => {} });
    expect(result.ok).toBe(true);
    firmwares.set(key, result.reports.find((r) => r.target)!.bundle!.code);
  }
  return firmwares.get(key)!;
}

/** One node on a fake clock with the ramp scenario, running the firmware built for `changes` with CONFIG and them. */
export async function outboxSimulation(options: SimulationOptions & { changes?: Record<string, unknown> } = {}): Promise<Simulation> {
  const { changes, ...rest } = options;
  return createSimulation({ nodes: 1, clock: "fake", scenario: RAMP, trafficLength: 100_000, firmware: await firmwareFor(changes), config: { ...CONFIG, ...(changes as object) } as never, ...rest });
}

/** A reading of the node's climate sensor as the broker saw it: when it came (ms since the start) and its JSON. */
export interface Reading {
  at: number;
  temperature: number;
  ts?: number;
  uptime?: number;
}

/** The node's readings as the broker saw them, in order. */
export function readings(s: Simulation): Reading[] {
  const topic = s.nodes[0]!.prefix + "/climate";
  return s.traffic.filter((m) => m.topic === topic).map((m) => ({ at: m.at, ...JSON.parse(m.payload) }));
}

/** Each reading's temperature fits the scenario at its "ts" (BME280: ±1 °C), not at its arrival. */
export function expectTakenAtTs(s: Simulation, list: Reading[]): void {
  for (const r of list) {
    expect(r.ts, JSON.stringify(r)).toBeGreaterThan(s.startMs);
    const env = environmentAt(RAMP, (r.ts! - s.startMs) / 1000);
    expect(Math.abs(r.temperature - env.temperature), `${JSON.stringify(r)} vs ${env.temperature.toFixed(2)} °C at its ts`).toBeLessThanOrEqual(1);
  }
}
