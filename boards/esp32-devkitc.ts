// Espressif ESP32-DevKitC (ESP32-WROOM-32, 4 MB flash) and its common clones (DOIT DevKit V1).
// Sources: Espruino boards/ESP32.py and targets/esp32/IDF4/partitions.csv (2v29): I2C1 on
// D21 (SDA) / D22 (SCL), LED1 = D2, BTN1 = D0, Storage at 0x320000 (224 pages of 4 KB), JsVars at
// most 16383 of 14 bytes. The interpreter takes (free heap - 40000) / 14 JsVars at boot
// (espruino-compat.md); Wi-Fi and TLS take heap first.

import type { Board } from "./types";

export const esp32DevkitC = {
  id: "esp32-devkitc",
  name: "ESP32-DevKitC (ESP32-WROOM-32)",
  espruinoBuild: "esp32",
  espruinoBoard: "ESP32",
  chip: { name: "ESP32", imageChipId: 0 },
  // Espruino make/targets/ESP32.make and targets/esp32/README_flash.txt (2v29): the IDF second-stage
  // bootloader at 0x1000, the partition table at 0x8000, the interpreter (factory app) at 0x10000.
  interpreter: {
    files: [
      { name: "bootloader.bin", address: 0x1000, kind: "bootloader" },
      { name: "partitions_espruino.bin", address: 0x8000, kind: "partition-table" },
      { name: "espruino_esp32.bin", address: 0x10000, kind: "app" },
    ],
  },
  i2c: { bus: "I2C1", sda: 21, scl: 22, bitrate: 100000 },
  oneWire: { pin: 4 },
  // The DevKitC V4 itself has only a power LED; clones light GPIO2, which is also Espruino's LED1.
  led: { pin: 2, activeHigh: true },
  // BOOT button, pulled up: pressed reads low.
  button: { pin: 0, activeHigh: false },
  // ADC1 (GPIO 32-39); ADC2 is unusable while Wi-Fi runs.
  adc: [32, 33, 34, 35, 36, 39],
  flash: { chipBytes: 4194304, storageAddress: 0x320000, storageBytes: 917504, pageBytes: 4096 },
  memory: { maxJsVars: 16383, bytesPerJsVar: 14, appBudgetJsVars: 3000 },
} as const satisfies Board;
