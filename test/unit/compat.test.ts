// The Espruino compatibility check: every rule, run on fixtures bundled with the build's own
// esbuild settings, must name the rule and the TypeScript file and line that caused it.
import { readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { BuildError, bundle, checkBundle, PROJECT_ROOT } from "../../tools/build.ts";
import { checkEspruinoCompat, formatFinding, regexpProblems, type Finding } from "../../tools/compat.ts";

const FIXTURES = "test/fixtures/compat";
const PASSING = ["clean.ts", "lowered.ts", "espruino-ok.ts"];

/** `// expect: <rule>` markers: the finding the line must produce. */
function markers(file: string): string[] {
  return readFileSync(path.join(PROJECT_ROOT, file), "utf8")
    .split("\n")
    .flatMap((text, i) => [...text.matchAll(/\/\/ expect: ([a-z-]+)/g)].map((m) => `${file}:${i + 1} ${m[1]}`));
}

async function findingsFor(entry: string): Promise<{ findings: Finding[]; expected: string[]; code: string }> {
  const b = await bundle(entry);
  const inputs = Object.keys(b.metafile.inputs);
  return { findings: checkBundle(b), expected: [...new Set(inputs.flatMap(markers))].sort(), code: b.code };
}

const key = (f: Finding) => `${f.file}:${f.line} ${f.rule}`;

const ruleFixtures = readdirSync(path.join(PROJECT_ROOT, FIXTURES))
  .filter((f) => f.endsWith(".ts") && !f.endsWith("-helper.ts") && !PASSING.includes(f))
  .sort();

describe("checkEspruinoCompat on bundled fixtures", () => {
  it.each(ruleFixtures)("%s: each marked line is reported with its rule, nothing else", async (fixture) => {
    const { findings, expected } = await findingsFor(`${FIXTURES}/${fixture}`);
    expect(expected.length).toBeGreaterThan(0);
    expect([...new Set(findings.map(key))].sort()).toEqual(expected);
    for (const f of findings) {
      expect(f.message).toMatch(/\(docs\/(espruino-compat|espruino-notes)\.md: [a-z ]+\)$/);
      expect(f.hint.length).toBeGreaterThan(5);
    }
  });

  it("passes classes, arrows, template literals, let/const, for...of, ?? and a for-let loop without closures", async () => {
    const { findings } = await findingsFor(`${FIXTURES}/clean.ts`);
    expect(findings).toEqual([]);
  });

  it("passes what Espruino runs next to the espruino-notes.md rules: late helpers used only in callbacks, plain regexes, bind(this), emit with 4 arguments", async () => {
    const { findings, code } = await findingsFor(`${FIXTURES}/espruino-ok.ts`);
    expect(findings).toEqual([]);
    // The fixture does exercise the allowed forms after minification.
    expect(code).toMatch(/\.bind\(null\)/);
    expect(code).toMatch(/\.emit\("message",.*,1,2,3\)\}/);
  });

  it("sees `/` inside a regex class as written: esbuild does not escape it, so Espruino's lexer would end the literal there", async () => {
    const { findings, code } = await findingsFor(`${FIXTURES}/regexp.ts`);
    expect(code).toContain("/[^/]\\+/");
    expect(findings.find((f) => f.line === 17)!.message).toContain("an unescaped `/` inside `[...]`");
  });

  it("passes ?. ??= ||= &&= because esbuild lowers them at target es2019", async () => {
    const { findings, code } = await findingsFor(`${FIXTURES}/lowered.ts`);
    expect(findings).toEqual([]);
    expect(code).not.toMatch(/\?\.|\?\?=|\|\|=|&&=/);
  });

  it("maps a finding in an imported module to that module", async () => {
    const { findings } = await findingsFor(`${FIXTURES}/loop-closure.ts`);
    expect(findings.map((f) => f.file)).toContain(`${FIXTURES}/loop-closure-helper.ts`);
  });

  it("names the loop variable and the base function as written in TypeScript, not as minified", async () => {
    const loop = (await findingsFor(`${FIXTURES}/loop-closure.ts`)).findings.find((f) => f.file.endsWith("loop-closure.ts") && f.line === 6)!;
    expect(loop.message).toContain("captures `i`");
    const ext = (await findingsFor(`${FIXTURES}/class-extends-function.ts`)).findings[0];
    expect(ext.message).toContain("`class extends Emitter`");
  });

  it("formats a finding as file:line:col, what, and the fix", async () => {
    const f = (await findingsFor(`${FIXTURES}/default-param.ts`)).findings[0];
    expect(formatFinding(f)).toBe(
      `${FIXTURES}/default-param.ts:1:43: default parameter values are not supported by Espruino (docs/espruino-compat.md: fails)\n` +
        "    fix: make the parameter optional and write `if (x === undefined) x = ...` in the body",
    );
  });

});

describe("checkEspruinoCompat on plain JavaScript (no source map)", () => {
  const rules = (js: string) => checkEspruinoCompat(js).map((f) => `${f.line}:${f.column} ${f.rule}`);

  it.each([
    ["a?.b", "optional-chaining"],
    ["a ||= 1", "logical-assignment"],
    ["a &&= 1", "logical-assignment"],
    ["a ??= 1", "logical-assignment"],
    ["10n", "bigint-literal"],
    ["async function f(s) { for await (const x of s) g(x) }", "async"],
    ["x.length -= 1", "length-assignment"],
    ["x.length++", "length-assignment"],
    ['x["length"] = 0', "length-assignment"],
    ["var o = { [k]: 1 }", "computed-key"],
    ["class A { static [k] = 1 }", "computed-key"],
    ["function f(...a) {}", "rest"],
    ["var v = Number['isInteger'](1)", "missing-api"],
    ['var s = "\x04MQTT"', "control-byte"],
    ['var s = "a\x03"', "control-byte"],
  ])("%s -> %s", (js, rule) => {
    expect(checkEspruinoCompat(js).map((f) => f.rule)).toContain(rule);
  });

  it("reports positions in the output when there is no map", () => {
    expect(rules("var a = 1;\nvar b = c?.d;")).toEqual(["2:9 optional-chaining"]);
    expect(checkEspruinoCompat("x?.y")[0].file).toBe("<output>");
  });

  it("reports every finding, not just the first", () => {
    expect(rules("var {a} = o; f(...b); g(x ** 2);")).toEqual(["1:5 destructuring", "1:16 spread", "1:25 exponent"]);
  });

  it("reports a nested destructuring once", () => {
    expect(rules("var { a: { b: [c] } } = o;")).toEqual(["1:5 destructuring"]);
  });

  it("allows a for-let loop whose body has no closure", () => {
    expect(rules("for (let i = 0; i < 3; i++) { const c = i; out.push(c); }")).toEqual([]);
  });

  it("allows closures over `var` loop variables and over let/const declared in the body", () => {
    // espruino-compat.md measures only the for-head binding as wrong; `var` is one binding by definition.
    expect(rules("for (var i = 0; i < 3; i++) f(() => i);")).toEqual([]);
    expect(rules("for (let i = 0; i < 3; i++) { const c = i; f(() => c); }")).toEqual([]);
  });

  it("rejects a closure over a for-head binding in the head, the body, and nested functions, once per closure", () => {
    expect(rules("for (let i = 0; i < 3; i++) { f(() => i + i); }")).toEqual(["1:39 loop-closure"]);
    expect(rules("for (const k in o) { if (k) { g(function () { return function () { return k; }; }); } }")).toEqual(["1:75 loop-closure"]);
    expect(rules("for (let i = 0, f = () => i; i < 3; i++) {}")).toEqual(["1:27 loop-closure"]);
  });

  it("does not confuse a shadowing parameter with the loop variable", () => {
    expect(rules("for (let i = 0; i < 3; i++) f(function (i) { return i; });")).toEqual([]);
  });

  it("judges `extends` only when the base is statically known", () => {
    expect(rules("class A extends RangeError {}")).toEqual(["1:1 class-extends-error"]);
    expect(rules("var Error = class {}; class A extends Error {}")).toEqual([]);
    expect(rules("class B {} class A extends B {}")).toEqual([]);
    expect(rules("var F = function () {}; var C = class extends F {};")).toEqual(["1:33 class-extends-function"]);
    expect(rules("class A extends mixin(B) {}")).toEqual([]);
  });

  it("tells property names and labels from references to missing globals", () => {
    expect(rules("var o = { Map: 1, Set() {} }; o.Map; class C { Symbol = 1; Proxy() {} }")).toEqual([]);
    expect(rules("var o = { Map };")).toEqual(["1:11 missing-global"]);
    expect(rules("function f(Buffer) { return Buffer; } try {} catch (Map) { Map; }")).toEqual([]);
  });

  it("rejects non-ASCII output (the ESP32 build has no Unicode)", () => {
    expect(rules('var s = "caf\u00e9";')).toEqual(["1:13 non-ascii"]);
  });

  it("reports unparsable output as a build bug rather than throwing", () => {
    expect(rules("var = ;")[0]).toMatch(/parse-error$/);
  });
});

describe("espruino-notes.md rules on plain JavaScript", () => {
  const rules = (js: string) => checkEspruinoCompat(js).map((f) => `${f.line}:${f.column} ${f.rule}`);
  const messages = (js: string) => checkEspruinoCompat(js).map((f) => f.message);

  describe("function-hoisting", () => {
    it("rejects a use that runs before the declaration, at top level and in function bodies", () => {
      expect(rules("var o = { a: K };\nfunction K() {}")).toEqual(["1:14 function-hoisting"]);
      expect(rules("function f() { var x = 1; var r = [x].map(K); function K(y) { return y; } return r; }")).toEqual(["1:43 function-hoisting"]);
      expect(rules("switch (x) { case 1: K(); function K() {} }")).toEqual(["1:22 function-hoisting"]);
      expect(rules("{ K(); function K() {} }")).toEqual(["1:3 function-hoisting"]);
    });

    it("allows uses inside functions that only run later, and uses after the declaration", () => {
      expect(rules("var o = { a: function () { return K(); } }; setTimeout(function () { K(); }, 1); function K() {} K();")).toEqual([]);
      expect(rules("function g() { return K(); } function K() {} g();")).toEqual([]);
      expect(rules("class C { m() { return K(); } } var c = new C(); function K() {}")).toEqual([]);
      expect(rules("function K() {} var o = { a: K };")).toEqual([]);
    });

    it("follows calls made now: named functions, IIFEs, new, .call, array callbacks, the Promise executor", () => {
      expect(rules("function g() { return K(); } g(); function K() {}")).toEqual(["1:30 function-hoisting"]);
      expect(rules("function h() { return g(); } function g() { return K(); } h(); function K() {}")).toEqual(["1:59 function-hoisting"]);
      expect(rules("(function () { K(); })(); function K() {}")).toEqual(["1:2 function-hoisting"]);
      expect(rules("var a = () => K(); a(); function K() {}")).toEqual(["1:20 function-hoisting"]);
      expect(rules("class C { constructor() { this.v = K(); } } new C(); function K() {}")).toEqual(["1:49 function-hoisting"]);
      expect(rules("class C { static s = K(); } function K() {}")).toEqual(["1:22 function-hoisting"]);
      expect(rules("function g() { K(); } g.call(null); function K() {}")).toEqual(["1:23 function-hoisting"]);
      expect(rules("[1].forEach(function () { K(); }); function K() {}")).toEqual(["1:1 function-hoisting"]);
      expect(rules("new Promise(function (res) { res(K()); }); function K() {}")).toEqual(["1:5 function-hoisting"]);
      expect(messages("function g() { return K(); } g(); function K() {}")[0]).toContain("`g()` runs here and uses `K` before `function K` is declared");
    });

    it("rejects every use of a function declared after a return: Espruino never defines it", () => {
      expect(rules("function f() { return function () { return K(); }; function K() {} }")).toEqual(["1:44 function-hoisting"]);
      expect(messages("function f() { return K(); function K() {} }")[0]).toContain("never defines it");
    });

    it("resolves names: a shadowing local or parameter is not the late function", () => {
      expect(rules("function f(K) { return K; } f(1); function K() {}")).toEqual([]);
      expect(rules("function f() { var K = 1; return K; } f(); function K() {}")).toEqual([]);
      expect(rules("var o = { K: 1 }; o.K; function K() {}")).toEqual([]);
    });
  });

  describe("regexp", () => {
    it.each([
      ["a?b", "", "optional"],
      ["(ab)?c", "", "optional"],
      ["^\\d{4}$", "", "counted"],
      ["a{1,3}", "", "counted"],
      ["a.*?b", "", "lazy"],
      ["a+?", "", "lazy"],
      ["^(ab)+$", "", "group-quantifier"],
      ["^a(b|c)d$", "", "group-alternation"],
      ["^(mqtt|mqtts)$", "", "group-alternation"],
      ["(?:ab)", "", "special-group"],
      ["a(?!b)", "", "special-group"],
      ["(?<!a)b", "", "special-group"],
      ["(?<n>a)", "", "special-group"],
      ["((a)b)", "", "nested-group"],
      ["(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)", "", "many-groups"],
      ["\\bx", "", "word-boundary"],
      ["\\Bx", "", "word-boundary"],
      ["(a)\\1", "", "backreference"],
      ["\\u00ff", "", "unicode-escape"],
      ["[\\u0000-\\u001f]", "", "unicode-escape"],
      ["^a|b", "", "anchored-alternative"],
      ["^a$", "m", "flag-ignored"],
      ["a", "y", "flag-ignored"],
      ["#.", "", "dot"],
      ["%..", "g", "dot"],
      ["\\s", "", "space"],
      ["[^\\S]", "", "space"],
      ["[\\x00-\\xff]", "", "high-range"],
      ["^[^:]+$", "", "negated-plus"],
      ["x[^\\]]+", "", "negated-plus"],
      ["[ -\\x80]", "", "high-range"],
      ["\\xe9", "i", "case-fold"],
    ])("/%s/%s -> %s", (pattern, flags, feature) => {
      expect(regexpProblems(pattern, flags, true)).toContain(feature);
    });

    it.each([
      "^ab*c$", "[+#]", "#[^]|[^\\/][+#]|\\+[^\\/]", "%\\w\\w", "[.]", "^\\d+\\.\\w*$", "[\\x00-\\x1f]", "a|b", "^a|^b", "b|^a", "(a)b(c)", "x(a)", "a{", "[?{(|)]", "\\?\\{2\\}", "^$",
    ])("allows /%s/", (pattern) => {
      expect(regexpProblems(pattern, "gi", true)).toEqual([]);
    });

    it("treats `/` in a class and the s flag as literal-only problems (Espruino's lexer), not RegExp-constructor ones", () => {
      expect(regexpProblems("[^/]x", "", true)).toEqual(["slash-in-class"]);
      expect(regexpProblems("[^/]x", "", false)).toEqual([]);
      expect(regexpProblems("a.b", "s", true)).toEqual(["flag-syntax"]);
      expect(regexpProblems("a.b", "s", false)).toEqual([]);
      expect(regexpProblems("a", "m", true)).toEqual([]);
    });

    it("checks literals and `new RegExp`/`RegExp` with a literal string, naming the regex", () => {
      expect(rules('var a = /a?b/, b = new RegExp("x{2}", "g"), c = RegExp("(?:x)"), d = new RegExp(s);')).toEqual(["1:9 regexp", "1:20 regexp", "1:49 regexp"]);
      expect(messages("var a = /[^/]x/;")[0]).toContain("`/[^/]x/`: an unescaped `/` inside `[...]` ends the regex literal");
      expect(rules('function RegExp(s) {} new RegExp("a?b");')).toEqual([]);
    });

    it("rejects a regex literal right after `)` (Espruino lexes it as division), once per regex", () => {
      expect(rules("if (x) /a/.test(s);")).toEqual(["1:8 regexp"]);
      expect(rules("if (x) (/a/).test(s); f(/a/);")).toEqual([]);
    });
  });

  it("bind-args: rejects bound arguments beyond thisArg, allows bind(thisArg)", () => {
    expect(rules("f.bind(null); f.bind(o); g.bind(null, 1); g.bind(o, a, b);")).toEqual(["1:28 bind-args", "1:45 bind-args"]);
  });

  it("emit-args: rejects more than 4 arguments after the event name", () => {
    expect(rules('o.emit("a", 1, 2, 3, 4); o.emit("a", 1, 2, 3, 4, 5); emit("a", 1, 2, 3, 4, 5, 6);')).toEqual(["1:28 emit-args"]);
    expect(messages('o.emit("a", 1, 2, 3, 4, 5, 6);')[0]).toContain("with 6 arguments after the event name");
  });
});
