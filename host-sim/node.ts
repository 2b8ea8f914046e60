// One simulated sensor node: an ESP32-DevKitC with Espruino, its flash (Storage), radio (Wi-Fi
// station), GPIO, and the sensors its wisp.json names on their buses (I2C1, OneWire lines, ADC1
// inputs), running whatever its Storage holds as `.bootcde`.
//
// Life cycle as on the board (/tmp/node-contract.md "Boot"): powerOn() → the ROM (serial/rom.ts)
// → the bootloader and the interpreter from the SPI flash (flash-boot.ts) → a fresh runtime → run
// `.bootcde` → E "init". reset() and load() are soft resets (Espruino does them once the current
// code returns: E "kill", the runtime goes, sockets close without MQTT DISCONNECT, the radio stays
// associated); reset() does not run saved code, load() does. E.reboot(), ESP32.reboot() and
// ESP32.deepSleep(us) stop the chip (no "kill"); deep sleep boots again after `us`.
//
// The board's reset circuit, as on the ESP32-DevKitC (schematic: two transistors between the
// USB-serial bridge's DTR/RTS and the chip's EN/IO0): EN is pulled low while RTS is asserted and
// DTR is not, IO0 while DTR is asserted and RTS is not; both or neither asserted leave both high,
// so a terminal that opens the port does not reset the board. The chip samples IO0 a few ms after
// EN rises (the RC delay on EN): low means the ROM's serial bootloader (download mode), high a
// normal boot from flash. The EN and BOOT buttons pull the same lines low. A host sets DTR/RTS
// through setModemLines() (the simulator's control socket next to the pseudo-terminal, pty.ts).
// Espruino never sees any of this: it is the board's wiring.
//
// The node never looks inside the firmware: MQTT state is what its sockets and the broker show,
// readings are what the broker sees it publish (the simulation routes them here).

import { esp32DevkitC } from "../boards/esp32-devkitc.ts";
import type { Board } from "../boards/types.ts";
import { Adc, adcPlugin } from "./adc.ts";
import { BH1750Model } from "./devices/bh1750.ts";
import { BME280Model, CALIBRATIONS } from "./devices/bme280.ts";
import { DS18B20Model, romWithCrc } from "./devices/ds18b20.ts";
import { SCD4xModel } from "./devices/scd4x.ts";
import type { SensirionModel } from "./devices/sensirion.ts";
import { SHT3xModel, SHT4xModel } from "./devices/sht.ts";
import { type EmulatedI2C, type I2CDevice, installI2C } from "./i2c.ts";
import { netState } from "./net.ts";
import { type OneWireLine, OneWireLines, oneWirePlugin } from "./onewire.ts";
import { PinBank, pinsPlugin } from "./pins.ts";
import { DEFAULTS, type Environment } from "./scenario.ts";
import { type Clock, createRuntime, type Runtime, type RuntimePlugin } from "./runtime.ts";
import { interpreterImages, planFlashBoot, type BootPlan, writeImages } from "./flash-boot.ts";
import { EspruinoConsole } from "./serial/console.ts";
import { SerialLine } from "./serial/line.ts";
import { CHIP_MODELS, type ChipModel, DownloadMode, romBanner, type ResetReason } from "./serial/rom.ts";
import { SpiFlash } from "./spi-flash.ts";
import { ConsoleLines } from "../tools/serial/lines.ts";
import { FlashStorage, storagePlugin } from "./storage.ts";
import { type AccessPoint, ipFor, macFor, serialFromMac, type StationState, WifiStation } from "./wifi.ts";

export type { Environment } from "./scenario.ts";

/** "reset": powered, held in reset by EN (the button, or RTS through the reset circuit). */
export type PowerState = "off" | "on" | "sleeping" | "reset";
export type MqttState = "offline" | "connecting" | "connected";

/** The node's settings file as the firmware reads it (tools/config.ts renderDeviceConfig). */
export interface NodeConfig {
  wifi: { ssid: string; password?: string };
  mqtt: { url: string; clientId?: string; username?: string; password?: string; keepalive?: number; [k: string]: unknown };
  prefix: string;
  interval: number;
  qos?: number;
  sensors: { name: string; type: string; address?: number; pin?: number; rom?: string; divider?: number; [k: string]: unknown }[];
  [k: string]: unknown;
}

/** One configured sensor's simulated hardware. */
export interface SimSensor {
  name: string;
  type: string;
  /** Its wiring as wisp.json gave it (a change means another chip). */
  key: string;
  bus: "i2c" | "onewire" | "adc";
  /** I2C address, or the GPIO of its OneWire line or ADC input. */
  address?: number;
  pin?: number;
  /** The device model (none for a battery: the ADC input is the model). */
  model: I2CDevice | DS18B20Model | undefined;
  plugged: boolean;
  /** Its answers fail their CRC. */
  crc: boolean;
}

export interface SimNodeOptions {
  /** Position in the simulation: picks the serial (with `seed`), IP, sensor calibration and noise. */
  index: number;
  /** getSerial() of the chip (default: from a MAC derived from index and seed). */
  serial?: string;
  seed?: number;
  clock: Clock;
  ap: AccessPoint;
  /** Replaces mqtt.url of the config written to the node. */
  brokerUrl?: string;
  /** Source of the firmware (dist/firmware.js), written to `.bootcde` by the constructor. */
  firmware?: string;
  /** wisp.json; wifi and mqtt.url are replaced by the simulation's access point and broker. */
  config?: NodeConfig;
  /** The physical environment around the sensors right now. */
  environment?: () => Environment;
  /** DS18B20 sensors (by name) wired for parasite power (data line only). */
  parasite?: string[];
  /** Every console line of the device, as it is printed. */
  log?: (line: string, node: SimNode) => void;
  board?: Board;
  /** Mirror the node's Storage to this directory. */
  storageDir?: string;
  /** Wi-Fi association time, ms (default 1500 plus up to 500 per node, so a fleet does not join in lockstep). */
  wifiJoinMs?: number;
  /** Lines kept in `node.log` (default 200). */
  logLines?: number;
  /** Samples kept per quantity in `node.history` (default 60). */
  historyLength?: number;
  /** Called whenever something shown in a view changes. */
  onChange?: (node: SimNode) => void;
  /** Baud rate of the console UART (default 115,200). */
  baud?: number;
  /** Extra runtime plugins, run at every boot after the node's own. */
  plugins?: RuntimePlugin[];
  /**
   * The broker reports this node's sessions through brokerClient() (the embedded broker does).
   * Without it, a connected TCP socket to the broker counts as "connected".
   */
  brokerEvents?: boolean;
  /** Flash as a new ESP32 comes: no bootloader, no interpreter, empty Storage (default false). */
  blank?: boolean;
  /** The chip's ROM identity (default "ESP32"; see CHIP_MODELS). */
  chip?: string;
  /** DTR/RTS reach EN/IO0 through the auto-program circuit (default true; false: only the buttons do). */
  resetCircuit?: boolean;
}

/** The ROM's and the bootloaders' rate (esptool ESP_ROM_BAUD; ESP-IDF CONFIG_ESP_CONSOLE_UART_BAUDRATE). */
const ROM_BAUD = 115_200;
/** ms from EN's rise until the chip samples its strapping pins (the RC delay on EN). */
const EN_RISE_MS = 5;

export interface Reading {
  /** Node clock ms when the broker got it. */
  at: number;
  /** Its "ts": when the node took it (ms since 1970), if it said. */
  takenAt?: number;
  values: Record<string, number>;
}

const DEFAULT_ENVIRONMENT: Environment = { temperature: 21, humidity: 45, pressure: 1013.25, ...DEFAULTS };
const CALIBRATION_SETS = Object.values(CALIBRATIONS);

export class SimNode {
  readonly index: number;
  readonly serial: string;
  readonly mac: string;
  readonly clock: Clock;
  readonly flashStorage: FlashStorage;
  readonly station: WifiStation;
  readonly pins = new PinBank();
  readonly board: Board;
  power: PowerState = "off";
  /** Device console, newest last (a ring of `logLines`). */
  readonly log: string[] = [];
  /** Last reading per sensor name, as published. */
  readonly readings: Record<string, Reading> = {};
  /** Recent values per sensor and quantity: history[sensor][quantity]. */
  readonly history: Record<string, Record<string, number[]>> = {};
  /** `<prefix>/status` as last published (retained "online", or the will "offline"). */
  status: string | undefined;
  /** `<prefix>/status/<sensor>` as last published: "ok", or the sensor's error. */
  readonly sensorStatus: Record<string, string> = {};
  /** `<prefix>/status/outbox` as last published ({ readings, bytes, dropped, repliesDropped, error?, ts }). */
  outboxStatus: Record<string, unknown> | undefined;
  /** Messages the node published, as seen by the broker. */
  published = 0;
  /** Boots since creation (power-ons, reboots, soft resets, wake-ups). */
  boots = 0;
  /** The runtime of the current boot, while powered. */
  runtime: Runtime | undefined;
  /** I2C buses of the current boot. */
  i2c: { I2C1: EmulatedI2C; I2C2: EmulatedI2C } | undefined;
  /** The 1-Wire lines, by GPIO (wires: they outlive boots). */
  readonly oneWire: OneWireLines;
  /** ADC1 of the chip. */
  readonly adc: Adc;
  /** The configured sensors' hardware since the last power-on, by name. */
  readonly sensors = new Map<string, SimSensor>();
  /** The console UART's line: a host (a pseudo-terminal, a test) attaches here. */
  readonly line: SerialLine;
  /** Espruino's console on that line; `log` is what it prints, line by line. */
  readonly console: EspruinoConsole;
  /** The pseudo-terminal a host opens to reach the console, when the simulation made one. */
  consolePath: string | undefined;
  /** The 4 MB SPI flash: bootloader, partition table, interpreter (Storage is `flashStorage`). */
  readonly spiFlash: SpiFlash;
  /** What the ROM says the chip is (a test may make it another). */
  chip: ChipModel;
  /** DTR/RTS reach EN/IO0 (the auto-program circuit is there). */
  resetCircuit: boolean;
  /**
   * Powered through its USB cable alone, as a DevKitC on a desk is: pulling the cable
   * (Simulation.unplugConsole) powers it off. False for a board with its own supply (default true).
   */
  usbPowered = true;
  /** DTR and RTS as the host last set them (true: asserted). */
  readonly modemLines = { dtr: false, rts: false };
  /** The ROM's serial bootloader, while the chip is in download mode. */
  download: DownloadMode | undefined;

  private readonly options: SimNodeOptions;
  private brokerUrl: string | undefined;
  private bootedAt = 0;
  private brokerSession = false;
  /** SDA of I2C1 held low (fault "bus-stuck"); kept across boots, as a hung chip would be. */
  private i2cStuck = false;
  /** Sensors (by name) off their bus: wiring, so it outlasts power cycles; and those whose answers fail their CRC. */
  private readonly unplugged = new Set<string>();
  private readonly corrupted = new Set<string>();
  /** The sensors list of wisp.json the buses were wired for. */
  private wiredFor: string | undefined;
  private wakeTimer: unknown;
  private pendingSoftReset = false;
  private namesCache: { clientId: string; prefix: string } | undefined;
  /** What the ROM reports at the next power-on: a cold start, a software reset or a wake-up. */
  private resetReason: ResetReason = "power-on";
  /**
   * The chip's time of day (ESP-IDF's gettimeofday, kept by the RTC timer) is the clock minus this:
   * it starts at 0 (1970) when power comes, goes on through resets and deep sleep, and setTime()
   * moves it.
   */
  private rtcBase = 0;
  /** When the current wake began and, once it went back to deep sleep, how long it was awake (ms). */
  private wokeAt = 0;
  /** Awake time of the last complete duty cycle (boot or wake to deep sleep), ms. */
  lastAwakeMs: number | undefined;
  /** Duty cycles completed (deep sleeps entered) since creation. */
  sleeps = 0;
  private readonly buttons = { EN: false, BOOT: false };
  /** IO0 as latched at the last chip reset: the boot mode a CPU reset keeps. */
  private downloadStrap = false;
  private enTimer: unknown;
  private readonly bootTimers = new Set<unknown>();
  private bootCache: { generation: number; plan: BootPlan } | undefined;
  /** Espruino's console rate (the ROM's is ROM_BAUD). */
  private readonly consoleBaud: number;

  constructor(options: SimNodeOptions) {
    this.options = options;
    this.index = options.index;
    this.clock = options.clock;
    this.board = options.board ?? esp32DevkitC;
    this.mac = macFor(options.index, options.seed ?? 0);
    this.serial = options.serial ?? serialFromMac(this.mac);
    this.brokerUrl = options.brokerUrl;
    this.flashStorage = new FlashStorage({ size: this.board.flash.storageBytes, dir: options.storageDir });
    this.station = new WifiStation({
      ap: options.ap,
      clock: options.clock,
      mac: this.mac,
      ip: ipFor(options.index),
      joinMs: options.wifiJoinMs ?? 1500 + ((options.index * 97) % 500),
      onChange: () => this.changed(),
    });
    this.pins.onChange = () => this.changed();
    this.oneWire = new OneWireLines(() => this.clock.Date.now());
    this.adc = new Adc({ seed: (options.seed ?? 0) * 7919 + options.index + 104729 });
    this.consoleBaud = options.baud ?? 115_200;
    this.line = new SerialLine({ clock: options.clock, baud: this.consoleBaud });
    this.console = new EspruinoConsole(this, this.line, { serial: this.serial });
    const lines = new ConsoleLines((line) => this.print(line));
    // the bootloader's SLIP packets are not console text
    this.line.onOutput = (bytes) => {
      if (!this.download) lines.write(bytes);
    };
    this.chip = CHIP_MODELS[options.chip ?? "ESP32"] ?? CHIP_MODELS.ESP32!;
    this.resetCircuit = options.resetCircuit ?? true;
    this.spiFlash = new SpiFlash(this.board.flash.chipBytes);
    this.spiFlash.onErase = (address, length) => {
      // an erase over Storage's area leaves no file system behind
      const start = this.board.flash.storageAddress;
      if (address < start + this.board.flash.storageBytes && address + length > start) this.flashStorage.eraseAll();
    };
    if (!options.blank) {
      this.installInterpreter();
      if (options.firmware !== undefined && options.config) this.flash(options.firmware, options.config);
    }
  }

  /**
   * Writes a small but valid Espruino (bootloader, partition table, an app image carrying
   * `version`) into the SPI flash, as `wisp flash --interpreter` would; the next boot runs it.
   */
  installInterpreter(version = "2v29"): void {
    writeImages(this.spiFlash, interpreterImages(this.board, version));
  }

  /** The interpreter version the flash holds (from its image), undefined when it holds none that boots. */
  get interpreterVersion(): string | undefined {
    const outcome = this.bootPlan().outcome;
    return outcome.kind === "app" ? (outcome.version ?? DEFAULT_VERSION) : undefined;
  }

  /** Wi-Fi state of the radio. */
  get wifi(): StationState {
    return this.station.state;
  }

  /** MQTT state: a broker session (from the broker's client events) or at least a TCP connection to it. */
  get mqtt(): MqttState {
    if (!this.runtime) return "offline";
    if (this.brokerSession) return "connected";
    const url = this.brokerUrl ? new URL(this.brokerUrl) : undefined;
    let state: MqttState = "offline";
    for (const s of netState(this.runtime).sockets) {
      if (url && String(s.port) !== (url.port || "1883")) continue;
      if (s.connected && !this.options.brokerEvents) return "connected";
      state = "connecting";
    }
    return state;
  }

  /** ms since the chip last reset (or Espruino last started), 0 while off. */
  get uptime(): number {
    return this.power === "on" ? this.clock.Date.now() - this.bootedAt : 0;
  }

  /** The LED (LED1) is lit. */
  get led(): boolean {
    const led = this.board.led;
    return led ? this.pins.level(led.pin) === led.activeHigh : false;
  }

  /** The MQTT client id the firmware uses ({id} = serial), from the flashed wisp.json. */
  get clientId(): string {
    return this.names().clientId;
  }

  /** The topic prefix the firmware uses ({id} = serial), from the flashed wisp.json. */
  get prefix(): string {
    return this.names().prefix;
  }

  private names(): { clientId: string; prefix: string } {
    if (!this.namesCache) {
      const config = this.config();
      this.namesCache = {
        clientId: expand(String(config?.mqtt.clientId ?? "wisp-{id}"), this.serial),
        prefix: expand(config?.prefix ?? "wisp/{id}", this.serial),
      };
    }
    return this.namesCache;
  }

  /** wisp.json as stored on the node. */
  config(): NodeConfig | undefined {
    const bytes = this.flashStorage.bytes("wisp.json");
    if (bytes === undefined) return undefined;
    try {
      // written as UTF-8 (wisp flash); the firmware sees its bytes, the host its text
      return JSON.parse(Buffer.from(bytes).toString("utf8")) as NodeConfig;
    } catch {
      return undefined;
    }
  }

  /** What `wisp flash` does: the firmware bytes become `.bootcde`, the settings `wisp.json`. */
  flash(firmware: string, config: NodeConfig): void {
    const ap = this.options.ap;
    const rendered: NodeConfig = {
      ...config,
      wifi: { ssid: ap.ssid, password: ap.password },
      mqtt: { ...config.mqtt, url: this.brokerUrl ?? config.mqtt.url },
    };
    this.flashStorage.write(".bootcde", Buffer.from(firmware, "latin1"));
    this.flashStorage.write("wisp.json", Buffer.from(JSON.stringify(rendered), "utf8"));
    this.namesCache = undefined;
  }

  /** Point the node at another broker (rewrites wisp.json; takes effect at the next boot). */
  setBrokerUrl(url: string): void {
    this.brokerUrl = url;
    const config = this.config();
    if (config) this.flashStorage.write("wisp.json", Buffer.from(JSON.stringify({ ...config, mqtt: { ...config.mqtt, url } }), "utf8"));
  }

  /** The time of day the chip believes (ms since 1970), while it is powered or asleep. */
  get deviceTime(): number {
    return this.clock.Date.now() - this.rtcBase;
  }

  powerOn(): void {
    if (this.power === "on" || this.power === "reset") return;
    this.cancelWake();
    this.note("power on");
    const reason = this.resetReason;
    this.resetReason = "power-on";
    if (this.enLow) {
      this.power = "reset";
      this.changed();
      return;
    }
    this.start(reason);
  }

  /** Pull the plug: no "kill" event, no DISCONNECT; the broker sees the connection drop. */
  powerOff(): void {
    this.cancelWake();
    this.cancelEn();
    this.resetReason = "power-on";
    if (this.power === "off") return;
    this.power = "off";
    this.stop();
    this.note("power off");
    this.changed();
  }

  /** The host sets DTR/RTS (true: asserted), as a USB-serial bridge's modem-control request does. */
  setModemLines(lines: { dtr?: boolean; rts?: boolean }): void {
    const wasLow = this.enLow;
    if (lines.dtr !== undefined) this.modemLines.dtr = lines.dtr;
    if (lines.rts !== undefined) this.modemLines.rts = lines.rts;
    this.enChanged(wasLow);
  }

  /** Press (true) or release (false) the EN (reset) or BOOT (IO0) button. */
  setButton(button: "EN" | "BOOT", pressed: boolean): void {
    const wasLow = this.enLow;
    this.buttons[button] = pressed;
    this.enChanged(wasLow);
  }

  /** EN is low: the chip is held in reset. */
  private get enLow(): boolean {
    return this.buttons.EN || (this.resetCircuit && this.modemLines.rts && !this.modemLines.dtr);
  }

  /** IO0 is low: at reset the chip starts its serial bootloader. */
  private get io0Low(): boolean {
    return this.buttons.BOOT || (this.resetCircuit && this.modemLines.dtr && !this.modemLines.rts);
  }

  private enChanged(wasLow: boolean): void {
    const low = this.enLow;
    if (low === wasLow || this.power === "off") return;
    this.cancelEn();
    if (low) {
      this.cancelWake();
      this.stop();
      this.power = "reset";
      this.note("EN low: the chip is held in reset");
      this.changed();
      return;
    }
    this.enTimer = this.clock.setTimeout(() => {
      this.enTimer = undefined;
      if (this.power === "reset" && !this.enLow) this.start("power-on");
    }, EN_RISE_MS);
  }

  private cancelEn(): void {
    if (this.enTimer !== undefined) this.clock.clearTimeout(this.enTimer);
    this.enTimer = undefined;
  }

  /** The chip starts: the ROM prints its banner, then runs its serial bootloader or what flash holds. */
  private start(reason: ResetReason): void {
    this.stop();
    // the RTC keeps its time through a CPU reset and deep sleep; power and EN start it from 0 (1970).
    // Espruino's Date.now() counts the RTC's ticks, not whole milliseconds (1748757601507.364 on a
    // board): a quarter millisecond keeps the device's times fractional as there, and rounds to the
    // simulation's own whole milliseconds
    if (reason === "power-on") this.rtcBase = this.clock.Date.now() - 0.25;
    this.wokeAt = this.clock.Date.now();
    this.power = "on";
    // uptime counts from the chip's last reset, interpreter or not (a blank board's reset loop)
    this.bootedAt = this.clock.Date.now();
    this.pins.resetModes();
    this.newSensors();
    // straps are latched at a chip reset; a CPU reset (software, deep sleep) keeps them
    if (reason === "power-on" || reason === "rtc-watchdog") this.downloadStrap = this.io0Low;
    // the ROM, its serial bootloader and the second-stage bootloader talk 115200 (the ROM
    // autobauds on SYNC); Espruino's console runs at the node's rate once it starts
    this.line.setBaud(ROM_BAUD);
    const mode = this.downloadStrap ? "download" : "flash";
    this.console.hardReset(romBanner(reason, mode));
    if (mode === "download") {
      this.enterDownload();
      this.changed();
      return;
    }
    this.bootFromFlash();
  }

  /** The chip resets itself (watchdog, bootloader giving up, FLASH_END with reboot). */
  private chipReset(reason: ResetReason): void {
    if (this.power !== "on") return;
    this.start(reason);
  }

  private enterDownload(): void {
    this.line.flowControl = false;
    const node = this;
    this.download = new DownloadMode({
      clock: this.clock,
      line: this.line,
      spiFlash: this.spiFlash,
      get chip() {
        return node.chip;
      },
      mac: this.mac,
      reboot: () => this.chipReset("reboot"),
      runUserCode: () => {
        this.leaveDownload();
        this.bootFromFlash();
      },
    });
    this.line.device = this.download;
    this.note(`download mode (ROM serial bootloader, ${this.chip.name})`);
  }

  private leaveDownload(): void {
    if (!this.download) return;
    this.download.dispose();
    this.download = undefined;
    this.line.flowControl = true;
    this.console.attach();
  }

  private bootPlan(): BootPlan {
    const generation = this.spiFlash.generation;
    if (this.bootCache?.generation !== generation) this.bootCache = { generation, plan: planFlashBoot(this.spiFlash, this.board) };
    return this.bootCache.plan;
  }

  /** The bootloader and the interpreter from flash; without them, the board's reset loop. */
  private bootFromFlash(): void {
    const plan = this.bootPlan();
    const outcome = plan.outcome;
    if (outcome.kind === "app") {
      for (const line of plan.lines) this.console.romText(line.text + "\n");
      this.line.setBaud(this.consoleBaud);
      this.console.identity.version = outcome.version ?? DEFAULT_VERSION;
      this.boot(".bootcde");
      return;
    }
    for (const line of plan.lines) this.bootTimer(line.atMs, () => this.console.romText(line.text + "\n"));
    // the bootloader waits for its UART to send the last line before it resets the chip
    // (bootloader_reset(): esp_rom_uart_tx_wait_idle)
    const reset = () => {
      const busy = this.line.txBusyMs;
      if (busy > 0) this.bootTimer(Math.ceil(busy) + 1, reset);
      else this.chipReset(outcome.reason);
    };
    this.bootTimer(outcome.atMs, reset);
    this.changed();
  }

  private bootTimer(ms: number, fn: () => void): void {
    const t = this.clock.setTimeout(() => {
      this.bootTimers.delete(t);
      fn();
    }, ms);
    this.bootTimers.add(t);
  }

  /** Press the reset button. */
  reboot(): void {
    this.powerOff();
    this.powerOn();
  }

  /**
   * A sensor comes off its bus: by config name, by I2C address, or (nothing given) every one. A
   * DS18B20 stops answering on its wire, an I2C chip stops acknowledging, a battery's divider reads
   * 0 V. Plugged back in, a chip starts from power-on.
   */
  unplug(which?: string | number): void {
    for (const s of this.select(which)) {
      s.plugged = false;
      this.unplugged.add(s.name);
      this.wire(s);
    }
    this.changed();
  }

  plug(which?: string | number): void {
    for (const s of this.select(which)) {
      this.unplugged.delete(s.name);
      if (s.plugged) continue;
      s.plugged = true;
      if (s.model instanceof DS18B20Model) s.model.powerOn();
      else if (s.model instanceof SCD4xModel) s.model.powerOn();
      else if (s.model instanceof BME280Model) s.model.reset();
      this.wire(s);
    }
    this.changed();
  }

  /** Every configured sensor is on its bus. */
  get sensorPlugged(): boolean {
    return [...this.sensors.values()].every((s) => s.plugged);
  }

  /**
   * Fault "crc": the sensor's answers fail their CRC (chips without one, BME280 and BH1750, are
   * left alone: a flipped bit there goes unnoticed; the returned list names the ones affected).
   * Fault "stuck": the sensor's bus is held low (I2C1: every I2C sensor fails; a OneWire pin: its
   * DS18B20s). Nothing given: every sensor. Returns the sensors affected.
   */
  fault(kind: "crc" | "stuck", on: boolean, which?: string): SimSensor[] {
    const affected: SimSensor[] = [];
    for (const s of this.select(which)) {
      if (kind === "crc") {
        if (s.model instanceof DS18B20Model || isSensirion(s.model)) {
          s.crc = on;
          if (on) this.corrupted.add(s.name);
          else this.corrupted.delete(s.name);
          (s.model as DS18B20Model | SensirionModel).corrupt = on;
          affected.push(s);
        }
      } else if (s.bus === "i2c") {
        this.i2cStuck = on;
        if (this.i2c) this.i2c.I2C1.stuck = on;
        affected.push(s);
      } else if (s.bus === "onewire") {
        this.oneWire.line(s.pin!).stuck = on;
        affected.push(s);
      }
    }
    this.changed();
    return affected;
  }

  /** A configured sensor's hardware, by name. */
  sensor(name: string): SimSensor | undefined {
    return this.sensors.get(name);
  }

  private select(which: string | number | undefined): SimSensor[] {
    const all = [...this.sensors.values()];
    if (which === undefined) return all;
    return all.filter((s) => (typeof which === "number" ? s.bus === "i2c" && s.address === which : s.name === which));
  }

  /** The broker accepted (true) or lost (false) this node's MQTT session. */
  brokerClient(connected: boolean): void {
    if (this.brokerSession === connected) return;
    this.brokerSession = connected;
    this.changed();
  }

  /** A message the node published, seen by the broker. */
  message(topic: string, payload: string): void {
    const prefix = this.prefix;
    if (!topic.startsWith(prefix + "/")) return;
    this.published++;
    const sub = topic.slice(prefix.length + 1);
    if (sub === "status") this.status = payload;
    else if (sub === "status/outbox") this.outboxStatus = parseJson(payload);
    else if (sub.startsWith("status/")) {
      // {"ok":true,"ts":…} or {"error":"…","ts":…}
      const s = parseJson(payload) as { ok?: boolean; error?: string } | undefined;
      this.sensorStatus[sub.slice(7)] = s?.ok ? "ok" : typeof s?.error === "string" ? s.error : payload;
    }
    else if (!sub.includes("/")) {
      let values: unknown;
      try {
        values = JSON.parse(payload);
      } catch {
        return;
      }
      if (typeof values !== "object" || values === null) return;
      const numbers: Record<string, number> = {};
      const history = (this.history[sub] ??= {});
      const keep = this.options.historyLength ?? 60;
      for (const [k, v] of Object.entries(values)) {
        // the time it was taken is not a quantity
        if (typeof v !== "number" || k === "ts" || k === "uptime") continue;
        numbers[k] = v;
        const list = (history[k] ??= []);
        list.push(v);
        if (list.length > keep) list.splice(0, list.length - keep);
      }
      const ts = (values as { ts?: unknown }).ts;
      this.readings[sub] = { at: this.clock.Date.now(), takenAt: typeof ts === "number" ? ts : undefined, values: numbers };
    }
    this.changed();
  }

  /** Stop for good (end of simulation). */
  dispose(): void {
    this.powerOff();
    this.cancelEn();
    this.station.dispose();
    this.line.dispose();
  }

  private boot(file: string | undefined): void {
    this.boots++;
    this.bootedAt = this.clock.Date.now();
    this.brokerSession = false;
    // Output of a runtime that is no longer the node's (code still unwinding after deep sleep) goes nowhere.
    let runtime: Runtime | undefined;
    runtime = createRuntime({
      name: this.serial,
      clock: this.clock,
      // setTime keeps the ticks' quarter millisecond (see start())
      rtc: { now: () => this.deviceTime, set: (ms) => (this.rtcBase = this.clock.Date.now() - Math.floor(ms) - 0.25) },
      log: (line) => {
        if (runtime === undefined || runtime === this.runtime) this.console.print(line);
      },
      plugins: [
        this.console.plugin(),
        storagePlugin(this.flashStorage),
        this.station.plugin(),
        pinsPlugin(this.pins, this.board),
        oneWirePlugin(this.oneWire),
        adcPlugin(this.adc, this.pins),
        (rt) => this.installChip(rt),
        ...(this.options.plugins ?? []),
      ],
    });
    this.runtime = runtime;
    this.changed();
    // jsfLoadBootCodeFromFlash: .boot0 to .boot3 always, then the saved code unless this is reset()
    for (const name of [".boot0", ".boot1", ".boot2", ".boot3", file]) {
      const source = name === undefined ? undefined : this.flashStorage.read(name);
      if (source === undefined || runtime !== this.runtime) continue;
      try {
        runtime.run(source, name);
      } catch (err) {
        runtime.reportUncaught(err);
      }
    }
    if (runtime !== this.runtime) return;
    // jsiSemiInit runs E's "init" listeners right after the saved code, before queued events.
    this.fire(runtime, "init");
    this.console.booted(file !== undefined && this.flashStorage.read(file) !== undefined);
  }

  /** Globals and modules of the ESP32 build that touch the chip itself. */
  private installChip(rt: Runtime): void {
    this.syncSensors();
    this.i2c = installI2C(rt);
    this.i2c.I2C1.stuck = this.i2cStuck;
    for (const s of this.sensors.values()) if (s.bus === "i2c") this.wire(s);
    rt.defineGlobal("getSerial", () => this.serial);
    rt.defineGlobal("reset", (clearFlash?: unknown) => {
      if (clearFlash) this.flashStorage.erase(".bootcde");
      this.softReset(rt, undefined);
    });
    rt.defineGlobal("load", (file?: unknown) => this.softReset(rt, file === undefined ? ".bootcde" : String(file)));
    rt.defineGlobal("save", () => {
      throw new rt.realm.Error("Cannot save: .bootcde file already exists. Please remove it first.");
    });
    rt.global.E.reboot = () => this.hardReset(rt, 0);
    rt.defineModule("ESP32", (r) =>
      r.newObject({
        // ["us","int"]: the argument becomes a 32-bit JsVarInt ((JsVarInt)(long long)x, so 3.6e9
        // wraps to -694967296) and goes to esp_sleep_enable_timer_wakeup((uint64_t)us): a negative
        // one is about 584,000 years. So 2147 s is the longest sleep one call gives.
        deepSleep: (us: unknown) => {
          const n = Number(us);
          const int = Number.isFinite(n) ? Number(BigInt.asIntN(32, BigInt(Math.trunc(n)))) : 0;
          if (int < 0) this.note(`deepSleep(${n}): ${int} as a 32-bit int; the chip will not wake by its timer`);
          return this.hardReset(rt, int < 0 ? Infinity : int / 1000, "deep sleep");
        },
        reboot: () => this.hardReset(rt, 0),
        getState: () => r.newObject({ sdkVersion: "v4.4.8", freeHeap: 120000, BLE: false, Wifi: true, minFreeHeap: 100000 }),
        setBLE_Debug: () => undefined,
        enableWifi: () => undefined,
      }),
    );
  }

  /** reset()/load(): once the running code returns, E "kill", then a fresh interpreter. */
  private softReset(rt: Runtime, file: string | undefined): void {
    if (this.pendingSoftReset || rt !== this.runtime) return;
    this.pendingSoftReset = true;
    void Promise.resolve().then(() => {
      this.pendingSoftReset = false;
      if (rt !== this.runtime || rt.disposed) return;
      this.fire(rt, "kill");
      this.stopRuntime();
      this.note(file === undefined ? "reset()" : `load(${JSON.stringify(file)})`);
      this.console.softReset();
      this.boot(file);
    });
  }

  /**
   * The chip stops at once (E.reboot, deep sleep); it boots again after `sleepMs`. The calling
   * code must not go on (on the chip the call never returns), so this throws out of it.
   */
  private hardReset(rt: Runtime, sleepMs: number, what = "reboot"): never {
    if (rt !== this.runtime) throw new rt.realm.Error(`${what}: the chip is already stopped`);
    this.stop();
    this.note(sleepMs === Infinity ? `${what}, no wake-up` : sleepMs > 0 ? `${what} for ${Math.round(sleepMs)} ms` : what);
    this.resetReason = what === "deep sleep" ? "deep-sleep" : "reboot";
    if (what === "deep sleep") {
      this.lastAwakeMs = this.clock.Date.now() - this.wokeAt;
      this.sleeps++;
    }
    this.power = "sleeping";
    this.changed();
    if (sleepMs !== Infinity)
      this.wakeTimer = this.clock.setTimeout(() => {
        this.wakeTimer = undefined;
        if (this.power !== "sleeping") return;
        this.power = "off";
        this.powerOn();
      }, Math.max(1, sleepMs));
    throw new rt.realm.Error(`${what}: the chip stopped`);
  }

  private fire(rt: Runtime, event: string): void {
    const listeners = rt.listeners(rt.global.E, event);
    for (const listener of listeners ? [...listeners] : []) rt.invoke(listener, rt.global.E);
  }

  private stop(): void {
    for (const t of this.bootTimers) this.clock.clearTimeout(t);
    this.bootTimers.clear();
    this.leaveDownload();
    this.stopRuntime();
    this.console.off();
    this.station.powerOff();
  }

  private stopRuntime(): void {
    const rt = this.runtime;
    this.runtime = undefined;
    this.i2c = undefined;
    this.brokerSession = false;
    if (rt) {
      try {
        rt.dispose();
      } catch (err) {
        this.note(`dispose failed: ${(err as Error).message}`);
      }
    }
  }

  private cancelWake(): void {
    if (this.wakeTimer !== undefined) this.clock.clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
  }

  /** Power-on: a fresh device for every sensor wisp.json names, on its bus. */
  private newSensors(): void {
    for (const s of this.sensors.values()) this.detach(s);
    this.sensors.clear();
    this.wiredFor = undefined;
    this.syncSensors();
  }

  /**
   * Every boot: the chips on the buses are the ones wisp.json names (a `wisp flash` may have
   * written another one since power-on). Sensors whose wiring is unchanged keep their device and
   * its state, as chips do across a soft reset; the others are taken off, the new ones put on.
   */
  private syncSensors(): void {
    const wanted = this.config()?.sensors ?? [];
    const key = JSON.stringify(wanted);
    if (key === this.wiredFor) return;
    this.wiredFor = key;
    const keyOf = (c: { name: string; type: string; address?: number; pin?: number; rom?: string; divider?: number }) =>
      JSON.stringify([c.name, c.type, c.address, c.pin, c.rom, c.divider]);
    const keep = new Set(wanted.map(keyOf));
    for (const [name, s] of this.sensors) {
      if (keep.has(s.key)) continue;
      this.detach(s);
      this.sensors.delete(name);
    }
    const environment = this.options.environment ?? (() => DEFAULT_ENVIRONMENT);
    const now = () => this.clock.Date.now();
    const seed = (k: number) => ({ seed: (this.options.seed ?? 0) * 7919 + this.index * 31 + k + 1 });
    wanted.forEach((c, k) => {
      if (this.sensors.has(c.name)) return;
      const s: SimSensor = { name: c.name, type: c.type, key: keyOf(c), bus: "i2c", model: undefined, plugged: !this.unplugged.has(c.name), crc: false };
      switch (c.type) {
        case "bme280":
          s.address = c.address ?? 0x76;
          s.model = new BME280Model({ environment, calibration: CALIBRATION_SETS[(this.index + k) % CALIBRATION_SETS.length], now, noise: k === 0 ? { seed: (this.options.seed ?? 0) * 7919 + this.index + 1 } : seed(k) });
          break;
        case "sht3x":
          s.address = c.address ?? 0x44;
          s.model = new SHT3xModel({ environment, now, noise: seed(k) });
          break;
        case "sht4x":
          s.address = c.address ?? 0x44;
          s.model = new SHT4xModel({ environment, now, noise: seed(k) });
          break;
        case "scd4x":
          s.address = c.address ?? 0x62;
          s.model = new SCD4xModel({ environment, now, noise: seed(k) });
          break;
        case "bh1750":
          s.address = c.address ?? 0x23;
          s.model = new BH1750Model({ environment, now, noise: seed(k) });
          break;
        case "ds18b20": {
          s.bus = "onewire";
          s.pin = c.pin ?? this.board.oneWire?.pin ?? 4;
          const line = this.oneWire.line(s.pin);
          const rom = c.rom ?? romWithCrc(hash12(`${this.serial}/${c.name}`));
          s.model = new DS18B20Model({ rom, environment, now, line, parasite: this.options.parasite?.includes(c.name), noise: seed(k) });
          break;
        }
        case "battery": {
          s.bus = "adc";
          s.pin = c.pin;
          const divider = c.divider ?? 2;
          this.adc.attach(c.pin!, () => (s.plugged ? environment().battery / divider : 0));
          break;
        }
        default:
          return; // a type the simulator has no model for: nothing answers
      }
      this.sensors.set(c.name, s);
      if (this.corrupted.has(c.name)) {
        s.crc = true;
        (s.model as DS18B20Model | SensirionModel).corrupt = true;
      }
      this.wire(s);
    });
  }

  /** Put a sensor on its bus, or take it off, as `plugged` says. */
  private wire(s: SimSensor): void {
    if (s.bus === "onewire") {
      const line = this.oneWire.line(s.pin!);
      if (s.plugged) line.attach(s.model as DS18B20Model);
      else line.detach(s.model as DS18B20Model);
      return;
    }
    if (s.bus !== "i2c" || !this.i2c) return;
    const bus = this.i2c.I2C1;
    if (!s.plugged) {
      if (bus.device(s.address!) === s.model) bus.detach(s.address!);
      return;
    }
    if (bus.device(s.address!) === s.model) return;
    try {
      bus.attach(s.address!, s.model as I2CDevice);
    } catch (err) {
      this.note(`${s.name}: ${(err as Error).message}`);
    }
  }

  private detach(s: SimSensor): void {
    if (s.bus === "onewire") this.oneWire.line(s.pin!).detach(s.model as DS18B20Model);
    else if (s.bus === "adc") this.adc.detach(s.pin!);
    else if (this.i2c && bus(this.i2c).device(s.address!) === s.model) bus(this.i2c).detach(s.address!);
  }

  private print(line: string): void {
    this.log.push(line);
    const keep = this.options.logLines ?? 200;
    if (this.log.length > keep) this.log.splice(0, this.log.length - keep);
    // The runtime keeps its own unbounded copy; a long simulation must not grow it forever.
    const rt = this.runtime;
    if (rt && rt.logs.length > 4 * keep) rt.logs.splice(0, rt.logs.length - keep);
    if (rt && rt.errors.length > keep) rt.errors.splice(0, rt.errors.length - keep);
    this.options.log?.(line, this);
  }

  /** A host line in the node's log (not device output). */
  private note(text: string): void {
    this.print(`-- ${text} --`);
  }

  private changed(): void {
    this.options.onChange?.(this);
  }
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** process.env.VERSION when the interpreter's image does not say. */
const DEFAULT_VERSION = "2v29";

function expand(template: string, id: string): string {
  return template.split("{id}").join(id);
}

function bus(i2c: { I2C1: EmulatedI2C }): EmulatedI2C {
  return i2c.I2C1;
}

function isSensirion(model: unknown): model is SensirionModel {
  return model instanceof SHT3xModel || model instanceof SHT4xModel || model instanceof SCD4xModel;
}

/** 12 hex digits from a string (FNV-1a), for a DS18B20 serial that stays the same run to run. */
function hash12(text: string): string {
  let h = 0xcbf29ce484222325n;
  for (const c of Buffer.from(text)) h = ((h ^ BigInt(c)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return h.toString(16).padStart(16, "0").slice(-12);
}
