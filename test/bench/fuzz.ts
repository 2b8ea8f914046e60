// Fuzzes the BUILT client's decoding path through a scripted broker: every connection gets CONNACK,
// then a few inputs (valid server packets, mutated ones, random bytes), then the broker closes it and
// the client reconnects for the next. Reports what would hurt a board:
// - crashes: an exception escaping into the device (printed "Uncaught" on Espruino) or a runtime error;
// - hangs: a connection after which the client did not close, reconnect and connect again in time
//   (a synchronous loop in the device code stops the whole process: run it in a child with a deadline);
// - growth: the client object's size in JsVars (E.getSizeOf, as the simulator estimates it) and the
//   Node heap, from after the first connection to the end.
//
//   npm run bench:fuzz                                  # seed 1, 5,000 connections
//   node --import tsx test/bench/fuzz.ts --seed 7 --count 20000
//
// test/integration/client-fuzz.test.ts runs a fixed seed and a bounded count of it in a child process.

import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { encode } from "../../firmware/mqtt/codec-server.ts";
import { Rig } from "../helpers/fake-time-device.ts";

export interface FuzzReport {
  seed: number;
  connections: number;
  inputs: number;
  /** Inputs after which the client closed the connection with an "error" (it found them malformed). */
  refused: number;
  /** Messages the client delivered, and errors it reported, over the run. */
  messages: number;
  errors: number;
  crashes: string[];
  /** The connection number after which the client stopped responding, if it did. */
  hungAt?: number;
  jsVars: { first: number; last: number };
  heapMB: { first: number; last: number };
  ms: number;
}

/** mulberry32: the same inputs for the same seed, on every machine. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const MAX_PACKET = 512;

function inputs(rnd: () => number): string[] {
  const int = (n: number) => Math.floor(rnd() * n);
  const bytes = (n: number) => {
    let s = "";
    for (let i = 0; i < n; i++) s += String.fromCharCode(int(256));
    return s;
  };
  const topic = () => ["a", "a/b", "s/\u00e9t\u00e9", "x".repeat(1 + int(40)), "$SYS/x"][int(5)];
  const id = () => 1 + int(65535);
  const valid = (): string => {
    switch (int(9)) {
      case 0:
        return encode({ type: 3, topic: topic(), payload: bytes(int(80)), qos: 0, retain: rnd() < 0.2 });
      case 1:
        return encode({ type: 3, topic: topic(), payload: bytes(int(700)), qos: 1 + int(2), messageId: id(), dup: rnd() < 0.3 });
      case 2:
        return encode({ type: 4 + int(4), messageId: id() });
      case 3:
        return encode({ type: 9, messageId: id(), granted: Array.from({ length: 1 + int(4) }, () => [0, 1, 2, 128][int(4)]) });
      case 4:
        return encode({ type: 11, messageId: id() });
      case 5:
        return encode({ type: 13 });
      case 6:
        return encode({ type: 2, sessionPresent: false, returnCode: int(6) });
      case 7:
        return encode({ type: 3, topic: topic(), payload: bytes(MAX_PACKET + int(2_000)), qos: int(3), messageId: id() });
      default:
        return encode({ type: 6, messageId: id() });
    }
  };
  const mutate = (p: string): string => {
    const b = p.split("");
    switch (int(5)) {
      case 0: // flip bits in a byte
        b[int(b.length)] = String.fromCharCode(int(256));
        break;
      case 1: // cut it short
        return p.slice(0, int(p.length));
      case 2: // a different fixed header
        b[0] = String.fromCharCode(int(256));
        break;
      case 3: // a wrong Remaining Length
        if (b.length > 1) b[1] = String.fromCharCode(int(256));
        break;
      default: // junk after it
        return p + bytes(1 + int(20));
    }
    return b.join("");
  };
  const out: string[] = [];
  for (let n = 1 + int(4); n > 0; n--) {
    const kind = rnd();
    out.push(kind < 0.35 ? valid() : kind < 0.75 ? mutate(valid()) : bytes(1 + int(600)));
  }
  return out;
}

function heapMB(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return Math.round((process.memoryUsage().heapUsed / 1048576) * 10) / 10;
}

export async function fuzz(seed: number, count: number, log: (line: string) => void = () => {}): Promise<FuzzReport> {
  const started = Date.now();
  const rnd = random(seed);
  const rig = await Rig.start();
  const report: FuzzReport = { seed, connections: 0, inputs: 0, refused: 0, messages: 0, errors: 0, crashes: [], jsVars: { first: 0, last: 0 }, heapMB: { first: 0, last: 0 }, ms: 0 };
  // Counters and one waiter instead of the rig's Device, which keeps every event (its memory would
  // hide the client's).
  const seen = { connect: 0, close: 0, reconnect: 0, error: 0, message: 0 };
  let wake = () => {};
  const until = (name: keyof typeof seen, n: number, ms = 2_000): Promise<boolean> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      const check = () => {
        if (seen[name] < n) return;
        clearTimeout(timer);
        wake = () => {};
        resolve(true);
      };
      wake = check;
      check();
    });
  try {
    const client = rig.mqtt.connect(rig.broker.url, { clientId: "fuzz", keepalive: 0, reconnectPeriod: 1_000, maxPacket: MAX_PACKET });
    for (const name of Object.keys(seen) as (keyof typeof seen)[])
      client.on(name as "close", () => {
        seen[name]++;
        wake();
      });
    (rig.runtime.run("this") as Record<string, unknown>).fuzzClient = client;
    const size = () => rig.runtime.run("E.getSizeOf(fuzzClient)") as number;
    for (let n = 1; n <= count; n++) {
      if (!(await until("connect", n))) {
        report.hungAt = n;
        break;
      }
      if (n === 1) {
        report.jsVars.first = size();
        report.heapMB.first = heapMB();
      }
      report.connections = n;
      const batch = inputs(rnd);
      report.inputs += batch.length;
      const errorsBefore = seen.error;
      // the bytes, then FIN: the client reads them all, then sees the connection close
      rig.broker.conn.socket.end(Buffer.from(batch.join(""), "latin1"));
      if (!(await until("close", n))) {
        report.hungAt = n;
        break;
      }
      if (seen.error > errorsBefore) report.refused++;
      // the reconnect timer: fire timers in time order until the attempt starts
      while (seen.reconnect < n && rig.clock.countTimers() > 0) {
        rig.clock.next();
        await rig.runtime.settle();
      }
      // the scripted broker keeps every connection and packet for its transcript: not here
      rig.broker.connections.splice(0, rig.broker.connections.length - 1);
      rig.broker.packets.splice(0);
      if (n % 1_000 === 0) log(`${n} connections, client ${size()} JsVars, heap ${heapMB()} MB`);
    }
    report.messages = seen.message;
    report.errors = seen.error;
    // measured in the state of the first figure, connected: between connections the socket's "data"
    // listener is the one that waits for CONNACK, whose source the simulator counts as RAM (on a board
    // a function run from Storage keeps its code in flash)
    if (!report.hungAt && !(await until("connect", count + 1))) report.hungAt = count + 1;
    report.jsVars.last = size();
    report.heapMB.last = heapMB();
    report.crashes = [...rig.runtime.logs.filter((l) => /Uncaught/.test(l)), ...rig.runtime.errors.map(String)];
  } finally {
    await rig.dispose();
  }
  report.ms = Date.now() - started;
  return report;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, "/"))) {
  const { values } = parseArgs({ options: { seed: { type: "string", default: "1" }, count: { type: "string", default: "20000" }, json: { type: "boolean" } } });
  const seed = Number(values.seed);
  const count = Number(values.count);
  fuzz(seed, count, values.json ? undefined : (line) => console.log(line))
    .then((r) => {
      if (values.json) return console.log(`RESULT ${JSON.stringify(r)}`);
      console.log(`seed ${r.seed}: ${r.connections} connections, ${r.inputs} inputs in ${(r.ms / 1000).toFixed(1)} s`);
      console.log(`  closed with an error after ${r.refused} of them; ${r.messages} messages delivered, ${r.errors} errors reported`);
      console.log(`  crashes: ${r.crashes.length ? r.crashes.join("; ") : "none"}`);
      console.log(`  hang: ${r.hungAt ? `after connection ${r.hungAt}` : "none"}`);
      console.log(`  client JsVars ${r.jsVars.first} -> ${r.jsVars.last}; Node heap ${r.heapMB.first} -> ${r.heapMB.last} MB${(globalThis as { gc?: unknown }).gc ? "" : " (without --expose-gc)"}`);
      if (r.crashes.length || r.hungAt) process.exitCode = 1;
    })
    .catch((err) => {
      console.error(err);
      process.exitCode = 1;
    });
}

export const FUZZ_SCRIPT = fileURLToPath(import.meta.url);
