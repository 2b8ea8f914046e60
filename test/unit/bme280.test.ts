import FakeTimers from "@sinonjs/fake-timers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { BME280, type BME280Reading } from "../../drivers/bme280.ts";
import { BME280Model, CALIBRATIONS, compensateH, compensateP, compensateT, invert, type Environment } from "../../host-sim/devices/bme280.ts";
import { EmulatedI2C, installI2C, type I2CDevice } from "../../host-sim/i2c.ts";
import { Runtime } from "../../host-sim/runtime.ts";
import { bundle } from "../../tools/build.ts";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** Run one sample() to completion on the fake clock; returns what the callback got. */
function sampleNow(sensor: BME280): { calls: number; err: Error | null; reading?: BME280Reading } {
  const result = { calls: 0, err: null as Error | null, reading: undefined as BME280Reading | undefined };
  sensor.sample((err, reading) => {
    result.calls++;
    result.err = err;
    result.reading = reading;
  });
  vi.advanceTimersByTime(100);
  return result;
}

function bus(): EmulatedI2C {
  const i2c = new EmulatedI2C();
  i2c.setup({ scl: 22, sda: 21, bitrate: 400000 });
  return i2c;
}

/**
 * A plain register file, independent of host-sim/devices/bme280.ts: a 1-byte write sets the
 * pointer, (register, value) pairs write, reads auto-increment. It records register writes.
 */
function registerFile(contents: Record<number, number[]>) {
  const regs = new Uint8Array(256);
  for (const [start, bytes] of Object.entries(contents)) regs.set(bytes, Number(start));
  const written: [number, number][] = [];
  let pointer = 0;
  const device: I2CDevice = {
    write(bytes) {
      pointer = bytes[0];
      for (let i = 0; i + 1 < bytes.length; i += 2) {
        written.push([bytes[i], bytes[i + 1]]);
        regs[bytes[i]] = bytes[i + 1];
      }
    },
    read(n) {
      const out = regs.slice(pointer, pointer + n);
      pointer += n;
      return out;
    },
  };
  return { device, regs, written };
}

// Trimming bytes 0x88..0x9F of the BMP280 datasheet's worked example (section 3.12):
// dig_T1=27504 dig_T2=26435 dig_T3=-1000 dig_P1=36477 dig_P2=-10685 dig_P3=3024
// dig_P4=2855 dig_P5=140 dig_P6=-7 dig_P7=15500 dig_P8=-14600 dig_P9=6000, little endian.
const DATASHEET_TP = [
  0x70, 0x6b, 0x43, 0x67, 0x18, 0xfc, 0x7d, 0x8e, 0x43, 0xd6, 0xd0, 0x0b,
  0x27, 0x0b, 0x8c, 0x00, 0xf9, 0xff, 0x8c, 0x3c, 0xf8, 0xc6, 0x70, 0x17,
];
// adc_P = 415148 = 0x655AC, adc_T = 519888 = 0x7EED0 (the same example), adc_H = 30000 = 0x7530.
const EXAMPLE_DATA = [0x65, 0x5a, 0xc0, 0x7e, 0xed, 0x00, 0x75, 0x30];

function exampleChip(humidityTrim: number[]) {
  return registerFile({
    0x88: [...DATASHEET_TP, 0x00, 75], // 0xA0 unused, 0xA1 dig_H1 = 75
    0xd0: [0x60],
    0xe1: humidityTrim,
    0xf7: EXAMPLE_DATA,
  });
}

describe("BME280 compensation (datasheet 8.1), checked against values worked outside the code", () => {
  it("reproduces the datasheet example: 25.08 °C, 100653.27 Pa", () => {
    // dig_H2=362 (0x016A), dig_H3=0, dig_H4=333 (0x14D), dig_H5=50 (0x032), dig_H6=30:
    // 0xE4 = H4[11:4] = 0x14, 0xE5 = H5[3:0]<<4 | H4[3:0] = 0x2D, 0xE6 = H5[11:4] = 0x03.
    const chip = exampleChip([0x6a, 0x01, 0x00, 0x14, 0x2d, 0x03, 0x1e]);
    const i2c = bus();
    i2c.attach(0x76, chip.device);
    const { err, reading } = sampleNow(new BME280({ i2c }));
    expect(err).toBeNull();
    // Datasheet: T = 25.08 °C, p = 100653.27 Pa (double precision) -> 1006.53 hPa.
    expect(reading?.temperature).toBe(25.08);
    expect(reading?.pressure).toBe(1006.53);
    // Humidity by hand, BME280_compensate_H_double with t_fine = 128422 (from the example):
    //   var_H  = 128422 - 76800                          = 51622
    //   offset = 333*64 + 50/16384*51622                 = 21469.5378
    //   gain   = 362/65536 * (1 + 30/67108864*51622 * (1 + 0/67108864*51622)) = 0.00565115
    //   var_H  = (30000 - 21469.5378) * 0.00565115       = 48.20693
    //   var_H  = 48.20693 * (1 - 75*48.20693/524288)     = 47.8745 %RH -> 47.9
    expect(reading?.humidity).toBe(47.9);
  });

  it("unpacks signed dig_H5 and dig_H6 (0xE5/0xE6 nibbles, 0xE7 signed char)", () => {
    // dig_H3=6, dig_H5=-30 (12-bit 0xFE2: 0xE6 = 0xFE, 0xE5 high nibble 0x2), dig_H6=-5 (0xFB):
    //   offset = 333*64 + (-30)/16384*51622                 = 21217.4773
    //   gain   = 362/65536 * (1 + (-5)/67108864*51622 * (1 + 6/67108864*51622)) = 0.00550234
    //   var_H  = (30000 - 21217.4773) * 0.00550234          = 48.32441
    //   var_H  = 48.32441 * (1 - 75*48.32441/524288)        = 47.9904 %RH -> 48.0
    const chip = exampleChip([0x6a, 0x01, 0x06, 0x14, 0x2d, 0xfe, 0xfb]);
    const i2c = bus();
    i2c.attach(0x76, chip.device);
    const { reading } = sampleNow(new BME280({ i2c }));
    expect(reading?.humidity).toBe(48);
    expect(reading?.temperature).toBe(25.08);
  });

  it("puts the chip to sleep before config, and writes ctrl_hum before forced-mode ctrl_meas on every sample", () => {
    const chip = exampleChip([0x6a, 0x01, 0x00, 0x14, 0x2d, 0x03, 0x1e]);
    const i2c = bus();
    i2c.attach(0x76, chip.device);
    const sensor = new BME280({ i2c });
    expect(chip.written).toEqual([
      [0xf4, 0x24], // osrs_t x1, osrs_p x1, sleep
      [0xf5, 0x00], // no standby, filter off
    ]);
    chip.written.length = 0;
    sampleNow(sensor);
    sampleNow(sensor);
    const trigger = [
      [0xf2, 0x01], // osrs_h x1
      [0xf4, 0x25], // osrs_t x1, osrs_p x1, forced
    ];
    expect(chip.written).toEqual([...trigger, ...trigger]);
  });
});

describe("BME280 device model (register level)", () => {
  const room = () => ({ temperature: 20, humidity: 50, pressure: 1000 });
  const readReg = (m: BME280Model, reg: number, n = 1) => (m.write(Uint8Array.of(reg)), [...m.read(n)]);
  const writeReg = (m: BME280Model, reg: number, value: number) => m.write(Uint8Array.of(reg, value));

  it("computes the datasheet example with its own formulas, and inverts them", () => {
    const c = CALIBRATIONS.datasheet;
    const t = compensateT(c, 519888);
    expect(t.tFine).toBe(128422);
    expect(t.temperature).toBeCloseTo(25.08, 2);
    expect(compensateP(c, t.tFine, 415148)).toBeCloseTo(100653.26, 1);
    expect(compensateH(c, t.tFine, 30000)).toBeCloseTo(47.8745, 3);
    expect(invert(c, { temperature: t.temperature, pressure: compensateP(c, t.tFine, 415148) / 100, humidity: 47.8745 })).toEqual({
      adcT: 519888,
      adcP: 415148,
      adcH: 30000,
    });
  });

  it("answers chip id 0x60 and exposes its trimming in the datasheet's byte layout", () => {
    const m = new BME280Model({ environment: room });
    expect(readReg(m, 0xd0)).toEqual([0x60]);
    expect(readReg(m, 0x88, 6)).toEqual([0x70, 0x6b, 0x43, 0x67, 0x18, 0xfc]);
    expect(readReg(m, 0xe1, 7)).toEqual([0x6a, 0x01, 0x00, 0x14, 0x2d, 0x03, 0x1e]);
  });

  it("measures on a forced-mode write, keeps status.measuring for the measurement time, then sleeps", () => {
    let now = 0;
    const m = new BME280Model({ environment: room, now: () => now });
    expect(readReg(m, 0xf7, 8)).toEqual([0x80, 0, 0, 0x80, 0, 0, 0x80, 0]); // reset values: skipped
    writeReg(m, 0xf2, 0x01);
    writeReg(m, 0xf4, 0x25);
    expect(readReg(m, 0xf3)).toEqual([0x08]);
    now = 7.9; // typical time at x1/x1/x1 (9.1): 1 + 2 + 2.5 + 2.5 = 8 ms
    expect(readReg(m, 0xf3)).toEqual([0x08]);
    expect(readReg(m, 0xf7, 8)[0]).toBe(0x80); // data not yet updated
    now = 8;
    expect(readReg(m, 0xf3)).toEqual([0x00]);
    expect(readReg(m, 0xf4)).toEqual([0x24]); // back to sleep
    expect(m.lastRaw).toEqual(invert(CALIBRATIONS.datasheet, room()));
  });

  it("applies ctrl_hum only at the next ctrl_meas write (datasheet 5.4.3)", () => {
    const m = new BME280Model({ environment: room });
    writeReg(m, 0xf4, 0x25); // ctrl_hum still 0: humidity skipped
    expect(m.lastRaw.adcH).toBe(0x8000);
    writeReg(m, 0xf2, 0x01);
    expect(m.measurements).toBe(1);
    writeReg(m, 0xf4, 0x25);
    expect(m.lastRaw.adcH).toBe(invert(CALIBRATIONS.datasheet, room()).adcH);
  });

  it("soft-resets on 0xB6 to 0xE0: control registers cleared, im_update for 2 ms", () => {
    let now = 100;
    const m = new BME280Model({ environment: room, now: () => now });
    writeReg(m, 0xf2, 0x01);
    writeReg(m, 0xf5, 0xa0);
    writeReg(m, 0xe0, 0x12); // any other value does nothing
    expect(readReg(m, 0xf5)).toEqual([0xa0]);
    writeReg(m, 0xe0, 0xb6);
    expect(readReg(m, 0xf2, 4)).toEqual([0, 0x01, 0, 0]);
    now = 102;
    expect(readReg(m, 0xf3)).toEqual([0]);
  });

  it("answers as a BMP280 when told to: chip id 0x58, no humidity", () => {
    const m = new BME280Model({ environment: room, chipId: 0x58 });
    expect(readReg(m, 0xd0)).toEqual([0x58]);
    writeReg(m, 0xf2, 0x01);
    writeReg(m, 0xf4, 0x25);
    expect(m.lastRaw.adcH).toBe(0x8000);
  });
});

describe("BME280 driver + device model over the emulated bus", () => {
  const grid: Environment[] = [];
  for (const temperature of [-40, -10, 0, 21.5, 40, 65, 85])
    for (const humidity of [0, 10, 45.5, 80, 100])
      for (const pressure of [300, 700, 1013.25, 1100]) grid.push({ temperature, humidity, pressure });

  for (const [name, calibration] of Object.entries(CALIBRATIONS)) {
    it(`reads back every environment of the operating range (calibration ${name})`, () => {
      let env = grid[0];
      const i2c = bus();
      i2c.attach(0x76, new BME280Model({ environment: () => env, calibration, now: () => Date.now() }));
      const sensor = new BME280({ i2c });
      for (env of grid) {
        const { calls, err, reading } = sampleNow(sensor);
        expect({ calls, err }).toEqual({ calls: 1, err: null });
        // Without noise only the ADC's quantisation and the driver's rounding remain.
        expect(Math.abs(reading!.temperature - env.temperature), `T at ${JSON.stringify(env)}`).toBeLessThan(0.011);
        expect(Math.abs(reading!.humidity - env.humidity), `H at ${JSON.stringify(env)}`).toBeLessThan(0.06);
        expect(Math.abs(reading!.pressure - env.pressure), `P at ${JSON.stringify(env)}`).toBeLessThan(0.011);
      }
    });
  }

  it("stays within the datasheet's absolute accuracy with seeded sensor error and noise", () => {
    for (let seed = 1; seed <= 20; seed++) {
      let env = grid[0];
      const i2c = bus();
      const calibration = Object.values(CALIBRATIONS)[seed % 3];
      i2c.attach(0x76, new BME280Model({ environment: () => env, calibration, noise: { seed }, now: () => Date.now() }));
      const sensor = new BME280({ i2c });
      for (env of grid.filter((e) => e.temperature >= 0 && e.temperature <= 65 && e.humidity >= 10 && e.humidity <= 80)) {
        const { reading } = sampleNow(sensor);
        // Tables 1-3: ±1 °C (0..65 °C), ±3 %RH (20..80 %RH), ±1 hPa (300..1100 hPa, 0..65 °C).
        expect(Math.abs(reading!.temperature - env.temperature)).toBeLessThanOrEqual(1);
        expect(Math.abs(reading!.humidity - env.humidity)).toBeLessThanOrEqual(3);
        expect(Math.abs(reading!.pressure - env.pressure)).toBeLessThanOrEqual(1);
      }
    }
  });

  it("repeats the same noisy readings for the same seed", () => {
    const run = (seed: number) => {
      const i2c = bus();
      i2c.attach(0x76, new BME280Model({ environment: () => ({ temperature: 22, humidity: 40, pressure: 990 }), noise: { seed } }));
      const sensor = new BME280({ i2c });
      return [1, 2, 3].map(() => sampleNow(sensor).reading);
    };
    expect(run(7)).toEqual(run(7));
    expect(run(7)).not.toEqual(run(8));
  });

  it("returns a new small flat object per sample, ready for JSON", () => {
    const i2c = bus();
    i2c.attach(0x77, new BME280Model({ environment: () => ({ temperature: 23.456, humidity: 51.23, pressure: 1008.766 }) }));
    const sensor = new BME280({ i2c, address: 0x77 });
    const first = sampleNow(sensor).reading!;
    const second = sampleNow(sensor).reading!;
    expect(first).not.toBe(second);
    expect(JSON.stringify(first)).toBe('{"temperature":23.46,"humidity":51.2,"pressure":1008.77}');
  });

  it("reports only after the model's measurement has finished (status.measuring honoured)", () => {
    let env: Environment = { temperature: 10, humidity: 50, pressure: 1000 };
    const i2c = bus();
    const model = new BME280Model({ environment: () => env, now: () => Date.now() });
    i2c.attach(0x76, model);
    const sensor = new BME280({ i2c });
    const got: BME280Reading[] = [];
    sensor.sample((err, reading) => got.push(reading!));
    env = { temperature: 30, humidity: 20, pressure: 900 }; // sampled at trigger time, not at readout
    vi.advanceTimersByTime(9);
    expect(got).toEqual([]);
    vi.advanceTimersByTime(1); // datasheet 9.1: at most 9.3 ms at x1 oversampling
    expect(got).toEqual([{ temperature: 10, humidity: 50, pressure: 1000 }]);
  });

  it("still measures humidity after the sensor lost power between samples", () => {
    const i2c = bus();
    const model = new BME280Model({ environment: () => ({ temperature: 20, humidity: 60, pressure: 1000 }) });
    i2c.attach(0x76, model);
    const sensor = new BME280({ i2c });
    model.reset(); // ctrl_hum back to 0: humidity would be skipped (0x8000)
    expect(sampleNow(sensor).reading).toEqual({ temperature: 20, humidity: 60, pressure: 1000 });
  });
});

describe("BME280 errors", () => {
  it("names a BMP280 (chip id 0x58) when it finds one", () => {
    const i2c = bus();
    i2c.attach(0x76, new BME280Model({ environment: () => ({ temperature: 20, humidity: 50, pressure: 1000 }), chipId: 0x58 }));
    expect(() => new BME280({ i2c })).toThrow("BME280 not found at 0x76: chip id 0x58 (is it a BMP280?)");
  });

  it("names an unknown chip id", () => {
    const i2c = bus();
    i2c.attach(0x77, registerFile({ 0xd0: [0x61] }).device);
    expect(() => new BME280({ i2c, address: 0x77 })).toThrow("BME280 not found at 0x77: chip id 0x61");
  });

  it("says nothing answered on ESP32 hardware I2C (the bus throws)", () => {
    expect(() => new BME280({ i2c: bus() })).toThrow(
      "BME280 not found at 0x76: no answer on I2C (jshI2CWrite: slave doesn't ACK the transfer)",
    );
  });

  it("says nothing answered on software I2C (the bus reads 0xFF)", () => {
    const i2c = new EmulatedI2C({ kind: "software" });
    i2c.setup({ scl: 22, sda: 21 });
    expect(() => new BME280({ i2c })).toThrow("BME280 not found at 0x76: no device answered");
  });

  it("waits a bounded time for the calibration copy after power-on (im_update)", () => {
    const i2c = bus();
    const chip = registerFile({ 0xd0: [0x60], 0xf3: [0x01] }); // stuck in im_update
    i2c.attach(0x76, chip.device);
    expect(() => new BME280({ i2c })).toThrow("BME280 at 0x76: calibration not ready");
  });

  function workingSensor() {
    const i2c = bus();
    const model = new BME280Model({ environment: () => ({ temperature: 20, humidity: 50, pressure: 1000 }) });
    i2c.attach(0x76, model);
    return { i2c, model, sensor: new BME280({ i2c }) };
  }

  it("reports a bus fault during readout to the callback, once, and recovers after it", () => {
    const { i2c, sensor } = workingSensor();
    i2c.fault = (t) => (t.kind === "read" ? "jshI2CRead:, Operation timeout because the bus is busy" : undefined);
    const failed = sampleNow(sensor);
    expect(failed.calls).toBe(1);
    expect(failed.err?.message).toBe("BME280 at 0x76: jshI2CRead:, Operation timeout because the bus is busy");
    expect(failed.reading).toBeUndefined();
    i2c.fault = undefined;
    expect(sampleNow(sensor).reading).toEqual({ temperature: 20, humidity: 50, pressure: 1000 });
  });

  it("reports a failed trigger write from the timer, not synchronously", () => {
    const { i2c, sensor } = workingSensor();
    i2c.fault = () => new Error("glitch");
    const errors: Error[] = [];
    expect(() => sensor.sample((err) => errors.push(err!))).not.toThrow();
    expect(errors).toEqual([]);
    vi.advanceTimersByTime(100);
    expect(errors.map((e) => e.message)).toEqual(["BME280 at 0x76: glitch"]);
  });

  it("reports an unplugged sensor", () => {
    const { i2c, sensor } = workingSensor();
    i2c.detach(0x76);
    expect(sampleNow(sensor).err?.message).toBe("BME280 at 0x76: jshI2CWrite: slave doesn't ACK the transfer");
  });

  it("gives up on a measurement that never finishes after a bounded number of status polls", () => {
    const i2c = bus();
    const chip = exampleChip([0x6a, 0x01, 0x00, 0x14, 0x2d, 0x03, 0x1e]);
    i2c.attach(0x76, chip.device);
    const sensor = new BME280({ i2c });
    chip.regs[0xf3] = 0x08; // measuring forever
    let statusReads = 0;
    i2c.fault = (t) => void (t.kind === "write" && t.data?.length === 1 && t.data[0] === 0xf3 && statusReads++);
    const result = sampleNow(sensor);
    expect(result.err?.message).toBe("BME280 at 0x76: measurement did not finish");
    expect(result.calls).toBe(1);
    expect(statusReads).toBe(4);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("the bundled driver inside the simulated Espruino device", () => {
  it("reads the model on I2C1 and reports errors to its callback, never as uncaught errors", async () => {
    const built = await bundle("drivers/bme280.ts", { outfile: "dist/bme280.js" });
    const clock = FakeTimers.createClock();
    const lines: string[] = [];
    let buses!: ReturnType<typeof installI2C>;
    const device = new Runtime({ clock, log: (line) => lines.push(line), plugins: [(rt) => void (buses = installI2C(rt))] });
    try {
      buses.I2C1.attach(0x76, new BME280Model({
        environment: () => ({ temperature: 18.25, humidity: 63.4, pressure: 987.65 }),
        calibration: CALIBRATIONS.partB,
        now: () => clock.now,
      }));
      device.addModule("bme280", built.code);
      device.run(`
        I2C1.setup({ scl: 22, sda: 21 });
        var BME280 = require("bme280").BME280;
        try { new BME280({ i2c: I2C1, address: 0x77 }); } catch (e) { console.log(e.message); }
        var sensor = new BME280({ i2c: I2C1 });
        function report(err, reading) { console.log(err ? err.message : JSON.stringify(reading)); }
        sensor.sample(report);
      `);
      clock.tick(20);
      buses.I2C1.detach(0x76);
      device.run("sensor.sample(report);");
      clock.tick(20);
      expect(lines).toEqual([
        "BME280 not found at 0x77: no answer on I2C (jshI2CWrite: slave doesn't ACK the transfer)",
        '{"temperature":18.25,"humidity":63.4,"pressure":987.65}',
        "BME280 at 0x76: jshI2CWrite: slave doesn't ACK the transfer",
      ]);
    } finally {
      device.dispose();
    }
  });
});
