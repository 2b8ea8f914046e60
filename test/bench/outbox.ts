// npm run bench:outbox: what keeping readings in flash costs a node, beside the obvious way to do it
// (the queue as one JSON file, rewritten with Storage.writeJSON at every change) in the same run.
//
// 1. The outbox alone (firmware/store/outbox.ts, bundled as a module) in the simulator's Espruino
//    runtime and, when the Linux build of Espruino 2v29 is on this machine (~/.cache/espruino-ref,
//    see /work/shared/espruino/README.md), on the real interpreter (espruino32-flash: 14-byte JsVars,
//    code run from Storage kept in flash, as on an ESP32): readings it takes per second, readings it
//    hands out and completes per second (the client's session records included), flash bytes written
//    per reading, JsVars it holds, empty and with readings waiting.
// 2. The built node (dist/firmware.js) in the simulator: flash bytes written per reading over a whole
//    flow (stored, handed to the client, acknowledged), online and through an outage, per QoS.
// 3. The deep-sleep duty cycle in the simulator: awake time per cycle, and the average current it
//    implies for an ESP32 module (the README gives the sources of the currents).
//
//   npm run bench:outbox                 # 200 readings, every part
//   npm run bench:outbox -- --readings 1000   # the peer slows down with the square of it

import { parseArgs } from "node:util";
import FakeTimers from "@sinonjs/fake-timers";
import { createRuntime } from "../../host-sim/runtime.ts";
import { createSimulation, DEFAULT_NODE_CONFIG } from "../../host-sim/sim.ts";
import { FlashStorage, storagePlugin } from "../../host-sim/storage.ts";
import { build, bundle } from "../../tools/build.ts";
import { referenceBinary, runFromStorage } from "../helpers/espruino-ref.ts";

const { values: args } = parseArgs({ options: { readings: { type: "string", default: "200" } } });
const N = Number(args.readings);
/** What a BME280 reading looks like in the outbox, and the PUBLISH the client makes of it. */
const JSON_READING = '{"temperature":21.47,"humidity":46.2,"pressure":1013.07}';
const TOPIC = "wisp/240ac4c1-0eda/climate";

/**
 * The device-side benchmark: runs on the simulator's runtime and on Espruino alike. `PEER` is the
 * obvious way: the waiting readings as one array in RAM, written whole with writeJSON at each change.
 */
function deviceScript(n: number, peerN: number): string {
  return `
var S = require("Storage"), O = require("outbox"), J = ${JSON.stringify(JSON_READING)}, T = ${JSON.stringify(TOPIC)};
function mem() { return typeof process != "undefined" && process.memory ? process.memory().usage : 0; }
function ms() { return typeof hrnow != "undefined" ? hrnow() : getTime() * 1000; }
function packet(r, id) { return "\\x32" + String.fromCharCode(r[3].length + T.length + 4) + "\\0" + String.fromCharCode(T.length) + T + String.fromCharCode(id >> 8, id & 255) + r[3]; }
setTimeout(function () {
  var out = {}, i, t0, r, k = 1, m0 = mem();
  O.openOutbox(1048576, function (t) { print("problem " + t); });
  out.jsVarsEmpty = mem() - m0;
  t0 = ms();
  for (i = 0; i < ${n}; i++) O.outboxAdd("climate", 1, J, i * 10000);
  out.addMs = ms() - t0;
  out.jsVarsWaiting = mem() - m0;
  t0 = ms();
  while ((r = O.outboxNext())) { O.outboxHanded(r[0]); O.sessionStore.put("o" + k, packet(r, k), r[0]); O.sessionStore.remove("o" + k); k = k % 65535 + 1; }
  out.sendMs = ms() - t0;
  out.sent = k - 1;
  out.jsVarsAfter = mem() - m0;
  var q = [];
  m0 = mem();
  t0 = ms();
  for (i = 0; i < ${peerN}; i++) { q.push([i * 10000, J]); S.writeJSON("peer.json", q); }
  out.peerAddMs = ms() - t0;
  out.peerJsVarsWaiting = mem() - m0;
  t0 = ms();
  while (q.length) { q.shift(); if (q.length) S.writeJSON("peer.json", q); else S.erase("peer.json"); }
  out.peerSendMs = ms() - t0;
  print("RESULT " + JSON.stringify(out));
}, 100);
`;
}

interface DeviceResult {
  addMs: number;
  sendMs: number;
  sent: number;
  jsVarsEmpty: number;
  jsVarsWaiting: number;
  jsVarsAfter: number;
  peerAddMs: number;
  peerSendMs: number;
  peerJsVarsWaiting: number;
}

const rate = (count: number, ms: number) => (ms > 0 ? Math.round((count * 1000) / ms).toLocaleString("en-US") : "∞");
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

async function simulatorRun(module: string, peerN: number): Promise<{ result: DeviceResult; bytes: { add: number; send: number; peerAdd: number; peerSend: number } }> {
  const clock = FakeTimers.createClock(Date.UTC(2025, 5, 1));
  const flash = new FlashStorage();
  flash.write("outbox", Buffer.from(module, "latin1"));
  const rt = createRuntime({ clock, plugins: [storagePlugin(flash)] });
  // the flash bytes of each phase: count around the phases by running them one by one
  const marks: number[] = [];
  rt.defineGlobal("mark", () => marks.push(flash.bytesWritten));
  const script = deviceScript(N, peerN)
    .replace("out.addMs = ms() - t0;", "out.addMs = ms() - t0; mark();")
    .replace("O.openOutbox(1048576, function (t) { print(\"problem \" + t); });", "O.openOutbox(1048576, function (t) { print(\"problem \" + t); }); mark();")
    .replace("out.sendMs = ms() - t0;", "out.sendMs = ms() - t0; mark();")
    .replace("out.peerAddMs = ms() - t0;", "out.peerAddMs = ms() - t0; mark();")
    .replace('print("RESULT "', 'mark(); print("RESULT "');
  // real time for the rates (the device's clock is the fake one)
  rt.defineGlobal("hrnow", () => performance.now());
  rt.run(script, "bench.js");
  clock.tick(200);
  const line = rt.logs.find((l) => l.startsWith("RESULT "));
  rt.dispose();
  if (!line) throw new Error(`the benchmark did not finish in the simulator:\n${rt.logs.join("\n")}`);
  return {
    result: JSON.parse(line.slice(7)),
    bytes: { add: marks[1]! - marks[0]!, send: marks[2]! - marks[1]!, peerAdd: marks[3]! - marks[2]!, peerSend: marks[4]! - marks[3]! },
  };
}

async function espruinoRun(module: string, peerN: number): Promise<DeviceResult | string> {
  const binary = referenceBinary();
  if (!binary) return "not measured: no Linux build of Espruino in ~/.cache/espruino-ref (/work/shared/espruino/README.md)";
  const out = await runFromStorage(binary, { outbox: module, ".bootcde": deviceScript(N, peerN) }, { until: /RESULT \{.*\}/, timeoutMs: 600_000 });
  const m = /RESULT (\{.*\})/.exec(out);
  return m ? (JSON.parse(m[1]!) as DeviceResult) : `did not finish: ${out.split("\n").slice(-5).join(" / ")}`;
}

/** Flash bytes per reading of the whole node, over a flow that ends with every reading acknowledged. */
async function nodeBytes(qos: number, outage: boolean): Promise<{ readings: number; bytes: number }> {
  const sim = await createSimulation({ nodes: 1, clock: "fake", config: { ...DEFAULT_NODE_CONFIG, qos, outbox: { maxBytes: 262144 } } as never, trafficLength: 10_000 });
  const node = sim.nodes[0]!;
  await sim.advance(60_000);
  const before = node.flashStorage.bytesWritten;
  const seen = sim.traffic.filter((t) => t.topic.endsWith("/climate")).length;
  if (outage) sim.cutBroker(1_800_000);
  await sim.advance(1_800_000);
  await sim.advance(outage ? 120_000 : 0);
  const readings = sim.traffic.filter((t) => t.topic.endsWith("/climate")).length - seen;
  const bytes = node.flashStorage.bytesWritten - before;
  await sim.stop();
  return { readings, bytes };
}

async function dutyCycle(): Promise<{ cycles: number; awakeMs: number; period: number }> {
  const config = { board: "esp32-devkitc", wifi: { ssid: "x" }, mqtt: { url: "mqtt://127.0.0.1:1883" }, prefix: "wisp/{id}", interval: 10, sensors: [{ name: "climate", type: "bme280" }], sleep: { seconds: 300 } };
  const result = await build({ config: config as never, write: false, log: () => {} });
  const firmware = result.reports.find((r) => r.target)!.bundle!.code;
  const sim = await createSimulation({ nodes: 1, clock: "fake", firmware, config: { ...DEFAULT_NODE_CONFIG, outbox: { maxBytes: 262144 }, sleep: { seconds: 300, awake: 30 } } as never });
  const node = sim.nodes[0]!;
  const awake: number[] = [];
  for (let i = 0; i < 20; i++) {
    await sim.advance(300_000);
    if (node.lastAwakeMs !== undefined) awake.push(node.lastAwakeMs);
  }
  await sim.stop();
  return { cycles: node.sleeps, awakeMs: awake.reduce((a, b) => a + b, 0) / awake.length, period: 300 };
}

async function main(): Promise<void> {
  const module = (await bundle("test/bench/outbox-module.ts", { outfile: "dist/outbox-bench.js" })).code;
  const peerN = N;
  console.log(`npm run bench:outbox: ${N} readings through the outbox and through the peer (the queue as one JSON file in Storage, writeJSON at each change)\n`);

  const sim = await simulatorRun(module, peerN);
  const esp = await espruinoRun(module, peerN);
  const rows: string[][] = [["", "outbox (simulator)", "peer (simulator)", "outbox (Espruino 2v29)", "peer (Espruino 2v29)"]];
  const e = typeof esp === "string" ? undefined : esp;
  rows.push(["readings taken per second", rate(N, sim.result.addMs), rate(peerN, sim.result.peerAddMs), e ? rate(N, e.addMs) : "-", e ? rate(peerN, e.peerAddMs) : "-"]);
  rows.push(["readings sent and completed per second", rate(N, sim.result.sendMs), rate(peerN, sim.result.peerSendMs), e ? rate(N, e.sendMs) : "-", e ? rate(peerN, e.peerSendMs) : "-"]);
  rows.push(["flash bytes written per reading, taken", fmt(sim.bytes.add / N), fmt(sim.bytes.peerAdd / peerN), "same format", ""]);
  rows.push(["flash bytes written per reading, sent (QoS 1 session records)", fmt(sim.bytes.send / N), fmt(sim.bytes.peerSend / peerN), "same format", ""]);
  rows.push(["JsVars held, empty", "-", "-", e ? fmt(e.jsVarsEmpty) : "-", "0"]);
  rows.push([`JsVars held, ${N} readings waiting`, "-", "-", e ? fmt(e.jsVarsWaiting) : "-", e ? fmt(e.peerJsVarsWaiting) : "-"]);
  printTable(rows);
  if (typeof esp === "string") console.log(`Espruino: ${esp}`);
  else console.log("Espruino: espruino32-flash under qemu-i386 on this machine; compare rates within a column pair, not with a board");

  console.log("\nThe built node (dist/firmware.js) in the simulator, 30 minutes at one reading every 10 s:");
  const flows = [
    ["QoS 1, online", await nodeBytes(1, false)],
    ["QoS 1, broker away 30 min, then sent", await nodeBytes(1, true)],
    ["QoS 2, online", await nodeBytes(2, false)],
    ["QoS 0, online (kept only while offline)", await nodeBytes(0, false)],
    ["QoS 0, broker away 30 min, then sent", await nodeBytes(0, true)],
  ] as const;
  printTable([["flow", "readings", "flash bytes written", "per reading"], ...flows.map(([name, f]) => [name, String(f.readings), fmt(f.bytes), f.readings ? fmt(f.bytes / f.readings) : "-"])]);

  const cycle = await dutyCycle();
  // ESP32 module currents (README, "Battery life"): Wi-Fi on, mostly listening, about 110 mA on average
  // while awake (RX 95-100 mA, TX bursts 180-240 mA); deep sleep with the RTC timer 10 µA.
  const awake = cycle.awakeMs / 1000;
  const avgMa = (awake * 110 + (cycle.period - awake) * 0.01) / cycle.period;
  console.log(`\nDuty cycle (sleep.seconds ${cycle.period}) in the simulator, ${cycle.cycles} cycles:`);
  printTable([
    ["awake per cycle", `${awake.toFixed(2)} s (simulated Wi-Fi join 1.5 s, broker and time server on the LAN, no interpreter boot time)`],
    ["average current (ESP32 module)", `${avgMa.toFixed(3)} mA = (${awake.toFixed(2)} s × 110 mA + ${(cycle.period - awake).toFixed(1)} s × 0.010 mA) / ${cycle.period} s`],
    ["2,000 mAh cell", `about ${Math.round(2000 / avgMa / 24)} days`],
  ]);
}

function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  for (const [i, r] of rows.entries()) {
    console.log(r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  "));
    if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  }
}

await main();
