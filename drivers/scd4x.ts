// Sensirion SCD4x (SCD40, SCD41) photoacoustic CO2 sensor with temperature and humidity, over I2C,
// in periodic measurement mode (a new measurement every 5 s).
// Datasheet: "Datasheet SCD4x", version 1.3, September 2022,
// https://sensirion.com/media/documents/E0F04247/631EF271/CD_DS_SCD40_SCD41_Datasheet_D1.pdf
// Runs on Espruino: no default parameters, destructuring or async (see espruino-compat.md).

import type { I2CBus, SampleCallback } from "./bus";
import { round } from "./bus";
import { Sensirion } from "./sensirion";

export interface SCD4xOptions {
  i2c: I2CBus;
  /** 0x62, the only address (table 8). */
  address?: number;
}

/** ppm (1), °C (0.01), %RH (0.1). */
export interface SCD4xReading {
  co2: number;
  temperature: number;
  humidity: number;
}

// Table 9 with each command's execution time: the wait before the read header (3.3).
const enum Cmd {
  Start = 0x21b1, // start_periodic_measurement: signal update interval 5 s (3.5.1)
  Read = 0xec05, // read_measurement, 1 ms; NACKs when no new data (3.5.2)
  Stop = 0x3f86, // stop_periodic_measurement, 500 ms; accepted while measuring (3.5.3)
  Ready = 0xe4b8, // get_data_ready_status, 1 ms (3.8.2)
}

const enum Ms {
  Stop = 500,
  Command = 1,
  // First measurement 5 s after start (3.5.1); then poll data ready this often, this many times.
  FirstData = 5000,
  Poll = 500,
  Polls = 12,
}

// Names ending in `_` are internal; the build shortens them.
export class SCD4x extends Sensirion {
  /** Date.now() from which start_periodic_measurement may be sent; 0 once it has been. */
  declare startAt_: number;

  constructor(options: SCD4xOptions) {
    super(options.i2c, options.address || 0x62, "SCD4x");
    // The sensor keeps measuring across a reset of the ESP32 and refuses start while it does:
    // stop first, which it accepts in either state, and start 500 ms later (3.5.3).
    try {
      this.command_(Cmd.Stop);
    } catch (e) {
      throw this.fail_(e);
    }
    this.startAt_ = Date.now() + Ms.Stop;
  }

  /**
   * The next measurement: waits for the sensor's data-ready flag (up to 5 s after start, then
   * polled every 500 ms), reads it, and calls `callback(err, reading)` from a timer. Never throws.
   */
  sample(callback: SampleCallback<SCD4xReading>): void {
    scd4xStart(this, callback);
  }
}

function scd4xStart(s: SCD4x, callback: SampleCallback<SCD4xReading>): unknown {
  const wait = s.startAt_ - Date.now();
  if (s.startAt_ && wait > 0) return setTimeout(scd4xStart, wait, s, callback);
  try {
    if (s.startAt_) {
      s.command_(Cmd.Start);
      s.startAt_ = 0;
      return setTimeout(scd4xAsk, Ms.FirstData, s, callback, 0);
    }
  } catch (e) {
    return callback(s.fail_(e));
  }
  scd4xAsk(s, callback, 0);
}

function scd4xAsk(s: SCD4x, callback: SampleCallback<SCD4xReading>, polls: number): void {
  try {
    s.command_(Cmd.Ready);
  } catch (e) {
    return callback(s.fail_(e));
  }
  setTimeout(scd4xReady, Ms.Command, s, callback, polls);
}

function scd4xReady(s: SCD4x, callback: SampleCallback<SCD4xReading>, polls: number): unknown {
  try {
    // 3.8.2: the least significant 11 bits all 0 means no new data yet.
    if (!(s.words_(1)[0] & 0x7ff)) {
      if (polls < Ms.Polls) return setTimeout(scd4xAsk, Ms.Poll, s, callback, polls + 1);
      // FirstData + Poll * Polls
      throw Error("no measurement ready after 11 s");
    }
    s.command_(Cmd.Read);
  } catch (e) {
    return callback(s.fail_(e));
  }
  setTimeout(scd4xRead, Ms.Command, s, callback);
}

/** 3.5.2: CO2 = word[0] ppm; T = -45 + 175 * word[1] / 2^16 °C; RH = 100 * word[2] / 2^16 %. */
function scd4xRead(s: SCD4x, callback: SampleCallback<SCD4xReading>): void {
  let w;
  try {
    w = s.words_(3);
  } catch (e) {
    return callback(s.fail_(e));
  }
  callback(null, { co2: w[0], temperature: round(-45 + (175 * w[1]) / 65536, 100), humidity: round((100 * w[2]) / 65536, 10) });
}
