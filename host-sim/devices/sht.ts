// Sensirion SHT3x-DIS (datasheet v5, May 2018) and SHT4x (v6.6) humidity and temperature sensors,
// single-shot, at the command level. Raw signals invert the datasheets' conversions:
//   SHT3x 4.13: T = -45 + 175 S_T / 65535, RH = 100 S_RH / 65535
//   SHT4x 4.6:  T = -45 + 175 S_T / 65535, RH = -6 + 125 S_RH / 65535

import { NACK } from "../i2c.ts";
import { gaussianSource } from "../random.ts";
import { SensirionModel, toSignal } from "./sensirion.ts";

export interface ShtModelOptions {
  environment: () => { temperature: number; humidity: number };
  now: () => number;
  /** Seeded error: a fixed offset within the typical accuracy, plus the repeatability as noise. */
  noise?: { seed: number };
}

abstract class ShtModel extends SensirionModel {
  /** Measurements started. */
  measurements = 0;
  private readonly rng: (() => number) | undefined;
  private readonly offset = { temperature: 0, humidity: 0 };

  constructor(protected readonly options: ShtModelOptions, accuracy: { temperature: number; humidity: number }) {
    super(options.now);
    if (options.noise) {
      const rng = (this.rng = gaussianSource(options.noise.seed));
      const within = (limit: number) => Math.max(-0.9 * limit, Math.min(0.9 * limit, (rng() * limit) / 3));
      this.offset = { temperature: within(accuracy.temperature), humidity: within(accuracy.humidity) };
    }
  }

  protected sense(): { temperature: number; humidity: number } {
    const env = this.options.environment();
    const noise = (sd: number) => (this.rng ? this.rng() * sd : 0);
    return {
      temperature: env.temperature + this.offset.temperature + noise(0.01),
      humidity: Math.max(0, Math.min(100, env.humidity + this.offset.humidity + noise(0.03))),
    };
  }

  /** Start a measurement: busy (NACK) for `ms`, then `words` can be read once. */
  protected measure(ms: number, words: number[]): void {
    this.measurements++;
    this.busyUntil = this.now() + ms;
    this.pending = words;
  }
}

export class SHT3xModel extends ShtModel {
  /** Status register (table 17): alert pending and reset detected after power-on. */
  status = 0x8010;

  constructor(options: ShtModelOptions) {
    // SHT31 typical accuracy (1.1, 1.2): ±0.2 °C, ±2 %RH
    super(options, { temperature: 0.2, humidity: 2 });
  }

  protected command(command: number): void | typeof NACK {
    // Table 4, typical measurement durations: low 2.5 ms, medium 4.5 ms, high 12.5 ms
    const single: Record<number, number> = { 0x2400: 12.5, 0x240b: 4.5, 0x2416: 2.5, 0x2c06: 12.5, 0x2c0d: 4.5, 0x2c10: 2.5 };
    if (single[command] !== undefined) {
      const e = this.sense();
      return this.measure(single[command]!, [toSignal(e.temperature, -45, 175, 65535), toSignal(e.humidity, 0, 100, 65535)]);
    }
    switch (command) {
      case 0xf32d:
        this.pending = [this.status];
        return;
      case 0x3041:
        this.status &= ~0x8c13; // clear status (4.11): alert bits and reset flag
        return;
      case 0x30a2: // soft reset, 1.5 ms at most
        this.status = 0x8010;
        this.pending = undefined;
        this.busyUntil = this.now() + 1;
        return;
      default:
        // an unknown command (or a bad checksum in a write) is not acknowledged
        return NACK;
    }
  }
}

export class SHT4xModel extends ShtModel {
  readonly serial = 0x0f3c_9a21;

  constructor(options: ShtModelOptions) {
    // SHT40 typical accuracy (2.1, 2.2): ±0.2 °C, ±1.8 %RH
    super(options, { temperature: 0.2, humidity: 1.8 });
  }

  protected command(command: number, bytes: Uint8Array): void | typeof NACK {
    if (bytes.length !== 1) return NACK;
    // Table 4 typical durations: high 6.9 ms, medium 3.7 ms, low 1.3 ms
    const single: Record<number, number> = { 0xfd: 6.9, 0xf6: 3.7, 0xe0: 1.3 };
    if (single[command] !== undefined) {
      const e = this.sense();
      return this.measure(single[command]!, [toSignal(e.temperature, -45, 175, 65535), toSignal(e.humidity, -6, 125, 65535)]);
    }
    switch (command) {
      case 0x89:
        this.busyUntil = this.now() + 1;
        this.pending = [this.serial >>> 16, this.serial & 0xffff];
        return;
      case 0x94:
        this.pending = undefined;
        this.busyUntil = this.now() + 1;
        return;
      default:
        return NACK;
    }
  }
}
