// Battery voltage through a resistor divider on an ESP32 ADC1 pin, and a charge level read off a
// discharge curve.
//
// On ESP32, Espruino 2v29 reads ADC1 (GPIO 32-39) at 12 bits with 11 dB attenuation and returns
// raw / 4096 (targets/esp32/jshardwareAnalog.c, jshardware.c jshPinAnalog). ADC2 is unusable while
// Wi-Fi runs. At 11 dB the ESP32's ADC is close to linear only from about 150 to 2450 mV at the pin
// (ESP-IDF driver/adc.h); above that it flattens (and saturates near 3.1 V), below it reads 0. Its
// gain also varies from chip to chip with the reference voltage (1000 to 1200 mV), so the config
// can carry a two-point calibration; the host folds divider and calibration into one line,
// volts = scale * analogRead(pin) + offset (tools/config.ts), so the device does one multiply.
// Runs on Espruino: no default parameters, destructuring or async (see espruino-compat.md).

import type { SampleCallback } from "./bus";
import { round } from "./bus";

export interface BatteryOptions {
  pin: number;
  /** Espruino's analogRead (0..1 of full scale). */
  analogRead: (pin: number) => number;
  /** Battery volts per unit of analogRead, and at 0 (divider and calibration folded in). */
  scale: number;
  offset: number;
  /** [volts, percent] points, volts ascending: the level is interpolated between them. */
  curve: number[][];
}

/** V (0.01), % (1). */
export interface BatteryReading {
  voltage: number;
  level: number;
}

const enum K {
  // The ADC is noisy (a few LSB); an average of this many reads costs about 1 ms on the device.
  Reads = 16,
}

export class Battery {
  declare options_: BatteryOptions;

  constructor(options: BatteryOptions) {
    this.options_ = options;
  }

  /** Average 16 reads and convert; `callback(err, reading)` runs from a timer. Never throws. */
  sample(callback: SampleCallback<BatteryReading>): void {
    const o = this.options_;
    let sum = 0;
    for (let i = 0; i < K.Reads; i++) sum += o.analogRead(o.pin);
    const r = sum / K.Reads;
    // Under ~150 mV the ADC reads 0: a battery behind a divider never gets there.
    if (!(r > 0.002)) return void setTimeout(callback, 0, Error("battery on D" + o.pin + ": no voltage (unplugged, or the divider is open?)"));
    const v = o.scale * r + o.offset;
    setTimeout(callback, 0, null, { voltage: round(v, 100), level: Math.round(level(o.curve, v)) });
  }
}

/** Percent at `v` on a curve of [volts, percent] points, held flat beyond its ends. */
export function level(curve: number[][], v: number): number {
  if (v <= curve[0][0]) return curve[0][1];
  for (let i = 1; i < curve.length; i++) {
    const a = curve[i - 1],
      b = curve[i];
    if (v <= b[0]) return a[1] + ((b[1] - a[1]) * (v - a[0])) / (b[0] - a[0]);
  }
  return curve[curve.length - 1][1];
}
