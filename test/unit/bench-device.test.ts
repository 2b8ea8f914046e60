// `npm run bench:device` without an interpreter or the module to compare with: it says how to get
// them and exits 0, so a machine (CI) without them is not a failure.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { expect, it } from "vitest";

it("without ESPRUINO_BIN and ESPRUINO_MQTT_MODULE, says how to get them and exits 0", async () => {
  const env = { ...process.env };
  delete env.ESPRUINO_BIN;
  delete env.ESPRUINO_MQTT_MODULE;
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "test/bench/device.ts"], { env, encoding: "utf8" });
  expect(stdout).toMatch(/ESPRUINO_BIN=/);
  expect(stdout).toMatch(/ESPRUINO_MQTT_MODULE=/);
  expect(stdout).toMatch(/EspruinoDocs/);
});
