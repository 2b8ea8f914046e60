// What drivers are handed: Espruino's buses, or anything with the same methods (the simulator's,
// a test's register file). Types only, plus the error helper every driver shares.
// Runs on Espruino: no default parameters, destructuring or async (see espruino-compat.md).

/** Espruino's I2C (I2C1, I2C2, `new I2C()`): https://www.espruino.com/Reference#I2C */
export interface I2CBus {
  writeTo(address: number, data: number | number[] | Uint8Array | string): void;
  readFrom(address: number, quantity: number): Uint8Array;
}

/** Espruino's OneWire (`new OneWire(pin)`): https://www.espruino.com/Reference#OneWire */
export interface OneWireBus {
  /** A reset pulse; true when a device answered with a presence pulse. */
  reset(): boolean;
  /** Reset, then MATCH ROM (0x55) with `rom`: 16 hex digits, family code first, as search() gives them. */
  select(rom: string): void;
  /** SKIP ROM (0xCC). */
  skip(): void;
  /** Write bytes; `power` then drives the line high (a strong pull-up for parasite-powered devices). */
  write(data: number | number[], power?: boolean): void;
  read(): number;
  read(count: number): Uint8Array;
  /** Every ROM found by SEARCH ROM (0xF0), or by `command` (0xEC: ALARM SEARCH). Espruino checks no CRC. */
  search(command?: number): string[];
}

/** Every driver's sample() reports through one of these, always from a timer, exactly once. */
export type SampleCallback<R> = (err: Error | null, reading?: R) => void;

/** The text of a thrown value: Espruino's bus errors are Errors; a thrown string is itself. */
export function message(e: unknown): string {
  return ((e && (e as Error).message) as string) || "" + e;
}

/** Round to 1/`per` (100: two decimals). */
export function round(x: number, per: number): number {
  return Math.round(x * per) / per;
}
