// Waiting for something in a simulation on a fake clock whose nodes talk to real sockets (aedes,
// Mosquitto, a peer MQTT.js client). Node time moves only when the test moves it, but the IO does not
// wait for node time: on a loaded machine a peer's message can come many node-time steps later than
// on an idle one. So node time is moved up to a limit, and then the condition still gets real time to
// come true, instead of failing as soon as the node-time budget is spent.
import { expect } from "vitest";
import type { Simulation } from "../../host-sim/sim.ts";

export interface RunUntilOptions {
  /** Node time to move at most, ms (default 120 s). */
  nodeMs?: number;
  /** Node time per step, ms (default 500): small, so socket IO between steps keeps up. */
  stepMs?: number;
  /** Real time the condition gets in all, from the start, ms (default 20 s). */
  realMs?: number;
}

/** Moves `sim`'s node time until `until()` holds; fails when it does not within both budgets. */
export async function runUntil(sim: Simulation, until: () => boolean, options: RunUntilOptions = {}): Promise<void> {
  const { nodeMs = 120_000, stepMs = 500, realMs = 20_000 } = options;
  const started = performance.now();
  let moved = 0;
  while (!until()) {
    if (moved < nodeMs) {
      await sim.advance(stepMs);
      moved += stepMs;
      await new Promise((r) => setTimeout(r, 2)); // a peer's socket delivers what the broker sent
    } else if (performance.now() - started < realMs) {
      await new Promise((r) => setTimeout(r, 10));
    } else break;
  }
  expect(until()).toBe(true);
}

/** Waits in real time (node time stays) until `until()` holds, up to `realMs`; fails when it does not. */
export async function waitFor(until: () => boolean, realMs = 20_000): Promise<void> {
  const started = performance.now();
  while (!until() && performance.now() - started < realMs) await new Promise((r) => setTimeout(r, 10));
  expect(until()).toBe(true);
}
