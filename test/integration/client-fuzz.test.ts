// A fixed-seed, bounded fuzz run of the BUILT client's decoding path through a scripted broker
// (test/bench/fuzz.ts; `npm run bench:fuzz` runs more of it): valid, mutated and random server input,
// a connection at a time. It runs in a child process with a deadline, because a synchronous loop in
// the device code would stop the test runner itself.
import { execFile } from "node:child_process";
import { describe, expect, it } from "vitest";
import { FUZZ_SCRIPT, type FuzzReport } from "../bench/fuzz.ts";

const SEED = 20_250_601;
const COUNT = 1_000;
/** The run takes about two seconds; one still going after this is stuck. */
const DEADLINE_MS = 30_000;

describe("fuzzed server input", () => {
  it(`seed ${SEED}, ${COUNT} connections: no crash, no hang, no growth of the client`, async () => {
    const { report, output, killed } = await new Promise<{ report?: FuzzReport; output: string; killed: boolean }>((resolve) => {
      execFile(process.execPath, ["--import", "tsx", FUZZ_SCRIPT, "--seed", String(SEED), "--count", String(COUNT), "--json"], { timeout: DEADLINE_MS, encoding: "utf8", maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
        const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
        resolve({ report: line ? JSON.parse(line.slice(7)) : undefined, output: `${stdout}${stderr}`.slice(-4_000), killed: Boolean(err && (err as { killed?: boolean }).killed) });
      });
    });
    expect(killed, `the fuzz run did not finish within ${DEADLINE_MS} ms (a hang in the device code?):\n${output}`).toBe(false);
    expect(report, output).toBeDefined();
    const r = report!;
    expect(r.crashes).toEqual([]);
    expect(r.hungAt).toBeUndefined();
    expect(r.connections).toBe(COUNT);
    // the run does exercise both paths: input the client takes, and input it closes the connection on
    expect(r.messages).toBeGreaterThan(50);
    expect(r.refused).toBeGreaterThan(50);
    expect(r.jsVars.last - r.jsVars.first).toBeLessThanOrEqual(16);
  }, 60_000);
});
