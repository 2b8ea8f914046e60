// Sensirion SHT4x (SHT40, SHT41, SHT45) humidity and temperature sensor over I2C: high-precision
// measurement without heater.
// Datasheet: "Datasheet SHT4x", version 6.6, April 2024,
// https://sensirion.com/media/documents/33FD6951/662A593A/HT_DS_Datasheet_SHT4x.pdf
// Runs on Espruino: no default parameters, destructuring or async (see espruino-compat.md).

import type { I2CBus, SampleCallback } from "./bus";
import { round } from "./bus";
import { Sensirion } from "./sensirion";

export interface SHT4xOptions {
  i2c: I2CBus;
  /** By part number (7.1): 0x44 (SHT4x-A..., default), 0x45 (-B...), 0x46 (-C...). */
  address?: number;
}

/** °C (0.01), %RH (0.1). */
export interface SHT4xReading {
  temperature: number;
  humidity: number;
}

const enum Cmd {
  // 4.5, table 9: measure T & RH with high precision (high repeatability). The sensor does not
  // acknowledge its read header while measuring.
  Measure = 0xfd,
}

const enum Ms {
  // Table 4 (2.4 timing): measurement duration at high repeatability, 8.3 ms maximum.
  Measure = 9,
}

// The SHT4x has no register to read at once (its serial number needs a 1 ms wait after the
// command), so the constructor talks to nothing; the first sample finds a missing chip.
export class SHT4x extends Sensirion {
  constructor(options: SHT4xOptions) {
    super(options.i2c, options.address || 0x44, "SHT4x");
  }

  /** One measurement; `callback(err, reading)` runs from a timer 9 ms later. Never throws. */
  sample(callback: SampleCallback<SHT4xReading>): void {
    this.measure_(Cmd.Measure, Ms.Measure, 2, sht4x, callback);
  }
}

/**
 * 4.6: T = -45 + 175 * S_T / (2^16 - 1) °C; RH = -6 + 125 * S_RH / (2^16 - 1) %, which can leave
 * 0..100 at the ends of the range; the datasheet says to crop it.
 */
function sht4x(w: number[]): SHT4xReading {
  const rh = -6 + (125 * w[1]) / 65535;
  return { temperature: round(-45 + (175 * w[0]) / 65535, 100), humidity: round(rh < 0 ? 0 : rh > 100 ? 100 : rh, 10) };
}
