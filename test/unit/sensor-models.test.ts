// The simulator's chip models and buses, and each driver reading its model over the emulated bus:
// readings within the datasheet's accuracy over the operating range, and the faults the scenarios
// inject (CRC errors, unplugged, bus held low) as the drivers see them.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Battery } from "../../drivers/battery.ts";
import { BH1750 } from "../../drivers/bh1750.ts";
import { DS18B20 } from "../../drivers/ds18b20.ts";
import { SCD4x } from "../../drivers/scd4x.ts";
import { SHT3x } from "../../drivers/sht3x.ts";
import { SHT4x } from "../../drivers/sht4x.ts";
import type { OneWireBus, SampleCallback } from "../../drivers/bus.ts";
import { Adc, millivolts, rawFor } from "../../host-sim/adc.ts";
import { BH1750Model } from "../../host-sim/devices/bh1750.ts";
import { DS18B20Model, romWithCrc, temperatureRegister } from "../../host-sim/devices/ds18b20.ts";
import { SCD4xModel } from "../../host-sim/devices/scd4x.ts";
import { SHT3xModel, SHT4xModel } from "../../host-sim/devices/sht.ts";
import { EmulatedI2C } from "../../host-sim/i2c.ts";
import { OneWireLines, oneWirePlugin, search } from "../../host-sim/onewire.ts";
import { Runtime } from "../../host-sim/runtime.ts";
import { batteryLine } from "../../tools/config.ts";
import { SENSOR_TYPES } from "../../tools/drivers.ts";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const now = () => Date.now();

function bus(): EmulatedI2C {
  const i2c = new EmulatedI2C();
  i2c.setup({ scl: 22, sda: 21 });
  return i2c;
}

function run<R>(sampler: { sample(cb: SampleCallback<R>): void }, ms = 1000): { err: Error | null; reading?: R } {
  const out = { err: null as Error | null, reading: undefined as R | undefined };
  sampler.sample((err, reading) => {
    out.err = err;
    out.reading = reading;
  });
  vi.advanceTimersByTime(ms);
  return out;
}

const grid: { temperature: number; humidity: number }[] = [];
for (const temperature of [-10, 0, 15, 21.5, 30, 45, 60]) for (const humidity of [10, 30, 45.5, 70, 90]) grid.push({ temperature, humidity });

describe("Sensirion models read by their drivers", () => {
  for (const [name, Model, Driver, accuracy] of [
    ["SHT3x", SHT3xModel, SHT3x, SENSOR_TYPES.sht3x.accuracy],
    ["SHT4x", SHT4xModel, SHT4x, SENSOR_TYPES.sht4x.accuracy],
  ] as const) {
    it(`${name}: every environment of the range within the typical accuracy, with seeded error and noise`, () => {
      for (let seed = 1; seed <= 10; seed++) {
        let env = grid[0]!;
        const i2c = bus();
        i2c.attach(0x44, new Model({ environment: () => env, now, noise: { seed } }));
        const sensor = new Driver({ i2c });
        for (env of grid) {
          const { err, reading } = run(sensor);
          expect(err).toBeNull();
          expect(Math.abs(reading!.temperature - env.temperature)).toBeLessThanOrEqual(accuracy.temperature.absolute);
          expect(Math.abs(reading!.humidity - env.humidity)).toBeLessThanOrEqual(accuracy.humidity.absolute);
        }
      }
    });
  }

  it("SHT3x model: NACKs while measuring and once the result is read (table 4, 4.3)", () => {
    const m = new SHT3xModel({ environment: () => ({ temperature: 20, humidity: 50 }), now });
    m.write(Uint8Array.of(0x24, 0x00));
    expect(typeof m.read(6)).toBe("symbol");
    vi.advanceTimersByTime(13);
    expect(m.read(6)).toHaveLength(6);
    expect(typeof m.read(6)).toBe("symbol");
  });

  it("SCD4x model and driver: CO2 within ±(50 ppm + 5 %), T ±0.8 °C, RH ±6 %RH, a new value every 5 s", () => {
    let env = { co2: 420, temperature: 21, humidity: 45 };
    const i2c = bus();
    const model = new SCD4xModel({ environment: () => env, now, noise: { seed: 3 } });
    i2c.attach(0x62, model);
    const sensor = new SCD4x({ i2c });
    for (const co2 of [400, 800, 1200, 2000, 5000]) {
      env = { co2, temperature: 15 + co2 / 400, humidity: 30 + co2 / 200 };
      const { err, reading } = run(sensor, 12_000);
      expect(err).toBeNull();
      expect(Math.abs(reading!.co2 - co2)).toBeLessThanOrEqual(50 + 0.05 * co2);
      expect(Math.abs(reading!.temperature - env.temperature)).toBeLessThanOrEqual(0.8);
      expect(Math.abs(reading!.humidity - env.humidity)).toBeLessThanOrEqual(6);
    }
    expect(model.measuring).toBe(true);
  });

  it("SCD4x driver restarts a sensor that kept measuring through an ESP32 reset (stop, 500 ms, start)", () => {
    const i2c = bus();
    const model = new SCD4xModel({ environment: () => ({ co2: 600, temperature: 20, humidity: 40 }), now });
    i2c.attach(0x62, model);
    run(new SCD4x({ i2c }), 6000);
    expect(model.measuring).toBe(true);
    const again = new SCD4x({ i2c }); // the node rebooted, the sensor did not
    expect(run(again, 12_000).reading?.co2).toBe(600);
    expect(model.commands.filter((c) => c === 0x21b1)).toHaveLength(2);
  });

  it("CRC errors injected on the bus are caught; the next clean answer reads again", () => {
    const i2c = bus();
    const model = new SHT3xModel({ environment: () => ({ temperature: 20, humidity: 50 }), now });
    i2c.attach(0x44, model);
    const sensor = new SHT3x({ i2c });
    model.corrupt = true;
    expect(run(sensor).err?.message).toBe("SHT3x at 0x44: CRC mismatch in word 0");
    model.corrupt = false;
    expect(run(sensor).reading).toEqual({ temperature: 20, humidity: 50 });
  });

  it("a stuck I2C bus times out every transfer as ESP32's driver reports it", () => {
    const i2c = bus();
    i2c.attach(0x44, new SHT3xModel({ environment: () => ({ temperature: 20, humidity: 50 }), now }));
    const sensor = new SHT3x({ i2c });
    i2c.stuck = true;
    expect(run(sensor).err?.message).toBe("SHT3x at 0x44: jshI2CWrite:, Operation timeout because the bus is busy");
    i2c.stuck = false;
    expect(run(sensor).err).toBeNull();
  });
});

describe("BH1750 model read by its driver", () => {
  it("illuminance within ±20 % (sensitivity 0.96..1.44 of 1.2) from 1 to 50000 lx", () => {
    for (let seed = 1; seed <= 10; seed++) {
      let light = 1;
      const i2c = bus();
      i2c.attach(0x23, new BH1750Model({ environment: () => ({ light }), now, noise: { seed } }));
      const sensor = new BH1750({ i2c });
      for (light of [1, 10, 100, 1000, 10000, 50000]) {
        const { reading } = run(sensor);
        expect(Math.abs(reading!.illuminance - light)).toBeLessThanOrEqual(1 + 0.2 * light);
      }
    }
  });

  it("measures only when powered on, and powers down after a one-time measurement", () => {
    const m = new BH1750Model({ environment: () => ({ light: 100 }), now });
    m.write(Uint8Array.of(0x20));
    vi.advanceTimersByTime(200);
    expect(m.data).toBe(0);
    m.write(Uint8Array.of(0x01, 0x20));
    vi.advanceTimersByTime(120);
    expect([...m.read(2)]).toEqual([0, 120]);
    expect(m.powered).toBe(false);
  });
});

/** A device runtime with OneWire over `lines`, for Espruino's API as firmware sees it. */
function oneWireDevice(lines: OneWireLines) {
  const rt = new Runtime({ plugins: [oneWirePlugin(lines)] });
  return rt;
}

describe("emulated OneWire (Espruino's API) with DS18B20 models", () => {
  const env = { temperature: 21.3 };
  const roms = [romWithCrc("ff4a1d931603"), romWithCrc("ff9c2e931604"), romWithCrc("0a0000000001")];

  it("search() finds every device on the pin, ROMs as 16 hex digits, as Espruino lists them", () => {
    const lines = new OneWireLines(now);
    for (const rom of roms) lines.line(4).attach(new DS18B20Model({ rom, environment: () => env, now }));
    expect(search(lines.line(4)).sort()).toEqual([...roms].sort());
    const rt = oneWireDevice(lines);
    try {
      expect(rt.run(`new OneWire(4).search().length`)).toBe(3);
      expect(rt.run(`new OneWire(5).search().length`)).toBe(0);
      expect(rt.run(`new OneWire(5).reset()`)).toBe(false);
      expect(() => rt.run(`new OneWire(4).select("28ff")`)).toThrow(/Invalid OneWire device address/);
    } finally {
      rt.dispose();
    }
  });

  it("two DS18B20 on one wire: each reads its own temperature; one removed, the other still reads", () => {
    const lines = new OneWireLines(now);
    const line = lines.line(4);
    const a = new DS18B20Model({ rom: roms[0]!, environment: () => ({ temperature: 18.25 }), now });
    const b = new DS18B20Model({ rom: roms[1]!, environment: () => ({ temperature: -4.5 }), now });
    line.attach(a);
    line.attach(b);
    const rt = oneWireDevice(lines);
    try {
      const ow = rt.run("new OneWire(4)") as OneWireBus;
      const sa = new DS18B20({ oneWire: ow, rom: roms[0] });
      const sb = new DS18B20({ oneWire: ow, rom: roms[1], resolution: 10 });
      expect(run(sa).reading).toEqual({ temperature: 18.25 });
      expect(run(sb).reading).toEqual({ temperature: -4.5 });
      line.detach(a);
      expect(run(sa).err?.message).toBe(`DS18B20 ${roms[0]}: no answer (gone from the wire?)`);
      expect(run(sb).reading).toEqual({ temperature: -4.5 });
      b.corrupt = true;
      expect(run(sb).err?.message).toBe(`DS18B20 ${roms[1]}: CRC mismatch`);
      expect(a.eepromWrites + b.eepromWrites).toBe(0); // resolution set in the scratchpad only
    } finally {
      rt.dispose();
    }
  });

  it("within ±0.5 °C from -10 to +85 °C with seeded error, at each resolution's step", () => {
    for (let seed = 1; seed <= 5; seed++) {
      let t = -10;
      const lines = new OneWireLines(now);
      lines.line(4).attach(new DS18B20Model({ rom: roms[0]!, environment: () => ({ temperature: t }), now, noise: { seed } }));
      const rt = oneWireDevice(lines);
      try {
        for (const bits of [9, 12]) {
          const sensor = new DS18B20({ oneWire: rt.run("new OneWire(4)") as OneWireBus, resolution: bits });
          for (t of [-10, 0, 21.3, 37, 60, 84.4]) {
            const { reading, err } = run(sensor);
            expect(err).toBeNull();
            expect(Math.abs(reading!.temperature - t)).toBeLessThanOrEqual(0.5 + 0.5 ** (bits - 8));
          }
        }
      } finally {
        rt.dispose();
      }
    }
    expect(temperatureRegister(25.0625, 12)).toBe(0x0191);
    expect(temperatureRegister(-25.0625, 12)).toBe(0xfe6f);
  });

  it("parasite power: the conversion completes under the strong pull-up, and not without it", () => {
    const lines = new OneWireLines(now);
    const line = lines.line(4);
    const model = new DS18B20Model({ rom: roms[0]!, environment: () => ({ temperature: 30 }), now, parasite: true, line });
    line.attach(model);
    const rt = oneWireDevice(lines);
    try {
      const sensor = new DS18B20({ oneWire: rt.run("new OneWire(4)") as OneWireBus });
      expect(sensor.parasite).toBe(true);
      expect(run(sensor).reading).toEqual({ temperature: 30 });
      // a driver that releases the line would read the power-on value: the model fails the conversion
      rt.run(`var w = new OneWire(4); w.select("${roms[0]}"); w.write(0x44);`);
      vi.advanceTimersByTime(800);
      rt.run("new OneWire(4).reset()"); // the model settles at the next slot
      expect(model.failedConversions).toBe(1);
      expect(model.conversions).toBe(1);
    } finally {
      rt.dispose();
    }
  });

  it("a wire held low: every slot reads 0, the driver says so", () => {
    const lines = new OneWireLines(now);
    lines.line(4).attach(new DS18B20Model({ rom: roms[0]!, environment: () => env, now }));
    const rt = oneWireDevice(lines);
    try {
      const sensor = new DS18B20({ oneWire: rt.run("new OneWire(4)") as OneWireBus, rom: roms[0] });
      lines.line(4).stuck = true;
      expect(run(sensor).err?.message).toBe(`DS18B20 ${roms[0]}: scratchpad reads 0x0 as configuration (wire held low?)`);
      expect(rt.run("new OneWire(4).search().length")).toBe(0);
    } finally {
      rt.dispose();
    }
  });
});

describe("ESP32 ADC1 model and the battery driver", () => {
  it("follows ESP-IDF's curve: linear to raw 2880, flattening to ~3.1 V, 0 below 142 mV; NaN off ADC1", () => {
    expect(millivolts(0, 1100)).toBeCloseTo(142, 5);
    expect(millivolts(2000, 1100)).toBeCloseTo((2000 * ((1100 * 196602) / 4096)) / 65536 + 142, 5);
    expect(millivolts(4095, 1100)).toBeGreaterThan(3100);
    expect(millivolts(4095, 1100)).toBeLessThan(3150);
    for (const mv of [200, 1000, 1900, 2400, 2900]) expect(Math.abs(millivolts(rawFor(mv, 1100), 1100) - mv)).toBeLessThan(2);
    expect(new Adc({ seed: 1 }).read(4)).toBeNaN();
  });

  it("uncalibrated: within ±10 % on any chip; with a two-point calibration from that chip: within ±1 %", () => {
    for (let seed = 1; seed <= 20; seed++) {
      let v = 3.3;
      const adc = new Adc({ seed });
      adc.attach(35, () => v / 2);
      const read = (pin: number) => adc.read(pin);
      const typical = batteryLine({ divider: 2 });
      const plain = new Battery({ pin: 35, analogRead: read, scale: typical.scale, offset: typical.offset, curve: [[3, 0], [4.2, 100]] });
      const published = (volts: number) => ((v = volts), run(plain).reading!.voltage);
      const p1 = published(3.4);
      const p2 = published(4.1);
      const cal = batteryLine({ divider: 2, calibration: [[p1, 3.4], [p2, 4.1]] });
      const calibrated = new Battery({ pin: 35, analogRead: read, scale: cal.scale, offset: cal.offset, curve: [[3, 0], [4.2, 100]] });
      for (v of [3.3, 3.5, 3.7, 3.9, 4.2]) {
        expect(Math.abs(run(plain).reading!.voltage - v) / v, `vref ${adc.vref}`).toBeLessThanOrEqual(0.1);
        expect(Math.abs(run(calibrated).reading!.voltage - v) / v, `vref ${adc.vref}`).toBeLessThanOrEqual(0.01);
      }
    }
  });
});
