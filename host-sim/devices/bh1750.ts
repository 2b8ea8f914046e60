// ROHM BH1750FVI ambient light sensor (datasheet 2011.11 Rev.D) at the opcode level: power down /
// power on / reset, continuous and one-time modes at H, H2 and L resolution. A measurement takes the
// typical time (H: 120 ms, L: 16 ms) and then the data register holds count = lux * 1.2 (at the
// default MTreg 69); a one-time measurement then powers the chip down. Reads return the data
// register as it is (the previous result while measuring, 0 after power-on or reset).

import type { I2CDevice } from "../i2c.ts";
import { gaussianSource } from "../random.ts";

export interface BH1750ModelOptions {
  environment: () => { light: number };
  now: () => number;
  /** Seeded error: a fixed sensitivity within the accuracy (0.96..1.44 around 1.2), plus 1 % noise. */
  noise?: { seed: number };
}

export class BH1750Model implements I2CDevice {
  powered = false;
  /** The 16-bit data register. */
  data = 0;
  measurements = 0;
  private measuring: { op: number; end: number; oneTime: boolean; count: number } | undefined;
  private readonly rng: (() => number) | undefined;
  private readonly sensitivity: number = 1.2;

  constructor(private readonly options: BH1750ModelOptions) {
    if (options.noise) {
      const rng = (this.rng = gaussianSource(options.noise.seed));
      this.sensitivity = 1.2 * (1 + Math.max(-0.18, Math.min(0.18, rng() * 0.06)));
    }
  }

  write(bytes: Uint8Array): void {
    for (const op of bytes) this.opcode(op);
  }

  read(n: number): Uint8Array {
    this.settle();
    return Uint8Array.of(this.data >> 8, this.data & 0xff).subarray(0, n);
  }

  private opcode(op: number): void {
    this.settle();
    if (op === 0x00) {
      this.powered = false;
      this.measuring = undefined;
      return;
    }
    if (op === 0x01) {
      this.powered = true;
      return;
    }
    if (!this.powered) return; // the measurement commands and reset need power on
    if (op === 0x07) {
      this.data = 0;
      return;
    }
    const ms: Record<number, number> = { 0x10: 120, 0x11: 120, 0x13: 16, 0x20: 120, 0x21: 120, 0x23: 16 };
    if (ms[op] === undefined) return;
    this.measurements++;
    const lux = this.options.environment().light * (1 + (this.rng ? this.rng() * 0.01 : 0));
    const perCount = op === 0x11 || op === 0x21 ? 2 : 1; // H2 mode: 0.5 lx per count
    this.measuring = { op, end: this.options.now() + ms[op]!, oneTime: op >= 0x20, count: Math.min(0xffff, Math.max(0, Math.round(lux * this.sensitivity * perCount))) };
  }

  private settle(): void {
    const m = this.measuring;
    if (!m || this.options.now() < m.end) return;
    this.data = m.count;
    this.measuring = undefined;
    if (m.oneTime) this.powered = false;
    else this.opcode(m.op); // continuous: the next one starts
  }
}
