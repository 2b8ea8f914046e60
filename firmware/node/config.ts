// The node's settings: the Storage file wisp.json, written by the host from flash.config.json
// (tools/config.ts validates it there, with the JSON Schema). The device checks again, briefly,
// because a file can be written by hand or cut short; a bad file is reported, never fatal.

export interface SensorConfig {
  name: string;
  type: string;
  address?: number;
}

export interface NodeConfig {
  wifi: { ssid: string; password?: string };
  /** `ca`: the broker's CA certificate, base64 of its DER bytes (Espruino's TLS takes DER, not PEM) */
  mqtt: { url: string; clientId?: string; username?: string; password?: string; ca?: string; keepalive?: number; queueSize?: number };
  /** topic prefix; `{id}` stands for the chip's serial */
  prefix: string;
  /** seconds between samples */
  interval: number;
  /** QoS of readings */
  qos?: number;
  i2c?: { sda: number; scl: number; bitrate?: number };
  sensors: SensorConfig[];
}

export const CONFIG_FILE = "wisp.json";

/** Why `c` cannot run the node, or "" when it can. */
export function configError(c: any): string {
  if (!c) return "missing or not JSON";
  if (!c.wifi || typeof c.wifi.ssid != "string") return "wifi.ssid must be a string";
  if (!c.mqtt || typeof c.mqtt.url != "string") return "mqtt.url must be a string";
  if (typeof c.prefix != "string" || !c.prefix) return "prefix must be a non-empty string";
  if (!(c.interval >= 1 && c.interval <= 86400)) return "interval must be 1 to 86400 seconds";
  if (!Array.isArray(c.sensors)) return "sensors must be a list";
  return "";
}

/** `{id}` in client ids and topic prefixes is the chip's serial, so one config serves a fleet. */
export function expand(s: string, id: string): string {
  return s.split("{id}").join(id);
}
