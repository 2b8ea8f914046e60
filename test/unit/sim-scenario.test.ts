import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "../../tools/build.ts";
import { environmentAt, environmentSource, loadScenario, parseScenario, ScenarioError, validateScenario } from "../../host-sim/scenario.ts";

const frames = [
  { at: 0, temperature: 10, humidity: 50, pressure: 1000 },
  { at: 100, temperature: 20 },
  { at: 200, temperature: 20, humidity: 70, pressure: 1010 },
];

describe("scenario files", () => {
  it("report every bad entry by its path", () => {
    const problems = validateScenario({
      environment: [{ at: 0, temperature: 20, humidity: 150 }, { at: 0, temprature: 1 }],
      faults: [{ at: 5, fault: "meteor", for: 1 }, { at: -1, fault: "wifi-drop", for: 0, node: 2 }, { at: 1, fault: "power-cut", for: 3, node: 1.5 }, { at: 2, fault: "bridge-down", for: 60, node: 0 }],
      speed: 2,
    });
    expect(problems).toEqual([
      "speed: unknown field (expected one of name, description, environment, repeat, noise, faults, $schema)",
      "environment[0].humidity: must be a number from 0 to 100",
      "environment[0].pressure: the first keyframe must give temperature, humidity and pressure",
      "environment[1].temprature: unknown field (expected at, temperature, humidity, pressure, light, co2, battery)",
      "environment[1].at: must be later than the previous keyframe (0)",
      "faults[0].fault: must be one of wifi-drop, broker-restart, broker-unreachable, sntp-down, sensor-unplug, sensor-crc, bus-stuck, power-cut, storage-full, bridge-down",
      "faults[1].at: must be a number of seconds >= 0",
      "faults[1].for: must be a duration in seconds > 0",
      'faults[1].node: wifi-drop affects every node; remove "node"',
      "faults[2].node: must be a node index >= 0",
      'faults[3].node: bridge-down affects every node; remove "node"',
    ]);
    expect(() => parseScenario({ environment: [] }, "x.json")).toThrow(ScenarioError);
    expect(() => parseScenario({ environment: [] }, "x.json")).toThrow(/x\.json: invalid scenario:\n {2}environment: must be a non-empty list/);
  });

  it("take light, CO2 and battery (with their ranges), and sensor faults naming a sensor", () => {
    expect(
      validateScenario({
        environment: [{ at: 0, temperature: 20, humidity: 50, pressure: 1000, light: -1, co2: 50000, battery: 4.1 }],
        faults: [
          { at: 1, fault: "sensor-crc", for: 5, sensor: "soil" },
          { at: 2, fault: "bus-stuck", for: 5, sensor: "air", node: 0 },
          { at: 3, fault: "power-cut", for: 5, sensor: "air" },
          { at: 4, fault: "sensor-unplug", for: 5, sensor: "a b" },
        ],
      }),
    ).toEqual([
      "environment[0].light: must be a number from 0 to 65535",
      "environment[0].co2: must be a number from 0 to 40000",
      'faults[2].sensor: only the sensor faults (sensor-unplug, sensor-crc, bus-stuck) take "sensor"',
      "faults[3].sensor: must be a sensor name from the config",
    ]);
    // without them, light, CO2 and battery take their defaults
    expect(environmentAt(parseScenario({ environment: frames }), 0)).toMatchObject({ light: 250, co2: 450, battery: 3.9 });
  });

  it("shipped in scenarios/ are valid", () => {
    const dir = join(PROJECT_ROOT, "scenarios");
    const files = readdirSync(dir).filter((f) => f.endsWith(".json"));
    expect(files).toEqual(expect.arrayContaining(["default.json", "faults.json"]));
    for (const f of files) expect(() => loadScenario(join(dir, f))).not.toThrow();
    expect(loadScenario(join(dir, "faults.json")).faults.map((f) => f.fault)).toEqual(["wifi-drop", "sensor-unplug", "broker-restart", "power-cut"]);
  });
});

describe("the environment over time", () => {
  const s = parseScenario({ environment: frames });

  it("holds keyframe values, eases smoothly between them, carries a missing quantity, holds after the end", () => {
    expect(environmentAt(s, 0)).toEqual({ temperature: 10, humidity: 50, pressure: 1000, light: 250, co2: 450, battery: 3.9 });
    expect(environmentAt(s, 50).temperature).toBeCloseTo(15, 10); // cosine ease: the midpoint is the mean
    expect(environmentAt(s, 25).temperature).toBeCloseTo(10 + 10 * (1 - Math.cos(Math.PI / 4)) / 2, 10);
    expect(environmentAt(s, 100)).toMatchObject({ temperature: 20, humidity: 50, pressure: 1000 });
    expect(environmentAt(s, 150).humidity).toBeCloseTo(60, 10);
    expect(environmentAt(s, 5000)).toMatchObject({ temperature: 20, humidity: 70, pressure: 1010 });
  });

  it("repeats with the given period, wrapping back to the first keyframe", () => {
    const r = parseScenario({ environment: frames, repeat: 400 });
    expect(environmentAt(r, 400)).toEqual(environmentAt(r, 0));
    expect(environmentAt(r, 300).temperature).toBeCloseTo(15, 10); // halfway from 20 (at 200) back to 10 (at 400)
    expect(environmentAt(r, 450).temperature).toBeCloseTo(environmentAt(r, 50).temperature, 10);
  });

  it("adds seeded noise per node: repeatable for a seed, different between seeds", () => {
    const noisy = parseScenario({ environment: frames, noise: { temperature: 0.5 } });
    let now = 0;
    const a = environmentSource(noisy, 0, () => now, 1);
    const b = environmentSource(noisy, 0, () => now, 1);
    const c = environmentSource(noisy, 0, () => now, 2);
    const take = (f: () => { temperature: number }) => Array.from({ length: 200 }, () => f().temperature);
    const sa = take(a);
    expect(sa).toEqual(take(b));
    expect(sa).not.toEqual(take(c));
    const mean = sa.reduce((x, y) => x + y, 0) / sa.length;
    const sd = Math.sqrt(sa.reduce((x, y) => x + (y - mean) ** 2, 0) / sa.length);
    expect(mean).toBeCloseTo(10, 0);
    expect(sd).toBeGreaterThan(0.35);
    expect(sd).toBeLessThan(0.65);
    now = 100_000; // the clock drives the scenario: 100 s in
    expect(a().humidity).toBe(50);
  });
});
