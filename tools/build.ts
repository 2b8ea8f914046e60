// `wisp build`: bundle the firmware with esbuild, check the result against espruino-compat.md,
// enforce each output's size budget (minified bytes are also RAM on Espruino: function source
// text lives in JsVars), and only then write dist/.

import * as esbuild from "esbuild";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { isBuiltin } from "node:module";
import * as path from "node:path";
import { checkEspruinoCompat, formatFinding, type Finding } from "./compat.ts";
import { checkFlashConfig, ConfigError, type FlashConfig, loadFlashConfig, validateFlashConfig } from "./config.ts";
import { QUANTITIES, SENSOR_TYPE_NAMES, SENSOR_TYPES } from "./drivers.ts";
import { displayPath } from "./files.ts";
import { PROJECT_ROOT } from "./paths.ts";
import { formatHelp } from "./options.ts";

export { PROJECT_ROOT } from "./paths.ts";

export interface Output {
  /** TypeScript entry, relative to the project root. */
  entry: string;
  /** Written file, relative to the project root. */
  outfile: string;
  /** Maximum size of the written .js in bytes; with `parts`, without the optional parts. */
  budget: number;
  /** The MQTT client's features (default: all); `"config"`: what flash.config.json needs (clientFeatures). */
  features?: ClientFeatures | "config";
  /** Measured, checked and shown in the table, under its own label, but not written (a profile). */
  profile?: string;
  /**
   * Built for a config (the firmware): the drivers and features it names are bundled, and each
   * bundled part (PARTS) adds its own budget to `budget`.
   */
  parts?: boolean;
}

/**
 * What `wisp build` produces. One line per output. firmware/main.ts → dist/firmware.js joins this
 * table once its entry exists (e.g. `{ entry: "firmware/main.ts", outfile: "dist/firmware.js", budget: ... }`);
 * it is not listed before, so a missing entry is always an error rather than silently skipped.
 */
export const OUTPUTS: Output[] = [
  // Espruino module: loaded with Modules.addCached("wisp-mqtt", source) or from Storage file "wisp-mqtt".
  // The aim was 4,096 bytes, then 6,000 (issue #8). The complete MQTT 3.1.1 feature set measured about
  // 7,170 (issue #2's closing note says what takes the bytes); issue #7's fixes (URL credentials and
  // option checks, receive-based keepalive and the send-buffer bound, reading past an over-size
  // PUBLISH, acks checked against what is pending, one resubscription in flight, callbacks once in
  // every state) took it to about 8,430; issue #8's paths for the interpreter (the usual publish,
  // PUBLISH, PUBACK and end of read each in a short function of its own, the rare cases split off,
  // the last topics remembered) to about 9,650, for 1.2-1.3 times the Espruino MQTT module's rates
  // (docs/espruino-notes.md); issue #9's session store (`store`, WISP_STORE: a put or remove where a
  // QoS 1/2 flow starts, moves on or completes, and the session restored after a reboot) 473 more,
  // measured; issue #7's second round 2,088 (checks on the rare paths only: the URL's host, port and
  // escapes, numeric options and CONNECT fields, control characters and UTF-8 bytes in topics, packets
  // before CONNACK, acks of the wrong kind, end()'s deadline, QoS 2 ids and acks in the send buffer
  // bounded, an over-size PUBLISH read to its packet id, SUBACKs past maxPacket); checking what the
  // store gives back (a whole PUBLISH or PUBREL under its key, else dropped and said as an "error") 373.
  // Then 12,588 less 142: ten functions fewer for the JsVars (a function is some 6 JsVars however
  // short), the RegExps where used, the usual packet framed in the receive loop.
  // The budget is a ceiling a little above, so growth still fails the build.
  { entry: "firmware/mqtt/index.ts", outfile: "dist/mqtt.js", budget: 12600 },
  // The sensor-node application (client, app), uploaded as Storage .bootcde, plus the parts its
  // config uses: 11,448 + the BME280's 2,048 + drivers/bus.ts's 128 + a one-type registry's 200 was
  // the 13,824 the BME280-only firmware had before drivers were chosen per config; issue #8's client
  // paths for the interpreter added about 1,200 (as in dist/mqtt.js); issue #9's clock (SNTP),
  // timestamps, the outbox's use in the app, the client's session store and safe replies 3,844, measured
  // on the merge of both (the outbox itself is a part, below); issue #7's second round 2,100; issue
  // #9's review 761 (the restored session checked, lines skipped in flash counted on status/outbox,
  // QoS 0 readings waiting for the clock, the error reply to a command over maxPacket, the word on an
  // outbox left by an earlier firmware) and its second round 850 (status/outbox kept current, readings
  // Storage refuses held in RAM in order, the interval command on a duty cycle).
  { entry: "firmware/main.ts", outfile: "dist/firmware.js", budget: 20350, parts: true },
];

/** The features of the MQTT client that a build can leave out (firmware/mqtt/features.ts). */
export interface ClientFeatures {
  /** QoS 2 both ways */
  qos2: boolean;
  /** mqtts:// */
  tls: boolean;
  /** a will in CONNECT */
  will: boolean;
  /** user name and password in the URL */
  urlLogin: boolean;
  /** the session store (`store`), with which a `clean: false` session outlives a reboot */
  store: boolean;
}

/** dist/mqtt.js, the client as a module for any application: everything. */
export const ALL_FEATURES: ClientFeatures = { qos2: true, tls: true, will: true, urlLogin: true, store: true };

/**
 * What a node built for `config` can use: QoS 2 only when its readings go at QoS 2 (`qos`; the node
 * subscribes to its commands at QoS 1), TLS only for an mqtts:// broker, the will, which every node
 * sets (`offline` on <prefix>/status), no login in the URL (flash.schema.json's mqtt.url has none:
 * the login is mqtt.username and mqtt.password), and the session store when the node keeps an outbox
 * (the default; `"outbox": false` keeps readings in RAM).
 */
export function clientFeatures(config: Pick<FlashConfig, "qos" | "mqtt" | "outbox">): ClientFeatures {
  return { qos2: config.qos === 2, tls: /^mqtts:/.test(config.mqtt.url), will: true, urlLogin: false, store: config.outbox !== false };
}

/** The esbuild `define` that builds the client with `features`. */
export function clientDefines(features: ClientFeatures): Record<string, string> {
  return { WISP_QOS2: String(features.qos2), WISP_TLS: String(features.tls), WISP_WILL: String(features.will), WISP_URL_LOGIN: String(features.urlLogin), WISP_STORE: String(features.store) };
}

/**
 * The same sources built with fewer of the client's features: measured, checked against Espruino and
 * their budgets like the outputs, shown in the build table, not written. dist/ keeps the complete
 * client; `firmware` is what dist/firmware.js becomes when it is built for flash.config.json's node.
 */
export const PROFILES: Output[] = [
  // The aim of issue #8 was 4,096 bytes for this profile: what it leaves out is small next to what every
  // client needs (framing and checking every packet, the session, the queue, reconnecting).
  // (both: + issue #7's second round, 2,053 and 2,063 bytes)
  { entry: "firmware/mqtt/index.ts", outfile: "dist/mqtt.js", profile: "QoS 0/1, mqtt://, no will, no login in the URL, no store", features: { qos2: false, tls: false, will: false, urlLogin: false, store: false }, budget: 11480 },
  // Issue #9 added 3,729 bytes to this profile's base, as to dist/firmware.js's (the outbox is a part),
  // and its review 761 and second round 850 more (as there).
  { entry: "firmware/main.ts", outfile: "dist/firmware.js", profile: "for the config", features: "config", budget: 19913, parts: true },
];

/**
 * The firmware's optional parts, each with its own budget in bytes (a little above its measured
 * size, so growth fails the build): a driver is bundled only when the config names its type, a
 * family base (sensirion.ts) when one of its chips is, discovery when the config has a
 * homeAssistant section. Every file under drivers/ must be listed.
 */
export const PARTS: Record<string, number | ((target: FirmwareTarget) => number)> = {
  // The driver registry: a constructor call per bundled type.
  "firmware/node/drivers.ts": (t) => 128 + 72 * t.types.length,
  "drivers/bus.ts": 128,
  "drivers/bme280.ts": 2048,
  "drivers/sensirion.ts": 896,
  "drivers/sht3x.ts": 288,
  "drivers/sht4x.ts": 256,
  "drivers/scd4x.ts": 832,
  "drivers/bh1750.ts": 512,
  "drivers/ds18b20.ts": 1792,
  "drivers/battery.ts": 544,
  "firmware/node/discovery.ts": 1024,
  // The outbox and the client's session store in flash (without "outbox": false); every record
  // read from flash checked before it is used (3,559 before that, 4,423 with it).
  // (+ 52: times written and sent as whole milliseconds; Espruino's Date.now() has a fraction)
  "firmware/store/outbox.ts": 4512,
  // The deep-sleep duty cycle (a config with "sleep").
  "firmware/node/sleep.ts": 512,
  // Discovery's table: [key, device class, unit] per quantity of each bundled type (measured: 36 bytes
  // for a type with one quantity, 125 for the BME280's three), so its budget counts quantities.
  "<define:WISP_HA>": (t) => t.types.reduce((n, type) => n + 24 + 40 * (SENSOR_TYPES[type as keyof typeof SENSOR_TYPES]?.quantities.length ?? 3), 0),
};

/** How the build table and its errors name a part that is not a file. */
const PART_LABELS: Record<string, string> = { "<define:WISP_HA>": "discovery table (WISP_HA)" };
const partLabel = (input: string) => PART_LABELS[input] ?? input;

/** What the firmware is built for: every sensor type the config names, and its features. */
export interface FirmwareTarget {
  /** Where the config came from, for the build table ("flash.config.json", or "every driver"). */
  label: string;
  types: string[];
  discovery: boolean;
  /** readings kept in the outbox (the default; "outbox": false keeps them in RAM) */
  outbox: boolean;
  /** the deep-sleep duty cycle */
  sleep: boolean;
  /** The MQTT client's features the config can use (clientFeatures); measured as a profile, see PROFILES. */
  client: ClientFeatures;
}

/** The firmware target of a config (parsed, or a file); undefined config: the project's flash.config.json. */
export function firmwareTarget(config: string | FlashConfig | undefined, root = PROJECT_ROOT): FirmwareTarget {
  let c: FlashConfig;
  let label = "config";
  if (typeof config === "object") {
    const problems = validateFlashConfig(config);
    if (problems.length) throw new ConfigError("config", problems);
    c = config;
  } else {
    const file = path.resolve(root, config ?? "flash.config.json");
    label = displayPath(file, root);
    if (config === undefined && !existsSync(file)) return { label: "every driver (no flash.config.json)", types: [...SENSOR_TYPE_NAMES], discovery: true, outbox: true, sleep: true, client: ALL_FEATURES };
    c = loadFlashConfig(file);
  }
  return { label, types: [...new Set(c.sensors.map((s) => s.type))], discovery: c.homeAssistant !== undefined, outbox: c.outbox !== false, sleep: c.sleep !== undefined, client: clientFeatures(c) };
}

/**
 * esbuild `define`s that make firmware/node/drivers.ts and discovery.ts hold only what `target`
 * uses: WISP_DRIVER.<type> for every known type, WISP_DISCOVERY, WISP_HA (the discovery table of
 * the bundled types) and WISP_VERSION.
 */
export function firmwareDefines(target: FirmwareTarget, root = PROJECT_ROOT): Record<string, string> {
  const define: Record<string, string> = {};
  for (const t of SENSOR_TYPE_NAMES) define[`WISP_DRIVER.${t}`] = String(target.types.includes(t));
  define.WISP_DISCOVERY = String(target.discovery);
  // the client's session store serves only the outbox: this overrides the client's features
  define.WISP_STORE = String(target.outbox !== false);
  define.WISP_SLEEP = String(target.sleep === true);
  const ha: Record<string, [string, string, string][]> = {};
  if (target.discovery) {
    for (const t of target.types) {
      ha[t] = SENSOR_TYPES[t as keyof typeof SENSOR_TYPES].quantities.map((q) => [q, QUANTITIES[q].deviceClass, QUANTITIES[q].haUnit]);
    }
  }
  define.WISP_HA = JSON.stringify(ha);
  define.WISP_VERSION = JSON.stringify(packageVersion(root));
  return define;
}

function packageVersion(root: string): string {
  try {
    return String(JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")).version ?? "0.0.0");
  } catch {
    return "0.0.0";
  }
}

/** Modules built into Espruino (ESP32 build): `require("net")` stays a runtime call. */
export const ESPRUINO_MODULES = ["net", "tls", "http", "dgram", "crypto", "Wifi", "ESP32", "Storage", "Flash", "neopixel", "heatshrink", "Telnet"];
// Not "fs": Espruino's SD-card fs is absent from Wisp's boards and the name is Node's; importing it is an error.

export class BuildError extends Error {}

/**
 * esbuild settings shared by the build and the tests.
 *
 * format "cjs", not "iife" (measured on the MQTT client: iife 8,385 bytes, cjs 8,101). In an iife
 * esbuild routes `require("net")` through a `__require` shim that calls `new Proxy` (missing on
 * Espruino), and a file it deems CommonJS (one using `exports` outside a "type": "module" package)
 * is wrapped in `__commonJS`, so `exports.connect` would land on a private object instead of the
 * one Espruino hands the module. With "cjs" the entry's `exports.x = ...` and `require("net")`
 * come out verbatim. Privacy needs no wrapper: Espruino evaluates module source (Modules.addCached
 * or a Storage file) in its own scope holding `exports` and `module`. An entry must therefore
 * assign `exports.x`; ES `export` would need esbuild's __toCommonJS helper (rejected in buildOutput).
 */
export function esbuildOptions(entry: string, outfile: string, root = PROJECT_ROOT, define?: Record<string, string>): esbuild.BuildOptions {
  return {
    // the MQTT client's features (firmware/mqtt/features.ts): all unless `define` says otherwise
    define: { ...clientDefines(ALL_FEATURES), ...define },
    absWorkingDir: root,
    entryPoints: [entry],
    outfile,
    bundle: true,
    minify: true,
    format: "cjs",
    // es2019 makes esbuild lower `?.`, `??=`, `||=`, `&&=`; what it cannot lower, compat.ts rejects.
    target: "es2019",
    // espruino-compat.md measures these as working; keeping them native is shorter than esbuild's lowering.
    supported: { "nullish-coalescing": true, "class-field": true, "class-static-field": true },
    platform: "neutral",
    external: ESPRUINO_MODULES,
    plugins: [rejectNodeModules],
    // Internal properties end in `_` and get short names; public API names must not end in `_`.
    mangleProps: /_$/,
    reserveProps: /^__.*__$/,
    // Espruino supplies `exports` to module code; esbuild warns that ESM files ("type": "module") see it as a global, which is the point.
    logOverride: { "commonjs-variable-in-esm": "silent" },
    // Emit-relevant TypeScript settings, pinned so every entry builds alike: no "use strict" prologue
    // (Espruino ignores it, espruino-compat.md) and TS's assign semantics for class fields, as in
    // firmware/tsconfig.json (target ES2020). Pinning means tsconfig.json files are not read by esbuild.
    tsconfigRaw: { compilerOptions: { alwaysStrict: false, useDefineForClassFields: false } },
    legalComments: "none",
    // charset left at esbuild's default (ASCII, non-ASCII escaped): the ESP32 build has no Unicode support.
    sourcemap: "external",
    sourcesContent: true,
    metafile: true,
    write: false,
    logLevel: "silent",
  };
}

const rejectNodeModules: esbuild.Plugin = {
  name: "wisp-reject-node-modules",
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, (args) => {
      if (ESPRUINO_MODULES.includes(args.path)) return { path: args.path, external: true };
      if (isBuiltin(args.path)) {
        return {
          errors: [
            {
              text: `"${args.path}" is a Node module; firmware runs on Espruino, which has no "${args.path.replace(/^node:/, "")}". Espruino modules available: ${ESPRUINO_MODULES.join(", ")}`,
            },
          ],
        };
      }
      return undefined;
    });
  },
};

export interface Bundle {
  code: string;
  /** Source map (JSON text); its `sources` are relative to the output file's directory. */
  map: string;
  metafile: esbuild.Metafile;
  /** Absolute path the code is meant for. */
  outfile: string;
  warnings: string[];
}

/** Bundles one entry in memory with the build's settings. Throws BuildError on esbuild errors. */
export async function bundle(entry: string, options: { outfile?: string; root?: string; define?: Record<string, string> } = {}): Promise<Bundle> {
  const root = options.root ?? PROJECT_ROOT;
  const outfile = path.resolve(root, options.outfile ?? path.join("dist", path.basename(entry).replace(/\.[cm]?[jt]s$/, "") + ".js"));
  if (!existsSync(path.resolve(root, entry))) throw new BuildError(`entry ${entry} does not exist (needed for ${path.relative(root, outfile)})`);
  let result: esbuild.BuildResult<esbuild.BuildOptions & { metafile: true; write: false }>;
  try {
    result = (await esbuild.build(esbuildOptions(entry, outfile, root, options.define))) as typeof result;
  } catch (e) {
    const failure = e as esbuild.BuildFailure;
    if (!failure.errors) throw e;
    throw new BuildError(`${entry}: esbuild failed\n` + failure.errors.map((m) => "  " + formatMessage(m)).join("\n"));
  }
  const js = result.outputFiles.find((f) => f.path === outfile);
  const map = result.outputFiles.find((f) => f.path === outfile + ".map");
  if (!js || !map) throw new BuildError(`${entry}: esbuild produced no ${outfile}`);
  return { code: escapeControlBytes(js.text), map: map.text, metafile: result.metafile, outfile, warnings: result.warnings.map(formatMessage) };
}

/**
 * esbuild writes some escapes in string literals as the raw byte (`"\x04"` comes out as 0x04).
 * Raw control bytes do not survive an upload over the console (0x03 is Ctrl-C even inside a
 * packet, the Linux build exits on 0x04, 0x11/0x13 are XON/XOFF), so every control byte but the
 * newline becomes a `\xNN` escape again. Minified code has them only inside literals, where the
 * escape means the same byte. Columns after one move by three; the source map's lines stay right.
 */
export function escapeControlBytes(code: string): string {
  return code.replace(/[\x00-\x09\x0b-\x1f]/g, (c) => "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"));
}

function formatMessage(m: esbuild.Message): string {
  const where = m.location ? `${m.location.file}:${m.location.line}:${m.location.column + 1}: ` : "";
  const notes = m.notes.filter((n) => n.text).map((n) => `\n    note: ${n.text}`);
  return `${where}${m.text}${notes.join("")}`;
}

/** Compatibility findings for a bundle, with TypeScript positions relative to `root`. */
export function checkBundle(b: Bundle, root = PROJECT_ROOT): Finding[] {
  return checkEspruinoCompat(b.code, b.map, { mapDir: path.dirname(b.outfile), root, outputName: path.relative(root, b.outfile) });
}

/** Bytes each input file contributes to the output, biggest first. */
export function contributors(b: Bundle, root = PROJECT_ROOT): { input: string; bytes: number }[] {
  const out = b.metafile.outputs[path.relative(root, b.outfile).split(path.sep).join("/")];
  if (!out) return [];
  return Object.entries(out.inputs)
    .map(([input, v]) => ({ input, bytes: v.bytesInOutput }))
    .sort((a, b) => b.bytes - a.bytes);
}

export interface PartReport {
  /** The source file, relative to the root (a key of PARTS). */
  input: string;
  bytes: number;
  budget: number;
}

export interface OutputReport {
  output: Output;
  bytes: number;
  /** The output's budget with the budgets of its bundled parts added. */
  budget: number;
  /** Optional parts bundled into it (outputs with `parts`), biggest first. */
  parts: PartReport[];
  /** What it was built for (outputs with `parts`). */
  target?: FirmwareTarget;
  bundle: Bundle | null;
  /** Every reason this output fails (esbuild errors, compat findings, budget); empty when it passes. */
  errors: string[];
}

/** Bundles, checks and measures one output (writes nothing); `target` is what an output with `parts` is built for. */
export async function buildOutput(output: Output, root = PROJECT_ROOT, target?: FirmwareTarget): Promise<OutputReport> {
  const none = { output, bytes: 0, budget: output.budget, parts: [], target, bundle: null };
  if (output.parts && !target) {
    try {
      target = firmwareTarget(undefined, root);
    } catch (e) {
      if (e instanceof ConfigError) return { ...none, errors: [`${output.outfile}: cannot build for ${e.message}`] };
      throw e;
    }
  }
  let b: Bundle;
  try {
    const features = output.features === "config" ? (target?.client ?? ALL_FEATURES) : (output.features ?? ALL_FEATURES);
    const define = { ...clientDefines(features), ...(output.parts && target ? firmwareDefines(target, root) : {}) };
    b = await bundle(output.entry, { outfile: output.outfile, root, define });
  } catch (e) {
    if (e instanceof BuildError) return { ...none, target, errors: [e.message] };
    throw e;
  }
  const errors: string[] = [];
  const entryFormat = b.metafile.inputs[path.relative(root, path.resolve(root, output.entry)).split(path.sep).join("/")]?.format;
  const esExports = entryFormat === "esm" ? await entryExports(output.entry, root) : [];
  if (esExports.length) {
    // esbuild turns ES exports into a __toCommonJS helper whose getters close over a for-of `let`,
    // which Espruino breaks (espruino-compat.md: every closure sees the last value).
    errors.push(
      `${output.entry}: an entry must not use \`export\` (found: ${esExports.join(", ")}); assign the module's API instead: \`exports.${esExports[0]} = ...\``,
    );
  }
  const findings = checkBundle(b, root);
  if (findings.length) {
    errors.push(
      `${output.outfile}: ${findings.length} construct${findings.length === 1 ? "" : "s"} Espruino cannot run:\n` +
        findings.map((f) => "  " + formatFinding(f).replace(/\n/g, "\n  ")).join("\n"),
    );
  }
  const parts: PartReport[] = [];
  if (output.parts) {
    for (const c of contributors(b, root)) {
      const part = PARTS[c.input];
      if (part !== undefined) parts.push({ input: c.input, bytes: c.bytes, budget: typeof part === "number" ? part : part(target!) });
      else if (c.input.startsWith("drivers/")) errors.push(`${c.input} has no budget: add it to PARTS in tools/build.ts (a little above its ${fmt(c.bytes)} bytes)`);
    }
    for (const p of parts) {
      if (p.bytes > p.budget) errors.push(`${partLabel(p.input)} is ${fmt(p.bytes)} bytes in ${output.outfile}, over its budget of ${fmt(p.budget)} by ${fmt(p.bytes - p.budget)} (PARTS in tools/build.ts)`);
    }
    // A WISP_ name the build did not define would be a ReferenceError on the device.
    const undefinedName = /\bWISP_[A-Z_]+(\.\w+)?/.exec(b.code);
    if (undefinedName) errors.push(`${output.outfile} uses ${undefinedName[0]}, which the build does not define (firmwareDefines in tools/build.ts, SENSOR_TYPES in tools/drivers.ts)`);
  }
  const budget = output.budget + parts.reduce((sum, p) => sum + p.budget, 0);
  const bytes = Buffer.byteLength(b.code);
  if (bytes > budget) {
    errors.push(
      `${output.outfile} is ${fmt(bytes)} bytes, over its budget of ${fmt(budget)} bytes by ${fmt(bytes - budget)}. Biggest contributors:\n` +
        breakdown(b, root),
    );
  }
  return { output, bytes, budget, parts, target, bundle: b, errors };
}

/** ES `export` names of an entry file (the cjs bundle's metafile does not list them). */
async function entryExports(entry: string, root: string): Promise<string[]> {
  const { tsconfigRaw } = esbuildOptions(entry, "", root);
  const r = await esbuild.build({ absWorkingDir: root, entryPoints: [entry], bundle: false, format: "esm", write: false, metafile: true, outdir: "out", tsconfigRaw, logLevel: "silent" });
  return Object.values(r.metafile.outputs).flatMap((o) => o.exports);
}

function breakdown(b: Bundle, root: string): string {
  return contributors(b, root)
    .map((c) => `  ${fmt(c.bytes).padStart(7)}  ${c.input}`)
    .join("\n");
}

const fmt = (n: number) => n.toLocaleString("en-US");

export interface BuildOptions {
  outputs?: Output[];
  /** Measured and shown, not written (default: PROFILES when `outputs` is not given). */
  profiles?: Output[];
  root?: string;
  verbose?: boolean;
  /** Write dist/ files when every output passes (default true). */
  write?: boolean;
  /** Also write `<outfile>.map` for humans; nothing loads it (default true). */
  sourcemap?: boolean;
  /** Receives every line (table, warnings, errors); default: stdout, errors and warnings to stderr. */
  log?: (line: string) => void;
  /**
   * The config the firmware is built for: a flash.config.json path (relative to `root`) or its
   * parsed content. Default: the project's flash.config.json (every driver when there is none).
   * Its sensor types pick the drivers bundled; a homeAssistant section bundles discovery.
   */
  config?: string | FlashConfig;
  /**
   * Print the check of the config file (wisp build): valid, and which secrets from the environment
   * were not read (checkFlashConfig). A config given as a file is validated whole either way, and an
   * invalid one fails the build.
   */
  reportConfig?: boolean;
}

export interface BuildResult {
  ok: boolean;
  reports: OutputReport[];
  ms: number;
}

/** Builds every output; writes dist/ only if all of them pass, so dist/ never mixes good and bad. */
export async function build(options: BuildOptions = {}): Promise<BuildResult> {
  const started = performance.now();
  const root = options.root ?? PROJECT_ROOT;
  const log = options.log ?? ((line: string) => console.log(line));
  const logError = options.log ?? ((line: string) => console.error(line));
  const profiles = options.profiles ?? (options.outputs ? [] : PROFILES);
  const outputs = [...(options.outputs ?? OUTPUTS), ...profiles];
  let target: FirmwareTarget | undefined;
  let targetError: string | undefined;
  if (outputs.some((o) => o.parts)) {
    try {
      target = firmwareTarget(options.config, root);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      // the firmware is built for the config's sensors: the config's own error says why it was not
      targetError = e.message;
    }
  }
  const reports = await Promise.all(
    outputs.map((o) =>
      o.parts && targetError
        ? Promise.resolve<OutputReport>({ output: o, bytes: 0, budget: o.budget, parts: [], bundle: null, errors: [targetError] })
        : buildOutput(o, root, o.parts ? target : undefined),
    ),
  );
  // the config file checked whole (every field, the broker's host and port), with what was not
  // read; when the firmware could not be built for it, that error already says why
  const configErrors: string[] = [],
    configLines: string[] = [];
  const configFile = typeof options.config === "string" ? path.resolve(root, options.config) : undefined;
  if (configFile !== undefined && targetError === undefined) {
    try {
      const { config, notes } = checkFlashConfig(configFile);
      if (options.reportConfig) {
        const sensors = `${config.sensors.length} sensor${config.sensors.length === 1 ? "" : "s"}`;
        configLines.push(`${displayPath(configFile)}: valid (board ${config.board}, broker ${config.mqtt.url}, ${sensors})`);
        for (const n of notes) configLines.push(`  ${n}`);
      }
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      configErrors.push(e.message);
    }
  }
  const ok = reports.every((r) => r.errors.length === 0) && configErrors.length === 0;

  if (ok && options.write !== false) {
    await Promise.all(
      reports.filter((r) => !r.output.profile).map(async (r) => {
        const b = r.bundle!;
        await mkdir(path.dirname(b.outfile), { recursive: true });
        await writeFile(b.outfile, b.code);
        if (options.sourcemap !== false) await writeFile(b.outfile + ".map", b.map);
        // What the firmware was built for, so `wisp sim` can tell whether it fits its config.
        if (r.target) await writeFile(manifestPath(b.outfile), JSON.stringify(r.target) + "\n");
      }),
    );
  }

  // a profile's row: "  <outfile>, <profile>" under the outputs
  const name = (r: OutputReport) => {
    const o = r.output;
    if (!o.profile) return o.outfile;
    return `  ${o.outfile}, ${o.features === "config" && r.target ? `for ${r.target.label}` : o.profile}`;
  };
  const width = Math.max(22, ...reports.map((r) => name(r).length + 2), ...reports.flatMap((r) => r.parts.map((p) => partLabel(p.input).length + 4)));
  const row = (label: string, bytes: string, budget: number, used: string, rest: string) =>
    log(`${label.padEnd(width)}${bytes.padStart(8)}${fmt(budget).padStart(9)}${used.padStart(7)}${rest}`);
  log(`${"output".padEnd(width)}${"bytes".padStart(8)}${"budget".padStart(9)}${"used".padStart(7)}`);
  for (const r of reports) {
    if (r.output.profile && r === reports.find((x) => x.output.profile)) log("built for fewer MQTT features (not written):");
    const used = r.bundle ? `${Math.round((100 * r.bytes) / r.budget)}%` : "-";
    const bytes = r.bundle ? fmt(r.bytes) : "-";
    const flag = r.errors.length ? "  FAILED" : "";
    row(name(r), bytes, r.budget, used, `${flag}${r.target && !r.output.profile ? `  for ${r.target.label}` : ""}`);
    if (!r.output.profile) for (const p of r.parts) row(`  ${partLabel(p.input)}`, fmt(p.bytes), p.budget, `${Math.round((100 * p.bytes) / p.budget)}%`, p.bytes > p.budget ? "  FAILED" : "");
  }
  if (options.verbose) {
    for (const r of reports) if (r.bundle) log(`\n${r.output.outfile} by input:\n${breakdown(r.bundle, root)}`);
  }
  for (const r of reports) for (const w of r.bundle?.warnings ?? []) logError(`warning: ${w}`);
  // a profile fails for the same reason as its output: say it once
  for (const e of new Set(reports.flatMap((r) => r.errors))) logError(`\nerror: ${e}`);
  if (configLines.length) log(`\n${configLines.join("\n")}`);
  for (const e of configErrors) logError(`\nerror: ${e}`);

  const ms = performance.now() - started;
  log(ok ? `\nbuilt in ${Math.round(ms)} ms${options.write === false ? " (nothing written)" : ""}` : `\nbuild failed in ${Math.round(ms)} ms; dist/ not written`);
  return { ok, reports, ms };
}

/** dist/firmware.json beside dist/firmware.js: the FirmwareTarget it was built for. */
export function manifestPath(outfile: string): string {
  return outfile.replace(/\.js$/, "") + ".json";
}

const SOURCE_DIRS = ["firmware", "drivers", "boards"];

/** Newest modification time of the files under `dirs` (0 when none). */
function newestSource(root: string, dirs: string[]): number {
  let newest = 0;
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  for (const d of dirs) walk(path.join(root, d));
  return newest;
}

/**
 * True when an output is missing or older than a source file, or the firmware in dist/ was built
 * for other sensor types or features than `config` (default: the project's flash.config.json) needs.
 */
export function needsBuild(root = PROJECT_ROOT, config?: string): boolean {
  const newest = newestSource(root, SOURCE_DIRS);
  const stale = OUTPUTS.some((o) => {
    const out = path.join(root, o.outfile);
    return !existsSync(out) || newest > statSync(out).mtimeMs;
  });
  if (stale) return true;
  for (const o of OUTPUTS.filter((o) => o.parts)) {
    let built: FirmwareTarget, wanted: FirmwareTarget;
    try {
      built = JSON.parse(readFileSync(manifestPath(path.join(root, o.outfile)), "utf8")) as FirmwareTarget;
      wanted = firmwareTarget(config, root);
    } catch {
      return true; // no manifest, or a config that does not load: the build says what is wrong
    }
    const same = (a: string[], b: string[]) => a.length === b.length && a.every((t) => b.includes(t));
    if (!same(built.types, wanted.types) || built.discovery !== wanted.discovery || built.outbox !== wanted.outbox || built.sleep !== wanted.sleep) return true;
  }
  return false;
}

/**
 * Builds when dist/ is missing, older than its sources, or built for other drivers than `config`
 * needs (what `wisp sim`, `wisp flash` and `wisp hil` do first); `say` announces it. Returns false
 * when the build failed (its errors are printed).
 */
export async function ensureBuilt(say: (line: string) => void = console.log, config?: string): Promise<boolean> {
  if (!needsBuild(PROJECT_ROOT, config)) return true;
  const why = OUTPUTS.some((o) => !existsSync(path.join(PROJECT_ROOT, o.outfile))) ? "dist/ is missing" : "dist/ is older than its sources, or built for other sensors";
  say(`${why}: building it${config ? ` for ${displayPath(config)}` : ""} (esbuild, then the Espruino check) ...`);
  return (await build({ config })).ok;
}


const USAGE = `usage: wisp build [--config FILE] [--verbose] [--no-map] [--check]

Bundles the firmware (esbuild) for a config, rejects what Espruino 2v29 cannot run
(docs/espruino-compat.md), enforces each output's byte budget and each bundled driver's, checks the
config whole (every field, the broker's host and port), then writes dist/. Any error fails the
build and nothing is written.

Secrets written as {"env": "NAME"} are not read here: wisp flash and wisp hil read them when they
write the node's wisp.json, and stop when one is missing. The build names the ones not set.

  -c, --config FILE  the flash config to build for and check (default flash.config.json): the
                     firmware bundles the drivers its sensors name, and discovery if it has
                     homeAssistant
  -v, --verbose      bytes per input file for every output
      --no-map       do not write dist/*.js.map (the maps are for humans; nothing loads them)
      --check        bundle and check only; write nothing
  -h, --help         this text`;

/** CLI entry: returns the exit code (0 ok, 1 build failed, 2 usage error). */
export async function main(argv: string[]): Promise<number> {
  const { parseOptions, UsageError, usageFailure } = await import("./options.ts");
  let values;
  try {
    values = parseOptions(argv, {
      config: { type: "string", short: "c" },
      verbose: { type: "boolean", short: "v" },
      "no-map": { type: "boolean" },
      check: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    }).values;
  } catch (err) {
    if (err instanceof UsageError) return usageFailure("build", err);
    throw err;
  }
  if (values.help) {
    console.log(formatHelp(USAGE));
    return 0;
  }
  // without --config: the project's flash.config.json when there is one (else every driver)
  const fallback = path.join(PROJECT_ROOT, "flash.config.json");
  const options: BuildOptions = {
    verbose: values.verbose,
    sourcemap: values["no-map"] ? false : undefined,
    write: values.check ? false : undefined,
    config: values.config !== undefined ? path.resolve(values.config) : existsSync(fallback) ? fallback : undefined,
    reportConfig: true,
  };
  const result = await build(options);
  return result.ok ? 0 : 1;
}
