// Every sensor type Wisp has a driver for, as the host sees it: its bus, addresses, the keys of its
// readings and what the datasheet promises. The build (which drivers to bundle, Home Assistant
// discovery), the config (defaults, checks), the simulator (device models) and the view read this
// table; the firmware's side is firmware/node/drivers.ts.

export type Bus = "i2c" | "onewire" | "adc";

export interface Quantity {
  /** Unit as published (README, view). */
  unit: string;
  /** Decimals the driver rounds to. */
  decimals: number;
  /** Home Assistant sensor device class and the unit it expects for it. */
  deviceClass: string;
  haUnit: string;
}

/** Keys of readings, as the drivers publish them. */
export const QUANTITIES = {
  temperature: { unit: "°C", decimals: 2, deviceClass: "temperature", haUnit: "°C" },
  humidity: { unit: "%RH", decimals: 1, deviceClass: "humidity", haUnit: "%" },
  pressure: { unit: "hPa", decimals: 2, deviceClass: "atmospheric_pressure", haUnit: "hPa" },
  illuminance: { unit: "lx", decimals: 1, deviceClass: "illuminance", haUnit: "lx" },
  co2: { unit: "ppm", decimals: 0, deviceClass: "carbon_dioxide", haUnit: "ppm" },
  voltage: { unit: "V", decimals: 2, deviceClass: "voltage", haUnit: "V" },
  level: { unit: "%", decimals: 0, deviceClass: "battery", haUnit: "%" },
} as const satisfies Record<string, Quantity>;

export type QuantityName = keyof typeof QUANTITIES;

export interface SensorType {
  bus: Bus;
  /** I2C addresses the chip can be strapped to, the default first. */
  addresses?: readonly number[];
  quantities: readonly QuantityName[];
  /** Datasheet accuracy per quantity (± absolute; `relative` is a fraction of the reading on top). */
  accuracy: Partial<Record<QuantityName, { absolute: number; relative?: number }>>;
}

export const SENSOR_TYPES = {
  // BST-BME280-DS002 tables 1-3
  bme280: {
    bus: "i2c",
    addresses: [0x76, 0x77],
    quantities: ["temperature", "humidity", "pressure"],
    accuracy: { temperature: { absolute: 1 }, humidity: { absolute: 3 }, pressure: { absolute: 1 } },
  },
  // SHT3x-DIS 1.1, 1.2: SHT30/SHT31 typical ±0.2 °C, ±2 %RH (SHT35 ±0.1 °C, ±1.5 %RH)
  sht3x: {
    bus: "i2c",
    addresses: [0x44, 0x45],
    quantities: ["temperature", "humidity"],
    accuracy: { temperature: { absolute: 0.2 }, humidity: { absolute: 2 } },
  },
  // SHT4x 2.1, 2.2: SHT40/SHT41 typical ±0.2 °C, ±1.8 %RH (SHT45 ±0.1 °C, ±1.0 %RH)
  sht4x: {
    bus: "i2c",
    addresses: [0x44, 0x45, 0x46],
    quantities: ["temperature", "humidity"],
    accuracy: { temperature: { absolute: 0.2 }, humidity: { absolute: 1.8 } },
  },
  // SCD4x table 1-3: SCD40 ±(50 ppm + 5 %) at 400-2000 ppm; ±0.8 °C; ±6 %RH
  scd4x: {
    bus: "i2c",
    addresses: [0x62],
    quantities: ["co2", "temperature", "humidity"],
    accuracy: { co2: { absolute: 50, relative: 0.05 }, temperature: { absolute: 0.8 }, humidity: { absolute: 6 } },
  },
  // BH1750FVI p.2: measurement accuracy (sensor out / actual) 0.96..1.44 around the typical 1.2: ±20 %
  bh1750: {
    bus: "i2c",
    addresses: [0x23, 0x5c],
    quantities: ["illuminance"],
    accuracy: { illuminance: { absolute: 1, relative: 0.2 } },
  },
  // DS18B20 p.1: ±0.5 °C from -10 °C to +85 °C
  ds18b20: {
    bus: "onewire",
    quantities: ["temperature"],
    accuracy: { temperature: { absolute: 0.5 } },
  },
  // ESP32 ADC1 at 11 dB, uncalibrated: the reference voltage spread (1000-1200 mV) alone is ±9 %
  battery: {
    bus: "adc",
    quantities: ["voltage", "level"],
    accuracy: { voltage: { absolute: 0.05, relative: 0.1 } },
  },
} as const satisfies Record<string, SensorType>;

export type SensorTypeName = keyof typeof SENSOR_TYPES;

export const SENSOR_TYPE_NAMES = Object.keys(SENSOR_TYPES) as SensorTypeName[];

/**
 * The typical discharge curve of a single Li-ion / LiPo cell at a light load, [volts, percent]:
 * an approximation (cells and loads differ); put your own under the sensor's "curve".
 */
export const LI_ION_CURVE: [number, number][] = [
  [3.3, 0],
  [3.5, 5],
  [3.6, 10],
  [3.7, 25],
  [3.75, 40],
  [3.8, 50],
  [3.85, 60],
  [3.9, 70],
  [4.0, 80],
  [4.1, 90],
  [4.2, 100],
];

/**
 * ESP32 ADC1 at 11 dB with the typical reference voltage (1100 mV), ESP-IDF esp_adc_cal_esp32.c:
 * millivolts = raw * (1100 * 196602 / 4096) / 65536 + 142, linear up to raw 2880 (about 2450 mV).
 * As analogRead (raw / 4096): volts at the pin = ADC_SCALE * analogRead + ADC_OFFSET.
 */
export const ADC_SCALE = (1100 * 196602) / 65536 / 1000;
export const ADC_OFFSET = 0.142;
