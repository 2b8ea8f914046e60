// The ESP32's ADC1 as Espruino 2v29 reads it: analogRead(pin) = raw / 4096 at 12 bits and 11 dB
// attenuation on GPIO 32-39 (targets/esp32/jshardwareAnalog.c), NaN on any other pin
// (jshPinAnalog); the pin becomes an analog input. Raw values come from the chip's transfer curve,
// which is ESP-IDF's characterisation (components/esp_adc_cal/esp_adc_cal_esp32.c) for this chip's
// reference voltage: linear up to raw 2880, then a lookup table to saturation near 3.1 V; 0 below
// about 142 mV. Chips differ: the reference voltage is 1000-1200 mV (eFuse), so an uncalibrated
// reading is off by up to ±9 %. Plus a few LSB of noise.

import { gaussianSource } from "./random.ts";
import type { PinBank } from "./pins.ts";
import type { Runtime } from "./runtime.ts";

export const ADC1_PINS = [32, 33, 34, 35, 36, 37, 38, 39];

// esp_adc_cal_esp32.c: ADC1 at 11 dB, and the 20-point tables above raw 2880 (64 apart)
const ATTEN_SCALE = 196602;
const ATTEN_OFFSET = 142;
const LUT_LOW = [2240, 2297, 2352, 2405, 2457, 2512, 2564, 2616, 2664, 2709, 2754, 2795, 2832, 2868, 2903, 2937, 2969, 3000, 3030, 3060]; // vref 1000
const LUT_HIGH = [2667, 2706, 2745, 2780, 2813, 2844, 2873, 2901, 2928, 2956, 2982, 3006, 3032, 3059, 3084, 3110, 3135, 3160, 3184, 3209]; // vref 1200
const LUT_THRESH = 2880;

/** Millivolts at the pin for a raw reading, on the curve of a chip with reference `vref` (mV). */
export function millivolts(raw: number, vref: number): number {
  const linear = (r: number) => (r * ((vref * ATTEN_SCALE) / 4096)) / 65536 + ATTEN_OFFSET;
  if (raw <= LUT_THRESH) return linear(raw);
  // esp_adc_cal: interpolate the two tables by vref, then along raw
  const lut = (i: number) => LUT_LOW[i]! + ((LUT_HIGH[i]! - LUT_LOW[i]!) * (vref - 1000)) / 200;
  const x = (raw - LUT_THRESH) / 64;
  const i = Math.min(LUT_LOW.length - 2, Math.floor(x));
  const v = lut(i) + (lut(i + 1) - lut(i)) * (x - i);
  // join the linear part smoothly at the threshold
  return v + (linear(LUT_THRESH) - lut(0)) * Math.max(0, 1 - x / 4);
}

/** The raw reading (0..4095) whose voltage is nearest to `mv` on that chip's curve. */
export function rawFor(mv: number, vref: number): number {
  let lo = 0;
  let hi = 4095;
  if (mv <= millivolts(0, vref)) return 0;
  if (mv >= millivolts(4095, vref)) return 4095;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (millivolts(mid, vref) < mv) lo = mid;
    else hi = mid;
  }
  return Math.abs(millivolts(lo, vref) - mv) <= Math.abs(millivolts(hi, vref) - mv) ? lo : hi;
}

/** The node's ADC1: a voltage source per pin (volts at the pin), read through this chip's curve. */
export class Adc {
  /** This chip's reference voltage, mV. */
  readonly vref: number;
  private readonly sources = new Map<number, () => number>();
  private readonly rng: () => number;

  constructor(options: { seed: number; vref?: number }) {
    this.rng = gaussianSource(options.seed);
    this.vref = options.vref ?? Math.round(1100 + Math.max(-95, Math.min(95, this.rng() * 35)));
  }

  /** Drive `pin` with `volts()` (what a divider puts there); replaces any earlier source. */
  attach(pin: number, volts: () => number): void {
    this.sources.set(pin, volts);
  }

  detach(pin: number): void {
    this.sources.delete(pin);
  }

  /** analogRead(pin): raw / 4096, NaN off ADC1; an input with nothing on it reads about 0. */
  read(pin: number): number {
    if (!ADC1_PINS.includes(pin)) return NaN;
    const volts = this.sources.get(pin)?.() ?? 0;
    const raw = rawFor(volts * 1000, this.vref) + Math.round(this.rng() * 2);
    return Math.max(0, Math.min(4095, raw)) / 4096;
  }
}

/** Runtime plugin: the global analogRead over `adc` (and the pin turns analog, as on the chip). */
export function adcPlugin(adc: Adc, pins: PinBank): (runtime: Runtime) => void {
  return (runtime) => {
    runtime.defineGlobal("analogRead", (pin: unknown) => {
      const n = Number(pin);
      if (!Number.isInteger(n) || n < 0 || n >= pins.count) throw new runtime.realm.Error(`Invalid pin ${String(pin)}`);
      if (pins.mode(n) !== "analog") pins.setMode(n, "analog", true);
      return adc.read(n);
    });
  };
}
