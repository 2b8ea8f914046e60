// Every driver against its simulated chip through the built firmware: dist's build for
// examples/garden.json (every sensor type, two DS18B20 on one wire), on simulated nodes on a fake
// clock. Readings must stay within each sensor's stated accuracy of the scenario over hours, and a
// fault on one sensor must be reported for that sensor only while the others go on.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { SCD4xModel } from "../../host-sim/devices/scd4x.ts";
import type { I2CDevice } from "../../host-sim/i2c.ts";
import { SimNode } from "../../host-sim/node.ts";
import { createSimulation, type Simulation } from "../../host-sim/sim.ts";
import { AccessPoint } from "../../host-sim/wifi.ts";
import { TurnClock } from "../helpers/turn-clock.ts";
import { environmentAt, parseScenario } from "../../host-sim/scenario.ts";
import { build } from "../../tools/build.ts";
import { loadFlashConfig, renderDeviceConfig } from "../../tools/config.ts";
import { QUANTITIES, SENSOR_TYPES } from "../../tools/drivers.ts";
import { PROJECT_ROOT } from "../../tools/paths.ts";

const CONFIG_FILE = `${PROJECT_ROOT}/examples/garden.json`;
let firmware = "";
let config: any;

beforeAll(async () => {
  const result = await build({ config: CONFIG_FILE, write: false, log: () => {} });
  expect(result.ok).toBe(true);
  firmware = result.reports.find((r) => r.target)!.bundle!.code;
  config = { ...renderDeviceConfig(loadFlashConfig(CONFIG_FILE), { wifi: { ssid: "x" }, mqttUrl: "mqtt://127.0.0.1:1883" }), interval: 60 };
});

let sim: Simulation | undefined;
afterEach(async () => {
  await sim?.stop();
  sim = undefined;
});

/** Two hours: a cool morning warming up, light rising, CO2 building, the battery running down. */
const scenario = parseScenario({
  name: "hours",
  environment: [
    { at: 0, temperature: 12, humidity: 80, pressure: 1002, light: 20, co2: 420, battery: 4.15 },
    { at: 3600, temperature: 24, humidity: 45, pressure: 1009, light: 30000, co2: 1400, battery: 3.9 },
    { at: 7200, temperature: 31, humidity: 30, pressure: 1011, light: 4000, co2: 2000, battery: 3.55 },
  ],
  faults: [],
});

function readings(s: Simulation, name: string) {
  const prefix = s.nodes[0]!.prefix;
  return s.traffic.filter((m) => m.topic === `${prefix}/${name}`).map((m) => ({ at: m.at, ...JSON.parse(m.payload) }));
}

describe("every sensor of examples/garden.json, through the built firmware", () => {
  it("reads the scenario within each datasheet's accuracy for two hours", async () => {
    sim = await createSimulation({ nodes: 1, clock: "fake", firmware, config, scenario, trafficLength: 10_000 });
    await sim.advance(2 * 3_600_000);
    const node = sim.nodes[0]!;
    for (const sensor of config.sensors) {
      const got = readings(sim, sensor.name);
      expect(got.length, sensor.name).toBeGreaterThanOrEqual(110); // one a minute, from the first minute
      const type = SENSOR_TYPES[sensor.type as keyof typeof SENSOR_TYPES];
      for (const r of got) {
        // the chip measured up to a few seconds before the broker saw it (the SCD4x up to 5 s)
        const env = environmentAt(scenario, (r.at - 3000) / 1000) as unknown as Record<string, number>;
        for (const q of type.quantities) {
          const limit = type.accuracy[q as keyof typeof type.accuracy] as { absolute: number; relative?: number } | undefined;
          if (!limit) continue;
          const truth = q === "voltage" ? env.battery! : q === "illuminance" ? env.light! : env[q]!;
          // plus the reading's own resolution, and what the world changed in those seconds
          const slack = 10 ** -QUANTITIES[q].decimals + (q === "temperature" && sensor.type === "ds18b20" ? 0.125 : 0) + (q === "co2" ? 5 : 0);
          expect(Math.abs(r[q] - truth), `${sensor.name}.${q} at ${r.at} ms: ${r[q]} vs ${truth}`).toBeLessThanOrEqual(limit.absolute + (limit.relative ?? 0) * truth + slack);
        }
      }
    }
    expect(Object.values(node.sensorStatus)).toEqual([]); // nothing ever failed
    const levels = readings(sim, "battery").map((r) => r.level);
    expect(levels[0]).toBeGreaterThan(levels[levels.length - 1]); // running down
  }, 60_000);

  it("two DS18B20 on one wire: one unplugged and the other getting CRC errors are each reported, and both recover", async () => {
    sim = await createSimulation({
      nodes: 1,
      clock: "fake",
      firmware,
      config,
      scenario: {
        environment: [{ at: 0, temperature: 18, humidity: 50, pressure: 1010 }],
        faults: [
          { at: 150, fault: "sensor-unplug", for: 300, sensor: "pond" },
          { at: 330, fault: "sensor-crc", for: 200, sensor: "soil" },
        ],
      },
    });
    const node = sim.nodes[0]!;
    const prefix = () => node.prefix;
    // {"error": "...", "ts": ...} or {"ok": true, "ts": ...}, with the time the sensor failed or came back
    const status = (name: string) =>
      sim!.traffic
        .filter((m) => m.topic === `${prefix()}/status/${name}`)
        .map((m) => JSON.parse(m.payload) as { ok?: true; error?: string; ts: number })
        .map((p) => {
          expect(p.ts).toBeGreaterThan(sim!.startMs);
          return p.ok ? "ok" : p.error;
        });
    await sim.advance(300_000);
    const pondRom = config.sensors.find((s: any) => s.name === "pond").rom;
    expect(status("pond")).toEqual([`DS18B20 ${pondRom}: no answer (gone from the wire?)`]);
    expect(status("soil")).toEqual([]);
    const soilBefore = readings(sim, "soil").length;
    await sim.advance(200_000); // soil fails its CRC from 330 s to 530 s
    expect(status("soil")).toEqual([`DS18B20 ${config.sensors.find((s: any) => s.name === "soil").rom}: CRC mismatch`]);
    expect(readings(sim, "soil").length).toBeLessThanOrEqual(soilBefore + 1);
    await sim.advance(200_000);
    expect(status("pond").at(-1)).toBe("ok");
    expect(status("soil").at(-1)).toBe("ok");
    // the others never stopped: one reading a minute from each through it all
    for (const name of ["air", "greenhouse", "light", "battery"]) expect(readings(sim, name).length, name).toBeGreaterThanOrEqual(11);
    expect(readings(sim, "pond").filter((r) => r.at > 160_000 && r.at < 450_000)).toEqual([]);
  }, 30_000);

  it("an I2C bus held low fails every I2C sensor, not the DS18B20s or the battery, and all come back", async () => {
    sim = await createSimulation({
      nodes: 1,
      clock: "fake",
      firmware,
      config,
      scenario: { environment: [{ at: 0, temperature: 18, humidity: 50, pressure: 1010 }], faults: [{ at: 100, fault: "bus-stuck", for: 130, sensor: "air" }] },
    });
    const node = sim.nodes[0]!;
    await sim.advance(200_000);
    const i2cSensors = config.sensors.filter((s: any) => SENSOR_TYPES[s.type as keyof typeof SENSOR_TYPES].bus === "i2c").map((s: any) => s.name);
    for (const name of i2cSensors) expect(node.sensorStatus[name], name).toMatch(/Operation timeout because the bus is busy/);
    for (const name of ["soil", "pond", "battery"]) expect(node.sensorStatus[name], name).toBeUndefined();
    await sim.advance(150_000);
    for (const name of i2cSensors) expect(node.sensorStatus[name], name).toBe("ok");
  }, 30_000);

  // New-user finding: with the SCD4x alone on I2C1 every reading came; with a BME280 or a BH1750
  // beside it, `jshI2CRead: slave doesn't ACK the transfer` every 20-60 s. The chip model follows the
  // datasheet (3.3: the read header is acknowledged once the command's execution time has passed)
  // and the driver waits that time; the simulator's timers did not: Node times a timer from the start
  // of its loop turn, so the SCD4x's 1 ms wait, set after the other chips' transfers in the same
  // callback, could fire before the node's clock had moved 1 ms. TurnClock keeps time as Node does;
  // here every transfer to the BME280 and the BH1750 takes 0.3 ms, as at 100 kHz.
  it("the SCD4x reads every time beside a BME280 and a BH1750, on a host whose timers count from the loop's turn", async () => {
    const start = Date.UTC(2025, 5, 1);
    const clock = new TurnClock(start);
    const lines: string[] = [];
    const shared = { ...config, interval: 10, sensors: config.sensors.filter((c: any) => ["air", "co2", "light"].includes(c.name)) };
    // no broker: the node samples all the same, and logs every sensor error
    const node = new SimNode({ index: 0, clock, ap: new AccessPoint(), brokerUrl: "mqtt://127.0.0.1:1", firmware, config: shared, log: (line) => lines.push(line) });
    try {
      node.powerOn();
      await clock.runUntil(start + 1000); // booted, the chips on the bus; sampling starts once Wi-Fi is up
      for (const name of ["air", "light"]) {
        const chip = node.sensors.get(name)!.model as I2CDevice;
        const write = chip.write.bind(chip);
        const read = chip.read.bind(chip);
        chip.write = (bytes) => (clock.spend(0.3), write(bytes));
        chip.read = (n) => (clock.spend(0.3), read(n));
      }
      await clock.runUntil(start + 300_000);
      expect(lines.filter((l) => /^wisp: (co2|air|light):/.test(l))).toEqual([]);
      const scd4x = node.sensors.get("co2")!.model as SCD4xModel;
      expect(scd4x.commands.filter((c) => c === 0xec05).length).toBeGreaterThanOrEqual(28); // read_measurement, every 10 s
    } finally {
      node.dispose();
    }
  }, 30_000);
});
