// Espruino's timers (src/jswrap_interactive.c, src/jsinteractive.c, 2v29), scheduled on a clock:
// - setTimeout/setInterval take a function or a string of code, then extra arguments for it; a
//   delay that is NaN or below 0.1 ms becomes 0.1 ms; above 100 years is an Error.
// - The id is a small integer: one more than the highest live id, or 1 when none is live
//   (jsiTimerAdd → jsvArrayAddToEnd), so ids are reused once the table empties.
// - Timeouts and intervals share one table: clearTimeout can clear an interval and vice versa.
//   clearTimeout() with no argument clears every timer; clearTimeout(undefined) throws
//   "clearTimeout(undefined) not allowed. Use clearTimeout() instead"; an unknown id is ignored.
// - A timer is due its delay after the call (the time is taken then, relative to jsiLastIdleTime), and
//   an interval's next time is its last one plus the interval, so neither ever runs early.
//   Node's timers count from the start of the event loop's turn: one set late in a busy turn can fire
//   before Date.now() has moved by its delay, and a chip model still busy for that time (an SCD4x
//   after a command, datasheet 3.3) would refuse the read. So a timer the host fires early is put
//   back for the rest of its time.

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
  /** One-shot host timeouts that finish the interval's firings the host made early. */
  rests?: Set<unknown>;
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
    let due = clock.Date.now() + delay;
    // due when Date.now() reaches it; a sub-ms timer on a whole-ms clock (Node's Date) needs no tick of it
    const at = () => (delay < 1 ? Math.floor(due) : due);
    const run = () => {
      if (!repeat) this.timers.delete(id);
      this.host.invoke(callback, args);
    };
    const fire = () => {
      const when = at();
      if (repeat) due += delay;
      let now = clock.Date.now();
      if (when <= now) return run();
      // a timeout waits on in its own slot; an interval's host timer goes on beside the rest
      if (!repeat) return void (timer.handle = clock.setTimeout(fire, when - now));
      const rests = (timer.rests ??= new Set());
      const wait = () => {
        const handle = clock.setTimeout(() => {
          rests.delete(handle);
          now = clock.Date.now();
          if (when <= now) run();
          else wait();
        }, when - now);
        rests.add(handle);
      };
      wait();
    };
    const timer: Timer = { handle: undefined, repeat };
    timer.handle = repeat ? clock.setInterval(fire, delay) : clock.setTimeout(fire, delay);
    this.timers.set(id, timer);
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
    for (const handle of timer.rests ?? []) this.host.clock.clearTimeout(handle);
  }
}
