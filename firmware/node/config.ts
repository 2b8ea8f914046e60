// The node's settings: the Storage file wisp.json, written by the host from flash.config.json
// (tools/config.ts validates it there, with the JSON Schema). The device checks again, briefly,
// because a file can be written by hand or cut short; a bad file is reported, never fatal.

/** One sensor as wisp.json holds it (tools/config.ts renders it with the board's defaults filled in). */
export interface SensorConfig {
  name: string;
  /** bme280, sht3x, sht4x, scd4x, bh1750 (I2C1); ds18b20 (OneWire); battery (ADC) */
  type: string;
  /** I2C address */
  address?: number;
  /** GPIO of the OneWire line (ds18b20) or the ADC1 input (battery) */
  pin?: number;
  /** ds18b20: ROM code, 16 hex digits; resolution 9-12 bits */
  rom?: string;
  resolution?: number;
  /** battery: volts = scale * analogRead(pin) + offset; curve of [volts, percent]; divider for the record */
  divider?: number;
  scale?: number;
  offset?: number;
  curve?: number[][];
}

/** Home Assistant MQTT discovery, present when the config has a homeAssistant section. */
export interface DiscoveryConfig {
  /** false: remove what an earlier firmware announced */
  discovery: boolean;
  /** discovery prefix, "homeassistant" by default */
  prefix: string;
  /** device name and model shown in Home Assistant */
  name: string;
  model: string;
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
  homeAssistant?: DiscoveryConfig;
  /** SNTP server the clock is set from (default pool.ntp.org) */
  time?: { server: string };
  /** readings kept in flash until the broker has them; absent: in RAM (the client's queue) */
  outbox?: { maxBytes: number };
  /** deep-sleep duty cycle: wake every `seconds` (1-2147), awake at most `awake` seconds (default 30) */
  sleep?: { seconds: number; awake?: number };
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
  if (c.outbox && !(c.outbox.maxBytes >= 8192)) return "outbox.maxBytes must be at least 8192";
  // ESP32.deepSleep takes a 32-bit count of microseconds
  if (c.sleep && !(c.sleep.seconds >= 1 && c.sleep.seconds <= 2147)) return "sleep.seconds must be 1 to 2147";
  if (c.sleep && !c.outbox) return "sleep needs the outbox (readings wait in flash while the node sleeps)";
  return "";
}

/** `{id}` in client ids and topic prefixes is the chip's serial, so one config serves a fleet. */
export function expand(s: string, id: string): string {
  return s.split("{id}").join(id);
}
