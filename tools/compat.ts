// Espruino compatibility check for built bundles.
//
// Runs on the JavaScript esbuild emits (so it sees exactly the bytes the board runs, after
// esbuild has lowered what it can), and maps every finding back to the TypeScript source through
// the bundle's source map. Each rule cites a row of docs/espruino-compat.md (Espruino 2v29,
// measured) or, for what was measured later on the interpreter, docs/espruino-notes.md; nothing is
// rejected that one of them does not mark failing, missing or broken.
//
// Deliberately allowed because neither document lists them: `process`, `global`, `globalThis`
// (Espruino has its own `process` and `global`), optional catch bindings, private class members.
// Add a rule here when a measurement shows one fails. (`.`, `\s`, the `i` flag and class ranges in a
// RegExp were allowed until a topic check passed "a/#\n" on V8 and refused it on Espruino: now the
// regexp rule reports what matches differently on the two engines, so the simulator and the board agree.)

import { parse, type Node } from "acorn";
import { SourceMapConsumer } from "source-map-js";
import * as path from "node:path";

export type RuleId =
  | "class-extends-error"
  | "class-extends-function"
  | "tagged-template"
  | "destructuring"
  | "spread"
  | "rest"
  | "default-param"
  | "computed-key"
  | "missing-global"
  | "bigint-literal"
  | "async"
  | "generator"
  | "optional-chaining"
  | "logical-assignment"
  | "exponent"
  | "label"
  | "missing-api"
  | "length-assignment"
  | "loop-closure"
  | "function-hoisting"
  | "regexp"
  | "bind-args"
  | "emit-args"
  | "non-ascii"
  | "control-byte"
  | "parse-error";

export interface Finding {
  rule: RuleId;
  /** What is wrong, ending with the espruino-compat.md verdict. */
  message: string;
  /** One short way to fix it. */
  hint: string;
  /** Original source (project-relative when the map and options allow), or "<output>" when unmapped. */
  file: string;
  /** 1-based line and column in `file`. */
  line: number;
  column: number;
  /** 1-based position in the emitted JavaScript. */
  generated: { line: number; column: number };
}

export interface CheckOptions {
  /** Directory the map's `sources` are relative to (the output file's directory). */
  mapDir?: string;
  /** Paths in findings are made relative to this directory. */
  root?: string;
  /** Name used for positions the map does not cover (esbuild runtime helpers). */
  outputName?: string;
}

/** `file:line:col: message` plus the fix on the next line. */
export function formatFinding(f: Finding): string {
  return `${f.file}:${f.line}:${f.column}: ${f.message}\n    fix: ${f.hint}`;
}

const DOC = "docs/espruino-compat.md";
const NOTES = "docs/espruino-notes.md";

interface Rule {
  /** Sentence describing the problem, without the verdict. */
  what: (detail: string) => string;
  status: string;
  hint: (detail: string) => string;
  /** Where the measurement is written down, when not espruino-compat.md. */
  doc?: string;
}

const RULES: Record<RuleId, Rule> = {
  "class-extends-error": {
    what: (d) => `\`class extends ${d}\` is broken in Espruino: super(msg) is a SyntaxError, no .message, not instanceof Error`,
    status: "broken",
    hint: () => "give the class its own `message`/`code` fields and extend nothing (or a class of your own)",
  },
  "class-extends-function": {
    what: (d) => `\`class extends ${d}\`, where ${d} is a plain function, is broken in Espruino: super() gives "Function not found!"`,
    status: "broken",
    hint: (d) => `turn ${d} into a \`class\` or use composition`,
  },
  "tagged-template": {
    what: () => "tagged template literals are not supported by Espruino",
    status: "fails",
    hint: () => "call the function with the string and values as ordinary arguments",
  },
  destructuring: {
    what: (d) => `destructuring (${d}) is not supported by Espruino`,
    status: "fails",
    hint: () => "read the fields one by one: `const a = obj.a; const b = obj.b;`",
  },
  spread: {
    what: (d) => `spread \`...\` in ${d} is not supported by Espruino`,
    status: "fails",
    hint: (d) =>
      d === "a call"
        ? "use `fn.apply(thisArg, array)`"
        : d === "an object literal"
          ? "use `Object.assign({}, a, b)`"
          : "use `a.concat(b)` or `arr.slice()`",
  },
  rest: {
    what: (d) => `rest element \`...\` in ${d} is not supported by Espruino`,
    status: "fails",
    hint: (d) => (d === "a parameter list" ? "take an array parameter, or read `arguments`" : "copy the remaining fields/elements explicitly"),
  },
  "default-param": {
    what: () => "default parameter values are not supported by Espruino",
    status: "fails",
    hint: () => "make the parameter optional and write `if (x === undefined) x = ...` in the body",
  },
  "computed-key": {
    what: (d) => `computed property names in ${d} are not supported by Espruino`,
    status: "fails",
    hint: () => "create the object first, then assign `obj[key] = value`",
  },
  "missing-global": {
    what: (d) => `\`${d}\` does not exist in Espruino`,
    status: "missing",
    hint: (d) => MISSING_GLOBALS[d] ?? "avoid it",
  },
  "bigint-literal": {
    what: () => "BigInt literals are not supported by Espruino",
    status: "missing",
    hint: () => "use numbers (exact up to 2^53) or split the value into 32-bit halves",
  },
  async: {
    what: (d) => `${d} is not supported by Espruino`,
    status: "fails",
    hint: () => "use Promise `.then()` chains or callbacks",
  },
  generator: {
    what: (d) => `${d} is not supported by Espruino`,
    status: "fails",
    hint: () => "use an explicit iterator object or a callback per item",
  },
  "optional-chaining": {
    what: () => "optional chaining `?.` is not supported by Espruino",
    status: "fails",
    hint: () => "write `a && a.b` or `a == null ? undefined : a.b` (esbuild lowers `?.` at target es2019; check the build target)",
  },
  "logical-assignment": {
    what: (d) => `\`${d}\` is not supported by Espruino`,
    status: "fails",
    hint: (d) => `write \`x = x ${d.slice(0, -1)} y\` (esbuild lowers it at target es2019; check the build target)`,
  },
  exponent: {
    what: (d) => `\`${d}\` is not supported by Espruino`,
    status: "fails",
    hint: () => "use `Math.pow(a, b)`",
  },
  label: {
    what: () => "labelled statements (labelled break/continue) are not supported by Espruino",
    status: "fails",
    hint: () => "move the inner loop into a function and `return`, or use a flag variable",
  },
  "missing-api": {
    what: (d) => `\`${d}\` does not exist in Espruino`,
    status: "missing",
    hint: (d) => MISSING_API_HINTS[d] ?? "avoid it",
  },
  "length-assignment": {
    what: () => "assigning to `.length` throws \"Assignment to a constant\" in Espruino",
    status: "throws",
    hint: () => "truncate with `arr.splice(n)` (or `arr = arr.slice(0, n)`); if this is your own object, rename the property",
  },
  "loop-closure": {
    what: (d) => `a closure captures \`${d}\`, declared in a \`for (let/const ...)\` head; in Espruino every closure sees the last value`,
    status: "silently wrong",
    hint: (d) => `pass \`${d}\` to a function that creates the closure (\`arr.forEach(function (x) {...})\` or \`make(${d})\`), or copy it into a variable declared outside the loop per call`,
  },
  "function-hoisting": {
    // detail: "name" (a direct use), "callee>name" (a call that runs a use), "!name" (never defined)
    what: (d) => {
      const [callee, name] = d.includes(">") ? d.split(">") : ["", d.replace(/^!/, "")];
      if (d.startsWith("!")) return `\`${name}\` is declared after a return/throw/break at the same level, so Espruino never defines it (no hoisting)`;
      const use = callee ? `${callee} runs here and uses \`${name}\`` : `\`${name}\` is used here`;
      return `${use} before \`function ${name}\` is declared; Espruino does not hoist function declarations (ReferenceError)`;
    },
    status: "throws",
    doc: NOTES,
    hint: (d) => {
      const name = d.split(">").pop()!.replace(/^!/, "");
      return d.startsWith("!")
        ? `move \`function ${name}\` above the return`
        : `move \`function ${name}\` above this statement (declare helpers before the code that runs them)`;
    },
  },
  regexp: {
    // detail: "<feature key> <regex>"
    what: (d) => {
      const at = d.indexOf(" ");
      return `\`${d.slice(at + 1)}\`: ${REGEXP_FEATURES[d.slice(0, at)].what}`;
    },
    status: "broken",
    doc: NOTES,
    hint: (d) => REGEXP_FEATURES[d.slice(0, d.indexOf(" "))].hint,
  },
  "bind-args": {
    what: () => "`fn.bind(thisArg, ...args)` with bound arguments: Espruino drops bound arguments that are undefined, shifting the rest",
    status: "silently wrong",
    doc: NOTES,
    hint: () => "bind only `this` and pass the arguments in a closure or a top-level function: `function () { return fn.call(self, a, b); }`",
  },
  "emit-args": {
    what: (d) => `\`.emit(event, ...)\` with ${d} arguments after the event name: Espruino throws "Too many arguments (>4)" (and still queues the listener with the first 4)`,
    status: "throws",
    doc: NOTES,
    hint: () => "emit at most 4 arguments: pass one object holding the values",
  },
  "non-ascii": {
    what: () => "non-ASCII character in the output; the ESP32 build of Espruino has no Unicode support",
    status: "ESP32 builds lack Unicode support",
    hint: () => "use `\\xNN` escapes; keep esbuild's default `charset` (ascii)",
  },
  "control-byte": {
    what: (d) => `raw control byte ${d} in the output; an upload over the console sends it as it is`,
    status: "0x03 is Ctrl-C even inside a packet, 0x04 ends the Linux build, 0x11/0x13 are XON/XOFF",
    doc: "docs/espruino-compat.md, the console",
    hint: () => "the build escapes control bytes in literals (tools/build.ts escapeControlBytes); write `\\xNN` in the source",
  },
  "parse-error": {
    what: (d) => `the output does not parse: ${d}`,
    status: "n/a",
    hint: () => "this is a build bug; report it with the entry file",
  },
};

const MISSING_GLOBALS: Record<string, string> = {
  Map: "use a plain object with string keys (`Object.create(null)` is not needed: prefix keys) or parallel arrays",
  Set: "use an object whose keys are the members, or an array with `includes`",
  Symbol: "use a string property name",
  WeakMap: "store the value on the object itself in a property ending in `_`",
  WeakSet: "mark the object with a property ending in `_`",
  Proxy: "write explicit getter/setter methods",
  Reflect: "use `Object.keys`, `Object.defineProperty`, `fn.apply`",
  BigInt: "use numbers (exact up to 2^53) or split the value into 32-bit halves",
  TextEncoder: "bytes are chars on Espruino: use the string itself, or `E.toUint8Array(str)`",
  TextDecoder: "use `E.toString(bytes)` (or `String.fromCharCode.apply(null, bytes)`)",
  Buffer: "use `Uint8Array`, `E.toString`, `E.toUint8Array`",
};

const ERROR_CLASSES = new Set(["Error", "TypeError", "RangeError", "SyntaxError", "ReferenceError", "EvalError", "URIError", "InternalError"]);

/** `Object.member` reads that Espruino lacks, keyed by the global object's name. */
const MISSING_STATICS: Record<string, string[]> = {
  Array: ["from"],
  Uint8Array: ["from"],
  Object: ["freeze"],
  Number: ["isInteger", "isNaN", "isFinite", "isSafeInteger"],
  Math: ["trunc"],
};

const MISSING_API_HINTS: Record<string, string> = {
  "Array.from": "use a `for` loop, or `Array.prototype.slice.call(x)` for array-likes",
  "Uint8Array.from": "use `new Uint8Array(arrayOrLength)`, or `E.toUint8Array(...)`",
  "Object.freeze": "drop it (use `as const` for types); Espruino cannot freeze",
  "Number.isInteger": "use `typeof x === \"number\" && x % 1 === 0`",
  "Number.isNaN": "use `x !== x`",
  "Number.isFinite": "use `typeof x === \"number\" && isFinite(x)`",
  "Number.isSafeInteger": "use `typeof x === \"number\" && x % 1 === 0 && Math.abs(x) <= 9007199254740991`",
  "Math.trunc": "use `x < 0 ? Math.ceil(x) : Math.floor(x)` (or `x | 0` below 2^31)",
  ".flat()": "concatenate in a loop: `out = out.concat(part)`",
  ".at()": "use `arr[arr.length - 1]` / `arr[i < 0 ? arr.length + i : i]`",
};

/**
 * What Espruino 2v29's RegExp engine (src/jswrap_regexp.c, a backtracking matcher over the source
 * text) gets wrong, each measured against Node on the ESP32-layout build (docs/espruino-notes.md).
 * It handles literal characters, `.`, `[...]` with ranges, `\d \w \s \xNN` and escaped
 * punctuation, `*` and `+` after one of those, `^`, `$`, plain groups and top-level `|`.
 */
const REGEXP_FEATURES: Record<string, { what: string; hint: string }> = {
  optional: {
    what: "the `?` quantifier is matched as a literal `?`, so the pattern never matches what it means",
    hint: "write the alternatives out at top level (`/^ab$|^b$/` for `/^ab?$/`) or test the optional part in code",
  },
  counted: {
    what: "`{n}`/`{n,m}` quantifiers are matched as literal text",
    hint: "repeat the atom (`\\d\\d\\d\\d`), or use `+` and check `.length` in code",
  },
  lazy: {
    what: "lazy quantifiers (`*?`, `+?`) never match",
    hint: "use a negated class: `/a[^b]*b/` instead of `/a.*?b/`",
  },
  "group-quantifier": {
    what: "a quantifier after a group applies to nothing (`/^(ab)+$/` never matches \"abab\")",
    hint: "repeat in code (a loop, or the `g` flag with `match`), or quantify a character class",
  },
  "group-alternation": {
    what: "`|` inside a group: Espruino splits the whole pattern at every `|`, ignoring parentheses (`/^(a|b)$/` accepts \"ax\", `/^a(b|c)d$/` rejects \"acd\")",
    hint: "use a class for single characters (`/^a[bc]d$/`) or write whole alternatives at top level (`/^abd$|^acd$/`)",
  },
  "special-group": {
    what: "`(?:`, `(?=`, `(?!`, `(?<=`, `(?<!` and `(?<name>` groups are not supported (the `?` is read literally)",
    hint: "use a plain group (or none), and test what follows or precedes the match in code",
  },
  "nested-group": {
    what: "nested groups: a `)` closes the most recently opened group, so the outer group captures \"\"",
    hint: "use one level of groups and build the larger part from the match in code",
  },
  "many-groups": {
    what: "more than 9 groups: Espruino keeps 9 and the captures come out wrong",
    hint: "use at most 9 groups, or split the pattern",
  },
  "word-boundary": {
    what: "`\\b` matches a backspace character and `\\B` the letter B, not word boundaries",
    hint: "match the separator itself (`\\W`, `[ ,]`) or check the neighbouring characters in code",
  },
  backreference: {
    what: "backreferences (`\\1`...) throw \"Backreferences not supported\"",
    hint: "capture the groups and compare them in code",
  },
  "unicode-escape": {
    what: "`\\uXXXX` matches the letter u followed by the digits",
    hint: "use `\\xNN` (ESP32 builds have no Unicode: characters are bytes)",
  },
  "anchored-alternative": {
    what: "`^` starts an alternative and a later one has none: when `^` fails Espruino gives up without trying the rest (`/^a|b/` does not match \"xb\")",
    hint: "anchor every alternative or none, or test two regexes",
  },
  "slash-in-class": {
    what: "an unescaped `/` inside `[...]` ends the regex literal in Espruino's lexer (SyntaxError when the module loads)",
    hint: "escape it: `[^\\/]`",
  },
  "after-paren": {
    what: "a regex literal right after `)` is read as a division by Espruino's lexer (SyntaxError)",
    hint: "put the regex in parentheses or in a variable",
  },
  "flag-syntax": {
    what: "Espruino's lexer accepts only the flags g, i, m, y, u after a regex literal (SyntaxError); `.` already matches \"\\n\"",
    hint: "drop the flag (for `s`: Espruino's `.` matches any character; for `d`: use `match.index`)",
  },
  "flag-ignored": {
    what: "the `m` and `y` flags are ignored: `^`/`$` match only at the ends of the string, and matching is not sticky",
    hint: "split the text into lines first (`m`), or slice at `lastIndex` and anchor with `^` (`y`)",
  },
  // The rest match on both engines but not the same strings: the simulator (V8) would pass or refuse
  // what the board refuses or passes.
  dot: {
    what: "`.` matches \"\\n\" and \"\\r\" on Espruino but not on V8, so the simulator and the board disagree on such input",
    hint: "say which: `[^]` for any character, `[^\\n\\r]` for V8's meaning, or a class of what may occur (`\\w`)",
  },
  space: {
    what: "`\\s`/`\\S`: Espruino's whitespace is tab, \\n, \\v, \\f, \\r and space; V8's also \"\\xa0\" and Unicode spaces",
    hint: "list the characters: `[ \\t\\n\\v\\f\\r]`",
  },
  "high-range": {
    what: "a class range from below 0x80 to 0x80 or above never matches on Espruino (it compares signed chars)",
    hint: "split the range at 0x80: `[\\x00-\\x7f\\x80-\\xff]`",
  },
  "negated-plus": {
    what: "a negated class with `+` also matches at the end of the string on Espruino, as if the end were a character: `/^[^:]+$/.test(\"\")` and `/x[^:]+/.test(\"x\")` are true there, false on V8",
    hint: "test for the empty case apart (`s && !/[:]/.test(s)`), or make the class positive",
  },
  "case-fold": {
    what: "the `i` flag folds only ASCII letters on Espruino; V8 also folds others (`/\\xe9/i` matches \"\\xc9\" on V8 only)",
    hint: "list both cases of non-ASCII letters in a class, without the `i` flag",
  },
};

/** Char code of the class atom at `pattern[i]` (a character, `\xNN` or a control escape), or -1. */
function classAtom(pattern: string, i: number): number {
  if (pattern[i] !== "\\") return pattern.charCodeAt(i);
  const e = pattern[i + 1];
  if (e === "x") return parseInt(pattern.slice(i + 2, i + 4), 16);
  const control = "0tnvfr".indexOf(e);
  return control < 0 ? -1 : [0, 9, 10, 11, 12, 13][control];
}

/** REGEXP_FEATURES keys that apply to a pattern, each once, in the order first found. */
export function regexpProblems(pattern: string, flags: string, literal: boolean): string[] {
  const found = new Set<string>();
  // Open groups: capturing or not, and whether a `|` was seen inside.
  const groups: { capturing: boolean; alternation: boolean }[] = [];
  let groupCount = 0;
  let quantifiable: "atom" | "group" | "negated" | null = null;
  let negated = false;
  let inClass = false;
  let anchors = false;
  // Per top-level alternative: does it start with `^`?
  const anchored: boolean[] = [pattern[0] === "^"];
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (pattern.charCodeAt(i) > 127 && flags.includes("i")) found.add("case-fold");
    const atom = c !== "\\" ? 1 : pattern[i + 1] === "x" ? 4 : 2;
    if (inClass && pattern[i + atom] === "-" && pattern[i + atom + 1] !== "]") {
      // a range: Espruino compares its ends and the character as signed chars (jswrap_regexp.c)
      const low = classAtom(pattern, i),
        high = classAtom(pattern, i + atom + 1);
      if (low >= 0 && low < 0x80 && high >= 0x80) found.add("high-range");
    }
    if (c === "\\") {
      const e = pattern[++i] ?? "";
      if (e === "x") {
        if (parseInt(pattern.slice(i + 1, i + 3), 16) > 127 && flags.includes("i")) found.add("case-fold");
        i += 2;
      }
      if (e === "s" || e === "S") found.add("space");
      else if (e === "u") found.add("unicode-escape");
      else if (!inClass && (e === "b" || e === "B")) found.add("word-boundary");
      else if (!inClass && e >= "1" && e <= "9") found.add("backreference");
      quantifiable = "atom";
      continue;
    }
    if (inClass) {
      if (c === "]") {
        inClass = false;
        if (negated) quantifiable = "negated";
      }
      else if (c === "/" && literal) found.add("slash-in-class");
      continue;
    }
    switch (c) {
      case "[":
        inClass = true;
        negated = pattern[i + 1] === "^";
        // `]` right after `[` or `[^` is a member in Espruino but closes an empty class in JS; both are rare.
        quantifiable = "atom";
        break;
      case "(": {
        const special = pattern[i + 1] === "?";
        if (special) {
          found.add("special-group");
          i += pattern[i + 2] === "<" && pattern[i + 3] !== "=" && pattern[i + 3] !== "!" ? pattern.indexOf(">", i) - i : pattern[i + 2] === "<" ? 3 : 2;
        }
        if (groups.length && !special && groups[groups.length - 1].capturing) found.add("nested-group");
        groups.push({ capturing: !special, alternation: false });
        if (++groupCount > 9) found.add("many-groups");
        quantifiable = null;
        break;
      }
      case ")": {
        const g = groups.pop();
        if (g && g.alternation) found.add("group-alternation");
        quantifiable = "group";
        break;
      }
      case "|":
        if (groups.length) groups[groups.length - 1].alternation = true;
        else anchored.push(pattern[i + 1] === "^");
        quantifiable = null;
        break;
      case ".":
        if (!flags.includes("s")) found.add("dot");
        quantifiable = "atom";
        break;
      case "^":
      case "$":
        anchors = true;
        quantifiable = null;
        break;
      case "*":
      case "+":
      case "?":
      case "{": {
        const counted = c === "{" ? /^\{\d+(,\d*)?\}/.exec(pattern.slice(i)) : null;
        if (c === "{" && !counted) {
          quantifiable = "atom"; // a literal `{`, as in JS without the u flag
          break;
        }
        if (!quantifiable) break; // not a quantifier (JS would not have parsed it)
        if (c === "?") found.add("optional");
        else if (counted) found.add("counted");
        else if (quantifiable === "group") found.add("group-quantifier");
        else if (quantifiable === "negated" && c === "+") found.add("negated-plus");
        if (counted) i += counted[0].length - 1;
        if (pattern[i + 1] === "?") {
          found.add("lazy");
          i++;
        }
        quantifiable = null;
        break;
      }
      default:
        quantifiable = "atom";
    }
  }
  if (anchored.some((a, k) => a && anchored.slice(k + 1).some((b) => !b))) found.add("anchored-alternative");
  for (const f of flags) {
    if (literal && "gimyu".indexOf(f) < 0) found.add("flag-syntax");
    if (f === "y" || (f === "m" && anchors)) found.add("flag-ignored");
  }
  return [...found];
}

// ---------------------------------------------------------------------------------------------
// Scopes: just enough name resolution to tell globals from locals and to find loop bindings.

interface Binding {
  kind: "var" | "let" | "const" | "function" | "class" | "param" | "catch" | "name";
  /** FunctionDeclaration / FunctionExpression the name is bound to, if statically known. */
  fn?: Node;
  /** The for/for-in/for-of statement whose head declared this let/const. */
  loop?: Node;
  /** What a call or `new` of the name runs: a function (declaration, or a var initialised with one) or a class. */
  runs?: Node;
}

interface Scope {
  node: Node | null;
  parent: Scope | null;
  isFunction: boolean;
  names: Map<string, Binding>;
}

type AnyNode = Node & Record<string, any>;

/** Array methods that call their callback before returning. */
const SYNC_CALLBACK_METHODS = ["forEach", "map", "filter", "some", "every", "reduce", "reduceRight", "find", "findIndex", "sort"];

const FUNCTION_TYPES = new Set(["FunctionDeclaration", "FunctionExpression", "ArrowFunctionExpression"]);
const LOOP_TYPES = new Set(["ForStatement", "ForInStatement", "ForOfStatement"]);

function children(node: AnyNode, visit: (child: AnyNode, key: string) => void): void {
  for (const key in node) {
    if (key === "type" || key === "start" || key === "end" || key === "loc") continue;
    const value = node[key];
    if (Array.isArray(value)) {
      for (const item of value) if (item && typeof item.type === "string") visit(item, key);
    } else if (value && typeof value.type === "string") {
      visit(value, key);
    }
  }
}

function patternNames(pattern: AnyNode, out: AnyNode[] = []): AnyNode[] {
  switch (pattern.type) {
    case "Identifier":
      out.push(pattern);
      break;
    case "ObjectPattern":
      for (const p of pattern.properties) patternNames(p.type === "RestElement" ? p : p.value, out);
      break;
    case "ArrayPattern":
      for (const e of pattern.elements) if (e) patternNames(e, out);
      break;
    case "RestElement":
      patternNames(pattern.argument, out);
      break;
    case "AssignmentPattern":
      patternNames(pattern.left, out);
      break;
  }
  return out;
}

function functionScopeOf(scope: Scope): Scope {
  let s = scope;
  while (!s.isFunction && s.parent) s = s.parent;
  return s;
}

/** Pass 1: create a scope for every scope-making node and declare the names bound in it. */
function buildScopes(program: AnyNode): Map<Node, Scope> {
  const scopes = new Map<Node, Scope>();
  const newScope = (node: Node, parent: Scope | null, isFunction: boolean): Scope => {
    const s: Scope = { node, parent, isFunction, names: new Map() };
    scopes.set(node, s);
    return s;
  };
  const declare = (scope: Scope, pattern: AnyNode, binding: Binding) => {
    for (const id of patternNames(pattern)) scope.names.set(id.name, binding);
  };

  const visit = (node: AnyNode, scope: Scope, parent: AnyNode | null, key: string) => {
    let inner = scope;
    switch (node.type) {
      case "FunctionDeclaration":
      case "FunctionExpression":
      case "ArrowFunctionExpression": {
        let outer = scope;
        if (node.type === "FunctionDeclaration" && node.id) scope.names.set(node.id.name, { kind: "function", fn: node, runs: node });
        if (node.type === "FunctionExpression" && node.id) {
          // A named function expression sees its own name in a scope between it and its parent.
          outer = { node: null, parent: scope, isFunction: false, names: new Map([[node.id.name, { kind: "name" as const, fn: node }]]) };
        }
        inner = newScope(node, outer, true);
        for (const p of node.params) declare(inner, p, { kind: "param" });
        break;
      }
      case "ClassDeclaration":
        if (node.id) scope.names.set(node.id.name, { kind: "class", runs: node });
        inner = newScope(node, scope, false);
        break;
      case "ClassExpression":
        inner = newScope(node, scope, false);
        if (node.id) inner.names.set(node.id.name, { kind: "class" });
        break;
      case "BlockStatement":
        // A function body shares the function's scope (parameters and body are one scope for our purpose).
        if (!(parent && FUNCTION_TYPES.has(parent.type) && key === "body")) inner = newScope(node, scope, false);
        break;
      case "StaticBlock":
        inner = newScope(node, scope, true);
        break;
      case "ForStatement":
      case "ForInStatement":
      case "ForOfStatement":
      case "SwitchStatement":
        inner = newScope(node, scope, false);
        break;
      case "CatchClause":
        inner = newScope(node, scope, false);
        if (node.param) declare(inner, node.param, { kind: "catch" });
        break;
      case "VariableDeclaration": {
        const kind = node.kind as "var" | "let" | "const";
        const target = kind === "var" ? functionScopeOf(scope) : scope;
        const loop = kind !== "var" && parent && LOOP_TYPES.has(parent.type) && (key === "init" || key === "left") ? parent : undefined;
        for (const d of node.declarations) {
          const init = d.id.type === "Identifier" ? d.init : null;
          const fn = init && init.type === "FunctionExpression" ? init : undefined;
          const runs = init && (FUNCTION_TYPES.has(init.type) || init.type === "ClassExpression") ? init : undefined;
          declare(target, d.id, { kind, fn, loop, runs });
        }
        break;
      }
    }
    children(node, (child, childKey) => visit(child, inner, node, childKey));
  };

  visit(program, newScope(program, null, true), null, "");
  return scopes;
}

function lookup(scope: Scope | null, name: string): { binding: Binding; scope: Scope } | null {
  for (let s = scope; s; s = s.parent) {
    const b = s.names.get(name);
    if (b) return { binding: b, scope: s };
  }
  return null;
}

/** True when the identifier at (parent, key) is a name rather than a variable reference. */
function isNotReference(parent: AnyNode | null, key: string): boolean {
  if (!parent) return false;
  switch (parent.type) {
    case "MemberExpression":
      return key === "property" && !parent.computed;
    case "Property":
    case "MethodDefinition":
    case "PropertyDefinition":
      return key === "key" && !parent.computed;
    case "LabeledStatement":
    case "BreakStatement":
    case "ContinueStatement":
      return key === "label";
    case "MetaProperty":
      return true;
  }
  return false;
}

function staticPropertyName(member: AnyNode): string | null {
  if (!member.computed && member.property.type === "Identifier") return member.property.name;
  if (member.computed && member.property.type === "Literal" && typeof member.property.value === "string") return member.property.value;
  return null;
}

// ---------------------------------------------------------------------------------------------

/**
 * Checks emitted JavaScript against espruino-compat.md. With `map` (the esbuild source map as
 * JSON text) findings point at the original TypeScript; without it, at the JavaScript itself.
 */
export function checkEspruinoCompat(js: string, map?: string, options: CheckOptions = {}): Finding[] {
  const outputName = options.outputName ?? "<output>";
  const consumer = map ? new SourceMapConsumer(JSON.parse(map)) : null;
  const findings: Finding[] = [];

  const locate = (line: number, column0: number) => {
    const generated = { line, column: column0 + 1 };
    if (!consumer) return { file: outputName, line, column: column0 + 1, generated };
    // Nearest mapping at or before the position; esbuild's runtime helpers have none.
    const pos = consumer.originalPositionFor({ line, column: column0 });
    if (pos.source == null) return { file: `${outputName} (esbuild helper)`, line, column: column0 + 1, generated };
    let file = pos.source;
    if (options.mapDir) {
      const abs = path.resolve(options.mapDir, file);
      file = options.root ? path.relative(options.root, abs).split(path.sep).join("/") : abs;
    }
    return { file, line: pos.line, column: pos.column + 1, generated };
  };

  /** The identifier's name in the TypeScript source (the minifier renamed it). */
  const originalName = (id: AnyNode): string =>
    (consumer && consumer.originalPositionFor({ line: id.loc!.start.line, column: id.loc!.start.column }).name) || id.name;

  const report = (rule: RuleId, node: AnyNode, detail = "") => {
    const r = RULES[rule];
    const where = locate(node.loc!.start.line, node.loc!.start.column);
    findings.push({ rule, message: `${r.what(detail)} (${r.doc ?? DOC}: ${r.status})`, hint: r.hint(detail), ...where });
  };

  for (let i = 0; i < js.length; i++) {
    const c = js.charCodeAt(i);
    if (c < 0x20 && c !== 0x0a) {
      const before = js.slice(0, i);
      const r = RULES["control-byte"];
      const d = "0x" + c.toString(16).padStart(2, "0");
      findings.push({ rule: "control-byte", message: `${r.what(d)} (${r.doc}: ${r.status})`, hint: r.hint(d), ...locate(before.split("\n").length, i - (before.lastIndexOf("\n") + 1)) });
      break;
    }
  }
  for (let i = 0; i < js.length; i++) {
    if (js.charCodeAt(i) > 0x7e) {
      const before = js.slice(0, i);
      const line = before.split("\n").length;
      const column0 = i - (before.lastIndexOf("\n") + 1);
      const r = RULES["non-ascii"];
      findings.push({ rule: "non-ascii", message: `${r.what("")} (${DOC}: ${r.status})`, hint: r.hint(""), ...locate(line, column0) });
      break;
    }
  }

  let program: AnyNode;
  try {
    program = parse(js, { ecmaVersion: "latest", sourceType: "script", locations: true, allowReturnOutsideFunction: true }) as AnyNode;
  } catch (e) {
    const err = e as SyntaxError & { loc?: { line: number; column: number } };
    const loc = err.loc ?? { line: 1, column: 0 };
    const r = RULES["parse-error"];
    findings.push({ rule: "parse-error", message: r.what(err.message), hint: r.hint(""), ...locate(loc.line, loc.column) });
    return findings;
  }

  const scopes = buildScopes(program);
  // One loop-closure finding per (closure created in the loop, captured binding).
  const reportedCaptures = new Map<Node, Set<Binding>>();
  const nestedPatterns = new WeakSet<Node>();
  const markNested = (node: AnyNode) =>
    children(node, (child) => {
      if (child.type === "ObjectPattern" || child.type === "ArrayPattern") nestedPatterns.add(child);
      if (!FUNCTION_TYPES.has(child.type)) markNested(child);
    });


  // Function hoisting. Espruino defines a function when execution reaches its declaration
  // (src/jsparse.c jspeStatementFunctionDecl), so a use that runs earlier throws ReferenceError.
  // For each statement list, every statement before a declaration is walked as it runs: nested
  // function bodies are skipped (they usually run later) unless this statement calls them.
  const declarations = new Map<Node, { list: AnyNode[]; index: number; unreachable: boolean }>();
  const reportedHoisting = new Set<string>();
  const reportHoisting = (at: AnyNode, detail: string) => {
    const id = `${at.start}:${detail}`;
    if (!reportedHoisting.has(id)) {
      reportedHoisting.add(id);
      report("function-hoisting", at, detail);
    }
  };

  const checkHoisting = (list: AnyNode[], scope: Scope) => {
    let exited = false;
    let last = -1;
    list.forEach((stmt, index) => {
      if (stmt.type === "FunctionDeclaration") {
        declarations.set(stmt, { list, index, unreachable: exited });
        if (!exited) last = index;
      } else if (/^(Return|Throw|Break|Continue)Statement$/.test(stmt.type)) exited = true;
    });
    for (let k = 0; k < last; k++) {
      if (list[k].type !== "FunctionDeclaration") runs(list[k], scope, null, "", { list, k, site: null, entered: new Set() });
    }
  };

  interface Run {
    list: AnyNode[];
    /** Index in `list` of the statement running now. */
    k: number;
    /** Outermost call in that statement through which we got here, if any. */
    site: AnyNode | null;
    entered: Set<Node>;
  }

  const runs = (node: AnyNode, scope: Scope, parent: AnyNode | null, key: string, run: Run): void => {
    const inner = scopes.get(node) ?? scope;
    if (FUNCTION_TYPES.has(node.type)) return;
    if (node.type === "Identifier") {
      if (isNotReference(parent, key) || key === "id") return;
      const found = lookup(scope, node.name);
      const decl = found && found.binding.fn && declarations.get(found.binding.fn);
      if (decl && decl.list === run.list && !decl.unreachable && decl.index > run.k) {
        const name = originalName(node);
        reportHoisting(run.site ? run.site.callee : node, run.site ? `${describeCall(run.site)}>${name}` : name);
      }
      return;
    }
    if (node.type === "ClassDeclaration" || node.type === "ClassExpression") {
      // Only the heritage, computed keys and static parts run when the class is defined.
      if (node.superClass) runs(node.superClass, scope, node, "superClass", run);
      for (const m of node.body.body as AnyNode[]) {
        if (m.computed) runs(m.key, inner, m, "key", run);
        if (m.type === "StaticBlock") runs(m, inner, node, "body", run);
        else if (m.type === "PropertyDefinition" && m.static && m.value) runs(m.value, inner, m, "value", run);
      }
      return;
    }
    if (node.type === "CallExpression" || node.type === "NewExpression") {
      for (const target of calledNow(node, scope)) {
        if (run.entered.has(target)) continue;
        run.entered.add(target);
        enter(target, { ...run, site: run.site ?? node });
      }
    }
    children(node, (child, childKey) => runs(child, inner, node, childKey, run));
  };

  /** Runs the body of a function, or the constructor and instance fields of a class. */
  const enter = (target: AnyNode, run: Run) => {
    const own = scopes.get(target)!;
    if (FUNCTION_TYPES.has(target.type)) return runs(target.body, own, target, "body", run);
    for (const m of target.body.body as AnyNode[]) {
      if (m.kind === "constructor") enter(m.value, run);
      else if (m.type === "PropertyDefinition" && !m.static && m.value) runs(m.value, own, m, "value", run);
    }
  };

  /** Functions and classes a call or `new` runs before it returns (as far as is statically known). */
  const calledNow = (call: AnyNode, scope: Scope): AnyNode[] => {
    const known = (e: AnyNode | undefined): AnyNode | undefined => {
      if (!e) return undefined;
      if (FUNCTION_TYPES.has(e.type) || e.type === "ClassExpression") return e;
      if (e.type === "Identifier") return lookup(scope, e.name)?.binding.runs as AnyNode | undefined;
      return undefined;
    };
    const callee = call.callee as AnyNode;
    const out: (AnyNode | undefined)[] = [known(callee)];
    if (callee.type === "MemberExpression") {
      const name = staticPropertyName(callee);
      if (name === "call" || name === "apply") out.push(known(callee.object));
      if (name && SYNC_CALLBACK_METHODS.includes(name)) out.push(known(call.arguments[0]));
    }
    if (call.type === "NewExpression" && callee.type === "Identifier" && callee.name === "Promise" && !lookup(scope, "Promise")) out.push(known(call.arguments[0]));
    const isClass = (f: AnyNode) => f.type === "ClassDeclaration" || f.type === "ClassExpression";
    return out.filter((f): f is AnyNode => !!f && (!isClass(f) || call.type === "NewExpression"));
  };

  const describeCall = (call: AnyNode): string => {
    const callee = call.callee as AnyNode;
    if (callee.type === "Identifier") return `\`${call.type === "NewExpression" ? "new " : ""}${originalName(callee)}()\``;
    const name = callee.type === "MemberExpression" && staticPropertyName(callee);
    if (name === "call" || name === "apply") return `\`${callee.object.type === "Identifier" ? originalName(callee.object) : "..."}.${name}()\``;
    if (name) return `the callback of \`.${name}()\``;
    return "this immediately called function";
  };

  const visit = (node: AnyNode, scope: Scope, parent: AnyNode | null, key: string) => {
    const inner = scopes.get(node) ?? scope;

    switch (node.type) {
      case "Identifier": {
        if (isNotReference(parent, key)) break;
        const found = lookup(scope, node.name);
        if (!found) {
          const typeofGuard = parent && parent.type === "UnaryExpression" && parent.operator === "typeof";
          if (node.name in MISSING_GLOBALS && !typeofGuard) report("missing-global", node, node.name);
          break;
        }
        if (found.binding.loop) checkLoopCapture(node, scope, found.scope, found.binding);
        if (key !== "id" && found.binding.fn && declarations.get(found.binding.fn)?.unreachable) reportHoisting(node, "!" + originalName(node));
        break;
      }
      case "ClassDeclaration":
      case "ClassExpression": {
        const sup = node.superClass as AnyNode | null;
        if (sup && sup.type === "Identifier") {
          // Resolved from the class's outer scope; only names whose binding is statically known are judged.
          const found = lookup(scope, sup.name);
          if (!found && ERROR_CLASSES.has(sup.name)) report("class-extends-error", node, sup.name);
          else if (found && found.binding.fn) report("class-extends-function", node, originalName(sup));
        }
        break;
      }
      case "TaggedTemplateExpression":
        report("tagged-template", node);
        break;
      case "ObjectPattern":
      case "ArrayPattern":
        // One finding per destructuring, not one per nested pattern.
        if (!nestedPatterns.has(node)) {
          report("destructuring", node, destructuringContext(parent, key));
          markNested(node);
        }
        break;
      case "SpreadElement":
        report("spread", node, parent && (parent.type === "CallExpression" || parent.type === "NewExpression") ? "a call" : parent && parent.type === "ObjectExpression" ? "an object literal" : "an array literal");
        break;
      case "RestElement":
        // Rest inside a pattern is part of a destructuring finding.
        if (parent && FUNCTION_TYPES.has(parent.type)) report("rest", node, "a parameter list");
        break;
      case "AssignmentPattern":
        if (parent && FUNCTION_TYPES.has(parent.type) && key === "params") report("default-param", node);
        break;
      case "Property":
        if (node.computed && parent && parent.type === "ObjectExpression") report("computed-key", node.key, "object literals");
        break;
      case "MethodDefinition":
      case "PropertyDefinition":
        if (node.computed) report("computed-key", node.key, "classes");
        break;
      case "Literal":
        if (node.bigint !== undefined) report("bigint-literal", node);
        if (node.regex) {
          const problems = regexpProblems(node.regex.pattern, node.regex.flags, true);
          if (/\)\s*$/.test(js.slice(Math.max(0, node.start - 20), node.start))) problems.push("after-paren");
          for (const p of problems) report("regexp", node, `${p} ${node.raw}`);
        }
        break;
      case "Program":
      case "BlockStatement":
      case "StaticBlock":
        checkHoisting(node.body, inner);
        break;
      case "SwitchStatement":
        checkHoisting(node.cases.flatMap((c: AnyNode) => c.consequent), inner);
        break;
      case "FunctionDeclaration":
      case "FunctionExpression":
      case "ArrowFunctionExpression":
        if (node.async && node.generator) report("async", node, "an async generator function");
        else if (node.async) report("async", node, "an async function");
        else if (node.generator) report("generator", node, "a generator function");
        break;
      case "AwaitExpression":
        report("async", node, "`await`");
        break;
      case "ForOfStatement":
        if (node.await) report("async", node, "`for await`");
        break;
      case "YieldExpression":
        report("generator", node, "`yield`");
        break;
      case "ChainExpression":
        report("optional-chaining", node);
        break;
      case "AssignmentExpression":
        if (node.operator === "||=" || node.operator === "&&=" || node.operator === "??=") report("logical-assignment", node, node.operator);
        else if (node.operator === "**=") report("exponent", node, "**=");
        if (node.left.type === "MemberExpression" && staticPropertyName(node.left) === "length") report("length-assignment", node.left);
        break;
      case "UpdateExpression":
        if (node.argument.type === "MemberExpression" && staticPropertyName(node.argument) === "length") report("length-assignment", node.argument);
        break;
      case "BinaryExpression":
        if (node.operator === "**") report("exponent", node, "**");
        break;
      case "LabeledStatement":
        report("label", node);
        break;
      case "MemberExpression": {
        const name = staticPropertyName(node);
        if (name && node.object.type === "Identifier" && MISSING_STATICS[node.object.name]?.includes(name) && !lookup(scope, node.object.name)) {
          report("missing-api", node, `${node.object.name}.${name}`);
        }
        break;
      }
      case "CallExpression":
      case "NewExpression": {
        const callee = node.callee as AnyNode;
        const args = node.arguments as AnyNode[];
        if (callee.type === "MemberExpression" && node.type === "CallExpression") {
          const name = staticPropertyName(callee);
          if (name === "flat" || name === "at") report("missing-api", callee.property, `.${name}()`);
          if (name === "bind" && args.length > 1) report("bind-args", callee.property);
          if (name === "emit" && args.length > 5) report("emit-args", callee.property, String(args.length - 1));
        }
        if (callee.type === "Identifier" && callee.name === "RegExp" && !lookup(scope, "RegExp")) {
          const [source, flags] = args;
          if (source && source.type === "Literal" && typeof source.value === "string") {
            const f = flags && flags.type === "Literal" && typeof flags.value === "string" ? flags.value : "";
            for (const p of regexpProblems(source.value, f, false)) report("regexp", node, `${p} ${js.slice(node.start, node.end)}`);
          }
        }
        break;
      }
    }

    children(node, (child, childKey) => visit(child, inner, node, childKey));
  };

  // A reference to a for-head binding from inside a function created within the loop.
  const checkLoopCapture = (id: AnyNode, from: Scope, bindingScope: Scope, binding: Binding) => {
    let closure: Scope | null = null;
    for (let s: Scope | null = from; s && s !== bindingScope; s = s.parent) if (s.isFunction) closure = s;
    if (!closure) return;
    const closureNode = closure.node!;
    let seen = reportedCaptures.get(closureNode);
    if (!seen) reportedCaptures.set(closureNode, (seen = new Set()));
    if (seen.has(binding)) return;
    seen.add(binding);
    const where = locate(id.loc!.start.line, id.loc!.start.column);
    const name = originalName(id);
    const r = RULES["loop-closure"];
    findings.push({ rule: "loop-closure", message: `${r.what(name)} (${DOC}: ${r.status})`, hint: r.hint(name), ...where });
  };

  visit(program, scopes.get(program)!, null, "");

  findings.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.column - b.column));
  return findings;
}

function destructuringContext(parent: AnyNode | null, key: string): string {
  if (!parent) return "pattern";
  if (parent.type === "VariableDeclarator") return "declaration";
  if (parent.type === "AssignmentExpression") return "assignment";
  if (FUNCTION_TYPES.has(parent.type) && key === "params") return "parameter";
  if (parent.type === "CatchClause") return "catch parameter";
  if (LOOP_TYPES.has(parent.type)) return "loop head";
  return "pattern";
}
