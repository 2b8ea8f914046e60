// The shape every board file fills in: pure data, no Espruino globals, so the same object serves
// the firmware (bundled), the simulator and the host tools. Pins are GPIO numbers: Espruino takes
// a number wherever it takes a Pin, and on ESP32 `D21 === 21`.

export interface Board {
  /** Id used in flash.config.json and on the command line. */
  id: string;
  name: string;
  /** Espruino firmware build the board runs (espruino_<version>_esp32.bin). */
  espruinoBuild: string;
  /** process.env.BOARD of that build, as its console reports it (`wisp flash` refuses another). */
  espruinoBoard: string;
  /**
   * The chip as Espressif's ROM bootloader reports it (esptool's CHIP_NAME: `ESP32`, `ESP32-S3`, …)
   * and as its image headers name it (esp_image_header_t.chip_id): `wisp flash --interpreter`
   * refuses a board or an image of another chip.
   */
  chip: { name: string; imageChipId: number };
  /**
   * Espruino's build for this board as it is flashed: each file of its release folder, where it
   * goes in flash, and what it is (`wisp flash --interpreter DIR` checks them).
   */
  interpreter: {
    files: readonly { name: string; address: number; kind: "bootloader" | "partition-table" | "app" }[];
  };
  /** The bus sensors are wired to; the app passes these to I2C1.setup(). */
  i2c: { bus: "I2C1" | "I2C2"; sda: number; scl: number; bitrate: number };
  /** A pin for a OneWire bus (DS18B20), when the board wires one. */
  oneWire?: { pin: number };
  /** Status LED, when there is one. */
  led?: { pin: number; activeHigh: boolean };
  button?: { pin: number; activeHigh: boolean };
  /** ADC-capable pins that still work with Wi-Fi on (ESP32: ADC1 only). */
  adc?: readonly number[];
  flash: {
    /** Size of the flash chip, bytes. */
    chipBytes: number;
    /** Espruino Storage (saved code and files): start address and size, bytes. */
    storageAddress: number;
    storageBytes: number;
    /** Erase unit of Storage, bytes. */
    pageBytes: number;
  };
  memory: {
    /** Most JsVars the interpreter can have, and bytes per JsVar at that format. */
    maxJsVars: number;
    bytesPerJsVar: number;
    /** JsVars the application (firmware + data) should plan to stay under, Wi-Fi and TLS running. */
    appBudgetJsVars: number;
  };
}
