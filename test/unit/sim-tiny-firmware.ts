// A tiny node firmware for the simulator's own tests, so they do not depend on the real node
// application: it joins Wi-Fi, connects with the built dist/mqtt.js (loaded with
// Modules.addCached, as the Espruino IDE would) with a will, and publishes a counter every
// `interval` seconds under `t/<serial>/`. Espruino-compatible ES5.
import { readFileSync } from "node:fs";
import { distPath } from "../../host-sim/runtime.ts";
import type { NodeConfig } from "../../host-sim/node.ts";

export const TINY_CONFIG: NodeConfig = {
  wifi: { ssid: "x", password: "x" },
  mqtt: { url: "mqtt://127.0.0.1:1883", clientId: "tiny-{id}", keepalive: 30 },
  prefix: "t/{id}",
  interval: 1,
  qos: 1,
  sensors: [{ name: "climate", type: "bme280", address: 0x76 }],
};

/** Firmware source: the MQTT module, then `body` (ES5, may use `c` = wisp.json, `id`, `mqtt`, `join()`). */
export function tinyFirmware(body = PUBLISHER): string {
  const mqtt = readFileSync(distPath("mqtt.js"), "utf8");
  return `Modules.addCached("wisp-mqtt", ${JSON.stringify(mqtt)});
var c = require("Storage").readJSON("wisp.json", true);
var id = getSerial();
var base = "t/" + id;
var client;
function join() {
  require("Wifi").connect(c.wifi.ssid, { password: c.wifi.password }, function (err) {
    if (err) { print("wifi: " + err); setTimeout(join, 1000); return; }
    print("wifi up " + require("Wifi").getIP().ip);
    if (!client) online();
  });
}
require("Wifi").on("disconnected", function (d) { print("wifi lost " + d.msg); setTimeout(join, 1000); });
function online() {
  client = require("wisp-mqtt").connect(c.mqtt.url, { clientId: "tiny-" + id, keepalive: 30,
    will: { topic: base + "/status", payload: "offline", qos: 1, retain: true } });
  client.on("connect", function () { client.publish(base + "/status", "online", { qos: 1, retain: true }); });
}
${body}
`;
}

const PUBLISHER = `
var n = 0;
join();
setInterval(function () {
  n++;
  if (client && client.connected) client.publish(base + "/count", JSON.stringify({ n: n, t: getTime() }), { qos: 1 });
}, c.interval * 1000);
`;
