// flash.config.json: validated against flash.schema.json (the same schema editors use through
// `$schema`) plus the checks a schema cannot express (addresses shared, DS18B20s without ROMs,
// pins the board does not have), then rendered into wisp.json, the file the node reads from its
// Storage, with the board's pins and every default filled in.
//
// Who checks what: every command that reads the file validates it whole (validateFlashConfig).
// Secrets given as {"env": NAME} are read only where wisp.json is written for a board
// (renderDeviceConfig: `wisp flash`, `wisp hil`); `wisp build` says which ones it did not read
// (checkFlashConfig), so a build on a machine without them (CI) still passes, and a board is
// never flashed with one missing.

import { Ajv, type ErrorObject } from "ajv";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { boards } from "../boards/index.ts";
import type { Board } from "../boards/types.ts";
import type { NodeConfig, SensorConfig } from "../firmware/node/config.ts";
import { closest } from "./commands.js";
import { ADC_OFFSET, ADC_SCALE, LI_ION_CURVE, SENSOR_TYPES, type SensorTypeName } from "./drivers.ts";
import { displayPath, FileError, readJsonFile } from "./files.ts";
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
    /** What the problems stop: "is not valid", "cannot be written to the board as wisp.json". */
    readonly header = "is not valid",
  ) {
    super(problems.length ? `${displayPath(file)} ${header}:\n${problems.map((p) => "  " + p).join("\n")}` : `${displayPath(file)} ${header}`);
  }

  /** A config file that cannot be read or is not JSON: the FileError's own message. */
  static fromFile(err: FileError): ConfigError {
    const e = new ConfigError(err.file, []);
    e.message = err.message;
    return e;
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

/** The value the user wrote, as they would say it: `the string "10"`, `the number 0.5`. */
function given(value: unknown): string {
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  return JSON.stringify(value);
}

type FieldSchema = { type?: string; minimum?: number; maximum?: number; minLength?: number; maxLength?: number; description?: string; properties?: Record<string, unknown> };

/** What a field takes, from its schema: "a whole number from 1 to 86400". */
function expected(schema: FieldSchema): string {
  const { minimum: lo, maximum: hi } = schema;
  const range = lo !== undefined && hi !== undefined ? ` from ${lo} to ${hi}` : lo !== undefined ? ` of at least ${lo}` : hi !== undefined ? ` of at most ${hi}` : "";
  switch (schema.type) {
    case "integer":
      return `a whole number${range}`;
    case "number":
      return `a number${range}`;
    case "string":
      return "a string in double quotes";
    case "boolean":
      return "true or false";
    case "array":
      return "a list [ ... ]";
    case "object":
      return "an object { ... }";
    default:
      return String(schema.type);
  }
}

/** The schema's description of a field, as a parenthesis: " (seconds between samples)". */
function about(schema: FieldSchema | undefined): string {
  const d = schema?.description;
  return d && d.length < 60 ? ` (${d.replace(/\.$/, "").replace(/^[A-Z](?![A-Z0-9])/, (c) => c.toLowerCase())})` : "";
}

/** A oneOf of `false` and an object: an optional section that can be turned off. */
function falseOrObject(branches: unknown): boolean {
  return Array.isArray(branches) && branches.some((b) => b?.const === false) && branches.some((b) => b?.type === "object");
}

const isObject = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
const fmtNumber = (n: number) => n.toLocaleString("en-US");

/** The value at a JSON pointer. */
function valueAt(value: unknown, pointer: string): unknown {
  return pointer
    .split("/")
    .slice(1)
    .reduce<unknown>((v, key) => (v && typeof v === "object" ? (v as Record<string, unknown>)[key.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined), value);
}

function describe(e: ErrorObject, root: unknown): string {
  const at = fieldPath(e.instancePath) || "(top level)";
  const schema = e.parentSchema as FieldSchema | undefined;
  if (e.propertyName !== undefined) {
    // propertyNames of a sensor type (the schema's allOf/if/then): a field of another type
    const type = (valueAt(root, e.instancePath) as { type?: string } | undefined)?.type;
    return `${at}: "${e.propertyName}" is not a field of a ${type} sensor (its fields: ${e.params.allowedValues?.join(", ")})`;
  }
  switch (e.keyword) {
    case "required":
    {
      // a section is an object of fields (wifi, mqtt); anything else is a field (prefix, interval)
      const field = schema?.properties?.[e.params.missingProperty] as FieldSchema | undefined;
      return `${at}: missing ${field?.type === "object" ? "section" : "field"} "${e.params.missingProperty}"${about(field)}`;
    }
    case "additionalProperties": {
      const known = Object.keys(schema?.properties ?? {}).filter((k) => k !== "$schema");
      const guess = closest(e.params.additionalProperty, known);
      return `${at}: unknown field "${e.params.additionalProperty}"${guess ? ` (did you mean "${guess}"?)` : ` (fields here: ${known.join(", ")})`}`;
    }
    case "enum":
      return `${at}: must be one of ${e.params.allowedValues.map((v: unknown) => JSON.stringify(v)).join(", ")}, got ${JSON.stringify(e.data)}`;
    case "pattern":
      return `${at}: ${JSON.stringify(typeof e.data === "string" ? redactUrl(e.data) : e.data)} does not have the right form${schema?.description ? ` (${schema.description})` : ` (pattern ${e.params.pattern})`}`;
    case "oneOf":
      if (falseOrObject(e.schema)) {
        const object = (e.schema as FieldSchema[]).find((b) => b.type === "object");
        const fields = Object.keys(object?.properties ?? {});
        return `${at}: must be false or an object${fields.length ? ` with ${fields.map((f) => `"${f}"`).join(", ")}` : ""}, got ${given(e.data)}`;
      }
      return `${at}: must be a string or {"env": "VARIABLE_NAME"}, got ${given(e.data)}`;
    case "multipleOf":
      return `${at}: must be a multiple of ${fmtNumber(e.params.multipleOf)}${about(schema ?? {})}, got ${given(e.data)}`;
    case "type":
    case "minimum":
    case "maximum":
    case "exclusiveMinimum":
    case "exclusiveMaximum": {
      const s = schema ?? {};
      const quoted = typeof e.data === "string" && e.data.trim() !== "" && !Number.isNaN(Number(e.data)) && (s.type === "integer" || s.type === "number");
      return `${at}: must be ${expected(s)}${about(s)}, got ${given(e.data)}${quoted ? ` (write ${e.data} without quotes)` : ""}`;
    }
    case "minLength":
    case "maxLength": {
      const lo = schema?.minLength ?? 0,
        hi = schema?.maxLength;
      const length = typeof e.data === "string" ? e.data.length : 0;
      return `${at}: must have ${hi === undefined ? `at least ${lo}` : `${lo} to ${hi}`} characters, got ${length}`;
    }
    default:
      return `${at}: ${e.message}`;
  }
}

/**
 * The broker URL beyond its form (the schema checks that): a port from 1 to 65535 and a host that
 * is a DNS name or an IPv4 address whose parts are 0 to 255.
 */
export function brokerUrlProblems(url: string, field = "mqtt.url"): string[] {
  const m = /^(mqtts?):\/\/([^/:]+)(?::([0-9]+))?\/?$/.exec(url);
  if (!m) return [];
  const [, , host, port] = m as unknown as [string, string, string, string | undefined];
  const problems: string[] = [];
  if (port !== undefined && !(Number(port) >= 1 && Number(port) <= 65535)) problems.push(`${field}: port ${port} is out of range (1 to 65535; MQTT is 1883, over TLS 8883)`);
  if (/^[0-9.]+$/.test(host)) {
    const parts = host.split(".");
    if (parts.length !== 4 || parts.some((p) => p === "" || Number(p) > 255 || (p.length > 1 && p.startsWith("0")))) {
      problems.push(`${field}: "${host}" is not an IPv4 address (four numbers 0 to 255, like 192.168.1.10)`);
    }
  } else if (host.length > 253 || !host.split(".").every((label) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(label))) {
    problems.push(`${field}: "${host}" is not a valid host name (letters, digits and "-" between dots, like broker.lan)`);
  }
  return problems;
}

/**
 * Ajv's errors (from a validator compiled with `allErrors` and `verbose`) as one line each, naming
 * the field, what it takes and what it got. For every JSON file of Wisp that has a schema; `root`
 * is the value that was validated.
 */
export function schemaProblems(errors: ErrorObject[] | null | undefined, root: unknown): string[] {
  let list = errors ?? [];
  // A field named wrongly for its sensor type is reported once, not also for its value, nor as an
  // unknown field; "must match then" and oneOf's branches only repeat what their details say.
  const misplaced = new Set(list.filter((e) => e.propertyName !== undefined).map((e) => `${e.instancePath}/${e.propertyName}`));
  const unknown = new Set(list.filter((e) => e.keyword === "additionalProperties").map((e) => `${e.instancePath}/${e.params.additionalProperty}`));
  // A section that may also be `false` (outbox): given an object, it is checked as that object, so
  // the error names its field ("outbox.maxBytes: must be ..."), not the oneOf.
  const sections = list.filter((e) => e.keyword === "oneOf" && falseOrObject(e.schema) && isObject(e.data));
  const objectBranch = (e: ErrorObject) => sections.some((o) => e.schemaPath.startsWith(`${o.schemaPath}/${(o.schema as FieldSchema[]).findIndex((b) => b.type === "object")}/`));
  list = list.filter((e) => !sections.includes(e));
  list = list.filter(
    (e) =>
      (!/\/oneOf\/\d/.test(e.schemaPath) || objectBranch(e)) &&
      e.keyword !== "if" &&
      e.keyword !== "propertyNames" &&
      !misplaced.has(e.instancePath) &&
      !(e.propertyName !== undefined && unknown.has(`${e.instancePath}/${e.propertyName}`)),
  );
  return [...new Set(list.map((e) => describe(e, root)))];
}

/** Checks a parsed flash.config.json; returns the problems, each naming its field. */
export function validateFlashConfig(value: unknown): string[] {
  if (!validator) {
    const ajv = new Ajv({ allErrors: true, verbose: true });
    validator = ajv.compile(JSON.parse(readFileSync(SCHEMA_PATH, "utf8")));
  }
  const valid = validator(value);
  const problems = valid ? semanticProblems(value as FlashConfig) : schemaProblems(validator.errors, value);
  // what a schema cannot say, on the parts that have the right shape, so one run reports everything
  const c = value as Partial<FlashConfig> | null;
  if (typeof c?.mqtt?.url === "string") problems.unshift(...brokerUrlProblems(c.mqtt.url));
  if (!valid && Array.isArray(c?.sensors)) {
    const names = new Set<string>();
    c.sensors.forEach((s, i) => {
      if (typeof s?.name !== "string") return;
      if (names.has(s.name)) problems.push(`sensors[${i}].name: "${s.name}" is used twice; each sensor needs its own topic`);
      names.add(s.name);
    });
  }
  return problems;
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
    value = readJsonFile(file, "the config", "-c FILE names another (default flash.config.json)");
  } catch (e) {
    if (e instanceof FileError) throw ConfigError.fromFile(e);
    throw e;
  }
  const problems = validateFlashConfig(value);
  if (problems.length) throw new ConfigError(file, problems);
  return value as FlashConfig;
}

/** The secrets of a config given as {"env": NAME}: field and variable. */
export function envSecrets(config: FlashConfig): { field: string; variable: string }[] {
  const out: { field: string; variable: string }[] = [];
  const add = (field: string, s: Secret | undefined) => {
    if (s !== undefined && typeof s !== "string") out.push({ field, variable: s.env });
  };
  add("wifi.password", config.wifi.password);
  add("mqtt.password", config.mqtt.password);
  return out;
}

export interface ConfigCheck {
  config: FlashConfig;
  /** What was not checked and why, and what may be meant otherwise; none of them fail the check. */
  notes: string[];
}

/**
 * What `wisp build` checks of a config: the whole file (schema, ranges, host and port). Secrets in
 * the environment are not read (the build writes no wisp.json); each one is named in `notes`, with
 * whether the variable is set in this environment. Throws ConfigError like loadFlashConfig.
 */
export function checkFlashConfig(file: string, env: Record<string, string | undefined> = process.env): ConfigCheck {
  const config = loadFlashConfig(file);
  const notes: string[] = [];
  for (const { field, variable } of envSecrets(config)) {
    notes.push(
      env[variable] === undefined
        ? `not checked: ${field} comes from $${variable}, which is not set here; wisp flash and wisp hil read it when they write wisp.json for a board, and stop without it`
        : `${field} comes from $${variable} (set here; read again when wisp flash writes wisp.json)`,
    );
  }
  const fleet = "every node flashed with this file gets the same one";
  if (!config.prefix.includes("{id}")) notes.push(`prefix "${config.prefix}" has no {id}: ${fleet} (fine for a single node)`);
  if (config.mqtt.clientId !== undefined && !config.mqtt.clientId.includes("{id}")) {
    notes.push(`mqtt.clientId "${config.mqtt.clientId}" has no {id}: ${fleet}, and the broker drops one node when another connects`);
  }
  const host = /^mqtts?:\/\/([^/:]+)/.exec(config.mqtt.url)?.[1];
  if (host === "127.0.0.1" || host === "localhost") notes.push(`mqtt.url points at ${host}: on a board that is the board itself, not this computer (fine for a simulated board)`);
  return { config, notes };
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
    if (v === undefined) problems.push(`${field}: environment variable ${value.env} is not set (export ${value.env}=... first, or write the value in the file)`);
    else if (v === "") problems.push(`${field}: environment variable ${value.env} is empty (export ${value.env}=... first)`);
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
  if (problems.length) throw new ConfigError(options.file ?? path.join(PROJECT_ROOT, "flash.config.json"), problems, "cannot be written to the board as wisp.json");
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
