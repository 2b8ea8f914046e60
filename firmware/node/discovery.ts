// Home Assistant MQTT discovery (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery).
// On every connect the node publishes, retained, one config per quantity of each sensor to
//   <discovery prefix>/sensor/wisp_<serial>/<sensor>_<quantity>/config
// in the abbreviated keys Home Assistant documents (homeassistant/components/mqtt/abbreviations.py),
// one after another (one payload in RAM at a time). It also subscribes to
//   <discovery prefix>/+/wisp_<serial>/+/config
// and answers every retained config there that no configured sensor has any more (a sensor taken
// out of the config, or discovery turned off) with an empty retained message, which deletes it.
// Built in only when the config has a homeAssistant section (WISP_DISCOVERY, tools/build.ts).

import type { Client } from "../mqtt/client";
import type { DiscoveryConfig, NodeConfig, SensorConfig } from "./config";
import { expand } from "./config";

/** Per sensor type in this firmware: [reading key, device class, unit] (tools/drivers.ts QUANTITIES). */
declare const WISP_HA: { [type: string]: [string, string, string][] };
declare const WISP_VERSION: string;

let client: Client;
let ha: DiscoveryConfig;
let sensors: SensorConfig[];
/** the node's topic prefix, and Home Assistant's node id for it */
let prefix: string;
let nodeId: string;
let device: object;
/** the next config to publish: sensor, then quantity */
let sensor = 0;
let quantity = 0;

/** On connect: subscribe to this node's configs, publish the current ones. */
export function announce(c: Client, config: NodeConfig, topicPrefix: string): void {
  const serial = getSerial();
  client = c;
  ha = config.homeAssistant as DiscoveryConfig;
  sensors = ha.discovery ? config.sensors : [];
  prefix = topicPrefix;
  nodeId = "wisp_" + serial;
  device = { ids: [nodeId], name: expand(ha.name, serial), mf: "Wisp", mdl: ha.model, sw: WISP_VERSION };
  // QoS 0: a missed one is caught at the next connect; and aedes 1.2 stops reading a persistent
  // session's packets while it hands it retained QoS 1 messages on a SUBSCRIBE (seen in the simulator)
  c.subscribe(ha.prefix + "/+/" + nodeId + "/+/config", { qos: 0 });
  sensor = quantity = 0;
  next(null);
}

/** Publish the next config once the last one is acknowledged; a failure ends the round (the next connect starts another). */
function next(err: Error | null): void {
  const s = sensors[sensor];
  if (err) return failed(err);
  if (!s) return;
  const quantities = WISP_HA[s.type] || [],
    q = quantities[quantity];
  if (++quantity >= quantities.length) {
    quantity = 0;
    sensor++;
  }
  if (!q) return next(null);
  client.publish(
    topic(s, q[0]),
    JSON.stringify({
      name: s.name + " " + q[0],
      uniq_id: nodeId + "_" + s.name + "_" + q[0],
      stat_t: prefix + "/" + s.name,
      val_tpl: "{{value_json." + q[0] + "}}",
      dev_cla: q[1],
      unit_of_meas: q[2],
      stat_cla: "measurement",
      avty_t: prefix + "/status",
      dev: device,
    }),
    { qos: 1, retain: true },
    next,
  );
}

function topic(s: SensorConfig, q: string): string {
  return ha.prefix + "/sensor/" + nodeId + "/" + s.name + "_" + q + "/config";
}

/**
 * A message the node got: true when it was one of its discovery configs (handled here). A config
 * no sensor of the current config has is deleted.
 */
export function discoveryMessage(t: string, payload: string): boolean {
  if (!ha || t.indexOf(ha.prefix + "/") != 0) return false;
  if (payload && !current(t)) client.publish(t, "", { qos: 1, retain: true }, failed);
  return true;
}

function current(t: string): boolean {
  for (const s of sensors) for (const q of WISP_HA[s.type] || []) if (topic(s, q[0]) == t) return true;
  return false;
}

function failed(err: Error | null): void {
  if (err) console.log("wisp: discovery: " + err.message);
}
