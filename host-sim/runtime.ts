// One simulated Espruino device: a Node `vm` context whose globals follow Espruino 2v29, into
// which the BUILT firmware files (dist/*.js) are loaded unchanged.
//
// A Runtime owns everything the device starts (timers, sockets, ...) and dispose() stops all of
// it. Built-in modules (`require("net")`) and globals are pluggable, so later device models
// (Wifi, Storage, I2C, pins) register themselves as module factories, globals or plugins.

import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import vm from "node:vm";
import { bytesToString, bytesToUint8Array, crc32 } from "./runtime/bytes.ts";
import { EVENT_PREFIX, INSTALL_EVENTS_SOURCE } from "./runtime/events.ts";
import { errorText, formatArgs } from "./runtime/format.ts";
import { type Clock, realClock, TimerTable } from "./runtime/timers.ts";
import { createNetModule, createTlsModule } from "./net.ts";

export type { Clock } from "./runtime/timers.ts";
export { realClock } from "./runtime/timers.ts";

/** Builds a built-in module's exports the first time the device requires it. */
export type ModuleFactory = (runtime: Runtime) => unknown;
/** Extends a runtime once its core globals exist: defines globals, modules, dispose hooks. */
export type RuntimePlugin = (runtime: Runtime) => void;

/** Read access to the device's flash files (Espruino `Storage`), used by require() and tls certs. */
export interface StorageReader {
  read(name: string): string | undefined;
}

/** A device's time of day, in ms since 1970; `set` is what setTime() does. */
export interface DeviceClock {
  now(): number;
  set(ms: number): void;
}

/** Constructors of the device's realm: objects handed to device code must come from these. */
export interface Realm {
  Object: ObjectConstructor;
  Array: ArrayConstructor;
  Uint8Array: Uint8ArrayConstructor;
  Error: ErrorConstructor;
  TypeError: TypeErrorConstructor;
  Promise: PromiseConstructor;
}

export interface RuntimeOptions {
  /** Name of the device, used when echoing its console (default "device"). */
  name?: string;
  /** Drives setTimeout/setInterval, Date and getTime (default: Node's real timers). */
  clock?: Clock;
  /**
   * The device's time of day, if not the clock's: Date, getTime and setTime use it (an ESP32's RTC:
   * it starts at 0, 1970, when power comes and keeps counting through resets and deep sleep).
   */
  rtc?: DeviceClock;
  /** Receives every line the device prints (console.log, print, uncaught errors). */
  log?: (line: string) => void;
  /** Also write device lines to stdout as `[name] line` (default false). */
  echo?: boolean;
  /** Built-in modules; merged over the defaults (net, tls). A value of null removes a default. */
  modules?: Record<string, ModuleFactory | null>;
  /** Extra globals defined after the core ones. */
  globals?: Record<string, unknown>;
  /** Run in order after the core globals and `globals` are installed. */
  plugins?: RuntimePlugin[];
  /** Flash files for require(name) and for tls ca/cert/key given as file names. */
  storage?: StorageReader;
  /**
   * Keep the library parts Espruino 2v29 lacks (Map, Set, Symbol, Proxy, Reflect, BigInt,
   * Number.isInteger, Math.trunc, Array.from, Object.freeze, ...; see espruino-compat.md).
   * Default false: they are removed so the simulator fails where the device would.
   */
  keepMissingBuiltins?: boolean;
}

export const defaultModules: Readonly<Record<string, ModuleFactory>> = Object.freeze({
  net: createNetModule,
  tls: createTlsModule,
});

// Measured missing on Espruino 2v29 (espruino-compat.md), plus the other ES2015+ globals it has not got.
const MISSING_GLOBALS = [
  "Map", "Set", "WeakMap", "WeakSet", "WeakRef", "FinalizationRegistry", "Symbol", "Proxy", "Reflect",
  "BigInt", "BigInt64Array", "BigUint64Array", "Intl", "WebAssembly", "SharedArrayBuffer", "Atomics",
];
const REMOVE_MISSING_SOURCE = `(function (names) {
  names.forEach(function (n) { delete globalThis[n]; });
  delete Number.isInteger; delete Number.isNaN; delete Number.isFinite; delete Math.trunc;
  delete Array.from; delete Object.getPrototypeOf(Uint8Array).from;
  delete Array.prototype.flat; delete Array.prototype.at; delete Object.freeze;
})`;

// Date and getTime follow the clock; Date() without `new` still gives a string.
const CLOCK_DATE_SOURCE = `(function (now) {
  var RealDate = Date, construct = Reflect.construct, slice = Array.prototype.slice;
  var ClockDate = function Date() {
    if (!new.target) return new RealDate(now()).toString();
    return construct(RealDate, arguments.length === 0 ? [now()] : slice.call(arguments), new.target);
  };
  ClockDate.prototype = RealDate.prototype;
  Object.defineProperty(RealDate.prototype, "constructor", { value: ClockDate, writable: true, configurable: true });
  ClockDate.now = function now_() { return now(); };
  ClockDate.parse = RealDate.parse;
  ClockDate.UTC = RealDate.UTC;
  return ClockDate;
})`;

// JSON.stringify as Espruino writes strings (src/jswrap_json.c, measured on 2v29): characters
// below 0x20 and from 0x7F up as \u00XX with upper-case hex, where V8 writes lower-case hex for
// control characters and leaves the others raw. On an ESP32 (no Unicode) a string's characters are
// bytes, so the raw form would put bytes >= 0x80 on the wire: not UTF-8, unlike the device.
function espruinoEscapes(json: string): string {
  return json.replace(/\\\\|\\u00[01][0-9a-f]|[\u007f-\uffff]/g, (m) => {
    if (m === "\\\\") return m; // an escaped backslash: what follows it is text
    if (m.length > 1) return "\\u00" + m.slice(4).toUpperCase();
    return "\\u" + m.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0");
  });
}

const STACK_FRAMES_SHOWN = 5;

export class Runtime {
  readonly name: string;
  readonly context: vm.Context;
  /** The device's global object (`global` inside the device). */
  readonly global: Record<string, any>;
  readonly realm: Realm;
  readonly clock: Clock;
  /** Every line the device printed, in order. */
  readonly logs: string[] = [];
  /** Every uncaught error (thrown by a timer, event listener or socket callback), in order. */
  readonly errors: unknown[] = [];
  /** Flash files; a Storage model may set this after creation. */
  storage: StorageReader | undefined;

  private readonly options: RuntimeOptions;
  private readonly builtins = new Map<string, ModuleFactory>();
  private readonly moduleCache = new Map<string, unknown>();
  private readonly timers: TimerTable;
  private readonly disposers = new Set<() => void>();
  private readonly jobs = Promise.resolve();
  private pendingEvents = 0;
  private handlingEvent = false;
  private stopPropagation = false;
  private isDisposed = false;

  constructor(options: RuntimeOptions = {}) {
    this.options = options;
    this.name = options.name ?? "device";
    this.clock = options.clock ?? realClock;
    this.storage = options.storage;
    this.context = vm.createContext({}, { name: `wisp:${this.name}`, codeGeneration: { strings: true, wasm: false } });
    this.global = vm.runInContext("globalThis", this.context);
    this.realm = vm.runInContext(
      "({ Object: Object, Array: Array, Uint8Array: Uint8Array, Error: Error, TypeError: TypeError, Promise: Promise })",
      this.context,
    );
    this.timers = new TimerTable({
      clock: this.clock,
      Error: this.realm.Error,
      invoke: (callback, args) => this.invoke(callback, this.global, args),
    });
    for (const [name, factory] of Object.entries({ ...defaultModules, ...options.modules })) {
      if (factory) this.builtins.set(name, factory);
    }
    this.installCore();
    trackRejections(this);
    for (const [name, value] of Object.entries(options.globals ?? {})) this.defineGlobal(name, value);
    for (const plugin of options.plugins ?? []) plugin(this);
  }

  get disposed(): boolean {
    return this.isDisposed;
  }

  /** Number of live timers (setTimeout/setInterval not yet fired or cleared). */
  get timerCount(): number {
    return this.timers.size;
  }

  /**
   * Run code at the device's top level (like sending it to the REPL). Errors are thrown to the
   * caller; with `timeout` (ms), code still running then is stopped with an Error.
   */
  run(source: string, filename = "code.js", options: { timeout?: number } = {}): unknown {
    return vm.runInContext(source, this.context, { filename, timeout: options.timeout });
  }

  /** Espruino's require: cached modules, then built-ins, then Storage files. */
  require(name: string): any {
    if (typeof name !== "string") {
      throw new this.realm.TypeError(`Expecting module name as a string, got ${typeof name}`);
    }
    if (this.moduleCache.has(name)) return this.moduleCache.get(name);
    let exports: unknown;
    const factory = this.builtins.get(name);
    if (factory) {
      exports = factory(this);
    } else {
      const source = this.storage?.read(name);
      if (source !== undefined) exports = this.evaluateModule(source, `storage:${name}`);
    }
    if (exports === undefined) throw new this.realm.Error(`Module ${JSON.stringify(name)} not found`);
    this.moduleCache.set(name, exports);
    return exports;
  }

  /** Modules.addCached(name, source): evaluate the module now and cache its exports under `name`. */
  addModule(name: string, source: string | Function, filename = `module:${name}`): void {
    if (typeof name !== "string" || (typeof source !== "string" && typeof source !== "function")) {
      throw new this.realm.Error("args must be addCached(string, string|function)");
    }
    this.moduleCache.set(name, this.evaluateModule(source, filename));
  }

  /** Read a built file (e.g. dist/mqtt.js) and register it as module `name`, as Modules.addCached does. */
  loadModule(path: string, name: string): void {
    if (!existsSync(path)) {
      throw new Error(`${path} not found: run \`npm run build\` first to produce the built firmware files`);
    }
    this.addModule(name, readFileSync(path, "utf8"), path);
  }

  /** Register (or replace) a built-in module; a cached instance of the old one is dropped. */
  defineModule(name: string, factory: ModuleFactory): void {
    this.builtins.set(name, factory);
    this.moduleCache.delete(name);
  }

  defineGlobal(name: string, value: unknown): void {
    this.global[name] = value;
  }

  /** A plain object of the device's realm (so it has on/emit and passes device `instanceof` checks). */
  newObject<T extends object>(props?: T): T {
    return Object.assign(new this.realm.Object(), props) as T;
  }

  newArray<T>(items: Iterable<T> = []): T[] {
    const arr = new this.realm.Array() as T[];
    for (const item of items) arr.push(item);
    return arr;
  }

  /** Write text to the device console, one log entry per line. */
  print(text: string): void {
    for (const line of text.split("\n")) {
      this.logs.push(line);
      this.options.log?.(line);
      if (this.options.echo) process.stdout.write(`[${this.name}] ${line}\n`);
    }
  }

  /** What Espruino does with an exception nobody caught: print "Uncaught ..." and go on. */
  reportUncaught(err: unknown): void {
    this.errors.push(err);
    this.print(`Uncaught ${errorText(err)}`);
    const stack = typeof err === "object" && err !== null ? (err as { stack?: unknown }).stack : undefined;
    if (typeof stack === "string") {
      const frames = stack
        .split("\n")
        .filter((l) => /^\s+at /.test(l) && !/host-sim[\\/]|node:|node_modules/.test(l))
        .slice(0, STACK_FRAMES_SHOWN);
      for (const frame of frames) this.print(` ${frame.trim()}`);
    }
  }

  /** Call device code now; an exception is reported on the device console, never rethrown. */
  invoke(callback: unknown, thisArg: unknown, args: readonly unknown[] = []): unknown {
    if (this.isDisposed) return undefined;
    try {
      if (typeof callback === "string") return vm.runInContext(callback, this.context, { filename: "event" });
      if (typeof callback === "function") return Reflect.apply(callback, thisArg, args);
    } catch (err) {
      this.reportUncaught(err);
    }
    return undefined;
  }

  /**
   * Espruino's event queue: run `listeners` (a function, string of code, or live array of them) on
   * `target` with `args` after the current code returns, each call guarded.
   */
  queue(target: unknown, listeners: unknown, args: readonly unknown[] = []): void {
    if (this.isDisposed) return;
    this.pendingEvents++;
    void this.jobs.then(() => {
      this.pendingEvents--;
      this.runListeners(target, listeners, args);
    });
  }

  /**
   * Resolves once the event queue is empty, including events queued by the listeners it ran.
   * Needs no timers, so it works under a fake clock: `clock.tick(1000); await runtime.settle();`.
   */
  async settle(): Promise<void> {
    while (this.pendingEvents > 0 && !this.isDisposed) await this.jobs;
  }

  /** Queue `event` on `target` as the interpreter does for its own objects (sockets, Wifi, E). */
  emit(target: object, event: string, ...args: unknown[]): void {
    const listeners = this.listeners(target, event);
    if (listeners) this.queue(target, listeners, args);
  }

  /** The live listener array of `event` on `target`, if any. */
  listeners(target: object, event: string): unknown[] | undefined {
    const key = EVENT_PREFIX + event;
    if (!Object.prototype.hasOwnProperty.call(target, key)) return undefined;
    const list = (target as Record<string, unknown>)[key];
    return Array.isArray(list) && list.length > 0 ? list : undefined;
  }

  /** Register cleanup for dispose(); returns a function that unregisters it. */
  onDispose(fn: () => void): () => void {
    this.disposers.add(fn);
    return () => this.disposers.delete(fn);
  }

  /** Clear every timer (what reset() and load() do on the device). */
  clearTimers(): void {
    this.timers.clearAll();
  }

  /** Stop the device: clear its timers, close its sockets, drop queued events. Idempotent. */
  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    untrackRejections(this);
    this.timers.clearAll();
    const disposers = [...this.disposers];
    this.disposers.clear();
    const failures: unknown[] = [];
    for (const fn of disposers) {
      try {
        fn();
      } catch (err) {
        failures.push(err);
      }
    }
    if (failures.length > 0) throw new AggregateError(failures, `dispose of ${this.name} failed`);
  }

  private runListeners(target: unknown, listeners: unknown, args: readonly unknown[]): void {
    if (this.isDisposed) return;
    const list = Array.isArray(listeners) ? listeners : [listeners];
    this.handlingEvent = true;
    this.stopPropagation = false;
    try {
      for (let i = 0; i < list.length && !this.stopPropagation && !this.isDisposed; i++) {
        this.invoke(list[i], target, args);
      }
    } finally {
      this.handlingEvent = false;
      this.stopPropagation = false;
    }
  }

  /** jspEvaluateModule: the source runs in its own function scope with `exports`, `module`, this = exports. */
  private evaluateModule(source: string | Function, filename: string): unknown {
    const code = typeof source === "function" ? functionBody(source) : source;
    const fn = vm.compileFunction(code, ["exports", "module"], { parsingContext: this.context, filename });
    const module = this.newObject({ exports: this.newObject() as unknown });
    fn.call(module.exports, module.exports, module);
    return module.exports;
  }

  private installCore(): void {
    const { realm } = this;
    const g = this.global;
    const install = vm.runInContext(INSTALL_EVENTS_SOURCE, this.context, { filename: "espruino:events" });
    install({ queue: (target: object, listeners: unknown, args: unknown[]) => this.queue(target, listeners, args) });

    // setTime() moves the time of day; Espruino shifts its timers with it (jstSystemTimeChanged,
    // jsiLastIdleTime), so they fire after the same delays: here they run on the clock, unmoved.
    let offset = 0;
    const rtc: DeviceClock = this.options.rtc ?? { now: () => this.clock.Date.now() + offset, set: (ms) => (offset = ms - this.clock.Date.now()) };
    const now = () => rtc.now();
    g.setTime = (seconds: unknown) => rtc.set(Number(seconds) * 1000);
    g.Date = vm.runInContext(CLOCK_DATE_SOURCE, this.context, { filename: "espruino:date" })(now);
    const json = g.JSON as JSON;
    const stringify = json.stringify;
    json.stringify = ((value: unknown, replacer?: never, space?: never) => {
      const out = stringify.call(json, value, replacer, space);
      // Espruino gives the string "null" where V8 gives undefined (measured on 2v29: JSON.stringify(undefined))
      return typeof out === "string" ? espruinoEscapes(out) : value === undefined ? "null" : out;
    }) as JSON["stringify"];
    if (!this.options.keepMissingBuiltins) {
      vm.runInContext(REMOVE_MISSING_SOURCE, this.context, { filename: "espruino:builtins" })(MISSING_GLOBALS);
    }

    const timers = this.timers;
    g.setTimeout = (callback: unknown, ms?: unknown, ...args: unknown[]) => timers.set(callback, ms, args, false);
    g.setInterval = (callback: unknown, ms?: unknown, ...args: unknown[]) => timers.set(callback, ms, args, true);
    g.clearTimeout = (...args: unknown[]) => timers.clear(args, "Timeout");
    g.clearInterval = (...args: unknown[]) => timers.clear(args, "Interval");
    g.getTime = () => now() / 1000;

    const print = (...args: unknown[]) => this.print(formatArgs(args));
    g.print = print;
    g.console = this.newObject({ log: print, debug: print, info: print, warn: print, error: print });
    g.global = g;
    g.btoa = (s: unknown) => Buffer.from(String(s), "latin1").toString("base64");
    g.atob = (s: unknown) => Buffer.from(String(s), "base64").toString("latin1");

    g.E = this.newObject({
      toString: (...args: unknown[]) => bytesToString(args, realm),
      toUint8Array: (...args: unknown[]) => bytesToUint8Array(args, realm),
      CRC32: (data: unknown) => crc32(data),
      getSizeOf: (value: unknown) => sizeOfJsVars(value, new Set()),
      stopEventPropagation: () => {
        if (!this.handlingEvent) throw new realm.Error("E.stopEventPropagation() called when not handling events");
        this.stopPropagation = true;
      },
    });

    g.Modules = this.newObject({
      addCached: (name: string, source: string | Function) => this.addModule(name, source),
      removeCached: (name: unknown) => {
        if (typeof name !== "string") throw new realm.Error("First argument must be String");
        if (!this.moduleCache.delete(name)) throw new realm.Error(`Module ${JSON.stringify(name)} not found`);
      },
      removeAllCached: () => this.moduleCache.clear(),
      getCached: () => this.newArray(this.moduleCache.keys()),
    });
    g.require = (name: string) => this.require(name);
  }
}

// A device promise rejected with no handler: Espruino raises "Unhandled promise rejection: <value>"
// (src/jswrap_promise.c), printed as Uncaught. Node would instead end the whole process, so one
// process listener routes rejections of device promises to their device's console; any other
// rejection is rethrown as Node's default would, unless someone else (a test runner) listens too.
const liveRuntimes = new Set<Runtime>();

function onUnhandledRejection(reason: unknown, promise: Promise<unknown>): void {
  for (const runtime of liveRuntimes) {
    if (promise instanceof runtime.realm.Promise) {
      runtime.reportUncaught(new runtime.realm.Error(`Unhandled promise rejection: ${errorText(reason)}`));
      return;
    }
  }
  if (process.listenerCount("unhandledRejection") === 1) throw reason;
}

function trackRejections(runtime: Runtime): void {
  if (liveRuntimes.size === 0) process.on("unhandledRejection", onUnhandledRejection);
  liveRuntimes.add(runtime);
}

function untrackRejections(runtime: Runtime): void {
  liveRuntimes.delete(runtime);
  if (liveRuntimes.size === 0) process.off("unhandledRejection", onUnhandledRejection);
}

export function createRuntime(options: RuntimeOptions = {}): Runtime {
  return new Runtime(options);
}

/** Register the built file at `path` as module `name` in `runtime` (Modules.addCached semantics). */
export function loadModule(runtime: Runtime, path: string, name: string): void {
  runtime.loadModule(path, name);
}

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Path of a built file under dist/. */
export function distPath(file: string): string {
  return resolve(REPO_ROOT, "dist", file);
}

export interface LoadMqttOptions extends RuntimeOptions {
  /** Built MQTT module to load (default dist/mqtt.js). */
  path?: string;
}

/** A fresh runtime with dist/mqtt.js loaded as "wisp-mqtt". */
export function loadMqtt(options: LoadMqttOptions = {}): { runtime: Runtime; mqtt: any } {
  const { path = distPath("mqtt.js"), ...runtimeOptions } = options;
  if (!existsSync(path)) {
    throw new Error(`${path} not found: run \`npm run build\` first to produce dist/mqtt.js`);
  }
  const runtime = createRuntime(runtimeOptions);
  try {
    runtime.loadModule(path, "wisp-mqtt");
    return { runtime, mqtt: runtime.require("wisp-mqtt") };
  } catch (err) {
    runtime.dispose();
    throw err;
  }
}

function functionBody(fn: Function): string {
  const src = Function.prototype.toString.call(fn);
  const open = src.indexOf("{");
  const close = src.lastIndexOf("}");
  return open >= 0 && close > open ? src.slice(open + 1, close) : src;
}

// A rough JsVar count (about 14 bytes each on ESP32, ~10 string chars per block): enough to
// compare sizes, not to match the device exactly.
function sizeOfJsVars(value: unknown, seen: Set<object>): number {
  if (typeof value === "string") return Math.max(1, Math.ceil(value.length / 10));
  if (typeof value === "function") return 2 + Math.ceil(Function.prototype.toString.call(value).length / 10);
  if (typeof value !== "object" || value === null) return 1;
  if (seen.has(value)) return 0;
  seen.add(value);
  if (ArrayBuffer.isView(value)) return 2 + Math.ceil(value.byteLength / 10);
  let total = 1;
  for (const key of Object.getOwnPropertyNames(value)) {
    if (Array.isArray(value) && key === "length") continue;
    total += 1 + sizeOfJsVars((value as Record<string, unknown>)[key], seen);
  }
  return total;
}
