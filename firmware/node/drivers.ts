// The drivers this firmware holds. The build defines WISP_DRIVER.<type> as true for each sensor
// type the config it builds for names and false for every other (tools/build.ts), so esbuild
// drops the other branches and, with them, the other drivers: a node flashes only what it uses.

import { Battery } from "../../drivers/battery";
import { BH1750 } from "../../drivers/bh1750";
import { BME280 } from "../../drivers/bme280";
import type { SampleCallback } from "../../drivers/bus";
import { DS18B20 } from "../../drivers/ds18b20";
import { SCD4x } from "../../drivers/scd4x";
import { SHT3x } from "../../drivers/sht3x";
import { SHT4x } from "../../drivers/sht4x";
import type { SensorConfig } from "./config";

declare const WISP_DRIVER: {
  battery: boolean;
  bh1750: boolean;
  bme280: boolean;
  ds18b20: boolean;
  scd4x: boolean;
  sht3x: boolean;
  sht4x: boolean;
};

export interface Driver {
  sample(callback: SampleCallback<object>): void;
}

/** One OneWire object per pin, shared by the DS18B20s on it (their parasite-power lock lives on it). */
const wires: { [pin: number]: Espruino.OneWire } = {};

/** A driver for `c` on the board's buses; throws when the chip does not answer, or has no driver here. */
export function createDriver(c: SensorConfig): Driver {
  const t = c.type;
  if (WISP_DRIVER.bme280 && t == "bme280") return new BME280({ i2c: I2C1, address: c.address });
  if (WISP_DRIVER.sht3x && t == "sht3x") return new SHT3x({ i2c: I2C1, address: c.address });
  if (WISP_DRIVER.sht4x && t == "sht4x") return new SHT4x({ i2c: I2C1, address: c.address });
  if (WISP_DRIVER.scd4x && t == "scd4x") return new SCD4x({ i2c: I2C1, address: c.address });
  if (WISP_DRIVER.bh1750 && t == "bh1750") return new BH1750({ i2c: I2C1, address: c.address });
  if (WISP_DRIVER.ds18b20 && t == "ds18b20") {
    const pin = c.pin as number;
    return new DS18B20({ oneWire: wires[pin] || (wires[pin] = new OneWire(pin)), rom: c.rom, resolution: c.resolution });
  }
  if (WISP_DRIVER.battery && t == "battery") {
    return new Battery({ pin: c.pin as number, analogRead: analogRead, scale: c.scale as number, offset: c.offset as number, curve: c.curve as number[][] });
  }
  throw Error("no " + t + " driver built in");
}
