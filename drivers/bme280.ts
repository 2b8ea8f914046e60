// Bosch BME280 temperature / humidity / pressure sensor over I2C, in forced mode.
// Datasheet: BST-BME280-DS002 (rev 1.6), https://www.bosch-sensortec.com/products/environmental-sensors/humidity-sensors-bme280/
// Runs on Espruino: no default parameters, destructuring or async (see espruino-compat.md).

import type { I2CBus, SampleCallback } from "./bus";
import { message } from "./bus";

export interface BME280Options {
  i2c: I2CBus;
  /** 0x76 when SDO is tied to GND (default), 0x77 when tied to VDDIO (datasheet 6.2). */
  address?: number;
}

/** Units: °C (0.01), %RH (0.1), hPa (0.01). */
export interface BME280Reading {
  temperature: number;
  humidity: number;
  pressure: number;
}

export type BME280Callback = SampleCallback<BME280Reading>;

// Memory map, datasheet 5.3 / table 18.
const enum Reg {
  Calib00 = 0x88, // 0x88..0xA1: dig_T1..dig_P9, 0xA0 unused, 0xA1 dig_H1
  ChipId = 0xd0,
  Calib26 = 0xe1, // 0xE1..0xE7: dig_H2..dig_H6
  CtrlHum = 0xf2,
  Status = 0xf3,
  CtrlMeas = 0xf4,
  Config = 0xf5,
  Data = 0xf7, // press msb/lsb/xlsb, temp msb/lsb/xlsb, hum msb/lsb
}

// Values the driver writes and tests, as a const enum so esbuild inlines them (a plain top-level
// `const` stops being inlined once the file imports a value from another module).
const enum K {
  CHIP_ID = 0x60,
  // Oversampling x1 for all three and filter off: the "weather monitoring" setting, datasheet 3.5.1.
  OSRS_H = 1, // ctrl_hum osrs_h[2:0] = x1
  CTRL_SLEEP = (1 << 5) | (1 << 2), // osrs_t x1, osrs_p x1, mode 00
  CTRL_FORCED = CTRL_SLEEP | 1, // mode 01
  STATUS_MEASURING = 8, // status bit 3
  STATUS_IM_UPDATE = 1, // status bit 0: NVM data being copied
  // Datasheet 9.1, maximum measurement time at x1/x1/x1:
  // 1.25 + 2.3*1 + (2.3*1 + 0.575) + (2.3*1 + 0.575) = 9.3 ms.
  MEASURE_MS = 10,
  POLLS = 3, // extra 2 ms status polls before giving up on a measurement
}

// Fields are `declare`d so no class-field code is emitted: they are all set in the constructor.
// Names ending in `_` are internal; the build shortens them (tools/build.ts mangleProps).
export class BME280 {
  declare i2c_: I2CBus;
  declare address: number;
  /** Trimming parameters dig_T1..T3, P1..P9, H1..H6 in that order (datasheet table 16). */
  declare cal_: Int32Array;

  constructor(options: BME280Options) {
    this.i2c_ = options.i2c;
    this.address = options.address || 0x76;
    this.cal_ = new Int32Array(18);
    const where = "BME280 not found at 0x" + this.address.toString(16) + ": ";
    let id;
    try {
      id = this.read_(Reg.ChipId, 1)[0];
    } catch (e) {
      throw Error(where + "no answer on I2C (" + message(e) + ")");
    }
    if (id != K.CHIP_ID) {
      // 0xFF: nothing pulled SDA low (software I2C does not check ACK); 0x56..0x58: BMP280 (datasheet of BMP280, 3.10).
      throw Error(
        where +
          (id == 0xff
            ? "no device answered"
            : "chip id 0x" + id.toString(16) + (id > 0x55 && id < 0x59 ? " (is it a BMP280?)" : "")),
      );
    }
    try {
      // im_update: calibration is still being copied from NVM after power-on (datasheet 5.4.4).
      for (let i = 0; this.read_(Reg.Status, 1)[0] & K.STATUS_IM_UPDATE; i++) {
        if (i > 9) throw Error("calibration not ready");
      }
      const c = this.cal_;
      const a = this.read_(Reg.Calib00, 26);
      const h = this.read_(Reg.Calib26, 7);
      // Little-endian words; all signed shorts but dig_T1 and dig_P1.
      for (let i = 0; i < 12; i++) c[i] = i == 0 || i == 3 ? a[2 * i] | (a[2 * i + 1] << 8) : ((a[2 * i + 1] << 24) | (a[2 * i] << 16)) >> 16;
      c[12] = a[25]; // dig_H1
      c[13] = ((h[1] << 24) | (h[0] << 16)) >> 16; // dig_H2 signed short
      c[14] = h[2]; // dig_H3
      // dig_H4 = 0xE4 [11:4] / 0xE5 [3:0]; dig_H5 = 0xE6 [11:4] / 0xE5 [7:4], both signed 12 bit (table 16).
      c[15] = ((h[3] << 24) >> 20) | (h[4] & 15);
      c[16] = ((h[5] << 24) >> 20) | (h[4] >> 4);
      c[17] = (h[6] << 24) >> 24; // dig_H6 signed char
      // Sleep first: config writes in normal mode may be ignored (datasheet 5.4.6).
      this.write_(Reg.CtrlMeas, K.CTRL_SLEEP);
      this.write_(Reg.Config, 0);
    } catch (e) {
      throw failure(this, e);
    }
  }

  /**
   * Start one forced-mode measurement; `callback(err, reading)` runs from a timer about 10 ms later.
   * Never throws: bus errors and timeouts go to the callback.
   */
  sample(callback: BME280Callback): void {
    let error: unknown = null;
    try {
      // ctrl_hum only takes effect after a write to ctrl_meas (datasheet 5.4.3); rewritten each
      // time so a sensor that lost power mid-run still measures humidity.
      this.write_(Reg.CtrlHum, K.OSRS_H);
      this.write_(Reg.CtrlMeas, K.CTRL_FORCED);
    } catch (e) {
      error = e;
    }
    setTimeout(bme280Finish, K.MEASURE_MS, this, callback, error, 0);
  }

  /** Turn the 8 data bytes (0xF7..0xFE) into a reading. Datasheet 8.1: double precision formulas. */
  compensate_(d: Uint8Array): BME280Reading {
    const c = this.cal_;
    const adcP = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4);
    const adcT = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4);
    const adcH = (d[6] << 8) | d[7];

    // BME280_compensate_T_double
    let v1 = (adcT / 16384 - c[0] / 1024) * c[1];
    let v2 = adcT / 131072 - c[0] / 8192;
    v2 = v2 * v2 * c[2];
    const tFine = (v1 + v2) | 0; // (BME280_S32_t) cast truncates
    const t = (v1 + v2) / 5120;

    // BME280_compensate_P_double
    let p = 0;
    v1 = tFine / 2 - 64000;
    v2 = (((v1 * v1 * c[8]) / 32768 + v1 * c[7] * 2) / 4) + c[6] * 65536;
    v1 = (1 + ((c[5] * v1 * v1) / 524288 + c[4] * v1) / 524288 / 32768) * c[3];
    if (v1 != 0) {
      // v1 == 0 would divide by zero; the datasheet returns 0 then
      p = (((1048576 - adcP - v2 / 4096) * 6250) / v1);
      p += ((c[11] * p * p) / 2147483648 + (p * c[10]) / 32768 + c[9]) / 16;
    }

    // BME280_compensate_H_double
    let h = tFine - 76800;
    h = (adcH - (c[15] * 64 + (c[16] / 16384) * h)) *
      ((c[13] / 65536) * (1 + (c[17] / 67108864) * h * (1 + (c[14] / 67108864) * h)));
    h = h * (1 - (c[12] * h) / 524288);
    h = h > 100 ? 100 : h < 0 ? 0 : h;

    return {
      temperature: Math.round(t * 100) / 100,
      humidity: Math.round(h * 10) / 10,
      pressure: Math.round(p) / 100,
    };
  }

  read_(reg: number, n: number): Uint8Array {
    this.i2c_.writeTo(this.address, reg);
    return this.i2c_.readFrom(this.address, n);
  }

  write_(reg: number, value: number): void {
    this.i2c_.writeTo(this.address, [reg, value]);
  }
}

/** The measurement's end: poll status.measuring a bounded number of times, then read and compensate. */
function bme280Finish(s: BME280, callback: BME280Callback, error: unknown, polls: number): unknown {
  let reading;
  try {
    if (error) throw error;
    if (s.read_(Reg.Status, 1)[0] & K.STATUS_MEASURING) {
      if (polls < K.POLLS) return setTimeout(bme280Finish, 2, s, callback, null, polls + 1);
      throw Error("measurement did not finish");
    }
    reading = s.compensate_(s.read_(Reg.Data, 8));
  } catch (e) {
    return callback(failure(s, e));
  }
  callback(null, reading);
}

function failure(sensor: BME280, e: unknown): Error {
  return Error("BME280 at 0x" + sensor.address.toString(16) + ": " + message(e));
}
