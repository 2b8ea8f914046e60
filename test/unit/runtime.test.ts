import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import FakeTimers from "@sinonjs/fake-timers";
import { afterEach, describe, expect, it } from "vitest";
import { createRuntime, loadMqtt, type Runtime, type RuntimeOptions } from "../../host-sim/runtime.ts";

let runtimes: Runtime[] = [];
afterEach(() => {
  for (const rt of runtimes) rt.dispose();
  runtimes = [];
});

function device(options: RuntimeOptions = {}) {
  const clock = FakeTimers.createClock(1_700_000_000_000);
  const runtime = createRuntime({ clock, ...options });
  runtimes.push(runtime);
  return { runtime, clock, run: (src: string) => runtime.run(src) };
}

describe("timers on a fake clock", () => {
  it("fire in time order with their extra arguments", async () => {
    const { runtime, clock, run } = device();
    run(`
      setTimeout(function (a, b) { print("late", a, b); }, 300, "x", 2);
      setTimeout(function () { print("early"); }, 100);
      setTimeout("print('from a string')", 200);
    `);
    clock.tick(99);
    expect(runtime.logs).toEqual([]);
    clock.tick(301);
    expect(runtime.logs).toEqual(["early", "from a string", "late x 2"]);
  });

  it("repeat intervals until cleared, and clearTimeout can clear an interval", () => {
    const { runtime, clock, run } = device();
    run(`var n = 0; var id = setInterval(function () { n++; if (n === 3) clearTimeout(id); }, 50);`);
    clock.tick(1000);
    expect(runtime.global.n).toBe(3);
    expect(runtime.timerCount).toBe(0);
  });

  it("return small integer ids, reused from 1 once no timer is left (as Espruino's timer table)", () => {
    const { clock, run } = device();
    expect(run(`[setTimeout(function () {}, 10), setInterval(function () {}, 10)]`)).toEqual([1, 2]);
    run(`clearInterval(2)`);
    clock.tick(10);
    expect(run(`setTimeout(function () {}, 10)`)).toBe(1);
  });

  it("clearTimeout() clears every timer; clearTimeout(undefined) throws as on the device", () => {
    const { runtime, clock, run } = device();
    run(`setTimeout(function () { print("t"); }, 10); setInterval(function () { print("i"); }, 10);`);
    expect(() => run(`clearTimeout(undefined)`)).toThrow("clearTimeout(undefined) not allowed. Use clearTimeout() instead");
    expect(() => run(`clearInterval(undefined)`)).toThrow("clearInterval(undefined) not allowed");
    run(`clearTimeout(12345); clearTimeout();`);
    clock.tick(100);
    expect(runtime.logs).toEqual([]);
    expect(runtime.timerCount).toBe(0);
  });

  // Node times a timer from the start of its event-loop turn, so one set late in a busy turn (a node
  // sampling several sensors, say) can fire before Date.now() has moved by its delay. Espruino counts
  // from the moment of the call (src/jswrap_interactive.c, jsiLastIdleTime): never early.
  it("never fire before the device's clock has moved by their delay, even when the host's timers fire early", () => {
    const fake = FakeTimers.createClock(1_700_000_000_000);
    const LAG = 3; // the host fires every timer this many ms early
    const early = {
      ...fake,
      Date: fake.Date,
      setTimeout: (cb: () => void, ms: number) => fake.setTimeout(cb, Math.max(0, ms - LAG)),
      setInterval: (cb: () => void, ms: number) => fake.setInterval(cb, Math.max(1, ms - LAG)),
      clearTimeout: (h: unknown) => fake.clearTimeout(h as never),
      clearInterval: (h: unknown) => fake.clearInterval(h as never),
    };
    const { runtime, run } = device({ clock: early as never });
    run(`
      var t0 = Date.now(), got = [];
      [1, 5, 20].forEach(function (ms) { setTimeout(function () { got.push(ms + ":" + (Date.now() - t0)); }, ms); });
      var n = 0, id = setInterval(function () { n++; got.push("i" + n + ":" + (Date.now() - t0)); if (n == 3) clearInterval(id); }, 10);
    `);
    fake.tick(100);
    expect(runtime.global.got).toEqual(["1:1", "5:5", "i1:10", "20:20", "i2:20", "i3:30"]);
    expect(runtime.timerCount).toBe(0);
  });

  it("clearTimeout cancels a timer the host fired early and the runtime put back", () => {
    const fake = FakeTimers.createClock(1_700_000_000_000);
    const early = { ...fake, Date: fake.Date, setTimeout: (cb: () => void, ms: number) => fake.setTimeout(cb, Math.max(0, ms - 3)), setInterval: fake.setInterval.bind(fake), clearTimeout: (h: unknown) => fake.clearTimeout(h as never), clearInterval: (h: unknown) => fake.clearInterval(h as never) };
    const { runtime, run } = device({ clock: early as never });
    run(`var id = setTimeout(function () { print("fired"); }, 10);`);
    fake.tick(8); // the host fired at 7 ms; the runtime waits for 10
    run(`clearTimeout(id)`);
    fake.tick(10);
    expect(runtime.logs).toEqual([]);
    expect(runtime.timerCount).toBe(0);
  });

  it("rejects a callback that is neither a function nor a string", () => {
    const { run } = device();
    expect(() => run(`setTimeout(42, 10)`)).toThrow("Function or String not supplied!");
  });

  it("log a throwing callback as Uncaught and keep the interval going", () => {
    const { runtime, clock, run } = device();
    run(`var n = 0; setInterval(function () { n++; throw new Error("tick " + n); }, 10);`);
    clock.tick(30);
    expect(runtime.global.n).toBe(3);
    expect(runtime.logs.filter((l) => l.startsWith("Uncaught"))).toEqual([
      "Uncaught Error: tick 1",
      "Uncaught Error: tick 2",
      "Uncaught Error: tick 3",
    ]);
    expect(runtime.errors).toHaveLength(3);
  });

  it("getTime() and Date follow the clock", () => {
    const { clock, run } = device();
    expect(run(`getTime()`)).toBe(1_700_000_000);
    clock.tick(1500);
    expect(run(`getTime()`)).toBe(1_700_000_001.5);
    expect(run(`Date.now()`)).toBe(1_700_000_001_500);
    expect(run(`new Date().getTime()`)).toBe(1_700_000_001_500);
    expect(run(`new Date(0).toISOString()`)).toBe("1970-01-01T00:00:00.000Z");
    expect(run(`new Date() instanceof Date && typeof Date() === "string"`)).toBe(true);
  });
});

describe("E byte helpers", () => {
  it("E.toString follows Espruino's documented examples", () => {
    const { run } = device();
    expect(run(`E.toString(0,1,2,"Hi",3)`)).toBe("\x00\x01\x02Hi\x03");
    expect(run(`E.toString(1,2,{data:[3,4], count:4},5,6)`)).toBe("\x01\x02\x03\x04\x03\x04\x03\x04\x03\x04\x05\x06");
    expect(run(`E.toString(1,2,{callback : () => "Hello World"},5,6)`)).toBe("\x01\x02Hello World\x05\x06");
    expect(run(`E.toString(new Uint8Array([0, 128, 255]))`)).toBe("\x00\x80\xff");
    expect(run(`E.toString(256 + 65, true, [0x1234])`)).toBe("A\x01\x34");
    expect(run(`E.toString(new Uint8Array([104, 105]).buffer)`)).toBe("hi");
  });

  it("E.toUint8Array gives a device-realm Uint8Array", () => {
    const { run } = device();
    expect(run(`E.toUint8Array([1,{data:2,count:3},3]).join()`)).toBe("1,2,2,2,3");
    expect(run(`E.toUint8Array("Hello").join()`)).toBe("72,101,108,108,111");
    expect(run(`E.toUint8Array(["hi",{callback:function() { return [1,2,3] }}]).join()`)).toBe("104,105,1,2,3");
    expect(run(`E.toUint8Array("a") instanceof Uint8Array`)).toBe(true);
  });

  it("E.toString and E.toUint8Array reject what Espruino cannot iterate", () => {
    const { run } = device();
    expect(() => run(`E.toString(undefined)`)).toThrow("Expecting Number or iterable, got undefined");
    expect(() => run(`E.toUint8Array({a: 1})`)).toThrow("must be of the form {data : ..., count : N}");
    expect(run(`(function () { try { E.toString(null); } catch (e) { return e instanceof TypeError; } })()`)).toBe(true);
  });

  it("E.CRC32 is the standard CRC-32, unsigned, over bytes", () => {
    const { run } = device();
    expect(run(`E.CRC32("hello")`)).toBe(0x3610a686);
    expect(run(`E.CRC32("123456789")`)).toBe(0xcbf43926); // the CRC-32 check value
    expect(run(`E.CRC32("")`)).toBe(0);
    expect(run(`E.CRC32(new Uint8Array([104, 101, 108, 108, 111]))`)).toBe(0x3610a686);
    expect(run(`E.CRC32([104, 101, 108, 108, 111 + 256])`)).toBe(0x3610a686);
    expect(run(`E.CRC32(42)`)).toBeUndefined();
  });

  it("E.getSizeOf grows with the value", () => {
    const { run } = device();
    const small = run(`E.getSizeOf({a: 1})`) as number;
    const big = run(`E.getSizeOf({a: 1, b: "a string of some length", c: [1, 2, 3, 4]})`) as number;
    expect(small).toBeGreaterThan(0);
    expect(big).toBeGreaterThan(small);
  });
});

describe("EventEmitter on every object", () => {
  it("emit queues: listeners run after the emitting code returns, in order, with this = the object", async () => {
    const { runtime, run } = device();
    run(`
      var o = {};
      o.on("x", function (a, b) { print("first", a, b, this === o); });
      o.addListener("x", function () { print("second"); });
      o.prependListener("x", function () { print("zeroth"); });
      o.emit("x", 1, "two");
      print("after emit");
    `);
    expect(runtime.logs).toEqual(["after emit"]);
    await runtime.settle();
    expect(runtime.logs).toEqual(["after emit", "zeroth", "first 1 two true", "second"]);
  });

  it("listener bookkeeping matches Espruino's: hidden #on props, in-place removal, no late additions", async () => {
    const { runtime, run } = device();
    run(`
      var o = { a: 1 };
      function f() { print("f"); }
      function g() { print("g"); }
      o.on("e", f); o.on("e", g);
      o.emit("e");
      o.removeListener("e", f);       // the queued event skips it
      o.on("late", function () { print("late"); });
      o.emit("none");
    `);
    expect(run(`JSON.stringify(o) + Object.keys(o).join()`)).toBe('{"a":1}a');
    expect(run(`Object.getOwnPropertyNames(o).filter(function (k) { return k.indexOf("#on") === 0; }).join()`)).toBe("#one,#onlate");
    await runtime.settle();
    expect(runtime.logs).toEqual(["g"]);
    run(`o.removeAllListeners("e"); o.emit("e"); o.emit("late"); o.removeAllListeners(); o.emit("late");`);
    await runtime.settle();
    expect(runtime.logs).toEqual(["g", "late"]);
  });

  it("a throwing listener is printed as Uncaught and the next listener still runs", async () => {
    const { runtime, run } = device();
    run(`
      var o = {};
      o.on("x", function () { throw new Error("bad listener"); });
      o.on("x", function () { print("still called"); });
      o.emit("x");
    `);
    await runtime.settle();
    expect(runtime.logs[0]).toBe("Uncaught Error: bad listener");
    expect(runtime.logs).toContain("still called");
    expect(runtime.errors).toHaveLength(1);
  });

  it("an unhandled rejection of a device promise is printed, as Espruino does, not thrown at Node", async () => {
    const { runtime, run } = device();
    run(`new Promise(function (resolve, reject) { reject(new Error("nobody catches me")); });`);
    await new Promise((r) => setTimeout(r, 20));
    expect(runtime.logs[0]).toBe("Uncaught Error: Unhandled promise rejection: Error: nobody catches me");
  });

  it("E.stopEventPropagation skips the remaining listeners (tests/test_eventemitter_stoppropagation.js)", async () => {
    const { runtime, run } = device();
    run(`
      var X = {}, v = "";
      X.on('foo', function() { v+="A"; });
      X.on('foo', function() { v+="B"; E.stopEventPropagation(); });
      X.on('foo', function() { v+="C"; });
      X.emit('foo'); X.emit('foo');
      try { E.stopEventPropagation(); } catch (e) { v += "x"; }
    `);
    await runtime.settle();
    expect(runtime.global.v).toBe("xABAB");
  });

  it("events emitted by listeners run too, and the argument checks throw in the device realm", async () => {
    const { runtime, run } = device();
    run(`
      var o = {};
      o.on("a", function () { print("a"); o.emit("b"); });
      o.on("b", function () { print("b"); });
      o.emit("a");
    `);
    await runtime.settle();
    expect(runtime.logs).toEqual(["a", "b"]);
    expect(() => run(`({}).emit("x", 1, 2, 3, 4, 5)`)).toThrow("Too many arguments (>4)");
    expect(() => run(`({}).on(1, function () {})`)).toThrow("First argument must be String");
    expect(() => run(`"str".on("x", function () {})`)).toThrow("Parent must be an object");
    expect(run(`(function () { try { ({}).on("x", 5); } catch (e) { return e instanceof TypeError; } })()`)).toBe(true);
  });

  it("runtime.emit delivers host events to device listeners", async () => {
    const { runtime, run } = device();
    const target = run(`var t = {}; t.on("ping", function (n) { print("ping", n); }); t`) as object;
    runtime.emit(target, "ping", 7);
    runtime.emit(target, "nobody-listens");
    await runtime.settle();
    expect(runtime.logs).toEqual(["ping 7"]);
  });
});

describe("modules", () => {
  it("addModule runs the source in its own scope with exports, module, and this = exports", () => {
    const { runtime, run } = device();
    runtime.addModule("counter", `
      var count = 0;
      exports.next = function () { return ++count; };
      this.viaThis = true;
    `);
    const m = runtime.require("counter");
    expect(m.next()).toBe(1);
    expect(m.next()).toBe(2);
    expect(m.viaThis).toBe(true);
    expect(run(`typeof count + " " + typeof exports + " " + typeof module`)).toBe("undefined undefined undefined");
    expect(run(`require("counter") === require("counter") && require("counter").next()`)).toBe(3);
  });

  it("module.exports can be replaced, and Modules.addCached/getCached/removeCached work from device code", () => {
    const { run } = device();
    run(`Modules.addCached("fn", "module.exports = function () { return 'hi'; };");`);
    expect(run(`require("fn")()`)).toBe("hi");
    run(`Modules.addCached("fromFunction", function () { exports.v = 5; });`);
    expect(run(`require("fromFunction").v`)).toBe(5);
    expect(run(`require("net"); Modules.getCached().join()`)).toBe("fn,fromFunction,net");
    run(`Modules.removeCached("fn")`);
    expect(() => run(`require("fn")`)).toThrow('Module "fn" not found');
    expect(() => run(`Modules.removeCached("fn")`)).toThrow('Module "fn" not found');
  });

  it("the module cache wins over built-ins, as in jswrap_require", () => {
    const { run } = device();
    run(`Modules.addCached("net", "exports.fake = true;")`);
    expect(run(`require("net").fake`)).toBe(true);
  });

  it("require finds Storage files after built-ins, and plugins add built-in modules", () => {
    const files: Record<string, string> = { stored: "exports.answer = 42;" };
    const { run } = device({
      storage: { read: (name) => files[name] },
      plugins: [(rt) => rt.defineModule("Wifi", () => rt.newObject({ kind: "wifi" }))],
    });
    expect(run(`require("stored").answer`)).toBe(42);
    expect(run(`require("Wifi").kind`)).toBe("wifi");
  });

  it("loadModule registers a built file; a missing file says to run the build", () => {
    const dir = mkdtempSync(join(tmpdir(), "wisp-runtime-"));
    try {
      const file = join(dir, "lib.js");
      writeFileSync(file, `exports.twice = function (x) { return x * 2; };`);
      const { runtime } = device();
      runtime.loadModule(file, "lib");
      expect(runtime.require("lib").twice(21)).toBe(42);
      expect(() => runtime.loadModule(join(dir, "missing.js"), "x")).toThrow("npm run build");
      expect(() => loadMqtt({ path: join(dir, "missing.js") })).toThrow("npm run build");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("globals", () => {
  it("has no Node globals and none of what Espruino 2v29 lacks", () => {
    const { run } = device();
    const absent = ["process", "Buffer", "module", "exports", "__dirname", "setImmediate", "queueMicrotask",
      "Map", "Set", "Symbol", "Proxy", "Reflect", "BigInt", "WeakMap", "TextEncoder"];
    for (const name of absent) expect(run(`typeof ${name}`), name).toBe("undefined");
    expect(run(`[typeof Number.isInteger, typeof Math.trunc, typeof Array.from, typeof Object.freeze, typeof [].at]`))
      .toEqual(["undefined", "undefined", "undefined", "undefined", "undefined"]);
    expect(() => run(`require("fs")`)).toThrow('Module "fs" not found');
    expect(run(`typeof Promise + typeof JSON + typeof Math.round + typeof Uint8Array + typeof global.E`)).toBe(
      "functionobjectfunctionfunctionobject",
    );
  });

  it("keepMissingBuiltins keeps the full ES library; options.globals adds globals", () => {
    const { run } = device({ keepMissingBuiltins: true, globals: { LED1: 42 } });
    expect(run(`typeof Map + typeof Number.isInteger + LED1`)).toBe("functionfunction42");
  });

  it("console.log and print format like Espruino and reach options.log line by line", () => {
    const lines: string[] = [];
    const { runtime, run } = device({ log: (l) => lines.push(l) });
    run(`console.log("s", 1, true, null, undefined, [1, "a"], { k: { n: [] } }, new Uint8Array([1, 2]));`);
    run(`print("two\\nlines")`);
    expect(lines).toEqual([
      // as the Linux build of Espruino 2v29 prints it: a new line before each item that is not a number
      's 1 true null undefined [ 1, ',
      '  "a"',
      ' ] { ',
      '  "k": { ',
      '    "n": [  ]',
      "   }",
      " } new Uint8Array([1, 2])",
      "two",
      "lines",
    ]);
    expect(runtime.logs).toEqual(lines);
  });

  it("btoa/atob work on byte strings", () => {
    const { run } = device();
    expect(run(`btoa("\\x00\\xff")`)).toBe("AP8=");
    expect(run(`atob("AP8=") === "\\x00\\xff"`)).toBe(true);
  });
});

describe("dispose", () => {
  it("clears every timer and drops queued events", async () => {
    const { runtime, clock, run } = device();
    run(`
      setTimeout(function () { print("timeout"); }, 10);
      setInterval(function () { print("interval"); }, 10);
      var o = {}; o.on("x", function () { print("event"); }); o.emit("x");
    `);
    expect(runtime.timerCount).toBe(2);
    runtime.dispose();
    expect(runtime.timerCount).toBe(0);
    clock.tick(100);
    await runtime.settle();
    await new Promise((r) => setImmediate(r));
    expect(runtime.logs).toEqual([]);
    expect(clock.countTimers()).toBe(0);
    runtime.dispose(); // idempotent
  });

  it("runs onDispose hooks once", () => {
    const { runtime } = device();
    let calls = 0;
    runtime.onDispose(() => calls++);
    const off = runtime.onDispose(() => calls += 100);
    off();
    runtime.dispose();
    runtime.dispose();
    expect(calls).toBe(1);
  });
});

describe("real clock", () => {
  it("accepts a clock installed on Node's globals (withGlobal(globalThis).install())", async () => {
    const clock = FakeTimers.withGlobal(globalThis).install({
      now: 5_000,
      toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"],
    });
    try {
      const runtime = createRuntime({ clock });
      runtimes.push(runtime);
      runtime.run(`var o = {}; o.on("t", function (t) { print("at", t); }); setTimeout(function () { o.emit("t", getTime()); }, 2000);`);
      await clock.tickAsync(2000);
      await runtime.settle();
      expect(runtime.logs).toEqual(["at 7"]);
    } finally {
      clock.uninstall();
    }
  });

  it("defaults to Node's timers", async () => {
    const runtime = createRuntime();
    runtimes.push(runtime);
    runtime.run(`setTimeout(function () { print("real"); }, 5);`);
    await new Promise((r) => setTimeout(r, 30));
    expect(runtime.logs).toEqual(["real"]);
  });
});

describe("JSON.stringify as Espruino writes it", () => {
  it("escapes control characters and everything from 0x7F up as \\u00XX, upper-case, as 2v29 does", () => {
    const runtime = createRuntime();
    runtimes.push(runtime);
    // output of the same probe on the Linux build of Espruino 2v29
    expect(runtime.run(`JSON.stringify("\\x01\\x1f\\x7f\\x80\\xff\\t\\n\\r\\b\\f/\\\\\\"'<")`)).toBe(`"\\u0001\\u001F\\u007F\\u0080\\u00FF\\t\\n\\r\\b\\f/\\\\\\"'<"`);
    expect(runtime.run(`JSON.stringify({ "\\xE9": "\\xB0C" })`)).toBe(`{"\\u00E9":"\\u00B0C"}`);
    // text that merely looks like an escape stays text
    expect(runtime.run(`JSON.stringify("\\\\u001f")`)).toBe(`"\\\\u001f"`);
    expect(runtime.run(`JSON.parse(JSON.stringify({ a: "\\xB0" })).a`)).toBe("\xB0");
  });
});
