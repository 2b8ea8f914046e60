// The serial line between a host (a USB-serial bridge on a laptop, here a pseudo-terminal) and the
// simulated ESP32's console UART, as a discrete-event model in the node's time:
//
// - Bytes cross the line no faster than the baud rate (8N1: 10 bits a byte), both ways.
// - What the host sends lands in the board's receive buffer (`rxBytes`, default 1,024: the ESP32
//   UART driver's RX ring, targets/esp32/jshardwareUart.c uart_driver_install(…, 1024, …), and the
//   IO buffer of Espruino's Linux build). A byte that lands in a full buffer is lost, as on the chip.
// - Espruino sends XOFF (0x13) when the buffer is more than 6/8 full and XON (0x11) once it is down
//   to 3/8 (scripts/build_platform_config.py xoff_thresh/xon_thresh, src/jsdevices.c
//   jshSetFlowControlXON; the ESP32 console has XON/XOFF on, jshardwareUart.c initConsole). Flow
//   control bytes jump the transmit queue (jshGetCharToTransmit sends them first).
// - The UART hands what landed to the interpreter in bursts: when 120 bytes are waiting (the ESP-IDF
//   driver's RX FIFO full threshold) or when the line has been quiet for 10 byte times (its RX
//   timeout). The Ctrl-C check runs on each burst as it is handed over (src/jsdevices.c
//   jshPushIOCharEventsHandler, from the console task), before the interpreter has processed it.
// - The interpreter takes bytes one at a time when its CPU is free; the device says how long each
//   one kept it busy (flash writes, evaluating a line), and bytes keep landing meanwhile. Output
//   beyond the 1,024-byte transmit buffer (the UART driver's TX ring) blocks the interpreter until
//   the line has taken it, as jshTransmit waits: a console that echoes what it gets, and prints
//   results, falls behind a sender that sends at the full line rate.
//
// A sender that honours XOFF must stop within the headroom left above the XOFF mark (256 bytes at
// the default size). A host-side terminal's own IXON cannot hold back bytes it already wrote into
// the pseudo-terminal: they are on the wire.
//
// Nothing is paced while no host is attached: the device's output then goes only to `onOutput`
// (the node's log), so a simulation of many nodes pays nothing for the line.

import type { Clock } from "../runtime/timers.ts";

export const XON = 0x11;
export const XOFF = 0x13;
/** Bytes that make the UART hand a burst over (ESP-IDF UART RX FIFO full threshold). */
const BURST_BYTES = 120;
/** Byte times of quiet after which the UART hands over what it has (ESP-IDF RX timeout). */
const BURST_TIMEOUT_BYTES = 10;
/**
 * Output queued for the host at most. On the chip, print() blocks while the UART's buffer is full,
 * so a chatty program slows down; the simulator cannot hold the program, so it drops output beyond
 * this (about 1.4 s of line at 115,200 baud) and counts it in `txDropped`.
 */
const TX_QUEUE_MAX = 16 * 1024;
/**
 * A gap longer than this between two runs of the line is the simulator's own event loop being
 * late, not the board: the host's bytes wait on the wire through it instead of landing at once.
 */
const STALL_US = 50_000;

/** The board side of the line: the console that takes the bytes. */
export interface LineDevice {
  /** The UART hands a burst of received bytes to the interpreter's queue (the Ctrl-C check). */
  received(bytes: Uint8Array): void;
  /** The CPU takes one byte out of the buffer; returns the µs it was busy with it. */
  consume(byte: number): number;
  /** The receive buffer is empty again (the end of Espruino's idle-loop pass). */
  idle(): void;
}

export interface SerialLineOptions {
  clock: Clock;
  /** Bits per second (default 115,200). */
  baud?: number;
  /** Receive buffer size in bytes (default 1,024). */
  rxBytes?: number;
  /** Transmit buffer size in bytes (default 1,024). */
  txBytes?: number;
}

export class SerialLine {
  /** Bits per second the board's UART runs at now (setBaud changes it). */
  baud: number;
  readonly rxBytes: number;
  readonly txBytes: number;
  /** Bytes that landed in a full receive buffer and were dropped. */
  lost = 0;
  /** XOFFs the board sent. */
  xoffs = 0;
  /** Output dropped because the host's queue was full (see TX_QUEUE_MAX). */
  txDropped = 0;
  device: LineDevice | undefined;
  /** Device output as the board writes it (not paced): the node's console log. */
  onOutput: ((bytes: Uint8Array) => void) | undefined;
  /**
   * The board sends XOFF/XON as its buffer fills and drains (Espruino's console does; the ROM
   * bootloader and the flasher stub do not: their replies are SLIP packets, with no room for
   * stray bytes).
   */
  flowControl = true;

  private readonly clock: Clock;
  /** µs per byte on the wire. */
  private byteUs: number;
  /** A baud rate to switch to once what is queued for the host has left (setBaud). */
  private pendingBaud: number | undefined;
  private host: ((bytes: Uint8Array) => void) | undefined;
  private wire: Uint8Array[] = [];
  private wireOffset = 0;
  /** When the next byte on the wire lands, µs. */
  private landAt = 0;
  private rx: number[] = [];
  private rxHead = 0;
  /** rx[rxHead .. handed) have been handed to the interpreter; the rest wait in the UART. */
  private handed = 0;
  /** When the last byte landed, µs. */
  private lastLanding = 0;
  private busyUntil = 0;
  private tx: number[] = [];
  private txHead = 0;
  /** When the byte now being transmitted has left, µs. */
  private txAt = 0;
  private xoffSent = false;
  /** Bytes taken off the wire so far (whether they landed or were lost). */
  private wireBytes = 0;
  private faults: { at: number; kind: "corrupt" | "drop" }[] = [];
  private outFaults: { kind: "corrupt" | "drop"; match: (byte: number) => boolean; skip: number }[] = [];
  private timer: unknown;
  private timerAt = Infinity;
  private running = false;
  private lastRun = 0;

  constructor(options: SerialLineOptions) {
    this.clock = options.clock;
    this.baud = options.baud ?? 115_200;
    this.rxBytes = options.rxBytes ?? 1024;
    this.txBytes = options.txBytes ?? 1024;
    this.byteUs = 10e6 / this.baud;
  }

  /**
   * The UART changes its rate (CHANGE_BAUDRATE in the ROM bootloader, a reset back to the console's
   * rate): once everything already queued for the host has gone out at the old rate, as the
   * bootloader answers before it switches.
   */
  setBaud(baud: number): void {
    if (this.host && this.txHead < this.tx.length) {
      this.pendingBaud = baud;
      return;
    }
    this.applyBaud(baud);
  }

  private applyBaud(baud: number): void {
    this.pendingBaud = undefined;
    this.baud = baud;
    this.byteUs = 10e6 / baud;
  }

  /** A host is on the line (a pseudo-terminal or a test); its bytes arrive paced. */
  attachHost(receive: (bytes: Uint8Array) => void): void {
    this.host = receive;
  }

  detachHost(): void {
    this.host = undefined;
    this.tx = [];
    this.txHead = 0;
    if (this.pendingBaud !== undefined) this.applyBaud(this.pendingBaud);
  }

  get hostAttached(): boolean {
    return this.host !== undefined;
  }

  /** Bytes waiting in the receive buffer. */
  get rxUsed(): number {
    return this.rx.length - this.rxHead;
  }

  /** Bytes the interpreter has been handed and not yet processed. */
  private get queued(): number {
    return this.handed - this.rxHead;
  }

  /** The host sends bytes: they go on the wire and land at the baud rate. */
  write(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    const now = this.nowUs();
    if (this.wire.length === 0) this.landAt = Math.max(this.landAt, now) + this.byteUs;
    this.wire.push(bytes);
    this.run();
  }

  /** The board transmits. */
  send(data: string | Uint8Array): void {
    const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
    if (bytes.length === 0) return;
    this.onOutput?.(bytes);
    if (!this.host) return;
    if (this.tx.length - this.txHead > TX_QUEUE_MAX) {
      this.txDropped += bytes.length;
      return;
    }
    if (this.txHead === this.tx.length) this.txAt = Math.max(this.txAt, this.nowUs());
    for (const b of bytes) this.tx.push(b);
    this.schedule(this.nowUs());
  }

  /**
   * A fault on the line: the byte the host sends `after` bytes from now (0: the next one) arrives
   * with its bits inverted (`corrupt`) or not at all (`drop`), as noise on a long cable does.
   */
  injectFault(kind: "corrupt" | "drop", after = 0): void {
    const pending = this.wire.reduce((n, c) => n + c.length, 0) - this.wireOffset;
    this.faults.push({ at: this.wireBytes + pending + after, kind });
  }

  /**
   * A fault on the way to the host: the (`skip`+1)-th byte from now that the board sends and that
   * `match`es arrives inverted or not at all (a lost ACK: `injectOutputFault("drop", (b) => b === 6)`).
   */
  injectOutputFault(kind: "corrupt" | "drop", match: (byte: number) => boolean, skip = 0): void {
    this.outFaults.push({ kind, match, skip });
  }

  /** Output faults injected that have not met their byte yet. */
  get outputFaultsPending(): number {
    return this.outFaults.length;
  }

  private applyOutputFaults(bytes: Uint8Array): Uint8Array {
    if (this.outFaults.length === 0) return bytes;
    const out: number[] = [];
    for (const b of bytes) {
      const i = this.outFaults.findIndex((f) => f.match(b) && f.skip-- === 0);
      if (i < 0) out.push(b);
      else if (this.outFaults.splice(i, 1)[0]!.kind === "corrupt") out.push(b ^ 0xff);
    }
    return Uint8Array.from(out);
  }

  /** Drop everything in flight (power off): the wire, the buffer, the transmit queue. */
  clear(): void {
    this.wire = [];
    this.wireOffset = 0;
    this.rx = [];
    this.rxHead = 0;
    this.handed = 0;
    this.tx = [];
    this.txHead = 0;
    this.xoffSent = false;
    this.busyUntil = 0;
    if (this.pendingBaud !== undefined) this.applyBaud(this.pendingBaud);
  }

  /** Stop the line's timer (end of simulation). */
  dispose(): void {
    this.clear();
    this.host = undefined;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  private nowUs(): number {
    return this.clock.Date.now() * 1000;
  }

  /** Simulate up to now, then set a timer for the next thing that will happen. */
  private run(): void {
    if (this.running) return;
    this.running = true;
    try {
      const now = this.nowUs();
      if (now - this.lastRun > STALL_US && this.wire.length > 0) this.landAt = Math.max(this.landAt, now - STALL_US);
      this.lastRun = now;
      this.advance(now);
      this.transmit(now);
      this.schedule(now);
    } finally {
      this.running = false;
    }
  }

  /** When the UART's RX timeout hands over what waits in it, µs. */
  private get timeoutAt(): number {
    return this.rx.length > this.handed ? this.lastLanding + BURST_TIMEOUT_BYTES * this.byteUs : Infinity;
  }

  private handOver(): void {
    const burst = Uint8Array.from(this.rx.slice(this.handed));
    this.handed = this.rx.length;
    this.device?.received(burst);
  }

  private advance(now: number): void {
    const device = this.device;
    for (;;) {
      const landing = this.wire.length > 0 ? this.landAt : Infinity;
      const free = this.queued > 0 ? this.busyUntil : Infinity;
      const timeout = this.timeoutAt;
      if (timeout <= landing && timeout <= free && timeout <= now) {
        if (this.queued === 0) this.busyUntil = Math.max(this.busyUntil, timeout);
        this.handOver();
      } else if (free <= landing && free <= now) {
        const byte = this.rx[this.rxHead++]!;
        const busy = device ? device.consume(byte) : 0;
        this.busyUntil = Math.max(this.busyUntil, free) + busy;
        // output that does not fit the transmit buffer holds the CPU until the line has taken it
        const backlog = this.txPending(this.busyUntil) - this.txBytes;
        if (backlog > 0) this.busyUntil += backlog * this.byteUs;
        if (this.rxHead > 4096) {
          this.rx = this.rx.slice(this.rxHead);
          this.handed -= this.rxHead;
          this.rxHead = 0;
        }
        if (this.xoffSent && this.rxUsed <= (this.rxBytes * 3) / 8) {
          this.xoffSent = false;
          this.priority(XON, free);
        }
        if (this.rxUsed === 0) device?.idle();
      } else if (landing <= now) {
        const chunk = this.wire[0]!;
        let byte = chunk[this.wireOffset++]!;
        const fault = this.faults.length ? this.faults.findIndex((f) => f.at === this.wireBytes) : -1;
        this.wireBytes++;
        if (this.wireOffset >= chunk.length) {
          this.wire.shift();
          this.wireOffset = 0;
        }
        this.landAt = landing + this.byteUs;
        if (fault >= 0) {
          const kind = this.faults.splice(fault, 1)[0]!.kind;
          if (kind === "drop") continue;
          byte ^= 0xff;
        }
        if (this.rxUsed >= this.rxBytes) {
          this.lost++;
          continue;
        }
        this.rx.push(byte);
        this.lastLanding = landing;
        if (this.rx.length - this.handed >= BURST_BYTES) {
          if (this.queued === 0) this.busyUntil = Math.max(this.busyUntil, landing);
          this.handOver();
        }
        if (this.flowControl && !this.xoffSent && this.rxUsed > (this.rxBytes * 6) / 8) {
          this.xoffSent = true;
          this.xoffs++;
          this.priority(XOFF, landing);
        }
      } else {
        return;
      }
    }
  }

  /** Milliseconds until what the board sent so far has crossed the line (0: nothing waits). */
  get txBusyMs(): number {
    if (this.txHead === this.tx.length) return 0;
    // bytes whose time has come are still queued until the line's next run hands them over
    return Math.max(1, (this.txPending(this.nowUs()) * this.byteUs) / 1000);
  }

  /** Bytes of output still waiting to cross the line at time `at` (µs). */
  private txPending(at: number): number {
    const queued = this.tx.length - this.txHead;
    if (queued === 0) return 0;
    return Math.max(0, queued - Math.max(0, Math.floor((at - this.txAt) / this.byteUs)));
  }

  /** A flow-control byte goes out before anything queued. */
  private priority(byte: number, at: number): void {
    this.onOutput?.(Uint8Array.of(byte));
    if (!this.host) return;
    if (this.txHead === this.tx.length) this.txAt = Math.max(this.txAt, at);
    this.tx.splice(this.txHead, 0, byte);
  }

  /** Hand the host every byte that has finished crossing the line by now. */
  private transmit(now: number): void {
    if (!this.host || this.txHead === this.tx.length) return;
    const n = Math.min(this.tx.length - this.txHead, Math.floor((now - this.txAt) / this.byteUs));
    if (n <= 0) return;
    const out = this.applyOutputFaults(Uint8Array.from(this.tx.slice(this.txHead, this.txHead + n)));
    this.txHead += n;
    this.txAt += n * this.byteUs;
    if (this.txHead === this.tx.length) {
      this.tx = [];
      this.txHead = 0;
      if (this.pendingBaud !== undefined) this.applyBaud(this.pendingBaud);
    }
    this.host(out);
  }

  private schedule(now: number): void {
    let next = Infinity;
    if (this.wire.length > 0) next = Math.min(next, this.landAt);
    if (this.queued > 0) next = Math.min(next, this.busyUntil);
    next = Math.min(next, this.timeoutAt);
    if (this.host && this.txHead < this.tx.length) next = Math.min(next, this.txAt + this.byteUs);
    if (next === Infinity) return;
    // Timers have ms resolution: run at least 1 ms later, in batches of what happened meanwhile.
    const at = Math.max(Math.ceil(next / 1000), Math.floor(now / 1000) + 1);
    if (this.timer !== undefined && this.timerAt <= at) return;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.run();
    }, at - this.clock.Date.now());
  }
}
