// Register-level model of a Bosch BME280 (datasheet BST-BME280-DS002, rev 1.6) for the emulated
// I2C bus. Raw ADC values are found by inverting the datasheet's compensation formulas (section
// 8.1) for the physical environment, so a correct driver reads that environment back.
//
// The forward formulas below are the model's own transcription of the datasheet, kept apart
// from drivers/bme280.ts on purpose: the driver is under test, the model is the sensor.

import type { I2CDevice } from "../i2c.ts";
import { gaussianSource } from "../random.ts";

/** °C, %RH, hPa. */
export interface Environment {
  temperature: number;
  humidity: number;
  pressure: number;
}

/** Trimming parameters as named in datasheet table 16. */
export interface BME280Calibration {
  T1: number; T2: number; T3: number;
  P1: number; P2: number; P3: number; P4: number; P5: number; P6: number; P7: number; P8: number; P9: number;
  H1: number; H2: number; H3: number; H4: number; H5: number; H6: number;
}

/**
 * Calibration sets. `datasheet`: the T/P example of the BMP280 datasheet (3.12) with typical
 * humidity values; the others are the kind of values real parts carry (H4/H5 exercise the
 * nibble packing of 0xE5 and a negative dig_H5).
 */
export const CALIBRATIONS = {
  datasheet: {
    T1: 27504, T2: 26435, T3: -1000,
    P1: 36477, P2: -10685, P3: 3024, P4: 2855, P5: 140, P6: -7, P7: 15500, P8: -14600, P9: 6000,
    H1: 75, H2: 362, H3: 0, H4: 333, H5: 50, H6: 30,
  },
  partB: {
    T1: 28485, T2: 26735, T3: 50,
    P1: 37764, P2: -10525, P3: 3024, P4: 5706, P5: -108, P6: -7, P7: 9900, P8: -10230, P9: 4285,
    H1: 75, H2: 355, H3: 0, H4: 346, H5: 0, H6: 30,
  },
  partC: {
    T1: 27991, T2: 26552, T3: 50,
    P1: 36738, P2: -10618, P3: 3024, P4: 7563, P5: -193, P6: -7, P7: 9900, P8: -10230, P9: 4285,
    H1: 75, H2: 370, H3: 6, H4: 290, H5: -30, H6: 30,
  },
} satisfies Record<string, BME280Calibration>;

export interface BME280ModelOptions {
  /** The physical environment at the moment a measurement starts. */
  environment: () => Environment;
  calibration?: BME280Calibration;
  /** 0x60 for a BME280; 0x58 makes the part answer as a BMP280 (no humidity). */
  chipId?: number;
  /**
   * Clock in ms. With it, a forced measurement keeps status.measuring (bit 3) set for the
   * datasheet's typical measurement time (9.1) and reset keeps im_update (bit 0) set for the
   * 2 ms start-up time (table 1). Without it, both finish at once.
   */
  now?: () => number;
  /**
   * Seeded errors, repeatable run to run: a fixed per-part offset drawn within the absolute
   * accuracy (tables 1-3: ±1 °C, ±3 %RH, ±1 hPa), plus per-sample RMS noise at oversampling x1
   * (0.005 °C, 0.02 %RH, 1.3 Pa).
   */
  noise?: { seed: number };
}

// Memory map, datasheet 5.3.
const REG = {
  calib00: 0x88,
  chipId: 0xd0,
  reset: 0xe0,
  calib26: 0xe1,
  ctrlHum: 0xf2,
  status: 0xf3,
  ctrlMeas: 0xf4,
  config: 0xf5,
  data: 0xf7,
} as const;
const RESET_WORD = 0xb6;
const SKIPPED_20 = 0x80000; // value of a skipped temperature/pressure measurement (4.3)
const SKIPPED_16 = 0x8000; // of a skipped humidity measurement
const OVERSAMPLING = [0, 1, 2, 4, 8, 16, 16, 16]; // osrs_x[2:0] (tables 20, 23, 24)

export class BME280Model implements I2CDevice {
  readonly calibration: BME280Calibration;
  readonly chipId: number;
  /** The register file, for inspection in tests. */
  readonly registers = new Uint8Array(256);
  /** Raw ADC values of the last completed measurement. */
  lastRaw = { adcT: SKIPPED_20, adcP: SKIPPED_20, adcH: SKIPPED_16 };
  /** Measurements started since creation (forced triggers and normal-mode reads). */
  measurements = 0;
  private pointer = 0;
  private osrsH = 0; // ctrl_hum latched at the last ctrl_meas write (5.4.3)
  private busyUntil = -Infinity;
  private updatingUntil = -Infinity;
  private pending: { adcT: number; adcP: number; adcH: number } | undefined;
  private readonly rng: (() => number) | undefined;
  private readonly offset = { temperature: 0, humidity: 0, pressure: 0 };

  constructor(private readonly options: BME280ModelOptions) {
    this.calibration = options.calibration ?? CALIBRATIONS.datasheet;
    this.chipId = options.chipId ?? 0x60;
    if (options.noise) {
      this.rng = gaussianSource(options.noise.seed);
      // sigma a third of the stated accuracy, clipped at 90 % of it to leave room for noise
      const within = (limit: number) => Math.max(-0.9 * limit, Math.min(0.9 * limit, (this.rng!() * limit) / 3));
      this.offset = { temperature: within(1), humidity: within(3), pressure: within(1) };
    }
    this.reset();
    this.updatingUntil = -Infinity; // powered long before the firmware looks at it
  }

  /** Power cycle or soft reset: control registers to 0, data to their "skipped" values (5.3), NVM copy for 2 ms. */
  reset(): void {
    const r = this.registers;
    r.fill(0);
    r[REG.chipId] = this.chipId;
    writeCalibration(r, this.calibration, this.chipId === 0x60);
    this.setData(SKIPPED_20, SKIPPED_20, SKIPPED_16);
    this.osrsH = 0;
    this.pending = undefined;
    this.busyUntil = -Infinity;
    this.updatingUntil = this.options.now ? this.options.now() + 2 : -Infinity;
  }

  write(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.pointer = bytes[0];
    // I2C writes are (register, value) pairs; there is no auto-increment on write (6.2.1).
    for (let i = 0; i + 1 < bytes.length; i += 2) this.writeRegister(bytes[i], bytes[i + 1]);
  }

  read(n: number): Uint8Array {
    this.settle();
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const reg = (this.pointer + i) & 0xff;
      if (reg === REG.data && this.mode() === 3) this.measure(true);
      out[i] = reg === REG.status ? this.status() : this.registers[reg];
    }
    this.pointer = (this.pointer + n) & 0xff;
    return out;
  }

  private writeRegister(reg: number, value: number): void {
    this.settle();
    switch (reg) {
      case REG.reset:
        if (value === RESET_WORD) this.reset();
        return;
      case REG.ctrlHum:
        if (this.chipId === 0x60) this.registers[reg] = value & 0x07;
        return;
      case REG.ctrlMeas:
        this.registers[reg] = value;
        this.osrsH = this.registers[REG.ctrlHum] & 0x07;
        if ((value & 3) === 1 || (value & 3) === 2) this.measure(false);
        return;
      case REG.config:
        // "Writes to the config register in normal mode may be ignored" (5.4.6): this model ignores them.
        if (this.mode() !== 3) this.registers[reg] = value & 0xfd;
        return;
      default:
        // Everything else is read-only.
        return;
    }
  }

  private mode(): number {
    return this.registers[REG.ctrlMeas] & 3;
  }

  private status(): number {
    const now = this.options.now?.() ?? Infinity;
    return (now < this.busyUntil ? 0x08 : 0) | (now < this.updatingUntil ? 0x01 : 0);
  }

  /** Complete a forced measurement whose time is up: data registers update, mode returns to sleep (3.3.3). */
  private settle(): void {
    if (!this.pending) return;
    const now = this.options.now?.() ?? Infinity;
    if (now < this.busyUntil) return;
    const raw = this.pending;
    this.pending = undefined;
    this.setData(raw.adcT, raw.adcP, raw.adcH);
    this.registers[REG.ctrlMeas] &= ~3;
  }

  private measure(immediate: boolean): void {
    const osrsT = OVERSAMPLING[(this.registers[REG.ctrlMeas] >> 5) & 7];
    const osrsP = OVERSAMPLING[(this.registers[REG.ctrlMeas] >> 2) & 7];
    const osrsH = this.chipId === 0x60 ? OVERSAMPLING[this.osrsH] : 0;
    this.measurements++;
    const env = this.sense();
    const raw = invert(this.calibration, env);
    const adc = {
      adcT: osrsT ? raw.adcT : SKIPPED_20,
      adcP: osrsT && osrsP ? raw.adcP : SKIPPED_20,
      adcH: osrsT && osrsH ? raw.adcH : SKIPPED_16,
    };
    if (immediate || !this.options.now) {
      this.setData(adc.adcT, adc.adcP, adc.adcH);
      if (!immediate) this.registers[REG.ctrlMeas] &= ~3;
      return;
    }
    // Typical measurement time, datasheet 9.1.
    const ms = 1 + 2 * osrsT + (osrsP ? 2 * osrsP + 0.5 : 0) + (osrsH ? 2 * osrsH + 0.5 : 0);
    this.busyUntil = this.options.now() + ms;
    this.pending = adc;
  }

  private sense(): Environment {
    const env = this.options.environment();
    if (!this.rng) return env;
    return {
      temperature: env.temperature + this.offset.temperature + this.rng() * 0.005,
      humidity: env.humidity + this.offset.humidity + this.rng() * 0.02,
      pressure: env.pressure + this.offset.pressure + this.rng() * 0.013,
    };
  }

  private setData(adcT: number, adcP: number, adcH: number): void {
    const r = this.registers;
    this.lastRaw = { adcT, adcP, adcH };
    r[0xf7] = adcP >> 12; r[0xf8] = (adcP >> 4) & 0xff; r[0xf9] = (adcP & 0xf) << 4;
    r[0xfa] = adcT >> 12; r[0xfb] = (adcT >> 4) & 0xff; r[0xfc] = (adcT & 0xf) << 4;
    r[0xfd] = adcH >> 8; r[0xfe] = adcH & 0xff;
  }
}

function writeCalibration(r: Uint8Array, c: BME280Calibration, humidity: boolean): void {
  const words = [c.T1, c.T2, c.T3, c.P1, c.P2, c.P3, c.P4, c.P5, c.P6, c.P7, c.P8, c.P9];
  words.forEach((w, i) => {
    r[REG.calib00 + 2 * i] = w & 0xff;
    r[REG.calib00 + 2 * i + 1] = (w >> 8) & 0xff;
  });
  if (!humidity) return;
  r[0xa1] = c.H1;
  r[0xe1] = c.H2 & 0xff;
  r[0xe2] = (c.H2 >> 8) & 0xff;
  r[0xe3] = c.H3;
  r[0xe4] = (c.H4 >> 4) & 0xff;
  r[0xe5] = (c.H4 & 0x0f) | ((c.H5 & 0x0f) << 4);
  r[0xe6] = (c.H5 >> 4) & 0xff;
  r[0xe7] = c.H6 & 0xff;
}

// ---- Datasheet 8.1: compensation in double precision, and its inverse ----

export function compensateT(c: BME280Calibration, adcT: number): { temperature: number; tFine: number } {
  const var1 = (adcT / 16384 - c.T1 / 1024) * c.T2;
  const var2 = (adcT / 131072 - c.T1 / 8192) * (adcT / 131072 - c.T1 / 8192) * c.T3;
  return { temperature: (var1 + var2) / 5120, tFine: Math.trunc(var1 + var2) };
}

/** Pa. */
export function compensateP(c: BME280Calibration, tFine: number, adcP: number): number {
  let var1 = tFine / 2 - 64000;
  let var2 = (var1 * var1 * c.P6) / 32768;
  var2 = var2 + var1 * c.P5 * 2;
  var2 = var2 / 4 + c.P4 * 65536;
  var1 = ((c.P3 * var1 * var1) / 524288 + c.P2 * var1) / 524288;
  var1 = (1 + var1 / 32768) * c.P1;
  if (var1 === 0) return 0;
  let p = 1048576 - adcP;
  p = ((p - var2 / 4096) * 6250) / var1;
  var1 = (c.P9 * p * p) / 2147483648;
  var2 = (p * c.P8) / 32768;
  return p + (var1 + var2 + c.P7) / 16;
}

/** %RH, clamped to 0..100 as the datasheet does. */
export function compensateH(c: BME280Calibration, tFine: number, adcH: number): number {
  let h = tFine - 76800;
  h = (adcH - (c.H4 * 64 + (c.H5 / 16384) * h)) *
    ((c.H2 / 65536) * (1 + (c.H6 / 67108864) * h * (1 + (c.H3 / 67108864) * h)));
  h = h * (1 - (c.H1 * h) / 524288);
  return Math.max(0, Math.min(100, h));
}

/**
 * Raw ADC values whose compensation is nearest to `env`. Each formula is monotonic in its ADC
 * value, so an integer bisection finds it; temperature first, since t_fine feeds the others.
 */
export function invert(c: BME280Calibration, env: Environment): { adcT: number; adcP: number; adcH: number } {
  const adcT = nearest(0, 0xfffff, (adc) => compensateT(c, adc).temperature, env.temperature);
  const tFine = compensateT(c, adcT).tFine;
  const adcP = nearest(0, 0xfffff, (adc) => compensateP(c, tFine, adc), env.pressure * 100);
  const adcH = nearest(0, 0xffff, (adc) => compensateH(c, tFine, adc), env.humidity);
  return { adcT, adcP, adcH };
}

function nearest(lo: number, hi: number, f: (adc: number) => number, target: number): number {
  const rising = f(hi) > f(lo);
  // Invariant: the crossing of `target` lies in [lo, hi].
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (f(mid) < target === rising) lo = mid;
    else hi = mid;
  }
  return Math.abs(f(lo) - target) <= Math.abs(f(hi) - target) ? lo : hi;
}
