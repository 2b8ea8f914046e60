// What `wisp sim` shows: on a terminal, a live table redrawn in place (log-update) with each
// node's Wi-Fi/MQTT state, uptime and latest readings with a sparkline, plus recent MQTT traffic
// and device log lines; piped, plain lines, one per event.

import { createLogUpdate } from "log-update";
import pc from "picocolors";
import { QUANTITIES } from "../tools/drivers.ts";
import type { SimNode } from "./node.ts";
import { type OutboxSummary, readOutbox } from "./outbox.ts";
import type { FaultEvent, Simulation, TrafficEntry } from "./sim.ts";

const BARS = "▁▂▃▄▅▆▇█";

/** ▁▂▃▄▅▆▇█ over the last `width` values, scaled to their own range. */
export function sparkline(values: readonly number[], width = 16): string {
  const v = values.slice(-width);
  if (v.length === 0) return "";
  const lo = Math.min(...v);
  const hi = Math.max(...v);
  return v.map((x) => BARS[hi === lo ? 3 : Math.round(((x - lo) / (hi - lo)) * (BARS.length - 1))]).join("");
}

/** 1h02m, 3m05s, 42s */
export function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** hh:mm:ss of simulation time. */
export function clockText(ms: number): string {
  const s = Math.floor(ms / 1000);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${pad(Math.floor(s / 3600))}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
}

export interface ViewOptions {
  /** The mosquitto_sub command line that watches the nodes. */
  watch: string;
  /** Node rows shown before summarising (default: what fits the terminal, at most 20). */
  rows?: number;
  /** Recent traffic lines shown (default 8). */
  trafficLines?: number;
  /** Redraw period, ms (default 250). */
  refreshMs?: number;
  stream?: NodeJS.WriteStream;
}

type Color = (s: string) => string;
const stateColor: Record<string, Color> = {
  connected: pc.green,
  on: pc.green,
  connecting: pc.yellow,
  sleeping: pc.yellow,
  off: pc.red,
  offline: pc.red,
};
const colored = (state: string) => (stateColor[state] ?? ((s: string) => s))(state);

/** The node's sensors in config order, then any other topic it published readings on. */
export function sensorNames(node: SimNode): string[] {
  const names = (node.config()?.sensors ?? []).map((s) => s.name);
  for (const name of Object.keys(node.readings)) if (!names.includes(name)) names.push(name);
  return names;
}

/**
 * One sensor's latest values, each with a sparkline of its recent history (`spark` wide), and its
 * failure from <prefix>/status/<sensor> while it fails.
 */
export function sensorText(node: SimNode, name: string, spark = 8): string {
  const status = node.sensorStatus[name];
  const failing = status !== undefined && status !== "ok" ? pc.red(status) : "";
  const values = node.readings[name]?.values;
  if (!values) return failing || pc.dim("–");
  const units = QUANTITIES as Record<string, { unit: string; decimals: number } | undefined>;
  const parts = Object.entries(values).map(([k, v]) => {
    const q = units[k];
    const text = q ? `${v.toFixed(q.decimals)} ${q.unit}` : `${k}=${v}`;
    return `${text} ${pc.cyan(sparkline(node.history[name]?.[k] ?? [], spark))}`;
  });
  return [...parts, failing].filter(Boolean).join("  ");
}

const outboxCache = new WeakMap<SimNode, { written: number; summary: OutboxSummary }>();

/** The node's outbox, read from its flash again only when something was written there. */
export function outboxOf(node: SimNode): OutboxSummary {
  const written = node.flashStorage.bytesWritten;
  const cached = outboxCache.get(node);
  if (cached && cached.written === written) return cached.summary;
  const summary = readOutbox(node.flashStorage);
  outboxCache.set(node, { written, summary });
  return summary;
}

/**
 * The node's outbox (readings waiting, their bytes, how old the oldest is, how many were dropped) and,
 * for a node on a duty cycle, how long its last wake lasted; "" when there is nothing to say.
 */
export function outboxText(node: SimNode, now: number): string {
  const o = outboxOf(node);
  const parts: string[] = [];
  if (o.segments) {
    const waiting = o.readings ? `${o.readings} reading${o.readings === 1 ? "" : "s"}` : "empty";
    parts.push(`outbox ${o.readings ? pc.yellow(waiting) : waiting}`, `${(o.bytes / 1024).toFixed(1)} KB`);
    if (o.readings && o.oldest !== undefined) parts.push(`oldest ${duration(Math.max(0, now - o.oldest))}`);
    if (o.dropped) parts.push(pc.red(`${o.dropped} dropped`));
  }
  if (node.lastAwakeMs !== undefined) parts.push(`awake ${(node.lastAwakeMs / 1000).toFixed(1)} s/cycle (${node.sleeps} cycles)`);
  return parts.join(" · ");
}

function trafficLine(t: TrafficEntry, width: number): string {
  const line = `${clockText(t.at)} ${t.topic} ${t.payload}`;
  return line.length > width ? `${line.slice(0, width - 1)}…` : line;
}

/** The live screen as text (the terminal view draws this; tests read it). */
export function renderScreen(sim: Simulation, options: ViewOptions, logs: readonly string[] = [], faults: readonly FaultEvent[] = []): string {
  const width = Math.max(60, options.stream?.columns ?? 100);
  const rowsFit = Math.max(3, (options.stream?.rows ?? 40) - 22);
  const rows = options.rows ?? Math.min(20, rowsFit);
  const out: string[] = [];
  const nodes = sim.nodes;
  const scenario = sim.scenario.name ? ` · scenario ${sim.scenario.name}` : "";
  out.push(`${pc.bold("wisp sim")} · ${nodes.length} node${nodes.length === 1 ? "" : "s"} · broker ${sim.brokerUrl}${sim.external || sim.broker ? "" : pc.red(" (down)")}${scenario} · ${clockText(sim.now())}`);
  out.push(`Wi-Fi ${sim.ap.ssid} ${sim.ap.up ? pc.green("up") : pc.red("down")} · ${sim.messages} messages · watch: ${pc.cyan(options.watch)}`);
  const consoles = nodes.filter((n) => n.consolePath).slice(0, 4);
  if (consoles.length) out.push(`consoles: ${consoles.map((n) => `node ${n.index} ${pc.cyan(n.consolePath!)}`).join(" · ")}${nodes.length > consoles.length ? " …" : ""}`);
  out.push("");
  out.push(pc.dim(`${"node".padEnd(14)} ${"power".padEnd(8)} ${"wifi".padEnd(10)} ${"mqtt".padEnd(10)} ${"uptime".padStart(7)}  latest readings`));
  const shown = nodes.slice(0, rows);
  // Every sensor on a line of its own when they fit; else each node's first sensor with readings.
  const names = shown.map(sensorNames);
  const expanded = names.reduce((n, list) => n + Math.max(1, list.length), 0) <= rows;
  const indent = " ".repeat(14 + 1 + 8 + 1 + 10 + 1 + 10 + 1 + 7 + 2);
  shown.forEach((node, i) => {
    const list = names[i]!;
    const pad = (state: string, n: number) => colored(state) + " ".repeat(Math.max(0, n - state.length));
    const flags = [node.led ? pc.yellow("●") : pc.dim("○"), node.sensorPlugged ? "" : pc.red(" sensor unplugged")].join("");
    const head = `${node.serial.padEnd(14)} ${pad(node.power, 8)} ${pad(node.wifi, 10)} ${pad(node.mqtt, 10)} ${duration(node.uptime).padStart(7)}  `;
    const nameWidth = Math.max(0, ...list.map((n) => n.length));
    const line = (name: string) => `${pc.bold(name.padEnd(nameWidth))}  ${sensorText(node, name)}`;
    if (!expanded) {
      const first = list.find((n) => node.readings[n]) ?? list[0];
      const more = list.length > 1 ? pc.dim(` +${list.length - 1} sensor${list.length > 2 ? "s" : ""}`) : "";
      out.push(`${head}${first ? line(first) : pc.dim("–")}${more} ${flags}`);
      return;
    }
    out.push(`${head}${list[0] ? line(list[0]) : pc.dim("–")} ${flags}`);
    for (const name of list.slice(1)) out.push(`${indent}${line(name)}`);
    const box = outboxText(node, sim.clock.Date.now());
    if (box) out.push(`${indent}${pc.dim(box)}`);
  });
  if (nodes.length > rows) {
    const count = (pick: (n: SimNode) => string) => {
      const c: Record<string, number> = {};
      for (const n of nodes) c[pick(n)] = (c[pick(n)] ?? 0) + 1;
      return Object.entries(c)
        .map(([k, v]) => `${v} ${colored(k)}`)
        .join(", ");
    };
    out.push(pc.dim(`… and ${nodes.length - rows} more`));
    out.push(`power: ${count((n) => n.power)} · wifi: ${count((n) => n.wifi)} · mqtt: ${count((n) => n.mqtt)}`);
  }
  const recentFaults = faults.slice(-3);
  if (recentFaults.length) {
    out.push("");
    for (const f of recentFaults) out.push(pc.magenta(`${clockText(f.at)} fault ${f.fault}${f.sensor ? ` ${f.sensor}` : ""} ${f.phase}${f.node === undefined ? "" : ` (node ${f.node})`}`));
  }
  out.push("");
  out.push(pc.bold("recent MQTT traffic"));
  for (const t of sim.traffic.slice(-(options.trafficLines ?? 8))) out.push(trafficLine(t, width));
  if (logs.length) {
    out.push("");
    out.push(pc.bold("device log"));
    for (const l of logs.slice(-5)) out.push(pc.dim(l.length > width ? `${l.slice(0, width - 1)}…` : l));
  }
  out.push("");
  out.push(pc.dim("Ctrl-C stops"));
  return out.join("\n");
}

export interface View {
  stop(): void;
}

/** Redraws the screen in place every `refreshMs` on a terminal. */
export function startLiveView(sim: Simulation, options: ViewOptions): View {
  const stream = options.stream ?? process.stdout;
  const update = createLogUpdate(stream);
  const logs: string[] = [];
  const faults: FaultEvent[] = [];
  const onLog = (line: string, node: SimNode) => {
    logs.push(`${clockText(sim.now())} ${node.serial} ${line}`);
    if (logs.length > 50) logs.splice(0, logs.length - 50);
  };
  const onFault = (f: FaultEvent) => faults.push(f);
  sim.on("log", onLog);
  sim.on("fault", onFault);
  const draw = () => update(renderScreen(sim, { ...options, stream }, logs, faults));
  draw();
  const timer = setInterval(draw, options.refreshMs ?? 250);
  return {
    stop() {
      clearInterval(timer);
      draw();
      update.done();
      sim.off("log", onLog);
      sim.off("fault", onFault);
    },
  };
}

/** Piped output: one plain line per event (node state change, device log line, message, fault). */
export function startPlainView(sim: Simulation, write: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): View {
  const last = new Map<SimNode, string>();
  const t = () => clockText(sim.now());
  const onNode = (node: SimNode) => {
    const state = `power=${node.power} wifi=${node.wifi} mqtt=${node.mqtt}`;
    if (last.get(node) === state) return;
    last.set(node, state);
    write(`${t()} node ${node.serial} ${state}`);
  };
  const onLog = (line: string, node: SimNode) => write(`${t()} log ${node.serial} ${line}`);
  const onMessage = (m: TrafficEntry) => write(`${t()} mqtt ${m.topic} ${m.payload}${m.retain ? " (retained)" : ""}`);
  const onFault = (f: FaultEvent) => write(`${t()} fault ${f.fault}${f.sensor ? ` ${f.sensor}` : ""} ${f.phase}${f.node === undefined ? "" : ` node ${f.node}`}`);
  const onWarning = (text: string) => write(`${t()} warning ${text}`);
  sim.on("node", onNode);
  sim.on("log", onLog);
  sim.on("message", onMessage);
  sim.on("fault", onFault);
  sim.on("warning", onWarning);
  // MQTT state is also read from sockets, which emit nothing: look again now and then.
  const timer = setInterval(() => sim.nodes.forEach(onNode), 500);
  return {
    stop() {
      clearInterval(timer);
      sim.nodes.forEach(onNode);
      sim.off("node", onNode);
      sim.off("log", onLog);
      sim.off("message", onMessage);
      sim.off("fault", onFault);
      sim.off("warning", onWarning);
    },
  };
}
