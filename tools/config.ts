// flash.config.json: validated against flash.schema.json (the same schema editors use through
// `$schema`), then rendered into wisp.json, the file the node reads from its Storage.

import { Ajv, type ErrorObject } from "ajv";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { boards } from "../boards/index.ts";
import type { NodeConfig } from "../firmware/node/config.ts";
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

function describe(e: ErrorObject): string {
  const at = fieldPath(e.instancePath) || "(top level)";
  switch (e.keyword) {
    case "required":
      return `${at}: missing ${e.instancePath ? "field" : "section"} "${e.params.missingProperty}"`;
    case "additionalProperties":
      return `${at}: unknown field "${e.params.additionalProperty}" (check its spelling against flash.schema.json)`;
    case "enum":
      return `${at}: must be one of ${e.params.allowedValues.map((v: unknown) => JSON.stringify(v)).join(", ")}`;
    case "pattern":
      return `${at}: ${JSON.stringify(e.data)} does not have the right form${e.parentSchema?.description ? ` (${e.parentSchema.description})` : ` (pattern ${e.params.pattern})`}`;
    case "oneOf":
      return `${at}: must be a string or {"env": "VARIABLE_NAME"}`;
    default:
      return `${at}: ${e.message}`;
  }
}

/** Checks a parsed flash.config.json; returns the problems, each naming its field. */
export function validateFlashConfig(value: unknown): string[] {
  if (!validator) {
    const ajv = new Ajv({ allErrors: true, verbose: true });
    validator = ajv.compile(JSON.parse(readFileSync(SCHEMA_PATH, "utf8")));
  }
  if (validator(value)) {
    const c = value as FlashConfig,
      names = new Set<string>(),
      problems: string[] = [];
    c.sensors.forEach((s, i) => {
      if (names.has(s.name)) problems.push(`sensors[${i}].name: "${s.name}" is used twice; each sensor needs its own topic`);
      names.add(s.name);
    });
    return problems;
  }
  // oneOf reports its branches too; the summary line says it all
  const errors = (validator.errors ?? []).filter((e) => !/\/oneOf\/\d/.test(e.schemaPath));
  return [...new Set(errors.map(describe))];
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
  file?: string;
}

/** The wisp.json a node reads: secrets resolved, the board's pins filled in. */
export function renderDeviceConfig(config: FlashConfig, options: RenderOptions = {}): NodeConfig {
  const env = options.env ?? process.env,
    problems: string[] = [];
  const secret = (value: Secret | undefined, field: string): string | undefined => {
    if (value === undefined || typeof value === "string") return value;
    const v = env[value.env];
    if (v === undefined) problems.push(`${field}: environment variable ${value.env} is not set (export ${value.env}=... or write the value in the file)`);
    return v;
  };
  const board = boards[config.board];
  const wifi = options.wifi ?? { ssid: config.wifi.ssid, password: secret(config.wifi.password, "wifi.password") };
  const mqtt = {
    url: options.mqttUrl ?? config.mqtt.url,
    clientId: config.mqtt.clientId ?? "wisp-{id}",
    username: config.mqtt.username,
    password: secret(config.mqtt.password, "mqtt.password"),
    keepalive: config.mqtt.keepalive ?? 30,
    queueSize: config.mqtt.queueSize ?? 32,
  };
  if (problems.length) throw new ConfigError(options.file ?? "flash.config.json", problems);
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
