// The simulated board's serial console against what the real interpreter did: each step of
// test/fixtures/console/transcript.json (recorded from the Linux build of Espruino 2v29 on a
// pseudo-terminal by record.ts) is sent to a simulated ESP32's console UART at 115,200 baud on a
// fake clock, and the bytes that come back must be the recorded ones. Where an ESP32 differs from
// the Linux build, the step says what the board answers and why. The error texts of V8 and
// Espruino differ ("ad is not defined" against "\"ad\" is not defined" with a caret under the
// code), so an Uncaught error is compared as one.

import FakeTimers from "@sinonjs/fake-timers";
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { SimNode } from "../../host-sim/node.ts";
import type { Clock } from "../../host-sim/runtime.ts";
import { AccessPoint } from "../../host-sim/wifi.ts";
import { type ConsoleStep, stepBytes } from "../fixtures/console/steps.ts";

const transcript = JSON.parse(readFileSync(new URL("../fixtures/console/transcript.json", import.meta.url), "utf8")) as {
  recordedWith: string;
  steps: ConsoleStep[];
};

/** A simulated ESP32 with nothing flashed, its console on a host end that records what comes back. */
function board(options: { baud?: number; rxBytes?: number } = {}) {
  const clock = FakeTimers.createClock(Date.UTC(2025, 5, 1), 1e9);
  const node = new SimNode({ index: 0, clock: clock as unknown as Clock, ap: new AccessPoint(), baud: options.baud });
  let received: number[] = [];
  node.line.attachHost((bytes) => received.push(...bytes));
  node.powerOn();
  clock.tick(1000);
  received = [];
  return {
    node,
    clock,
    /** Send bytes, let `ms` pass, return what came back. */
    async send(data: string | Uint8Array, ms = 300): Promise<string> {
      received = [];
      node.line.write(typeof data === "string" ? Buffer.from(data, "latin1") : data);
      await clock.tickAsync(ms);
      return Buffer.from(received).toString("latin1");
    },
    dispose: () => node.dispose(),
  };
}

const uncaught = (s: string) => s.replace(/Uncaught [^\r]*(\r\n {4}at [^\r]*\r\n[^\r]*\r\n *\^)?\r\n/g, "Uncaught <error>\r\n");

let current: ReturnType<typeof board> | undefined;
afterEach(() => {
  current?.dispose();
  current = undefined;
});

describe(`the simulated console answers as ${transcript.recordedWith} did`, () => {
  it("replays the whole transcript byte for byte", async () => {
    const b = (current = board());
    for (const step of transcript.steps) {
      const want = step.board ?? step.expect!.replace(/\bLINUX\b/g, "ESP32");
      const got = await b.send(stepBytes(step), step.quietMs ?? 300);
      expect(uncaught(got), `${JSON.stringify(stepBytes(step))}${step.note ? ` (${step.note})` : ""}`).toBe(uncaught(want));
    }
  });
});
