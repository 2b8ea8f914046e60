// The sensor-node application: join Wi-Fi, connect to the broker with a will, sample the sensors
// every `interval` seconds and publish readings, answer commands. It reaches the hardware only
// through Espruino's API (Wifi, Storage, I2C1, timers), which is where the simulator stands in.
//
// Like the MQTT client, it is written as top-level functions over module state: Espruino copies a
// function literal's source into RAM each time the code around it runs.

import { Client } from "../mqtt/client";
import { CONFIG_FILE, NodeConfig, configError, expand } from "./config";
import { announce, discoveryMessage } from "./discovery";
import { initSensors, sampleSensors } from "./sensors";

/** The config has a homeAssistant section: discovery is built in (tools/build.ts). */
declare const WISP_DISCOVERY: boolean;

const storage = require("Storage");
let config: NodeConfig;
let client: Client | undefined;
let prefix = "";
let sampleTimer = 0;
let wifiDelay = 1000;
let joining = false;
let lastConfigError = "";
const bootTime = Date.now();

function log(text: string): void {
  console.log("wisp: " + text);
}

/** Boot: read the settings, or wait for valid ones without crash-looping. */
export function start(): void {
  const c = storage.readJSON(CONFIG_FILE, true),
    bad = configError(c);
  if (bad) {
    // logged once per new problem, checked again every 5 s: flashing a good file brings the node up
    if (bad != lastConfigError) log(CONFIG_FILE + ": " + bad + "; waiting for a valid one (wisp flash writes it)");
    lastConfigError = bad;
    setTimeout(start, 5000);
    return;
  }
  config = c;
  prefix = expand(c.prefix, getSerial());
  initSensors(c.sensors, sensorReport);
  if (c.i2c) I2C1.setup({ sda: c.i2c.sda, scl: c.i2c.scl, bitrate: c.i2c.bitrate });
  log("node " + getSerial() + ", prefix " + prefix);
  require("Wifi").on("disconnected", wifiLost);
  joinWifi();
}

function joinWifi(): void {
  if (joining) return;
  joining = true;
  log("joining Wi-Fi " + config.wifi.ssid);
  require("Wifi").connect(config.wifi.ssid, { password: config.wifi.password }, wifiJoined);
}

function wifiJoined(err: string | null): void {
  joining = false;
  if (err) {
    log("Wi-Fi " + config.wifi.ssid + ": " + err + "; again in " + wifiDelay / 1000 + " s");
    setTimeout(joinWifi, wifiDelay);
    wifiDelay = Math.min(wifiDelay * 2, 60000);
    return;
  }
  wifiDelay = 1000;
  log("Wi-Fi up, IP " + require("Wifi").getIP().ip);
  if (!client) connectBroker();
}

function wifiLost(): void {
  // a failed join also reports "disconnected" (ESP32): its callback schedules the retry, with backoff
  if (joining) return;
  log("Wi-Fi lost");
  setTimeout(joinWifi, wifiDelay);
}

function connectBroker(): void {
  const m = config.mqtt,
    c = (client = new Client(m.url, {
      clientId: expand(m.clientId || "wisp-{id}", getSerial()),
      username: m.username,
      password: m.password,
      ca: m.ca ? atob(m.ca) : undefined,
      keepalive: m.keepalive || 30,
      // a persistent session keeps QoS 1 commands sent while the node is away
      clean: false,
      queueSize: m.queueSize || 32,
      will: { topic: prefix + "/status", payload: "offline", qos: 1, retain: true },
    }));
  c.on("connect", brokerUp);
  c.on("message", command);
  c.on("error", brokerError);
  c.on("offline", brokerDown);
  schedule();
  // the first reading now, not an interval later: it waits in the client's queue until CONNACK
  sampleSensors();
}

function brokerUp(): void {
  log("MQTT connected");
  publish("status", "online", true);
  (client as Client).subscribe(prefix + "/cmd/+", { qos: 1 });
  if (WISP_DISCOVERY && config.homeAssistant) announce(client as Client, config, prefix);
}

function brokerDown(): void {
  log("MQTT offline; readings wait in the queue");
}

function brokerError(e: Error): void {
  log("MQTT: " + e.message);
}

/** Publishes under the prefix at QoS 1 (readings at the configured QoS); failures are logged, not lost in silence. */
function publish(topic: string, payload: string, retain?: boolean, qos?: number, done?: () => void): void {
  (client as Client).publish(prefix + "/" + topic, payload, { qos: qos == null ? 1 : qos, retain: retain }, done || published);
}

function published(err: Error | null): void {
  if (err) log("publish: " + err.message);
}

function schedule(): void {
  if (sampleTimer) clearInterval(sampleTimer);
  sampleTimer = setInterval(sampleSensors, config.interval * 1000);
}

/** A reading to <prefix>/<name> at the configured QoS; a sensor's error, or "ok" once it works again, retained on <prefix>/status/<name>. */
function sensorReport(name: string, reading: object | null, status?: string): void {
  if (reading) return publish(name, JSON.stringify(reading), false, config.qos);
  if (status != "ok") log(name + ": " + status);
  publish("status/" + name, status as string, true);
}

/** Commands arrive on <prefix>/cmd/<name>; the answer goes to <prefix>/reply/<name> as JSON. */
function command(topic: string, payload: string): void {
  if (WISP_DISCOVERY && discoveryMessage(topic, payload)) return;
  const name = topic.substr(prefix.length + 5),
    reply = "reply/" + name;
  let n;
  if (name == "interval") {
    if (payload != "") {
      n = +payload;
      if (!(n >= 1 && n <= 86400 && n % 1 == 0)) return publish(reply, JSON.stringify({ error: "interval must be a whole number of seconds from 1 to 86400, got " + JSON.stringify(payload) }));
      config.interval = n;
      // kept in wisp.json, so the new interval outlives a restart
      storage.writeJSON(CONFIG_FILE, config);
      schedule();
    }
    publish(reply, JSON.stringify({ interval: config.interval }));
  } else if (name == "ping") publish(reply, JSON.stringify({ pong: true, uptime: Math.round((Date.now() - bootTime) / 1000) }));
  else if (name == "sample") {
    sampleSensors();
    publish(reply, JSON.stringify({ ok: true }));
  } else if (name == "restart") publish(reply, JSON.stringify({ ok: true }), false, 1, restart);
  else publish(reply, JSON.stringify({ error: "unknown command " + JSON.stringify(name) + "; commands: interval, ping, sample, restart" }));
}

function restart(): void {
  log("restarting");
  (client as Client).end(false, reboot);
}

function reboot(): void {
  load();
}
