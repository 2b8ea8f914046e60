// How many simulated nodes one process runs in real time: every node publishes a reading every
// second (config interval 1); a step keeps up when (nearly) every expected reading reaches the
// broker and no node's readings arrive much later than one second apart. Also memory per node.
//
//   npm run bench:sim                       # steps 100, 250, 500, 1000, 1500, 2000
//   node --import tsx test/bench/sim.ts --steps 100,1000 --seconds 10 --firmware tiny
//
// Each step runs in its own child process (clean memory figures; a step that wedges its event
// loop is killed by a watchdog and reported as "hung"). Stepping stops at the first step that
// falls behind. --firmware real (default) runs dist/firmware.js; tiny runs the simulator tests'
// small publisher (test/unit/sim-tiny-firmware.ts), which measures the simulator alone.

import { spawn } from "node:child_process";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import v8 from "node:v8";
import vm from "node:vm";
import { parseArgs } from "node:util";

interface StepResult {
  nodes: number;
  status: "ok" | "behind" | "hung" | "failed";
  bootMs?: number;
  connected?: number;
  expected?: number;
  received?: number;
  lateNodes?: number;
  worstGapMs?: number;
  loopDelayP99Ms?: number;
  cpuPercent?: number;
  rssPerNodeKB?: number;
  heapPerNodeKB?: number;
  note?: string;
}

const { values: args } = parseArgs({
  options: {
    steps: { type: "string", default: "100,250,500,1000,1500,2000" },
    seconds: { type: "string", default: "10" },
    firmware: { type: "string", default: "real" },
    child: { type: "string" },
  },
});

const GAP_LIMIT_MS = 1500; // a reading more than half an interval late
const DELIVERY_NEEDED = 0.98;

if (args.child) await child(Number(args.child));
else await parent();

async function child(nodes: number): Promise<void> {
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as () => void;
  const { createSimulation, DEFAULT_NODE_CONFIG } = await import("../../host-sim/sim.ts");
  const tiny = args.firmware === "tiny";
  const { TINY_CONFIG, tinyFirmware } = await import("../unit/sim-tiny-firmware.ts");
  const report = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
  const seconds = Number(args.seconds);

  const sim = await createSimulation({
    nodes,
    clock: "real",
    port: 0,
    powerOn: false,
    firmware: tiny ? tinyFirmware() : undefined,
    config: tiny ? TINY_CONFIG : { ...DEFAULT_NODE_CONFIG, interval: 1 },
  });
  gc();
  const before = process.memoryUsage();
  const started = performance.now();
  await sim.powerOn();
  const bootMs = performance.now() - started;
  report({ phase: "booted", bootMs });

  // Wait for the fleet to join (bounded), then measure a steady window.
  const joinUntil = performance.now() + 30_000 + nodes * 10;
  while (performance.now() < joinUntil && sim.nodes.some((n) => n.mqtt !== "connected")) {
    await new Promise((r) => setTimeout(r, 250));
    report({ phase: "joining", connected: sim.nodes.filter((n) => n.mqtt === "connected").length });
  }
  const connected = sim.nodes.filter((n) => n.mqtt === "connected").length;
  const lastAt = new Map<unknown, number>();
  const received = new Map<unknown, number>();
  let worstGapMs = 0;
  const lateNodes = new Set<unknown>();
  sim.on("message", (m) => {
    if (!m.node || m.topic.includes("/status")) return;
    const now = performance.now();
    const prev = lastAt.get(m.node);
    if (prev !== undefined) {
      const gap = now - prev;
      worstGapMs = Math.max(worstGapMs, gap);
      if (gap > GAP_LIMIT_MS) lateNodes.add(m.node);
    }
    lastAt.set(m.node, now);
    received.set(m.node, (received.get(m.node) ?? 0) + 1);
  });
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const cpu0 = process.cpuUsage();
  const windowStart = performance.now();
  for (let s = 0; s < seconds; s++) {
    await new Promise((r) => setTimeout(r, 1000));
    report({ phase: "measuring", second: s + 1 });
  }
  const elapsed = (performance.now() - windowStart) / 1000;
  const cpu = process.cpuUsage(cpu0);
  delay.disable();
  // Nodes silent for the whole window are late too.
  for (const n of sim.nodes) if (!received.has(n)) lateNodes.add(n);
  gc();
  const after = process.memoryUsage();
  const total = [...received.values()].reduce((a, b) => a + b, 0);
  report({
    phase: "done",
    bootMs: Math.round(bootMs),
    connected,
    expected: Math.floor(elapsed) * nodes,
    received: total,
    lateNodes: lateNodes.size,
    worstGapMs: Math.round(worstGapMs),
    loopDelayP99Ms: Math.round(delay.percentile(99) / 1e6),
    cpuPercent: Math.round(((cpu.user + cpu.system) / 1e4 / elapsed) * 10) / 10,
    rssPerNodeKB: Math.round((after.rss - before.rss) / nodes / 1024),
    heapPerNodeKB: Math.round((after.heapUsed - before.heapUsed) / nodes / 1024),
  });
  await sim.stop();
  process.exit(0);
}

function runStep(nodes: number): Promise<StepResult> {
  return new Promise((resolve) => {
    const script = fileURLToPath(import.meta.url);
    const proc = spawn(process.execPath, ["--import", "tsx", script, "--child", String(nodes), "--seconds", String(args.seconds), "--firmware", String(args.firmware)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let result: StepResult | undefined;
    let buffered = "";
    let stderr = "";
    // A child that reports nothing for this long has a blocked event loop.
    const silenceMs = 15_000 + nodes * 15;
    let watchdog = setTimeout(kill, silenceMs);
    function kill() {
      result ??= { nodes, status: "hung", note: `no progress for ${Math.round(silenceMs / 1000)} s (event loop blocked)` };
      proc.kill("SIGKILL");
    }
    proc.stdout.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      let i;
      while ((i = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, i);
        buffered = buffered.slice(i + 1);
        clearTimeout(watchdog);
        watchdog = setTimeout(kill, silenceMs);
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line);
        } catch {
          continue;
        }
        if (msg.phase === "done") {
          const r = msg as unknown as StepResult;
          const keepsUp = r.connected === nodes && r.received! >= DELIVERY_NEEDED * r.expected! && r.lateNodes === 0;
          result = { ...r, nodes, status: keepsUp ? "ok" : "behind" };
        }
      }
    });
    proc.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-2000);
    });
    proc.on("exit", () => {
      clearTimeout(watchdog);
      resolve(result ?? { nodes, status: "failed", note: stderr.trim().split("\n").slice(-3).join(" | ") });
    });
  });
}

async function parent(): Promise<void> {
  const steps = String(args.steps)
    .split(",")
    .map(Number)
    .filter((n) => n > 0);
  console.log(`wisp sim bench: nodes publishing every 1 s, ${args.seconds} s window per step, firmware ${args.firmware}, ${process.version}`);
  const results: StepResult[] = [];
  for (const n of steps) {
    process.stdout.write(`  ${n} nodes… `);
    const r = await runStep(n);
    results.push(r);
    console.log(r.status);
    if (r.status !== "ok") break;
  }
  const head = ["nodes", "status", "boot s", "joined", "delivered", "late nodes", "worst gap ms", "loop p99 ms", "cpu %", "RSS/node KB", "heap/node KB"];
  const rows = results.map((r) => [
    r.nodes,
    r.status,
    r.bootMs === undefined ? "-" : (r.bootMs / 1000).toFixed(1),
    r.connected ?? "-",
    r.expected ? `${((100 * r.received!) / r.expected).toFixed(1)}%` : "-",
    r.lateNodes ?? "-",
    r.worstGapMs ?? "-",
    r.loopDelayP99Ms ?? "-",
    r.cpuPercent ?? "-",
    r.rssPerNodeKB ?? "-",
    r.heapPerNodeKB ?? "-",
  ].map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join("  ");
  console.log(`\n${line(head)}\n${rows.map(line).join("\n")}`);
  for (const r of results) if (r.note) console.log(`${r.nodes}: ${r.note}`);
  const best = results.filter((r) => r.status === "ok").pop();
  console.log(`\nkeeps up with ${best ? best.nodes : "none of the"} nodes (goal: 1000)`);
}
