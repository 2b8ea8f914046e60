// Scenarios: what the world does to the nodes over time. A JSON file:
//
// {
//   "name": "faults",                      // optional
//   "description": "...",                  // optional
//   "environment": [                       // keyframes, times in seconds from the start, ascending
//     { "at": 0,   "temperature": 19, "humidity": 60, "pressure": 1013, "light": 20, "co2": 450, "battery": 4.1 },
//     { "at": 600, "temperature": 24, "humidity": 45 }     // a missing quantity keeps its last value
//   ],
//   "repeat": 1440,                        // optional: the keyframes loop with this period (s)
//   "noise": { "temperature": 0.05, "humidity": 0.3, "pressure": 0.05 },  // optional Gaussian σ per sample
//   "faults": [
//     { "at": 120, "fault": "wifi-drop", "for": 30 },        // the access point is down 30 s
//     { "at": 200, "fault": "broker-restart", "for": 5 },    // broker stopped, back on the same port 5 s later
//     { "at": 300, "fault": "sensor-unplug", "for": 60, "node": 0 },  // node omitted: every node
//     { "at": 330, "fault": "sensor-unplug", "for": 60, "sensor": "soil" },  // one sensor; omitted: all of them
//     { "at": 360, "fault": "sensor-crc", "for": 30, "sensor": "air" },      // its answers fail their CRC
//     { "at": 390, "fault": "bus-stuck", "for": 20, "sensor": "air" },       // its bus (I2C1, or its OneWire pin) held low
//     { "at": 400, "fault": "power-cut", "for": 10, "node": 1 },      // off, on again after "for"
//     { "at": 500, "fault": "bridge-down", "for": 60 },      // edge-cloud topology: the bridge's link is cut
//     { "at": 600, "fault": "broker-unreachable", "for": 3600 },  // no route to the broker; it keeps its sessions
//     { "at": 700, "fault": "sntp-down", "for": 600 },       // the time server does not answer
//     { "at": 800, "fault": "storage-full", "for": 300, "node": 0 }  // other files take the node's free Storage
//   ]
// }
//
// Between keyframes quantities are interpolated with a cosine ease (smooth, no corners at the
// keyframes); before the first and after the last (without repeat) they hold. Units: °C, %RH, hPa,
// lx, ppm, V (the battery's terminal voltage). The first keyframe gives temperature, humidity and
// pressure; light, CO2 and battery default to 250 lx, 450 ppm and 3.9 V.

import { displayPath, FileError, readJsonFile } from "../tools/files.ts";
import { gaussianSource } from "./random.ts";

export const FAULT_KINDS = ["wifi-drop", "broker-restart", "broker-unreachable", "sntp-down", "sensor-unplug", "sensor-crc", "bus-stuck", "power-cut", "storage-full", "bridge-down"] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** The physical world around a node: °C, %RH, hPa, lx, ppm, V. */
export interface Environment {
  temperature: number;
  humidity: number;
  pressure: number;
  light: number;
  co2: number;
  battery: number;
}

export interface Keyframe {
  at: number;
  temperature?: number;
  humidity?: number;
  pressure?: number;
  light?: number;
  co2?: number;
  battery?: number;
}

export interface Fault {
  at: number;
  fault: FaultKind;
  /** Seconds until the fault ends. */
  for: number;
  /** Node index, for the sensor faults and power-cut; absent: every node. */
  node?: number;
  /** Sensor name (from the config), for the sensor faults; absent: every sensor of the node. */
  sensor?: string;
}

export interface Scenario {
  name?: string;
  description?: string;
  environment: Keyframe[];
  repeat?: number;
  noise?: Partial<Environment>;
  faults: Fault[];
}

export class ScenarioError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source}: invalid scenario:\n${problems.map((p) => `  ${p}`).join("\n")}`);
  }
}

const QUANTITIES = ["temperature", "humidity", "pressure", "light", "co2", "battery"] as const;
/** The first keyframe must give these; the others have defaults. */
const REQUIRED = ["temperature", "humidity", "pressure"];
export const DEFAULTS = { light: 250, co2: 450, battery: 3.9 };
// Ranges the sensors measure (BME280 tables 1-3, BH1750 1-65535 lx, SCD4x 0-40000 ppm) and a
// battery's terminal voltage: values outside are a mistake in the file.
const RANGES: Record<(typeof QUANTITIES)[number], [number, number]> = {
  temperature: [-40, 85],
  humidity: [0, 100],
  pressure: [300, 1100],
  light: [0, 65535],
  co2: [0, 40000],
  battery: [0, 5],
};
const SENSOR_FAULTS: readonly string[] = ["sensor-unplug", "sensor-crc", "bus-stuck"];
const TOP_KEYS = new Set(["name", "description", "environment", "repeat", "noise", "faults", "$schema"]);

const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** Check a parsed scenario; returns one "path: problem" line per bad entry (empty when valid). */
export function validateScenario(value: unknown): string[] {
  const problems: string[] = [];
  const bad = (path: string, problem: string) => problems.push(`${path}: ${problem}`);
  if (typeof value !== "object" || value === null || Array.isArray(value)) return ["(root): must be an object"];
  const s = value as Record<string, unknown>;
  for (const key of Object.keys(s)) if (!TOP_KEYS.has(key)) bad(key, `unknown field (expected one of ${[...TOP_KEYS].join(", ")})`);
  for (const key of ["name", "description"]) if (s[key] !== undefined && typeof s[key] !== "string") bad(key, "must be a string");

  if (!Array.isArray(s.environment) || s.environment.length === 0) {
    bad("environment", "must be a non-empty list of keyframes { at, temperature, humidity, pressure }");
  } else {
    let last = -Infinity;
    s.environment.forEach((k: unknown, i: number) => {
      const path = `environment[${i}]`;
      if (typeof k !== "object" || k === null || Array.isArray(k)) return bad(path, "must be an object");
      const frame = k as Record<string, unknown>;
      for (const key of Object.keys(frame)) {
        if (key !== "at" && !(QUANTITIES as readonly string[]).includes(key)) bad(`${path}.${key}`, `unknown field (expected at, ${QUANTITIES.join(", ")})`);
      }
      if (!isNumber(frame.at) || frame.at < 0) bad(`${path}.at`, "must be a number of seconds >= 0");
      else if (frame.at <= last) bad(`${path}.at`, `must be later than the previous keyframe (${last})`);
      else last = frame.at;
      for (const q of QUANTITIES) {
        const v = frame[q];
        if (v === undefined) {
          if (i === 0 && REQUIRED.includes(q)) bad(`${path}.${q}`, "the first keyframe must give temperature, humidity and pressure");
          continue;
        }
        const [lo, hi] = RANGES[q];
        if (!isNumber(v) || v < lo || v > hi) bad(`${path}.${q}`, `must be a number from ${lo} to ${hi}`);
      }
    });
  }
  if (s.repeat !== undefined) {
    const frames = Array.isArray(s.environment) ? (s.environment as { at?: unknown }[]) : [];
    const lastAt = frames.length ? Number(frames[frames.length - 1]?.at) : 0;
    if (!isNumber(s.repeat) || s.repeat <= 0) bad("repeat", "must be a period in seconds > 0");
    else if (s.repeat <= lastAt) bad("repeat", `must be longer than the last keyframe time (${lastAt})`);
  }
  if (s.noise !== undefined) {
    if (typeof s.noise !== "object" || s.noise === null || Array.isArray(s.noise)) bad("noise", `must be an object { ${QUANTITIES.join(", ")} }`);
    else {
      for (const [key, v] of Object.entries(s.noise)) {
        if (!(QUANTITIES as readonly string[]).includes(key)) bad(`noise.${key}`, `unknown field (expected ${QUANTITIES.join(", ")})`);
        else if (!isNumber(v) || v < 0) bad(`noise.${key}`, "must be a standard deviation >= 0");
      }
    }
  }
  if (s.faults !== undefined && !Array.isArray(s.faults)) bad("faults", "must be a list");
  else {
    ((s.faults as unknown[]) ?? []).forEach((f: unknown, i: number) => {
      const path = `faults[${i}]`;
      if (typeof f !== "object" || f === null || Array.isArray(f)) return bad(path, "must be an object { at, fault, for }");
      const fault = f as Record<string, unknown>;
      for (const key of Object.keys(fault)) if (!["at", "fault", "for", "node", "sensor"].includes(key)) bad(`${path}.${key}`, "unknown field (expected at, fault, for, node, sensor)");
      if (!isNumber(fault.at) || fault.at < 0) bad(`${path}.at`, "must be a number of seconds >= 0");
      if (!(FAULT_KINDS as readonly unknown[]).includes(fault.fault)) bad(`${path}.fault`, `must be one of ${FAULT_KINDS.join(", ")}`);
      if (!isNumber(fault.for) || fault.for <= 0) bad(`${path}.for`, "must be a duration in seconds > 0");
      if (fault.node !== undefined) {
        if (["wifi-drop", "broker-restart", "broker-unreachable", "sntp-down", "bridge-down"].includes(fault.fault as string)) bad(`${path}.node`, `${String(fault.fault)} affects every node; remove "node"`);
        else if (!Number.isInteger(fault.node) || (fault.node as number) < 0) bad(`${path}.node`, "must be a node index >= 0");
      }
      if (fault.sensor !== undefined) {
        if (!SENSOR_FAULTS.includes(fault.fault as string)) bad(`${path}.sensor`, `only the sensor faults (${SENSOR_FAULTS.join(", ")}) take "sensor"`);
        else if (typeof fault.sensor !== "string" || !/^[A-Za-z0-9_-]+$/.test(fault.sensor)) bad(`${path}.sensor`, "must be a sensor name from the config");
      }
    });
  }
  return problems;
}

/** Validate and normalise; throws ScenarioError listing every bad entry by path. */
export function parseScenario(value: unknown, source = "scenario"): Scenario {
  const problems = validateScenario(value);
  if (problems.length) throw new ScenarioError(source, problems);
  const s = value as Scenario;
  return {
    name: s.name,
    description: s.description,
    environment: s.environment.map((k) => ({ ...k })),
    repeat: s.repeat,
    noise: s.noise ? { ...s.noise } : undefined,
    faults: (s.faults ?? []).map((f) => ({ ...f })).sort((a, b) => a.at - b.at),
  };
}

export function loadScenario(file: string): Scenario {
  let value: unknown;
  try {
    value = readJsonFile(file, "the scenario", "scenarios/ has the ones that come with Wisp");
  } catch (err) {
    if (!(err instanceof FileError)) throw err;
    const e = new ScenarioError(file, []);
    e.message = err.message;
    throw e;
  }
  return parseScenario(value, displayPath(file));
}

/** A scenario with a constant environment and no faults. */
export function constantScenario(environment: Partial<Environment> = {}): Scenario {
  return { environment: [{ at: 0, temperature: 21, humidity: 45, pressure: 1013.25, ...DEFAULTS, ...environment }], faults: [] };
}

/** The environment at `seconds` from the start, without noise. */
export function environmentAt(scenario: Scenario, seconds: number): Environment {
  const frames = filled(scenario);
  let t = Math.max(0, seconds);
  if (scenario.repeat) {
    t %= scenario.repeat;
    // Wrap smoothly from the last keyframe back to the first one at `repeat`.
    const first = frames[0]!;
    frames.push({ ...first, at: scenario.repeat });
  }
  if (t <= frames[0]!.at) return pick(frames[0]!);
  for (let i = 1; i < frames.length; i++) {
    const a = frames[i - 1]!;
    const b = frames[i]!;
    if (t <= b.at) {
      const x = (1 - Math.cos((Math.PI * (t - a.at)) / (b.at - a.at))) / 2;
      const env = {} as Environment;
      for (const q of QUANTITIES) env[q] = a[q] + (b[q] - a[q]) * x;
      return env;
    }
  }
  return pick(frames[frames.length - 1]!);
}

const filledCache = new WeakMap<Scenario, (Environment & { at: number })[]>();

/** Keyframes with every quantity present (a missing one carries the previous value, or its default). */
function filled(scenario: Scenario): (Environment & { at: number })[] {
  let frames = filledCache.get(scenario);
  if (!frames) {
    let prev: Environment = { temperature: 0, humidity: 0, pressure: 0, ...DEFAULTS };
    frames = scenario.environment.map((k) => {
      const next = { ...prev };
      for (const q of QUANTITIES) next[q] = k[q] ?? prev[q];
      prev = next;
      return { at: k.at, ...next };
    });
    filledCache.set(scenario, frames);
  }
  return [...frames];
}

function pick(k: Environment): Environment {
  const env = {} as Environment;
  for (const q of QUANTITIES) env[q] = k[q];
  return env;
}

/** The environment one node's sensor sees: the scenario at the clock's time, plus that node's noise. */
export function environmentSource(scenario: Scenario, startMs: number, now: () => number, seed: number): () => Environment {
  const rng = gaussianSource(seed);
  const noise = scenario.noise ?? {};
  return () => {
    const env = environmentAt(scenario, (now() - startMs) / 1000);
    for (const q of QUANTITIES) {
      const sd = noise[q];
      if (sd) env[q] += rng() * sd;
    }
    env.humidity = Math.min(100, Math.max(0, env.humidity));
    env.light = Math.max(0, env.light);
    env.co2 = Math.max(0, env.co2);
    return env;
  };
}
