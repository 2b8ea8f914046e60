// A Maxim DS18B20 on an emulated 1-Wire line, slot by slot (datasheet 19-7487 Rev 6): ROM commands
// (SEARCH ROM F0h with its bit / complement / direction triplets, READ ROM 33h, MATCH ROM 55h,
// SKIP ROM CCh, ALARM SEARCH ECh) and function commands (CONVERT T 44h, WRITE / READ / COPY
// SCRATCHPAD 4Eh / BEh / 48h, RECALL E2 B8h, READ POWER SUPPLY B4h). The temperature register
// takes the environment's temperature at the end of a conversion, quantised to the resolution.
// Parasite power is modelled: such a device pulls the line low when asked for its power supply,
// and its conversion only completes if the master held the line high throughout.

import { gaussianSource } from "../random.ts";
import type { OneWireDevice, OneWireLine } from "../onewire.ts";

export interface DS18B20ModelOptions {
  /** 16 hex digits, family 28 first, CRC last (see romWithCrc). */
  rom: string;
  environment: () => { temperature: number };
  /** Clock, ms: conversions take the datasheet's time (table 2) for the resolution. */
  now: () => number;
  /** Powered from the data line (needs the strong pull-up while converting). */
  parasite?: boolean;
  /** The line the device is on (for parasite power). */
  line?: OneWireLine;
  /** Seeded error: a fixed offset within the ±0.5 °C accuracy, plus 0.01 °C RMS noise. */
  noise?: { seed: number };
}

/** Dallas/Maxim CRC-8, x^8 + x^5 + x^4 + 1, LSB first (datasheet "CRC Generation"). */
export function crc8(bytes: ArrayLike<number>, n = bytes.length): number {
  let crc = 0;
  for (let i = 0; i < n; i++) {
    let b = bytes[i]!;
    for (let bit = 0; bit < 8; bit++) {
      crc = (crc ^ b) & 1 ? (crc >> 1) ^ 0x8c : crc >> 1;
      b >>= 1;
    }
  }
  return crc;
}

/** A full ROM code from family 28 and a 48-bit serial (12 hex digits): the CRC appended. */
export function romWithCrc(serialHex: string): string {
  const head = "28" + serialHex.toLowerCase();
  const bytes = head.match(/../g)!.map((b) => parseInt(b, 16));
  return head + crc8(bytes, 7).toString(16).padStart(2, "0");
}

/** °C as the 16-bit temperature register (table 1), quantised to `bits` (lower bits 0). */
export function temperatureRegister(celsius: number, bits: number): number {
  const clamped = Math.max(-55, Math.min(125, celsius));
  const step = 1 << (12 - bits);
  return (Math.floor(Math.round(clamped * 16) / step) * step) & 0xffff;
}

type State = "idle" | "rom" | "match" | "search" | "readrom" | "function" | "write" | "read" | "power" | "convert";

const CONVERT_MS = [93.75, 187.5, 375, 750]; // table 2, 9..12 bits
const POWER_ON = 0x0550; // +85 °C

export class DS18B20Model implements OneWireDevice {
  readonly rom: string;
  /** The 9-byte scratchpad; bytes 0-1 the temperature register, 8 the CRC (kept current). */
  readonly scratchpad = new Uint8Array(9);
  /** TH, TL and configuration as stored in EEPROM (what a power-on restores). */
  readonly eeprom = { th: 0x4b, tl: 0x46, config: 0x7f };
  /** Every read scratchpad has a bit flipped (fault: CRC errors on the wire). */
  corrupt = false;
  /** Conversions completed, and failed for want of power. */
  conversions = 0;
  failedConversions = 0;
  /** EEPROM writes (COPY SCRATCHPAD): a driver should not wear it. */
  eepromWrites = 0;

  private readonly romBytes: number[];
  private state: State = "idle";
  private bits: number[] = [];
  private out: number[] = [];
  private searchBit = 0;
  private searchPhase = 0;
  private converting: { start: number; end: number; temperature: number } | undefined;
  private readonly rng: (() => number) | undefined;
  private readonly offset: number = 0;

  constructor(private readonly options: DS18B20ModelOptions) {
    if (!/^28[0-9a-f]{14}$/i.test(options.rom)) throw new Error(`DS18B20 ROM must be 16 hex digits starting 28, got ${options.rom}`);
    this.rom = options.rom.toLowerCase();
    this.romBytes = this.rom.match(/../g)!.map((b) => parseInt(b, 16));
    if (options.noise) {
      this.rng = gaussianSource(options.noise.seed);
      this.offset = Math.max(-0.4, Math.min(0.4, this.rng() * 0.15));
    }
    this.powerOn();
  }

  /** Power applied (again): scratchpad from EEPROM, the temperature register at +85 °C. */
  powerOn(): void {
    const s = this.scratchpad;
    s[0] = POWER_ON & 0xff;
    s[1] = POWER_ON >> 8;
    s[2] = this.eeprom.th;
    s[3] = this.eeprom.tl;
    s[4] = this.eeprom.config;
    s[5] = 0xff;
    s[6] = 0x0c; // reserved
    s[7] = 0x10;
    s[8] = crc8(s, 8);
    this.converting = undefined;
    this.state = "idle";
  }

  get resolution(): number {
    return ((this.scratchpad[4]! >> 5) & 3) + 9;
  }

  reset(): boolean {
    this.settle();
    this.state = "rom";
    this.bits = [];
    return true;
  }

  writeBit(bit: number): void {
    this.settle();
    switch (this.state) {
      case "rom":
      case "function":
        if (this.collect(bit, 8)) this.command(this.byteOf(this.bits));
        return;
      case "match":
        if (bit !== this.romBit(this.bits.length)) {
          this.state = "idle";
          return;
        }
        if (this.collect(bit, 64)) this.begin("function");
        return;
      case "search":
        // third slot of the triplet: the master's direction; a device whose bit differs drops out
        if (this.searchPhase !== 2) return;
        if (bit !== this.romBit(this.searchBit)) this.state = "idle";
        else if (++this.searchBit === 64) this.begin("function");
        this.searchPhase = 0;
        return;
      case "write":
        if (this.collect(bit, 24)) {
          const b = this.bytesOf(this.bits);
          this.scratchpad[2] = b[0]!;
          this.scratchpad[3] = b[1]!;
          // configuration: only R1 R0 are writable; the rest reads 0xx11111 (figure 10)
          this.scratchpad[4] = (b[2]! & 0x60) | 0x1f;
          this.scratchpad[8] = crc8(this.scratchpad, 8);
          this.state = "idle";
        }
        return;
      default:
        return;
    }
  }

  readBit(): number {
    this.settle();
    switch (this.state) {
      case "search": {
        if (this.searchPhase === 2) return 1;
        const b = this.romBit(this.searchBit);
        return this.searchPhase++ === 0 ? b : b ^ 1;
      }
      case "readrom":
      case "read":
        return this.out.length ? this.out.shift()! : 1;
      case "power":
        return this.options.parasite ? 0 : 1;
      case "convert":
        // externally powered: 0 while converting, 1 when done ("CONVERT T [44h]")
        return this.converting ? 0 : 1;
      default:
        return 1;
    }
  }

  private command(c: number): void {
    if (this.state === "rom") {
      switch (c) {
        case 0x33:
          return this.send(this.romBytes, "readrom");
        case 0x55:
          return this.begin("match");
        case 0xcc:
          return this.begin("function");
        case 0xf0:
          return this.startSearch();
        case 0xec:
          // ALARM SEARCH: only a device whose last reading is outside TL..TH answers
          return this.alarm() ? this.startSearch() : void (this.state = "idle");
        default:
          this.state = "idle";
          return;
      }
    }
    switch (c) {
      case 0x44: {
        const now = this.options.now();
        const env = this.options.environment().temperature;
        const t = env + this.offset + (this.rng ? this.rng() * 0.01 : 0);
        this.converting = { start: now, end: now + CONVERT_MS[this.resolution - 9]!, temperature: t };
        this.state = "convert";
        return;
      }
      case 0xbe: {
        const data = [...this.scratchpad];
        if (this.corrupt) data[0]! ^= 0x01;
        return this.send(data, "read");
      }
      case 0x4e:
        return this.begin("write");
      case 0x48:
        this.eepromWrites++;
        this.eeprom.th = this.scratchpad[2]!;
        this.eeprom.tl = this.scratchpad[3]!;
        this.eeprom.config = this.scratchpad[4]!;
        this.state = "idle";
        return;
      case 0xb8:
        this.scratchpad[2] = this.eeprom.th;
        this.scratchpad[3] = this.eeprom.tl;
        this.scratchpad[4] = this.eeprom.config;
        this.scratchpad[8] = crc8(this.scratchpad, 8);
        this.state = "idle";
        return;
      case 0xb4:
        this.state = "power";
        return;
      default:
        this.state = "idle";
    }
  }

  /** Complete a conversion whose time is up (lazily, at the next slot). */
  private settle(): void {
    const c = this.converting;
    if (!c || this.options.now() < c.end) return;
    this.converting = undefined;
    if (this.state === "convert") this.state = "idle";
    if (this.options.parasite && !this.options.line?.poweredOver(c.start, c.end)) {
      this.failedConversions++;
      return;
    }
    this.conversions++;
    const reg = temperatureRegister(c.temperature, this.resolution);
    this.scratchpad[0] = reg & 0xff;
    this.scratchpad[1] = reg >> 8;
    this.scratchpad[8] = crc8(this.scratchpad, 8);
  }

  private alarm(): boolean {
    const t = ((this.scratchpad[1]! << 24) | (this.scratchpad[0]! << 16)) >> 20;
    const th = (this.scratchpad[2]! << 24) >> 24;
    const tl = (this.scratchpad[3]! << 24) >> 24;
    return t >= th || t <= tl;
  }

  private startSearch(): void {
    this.state = "search";
    this.searchBit = 0;
    this.searchPhase = 0;
  }

  private begin(state: State): void {
    this.state = state;
    this.bits = [];
  }

  private send(bytes: number[], state: State): void {
    this.out = bytes.flatMap((b) => [0, 1, 2, 3, 4, 5, 6, 7].map((i) => (b >> i) & 1));
    this.state = state;
  }

  private collect(bit: number, n: number): boolean {
    this.bits.push(bit);
    return this.bits.length === n;
  }

  private romBit(i: number): number {
    return (this.romBytes[i >> 3]! >> (i & 7)) & 1;
  }

  private byteOf(bits: number[]): number {
    return bits.reduce((b, bit, i) => b | (bit << i), 0);
  }

  private bytesOf(bits: number[]): number[] {
    const out: number[] = [];
    for (let i = 0; i < bits.length; i += 8) out.push(this.byteOf(bits.slice(i, i + 8)));
    return out;
  }
}
