// flash.config.json: validated against flash.schema.json (the same schema editors use through
// `$schema`) plus the checks a schema cannot express (addresses shared, DS18B20s without ROMs,
// pins the board does not have), then rendered into wisp.json, the file the node reads from its
// Storage, with the board's pins and every default filled in.

import { Ajv, type ErrorObject } from "ajv";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { boards } from "../boards/index.ts";
import type { Board } from "../boards/types.ts";
import type { NodeConfig, SensorConfig } from "../firmware/node/config.ts";
import { ADC_OFFSET, ADC_SCALE, LI_ION_CURVE, SENSOR_TYPES, type SensorTypeName } from "./drivers.ts";
import { PROJECT_ROOT } from "./paths.ts";
import { redactUrl } from "./redact.ts";

export type Secret = string | { env: string };

export interface FlashSensor {
  name: string;
  type: SensorTypeName;
  /** I2C types */
  address?: number;
  /** ds18b20 (OneWire line) and battery (ADC1 input) */
  pin?: number;
  /** ds18b20 */
  rom?: string;
  resolution?: 9 | 10 | 11 | 12;
  /** battery */
  divider?: number;
  calibration?: [[number, number], [number, number]];
  curve?: [number, number][];
}

export interface FlashConfig {
  board: string;
  wifi: { ssid: string; password?: Secret };
  mqtt: { url: string; clientId?: string; username?: string; password?: Secret; keepalive?: number; queueSize?: number };
  prefix: string;
  interval: number;
  qos?: 0 | 1 | 2;
  sensors: FlashSensor[];
  homeAssistant?: { discovery: boolean; prefix?: string; name?: string };
  time?: { server: string };
  outbox?: false | { maxBytes?: number };
  sleep?: { seconds: number; awake?: number };
}

/** The outbox's default size: 64 segments of 4 KB, a quarter of an ESP32's Storage (about 3,000 readings). */
export const OUTBOX_DEFAULT_BYTES = 262144;
/** Storage the outbox must leave to the rest: the firmware (.bootcde), wisp.json and room to compact. */
const STORAGE_RESERVE = 65536;

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file} is not valid:\n${problems.map((p) => "  " + p).join("\n")}`);
  }
}

export const SCHEMA_PATH = path.join(PROJECT_ROOT, "flash.schema.json");

let validator: ReturnType<Ajv["compile"]> | undefined;

/** A field path as a user reads it: `mqtt.url`, `sensors[0].address`. */
function fieldPath(pointer: string): string {
  return pointer
    .split("/")
    .slice(1)
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : "." + p.replace(/~1/g, "/").replace(/~0/g, "~")))
    .join("")
    .replace(/^\./, "");
}

/** The value at a JSON pointer. */
function at(value: unknown, pointer: string): unknown {
  return pointer
    .split("/")
    .slice(1)
    .reduce<unknown>((v, key) => (v && typeof v === "object" ? (v as Record<string, unknown>)[key.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined), value);
}

function describe(e: ErrorObject, root: unknown): string {
  const where = fieldPath(e.instancePath) || "(top level)";
  if (e.propertyName !== undefined) {
    // propertyNames of a sensor type (the schema's allOf/if/then): a field of another type
    const type = (at(root, e.instancePath) as { type?: string } | undefined)?.type;
    return `${where}: "${e.propertyName}" is not a field of a ${type} sensor (its fields: ${e.params.allowedValues?.join(", ")})`;
  }
  switch (e.keyword) {
    case "required":
      return `${where}: missing ${e.instancePath ? "field" : "section"} "${e.params.missingProperty}"`;
    case "additionalProperties":
      return `${where}: unknown field "${e.params.additionalProperty}" (check its spelling against flash.schema.json)`;
    case "enum":
      return `${where}: must be one of ${e.params.allowedValues.map((v: unknown) => JSON.stringify(v)).join(", ")}`;
    case "pattern":
      return `${where}: ${JSON.stringify(typeof e.data === "string" ? redactUrl(e.data) : e.data)} does not have the right form${e.parentSchema?.description ? ` (${e.parentSchema.description})` : ` (pattern ${e.params.pattern})`}`;
    case "oneOf":
      return `${where}: must be a string or {"env": "VARIABLE_NAME"}`;
    default:
      return `${where}: ${e.message}`;
  }
}

/** Checks a parsed flash.config.json; returns the problems, each naming its field. */
export function validateFlashConfig(value: unknown): string[] {
  if (!validator) {
    const ajv = new Ajv({ allErrors: true, verbose: true });
    validator = ajv.compile(JSON.parse(readFileSync(SCHEMA_PATH, "utf8")));
  }
  if (validator(value)) return semanticProblems(value as FlashConfig);
  let errors = validator.errors ?? [];
  // A field named wrongly for its sensor type is reported once, not also for its value, nor as an
  // unknown field; "must match then" and oneOf's branches only repeat what their details say.
  const misplaced = new Set(errors.filter((e) => e.propertyName !== undefined).map((e) => `${e.instancePath}/${e.propertyName}`));
  const unknown = new Set(errors.filter((e) => e.keyword === "additionalProperties").map((e) => `${e.instancePath}/${e.params.additionalProperty}`));
  errors = errors.filter(
    (e) =>
      !/\/oneOf\/\d/.test(e.schemaPath) &&
      e.keyword !== "if" &&
      e.keyword !== "propertyNames" &&
      !misplaced.has(e.instancePath) &&
      !(e.propertyName !== undefined && unknown.has(`${e.instancePath}/${e.propertyName}`)),
  );
  return [...new Set(errors.map((e) => describe(e, value)))];
}

const hex = (n: number) => "0x" + n.toString(16).padStart(2, "0");

/** What the schema cannot say: one name per topic, one sensor per address, pins the board has. */
function semanticProblems(c: FlashConfig): string[] {
  const problems: string[] = [];
  const board = boards[c.board]!;
  const names = new Map<string, number>();
  const addresses = new Map<number, number>();
  const roms = new Map<string, number>();
  const wires = new Map<number, number[]>();
  const analog = new Map<number, number>();
  c.sensors.forEach((s, i) => {
    const here = `sensors[${i}]`;
    if (names.has(s.name)) problems.push(`${here}.name: "${s.name}" is used twice; each sensor needs its own topic`);
    names.set(s.name, i);
    const kind = SENSOR_TYPES[s.type];
    if (kind.bus === "i2c") {
      const address = s.address ?? kind.addresses[0]!;
      const other = addresses.get(address);
      if (other !== undefined) {
        problems.push(`${here}.address: ${address} (${hex(address)}) is taken by sensors[${other}] (${c.sensors[other]!.type}); two chips cannot answer at one address`);
      }
      addresses.set(address, i);
    } else if (kind.bus === "onewire") {
      const pin = s.pin ?? board.oneWire?.pin;
      if (pin === undefined) return problems.push(`${here}.pin: ${board.id} has no OneWire pin; give one`);
      if (pin === board.i2c.sda || pin === board.i2c.scl) problems.push(`${here}.pin: GPIO ${pin} is the I2C bus's ${pin === board.i2c.sda ? "SDA" : "SCL"}`);
      wires.set(pin, [...(wires.get(pin) ?? []), i]);
      if (s.rom !== undefined) {
        const rom = s.rom.toLowerCase();
        if (!romCrcOk(rom)) problems.push(`${here}.rom: ${s.rom} fails its CRC (the last two digits); copy it again from the node's log`);
        const other = roms.get(rom);
        if (other !== undefined) problems.push(`${here}.rom: ${s.rom} is also sensors[${other}]'s`);
        roms.set(rom, i);
      }
    } else {
      const pin = s.pin!;
      if (!(board.adc ?? []).includes(pin)) {
        problems.push(`${here}.pin: GPIO ${pin} is not an ADC1 input of ${board.id} (${(board.adc ?? []).join(", ")}); ADC2 does not work while Wi-Fi is on`);
      }
      const other = analog.get(pin);
      if (other !== undefined) problems.push(`${here}.pin: GPIO ${pin} is also sensors[${other}]'s`);
      analog.set(pin, i);
      if (s.calibration && s.calibration[0][0] === s.calibration[1][0]) problems.push(`${here}.calibration: the two published values must differ`);
      s.curve?.forEach((p, k) => {
        if (k > 0 && !(p[0] > s.curve![k - 1]![0])) problems.push(`${here}.curve[${k}]: volts must rise from point to point`);
      });
    }
  });
  const outboxBytes = c.outbox === false ? 0 : (c.outbox?.maxBytes ?? OUTBOX_DEFAULT_BYTES);
  if (outboxBytes > board.flash.storageBytes - STORAGE_RESERVE) {
    problems.push(`outbox.maxBytes: ${outboxBytes} does not fit ${board.id}'s Storage (${board.flash.storageBytes} bytes, ${STORAGE_RESERVE} of them kept for the firmware); at most ${board.flash.storageBytes - STORAGE_RESERVE}`);
  }
  if (c.sleep && c.outbox === false) problems.push(`sleep: needs the outbox (readings wait in flash while the node sleeps); remove "outbox": false`);
  for (const [pin, list] of wires) {
    const bare = list.filter((i) => c.sensors[i]!.rom === undefined);
    if (list.length > 1 && bare.length) {
      problems.push(
        `sensors[${bare[0]}].rom: ${list.length} DS18B20 sensors share GPIO ${pin}: give each its "rom" (the node logs the ROM codes it finds when one is missing)`,
      );
    }
    const pinClash = [...analog.keys()].includes(pin);
    if (pinClash) problems.push(`sensors[${list[0]}].pin: GPIO ${pin} is also a battery input`);
  }
  return problems;
}

/** The ROM code's last byte is the CRC of the first seven (x^8 + x^5 + x^4 + 1, LSB first). */
function romCrcOk(rom: string): boolean {
  const bytes = rom.match(/../g)!.map((b) => parseInt(b, 16));
  let crc = 0;
  for (const byte of bytes.slice(0, 7)) {
    let b = byte;
    for (let bit = 0; bit < 8; bit++) {
      crc = (crc ^ b) & 1 ? (crc >> 1) ^ 0x8c : crc >> 1;
      b >>= 1;
    }
  }
  return crc === bytes[7];
}

/** Reads and validates flash.config.json; throws a ConfigError naming every bad field. */
export function loadFlashConfig(file = path.join(PROJECT_ROOT, "flash.config.json")): FlashConfig {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new ConfigError(file, [(e as Error).message]);
  }
  const problems = validateFlashConfig(value);
  if (problems.length) throw new ConfigError(file, problems);
  return value as FlashConfig;
}

export interface RenderOptions {
  /** Where `{"env": NAME}` secrets come from (default process.env). */
  env?: Record<string, string | undefined>;
  /** Replace the Wi-Fi network (the simulator's access point). */
  wifi?: { ssid: string; password?: string };
  /** Replace the broker URL (the simulator's broker). */
  mqttUrl?: string;
  /**
   * The node's own broker login, and the broker's CA (base64 DER) when it has TLS: from a
   * `wisp broker init` folder with nodeLogin(dir, id) or ensureNodeLogin(dir, id) (tools/broker/folder.ts).
   * It replaces mqtt.username and mqtt.password of the file.
   */
  login?: { username: string; password: string; ca?: string };
  file?: string;
}

/** The wisp.json a node reads: secrets resolved, the board's pins and every sensor default filled in. */
export function renderDeviceConfig(config: FlashConfig, options: RenderOptions = {}): NodeConfig {
  const env = options.env ?? process.env,
    problems: string[] = [];
  const secret = (value: Secret | undefined, field: string): string | undefined => {
    if (value === undefined || typeof value === "string") return value;
    const v = env[value.env];
    if (v === undefined) problems.push(`${field}: environment variable ${value.env} is not set (export ${value.env}=... or write the value in the file)`);
    return v;
  };
  const board = boards[config.board]!;
  const wifi = options.wifi ?? { ssid: config.wifi.ssid, password: secret(config.wifi.password, "wifi.password") };
  const mqtt = {
    url: options.mqttUrl ?? config.mqtt.url,
    clientId: config.mqtt.clientId ?? "wisp-{id}",
    username: options.login ? options.login.username : config.mqtt.username,
    password: options.login ? options.login.password : secret(config.mqtt.password, "mqtt.password"),
    ca: options.login?.ca,
    keepalive: config.mqtt.keepalive ?? 30,
    queueSize: config.mqtt.queueSize ?? 32,
  };
  if (problems.length) throw new ConfigError(options.file ?? "flash.config.json", problems);
  const ha = config.homeAssistant;
  return JSON.parse(
    JSON.stringify({
      wifi,
      mqtt,
      prefix: config.prefix,
      interval: config.interval,
      qos: config.qos ?? 1,
      i2c: { sda: board.i2c.sda, scl: board.i2c.scl, bitrate: board.i2c.bitrate },
      sensors: config.sensors.map((s) => renderSensor(s, board)),
      homeAssistant: ha && { discovery: ha.discovery, prefix: ha.prefix ?? "homeassistant", name: ha.name ?? mqtt.clientId, model: board.name },
      time: { server: config.time?.server ?? "pool.ntp.org" },
      outbox: config.outbox === false ? undefined : { maxBytes: config.outbox?.maxBytes ?? OUTBOX_DEFAULT_BYTES },
      sleep: config.sleep && { seconds: config.sleep.seconds, awake: config.sleep.awake ?? 30 },
    }),
  );
}

/** One sensor as the device reads it (firmware/node/config.ts SensorConfig). */
export function renderSensor(s: FlashSensor, board: Board): SensorConfig {
  const kind = SENSOR_TYPES[s.type];
  if (kind.bus === "i2c") return { name: s.name, type: s.type, address: s.address ?? kind.addresses[0] };
  if (kind.bus === "onewire") return { name: s.name, type: s.type, pin: s.pin ?? board.oneWire?.pin, rom: s.rom?.toLowerCase(), resolution: s.resolution ?? 12 };
  const { scale, offset } = batteryLine(s);
  // divider stays for the record (and the simulator's wiring); the device reads scale and offset
  return { name: s.name, type: s.type, pin: s.pin, divider: s.divider ?? 2, scale, offset, curve: s.curve ?? LI_ION_CURVE };
}

/**
 * Battery volts as one line in analogRead: the ESP32's typical ADC line (tools/drivers.ts) times
 * the divider, then the user's two-point correction (published -> true) if any.
 */
export function batteryLine(s: Pick<FlashSensor, "divider" | "calibration">): { scale: number; offset: number } {
  const divider = s.divider ?? 2;
  let scale = ADC_SCALE * divider,
    offset = ADC_OFFSET * divider;
  if (s.calibration) {
    const [[p1, t1], [p2, t2]] = s.calibration;
    const gain = (t2 - t1) / (p2 - p1);
    // true = t1 + gain * (published - p1), published = scale * r + offset
    offset = t1 + gain * (offset - p1);
    scale = gain * scale;
  }
  return { scale: +scale.toPrecision(6), offset: +offset.toPrecision(6) };
}
