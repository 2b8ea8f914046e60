// What `wisp sim` shows: on a terminal, a live table redrawn in place (log-update) with each
// node's Wi-Fi/MQTT state, uptime and latest readings with a sparkline, plus recent MQTT traffic
// and device log lines, laid out to fit the terminal (layout.ts: the least important rows go
// first); piped, plain lines, one per event.

import { createLogUpdate } from "log-update";
import pc from "picocolors";
import { fit, fitParts, padEnd, padStart, type Part, type Row, type Section, type Size } from "./layout.ts";
import type { SimNode } from "./node.ts";
import type { FaultEvent, Simulation, TrafficEntry } from "./sim.ts";

const BARS = "▁▂▃▄▅▆▇█";

/**
 * ▁▂▃▄▅▆▇█ over the last `width` values, scaled to their range but never to less than `minSpan`:
 * sensor noise of a few hundredths then draws as a nearly flat line, not as full swings.
 */
export function sparkline(values: readonly number[], width = 16, minSpan = 0): string {
  const v = values.slice(-width);
  if (v.length === 0) return "";
  let lo = Math.min(...v);
  let hi = Math.max(...v);
  if (hi - lo < minSpan) {
    const mid = (hi + lo) / 2;
    lo = mid - minSpan / 2;
    hi = mid + minSpan / 2;
  }
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

/** "1 message", "2 messages". */
export function plural(n: number, word: string): string {
  return `${n.toLocaleString("en-US")} ${word}${n === 1 ? "" : "s"}`;
}

export interface ViewOptions {
  /** The mosquitto_sub command line that watches the nodes. */
  watch: string;
  /** Lines about the setup (what replaces the config's broker, a port that was taken), shown while there is room. */
  notes?: string[];
  /** At most this many node rows (default: what fits). */
  rows?: number;
  /** Redraw period, ms (default 250). */
  refreshMs?: number;
  stream?: NodeJS.WriteStream;
  /** The terminal size to lay out for (default: the stream's, else 100x40). */
  size?: Size;
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

/** How readings of a quantity are shown: unit, decimals, and the narrowest span its sparkline draws. */
export const QUANTITY_FORMAT: Record<string, { unit: string; decimals: number; minSpan: number }> = {
  temperature: { unit: "°C", decimals: 2, minSpan: 0.5 },
  humidity: { unit: "%RH", decimals: 1, minSpan: 2 },
  pressure: { unit: "hPa", decimals: 1, minSpan: 1 },
};

const SPARK_WIDTH = 16;

/** A reading is stale once the node has missed half an interval more than one, plus 2 s of slack. */
export function readingAge(node: SimNode, name: string): { ms: number; stale: boolean } | undefined {
  const r = node.readings[name];
  if (!r) return undefined;
  const ms = Math.max(0, node.clock.Date.now() - r.at);
  const interval = (Number(node.config()?.interval) || 10) * 1000;
  return { ms, stale: ms > interval * 1.5 + 2000 };
}

/**
 * One sensor's latest reading as parts that a row keeps whole or drops, to fit `width`: the first
 * quantity with its sparkline and the sparkline's min–max, then the other quantities; "stale"
 * first when the reading is older than the node's interval allows (an outage, a node that is off).
 */
export function readingParts(node: SimNode, name: string, width = 80): Part[] {
  const reading = node.readings[name];
  if (!reading) return [{ text: pc.dim(node.power === "on" ? "no reading yet" : "–"), priority: 10 }];
  const age = readingAge(node, name)!;
  const dim = age.stale ? pc.dim : (s: string) => s;
  const parts: Part[] = [];
  const stale = `stale ${duration(age.ms)}`;
  if (age.stale) parts.push({ text: pc.yellow(stale), priority: 10 });
  const entries = Object.entries(reading.values);
  // the sparkline follows temperature, or whatever the sensor's first quantity is
  const first = entries.find(([k]) => k === "temperature") ?? entries[0];
  entries.forEach(([k, v]) => {
    const f = QUANTITY_FORMAT[k];
    const text = f ? `${v.toFixed(f.decimals)} ${f.unit}` : `${k}=${v}`;
    if (k !== first?.[0]) return parts.push({ text: dim(text), priority: 6 - parts.length * 0.1 });
    parts.push({ text: dim(text), priority: 9 });
    const history = node.history[name]?.[k] ?? [];
    if (history.length) {
      const num = (x: number) => (f ? x.toFixed(f.decimals) : String(x));
      const all = history.slice(-SPARK_WIDTH);
      const rangeWidth = `${num(Math.min(...all))}–${num(Math.max(...all))}`.length;
      // as many bars as the row has room for beside the value, up to SPARK_WIDTH
      const room = width - text.length - 2 - 1 - rangeWidth - (age.stale ? stale.length + 2 : 0);
      const shown = history.slice(-Math.max(4, Math.min(SPARK_WIDTH, room)));
      const range = `${num(Math.min(...shown))}–${num(Math.max(...shown))}`;
      parts.push({ text: `${pc.cyan(sparkline(shown, shown.length, f?.minSpan ?? 0))} ${pc.dim(range)}`, priority: 7 });
    }
    return undefined;
  });
  return parts;
}

interface Column {
  title: string;
  width: number;
  /** Columns are dropped lowest first when the row is too narrow. */
  priority: number;
  align?: "right";
  cell: (node: SimNode) => string;
}

const NODE_COLUMNS: Column[] = [
  { title: "node", width: 13, priority: 100, cell: (n) => n.serial },
  { title: "power", width: 8, priority: 60, cell: (n) => colored(n.power) },
  { title: "wifi", width: 10, priority: 80, cell: (n) => colored(n.wifi) },
  { title: "mqtt", width: 10, priority: 90, cell: (n) => colored(n.mqtt) },
  { title: "uptime", width: 6, priority: 40, align: "right", cell: (n) => duration(n.uptime) },
];
/** The reading gets at least this much of a row (a value, a short sparkline, its range) before state columns go. */
const MIN_READING = 28;

/** The node table's columns that fit `width`, and the width left for the reading. */
function nodeColumns(width: number): { columns: Column[]; readingWidth: number } {
  let columns = NODE_COLUMNS;
  const used = (cols: Column[]) => cols.reduce((n, c) => n + c.width + 1, 0) + 1;
  while (width - used(columns) < MIN_READING && columns.length > 1) {
    const lowest = columns.reduce((a, b) => (b.priority < a.priority ? b : a));
    columns = columns.filter((c) => c !== lowest);
  }
  return { columns, readingWidth: Math.max(8, width - used(columns)) };
}

function nodeRow(node: SimNode, columns: Column[], readingWidth: number): string {
  const cells = columns.map((c) => (c.align === "right" ? padStart(c.cell(node), c.width) : padEnd(c.cell(node), c.width)));
  const sensor = Object.keys(node.readings)[0] ?? node.config()?.sensors?.[0]?.name ?? "";
  const flags: Part[] = [];
  if (!node.sensorPlugged) flags.push({ text: pc.red("sensor unplugged"), priority: 11 });
  // the board's LED (LED1), when something lights it: Wisp's firmware leaves it off
  if (node.led) flags.push({ text: pc.yellow("LED ●"), priority: 3 });
  return `${cells.join(" ")}  ${fitParts([...flags.filter((f) => f.priority > 10), ...readingParts(node, sensor, readingWidth), ...flags.filter((f) => f.priority <= 10)], readingWidth)}`;
}

/** How much a node needs looking at: a node in trouble is kept on screen before a healthy one. */
function trouble(node: SimNode): boolean {
  return node.power !== "on" || node.wifi !== "connected" || node.mqtt !== "connected" || !node.sensorPlugged;
}

function faultText(f: FaultEvent): string {
  return `${f.fault} ${f.phase === "start" ? "started" : "ended"}${f.node === undefined ? "" : ` on node ${f.node}`}`;
}

/** The live screen as text, laid out for the terminal (the terminal view draws this; tests read it). */
export function renderScreen(sim: Simulation, options: ViewOptions, logs: readonly string[] = [], faults: readonly FaultEvent[] = []): string {
  const size: Size = options.size ?? { columns: options.stream?.columns ?? 100, rows: options.stream?.rows ?? 40 };
  const width = Math.max(10, size.columns - 1);
  const nodes = sim.nodes;
  const scenario = sim.scenario.name ? ` · scenario ${sim.scenario.name}` : "";
  const speed = sim.speed !== 1 ? ` · ${pc.bold(`×${sim.speed}`)} node time` : "";
  const brokerState = sim.external || sim.broker ? "" : pc.red(" (down)");
  const head: Row[] = [
    {
      text: fitParts(
        [
          { text: `${pc.bold("wisp sim")} · ${plural(nodes.length, "node")}${scenario} · ${clockText(sim.now())}${speed}`, priority: 2 },
          { text: pc.dim("Ctrl-C stops"), priority: 1 },
        ],
        width,
        " · ",
      ),
      priority: 100,
    },
    { text: `broker ${sim.brokerUrl}${brokerState} · Wi-Fi ${sim.ap.ssid} ${sim.ap.up ? pc.green("up") : pc.red("down")} · ${plural(sim.messages, "message")}`, priority: 96 },
    { text: `watch: ${pc.cyan(options.watch)}`, priority: 86 },
    ...(options.notes ?? []).map((n, i) => ({ text: pc.yellow(n), priority: 45 - i * 0.1 })),
  ];
  const consoles = nodes.filter((n) => n.consolePath).slice(0, 4);
  if (consoles.length) {
    head.push({ text: `consoles: ${consoles.map((n) => `node ${n.index} ${pc.cyan(n.consolePath!)}`).join(" · ")}${nodes.length > consoles.length ? " …" : ""}`, priority: 50 });
  }

  const { columns, readingWidth } = nodeColumns(width);
  const tableTitle = pc.dim(
    `${columns.map((c) => (c.align === "right" ? c.title.padStart(c.width) : c.title.padEnd(c.width))).join(" ")}  ` +
      fitParts(
        [
          { text: "latest reading", priority: 2 },
          { text: "· sparkline of the last readings, their min–max", priority: 1 },
        ],
        readingWidth,
        " ",
      ),
  );
  const limit = options.rows ?? Infinity;
  const nodeRows: Row[] = nodes.map((node, i) => ({
    text: nodeRow(node, columns, readingWidth),
    // the first ten nodes and any in trouble come before the traffic; the rest after its newest lines
    priority: i >= limit ? -Infinity : trouble(node) ? 75 : i < 10 ? 70 - i * 0.1 : 40 - i * 0.001,
  }));
  const count = (pick: (n: SimNode) => string) => {
    const c: Record<string, number> = {};
    for (const n of nodes) c[pick(n)] = (c[pick(n)] ?? 0) + 1;
    return Object.entries(c)
      .map(([k, v]) => `${v} ${colored(k)}`)
      .join(", ");
  };
  const summary = (hidden: number) => pc.dim(`… and ${hidden} more · `) + `power: ${count((n) => n.power)} · wifi: ${count((n) => n.wifi)} · mqtt: ${count((n) => n.mqtt)}`;

  const faultRows: Row[] = faults.slice(-3).map((f, i, all) => ({ text: pc.magenta(`${clockText(f.at)} fault ${faultText(f)}`), priority: i === all.length - 1 ? 68 : 35 }));
  const next = sim.upcomingFaults()[0];
  if (next) {
    const inMs = next.at * 1000 - sim.now();
    faultRows.push({ text: pc.dim(`next fault: ${next.fault}${next.node === undefined ? "" : ` on node ${next.node}`} at ${clockText(next.at * 1000)} (in ${duration(inMs)} of node time), for ${next.for} s`), priority: 66 });
  }

  const traffic = sim.traffic.slice(-20);
  const trafficRows: Row[] = traffic.map((t, i) => {
    const age = traffic.length - 1 - i;
    return { text: `${clockText(t.at)} ${t.topic} ${t.payload}`, priority: age < 3 ? 60 - age * 0.1 : 25 - age * 0.01 };
  });
  const recentLogs = logs.slice(-10);
  const logRows: Row[] = recentLogs.map((l, i) => {
    const age = recentLogs.length - 1 - i;
    return { text: pc.dim(l), priority: age < 2 ? 55 - age * 0.1 : 20 - age * 0.01 };
  });

  const sections: Section[] = [
    { rows: head },
    { gap: true, title: tableTitle, rows: nodeRows, overflow: summary },
    { gap: true, rows: faultRows },
    { gap: true, title: pc.bold("recent MQTT traffic"), rows: trafficRows.length ? trafficRows : [{ text: pc.dim("none yet"), priority: 24 }] },
    { gap: true, title: pc.bold("device log"), rows: logRows },
  ];
  return fit(sections, size).join("\n");
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
  // After a resize the terminal has rewrapped the old frame, so it cannot be erased line by line:
  // clear the screen and draw the new layout from the top.
  const onResize = () => {
    stream.write("\x1b[H\x1b[2J");
    update.done();
    draw();
  };
  stream.on("resize", onResize);
  draw();
  const timer = setInterval(draw, options.refreshMs ?? 250);
  return {
    stop() {
      clearInterval(timer);
      stream.off("resize", onResize);
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
  const onFault = (f: FaultEvent) => write(`${t()} fault ${f.fault} ${f.phase}${f.node === undefined ? "" : ` node ${f.node}`}`);
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
