// How Espruino's console.log/print show values (jswrap_interface_print → jsfPrintJSON with
// JSON_PRETTY): strings raw at top level, everything else close to Espruino's pretty JSON,
// e.g. `{ "a": 1, "b": [ 1, 2 ] }` and `new Uint8Array([1, 2, 3])`. Approximate: spacing of
// nested multi-line output differs, and numbers print as JavaScript prints them.

const MAX_DEPTH = 6;

function typedArrayName(value: object): string | undefined {
  const tag = Object.prototype.toString.call(value).slice(8, -1);
  return /^(Ui|I)nt(8|16|32)(Clamped)?Array$|^Float(32|64)Array$/.test(tag) ? tag : undefined;
}

function inner(value: unknown, seen: Set<object>, depth: number): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "number":
    case "boolean":
    case "bigint":
      return String(value);
    case "undefined":
      return "undefined";
    case "symbol":
      return value.toString();
    case "function":
      return `function ${value.name || ""}() { ... }`.replace("function  ", "function ");
  }
  if (value === null) return "null";
  const obj = value as object;
  if (seen.has(obj) || depth > MAX_DEPTH) return "...";
  const tag = Object.prototype.toString.call(obj).slice(8, -1);
  if (tag === "Error" || obj instanceof Error) return errorText(obj);
  if (tag === "Date") return `Date: ${String(obj)}`;
  const typed = typedArrayName(obj);
  if (typed) return `new ${typed}([${Array.prototype.join.call(obj, ", ")}])`;
  if (tag === "ArrayBuffer") return `new Uint8Array([${new Uint8Array(obj as ArrayBuffer).join(", ")}]).buffer`;
  seen.add(obj);
  try {
    if (Array.isArray(obj)) {
      if (obj.length === 0) return "[ ]";
      return `[ ${obj.map((v) => inner(v, seen, depth + 1)).join(", ")} ]`;
    }
    const keys = Object.keys(obj);
    if (keys.length === 0) return "{ }";
    const rec = obj as Record<string, unknown>;
    return `{ ${keys.map((k) => `${JSON.stringify(k)}: ${inner(rec[k], seen, depth + 1)}`).join(", ")} }`;
  } finally {
    seen.delete(obj);
  }
}

/** `Error: message` — what Espruino prints for an Error (its toString). */
export function errorText(err: unknown): string {
  try {
    if (typeof err === "object" && err !== null && "message" in err) {
      const e = err as { name?: unknown; message?: unknown };
      const name = typeof e.name === "string" && e.name ? e.name : "Error";
      return e.message === undefined || e.message === "" ? name : `${name}: ${String(e.message)}`;
    }
    return typeof err === "string" ? err : inner(err, new Set(), 0);
  } catch {
    return "(unprintable value)";
  }
}

/** One console.log/print call's text: arguments joined by a space. */
export function formatArgs(args: unknown[]): string {
  return args.map((a) => (typeof a === "string" ? a : safeInner(a))).join(" ");
}

function safeInner(value: unknown): string {
  try {
    return inner(value, new Set(), 0);
  } catch {
    return "(unprintable value)";
  }
}
