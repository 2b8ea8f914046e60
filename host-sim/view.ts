// What `wisp sim` shows: on a terminal, a live table redrawn in place (log-update) with each
// node's Wi-Fi/MQTT state, uptime and latest readings with a sparkline, plus recent MQTT traffic
// and device log lines, laid out to fit the terminal (layout.ts: the least important rows go
// first); piped, plain lines, one per event.

import { createLogUpdate } from "log-update";
import pc from "picocolors";
import { QUANTITIES } from "../tools/drivers.ts";
import { fit, fitParts, padEnd, padStart, type Part, type Row, type Section, type Size, visibleWidth } from "./layout.ts";
import type { SimNode } from "./node.ts";
import { type OutboxSummary, readOutbox } from "./outbox.ts";
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

/**
 * The narrowest span a quantity's sparkline draws, so that sensor noise (a few hundredths of a
 * degree) draws as a nearly flat line, not as full swings. Units as QUANTITIES (tools/drivers.ts).
 */
export const SPARK_MIN_SPAN: Record<string, number> = { temperature: 0.5, humidity: 2, pressure: 1, illuminance: 20, co2: 50, voltage: 0.05, level: 2 };

const SPARK_WIDTH = 16;
/** Fewer bars than this say nothing: the sparkline is left out. */
const SPARK_MIN = 4;

/** A reading is stale once the node has missed half an interval more than one, plus 2 s of slack. */
export function readingAge(node: SimNode, name: string): { ms: number; stale: boolean } | undefined {
  const r = node.readings[name];
  if (!r) return undefined;
  const ms = Math.max(0, node.clock.Date.now() - r.at);
  const interval = (Number(node.config()?.interval) || 10) * 1000;
  return { ms, stale: ms > interval * 1.5 + 2000 };
}

/** The node's sensors in config order, then any other topic it published readings on. */
export function sensorNames(node: SimNode): string[] {
  const names = (node.config()?.sensors ?? []).map((s) => s.name);
  for (const name of Object.keys(node.readings)) if (!names.includes(name)) names.push(name);
  return names;
}

/**
 * One sensor's latest reading as parts that a row keeps whole or drops, to fit `width`: its failure
 * (from <prefix>/status/<sensor>) first, "stale" when the reading is older than the node's interval
 * allows (an outage, a node that is off), then each quantity's value with a sparkline of its recent
 * values and their min–max: the first quantity's as wide as the row has room for, then the other
 * values, then their sparklines.
 */
export function readingParts(node: SimNode, name: string, width = 80, withStatus = true): Part[] {
  const parts: Part[] = [];
  const status = node.sensorStatus[name];
  if (withStatus && status !== undefined && status !== "ok") parts.push({ text: pc.red(status), priority: 11, shrink: true });
  const reading = node.readings[name];
  if (!reading) {
    if (!parts.length) parts.push({ text: pc.dim(node.power === "on" ? "no reading yet" : "–"), priority: 10 });
    return parts;
  }
  const age = readingAge(node, name)!;
  const dim = age.stale ? pc.dim : (s: string) => s;
  const stale = `stale ${duration(age.ms)}`;
  if (age.stale) parts.push({ text: pc.yellow(stale), priority: 10 });
  const units = QUANTITIES as Record<string, { unit: string; decimals: number } | undefined>;
  const quantities = Object.entries(reading.values).map(([k, v]) => {
    const q = units[k];
    const num = (x: number) => (q ? x.toFixed(q.decimals) : String(x));
    const history = node.history[name]?.[k] ?? [];
    const all = history.slice(-SPARK_WIDTH);
    const rangeWidth = all.length ? `${num(Math.min(...all))}–${num(Math.max(...all))}`.length : 0;
    return { k, num, history, rangeWidth, text: q ? `${num(v)} ${q.unit}` : `${k}=${v}` };
  });
  // the room beside the values goes to every quantity's sparkline alike (with their min–max when they
  // fit, else bars alone); with too little for that, to the first quantity's alone
  const sep = 2;
  const drawn = quantities.filter((q) => q.history.length);
  const room = width - quantities.reduce((n, q) => n + q.text.length + sep, -sep) - (age.stale ? stale.length + sep : 0);
  const share = (extra: number) => (drawn.length ? Math.floor((room - drawn.reduce((n, q) => n + sep + extra + (extra ? q.rangeWidth : 0), 0)) / drawn.length) : 0);
  const withRange = share(1);
  const alone = share(0);
  const even = withRange >= SPARK_MIN ? { bars: Math.min(SPARK_WIDTH, withRange), range: true } : alone >= SPARK_MIN ? { bars: Math.min(SPARK_WIDTH, alone), range: false } : undefined;
  // bars alone: what they leave (a short history draws fewer) gives min–max ranges, first quantity first
  const ranged = new Set<string>();
  if (even && !even.range) {
    let left = room - drawn.reduce((n, q) => n + sep + Math.min(even.bars, q.history.length), 0);
    for (const q of drawn) {
      if (left < 1 + q.rangeWidth) continue;
      ranged.add(q.k);
      left -= 1 + q.rangeWidth;
    }
  }
  quantities.forEach((q, i) => {
    // every value before any sparkline: the numbers are what the row is for
    parts.push({ text: dim(q.text), priority: 9 - i * 0.1 });
    if (!q.history.length) return;
    let bars = even?.bars ?? 0;
    let range = even ? even.range || ranged.has(q.k) : false;
    if (!even && i === 0) {
      // what is left beside all the values goes to the first quantity's sparkline
      const left = room - sep;
      range = left - 1 - q.rangeWidth >= SPARK_MIN;
      bars = Math.min(SPARK_WIDTH, range ? left - 1 - q.rangeWidth : left);
    }
    if (bars < SPARK_MIN) return;
    const shown = q.history.slice(-bars);
    const spark = pc.cyan(sparkline(shown, shown.length, SPARK_MIN_SPAN[q.k] ?? 0));
    const text = range ? `${spark} ${pc.dim(`${q.num(Math.min(...shown))}–${q.num(Math.max(...shown))}`)}` : spark;
    parts.push({ text, priority: 5 - i * 0.1 });
  });
  return parts;
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
 * The node's outbox (readings waiting, the flash its files take, acknowledged records included until
 * their segment is erased; how old the oldest is, how many were dropped) and,
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
function nodeColumns(width: number, nameWidth = 0): { columns: Column[]; readingWidth: number } {
  let columns = NODE_COLUMNS;
  const used = (cols: Column[]) => cols.reduce((n, c) => n + c.width + 1, 0) + 1;
  // the sensors' names (several sensors) come out of the reading's room too
  while (width - used(columns) - nameWidth < MIN_READING && columns.length > 1) {
    const lowest = columns.reduce((a, b) => (b.priority < a.priority ? b : a));
    columns = columns.filter((c) => c !== lowest);
  }
  return { columns, readingWidth: Math.max(8, width - used(columns)) };
}

/**
 * A node's rows: its state columns and its first sensor (with "+N sensors" when the others are not
 * shown), then, `expanded`, a row for each other sensor under the first.
 */
function nodeRows(node: SimNode, columns: Column[], readingWidth: number, expanded: boolean, now = 0): string[] {
  const cells = columns.map((c) => (c.align === "right" ? padStart(c.cell(node), c.width) : padEnd(c.cell(node), c.width)));
  const names = sensorNames(node);
  const nameWidth = names.length > 1 ? Math.max(...names.map((n) => n.length)) + 2 : 0;
  const labelled = (name: string) => (names.length > 1 ? pc.bold(name.padEnd(nameWidth - 2)) + "  " : "");
  // a sensor off its bus is flagged on its own row; one whose row is not shown, on the first, by name
  const unplugged = names.filter((n) => node.sensor(n)?.plugged === false);
  const flag = (name: string | undefined): Part[] => (name !== undefined && unplugged.includes(name) ? [{ text: pc.red("sensor unplugged"), priority: 11 }] : []);
  // the board's LED (LED1), when something lights it: Wisp's firmware leaves it off
  const led: Part[] = node.led ? [{ text: pc.yellow("LED ●"), priority: 3 }] : [];
  const first = expanded ? names[0] : (names.find((n) => node.readings[n]) ?? names[0]);
  const hidden = expanded ? [] : unplugged.filter((n) => n !== first);
  const flags = [...flag(first), ...(hidden.length ? [{ text: pc.red(`${hidden.join(", ")} unplugged`), priority: 11, shrink: true }] : [])];
  const more: Part[] = !expanded && names.length > 1 ? [{ text: pc.dim(`+${names.length - 1} sensor${names.length > 2 ? "s" : ""}`), priority: 4 }] : [];
  const width = readingWidth - nameWidth;
  // the outbox and the duty cycle: a row of their own under the sensors, or a part of the only row
  const box = outboxText(node, now);
  const boxPart: Part[] = !expanded && box ? [{ text: pc.dim(box), priority: 3.5, shrink: true }] : [];
  // the sparklines get what the flags, "+N sensors" and the LED leave (the outbox's part shrinks first)
  const beside = [...flags, ...more, ...led].reduce((n, p) => n + visibleWidth(p.text) + 2, 0);
  const firstError = expanded && first !== undefined ? errorLines(node, first, width - [...flags].reduce((n, p) => n + visibleWidth(p.text) + 2, 0), width) : [];
  const reading =
    first === undefined
      ? [{ text: pc.dim("–"), priority: 10 }]
      : firstError.length > 1
        ? [{ text: pc.red(firstError[0]!), priority: 11 }, ...readingParts(node, first, width - beside, false)]
        : readingParts(node, first, width - beside);
  const rows = [`${cells.join(" ")}  ${labelled(first ?? "")}${fitParts([...flags, ...reading, ...more, ...boxPart, ...led], width)}`];
  if (expanded) {
    const indent = " ".repeat(cells.reduce((n, c) => n + visibleWidth(c) + 1, 0) + 1);
    for (const name of names.slice(1)) rows.push(...sensorRows(node, name, width, `${indent}${labelled(name)}`, flag(name)));
    // the first sensor's error, when it did not fit its row, goes on under it
    if (first !== undefined) {
      const more = errorLines(node, first, width - [...flags].reduce((n, p) => n + visibleWidth(p.text) + 2, 0), width).slice(1);
      if (more.length) rows.splice(1, 0, ...more.map((l) => `${indent}${" ".repeat(nameWidth)}${pc.red(l)}`));
    }
    if (box) rows.push(`${indent}${fitParts([{ text: pc.dim(box), priority: 1, shrink: true }], readingWidth)}`);
  }
  return rows;
}

/**
 * A sensor's error in lines: the first of `first` columns (beside the flags), the next of `width`; at
 * most three (rows are scarce: the last is cut with …); [] when it has none.
 */
function errorLines(node: SimNode, name: string, first: number, width: number): string[] {
  const status = node.sensorStatus[name];
  if (status === undefined || status === "ok") return [];
  if (visibleWidth(status) <= first) return [status];
  const lines = wrapWords(status, Math.max(10, width), Math.max(10, first));
  if (lines.length > 3) lines.splice(2, lines.length - 2, `${lines.slice(2).join(" ").slice(0, Math.max(1, width - 1))}…`);
  return lines;
}

/** A sensor's rows in the expanded table: its reading, and an error too long for one row on the rows under it. */
function sensorRows(node: SimNode, name: string, width: number, lead: string, flags: Part[]): string[] {
  const room = width - flags.reduce((n, p) => n + visibleWidth(p.text) + 2, 0);
  const lines = errorLines(node, name, room, width);
  if (lines.length <= 1) return [`${lead}${fitParts([...flags, ...readingParts(node, name, width)], width)}`];
  const first = `${lead}${fitParts([...flags, { text: pc.red(lines[0]!), priority: 11 }, ...readingParts(node, name, width, false)], width)}`;
  const pad = " ".repeat(visibleWidth(lead));
  return [first, ...lines.slice(1).map((l) => `${pad}${pc.red(l)}`)];
}

function wrapWords(text: string, width: number, first = width): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > (lines.length ? width : first)) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/**
 * A shell command in lines of at most `width` that a shell reads as one (each but the last ends in
 * " \\"), broken only between words (a quoted word, such as -P "$(...)", stays whole).
 */
export function commandLines(command: string, width: number, lead = "", indent = "  "): string[] {
  const words = command.match(/(?:[^\s"']+|"(?:[^"\\]|\\.)*"|'[^']*')+/g) ?? [command];
  const lines: string[] = [];
  let line = lead;
  for (const word of words) {
    const head = line === lead || line === indent;
    if (!head && line.length + 1 + word.length + 2 > width) {
      lines.push(`${line} \\`);
      line = indent + word;
    } else line = head ? line + word : `${line} ${word}`;
  }
  lines.push(line);
  return lines;
}

/** How much a node needs looking at: a node in trouble is kept on screen before a healthy one. */
function trouble(node: SimNode): boolean {
  return node.power !== "on" || node.wifi !== "connected" || node.mqtt !== "connected" || !node.sensorPlugged;
}

function faultText(f: FaultEvent): string {
  return `${f.fault}${f.sensor ? ` ${f.sensor}` : ""} ${f.phase === "start" ? "started" : "ended"}${f.node === undefined ? "" : ` on node ${f.node}`}`;
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
    ...(size.columns < 80 || size.rows < 24
      ? [{ text: pc.yellow(`${size.columns}x${size.rows}: the view wants 80x24; --plain shows all`), priority: 99 }]
      : []),
    { text: `broker ${sim.brokerUrl}${brokerState} · Wi-Fi ${sim.ap.ssid} ${sim.ap.up ? pc.green("up") : pc.red("down")} · ${plural(sim.messages, "message")}`, priority: 96 },
    // the whole command, on as many lines as it takes: a cut one cannot be pasted
    ...commandLines(options.watch, width, "watch: ").map((l, k) => ({ text: l.replace(/^(watch: )?(.*)$/, (_m, a: string | undefined, b: string) => (a ?? "") + pc.cyan(b)), priority: 86 - k * 0.001 })),
    ...(options.notes ?? []).map((n, i) => ({ text: pc.yellow(n), priority: 45 - i * 0.1 })),
  ];
  const consoles = nodes.filter((n) => n.consolePath).slice(0, 4);
  if (consoles.length) {
    head.push({ text: `consoles: ${consoles.map((n) => `node ${n.index} ${pc.cyan(n.consolePath!)}`).join(" · ")}${nodes.length > consoles.length ? " …" : ""}`, priority: 50 });
  }

  const nameWidth = Math.max(0, ...nodes.map((n) => sensorNames(n)).filter((names) => names.length > 1).map((names) => Math.max(...names.map((x) => x.length)) + 2));
  const { columns, readingWidth } = nodeColumns(width, nameWidth);
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
  // every sensor on a row of its own while they all fit the room nodes get; else each node's first
  const room = Math.min(limit, Math.max(3, size.rows - 16));
  const expanded = nodes.reduce((n, node) => n + Math.max(1, sensorNames(node).length), 0) <= room;
  /** Which node each row is of, and whether it is that node's first row. */
  const rowNode: { node: number; first: boolean }[] = [];
  const nodeRowList: Row[] = nodes.flatMap((node, i) => {
    // the first ten nodes and any in trouble come before the traffic; the rest after its newest lines
    const priority = i >= limit ? -Infinity : trouble(node) ? 75 : i < 10 ? 70 - i * 0.1 : 40 - i * 0.001;
    return nodeRows(node, columns, readingWidth, expanded, sim.clock.Date.now()).map((text, k) => {
      rowNode.push({ node: i, first: k === 0 });
      return { text, priority: priority - k * 0.0001 };
    });
  });
  const count = (pick: (n: SimNode) => string) => {
    const c: Record<string, number> = {};
    for (const n of nodes) c[pick(n)] = (c[pick(n)] ?? 0) + 1;
    return Object.entries(c)
      .map(([k, v]) => `${v} ${colored(k)}`)
      .join(", ");
  };
  const summary = (_rows: number, kept: boolean[]) => {
    const hidden = rowNode.filter((r, j) => r.first && !kept[j]).length;
    const more = hidden ? `… and ${hidden} more` : "… and more sensor rows";
    return pc.dim(`${more} · `) + `power: ${count((n) => n.power)} · wifi: ${count((n) => n.wifi)} · mqtt: ${count((n) => n.mqtt)}`;
  };

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
    { gap: true, title: tableTitle, rows: nodeRowList, overflow: summary },
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
