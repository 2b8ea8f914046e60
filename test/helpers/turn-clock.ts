// A host clock that keeps time as Node's event loop does, deterministically: timers are timed from
// the loop time, read once at the start of each turn, while Date.now() moves on as the turn's work
// takes time (`spend(ms)`). So a timer set late in a busy turn can fire before Date.now() has moved
// by its delay — what a loaded machine, or a node sampling several sensors in one callback, does to
// the simulator on Node's real timers. A host-sim Clock.
import type { Clock } from "../../host-sim/runtime.ts";

interface Entry {
  id: number;
  at: number;
  callback: () => void;
  every?: number;
}

export class TurnClock implements Clock {
  /** The host's real time. */
  private time: number;
  /** The loop time of the current turn: the base of every timer set during it (as libuv's uv_now). */
  private loop: number;
  private nextId = 1;
  private entries: Entry[] = [];
  readonly Date = { now: () => this.time };

  constructor(start: number) {
    this.time = this.loop = start;
  }

  /** Work that takes `ms` of the host's time, in this turn. */
  spend(ms: number): void {
    this.time += ms;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    return this.add(callback, ms);
  }
  setInterval(callback: () => void, ms: number): unknown {
    return this.add(callback, ms, Math.max(1, ms));
  }
  clearTimeout(handle: unknown): void {
    this.entries = this.entries.filter((e) => e.id !== handle);
  }
  clearInterval(handle: unknown): void {
    this.clearTimeout(handle);
  }

  /**
   * Run turns until the time reaches `until`: each turn takes the loop time, runs every timer due by
   * it, then lets the real event loop run (sockets) before the next. With nothing due, the time
   * jumps to the next timer.
   */
  async runUntil(until: number): Promise<void> {
    while (this.time < until) {
      this.loop = this.time;
      const due = this.entries.filter((e) => e.at <= this.loop).sort((a, b) => a.at - b.at || a.id - b.id);
      if (due.length === 0) this.time = Math.max(this.time, Math.min(until, ...this.entries.map((e) => e.at)));
      for (const e of due) {
        if (!this.entries.includes(e)) continue; // cleared by an earlier callback of this turn
        if (e.every) e.at += e.every;
        else this.clearTimeout(e.id);
        e.callback();
      }
      await new Promise((r) => setImmediate(r));
    }
  }

  private add(callback: () => void, ms: number, every?: number): number {
    const id = this.nextId++;
    // from the loop time of this turn, not from Date.now(); under 1 ms is 1 ms (Node's rule)
    this.entries.push({ id, at: this.loop + Math.max(1, Number(ms) || 0), callback, every });
    return id;
  }
}
