// Espruino's timers (src/jswrap_interactive.c, src/jsinteractive.c, 2v29), scheduled on a clock:
// - setTimeout/setInterval take a function or a string of code, then extra arguments for it; a
//   delay that is NaN or below 0.1 ms becomes 0.1 ms; above 100 years is an Error.
// - The id is a small integer: one more than the highest live id, or 1 when none is live
//   (jsiTimerAdd → jsvArrayAddToEnd), so ids are reused once the table empties.
// - Timeouts and intervals share one table: clearTimeout can clear an interval and vice versa.
//   clearTimeout() with no argument clears every timer; clearTimeout(undefined) throws
//   "clearTimeout(undefined) not allowed. Use clearTimeout() instead"; an unknown id is ignored.

/** What drives the device's time: Node's timers, or a @sinonjs/fake-timers clock. */
export interface Clock {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: any): void;
  setInterval(callback: () => void, ms: number): unknown;
  clearInterval(handle: any): void;
  Date: { now(): number };
}

// Looked up at each call, so a fake clock installed on the globals later is followed too.
export const realClock: Clock = {
  setTimeout: (cb, ms) => setTimeout(cb, ms),
  clearTimeout: (h) => clearTimeout(h),
  setInterval: (cb, ms) => setInterval(cb, ms),
  clearInterval: (h) => clearInterval(h),
  Date: { now: () => Date.now() },
};

/**
 * Node time running `speed` times faster than wall time (wisp sim --speed): timers fire after
 * ms/speed of wall time and Date.now() advances `speed` ms per wall ms from `origin`. Sockets and
 * anything outside the nodes stay in wall time. speed 1 is realClock.
 */
export function scaledClock(speed: number, origin = Date.now()): Clock {
  if (speed === 1) return realClock;
  const wall = (ms: number) => Math.max(0, Number(ms) || 0) / speed;
  return {
    setTimeout: (cb, ms) => setTimeout(cb, wall(ms)),
    clearTimeout: (h) => clearTimeout(h),
    setInterval: (cb, ms) => setInterval(cb, wall(ms)),
    clearInterval: (h) => clearInterval(h),
    Date: { now: () => origin + (Date.now() - origin) * speed },
  };
}

const MIN_INTERVAL_MS = 0.1;
const MAX_INTERVAL_MS = 3153600000000;

interface Timer {
  handle: unknown;
  repeat: boolean;
}

export interface TimerHost {
  clock: Clock;
  /** Run a device callback; a throw is reported on the device console, never rethrown. */
  invoke(callback: unknown, args: unknown[]): void;
  Error: ErrorConstructor;
}

export class TimerTable {
  private readonly timers = new Map<number, Timer>();

  constructor(private readonly host: TimerHost) {}

  get size(): number {
    return this.timers.size;
  }

  set(callback: unknown, ms: unknown, args: unknown[], repeat: boolean): number {
    if (typeof callback !== "function" && typeof callback !== "string")
      throw new this.host.Error("Function or String not supplied!");
    let delay = Number(ms);
    if (Number.isNaN(delay) || delay < MIN_INTERVAL_MS) delay = MIN_INTERVAL_MS;
    if (delay > MAX_INTERVAL_MS) throw new this.host.Error("Interval is too long (>100 years)");
    let id = 1;
    for (const existing of this.timers.keys()) if (existing >= id) id = existing + 1;
    const { clock } = this.host;
    const fire = () => {
      if (!repeat) this.timers.delete(id);
      this.host.invoke(callback, args);
    };
    const handle = repeat ? clock.setInterval(fire, delay) : clock.setTimeout(fire, delay);
    this.timers.set(id, { handle, repeat });
    return id;
  }

  /** clearTimeout/clearInterval with the device's raw argument list. */
  clear(args: unknown[], kind: "Timeout" | "Interval"): void {
    if (args.length === 0) return this.clearAll();
    const id = args[0];
    if (id === undefined) throw new this.host.Error(`clear${kind}(undefined) not allowed. Use clear${kind}() instead`);
    const key = Number(id);
    const timer = this.timers.get(key);
    if (!timer) return;
    this.cancel(timer);
    this.timers.delete(key);
  }

  clearAll(): void {
    for (const timer of this.timers.values()) this.cancel(timer);
    this.timers.clear();
  }

  private cancel(timer: Timer): void {
    if (timer.repeat) this.host.clock.clearInterval(timer.handle);
    else this.host.clock.clearTimeout(timer.handle);
  }
}
