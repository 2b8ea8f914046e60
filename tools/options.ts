// Command-line options for every `wisp` command: node:util parseArgs with messages that say what
// was wrong and what is allowed, numbers checked against the range each option takes, and one
// form of usage error (the message, then where the options are listed; not the whole help text,
// which would push the message off the screen).

import { parseArgs, type ParseArgsConfig } from "node:util";
import { closest, wrap } from "./commands.js";

/** Bad command-line input: the command prints it and exits 2. */
export class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** parseArgs (strict) whose errors are UsageErrors in plain words, with "did you mean" for a typo. */
export function parseOptions<O extends Options>(argv: string[], options: O, positionals = false) {
  let parsed;
  try {
    parsed = parseArgs({ args: negativeValues(argv, options), options, strict: true, allowPositionals: positionals, tokens: true });
  } catch (err) {
    throw new UsageError(optionMessage(err as Error & { code?: string }, options));
  }
  // parseArgs keeps the last of a repeated option: two values for one thing is a mistake to name
  const seen = new Map<string, string>();
  for (const t of parsed.tokens ?? []) {
    if (t.kind !== "option" || options[t.name]?.type !== "string" || options[t.name]?.multiple) continue;
    const earlier = seen.get(t.name);
    if (earlier !== undefined) throw new UsageError(`--${t.name} is given twice (${JSON.stringify(earlier)} and ${JSON.stringify(t.value ?? "")}): give it once`);
    seen.set(t.name, t.value ?? "");
  }
  return { values: parsed.values, positionals: parsed.positionals };
}

/**
 * `--duration -1` as `--duration=-1`: parseArgs takes a value that starts with "-" for an option flag,
 * and would say so, where the user meant a (wrong) number, which the option's own check then names.
 */
function negativeValues(argv: string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    const name = arg.startsWith("--") ? arg.slice(2) : Object.keys(options).find((n) => arg.length === 2 && options[n]!.short === arg[1]);
    if (name !== undefined && options[name]?.type === "string" && next !== undefined && /^-\d/.test(next)) {
      out.push(`--${name}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

function optionMessage(err: Error & { code?: string }, options: Options): string {
  const m = err.message;
  const names = Object.keys(options).map((n) => `--${n}`);
  switch (err.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION": {
      const given = /'([^']+)'/.exec(m)?.[1] ?? m;
      const long = given.startsWith("--") ? given.split("=")[0]! : given;
      const guess = long.startsWith("--") ? closest(long, names) : undefined;
      return `unknown option ${long}${guess ? ` (did you mean ${guess}?)` : ""}`;
    }
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE": {
      const name = /--[\w-]+/.exec(m)?.[0] ?? "an option";
      if (/argument missing/.test(m)) return `${name} needs a value (${name} ${options[name.slice(2)]?.type === "string" ? "VALUE" : ""})`.replace(" )", ")");
      if (/ambiguous/.test(m)) return `${name} needs a value, and the next argument starts with "-"; if that is the value, write ${name}=VALUE`;
      if (/does not take an argument/.test(m)) return `${name} takes no value`;
      return m;
    }
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL": {
      const given = /'([^']+)'/.exec(m)?.[1] ?? "";
      return `unexpected argument "${given}": this command takes options only (--name value)`;
    }
    default:
      return m;
  }
}

/**
 * A command's help text in `columns` (default 80): an option's description, and a paragraph, are
 * joined with their continuation lines (same indent) and wrapped again at word boundaries.
 */
export function formatHelp(text: string, columns = 80): string {
  const lines = text.split("\n");
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.trim()) {
      out.push(line);
      continue;
    }
    // an option line: its description starts after two or more spaces, and goes on on lines indented
    // deeper than the option; a paragraph goes on on lines of its own indent
    const option = /^(\s*)(-.*?\S)(\s{2,})(\S.*)$/.exec(line);
    const head = option ? option[1]! + option[2]! + option[3]! : /^\s*/.exec(line)![0];
    const words = [option ? option[4]! : line.slice(head.length)];
    const goesOn = (next: string) => {
      if (!next.trim() || next.trim().startsWith("-")) return false;
      const own = /^\s*/.exec(next)![0].length;
      return option ? own > option[1]!.length : own === head.length;
    };
    while (i + 1 < lines.length && goesOn(lines[i + 1]!)) words.push(lines[++i]!.trim());
    const indent = " ".repeat(head.length);
    wrap(words.join(" "), Math.max(20, columns - head.length)).forEach((l, k) => out.push((k === 0 ? head : indent) + l));
  }
  return out.join("\n");
}

/** Prints a usage error as `wisp <command>: <message>` and where the options are listed; returns 2. */
export function usageFailure(command: string, err: UsageError): number {
  console.error(`wisp ${command}: ${err.message}\n(\`npx wisp ${command} --help\` lists the options)`);
  return 2;
}

export interface IntRange {
  min: number;
  max: number;
  /** What the number counts, for the message: "nodes", "seconds", "bits per second". */
  unit?: string;
}

const fmt = (n: number) => n.toLocaleString("en-US");

/** A whole-number option in [min, max]; `fallback` when absent. Throws UsageError naming the range. */
export function intOption(name: string, value: string | undefined, fallback: number, range: IntRange): number {
  if (value === undefined) return fallback;
  const n = /^[+-]?\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < range.min || n > range.max) {
    const unit = range.unit ? ` ${range.unit}` : "";
    throw new UsageError(`--${name} must be a whole number from ${fmt(range.min)} to ${fmt(range.max)}${unit}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** A number option in (above, max]; `fallback` when absent. */
export function numberOption(name: string, value: string | undefined, fallback: number | undefined, range: { above: number; max: number; unit?: string }): number | undefined {
  if (value === undefined) return fallback;
  const n = value.trim() === "" ? NaN : Number(value);
  if (!Number.isFinite(n) || n <= range.above || n > range.max) {
    const unit = range.unit ? ` ${range.unit}` : "";
    throw new UsageError(`--${name} must be a number above ${fmt(range.above)} and at most ${fmt(range.max)}${unit}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** The baud rates a USB serial bridge of an ESP32 board takes (CP210x: 300 to 2,000,000; FTDI higher). */
export const BAUD: IntRange = { min: 300, max: 5_000_000, unit: "bits per second (e.g. 115200)" };

/** A broker URL option: mqtt://host:port or mqtts://host:port, with an optional login; the port in range. */
export function brokerOption(name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const shown = JSON.stringify(value.replace(/\/\/[^@/]*@/, "//***@"));
  const port = /^mqtts?:\/\/(?:[^@/]*@)?(?:\[[^\]]*\]|[^/:]*):(\d+)\/?$/.exec(value)?.[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) throw new UsageError(`--${name}: port ${port} is out of range (1 to 65,535)`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`--${name} must look like mqtt://host:port (or mqtts:// for TLS), got ${shown}`);
  }
  if (url.protocol !== "mqtt:" && url.protocol !== "mqtts:") throw new UsageError(`--${name} must start with mqtt:// or mqtts://, got ${shown}`);
  if (!url.hostname) throw new UsageError(`--${name} has no host, got ${shown}`);
  return value;
}
