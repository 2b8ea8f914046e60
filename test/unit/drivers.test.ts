// Each driver against values worked out from its datasheet (examples, tables, formulas by hand),
// through plain scripted devices on the emulated bus: independent of the simulator's chip models.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Battery, level } from "../../drivers/battery.ts";
import { BH1750 } from "../../drivers/bh1750.ts";
import type { OneWireBus, SampleCallback } from "../../drivers/bus.ts";
import { crc8 as dallasCrc, DS18B20, isDS18B20 } from "../../drivers/ds18b20.ts";
import { SCD4x } from "../../drivers/scd4x.ts";
import { crc8 } from "../../drivers/sensirion.ts";
import { SHT3x } from "../../drivers/sht3x.ts";
import { SHT4x } from "../../drivers/sht4x.ts";
import { EmulatedI2C, NACK, type I2CDevice } from "../../host-sim/i2c.ts";
import { batteryLine } from "../../tools/config.ts";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function bus(kind: "hardware" | "software" = "hardware"): EmulatedI2C {
  const i2c = new EmulatedI2C({ kind });
  i2c.setup({ scl: 22, sda: 21 });
  return i2c;
}

/** Run sample() on the fake clock for `ms`; what the callback got (it must be called once). */
function run<R>(sampler: { sample(cb: SampleCallback<R>): void }, ms = 1000): { calls: number; err: Error | null; reading?: R } {
  const out = { calls: 0, err: null as Error | null, reading: undefined as R | undefined };
  sampler.sample((err, reading) => {
    out.calls++;
    out.err = err;
    out.reading = reading;
  });
  vi.advanceTimersByTime(ms);
  return out;
}

/** Words as a Sensirion chip sends them (MSB, LSB, CRC), the CRC computed here independently. */
function words(...w: number[]): number[] {
  return w.flatMap((x) => [x >> 8, x & 0xff, sensirionCrc(x)]);
}
function sensirionCrc(word: number): number {
  // bitwise, MSB first, as datasheet table 20 defines it
  let crc = 0xff;
  for (let bit = 15; bit >= 0; bit--) {
    const top = ((crc >> 7) & 1) ^ ((word >> bit) & 1);
    crc = ((crc << 1) & 0xff) ^ (top ? 0x31 : 0);
  }
  return crc;
}

/** A scripted chip: each command (as a number) answers with fixed bytes; `busy` NACKs reads. */
function scripted(answers: Record<number, number[] | (() => number[])>) {
  const log: number[] = [];
  let pending: number[] | undefined;
  const state = { busy: false };
  const device: I2CDevice = {
    write(bytes) {
      const command = bytes.length >= 2 ? (bytes[0]! << 8) | bytes[1]! : bytes[0]!;
      log.push(command);
      const a = answers[command];
      pending = typeof a === "function" ? a() : a;
    },
    read(n) {
      if (state.busy || !pending) return NACK;
      const out = Uint8Array.from(pending.slice(0, n));
      pending = undefined;
      return out;
    },
  };
  return { device, log, state };
}

describe("Sensirion CRC-8 (SHT3x table 20, SHT4x 4.4, SCD4x 3.11)", () => {
  it("gives the datasheets' example CRC(0xBEEF) = 0x92 and the SCD4x serial number example's", () => {
    expect(crc8([0xbe, 0xef], 0)).toBe(0x92);
    // SCD4x 3.9.2 get_serial_number example: 0xf896 0x31, 0x9f07 0xc2, 0x3bbe 0x89
    expect([0xf896, 0x9f07, 0x3bbe].map((w) => crc8([w >> 8, w & 0xff], 0))).toEqual([0x31, 0xc2, 0x89]);
    expect(sensirionCrc(0xbeef)).toBe(0x92);
  });
});

describe("SHT3x", () => {
  it("converts with 4.13's formulas: S_T 0x6666 is 25.0 °C, S_RH 0x8000 is 50.0 %RH; single shot 0x2400, no clock stretching", () => {
    // T = -45 + 175 * 26214 / 65535 = 24.9998; RH = 100 * 32768 / 65535 = 50.0008
    const chip = scripted({ 0xf32d: words(0x8010), 0x2400: words(0x6666, 0x8000) });
    const i2c = bus();
    i2c.attach(0x44, chip.device);
    const sensor = new SHT3x({ i2c });
    expect(run(sensor)).toEqual({ calls: 1, err: null, reading: { temperature: 25, humidity: 50 } });
    expect(chip.log).toEqual([0xf32d, 0x2400]);
  });

  it("waits the 15 ms maximum (table 4) before reading, since the chip NACKs while it measures", () => {
    const chip = scripted({ 0xf32d: words(0), 0x2400: words(0x6666, 0x8000) });
    const i2c = bus();
    i2c.attach(0x45, chip.device);
    const sensor = new SHT3x({ i2c, address: 0x45 });
    const got: unknown[] = [];
    chip.state.busy = true;
    sensor.sample((err, r) => got.push(err ?? r));
    vi.advanceTimersByTime(15);
    chip.state.busy = false;
    expect(got).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(got).toEqual([{ temperature: 25, humidity: 50 }]);
  });

  it("reports a CRC mismatch, a NACK and a missing chip, naming chip and address", () => {
    const i2c = bus();
    const bad = words(0x6666, 0x8000);
    bad[5] ^= 1; // the humidity word's CRC
    const chip = scripted({ 0xf32d: words(0), 0x2400: bad });
    i2c.attach(0x44, chip.device);
    const sensor = new SHT3x({ i2c });
    expect(run(sensor).err?.message).toBe("SHT3x at 0x44: CRC mismatch in word 1");
    chip.state.busy = true;
    expect(run(sensor).err?.message).toBe("SHT3x at 0x44: jshI2CRead: slave doesn't ACK the transfer");
    expect(() => new SHT3x({ i2c: bus() })).toThrow("SHT3x at 0x44: jshI2CWrite: slave doesn't ACK the transfer");
    // software I2C checks no ACK: all ones come back
    expect(() => new SHT3x({ i2c: bus("software") })).toThrow("SHT3x at 0x44: no device answered");
  });
});

describe("SHT4x", () => {
  it("converts with 4.6's formulas and crops RH to 0..100", () => {
    // RH = -6 + 125 S / 65535: 0x8000 -> 56.5 %RH; 0 -> -6 -> 0; 0xFFFF -> 119 -> 100
    const values = [
      [0x6666, 0x8000],
      [0x6666, 0x0000],
      [0x0000, 0xffff],
    ];
    let i = 0;
    const chip = scripted({ 0xfd: () => words(...values[i++]!) });
    const i2c = bus();
    i2c.attach(0x44, chip.device);
    const sensor = new SHT4x({ i2c });
    expect(run(sensor).reading).toEqual({ temperature: 25, humidity: 56.5 });
    expect(run(sensor).reading).toEqual({ temperature: 25, humidity: 0 });
    expect(run(sensor).reading).toEqual({ temperature: -45, humidity: 100 });
    expect(chip.log).toEqual([0xfd, 0xfd, 0xfd]); // one byte: the SHT4x's commands are 8-bit
  });
});

describe("SCD4x", () => {
  it("stops, starts 500 ms later, polls data ready, and reads 3.5.2's example: 500 ppm, 25 °C, 37 %RH", () => {
    let ready = 0;
    const chip = scripted({
      0x3f86: [],
      0x21b1: [],
      0xe4b8: () => words(ready++ < 2 ? 0x8000 : 0x8006), // 3.8.2: low 11 bits 0 = not ready
      0xec05: words(0x01f4, 0x6667, 0x5eb9),
    });
    const i2c = bus();
    i2c.attach(0x62, chip.device);
    const sensor = new SCD4x({ i2c });
    expect(chip.log).toEqual([0x3f86]);
    const got: unknown[] = [];
    sensor.sample((err, r) => got.push(err ?? r));
    vi.advanceTimersByTime(499);
    expect(chip.log).toEqual([0x3f86]); // stop_periodic_measurement takes 500 ms (table 9)
    vi.advanceTimersByTime(1);
    expect(chip.log).toEqual([0x3f86, 0x21b1]);
    vi.advanceTimersByTime(5000 + 2 * 501 + 2);
    expect(chip.log).toEqual([0x3f86, 0x21b1, 0xe4b8, 0xe4b8, 0xe4b8, 0xec05]);
    expect(got).toEqual([{ co2: 500, temperature: 25, humidity: 37 }]);
  });

  it("gives up after a bounded wait when no data comes", () => {
    const chip = scripted({ 0x3f86: [], 0x21b1: [], 0xe4b8: words(0x8000) });
    const i2c = bus();
    i2c.attach(0x62, chip.device);
    const result = run(new SCD4x({ i2c }), 20_000);
    expect(result.calls).toBe(1);
    expect(result.err?.message).toBe("SCD4x at 0x62: no measurement ready after 11 s");
  });
});

describe("BH1750", () => {
  it("powers on, asks for a one-time H-resolution measurement, waits 180 ms, and divides by 1.2 (p.7 example: 0x8390 is 28067 lx)", () => {
    const written: number[] = [];
    const device: I2CDevice = {
      write: (b) => void written.push(...b),
      read: () => Uint8Array.of(0x83, 0x90),
    };
    const i2c = bus();
    i2c.attach(0x23, device);
    const sensor = new BH1750({ i2c });
    const got: unknown[] = [];
    sensor.sample((err, r) => got.push(err ?? r));
    vi.advanceTimersByTime(179);
    expect(got).toEqual([]);
    vi.advanceTimersByTime(1);
    // (2^15 + 2^9 + 2^8 + 2^7 + 2^4) / 1.2 = 33680 / 1.2 = 28066.7
    expect(got).toEqual([{ illuminance: 28066.7 }]);
    expect(written).toEqual([0x01, 0x01, 0x20]);
  });

  it("reports a chip that does not acknowledge", () => {
    expect(() => new BH1750({ i2c: bus(), address: 0x5c })).toThrow("BH1750 at 0x5c: jshI2CWrite: slave doesn't ACK the transfer");
  });
});

/** A scripted 1-Wire bus with one DS18B20's scratchpad, independent of the simulator's model. */
function wire(rom: string, scratchpad: () => number[], opts: { parasite?: boolean; others?: string[] } = {}) {
  const log: string[] = [];
  let selected: string | undefined;
  let last = 0;
  const w: OneWireBus & { log: string[] } = {
    log,
    reset: () => true,
    select(r: string) {
      selected = r;
      log.push(`select ${r}`);
    },
    skip() {
      selected = "*";
    },
    write(data: number | number[], power?: boolean) {
      const bytes = typeof data === "number" ? [data] : data;
      log.push(`write ${bytes.map((b) => b.toString(16)).join(" ")}${power ? " power" : ""}`);
      last = bytes[0]!;
    },
    read(count?: number): any {
      const here = selected === rom;
      if (count === undefined) return last === 0xb4 && here && opts.parasite ? 0 : 0xff;
      const out = here && last === 0xbe ? scratchpad() : Array(count).fill(0xff);
      return Uint8Array.from(out.slice(0, count));
    },
    search: () => [rom, ...(opts.others ?? [])],
  };
  return w;
}

/** A scratchpad (figure 9) with temperature register `t`, configuration for `bits`, CRC appended. */
function pad(t: number, bits = 12): number[] {
  const b = [t & 0xff, (t >> 8) & 0xff, 0x4b, 0x46, ((bits - 9) << 5) | 0x1f, 0xff, 0x0c, 0x10];
  return [...b, dallasCrc(b, 8)];
}

describe("DS18B20", () => {
  const ROM = "28ff4a1d931603d1";

  it("checks CRCs as the Dallas CRC-8 (application note 27's example: 02 1C B8 01 00 00 00 -> A2)", () => {
    expect(dallasCrc([0x02, 0x1c, 0xb8, 0x01, 0x00, 0x00, 0x00], 7)).toBe(0xa2);
    expect(isDS18B20(ROM)).toBe(true);
    expect(isDS18B20("28ff4a1d931603d2")).toBe(false); // CRC
    expect(isDS18B20("10ff4a1d931603d1")).toBe(false); // family 10: a DS18S20
  });

  it("reads every value of table 1 (temperature/data relationship)", () => {
    const table: [number, number][] = [
      [0x07d0, 125],
      [0x0191, 25.0625],
      [0x00a2, 10.125],
      [0x0008, 0.5],
      [0x0000, 0],
      [0xfff8, -0.5],
      [0xff5e, -10.125],
      [0xfe6f, -25.0625],
      [0xfc90, -55],
    ];
    let reg = 0;
    const w = wire(ROM, () => pad(reg));
    const sensor = new DS18B20({ oneWire: w, rom: ROM });
    for (const [raw, celsius] of table) {
      reg = raw;
      expect(run(sensor).reading, `0x${raw.toString(16)}`).toEqual({ temperature: celsius });
    }
  });

  it("treats the power-on value +85 °C (0x0550) as no conversion", () => {
    const sensor = new DS18B20({ oneWire: wire(ROM, () => pad(0x0550)), rom: ROM });
    expect(run(sensor).err?.message).toBe(`DS18B20 ${ROM}: reads the power-on value 85.0: no conversion (power lost, or too weak a parasite supply)`);
  });

  it("sets 9 to 12 bits, waits each resolution's conversion time (table 2), and drops the undefined low bits", () => {
    for (const [bits, ms, expected] of [[9, 94, 25], [10, 188, 25], [11, 376, 25], [12, 752, 25.0625]] as const) {
      let config = 12;
      const w = wire(ROM, () => pad(0x0191, config));
      const sensor = new DS18B20({ oneWire: w, rom: ROM, resolution: bits });
      // Write scratchpad 4E with TH, TL and the configuration byte, only when it differs
      const writes = w.log.filter((l) => l.startsWith("write 4e"));
      expect(writes.length).toBe(bits === 12 ? 0 : 1);
      if (bits !== 12) expect(w.log[w.log.indexOf(writes[0]!) + 1]).toBe(`write 4b 46 ${(((bits - 9) << 5) | 0x1f).toString(16)}`);
      config = bits;
      const got: unknown[] = [];
      sensor.sample((err, r) => got.push(err ?? r));
      vi.advanceTimersByTime(ms - 1);
      expect(got).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(got).toEqual([{ temperature: expected }]);
    }
  });

  it("finds its only DS18B20 by search, and asks for ROMs when the wire has several", () => {
    expect(new DS18B20({ oneWire: wire(ROM, () => pad(0x0191)) }).rom).toBe(ROM);
    const other = "28ff9c2e93160450";
    expect(() => new DS18B20({ oneWire: wire(ROM, () => pad(0x0191), { others: [other, "28ff9c2e93160451"] }) })).toThrow(
      `2 DS18B20 on the wire (${ROM}, ${other}); give each sensor its rom`, // the one with a bad CRC is not counted
    );
  });

  it("reports CRC errors, an absent device and a wire held low", () => {
    let data = pad(0x0191);
    const sensor = new DS18B20({ oneWire: wire(ROM, () => data), rom: ROM });
    data = pad(0x0191).map((b, i) => (i === 0 ? b ^ 1 : b));
    expect(run(sensor).err?.message).toBe(`DS18B20 ${ROM}: CRC mismatch`);
    data = Array(9).fill(0xff);
    expect(run(sensor).err?.message).toBe(`DS18B20 ${ROM}: no answer (gone from the wire?)`);
    data = Array(9).fill(0); // CRC of zeros is 0: only the fixed configuration bits tell
    expect(run(sensor).err?.message).toBe(`DS18B20 ${ROM}: scratchpad reads 0x0 as configuration (wire held low?)`);
  });

  it("on parasite power, holds the line high through Convert T and keeps other conversions off the wire until done", () => {
    const w = wire(ROM, () => pad(0x0191), { parasite: true });
    const a = new DS18B20({ oneWire: w, rom: ROM });
    const b = new DS18B20({ oneWire: w, rom: ROM });
    expect(a.parasite).toBe(true);
    w.log.length = 0;
    const done: number[] = [];
    a.sample(() => done.push(Date.now()));
    b.sample(() => done.push(Date.now()));
    expect(w.log).toEqual([`select ${ROM}`, "write 44 power"]); // b waits
    vi.advanceTimersByTime(752 * 2 + 10);
    expect(w.log.filter((l) => l === "write 44 power")).toHaveLength(2);
    expect(done[1]! - done[0]!).toBeGreaterThanOrEqual(750);
  });
});

describe("battery", () => {
  it("reads volts on one line from analogRead (divider and calibration folded in by the host)", () => {
    // no calibration, divider 2: 2 * (3.29990 * r + 0.142), the ESP32's typical line (ESP-IDF, Vref 1100 mV)
    const line = batteryLine({ divider: 2 });
    expect(line.scale).toBeCloseTo(6.5998, 3);
    expect(line.offset).toBeCloseTo(0.284, 6);
    // a two-point correction: published 3.50 -> true 3.60, published 4.00 -> true 4.15
    const cal = batteryLine({ divider: 2, calibration: [[3.5, 3.6], [4.0, 4.15]] });
    const published = (r: number) => line.scale * r + line.offset;
    for (const r of [0.4, 0.55, 0.6]) expect(cal.scale * r + cal.offset).toBeCloseTo(3.6 + ((published(r) - 3.5) * 0.55) / 0.5, 4);
    const reads: number[] = [];
    const battery = new Battery({ pin: 35, analogRead: (pin) => (reads.push(pin), 0.55), scale: line.scale, offset: line.offset, curve: [[3.3, 0], [4.2, 100]] });
    const got = run(battery).reading!;
    expect(reads).toHaveLength(16); // averaged
    expect(got.voltage).toBe(Math.round((line.scale * 0.55 + line.offset) * 100) / 100);
    expect(got.level).toBe(Math.round(((got.voltage - 3.3) / 0.9) * 100));
  });

  it("interpolates the discharge curve and holds it flat past its ends", () => {
    const curve = [[3.3, 0], [3.7, 25], [4.2, 100]];
    expect([3.0, 3.3, 3.5, 3.7, 3.95, 4.2, 4.4].map((v) => level(curve, v))).toEqual([0, 0, 12.5, 25, 62.5, 100, 100]);
  });

  it("says so when the pin reads nothing (battery unplugged, divider open)", () => {
    const battery = new Battery({ pin: 34, analogRead: () => 0, scale: 6.6, offset: 0.28, curve: [[3.3, 0], [4.2, 100]] });
    expect(run(battery).err?.message).toBe("battery on D34: no voltage (unplugged, or the divider is open?)");
  });
});
