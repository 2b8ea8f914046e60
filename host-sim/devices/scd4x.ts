// Sensirion SCD4x CO2 sensor (datasheet v1.3, September 2022) at the command level: idle after
// power-on; start_periodic_measurement gives a new measurement every 5 s (the first 5 s after
// start); get_data_ready_status, read_measurement (which empties the buffer; NACK when it is
// empty), stop_periodic_measurement (500 ms during which nothing is acknowledged), get_serial_number.
// Commands other than those allowed "during measurement" (table 9) are not acknowledged while
// measuring. Raw signals invert 3.5.2: T = -45 + 175 S / 2^16, RH = 100 S / 2^16.

import { NACK } from "../i2c.ts";
import { gaussianSource } from "../random.ts";
import { SensirionModel, toSignal } from "./sensirion.ts";

export interface SCD4xModelOptions {
  environment: () => { co2: number; temperature: number; humidity: number };
  now: () => number;
  /** Seeded error: offsets within the accuracy (table 1-3), plus the repeatability as noise. */
  noise?: { seed: number };
}

const INTERVAL_MS = 5000;

export class SCD4xModel extends SensirionModel {
  readonly serial = [0xf896, 0x9f07, 0x3bbe]; // datasheet 3.9.2's example
  /** When periodic measurement started (undefined: idle). */
  private startedAt: number | undefined;
  /** The index of the last measurement read (0: none yet). */
  private lastRead = 0;
  private readonly rng: (() => number) | undefined;
  private readonly offset = { co2: 0, temperature: 0, humidity: 0 };

  constructor(private readonly options: SCD4xModelOptions) {
    super(options.now);
    if (options.noise) {
      const rng = (this.rng = gaussianSource(options.noise.seed));
      const within = (limit: number) => Math.max(-0.9 * limit, Math.min(0.9 * limit, (rng() * limit) / 3));
      this.offset = { co2: within(40), temperature: within(0.8), humidity: within(6) };
    }
  }

  /** Periodic measurement is running. */
  get measuring(): boolean {
    return this.startedAt !== undefined;
  }

  /** Power cycle: idle, buffer empty. */
  powerOn(): void {
    this.startedAt = undefined;
    this.lastRead = 0;
    this.pending = undefined;
    this.busyUntil = this.now() + 1000; // 3.1: 1000 ms to reach idle
  }

  /** Index of the newest completed measurement (0: none). */
  private newest(): number {
    return this.startedAt === undefined ? 0 : Math.floor((this.now() - this.startedAt) / INTERVAL_MS);
  }

  protected command(command: number): void | typeof NACK {
    const allowedWhileMeasuring = [0xec05, 0x3f86, 0xe4b8, 0xe000];
    if (this.measuring && !allowedWhileMeasuring.includes(command)) return NACK;
    switch (command) {
      case 0x21b1: // start_periodic_measurement
        this.startedAt = this.now();
        this.lastRead = 0;
        return;
      case 0x3f86: // stop_periodic_measurement
        this.startedAt = undefined;
        this.pending = undefined;
        this.busyUntil = this.now() + 500;
        return;
      case 0xe4b8: {
        // get_data_ready_status: the low 11 bits are 0 when there is no new data (3.8.2)
        const ready = this.newest() > this.lastRead;
        this.pending = [ready ? 0x8006 : 0x8000];
        this.busyUntil = this.now() + 1;
        return;
      }
      case 0xec05: {
        const newest = this.newest();
        this.busyUntil = this.now() + 1;
        if (newest <= this.lastRead) {
          this.pending = undefined; // the read header will be NACKed
          return;
        }
        this.lastRead = newest;
        const e = this.options.environment();
        const noise = (sd: number) => (this.rng ? this.rng() * sd : 0);
        const co2 = Math.max(0, Math.min(40000, Math.round(e.co2 + this.offset.co2 + noise(10))));
        this.pending = [
          co2,
          toSignal(e.temperature + this.offset.temperature + noise(0.1), -45, 175, 65536),
          toSignal(Math.max(0, Math.min(100, e.humidity + this.offset.humidity + noise(0.4))), 0, 100, 65536),
        ];
        return;
      }
      case 0x3682: // get_serial_number
        this.pending = [...this.serial];
        this.busyUntil = this.now() + 1;
        return;
      case 0x3646: // reinit
        this.busyUntil = this.now() + 20;
        return;
      default:
        return NACK;
    }
  }
}
