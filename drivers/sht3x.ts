// Sensirion SHT3x-DIS (SHT30, SHT31, SHT35) humidity and temperature sensor over I2C: single shot,
// high repeatability, clock stretching disabled.
// Datasheet: "Datasheet SHT3x-DIS", version 5, May 2018,
// https://sensirion.com/media/documents/213E6A3B/63A5A569/Datasheet_SHT3x_DIS.pdf
// Runs on Espruino: no default parameters, destructuring or async (see espruino-compat.md).

import type { I2CBus, SampleCallback } from "./bus";
import { round } from "./bus";
import { Sensirion } from "./sensirion";

export interface SHT3xOptions {
  i2c: I2CBus;
  /** 0x44 with ADDR to VSS (default), 0x45 with ADDR to VDD (datasheet 3, table 7). */
  address?: number;
}

/** °C (0.01), %RH (0.1). */
export interface SHT3xReading {
  temperature: number;
  humidity: number;
}

const enum Cmd {
  // Table 9: high repeatability, clock stretching disabled. Without stretching the sensor answers a
  // read header with NACK while it measures (4.3), so the driver waits instead of polling.
  Measure = 0x2400,
  // Table 17: read out of status register, 2 bytes + CRC; used to find the chip.
  Status = 0xf32d,
}

const enum Ms {
  // Table 4: measurement duration at high repeatability, 12.5 ms typical, 15 ms maximum.
  Measure = 16,
}

export class SHT3x extends Sensirion {
  constructor(options: SHT3xOptions) {
    super(options.i2c, options.address || 0x44, "SHT3x");
    try {
      this.command_(Cmd.Status);
      this.words_(1);
    } catch (e) {
      throw this.fail_(e);
    }
  }

  /** One single-shot measurement; `callback(err, reading)` runs from a timer 16 ms later. Never throws. */
  sample(callback: SampleCallback<SHT3xReading>): void {
    this.measure_(Cmd.Measure, Ms.Measure, 2, sht3x, callback);
  }
}

/** 4.13: T = -45 + 175 * S_T / (2^16 - 1) °C; RH = 100 * S_RH / (2^16 - 1) %. */
function sht3x(w: number[]): SHT3xReading {
  return { temperature: round(-45 + (175 * w[0]) / 65535, 100), humidity: round((100 * w[1]) / 65535, 10) };
}
