// `wisp build`: esbuild settings, budgets, Node-module rejection, writing dist/, and the CLI.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { build, BuildError, bundle, checkBundle, contributors, OUTPUTS, PARTS, PROJECT_ROOT, type Output } from "../../tools/build.ts";
import type { FlashConfig } from "../../tools/config.ts";
import { SENSOR_TYPE_NAMES } from "../../tools/drivers.ts";

const FIXTURES = "test/fixtures/compat/build";

async function quietBuild(outputs: Output[], options: { root?: string; write?: boolean; config?: string } = {}) {
  const lines: string[] = [];
  const result = await build({ outputs, write: false, log: (l) => lines.push(l), ...options });
  return { result, text: lines.join("\n") };
}

describe("bundle", () => {
  it("keeps the public API, mangles names ending in _, and leaves require(\"net\") to Espruino", async () => {
    const { code } = await bundle(`${FIXTURES}/module.ts`);
    expect(code).toContain("exports.connect=");
    expect(code).toMatch(/[{}]publish\(/);
    expect(code).toMatch(/require\("net"\)/);
    expect(code).not.toMatch(/state_|socket_|open_/);
    // No esbuild module shims: `exports` must be the object Espruino hands the module.
    expect(code).not.toMatch(/__commonJS|__require|__toCommonJS|Proxy/);
  });

  it("emits ASCII only, escaping non-ASCII string content", async () => {
    const { code } = await bundle(`${FIXTURES}/module.ts`);
    expect(code).toMatch(/^[\x00-\x7f]*$/);
    expect(code).toContain("\\xE9");
  });

  it("writes no raw control byte but the newline (esbuild writes \"\\x04\" as the byte; an upload would send it as it is)", async () => {
    const { code } = await bundle("firmware/mqtt/index.ts");
    expect(code).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f]/);
    expect(code).toContain('"\\0\\x04MQTT\\x04"');
    expect(checkBundle(await bundle("firmware/mqtt/index.ts")).filter((f) => f.rule === "control-byte")).toEqual([]);
  });

  it("rejects an imported Node module with a message naming it and the importing line", async () => {
    const err = await bundle(`${FIXTURES}/node-import.ts`).catch((e) => e);
    expect(err).toBeInstanceOf(BuildError);
    expect(err.message).toContain(`${FIXTURES}/node-import.ts:1:`);
    expect(err.message).toContain('"fs" is a Node module; firmware runs on Espruino, which has no "fs"');
    expect(err.message).toContain("net, tls");
  });

  it("rejects require() of a node: module too", async () => {
    await expect(bundle(`${FIXTURES}/node-require.ts`)).rejects.toThrow(/"node:child_process" is a Node module/);
  });

  it("names a missing entry", async () => {
    await expect(bundle("firmware/does-not-exist.ts")).rejects.toThrow("entry firmware/does-not-exist.ts does not exist");
  });
});

describe("build", () => {
  it("fails over budget, naming the file, its size and budget, and the biggest inputs", async () => {
    const { result, text } = await quietBuild([{ entry: `${FIXTURES}/module.ts`, outfile: "dist/budget-test.js", budget: 64 }]);
    expect(result.ok).toBe(false);
    const bytes = result.reports[0].bytes;
    expect(bytes).toBeGreaterThan(64);
    expect(text).toContain(`dist/budget-test.js is ${bytes.toLocaleString("en-US")} bytes, over its budget of 64 bytes`);
    expect(text).toMatch(new RegExp(`\\d+  ${FIXTURES}/module\\.ts`));
    expect(text).toMatch(/dist\/budget-test\.js +\d[\d,]* +64 +\d+%  FAILED/);
  });

  it("passes under budget and prints the size table and the time", async () => {
    const { result, text } = await quietBuild([{ entry: `${FIXTURES}/module.ts`, outfile: "dist/budget-test.js", budget: 4096 }]);
    expect(result.ok).toBe(true);
    expect(text).toMatch(/^output +bytes +budget +used$/m);
    expect(text).toMatch(/^dist\/budget-test\.js +\d+ +4,096 +\d+%$/m);
    expect(text).toMatch(/built in \d+ ms \(nothing written\)/);
  });

  it("fails an entry that uses ES `export`", async () => {
    const { result, text } = await quietBuild([{ entry: `${FIXTURES}/es-export.ts`, outfile: "dist/es-export.js", budget: 4096 }]);
    expect(result.ok).toBe(false);
    expect(text).toContain("an entry must not use `export` (found: connect)");
  });

  it("fails with every compatibility finding listed", async () => {
    const { result, text } = await quietBuild([{ entry: "test/fixtures/compat/spread.ts", outfile: "dist/spread.js", budget: 4096 }]);
    expect(result.ok).toBe(false);
    expect(text).toContain("dist/spread.js: 4 constructs Espruino cannot run");
    expect(text.match(/test\/fixtures\/compat\/spread\.ts:\d+:\d+: spread/g)).toHaveLength(4);
  });

  describe("writing dist/", () => {
    const root = mkdtempSync(path.join(tmpdir(), "wisp-build-"));
    mkdirSync(path.join(root, "src"));
    writeFileSync(path.join(root, "src/ok.ts"), 'exports.hello = function () { return "hi"; };\n');
    writeFileSync(path.join(root, "src/bad.ts"), "exports.f = (a: number[]) => [...a];\n");
    afterAll(() => rmSync(root, { recursive: true, force: true }));

    it("writes the .js and a .js.map when every output passes", async () => {
      const { result } = await quietBuild([{ entry: "src/ok.ts", outfile: "dist/ok.js", budget: 100 }], { root, write: true });
      expect(result.ok).toBe(true);
      expect(readFileSync(path.join(root, "dist/ok.js"), "utf8")).toBe(result.reports[0].bundle!.code);
      expect(JSON.parse(readFileSync(path.join(root, "dist/ok.js.map"), "utf8")).sources).toEqual(["../src/ok.ts"]);
      // Nothing on the device loads the map; the uploaded file must not point at it.
      expect(readFileSync(path.join(root, "dist/ok.js"), "utf8")).not.toContain("sourceMappingURL");
    });

    it("writes nothing when any output fails", async () => {
      const { result } = await quietBuild(
        [
          { entry: "src/ok.ts", outfile: "dist/ok2.js", budget: 100 },
          { entry: "src/bad.ts", outfile: "dist/bad.js", budget: 100 },
        ],
        { root, write: true },
      );
      expect(result.ok).toBe(false);
      expect(existsSync(path.join(root, "dist/ok2.js"))).toBe(false);
      expect(existsSync(path.join(root, "dist/bad.js"))).toBe(false);
    });

    it("fails and writes nothing when the config it checks is not valid, naming each bad field", async () => {
      const config = JSON.parse(readFileSync(path.join(PROJECT_ROOT, "flash.config.json"), "utf8"));
      const file = path.join(root, "broken.json");
      writeFileSync(file, JSON.stringify({ ...config, mqtt: { url: "mqtt://192.168.1.300:99999" } }));
      const { result, text } = await quietBuild([{ entry: "src/ok.ts", outfile: "dist/ok3.js", budget: 100 }], { root, write: true, config: file });
      expect(result.ok).toBe(false);
      expect(existsSync(path.join(root, "dist/ok3.js"))).toBe(false);
      expect(text).toContain("mqtt.url: port 99999 is out of range (1 to 65535; MQTT is 1883, over TLS 8883)");
      expect(text).toContain('mqtt.url: "192.168.1.300" is not an IPv4 address (four numbers 0 to 255, like 192.168.1.10)');
      expect(text).toContain("build failed");
    });
  });

});

describe("building for a config: only the drivers it names", () => {
  const FIRMWARE = OUTPUTS.filter((o) => o.parts);
  const base: FlashConfig = {
    board: "esp32-devkitc",
    wifi: { ssid: "x" },
    mqtt: { url: "mqtt://10.0.0.2:1883" },
    prefix: "wisp/{id}",
    interval: 10,
    sensors: [{ name: "climate", type: "bme280" }],
  };
  const firmwareFor = async (config: FlashConfig | string) => {
    const lines: string[] = [];
    const result = await build({ outputs: FIRMWARE, config, write: false, log: (l) => lines.push(l) });
    return { result, report: result.reports[0]!, text: lines.join("\n") };
  };
  /** Source files with bytes in the output (esbuild's metafile also lists what it shook out). */
  const inputs = (r: { bundle: Parameters<typeof contributors>[0] | null }) => contributors(r.bundle!).filter((c) => c.bytes > 0).map((c) => c.input);

  it("the project's BME280-only flash.config.json gives the BME280 driver and the outbox, no discovery and no duty cycle", async () => {
    const { result, report, text } = await firmwareFor(path.join(PROJECT_ROOT, "flash.config.json"));
    expect(result.ok).toBe(true);
    expect(report.budget).toBe(27238); // + issue 7's second round of client checks (2,100), issue 9's review (856 base, 928 outbox) and second round (850)
    expect(inputs(report).filter((i) => i.startsWith("drivers/")).sort()).toEqual(["drivers/bme280.ts", "drivers/bus.ts"]);
    expect(inputs(report)).not.toContain("firmware/node/discovery.ts");
    expect(inputs(report)).toContain("firmware/store/outbox.ts");
    expect(report.bundle!.code).not.toMatch(/deepSleep/);
    expect(text).toMatch(/^dist\/firmware\.js +[\d,]+ +27,238 +\d+% +for flash\.config\.json$/m);
    expect(text).toMatch(/^ {2}drivers\/bme280\.ts +1,\d{3} +2,048 +\d+%$/m);
    expect(text).toMatch(/^ {2}firmware\/store\/outbox\.ts +4,\d{3} +4,512 +\d+%$/m);
  });

  it('"outbox": false leaves the outbox and the client\'s session store hooks out; "sleep" brings the duty cycle in', async () => {
    const bare = await firmwareFor({ ...base, outbox: false });
    expect(bare.result.ok).toBe(true);
    expect(inputs(bare.report)).not.toContain("firmware/store/outbox.ts");
    // (no outbox file is opened: the node only looks for one an earlier firmware left, to say so)
    expect(bare.report.bundle!.code).not.toMatch(/\.load\(\)|"wisp\.o"|\.open\(/);
    expect(bare.report.bundle!.code).toMatch(/an earlier outbox waits in Storage/);
    const sleepy = await firmwareFor({ ...base, sleep: { seconds: 300 } });
    expect(sleepy.result.ok).toBe(true);
    expect(sleepy.report.bundle!.code).toMatch(/deepSleep/);
    expect(sleepy.report.bytes - bare.report.bytes).toBeGreaterThan(3000);
  });

  it("bundles a family base with its chip, each with its own budget row, and adds their budgets to the firmware's", async () => {
    const { result, report, text } = await firmwareFor({ ...base, sensors: [{ name: "air", type: "sht3x" }] });
    expect(result.ok).toBe(true);
    const drivers = inputs(report).filter((i) => i.startsWith("drivers/")).sort();
    expect(drivers).toEqual(["drivers/bus.ts", "drivers/sensirion.ts", "drivers/sht3x.ts"]);
    expect(report.bundle!.code).not.toMatch(/BME280|DS18B20|SCD4x|WISP_/);
    expect(report.budget).toBe(OUTPUTS.find((o) => o.parts)!.budget + report.parts.reduce((n, p) => n + p.budget, 0));
    for (const d of drivers) expect(text).toMatch(new RegExp(`^  ${d.replace(/[./]/g, "\\$&")} +\\d`, "m"));
  });

  it("has a driver for every type the schema allows, and discovery only with a homeAssistant section", async () => {
    const schema = JSON.parse(readFileSync(path.join(PROJECT_ROOT, "flash.schema.json"), "utf8"));
    expect([...schema.properties.sensors.items.properties.type.enum].sort()).toEqual([...SENSOR_TYPE_NAMES].sort());
    for (const type of SENSOR_TYPE_NAMES) {
      const sensor = type === "battery" ? { name: "s", type, pin: 35 } : { name: "s", type };
      const { result, report } = await firmwareFor({ ...base, sensors: [sensor as FlashConfig["sensors"][number]] });
      expect(result.ok, `${type}: ${result.reports[0]!.errors.join("; ")}`).toBe(true);
      expect(inputs(report), type).toContain(`drivers/${type}.ts`);
      expect(inputs(report), type).not.toContain("firmware/node/discovery.ts");
      // each type alone with discovery on builds (its table's budget once allowed only one quantity's worth)
      const ha = await firmwareFor({ ...base, sensors: [sensor as FlashConfig["sensors"][number]], homeAssistant: { discovery: true } });
      expect(ha.result.ok, `${type} with discovery: ${ha.result.reports[0]!.errors.join("; ")}`).toBe(true);
      expect(inputs(ha.report), type).toContain("firmware/node/discovery.ts");
    }
  });

  it("fails on a config that is not valid, naming the field", async () => {
    const { result, text } = await firmwareFor({ ...base, sensors: [{ name: "x", type: "sht3x", address: 118 }] });
    expect(result.ok).toBe(false);
    expect(text).toContain("error: config is not valid:\n  sensors[0].address: must be one of 68, 69, got 118");
  });

  it("fails when a file under drivers/ has no budget of its own", async () => {
    const root = mkdtempSync(path.join(tmpdir(), "wisp-parts-"));
    try {
      mkdirSync(path.join(root, "drivers"));
      mkdirSync(path.join(root, "src"));
      writeFileSync(path.join(root, "drivers/novel.ts"), "export function read(): number { return 42; }\n");
      writeFileSync(path.join(root, "src/main.ts"), 'import { read } from "../drivers/novel";\nexports.read = read;\n');
      const lines: string[] = [];
      const result = await build({ outputs: [{ entry: "src/main.ts", outfile: "dist/main.js", budget: 4096, parts: true }], root, config: base, write: false, log: (l) => lines.push(l) });
      expect(result.ok).toBe(false);
      expect(lines.join("\n")).toMatch(/drivers\/novel\.ts has no budget: add it to PARTS in tools\/build\.ts/);
      expect(PARTS["drivers/novel.ts"]).toBeUndefined();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("wisp CLI", () => {
  const wisp = (...args: string[]) =>
    promisify(execFile)(process.execPath, [path.join(PROJECT_ROOT, "tools/wisp.js"), ...args], { cwd: PROJECT_ROOT }).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e) => ({ code: e.code as number, stdout: e.stdout as string, stderr: e.stderr as string }),
    );

  it("checks flash.config.json: without WISP_WIFI_PASSWORD it passes and says that secret was not read, and why", async () => {
    const env = { ...process.env };
    delete env.WISP_WIFI_PASSWORD;
    const r = await promisify(execFile)(process.execPath, [path.join(PROJECT_ROOT, "tools/wisp.js"), "build", "--check"], { cwd: PROJECT_ROOT, env });
    expect(r.stdout).toContain("flash.config.json: valid (board esp32-devkitc, broker mqtt://192.168.1.10:1883, 1 sensor)");
    expect(r.stdout).toContain(
      "not checked: wifi.password comes from $WISP_WIFI_PASSWORD, which is not set here; wisp flash and wisp hil read it when they write wisp.json for a board, and stop without it",
    );
    const set = await promisify(execFile)(process.execPath, [path.join(PROJECT_ROOT, "tools/wisp.js"), "build", "--check"], { cwd: PROJECT_ROOT, env: { ...env, WISP_WIFI_PASSWORD: "hunter22" } });
    expect(set.stdout).toContain("wifi.password comes from $WISP_WIFI_PASSWORD (set here");
    expect(set.stdout + set.stderr).not.toContain("hunter22");
  });
  it("builds for --config, printing what it built for and each driver's bytes", async () => {
    const r = await wisp("build", "--config", "examples/garden.json", "--check");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^dist\/firmware\.js +[\d,]+ +[\d,]+ +\d+% +for examples\/garden\.json$/m);
    expect(r.stdout).toMatch(/^ {2}drivers\/ds18b20\.ts +[\d,]+/m);
    expect(r.stdout).toMatch(/^ {2}firmware\/node\/discovery\.ts +[\d,]+/m);
  });

  it("rejects an unknown build option with exit code 2", async () => {
    const r = await wisp("build", "--frob");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown option --frob");
  });
});
