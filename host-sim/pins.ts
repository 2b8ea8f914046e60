// GPIO of a simulated ESP32: the globals D0..D39 (Pin objects), LED1/BTN1 from the board file,
// digitalWrite/digitalRead/pinMode/getPinMode, following Espruino (src/jswrap_io.c, jswrap_pin.c):
// - A Pin is a number to Espruino (`D2 == 2`, any function taking a pin takes the number).
// - digitalWrite/Pin.write on a pin in automatic mode makes it an output.
// - digitalRead of an input reads the external level (host-set; pull-up/pull-down when floating);
//   of an output, what it drives. digitalWrite/digitalRead accept an array of pins (MSB first).
// - pin.read() returns a boolean; digitalRead a number.
// Pins are hardware: the host keeps their levels across soft resets, which only reset the modes.

import vm from "node:vm";
import type { Board } from "../boards/types.ts";
import type { Runtime } from "./runtime.ts";

export type PinMode =
  | "analog" | "input" | "input_pullup" | "input_pulldown" | "output" | "opendrain" | "opendrain_pullup"
  | "af_output" | "af_opendrain" | "auto";
const MODES = new Set<string>(["analog", "input", "input_pullup", "input_pulldown", "output", "opendrain", "opendrain_pullup", "af_output", "af_opendrain"]);

export const ESP32_PIN_COUNT = 40;

interface PinState {
  mode: PinMode;
  /** Automatic: the next write/read picks the mode (Espruino's default). */
  auto: boolean;
  output: boolean;
  /** Level driven from outside (a button, another chip); undefined = floating. */
  external: boolean | undefined;
}

/** The GPIO block of one node, visible to the host (LED state for the view, buttons for tests). */
export class PinBank {
  readonly count: number;
  private readonly pins: PinState[];
  /** Called whenever an output level changes. */
  onChange: ((pin: number, level: boolean) => void) | undefined;

  constructor(count = ESP32_PIN_COUNT) {
    this.count = count;
    this.pins = Array.from({ length: count }, () => ({ mode: "input" as PinMode, auto: true, output: false, external: undefined }));
  }

  /** What a pin drives (outputs) or reads (inputs). */
  level(pin: number): boolean {
    const p = this.state(pin);
    if (isOutput(p.mode)) return p.output;
    if (p.external !== undefined) return p.external;
    return p.mode === "input_pullup" || p.mode === "opendrain_pullup";
  }

  mode(pin: number): PinMode {
    return this.state(pin).mode;
  }

  /** Drive an input from outside; undefined lets it float. */
  setExternal(pin: number, level: boolean | undefined): void {
    this.state(pin).external = level;
  }

  /** Soft reset (jshReset): every pin back to an automatic input; outputs stop driving. */
  resetModes(): void {
    this.pins.forEach((p, i) => {
      const was = isOutput(p.mode) && p.output;
      p.mode = "input";
      p.auto = true;
      p.output = false;
      if (was) this.onChange?.(i, false);
    });
  }

  write(pin: number, value: boolean): void {
    const p = this.state(pin);
    if (p.auto && !isOutput(p.mode)) p.mode = "output";
    const changed = p.output !== value;
    p.output = value;
    if (changed && isOutput(p.mode)) this.onChange?.(pin, value);
  }

  read(pin: number): boolean {
    const p = this.state(pin);
    if (p.auto && isOutput(p.mode)) p.mode = "input";
    return this.level(pin);
  }

  setMode(pin: number, mode: PinMode, automatic: boolean): void {
    const p = this.state(pin);
    const wasDriving = isOutput(p.mode) && p.output;
    p.mode = mode === "auto" ? "input" : mode;
    p.auto = mode === "auto" || automatic;
    const driving = isOutput(p.mode) && p.output;
    if (wasDriving !== driving) this.onChange?.(pin, driving);
  }

  private state(pin: number): PinState {
    const p = this.pins[pin];
    if (!p) throw new RangeError(`no pin ${pin}`);
    return p;
  }
}

function isOutput(mode: PinMode): boolean {
  return mode === "output" || mode === "opendrain" || mode === "opendrain_pullup" || mode === "af_output" || mode === "af_opendrain";
}

// The Pin class lives in the device's realm so `D2 instanceof Pin` and printing work there.
const PIN_CLASS_SOURCE = `(function (host) {
  function Pin(n) {
    if (!(this instanceof Pin)) return new Pin(n);
    Object.defineProperty(this, "n", { value: Number(n) | 0 });
  }
  Pin.prototype.valueOf = function () { return this.n; };
  Pin.prototype.toString = function () { return "D" + this.n; };
  Pin.prototype.toJSON = function () { return "D" + this.n; };
  Pin.prototype.read = function () { return host.read(this.n); };
  Pin.prototype.write = function (v) { host.write(this.n, !!v); };
  Pin.prototype.set = function () { host.write(this.n, true); };
  Pin.prototype.reset = function () { host.write(this.n, false); };
  Pin.prototype.toggle = function () { var v = !host.level(this.n); host.write(this.n, v); return v; };
  Pin.prototype.mode = function (m) { host.mode(this.n, m, false); };
  Pin.prototype.getMode = function () { return host.getMode(this.n); };
  Pin.prototype.getInfo = function () { return { port: "D", num: this.n, channels: {} }; };
  return Pin;
})`;

/** Runtime plugin: Pin, D0..D39, LED1/BTN1 of `board`, and the digital I/O functions, backed by `bank`. */
export function pinsPlugin(bank: PinBank, board?: Pick<Board, "led" | "button">): (runtime: Runtime) => void {
  return (runtime) => {
    const { realm } = runtime;
    const pinNumber = (pin: unknown): number => {
      const n = Number(pin);
      if (!Number.isInteger(n) || n < 0 || n >= bank.count) throw new realm.Error(`Invalid pin ${String(pin)}`);
      return n;
    };
    const checkMode = (mode: unknown): PinMode => {
      if (mode === undefined || mode === "auto") return "auto";
      if (typeof mode !== "string" || !MODES.has(mode)) throw new realm.Error(`Unknown pin mode ${String(mode)}`);
      return mode as PinMode;
    };
    const host = {
      read: (n: number) => bank.read(n),
      write: (n: number, v: boolean) => bank.write(n, v),
      level: (n: number) => bank.level(n),
      mode: (n: number, m: unknown, automatic: boolean) => bank.setMode(n, checkMode(m), automatic),
      getMode: (n: number) => bank.mode(n),
    };
    const Pin = vm.runInContext(PIN_CLASS_SOURCE, runtime.context, { filename: "espruino:pins" })(host);
    runtime.defineGlobal("Pin", Pin);
    const pins: unknown[] = [];
    for (let n = 0; n < bank.count; n++) {
      pins.push(new Pin(n));
      runtime.defineGlobal(`D${n}`, pins[n]);
    }
    if (board?.led) runtime.defineGlobal("LED1", pins[board.led.pin]);
    if (board?.button) runtime.defineGlobal("BTN1", pins[board.button.pin]);

    const eachPin = (pin: unknown, fn: (n: number, bit: number) => void): void => {
      if (Array.isArray(pin)) pin.forEach((p, i) => fn(pinNumber(p), pin.length - 1 - i));
      else fn(pinNumber(pin), 0);
    };
    runtime.defineGlobal("digitalWrite", (pin: unknown, value: unknown) => {
      const v = Number(value) | 0;
      eachPin(pin, (n, bit) => bank.write(n, ((v >> bit) & 1) === 1));
    });
    runtime.defineGlobal("digitalRead", (pin: unknown) => {
      let value = 0;
      eachPin(pin, (n, bit) => {
        if (bank.read(n)) value |= 1 << bit;
      });
      return value;
    });
    runtime.defineGlobal("pinMode", (pin: unknown, mode?: unknown, automatic?: unknown) => {
      bank.setMode(pinNumber(pin), checkMode(mode), automatic === true);
    });
    runtime.defineGlobal("getPinMode", (pin: unknown) => bank.mode(pinNumber(pin)));
    runtime.onDispose(() => bank.resetModes());
  };
}
