// How Espruino shows values on its console (src/jswrap_json.c jsfGetJSONWithCallback), checked
// against the Linux build of 2v29: console.log/print print strings raw and everything else as
// pretty JSON (`{ "a": 1, "b": [ 1, 2 ] }`, `new Uint8Array([1, 2, 3])`, a new line before an item
// that is not a number); the REPL's `=` result drops the quotes of identifier keys (`{ a: 1 }`).
// Numbers print as JavaScript prints them, which can differ from Espruino's in the last digits.

const MAX_DEPTH = 6;

function typedArrayName(value: object): string | undefined {
  const tag = Object.prototype.toString.call(value).slice(8, -1);
  return /^(Ui|I)nt(8|16|32)(Clamped)?Array$|^Float(32|64)Array$/.test(tag) ? tag : undefined;
}

/** `Error: message` — what Espruino prints for an Error (its toString). */
export function errorText(err: unknown): string {
  try {
    if (typeof err === "object" && err !== null && "message" in err) {
      const e = err as { name?: unknown; message?: unknown };
      const name = typeof e.name === "string" && e.name ? e.name : "Error";
      return e.message === undefined || e.message === "" ? name : `${name}: ${String(e.message)}`;
    }
    return typeof err === "string" ? err : safePretty(err, false);
  } catch {
    return "(unprintable value)";
  }
}

/**
 * One console.log/print call's text: strings as they are, other values as Espruino's pretty JSON
 * (jswrap_interface_print: JSON_SOME_NEWLINES | JSON_PRETTY), joined by a space.
 */
export function formatArgs(args: unknown[]): string {
  return args.map((a) => (typeof a === "string" ? a : safePretty(a, false))).join(" ");
}

function safePretty(value: unknown, dropQuotes: boolean): string {
  try {
    return pretty(value, 0, new Set(), dropQuotes);
  } catch {
    return "(unprintable value)";
  }
}

/**
 * What the REPL prints after `=` (jsfGetJSONWithCallback with JSON_SOME_NEWLINES | JSON_PRETTY |
 * JSON_DROP_QUOTES, src/jswrap_json.c): `{ a: 1 }`, `[ 1, 2 ]`, a new line before an item that is
 * not a number (and after four items in a row in an object), indented two spaces a level.
 */
export function replValue(value: unknown): string {
  return safePretty(value, true);
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const ITEMS_ON_LINE = 4;

function needsNewLine(v: unknown): boolean {
  return !(v === undefined || v === null || typeof v === "number" || typeof v === "boolean");
}

function pretty(value: unknown, level: number, seen: Set<object>, dropQuotes: boolean): string {
  if (typeof value === "string") return quoteJS(value);
  if (typeof value === "function") return "function () { ... }";
  if (typeof value !== "object" || value === null) return String(value);
  if (seen.has(value) || level > MAX_DEPTH) return " ... ";
  const typed = typedArrayName(value);
  if (typed) return `new ${typed}([${Array.prototype.join.call(value, ", ")}])`;
  const tag = Object.prototype.toString.call(value).slice(8, -1);
  if (tag === "Error" || value instanceof Error) return errorText(value);
  if (tag === "Date") return `Date: ${String(value)}`;
  if (tag === "ArrayBuffer") return `new Uint8Array([${new Uint8Array(value as ArrayBuffer).join(", ")}]).buffer`;
  seen.add(value);
  try {
    const isArray = Array.isArray(value);
    const entries: [string, unknown][] = isArray
      ? (value as unknown[]).map((v, i) => [String(i), v])
      : Object.keys(value).map((k) => [k, (value as Record<string, unknown>)[k]]);
    const newLine = "\n" + "  ".repeat(level + 1);
    let out = isArray ? "[ " : "{ ";
    let pending = false;
    let sinceNewLine = 0;
    entries.forEach(([k, v], i) => {
      sinceNewLine++;
      if (i > 0) out += ", ";
      const needs = needsNewLine(v);
      if (!isArray && sinceNewLine > ITEMS_ON_LINE) pending = true;
      if (pending || needs) {
        out += newLine;
        sinceNewLine = 0;
      }
      if (!isArray) out += (dropQuotes && (IDENTIFIER.test(k) || /^\d+$/.test(k)) ? k : quoteJS(k)) + ": ";
      out += pretty(v, level + 1, seen, dropQuotes);
      pending = needs;
    });
    if (pending) out += "\n" + "  ".repeat(level);
    return out + (isArray ? " ]" : " }");
  } finally {
    seen.delete(value);
  }
}

const NAMED_ESCAPES: Record<number, string> = { 10: "\\n", 9: "\\t", 8: "\\b", 11: "\\v", 12: "\\f", 13: "\\r", 0x5c: "\\\\", 0x22: '\\"' };

/**
 * A string as Espruino quotes it when it prints a value (src/jsutils.c escapeCharacter, not JSON
 * style): `\n \t \b \v \f \r \\ \"`, `\0`…`\7` before anything but an octal digit, else `\xNN`.
 */
export function quoteJS(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) & 0xff;
    const next = s.charCodeAt(i + 1);
    if (NAMED_ESCAPES[c]) out += NAMED_ESCAPES[c];
    else if (c < 8 && !(next >= 0x30 && next <= 0x37)) out += "\\" + c;
    else if (c < 32 || c >= 127) out += "\\x" + c.toString(16).padStart(2, "0").toUpperCase();
    else out += s[i];
  }
  return out + '"';
}
