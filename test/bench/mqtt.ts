// `npm run bench`: throughput and latency of the Wisp client (the built dist/mqtt.js in the
// simulator's Espruino emulation) next to MQTT.js, both against the same private Mosquitto.
// A benchmark, not a test: it prints a table and fails only when something breaks.
//
//   node --import tsx test/bench/mqtt.ts          (WISP_MQTT_JS=path to bench another build)
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import mqtt, { type MqttClient } from "mqtt";
import { loadMqtt } from "../../host-sim/runtime.ts";
import { startMosquitto, type Mosquitto } from "../helpers/mosquitto.ts";
import { PEER, WISP } from "../helpers/users.ts";
import type { WispClient } from "../helpers/wisp.ts";

const MESSAGES = { 0: 5_000, 1: 2_000, 2: 2_000 } as const;
const LATENCY_SAMPLES = 200;
/** Wisp's default `inflight`; MQTT.js gets the same window so the comparison is like for like. */
const WINDOW = 8;
const PAYLOAD = "21.5;48.2;1013.2"; // a small sensor reading
const PHASE_TIMEOUT_MS = 15_000;
/** Each measurement runs this many times per client, alternating Wisp and MQTT.js; the median is shown. */
const ROUNDS = 3;

interface BenchClient {
  publish(topic: string, payload: string, qos: 0 | 1 | 2, done: (err?: Error | null) => void): void;
  subscribe(topic: string, qos: 0 | 1 | 2): Promise<void>;
  onMessage(listener: (topic: string) => void): void;
  close(): Promise<void>;
}

async function wispClient(url: string, clientId: string): Promise<BenchClient> {
  const { runtime, mqtt: wispMqtt } = loadMqtt(process.env.WISP_MQTT_JS ? { path: process.env.WISP_MQTT_JS } : {});
  const client: WispClient = wispMqtt.connect(url, { clientId, ...WISP, reconnectPeriod: 0, inflight: WINDOW, queueSize: 16 });
  const listeners: ((topic: string) => void)[] = [];
  client.on("message", (topic) => listeners.forEach((listener) => listener(topic)));
  await within(new Promise<void>((resolve, reject) => {
    client.on("connect", () => resolve());
    client.on("error", (err) => reject(err));
  }), "Wisp connect");
  return {
    publish: (topic, payload, qos, done) => client.publish(topic, payload, { qos }, done),
    subscribe: (topic, qos) =>
      new Promise((resolve, reject) => client.subscribe(topic, { qos }, (err) => (err ? reject(err) : resolve()))),
    onMessage: (listener) => listeners.push(listener),
    close: async () => {
      await new Promise<void>((resolve) => client.end(false, () => resolve()));
      runtime.dispose();
    },
  };
}

async function mqttJsClient(url: string, clientId: string, account = WISP): Promise<BenchClient> {
  const client: MqttClient = await mqtt.connectAsync(url, { clientId, ...account, reconnectPeriod: 0 });
  // MQTT.js waits for "drain" once per publish while the socket is full: in a burst that is
  // thousands of listeners, by design, not a leak.
  client.stream.setMaxListeners(0);
  return {
    publish: (topic, payload, qos, done) => client.publish(topic, payload, { qos }, (err) => done(err)),
    subscribe: async (topic, qos) => {
      await client.subscribeAsync(topic, { qos });
    },
    onMessage: (listener) => client.on("message", (topic) => listener(topic)),
    close: () => client.endAsync(),
  };
}

function within<T>(promise: Promise<T>, what: string, ms = PHASE_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms))),
  ]).finally(() => clearTimeout(timer));
}

/** QoS 0: publish everything at once; the clock stops when a separate subscriber has it all. */
async function qos0Rate(publisher: BenchClient, subscriber: BenchClient, topic: string): Promise<number> {
  const total = MESSAGES[0];
  let received = 0;
  const all = new Promise<void>((resolve) => subscriber.onMessage((t) => t === topic && ++received === total && resolve()));
  await subscriber.subscribe(topic, 0);
  const start = performance.now();
  for (let i = 0; i < total; i++) publisher.publish(topic, PAYLOAD, 0, noError);
  await within(all, `QoS 0: subscriber got ${received}/${total}`).catch((err) => {
    throw new Error(`${(err as Error).message} (got ${received}/${total})`);
  });
  return total / ((performance.now() - start) / 1000);
}

/** QoS 1/2: keep WINDOW messages in flight; the clock stops at the last PUBACK/PUBCOMP. */
async function windowedRate(client: BenchClient, topic: string, qos: 1 | 2): Promise<number> {
  const total = MESSAGES[qos];
  let sent = 0;
  let acked = 0;
  const start = performance.now();
  await within(new Promise<void>((resolve, reject) => {
    const next = () => {
      sent++;
      client.publish(topic, PAYLOAD, qos, (err) => {
        if (err) return reject(err);
        if (++acked === total) resolve();
        else if (sent < total) next();
      });
    };
    for (let i = 0; i < WINDOW && sent < total; i++) next();
  }), `QoS ${qos}: ${acked}/${total} acknowledged`);
  return total / ((performance.now() - start) / 1000);
}

/** Round trips of a QoS 1 message to a topic the same client subscribes to, one at a time. */
async function roundTrips(client: BenchClient, topic: string): Promise<number[]> {
  await client.subscribe(topic, 1);
  let arrived: (() => void) | undefined;
  client.onMessage((t) => t === topic && arrived?.());
  const samples: number[] = [];
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const start = performance.now();
    await within(new Promise<void>((resolve) => {
      arrived = resolve;
      client.publish(topic, PAYLOAD, 1, noError);
    }), `round trip ${i}`);
    samples.push(performance.now() - start);
  }
  return samples;
}

function noError(err?: Error | null): void {
  if (err) throw err;
}

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

interface Results {
  rates: Record<0 | 1 | 2, number>;
  median: number;
  p95: number;
}

function medianOf(runs: Results[]): Results {
  const mid = (pick: (r: Results) => number) => percentile(runs.map(pick), 50);
  return {
    rates: { 0: mid((r) => r.rates[0]), 1: mid((r) => r.rates[1]), 2: mid((r) => r.rates[2]) },
    median: mid((r) => r.median),
    p95: mid((r) => r.p95),
  };
}

async function measure(name: string, make: (id: string) => Promise<BenchClient>, broker: Mosquitto): Promise<Results> {
  const tag = `${name.toLowerCase().replace(/\W/g, "")}-${process.pid}`;
  const rates = {} as Results["rates"];

  const publisher = await make(`bench-${tag}-pub`);
  const subscriber = await mqttJsClient(broker.url, `bench-${tag}-sub`, PEER);
  try {
    rates[0] = await qos0Rate(publisher, subscriber, `bench/${tag}/qos0`);
    for (const qos of [1, 2] as const) rates[qos] = await windowedRate(publisher, `bench/${tag}/qos${qos}`, qos);
  } finally {
    await Promise.all([publisher.close(), subscriber.close()]);
  }

  const echo = await make(`bench-${tag}-echo`);
  try {
    const samples = await roundTrips(echo, `bench/${tag}/latency`);
    return { rates, median: percentile(samples, 50), p95: percentile(samples, 95) };
  } finally {
    await echo.close();
  }
}

function table(wisp: Results, mqttJs: Results): string {
  const rows: [string, number, number, string][] = [
    [`QoS 0 publish, msg/s (${MESSAGES[0]}, until received)`, wisp.rates[0], mqttJs.rates[0], "%.0f"],
    [`QoS 1 publish, msg/s (${MESSAGES[1]}, window ${WINDOW})`, wisp.rates[1], mqttJs.rates[1], "%.0f"],
    [`QoS 2 publish, msg/s (${MESSAGES[2]}, window ${WINDOW})`, wisp.rates[2], mqttJs.rates[2], "%.0f"],
    [`QoS 1 round trip median, ms (${LATENCY_SAMPLES})`, wisp.median, mqttJs.median, "%.2f"],
    [`QoS 1 round trip p95, ms`, wisp.p95, mqttJs.p95, "%.2f"],
  ];
  const format = (value: number, spec: string) => (spec === "%.0f" ? Math.round(value).toLocaleString("en-US") : value.toFixed(2));
  const cells = [["metric", "Wisp", "MQTT.js", "ratio (Wisp/MQTT.js)"], ...rows.map(([metric, w, m, spec]) => [metric, format(w, spec), format(m, spec), (w / m).toFixed(2)])];
  const widths = cells[0].map((_, column) => Math.max(...cells.map((row) => row[column].length)));
  const line = (row: string[]) => `| ${row.map((cell, i) => (i ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join(" | ")} |`;
  return [line(cells[0]), `|${widths.map((w, i) => (i ? "-".repeat(w + 1) + ":" : "-".repeat(w + 2))).join("|")}|`, ...cells.slice(1).map(line)].join("\n");
}

function mqttJsVersion(): string {
  return (createRequire(import.meta.url)("mqtt/package.json") as { version: string }).version;
}

async function main(): Promise<void> {
  const started = performance.now();
  // Quiet log (every packet would be a log line) and room for the QoS 0 burst in the subscriber's queue.
  const broker = await startMosquitto({ logTypes: ["error", "warning"], extraConfig: "max_queued_messages 100000" });
  try {
    const wispRuns: Results[] = [];
    const mqttJsRuns: Results[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      wispRuns.push(await measure(`Wisp${round}`, (id) => wispClient(broker.url, id), broker));
      mqttJsRuns.push(await measure(`MQTT.js${round}`, (id) => mqttJsClient(broker.url, id), broker));
    }
    const wisp = medianOf(wispRuns);
    const mqttJs = medianOf(mqttJsRuns);
    console.log(`Wisp (${process.env.WISP_MQTT_JS ?? "dist/mqtt.js"}, Espruino emulation) and MQTT.js ${mqttJsVersion()} against Mosquitto on 127.0.0.1, payload ${PAYLOAD.length} B\n`);
    console.log(table(wisp, mqttJs));
    console.log(`\n(median of ${ROUNDS} rounds, ${((performance.now() - started) / 1000).toFixed(1)} s; a throughput ratio above 1 or a latency ratio below 1 favours Wisp)`);
  } catch (err) {
    console.error(`benchmark failed: ${(err as Error).message}`);
    const log = broker.log().trim();
    if (log) console.error(`--- Mosquitto log ---\n${log}`);
    process.exitCode = 1;
  } finally {
    await broker.stop();
  }
}

await main().catch((err: Error) => {
  // e.g. Mosquitto missing: say so in one line, not a stack trace.
  console.error(`benchmark failed: ${err.message}`);
  process.exitCode = 1;
});
