// flash.config.json: validated against flash.schema.json (the same schema editors use through
// `$schema`) plus what a schema cannot say (the broker's host and port, sensor names used twice),
// then rendered into wisp.json, the file the node reads from its Storage, with the secrets read
// from the environment at that moment.
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
import type { NodeConfig } from "../firmware/node/config.ts";
import { closest } from "./commands.js";
import { displayPath, FileError, readJsonFile } from "./files.ts";
import { PROJECT_ROOT } from "./paths.ts";

export type Secret = string | { env: string };

export interface FlashConfig {
  board: string;
  wifi: { ssid: string; password?: Secret };
  mqtt: { url: string; clientId?: string; username?: string; password?: Secret; keepalive?: number; queueSize?: number };
  prefix: string;
  interval: number;
  qos?: 0 | 1 | 2;
  sensors: { name: string; type: "bme280"; address?: number }[];
}

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

function describe(e: ErrorObject): string {
  const at = fieldPath(e.instancePath) || "(top level)";
  const schema = e.parentSchema as FieldSchema | undefined;
  switch (e.keyword) {
    case "required":
      return `${at}: missing ${e.instancePath ? "field" : "section"} "${e.params.missingProperty}"`;
    case "additionalProperties": {
      const known = Object.keys(schema?.properties ?? {}).filter((k) => k !== "$schema");
      const guess = closest(e.params.additionalProperty, known);
      return `${at}: unknown field "${e.params.additionalProperty}"${guess ? ` (did you mean "${guess}"?)` : ` (fields here: ${known.join(", ")})`}`;
    }
    case "enum":
      return `${at}: must be one of ${e.params.allowedValues.map((v: unknown) => JSON.stringify(v)).join(", ")}, got ${JSON.stringify(e.data)}`;
    case "pattern":
      return `${at}: ${JSON.stringify(e.data)} does not have the right form${schema?.description ? ` (${schema.description})` : ` (pattern ${e.params.pattern})`}`;
    case "oneOf":
      return `${at}: must be a string or {"env": "VARIABLE_NAME"}, got ${given(e.data)}`;
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
 * the field, what it takes and what it got. For every JSON file of Wisp that has a schema.
 */
export function schemaProblems(errors: ErrorObject[] | null | undefined): string[] {
  // oneOf reports its branches too; the summary line says it all
  return [...new Set((errors ?? []).filter((e) => !/\/oneOf\/\d/.test(e.schemaPath)).map(describe))];
}

/** Checks a parsed flash.config.json; returns the problems, each naming its field. */
export function validateFlashConfig(value: unknown): string[] {
  if (!validator) {
    const ajv = new Ajv({ allErrors: true, verbose: true });
    validator = ajv.compile(JSON.parse(readFileSync(SCHEMA_PATH, "utf8")));
  }
  const problems = validator(value) ? [] : schemaProblems(validator.errors);
  // what a schema cannot say, on the parts that have the right shape, so one run reports everything
  const c = value as Partial<FlashConfig> | null;
  if (typeof c?.mqtt?.url === "string") problems.push(...brokerUrlProblems(c.mqtt.url));
  if (Array.isArray(c?.sensors)) {
    const names = new Set<string>();
    c.sensors.forEach((s, i) => {
      if (typeof s?.name !== "string") return;
      if (names.has(s.name)) problems.push(`sensors[${i}].name: "${s.name}" is used twice; each sensor needs its own topic`);
      names.add(s.name);
    });
  }
  return problems;
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

/** The wisp.json a node reads: secrets resolved, the board's pins filled in. */
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
  const board = boards[config.board];
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
  return JSON.parse(
    JSON.stringify({
      wifi,
      mqtt,
      prefix: config.prefix,
      interval: config.interval,
      qos: config.qos ?? 1,
      i2c: { sda: board.i2c.sda, scl: board.i2c.scl, bitrate: board.i2c.bitrate },
      sensors: config.sensors.map((s) => ({ name: s.name, type: s.type, address: s.address ?? 0x76 })),
    }),
  );
}
