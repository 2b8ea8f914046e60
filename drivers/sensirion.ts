// What Sensirion's I2C sensors share (SHT3x, SHT4x, SCD4x): a command is a 16-bit word (8-bit on
// SHT4x) written MSB first; data comes back as 16-bit words, each followed by a CRC-8 the driver
// checks. Datasheet SHT3x-DIS (v5, May 2018) 4.12, SHT4x (v6.6) 4.4, SCD4x (v1.3) 3.11:
//   CRC-8, polynomial 0x31 (x^8 + x^5 + x^4 + 1), initialisation 0xFF, no reflection, final XOR 0x00;
//   example CRC(0xBEEF) = 0x92.
// Runs on Espruino: no default parameters, destructuring or async (see espruino-compat.md).

import type { I2CBus, SampleCallback } from "./bus";
import { message } from "./bus";

// The 8 shift steps are linear, so a byte's step is the XOR of its two nibbles' steps: two
// 16-entry tables (precomputed from polynomial 0x31) make it 2 lookups a byte, 3.7 times faster
// than the bit loop on the interpreter (20 against 75 us a word).
const HIGH = /* @__PURE__ */ new Uint8Array([0x00, 0x43, 0x86, 0xc5, 0x3d, 0x7e, 0xbb, 0xf8, 0x7a, 0x39, 0xfc, 0xbf, 0x47, 0x04, 0xc1, 0x82]);
const LOW = /* @__PURE__ */ new Uint8Array([0x00, 0x31, 0x62, 0x53, 0xc4, 0xf5, 0xa6, 0x97, 0xb9, 0x88, 0xdb, 0xea, 0x7d, 0x4c, 0x1f, 0x2e]);

/** CRC-8 of the two bytes `data[at]`, `data[at + 1]`, as Sensirion defines it (see above). */
export function crc8(data: Uint8Array | number[], at: number): number {
  let x = 0xff ^ data[at];
  x = HIGH[x >> 4] ^ LOW[x & 15] ^ data[at + 1];
  return HIGH[x >> 4] ^ LOW[x & 15];
}

/** The family base: one chip at one address on an I2C bus. Names ending in `_` are internal. */
export class Sensirion {
  declare i2c_: I2CBus;
  declare address: number;
  /** The chip's name in error messages. */
  declare chip_: string;

  constructor(i2c: I2CBus, address: number, chip: string) {
    this.i2c_ = i2c;
    this.address = address;
    this.chip_ = chip;
  }

  command_(command: number): void {
    this.i2c_.writeTo(this.address, command > 255 ? [command >> 8, command & 255] : command);
  }

  /** Read `n` words, checking each CRC; throws naming the word that failed. */
  words_(n: number): number[] {
    const d = this.i2c_.readFrom(this.address, 3 * n),
      out: number[] = [];
    // Nothing drove SDA (software I2C checks no ACK): every byte reads 0xFF, and CRC(0xFFFF) is 0xAC.
    if ((d[0] & d[1] & d[2]) == 255) throw Error("no device answered");
    for (let i = 0; i < 3 * n; i += 3) {
      if (crc8(d, i) != d[i + 2]) throw Error("CRC mismatch in word " + i / 3);
      out.push((d[i] << 8) | d[i + 1]);
    }
    return out;
  }

  /** An error naming the chip and its address. */
  fail_(e: unknown): Error {
    return Error(this.chip_ + " at 0x" + this.address.toString(16) + ": " + message(e));
  }

  /**
   * Send `command`, wait `ms`, read `n` words and hand them to `convert`; `callback` gets the
   * reading or the error, from a timer. For the single-shot chips (SHT3x, SHT4x).
   */
  measure_<R>(command: number, ms: number, n: number, convert: (w: number[]) => R, callback: SampleCallback<R>): void {
    let error: unknown = null;
    try {
      this.command_(command);
    } catch (e) {
      error = e;
    }
    setTimeout(finishMeasure, ms, this, n, convert, callback, error);
  }
}

function finishMeasure<R>(s: Sensirion, n: number, convert: (w: number[]) => R, callback: SampleCallback<R>, error: unknown): void {
  let reading;
  try {
    if (error) throw error;
    reading = convert(s.words_(n));
  } catch (e) {
    return callback(s.fail_(e));
  }
  callback(null, reading);
}
