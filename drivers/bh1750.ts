// ROHM BH1750FVI digital ambient light sensor over I2C, one-time high-resolution mode.
// Datasheet: "BH1750FVI", ROHM, 2011.11 Rev.D, https://www.mouser.com/datasheet/2/348/bh1750fvi-e-186247.pdf
// Runs on Espruino: no default parameters, destructuring or async (see espruino-compat.md).

import type { I2CBus, SampleCallback } from "./bus";
import { message, round } from "./bus";

export interface BH1750Options {
  i2c: I2CBus;
  /** 0x23 with ADDR low (default), 0x5C with ADDR high ("Slave Address", p.10). */
  address?: number;
}

/** lx (0.1). */
export interface BH1750Reading {
  illuminance: number;
}

// "Instruction Set Architecture" (p.5).
const enum Op {
  PowerOn = 0x01, // waiting for a measurement command
  OneTimeH = 0x20, // one measurement at 1 lx resolution, then power down by itself
}

const enum Ms {
  // "Electrical Characteristics" (p.2): H-resolution mode measurement time 120 ms typical, 180 ms maximum.
  Measure = 180,
}

// Names ending in `_` are internal; the build shortens them.
export class BH1750 {
  declare i2c_: I2CBus;
  declare address: number;

  /** The BH1750 has no id register: an acknowledged power-on is all that shows it is there. */
  constructor(options: BH1750Options) {
    this.i2c_ = options.i2c;
    this.address = options.address || 0x23;
    try {
      this.i2c_.writeTo(this.address, Op.PowerOn);
    } catch (e) {
      throw bh1750Error(this, e);
    }
  }

  /** One measurement; `callback(err, reading)` runs from a timer 180 ms later. Never throws. */
  sample(callback: SampleCallback<BH1750Reading>): void {
    let error: unknown = null;
    try {
      // Measurement procedure (p.10): power on, then the measurement command.
      this.i2c_.writeTo(this.address, Op.PowerOn);
      this.i2c_.writeTo(this.address, Op.OneTimeH);
    } catch (e) {
      error = e;
    }
    setTimeout(bh1750Read, Ms.Measure, this, callback, error);
  }
}

/** p.7: illuminance = count / 1.2 lx at the default measurement time (MTreg 69). */
function bh1750Read(s: BH1750, callback: SampleCallback<BH1750Reading>, error: unknown): void {
  let d;
  try {
    if (error) throw error;
    d = s.i2c_.readFrom(s.address, 2);
  } catch (e) {
    return callback(bh1750Error(s, e));
  }
  callback(null, { illuminance: round(((d[0] << 8) | d[1]) / 1.2, 10) });
}

function bh1750Error(s: BH1750, e: unknown): Error {
  return Error("BH1750 at 0x" + s.address.toString(16) + ": " + message(e));
}
