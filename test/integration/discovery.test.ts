// Home Assistant MQTT discovery from the built firmware, against Mosquitto 2: the node publishes
// a retained config per quantity, valid against the keys and types Home Assistant documents for an
// MQTT sensor (https://www.home-assistant.io/integrations/sensor.mqtt/, with the abbreviations of
// homeassistant/components/mqtt/abbreviations.py), and deletes them when a sensor leaves the config
// or discovery is turned off.
import { Ajv } from "ajv";
import type { MqttClient } from "mqtt";
import mqtt from "mqtt";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createSimulation, type Simulation } from "../../host-sim/sim.ts";
import { build } from "../../tools/build.ts";
import { type FlashConfig, loadFlashConfig, renderDeviceConfig } from "../../tools/config.ts";
import { PROJECT_ROOT } from "../../tools/paths.ts";
import { type Mosquitto, startMosquitto } from "../helpers/mosquitto.ts";
import { describeWithMosquitto } from "../helpers/suites.ts";
import { PEER, WISP } from "../helpers/users.ts";

// The abbreviations the node uses, as Home Assistant expands them.
const ABBREVIATIONS: Record<string, string> = {
  uniq_id: "unique_id", stat_t: "state_topic", val_tpl: "value_template", dev_cla: "device_class",
  unit_of_meas: "unit_of_measurement", stat_cla: "state_class", avty_t: "availability_topic", dev: "device",
};
const DEVICE_ABBREVIATIONS: Record<string, string> = { ids: "identifiers", mf: "manufacturer", mdl: "model", sw: "sw_version", name: "name" };

// Units Home Assistant accepts per sensor device class (https://www.home-assistant.io/integrations/sensor/#device-class).
const UNITS: Record<string, string[]> = {
  temperature: ["°C", "°F", "K"],
  humidity: ["%"],
  atmospheric_pressure: ["cbar", "bar", "hPa", "mmHg", "inHg", "kPa", "mbar", "Pa", "psi"],
  illuminance: ["lx"],
  carbon_dioxide: ["ppm"],
  voltage: ["V", "mV", "µV", "kV", "MV"],
  battery: ["%"],
};

const str = { type: "string", minLength: 1 };
// The documented configuration variables of an MQTT sensor, with their types; nothing else allowed.
const SENSOR_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["state_topic"],
  properties: {
    availability: { type: "array" }, availability_mode: { enum: ["all", "any", "latest"] }, availability_template: str, availability_topic: str,
    device: {
      type: "object",
      additionalProperties: false,
      properties: {
        configuration_url: str, connections: { type: "array" }, hw_version: str, identifiers: { anyOf: [str, { type: "array", items: str }] },
        manufacturer: str, model: str, model_id: str, name: str, serial_number: str, suggested_area: str, sw_version: str, via_device: str,
      },
    },
    device_class: { enum: Object.keys(UNITS) }, enabled_by_default: { type: "boolean" }, encoding: { type: "string" }, entity_category: { enum: ["diagnostic"] },
    expire_after: { type: "integer" }, force_update: { type: "boolean" }, icon: str, json_attributes_template: str, json_attributes_topic: str,
    last_reset_value_template: str, name: { type: ["string", "null"] }, object_id: str, payload_available: str, payload_not_available: str,
    qos: { enum: [0, 1, 2] }, state_class: { enum: ["measurement", "total", "total_increasing"] }, state_topic: str,
    suggested_display_precision: { type: "integer" }, unique_id: str, unit_of_measurement: str, value_template: str,
  },
};

function expand(config: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    const key = ABBREVIATIONS[k] ?? k;
    out[key] = key === "device" ? Object.fromEntries(Object.entries(v as object).map(([dk, dv]) => [DEVICE_ABBREVIATIONS[dk] ?? dk, dv])) : v;
  }
  return out;
}

describeWithMosquitto("Home Assistant discovery against Mosquitto", () => {
  let broker: Mosquitto;
  let firmware = "";
  let flash: FlashConfig;
  let sim: Simulation;
  const peers: MqttClient[] = [];

  beforeAll(async () => {
    broker = await startMosquitto({ logTypes: ["error", "warning"] });
    const result = await build({ config: `${PROJECT_ROOT}/examples/garden.json`, write: false, log: () => {} });
    firmware = result.reports.find((r) => r.target)!.bundle!.code;
    flash = loadFlashConfig(`${PROJECT_ROOT}/examples/garden.json`);
  });
  afterAll(async () => {
    for (const p of peers) await p.endAsync(true);
    await sim?.stop();
    await broker?.stop();
  });

  const device = (c: FlashConfig) => ({
    ...renderDeviceConfig({ ...c, mqtt: { ...c.mqtt, username: WISP.username, password: WISP.password } }, { wifi: { ssid: "x" }, mqttUrl: broker.url }),
    interval: 30,
  });

  /** Every retained message under homeassistant/, as a new subscriber gets it. */
  async function retainedConfigs(): Promise<Map<string, string>> {
    const peer = await mqtt.connectAsync(broker.url, { ...PEER, reconnectPeriod: 0 });
    peers.push(peer);
    const got = new Map<string, string>();
    peer.on("message", (topic, payload, packet) => {
      if (packet.retain) got.set(topic, payload.toString("utf8"));
    });
    await peer.subscribeAsync("homeassistant/#", { qos: 1 });
    await new Promise((r) => setTimeout(r, 300)); // Mosquitto sends the retained ones right after the SUBACK
    await peer.endAsync();
    return got;
  }

  async function runUntil(until: () => Promise<boolean> | boolean, limitMs = 60_000): Promise<void> {
    for (let t = 0; t < limitMs; t += 1000) {
      if (await until()) return;
      await sim.advance(1000);
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(await until()).toBe(true);
  }

  it("publishes one retained config per quantity, valid for an MQTT sensor, pointing at the node's readings", async () => {
    sim = await createSimulation({ nodes: 1, clock: "fake", firmware, config: device(flash) as any, brokerUrl: broker.url, observer: PEER });
    const node = sim.nodes[0]!;
    await runUntil(() => node.status === "online" && Object.keys(node.readings).length === flash.sensors.length);
    let configs = new Map<string, string>();
    await runUntil(async () => (configs = await retainedConfigs()).size >= 15);
    expect(configs.size).toBe(15); // 3 + 2 + 2 + 3 + 1 + 1 + 1 + 2 quantities
    const validate = new Ajv({ allErrors: true }).compile(SENSOR_SCHEMA);
    const uniqueIds = new Set<string>();
    for (const [topic, payload] of configs) {
      const match = /^homeassistant\/sensor\/(wisp_[A-Za-z0-9_-]+)\/([A-Za-z0-9_-]+)\/config$/.exec(topic);
      expect(match, topic).not.toBeNull();
      const c = expand(JSON.parse(payload)) as any;
      expect(validate(c), `${topic}: ${JSON.stringify(validate.errors)}`).toBe(true);
      expect(UNITS[c.device_class]).toContain(c.unit_of_measurement);
      uniqueIds.add(c.unique_id);
      // the state topic carries JSON with the key the template reads
      const key = /^\{\{value_json\.(\w+)\}\}$/.exec(c.value_template)![1]!;
      const sensor = c.state_topic.slice(node.prefix.length + 1);
      expect(typeof node.readings[sensor]?.values[key], `${sensor}.${key}`).toBe("number");
      expect(c.availability_topic).toBe(`${node.prefix}/status`);
      expect(c.device).toMatchObject({ identifiers: [match![1]], manufacturer: "Wisp", model: "ESP32-DevKitC (ESP32-WROOM-32)", sw_version: "0.1.0" });
      expect(c.device.name).toBe(`garden-${node.serial}`);
    }
    expect(uniqueIds.size).toBe(15);
    // °C travels as a JSON escape: the payload is ASCII, hence valid UTF-8 whatever the node's strings are
    expect(configs.get(`homeassistant/sensor/wisp_${node.serial}/air_temperature/config`)).toContain('"unit_of_meas":"\\u00B0C"');
  }, 60_000);

  it("deletes the configs of a sensor taken out of the config, then all of them with discovery off", async () => {
    const node = sim.nodes[0]!;
    const without = { ...flash, sensors: flash.sensors.filter((s) => s.name !== "light" && s.name !== "pond") };
    node.flash(firmware, device(without) as any);
    node.reboot();
    let configs = new Map<string, string>();
    await runUntil(async () => (configs = await retainedConfigs()).size === 13);
    expect([...configs.keys()].filter((t) => /\/(light|pond)_/.test(t))).toEqual([]);

    node.flash(firmware, device({ ...without, homeAssistant: { discovery: false } }) as any);
    node.reboot();
    await runUntil(async () => (configs = await retainedConfigs()).size === 0);
    await runUntil(() => node.status === "online");
  }, 90_000);
});
