// The sensor-node application: join Wi-Fi, set the clock (SNTP), connect to the broker with a will,
// sample the sensors every `interval` seconds (or once per wake, with `sleep`) and publish the
// readings with the time they were taken, through the outbox in flash; answer commands. It reaches
// the hardware only through Espruino's API (Wifi, Storage, dgram, I2C1, timers), which is where the
// simulator stands in.
//
// Like the MQTT client, it is written as top-level functions over module state: Espruino copies a
// function literal's source into RAM each time the code around it runs.

import { encodePublish, utf8Decode, utf8Encode } from "../mqtt/codec";
import { Client } from "../mqtt/client";
import { storage } from "../platform/storage";
import { clockSet, openOutbox, outboxAdd, outboxHanded, outboxNext, outboxPending, outboxSent, outboxState, sessionStore } from "../store/outbox";
import { CONFIG_FILE, NodeConfig, configError, expand } from "./config";
import { announce, discoveryMessage } from "./discovery";
import { initSensors, sampleSensors } from "./sensors";
import { idle, setPeriod, startCycle } from "./sleep";
import { clockKnown, initTime, syncTime, timeUnsettled, uptime } from "./time";

/** The config has a homeAssistant section: discovery is built in (tools/build.ts). */
declare const WISP_DISCOVERY: boolean;
/** The config keeps readings in the outbox (the default): it and the client's session store are built in. */
declare const WISP_STORE: boolean;
/** The config has a sleep section: the deep-sleep duty cycle is built in. */
declare const WISP_SLEEP: boolean;

/** Readings handed to the client at once, and command replies waiting for it, at most. */
const WINDOW = 4;
const REPLIES = 8;

let config: NodeConfig;
let client: Client | undefined;
let prefix = "";
let sampleTimer = 0;
let wifiDelay = 1000;
let joining = false;
let lastConfigError = "";
/** readings with the client, command replies with the client, replies dropped (since boot; since said) */
let inflight = 0;
let replies = 0;
let repliesDropped = 0;
let repliesNew = 0;
/** readings neither the outbox nor the client could keep */
let lost = 0;
/**
 * Readings Storage refused, oldest first, as [name, qos, json, uptime when taken]: they wait in RAM
 * (at most mqtt.queueSize, the oldest dropped past it) and go after the outbox's, which are older.
 */
let held: any[][] = [];
/** readings were dropped and it was said (once until status/outbox has the count) */
let lostSaid = false;
/**
 * What <prefix>/status/outbox holds may not be the state now: nothing said yet in this boot (the
 * broker may keep one from before), readings said to wait, or counts or the error changed since.
 */
let stale = true;
/** QoS 0 readings handed to the client, oldest first (their callbacks come in this order) */
const sent0: number[] = [];
/** sensor statuses not published yet (taken before the broker connected), by sensor name */
let statuses: { [name: string]: string } = {};
/** readings of an outbox this node, without one, does not send: said on status/outbox */
let stranded = "";
/** Storage refuses writes: what is said on status/outbox ("" when it takes them); uptime of the last refusal */
let storageProblem = "";
let refusedAt = 0;
/** duty cycle: uptime when the command subscription was granted (0: not yet) */
let subscribedAt = 0;

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
  initTime(c.time ? c.time.server : "pool.ntp.org", timeSet, log);
  if (WISP_STORE && c.outbox) {
    openOutbox(c.outbox.maxBytes, storageFailed, readingPacket);
    const o = outboxState();
    if (o[0]) log("outbox: " + o[0] + " readings to send");
  } else if (storage.list(/^wisp\.o\d+$/, { sf: true }).length) {
    // flashed with "outbox": false by other means than wisp flash (which asks): never a silent loss
    stranded = 'an earlier outbox waits in Storage (wisp.o<n>); with "outbox": false it is not sent: wisp flash --drop-outbox erases it';
    log(stranded);
  }
  initSensors(c.sensors, sensorReport);
  if (c.i2c) I2C1.setup({ sda: c.i2c.sda, scl: c.i2c.scl, bitrate: c.i2c.bitrate });
  log("node " + getSerial() + ", prefix " + prefix);
  require("Wifi").on("disconnected", wifiLost);
  if (WISP_SLEEP && c.sleep) {
    // a wake: one sample, then everything goes out, then deep sleep
    startCycle(c.sleep.seconds, c.sleep.awake || 30, working, currentClient, prefix + "/status");
    sampleSensors();
  }
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
  syncTime();
  if (!client) connectBroker();
}

function wifiLost(): void {
  // a failed join also reports "disconnected" (ESP32): its callback schedules the retry, with backoff
  if (joining) return;
  log("Wi-Fi lost");
  setTimeout(joinWifi, wifiDelay);
}

/** A reading's PUBLISH as the client sends it (the outbox keeps it by reference to the reading). */
function readingPacket(topic: string, payload: string, qos: number, id: number): string {
  return encodePublish(prefix + "/" + topic, payload, qos, 0, 0, id);
}

/**
 * The clock was set (`epoch`: ms since 1970 at boot): readings taken before it get their time; or
 * (0) the first tries went unanswered: readings stop waiting for it.
 */
function timeSet(epoch: number): void {
  if (epoch && WISP_STORE && config.outbox) clockSet(epoch);
  pump();
}

function connectBroker(): void {
  const m = config.mqtt,
    c = (client = new Client(m.url, {
      clientId: expand(m.clientId || "wisp-{id}", getSerial()),
      username: m.username,
      password: m.password,
      ca: m.ca ? atob(m.ca) : undefined,
      keepalive: m.keepalive || 30,
      // a persistent session keeps QoS 1 commands sent while the node is away; with the outbox, what
      // the client has in flight is kept in flash too, so it outlives a reboot
      clean: false,
      store: WISP_STORE && config.outbox ? sessionStore : undefined,
      queueSize: m.queueSize || 32,
      will: { topic: prefix + "/status", payload: "offline", qos: 1, retain: true },
    }));
  c.on("connect", brokerUp);
  c.on("message", command);
  c.on("error", brokerError);
  c.on("offline", brokerDown);
  sendStatuses();
  if (!(WISP_SLEEP && config.sleep)) {
    schedule();
    // the first reading now, not an interval later: it waits in the outbox until CONNACK
    sampleSensors();
  }
}

function brokerUp(): void {
  log("MQTT connected");
  publish("status", "online", true);
  (client as Client).subscribe(prefix + "/cmd/+", { qos: 1 }, subscribed);
  if (WISP_DISCOVERY && config.homeAssistant) announce(client as Client, config, prefix);
  // readings that do not go at once, a Storage problem or a stranded outbox are said now; else once they have gone (pump)
  if (stranded || storageProblem || (WISP_STORE && config.outbox && outboxState()[0] + held.length > WINDOW)) reportOutbox();
  pump();
}

function subscribed(): void {
  subscribedAt = uptime() || 1;
  if (WISP_SLEEP) idle();
}

function brokerDown(): void {
  log("MQTT offline; readings wait in the " + (WISP_STORE && config.outbox ? "outbox" : "queue"));
}

function brokerError(e: Error): void {
  const m = e.message,
    i = m.lastIndexOf(": message of ");
  log("MQTT: " + m);
  // a command over maxPacket: the client read past it (and acknowledged it); its answer says so
  if (i > 0 && m.indexOf(prefix + "/cmd/") == 0) reply(m.substring(prefix.length + 5, i), '{"error":"' + m.substr(i + 2) + ' bytes: not taken"}');
}

/** Publishes under the prefix at QoS 1 (or `qos`); failures are logged, not lost in silence. */
function publish(topic: string, payload: string, retain?: boolean, qos?: number, done?: (err: Error | null) => void): void {
  (client as Client).publish(prefix + "/" + topic, payload, { qos: qos == null ? 1 : qos, retain: retain }, done || published);
}

function published(err: Error | null): void {
  if (err) log("publish: " + err.message);
}

function schedule(): void {
  if (sampleTimer) clearInterval(sampleTimer);
  sampleTimer = setInterval(sampleSensors, config.interval * 1000);
}

/**
 * A JSON object's text with the time it was taken added (`at`: uptime in ms, now when omitted):
 * `"ts":<ms since 1970>`, or, while the clock is not set, `"uptime":<s>`.
 */
function stamped(json: string, at?: number): string {
  const now = uptime();
  if (at == null) at = now;
  return json.slice(0, -1) + (json.length > 2 ? "," : "") + (clockKnown() ? '"ts":' + Math.round(Date.now() - now + at) : '"uptime":' + Math.round(at) / 1000) + "}";
}

/**
 * A reading to <prefix>/<name> at the configured QoS, with its time; a sensor's error, or ok once it
 * works again, retained on <prefix>/status/<name>.
 */
function sensorReport(name: string, reading: object | null, status?: string): void {
  if (reading) keep(name, JSON.stringify(reading));
  else {
    if (status != "ok") log(name + ": " + status);
    statuses[name] = stamped(status == "ok" ? '{"ok":true}' : JSON.stringify({ error: status }));
    sendStatuses();
  }
  if (WISP_SLEEP) idle();
}

/** <prefix>/status/<sensor>, retained, once there is a client to take them. */
function sendStatuses(): void {
  if (!client) return;
  for (const name in statuses) publish("status/" + name, statuses[name], true);
  statuses = {};
}

/**
 * Into the outbox, then out when the broker can take it; QoS 0 goes straight out while the node is
 * online with nothing waiting and its clock settled (else it waits in the outbox for its ts). When
 * Storage refuses it, it waits in RAM (held); without the outbox the client's queue holds it.
 */
function keep(name: string, json: string): void {
  const qos = config.qos == null ? 1 : config.qos,
    now = uptime();
  let h;
  if (WISP_STORE && config.outbox) {
    if (!(!qos && client && client.connected && !outboxPending() && !held.length && !timeUnsettled())) {
      // those that waited in RAM go into flash first: they are older
      while ((h = held[0]) && outboxAdd(h[0], h[1], h[2], h[3], now - h[3])) held.shift();
      if (!h && outboxAdd(name, qos, json, now)) {
        // the error goes from status/outbox once Storage has taken readings for a minute
        if (storageProblem && now - refusedAt > 60000) {
          log("outbox: Storage takes readings again");
          storageProblem = "";
          stale = true;
        }
      } else {
        if (held.length >= (config.mqtt.queueSize || 32)) {
          held.shift();
          readingQueued(Error("the oldest: RAM holds mqtt.queueSize"));
        }
        held.push([name, qos, json, now]);
      }
      return pump();
    }
  }
  if (client) publish(name, stamped(json), false, qos, readingQueued);
  else readingQueued(Error("no broker yet"));
}

/** A reading that went straight to the client, or waited in RAM: one dropped is counted on status/outbox. */
function readingQueued(err: Error | null): void {
  if (!err) return;
  if (!lostSaid) log("readings dropped (" + err.message + "): counted on status/outbox");
  lostSaid = true;
  lost++;
  stale = true;
}

/**
 * Hands the oldest readings to the client, a few at a time, once the clock is settled: the outbox's,
 * then those waiting in RAM (taken later). Once all have gone, status/outbox says so if it is stale.
 */
function pump(): void {
  let r;
  if (WISP_STORE && config.outbox)
    while (client && client.connected && inflight < WINDOW && !timeUnsettled() && ((r = outboxNext()) || held.length)) {
      inflight++;
      if (r) {
        outboxHanded(r[0]);
        if (!r[1]) sent0.push(r[0]);
        client.publish(prefix + "/" + r[2], r[3], { qos: r[1], ref: r[0] }, r[1] ? readingSent : reading0Sent);
      } else {
        r = held.shift() as any[];
        client.publish(prefix + "/" + r[0], stamped(r[2], r[3]), { qos: r[1] }, readingSent);
      }
    }
  // (reportOutbox says nothing offline)
  if (stale && !inflight && !held.length && !timeUnsettled() && !(WISP_STORE && config.outbox && outboxPending())) reportOutbox();
  if (WISP_SLEEP) idle();
}

/** A QoS 1/2 reading is through (the outbox heard it from the session store) or failed (client ended). */
function readingSent(err: Error | null): void {
  inflight--;
  if (err) log("reading: " + err.message + "; it stays in the outbox");
  pump();
}

function reading0Sent(err: Error | null): void {
  const seq = sent0.shift() as number;
  inflight--;
  if (err) log("reading: " + err.message + "; it stays in the outbox");
  else outboxSent(seq);
  pump();
}

/**
 * The outbox's news: Storage refused a write ("Storage: <Espruino's message>"), said once on the
 * console and on <prefix>/status/outbox until it takes readings again; or it dropped readings.
 */
function storageFailed(text: string): void {
  if (text.indexOf("Storage") == 0) {
    refusedAt = uptime();
    if (storageProblem) return;
    // Espruino compacts before it refuses a file: what is free at the end is all there is
    storageProblem = "Storage " + (storage.getFree() < 4096 ? "is full" : "refused a write") + " (" + text.substr(9) + ")";
    log("outbox: " + storageProblem + ": readings wait in RAM (mqtt.queueSize " + (config.mqtt.queueSize || 32) + ") until it takes them");
  } else log(text);
  stale = true;
  reportOutbox();
}

/**
 * <prefix>/status/outbox, retained, when online: readings waiting, bytes of the outbox, readings
 * dropped, replies dropped, lines of flash skipped at boot as not whole records (when any), the Storage
 * problem or a stranded outbox. Said when something changed, not per reading.
 */
function reportOutbox(): void {
  if (!client || !client.connected) return;
  const o = WISP_STORE && config.outbox ? outboxState() : [0, 0, 0, 0],
    j: any = { readings: o[0] + held.length, bytes: o[1], dropped: o[2] + lost, repliesDropped: repliesDropped };
  if (o[3]) j.skipped = o[3];
  if (storageProblem || stranded) j.error = storageProblem || stranded;
  // readings said to wait: said again once they have gone
  stale = j.readings > 0;
  lostSaid = false;
  publish("status/outbox", stamped(JSON.stringify(j)), true);
}

/**
 * `b` (bytes) as a JSON string, its UTF-8 as it is, or undefined when it is not text: bytes that
 * are not UTF-8, U+0000 or another control character. JSON.stringify would not do: Espruino writes
 * every byte from 0x7F up as \u00XX, which makes é (C3 A9) into two characters.
 */
function quote(b: string): string | undefined {
  try {
    utf8Decode(b);
  } catch (e) {
    return;
  }
  if (/[\x00-\x1f\x7f]/.test(b)) return;
  return '"' + b.split("\\").join("\\\\").split('"').join('\\"') + '"';
}

/**
 * {"error": text + value + rest}: `value` (bytes from the command) in quotes when it is UTF-8 text
 * of at most 64 bytes, else described by its length.
 */
function error(text: string, value: string, rest?: string): string {
  const shown = value.length <= 64 && quote(value) ? '"' + value + '"' : "a " + value.length + "-byte value that is not text";
  return '{"error":' + quote(text + shown + (rest || "")) + "}";
}

/**
 * Answers on <prefix>/reply/<name>, at most REPLIES waiting at once: past that a reply is dropped
 * and counted, and the count goes to <prefix>/status/outbox when the replies have gone.
 */
function reply(name: string, json: string, done?: (err: Error | null) => void): void {
  if (replies >= REPLIES) {
    repliesDropped++;
    if (!repliesNew++) log("commands come faster than their replies go: replies dropped (counted on status/outbox)");
    return;
  }
  replies++;
  publish("reply/" + name, json, false, 1, done || replied);
}

function replied(err: Error | null): void {
  replies--;
  if (err) {
    repliesDropped++;
    repliesNew++;
    log("reply: " + err.message);
  }
  if (!replies && repliesNew) {
    repliesNew = 0;
    stale = true;
    reportOutbox();
  }
  if (WISP_SLEEP) idle();
}

/** Commands arrive on <prefix>/cmd/<name>; the answer goes to <prefix>/reply/<name> as JSON. */
function command(topic: string, payload: string): void {
  if (WISP_DISCOVERY && discoveryMessage(topic, payload)) return;
  const name = topic.substr(prefix.length + 5);
  let n;
  if (name == "interval") {
    if (payload != "") {
      // plain decimal digits only: +payload would take " 7 ", "0x3" and "1e1"
      n = /^[0-9]+$/.test(payload) ? +payload : 0;
      // on a duty cycle a sample is taken each wake: the interval is the period, sleep.seconds (10 to
      // 2147: ESP32.deepSleep takes a 32-bit count of µs); WISP_SLEEP at each use, for esbuild to fold
      if (!(n >= (WISP_SLEEP && config.sleep ? 10 : 1) && n <= (WISP_SLEEP && config.sleep ? 2147 : 86400)))
        return reply(name, error("interval" + (WISP_SLEEP && config.sleep ? " (sleep.seconds: the node sleeps)" : "") + " must be a whole number of seconds from " + (WISP_SLEEP && config.sleep ? 10 : 1) + " to " + (WISP_SLEEP && config.sleep ? 2147 : 86400) + ", in decimal digits; got ", payload));
      if (WISP_SLEEP && config.sleep) {
        config.sleep.seconds = n;
        setPeriod(n);
      } else {
        config.interval = n;
        schedule();
      }
      // kept in wisp.json, so the new interval outlives a restart
      storage.writeJSON(CONFIG_FILE, config);
    }
    reply(name, JSON.stringify({ interval: WISP_SLEEP && config.sleep ? config.sleep.seconds : config.interval }));
  } else if (name == "ping") reply(name, JSON.stringify({ pong: true, uptime: Math.round(uptime() / 1000) }));
  else if (name == "sample") {
    sampleSensors();
    reply(name, JSON.stringify({ ok: true }));
  } else if (name == "restart") reply(name, JSON.stringify({ ok: true }), restart);
  // the name's UTF-8 (on the ESP32 the topic already holds its bytes; on a host utf8Encode makes them)
  else reply(name, error("unknown command ", utf8Encode(name), "; commands: interval, ping, sample, restart"));
}

function restart(err: Error | null): void {
  replied(err);
  log("restarting");
  (client as Client).end(false, reboot);
}

function reboot(): void {
  load();
}

/** The wake's work is not done: the command subscription not granted yet, readings (in flash or RAM) or replies on their way. */
function working(): boolean {
  return !subscribedAt || !!inflight || !!replies || !client || !client.connected || (WISP_STORE && config.outbox ? outboxPending() + held.length > 0 || timeUnsettled() : false);
}

function currentClient(): Client | undefined {
  return client;
}
