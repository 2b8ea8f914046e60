// The rule for suites that need Mosquitto: without it they are skipped with the reason printed,
// except in CI (CI=true), where a missing broker must fail the run instead of hiding the suite.
import { describe, it } from "vitest";
import { MOSQUITTO_MISSING, mosquittoAvailable } from "./mosquitto.ts";

export function describeWithMosquitto(name: string, suite: () => void): void {
  if (mosquittoAvailable()) {
    describe(name, suite);
  } else if (process.env.CI === "true") {
    describe(name, () => {
      it("has Mosquitto installed", () => {
        throw new Error(`${MOSQUITTO_MISSING} (CI=true: this suite must run, not be skipped)`);
      });
    });
  } else {
    console.warn(`[${name}] skipped: ${MOSQUITTO_MISSING}`);
    describe.skip(`${name} (skipped: ${MOSQUITTO_MISSING})`, suite);
  }
}
