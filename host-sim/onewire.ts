// Emulated 1-Wire lines and Espruino's OneWire master (`new OneWire(pin)`), slot by slot: the
// master's reset pulses, write slots and read slots reach every device on the pin, and a read slot
// reads low if any device pulls it low (wired AND), so ROM search and bus collisions behave as on
// the wire. The master follows Espruino 2v29's src/jswrap_onewire.c:
// - reset() returns whether anything pulled the line low after the reset pulse (presence);
// - select(rom) takes 16 hex digits (else TypeError "Invalid OneWire device address"), always
//   resets first, then sends MATCH ROM (0x55) and the 64 bits, byte 0 (family) first, LSB first;
// - skip() sends SKIP ROM (0xCC) without a reset;
// - write(data, power) sends each byte LSB first; with power it then drives the line high (the
//   strong pull-up parasite-powered devices need), otherwise releases it;
// - read() reads a byte (8 read slots, LSB first); read(n) a Uint8Array of n;
// - search(command) runs Maxim's application note 187 algorithm, returns the ROMs as 16 lowercase
//   hex digits; it checks no CRC, and drops a ROM whose first byte is 0 (as the C code does).

import type { Runtime } from "./runtime.ts";

/** A device on a 1-Wire line, seen slot by slot. */
export interface OneWireDevice {
  /** A reset pulse; true answers with a presence pulse. */
  reset(): boolean;
  /** A write slot carrying `bit`. */
  writeBit(bit: number): void;
  /** A read slot: 0 pulls the line low, 1 leaves it to the pull-up. */
  readBit(): number;
}

export class OneWireLine {
  readonly pin: number;
  /**
   * Held low (a short, a device hung): every reset sees "presence", every read slot reads 0, and
   * the devices, whose line is low for good, see nothing but one long reset.
   */
  stuck = false;
  /** The last strong pull-up: from, and until (undefined while it is still on). */
  private pullup: { from: number; until: number | undefined } | undefined;
  private readonly devices: OneWireDevice[] = [];
  private readonly now: () => number;

  constructor(pin: number, now: () => number) {
    this.pin = pin;
    this.now = now;
  }

  attach(device: OneWireDevice): void {
    if (!this.devices.includes(device)) this.devices.push(device);
  }

  detach(device: OneWireDevice): void {
    const i = this.devices.indexOf(device);
    if (i >= 0) this.devices.splice(i, 1);
  }

  has(device: OneWireDevice): boolean {
    return this.devices.includes(device);
  }

  reset(): boolean {
    this.release();
    if (this.stuck) return true;
    let present = false;
    for (const d of this.devices) if (d.reset()) present = true;
    return present;
  }

  writeBit(bit: number): void {
    this.release();
    if (this.stuck) return;
    for (const d of this.devices) d.writeBit(bit & 1);
  }

  readBit(): number {
    this.release();
    if (this.stuck) return 0;
    let level = 1;
    // every device sees the slot; any one pulling low wins
    for (const d of this.devices) level &= d.readBit();
    return level;
  }

  /** The master drives the line high after a write with `power` (until its next slot). */
  holdHigh(): void {
    this.pullup = { from: this.now(), until: undefined };
  }

  /** The line was driven high without a break over all of [from, to] (ms). */
  poweredOver(from: number, to: number): boolean {
    const p = this.pullup;
    if (!p) return false;
    // the strong pull-up comes within microseconds of the Convert T byte, which is `from`
    return p.from <= from + 1 && (p.until === undefined ? this.now() : p.until) >= to;
  }

  private release(): void {
    if (this.pullup && this.pullup.until === undefined) this.pullup.until = this.now();
  }
}

/** The node's 1-Wire lines, by GPIO; they outlive soft resets, as wires do. */
export class OneWireLines {
  private readonly lines = new Map<number, OneWireLine>();
  constructor(private readonly now: () => number) {}

  line(pin: number): OneWireLine {
    let l = this.lines.get(pin);
    if (!l) this.lines.set(pin, (l = new OneWireLine(pin, this.now)));
    return l;
  }

  all(): OneWireLine[] {
    return [...this.lines.values()];
  }
}

type Bytes = number | string | ArrayLike<number>;

/** Runtime plugin: the global OneWire class over `lines`. */
export function oneWirePlugin(lines: OneWireLines): (runtime: Runtime) => void {
  return (runtime) => {
    const { realm } = runtime;
    const writeByte = (line: OneWireLine, byte: number) => {
      for (let i = 0; i < 8; i++) line.writeBit((byte >> i) & 1);
    };
    const readByte = (line: OneWireLine) => {
      let b = 0;
      for (let i = 0; i < 8; i++) b |= line.readBit() << i;
      return b;
    };
    const eachByte = (data: Bytes, fn: (b: number) => void) => {
      if (typeof data === "number") fn(data & 0xff);
      else if (typeof data === "string") for (let i = 0; i < data.length; i++) fn(data.charCodeAt(i) & 0xff);
      else if (data && typeof data === "object") for (let i = 0; i < data.length; i++) fn(Number(data[i]) & 0xff);
    };
    function OneWire(pin: unknown) {
      const n = Number(pin);
      if (!Number.isInteger(n) || n < 0 || n > 39) throw new realm.Error(`Invalid pin ${String(pin)}`);
      const line = lines.line(n);
      return runtime.newObject({
        pin,
        reset: () => line.reset(),
        select: (rom: unknown) => {
          if (typeof rom !== "string" || rom.length !== 16) throw new realm.TypeError(`Invalid OneWire device address ${JSON.stringify(rom)}`);
          line.reset();
          writeByte(line, 0x55);
          for (let i = 0; i < 8; i++) writeByte(line, parseInt(rom.substr(2 * i, 2), 16) & 0xff);
        },
        skip: () => writeByte(line, 0xcc),
        write: (data: Bytes, power?: unknown) => {
          eachByte(data, (b) => writeByte(line, b));
          if (power) line.holdHigh();
        },
        read: (count?: unknown) => {
          if (typeof count !== "number") return readByte(line);
          const out = new realm.Uint8Array(Math.max(0, count));
          for (let i = 0; i < out.length; i++) out[i] = readByte(line);
          return out;
        },
        search: (command?: unknown) => runtime.newArray(search(line, typeof command === "number" && command > 0 && command <= 255 ? command : 0xf0)),
      });
    }
    runtime.defineGlobal("OneWire", OneWire);
  };
}

/** Maxim application note 187's search, as jswrap_onewire_search runs it. */
export function search(line: OneWireLine, command = 0xf0): string[] {
  const found: string[] = [];
  const rom = new Uint8Array(8);
  let lastDiscrepancy = 0;
  let lastDevice = false;
  for (;;) {
    if (lastDevice || !line.reset()) break;
    for (let i = 0; i < 8; i++) line.writeBit((command >> i) & 1);
    let bitNumber = 1;
    let lastZero = 0;
    let complete = true;
    for (let byte = 0, mask = 1; byte < 8; ) {
      const idBit = line.readBit();
      const cmpBit = line.readBit();
      if (idBit === 1 && cmpBit === 1) {
        complete = false; // nobody answered
        break;
      }
      let direction: number;
      if (idBit !== cmpBit) direction = idBit;
      else {
        direction = bitNumber < lastDiscrepancy ? (rom[byte]! & mask ? 1 : 0) : bitNumber === lastDiscrepancy ? 1 : 0;
        if (direction === 0) lastZero = bitNumber;
      }
      if (direction) rom[byte]! |= mask;
      else rom[byte]! &= ~mask & 0xff;
      line.writeBit(direction);
      bitNumber++;
      mask = (mask << 1) & 0xff;
      if (mask === 0) {
        byte++;
        mask = 1;
      }
    }
    if (!complete || rom[0] === 0) break;
    lastDiscrepancy = lastZero;
    if (lastDiscrepancy === 0) lastDevice = true;
    found.push([...rom].map((b) => b.toString(16).padStart(2, "0")).join(""));
  }
  return found;
}
