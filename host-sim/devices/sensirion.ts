// What the models of Sensirion's I2C sensors share (SHT3x, SHT4x, SCD4x): commands written MSB
// first, answers as 16-bit words each followed by its CRC-8 (polynomial 0x31, init 0xFF), and no
// acknowledge while the chip is busy or has nothing to send. The formulas here are the models' own
// transcription of the datasheets, kept apart from drivers/ on purpose: the driver is under test.

import { NACK, type I2CDevice } from "../i2c.ts";

/** Sensirion's CRC-8 of a 16-bit word. */
export function sensirionCrc(word: number): number {
  let crc = 0xff;
  for (const byte of [word >> 8, word & 0xff]) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x80 ? ((crc << 1) ^ 0x31) & 0xff : (crc << 1) & 0xff;
  }
  return crc;
}

/** Words as the chip sends them: MSB, LSB, CRC for each; `corrupt` flips a bit of the first CRC. */
export function encodeWords(words: number[], corrupt = false): Uint8Array {
  const out = new Uint8Array(words.length * 3);
  words.forEach((w, i) => {
    out[3 * i] = (w >> 8) & 0xff;
    out[3 * i + 1] = w & 0xff;
    out[3 * i + 2] = sensirionCrc(w & 0xffff);
  });
  if (corrupt && out.length) out[2]! ^= 0x10;
  return out;
}

/** A raw 16-bit signal for `value` on the scale value = offset + span * S / divisor, clamped. */
export function toSignal(value: number, offset: number, span: number, divisor: number): number {
  return Math.max(0, Math.min(0xffff, Math.round(((value - offset) * divisor) / span)));
}

/**
 * The common model: a chip that takes commands, is busy for a while after some (NACKing every
 * transfer), and then has words to read once (NACKing a read when it has none).
 */
export abstract class SensirionModel implements I2CDevice {
  /** Every answer's first CRC is wrong (fault: CRC errors on the bus). */
  corrupt = false;
  /** Commands received, newest last (for tests). */
  readonly commands: number[] = [];
  protected busyUntil = -Infinity;
  protected pending: number[] | undefined;

  constructor(protected readonly now: () => number) {}

  /** Handle a command (16-bit, or 8-bit for SHT4x); `args` are the words after it, if any. */
  protected abstract command(command: number, bytes: Uint8Array): void | typeof NACK;

  /** Called before every transfer, to finish what is due. */
  protected settle(): void {}

  write(bytes: Uint8Array): void | typeof NACK {
    this.settle();
    if (this.now() < this.busyUntil) return NACK;
    const command = this.commandOf(bytes);
    this.commands.push(command);
    return this.command(command, bytes);
  }

  read(n: number): Uint8Array | typeof NACK {
    this.settle();
    if (this.now() < this.busyUntil || !this.pending) return NACK;
    const words = this.pending;
    this.pending = undefined;
    return encodeWords(words, this.corrupt).subarray(0, n);
  }

  protected commandOf(bytes: Uint8Array): number {
    return bytes.length >= 2 ? (bytes[0]! << 8) | bytes[1]! : bytes[0]!;
  }
}
