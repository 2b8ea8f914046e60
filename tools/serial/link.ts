// A conversation with an Espruino board's console over a byte transport (serialport on a USB
// serial port, a pseudo-terminal of a simulated board, or serialport's mock binding in tests):
// get a prompt, ask what the board is, evaluate expressions, write files with the packet protocol
// and check them by CRC-32, then load() and watch the console.
//
// What goes out is paced to the line: at most `AHEAD_BYTES` beyond what the line can have sent
// at the baud rate, and nothing while the board has sent XOFF, so the board's 1,024-byte receive
// buffer never overflows even while it is busy writing flash.

import { crc32 } from "node:zlib";
import { ConsoleLines } from "./lines.ts";
import {
  ConsoleReader,
  type ConsoleEvent,
  CTRL_C,
  ENQ,
  hasPacketProtocol,
  jsString,
  packet,
  PacketType,
  padToSafe,
  parseIdentity,
  parseResponse,
  planChunks,
  unsafeByte,
} from "./protocol.ts";

/** The byte pipe to the board. */
export interface Transport {
  write(bytes: Uint8Array): void;
  /** Bytes from the board. */
  onData(listener: (bytes: Uint8Array) => void): void;
  /** The transport closed by itself (the board was unplugged); `err` says why. */
  onClose(listener: (err?: Error) => void): void;
  close(): Promise<void>;
}

/** An error that names its cause and what to do about it; `code` sorts them for callers. */
export class LinkError extends Error {
  constructor(
    message: string,
    readonly code: "no-prompt" | "no-interpreter" | "old-interpreter" | "wrong-board" | "nak" | "timeout" | "crc" | "closed" | "eval" | "storage" | "resync",
  ) {
    super(message);
  }
}

/** Bytes written ahead of the line at most (a USB bridge's FIFO and the board's XOFF headroom allow more). */
const AHEAD_BYTES = 128;
/** Bytes handed to the transport at once. */
const WRITE_CHUNK = 64;
/** ms to wait for an ACK or NAK after the last byte of a packet: the board NAKs an incomplete packet 5 s after its start. */
const ACK_TIMEOUT_MS = 6000;
/** Attempts per packet (NAK or no answer) and per file (CRC mismatch). */
const PACKET_ATTEMPTS = 3;
const FILE_ATTEMPTS = 3;
/**
 * ms an XOFF holds the output at most: a board sends XON once its buffer has room, so a pause this
 * long means the XON was lost (the board reset, or the byte was noise, or the app printed it).
 */
const XOFF_TIMEOUT_MS = 3000;
/** Linux builds of Espruino exit on a second Ctrl-C within 5 s: never send two that close. */
const CTRL_C_SPACING_MS = 5500;

/** What the link measures time with: the real one by default; tests hand in a fake clock. */
export interface LinkClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realClock: LinkClock = {
  now: () => performance.now(),
  setTimeout: (cb, ms) => setTimeout(cb, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface LinkOptions {
  /** Line rate, for pacing (default 115,200). */
  baud?: number;
  clock?: LinkClock;
  /** Every byte of console text the board sends (for --monitor, logs). */
  onText?: (text: string) => void;
}

export interface Identity {
  /** `2v29` */
  version: string;
  major: number;
  minor: number;
  /** process.env.BOARD: `ESP32`, `ESP32C3`, `LINUX`, … */
  board: string;
}

export interface FileProgress {
  file: string;
  /** Bytes of this file acknowledged by the board. */
  sent: number;
  size: number;
}

interface Waiter {
  match: (e: ConsoleEvent) => boolean;
  resolve: (e: ConsoleEvent) => void;
  reject: (err: LinkError) => void;
}

interface TextWaiter {
  re: RegExp;
  /** Console text since the waiter was made. */
  seen: string;
  resolve: (m: RegExpExecArray) => void;
  reject: (err: LinkError) => void;
}

export class ConsoleLink {
  /** Console text received so far (trimmed to the last 64 KB). */
  text = "";
  /** Packets resent after a NAK or no answer, files resent after a CRC mismatch. */
  readonly retries = { packets: 0, files: 0 };

  private readonly transport: Transport;
  private readonly byteMs: number;
  private readonly textListeners: ((text: string) => void)[] = [];
  /** Resolves when the port closes, by itself or by close(). */
  readonly closedPromise: Promise<LinkError>;
  private resolveClosed!: (err: LinkError) => void;
  private readonly reader: ConsoleReader;
  private waiters: Waiter[] = [];
  private textWaiters: TextWaiter[] = [];
  /** Total console text ever received. */
  private textOffset = 0;
  /** Total bytes ever received. */
  private received = 0;
  private outbox: Uint8Array[] = [];
  private drained: { resolve: () => void; reject: (err: LinkError) => void }[] = [];
  private paused = false;
  private pauseTimer: unknown;
  /** When (ms) the line will have sent everything written so far. */
  private lineFreeAt = 0;
  private pumpTimer: unknown;
  private readonly clock: LinkClock;
  private lastCtrlC = -Infinity;
  private closedError: LinkError | undefined;

  constructor(transport: Transport, options: LinkOptions = {}) {
    this.transport = transport;
    this.byteMs = 10_000 / (options.baud ?? 115_200);
    this.clock = options.clock ?? realClock;
    if (options.onText) this.textListeners.push(options.onText);
    this.closedPromise = new Promise((resolve) => (this.resolveClosed = resolve));
    this.reader = new ConsoleReader((e) => this.event(e));
    transport.onData((bytes) => {
      this.received += bytes.length;
      this.reader.push(bytes);
    });
    transport.onClose((err) => this.closed(err));
  }

  /** Also hand every piece of console text to `listener`. */
  onTextListener(listener: (text: string) => void): void {
    this.textListeners.push(listener);
  }

  // --- output, paced --------------------------------------------------------------------------

  /** Queue bytes for the board; resolves once the last of them has been handed to the transport. */
  send(bytes: Uint8Array | string): Promise<void> {
    this.check();
    this.outbox.push(typeof bytes === "string" ? Buffer.from(bytes, "latin1") : bytes);
    const done = new Promise<void>((resolve, reject) => this.drained.push({ resolve, reject }));
    this.pump();
    return done;
  }

  private pump(): void {
    if (this.pumpTimer || this.closedError) return;
    for (;;) {
      if (this.outbox.length === 0) {
        for (const d of this.drained.splice(0)) d.resolve();
        return;
      }
      if (this.paused) return; // XON pumps again
      const now = this.clock.now();
      this.lineFreeAt = Math.max(this.lineFreeAt, now);
      const ahead = (this.lineFreeAt - now) / this.byteMs;
      if (ahead > AHEAD_BYTES - WRITE_CHUNK) {
        this.pumpTimer = this.clock.setTimeout(() => {
          this.pumpTimer = undefined;
          this.pump();
        }, Math.max(1, (ahead - (AHEAD_BYTES - WRITE_CHUNK)) * this.byteMs));
        return;
      }
      const head = this.outbox[0]!;
      const chunk = head.subarray(0, WRITE_CHUNK);
      if (chunk.length === head.length) this.outbox.shift();
      else this.outbox[0] = head.subarray(WRITE_CHUNK);
      this.transport.write(chunk);
      this.lineFreeAt += chunk.length * this.byteMs;
    }
  }

  private resume(): void {
    if (this.pauseTimer !== undefined) this.clock.clearTimeout(this.pauseTimer);
    this.pauseTimer = undefined;
    this.paused = false;
    this.pump();
  }

  // --- input ------------------------------------------------------------------------------------

  private event(e: ConsoleEvent): void {
    if (e.kind === "xoff") {
      this.paused = true;
      if (this.pauseTimer === undefined) this.pauseTimer = this.clock.setTimeout(() => this.resume(), XOFF_TIMEOUT_MS);
      return;
    }
    if (e.kind === "xon") {
      this.resume();
      return;
    }
    if (e.kind === "text") {
      this.text = (this.text + e.text).slice(-65536);
      this.textOffset += e.text.length;
      for (const l of this.textListeners) l(e.text);
      for (const w of [...this.textWaiters]) {
        w.seen += e.text;
        const m = w.re.exec(w.seen);
        if (m) {
          this.textWaiters.splice(this.textWaiters.indexOf(w), 1);
          w.resolve(m);
        } else if (w.seen.length > 65536) w.seen = w.seen.slice(-4096);
      }
      return;
    }
    const i = this.waiters.findIndex((w) => w.match(e));
    if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(e);
  }

  /**
   * Resolves with the next event that `match`es; rejects after `ms` or when the port closes. Set
   * it up before sending what it answers: replies can arrive together with what came before.
   */
  private next(match: (e: ConsoleEvent) => boolean, ms: number, what: string): Promise<ConsoleEvent> & { cancel(): void } {
    this.check();
    let waiter!: Waiter;
    let timer: unknown;
    const promise = new Promise<ConsoleEvent>((resolve, reject) => {
      timer = this.clock.setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new LinkError(`no ${what} from the board within ${Math.round(ms / 1000)} s`, "timeout"));
      }, ms);
      waiter = {
        match,
        resolve: (e) => {
          this.clock.clearTimeout(timer);
          resolve(e);
        },
        reject: (err) => {
          this.clock.clearTimeout(timer);
          reject(err);
        },
      };
      this.waiters.push(waiter);
    });
    return Object.assign(promise, {
      cancel: () => {
        this.clock.clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
      },
    });
  }

  /** Resolves with the first match of `re` in the console text that arrives from now on. */
  waitForText(re: RegExp, ms: number): Promise<RegExpExecArray> {
    this.check();
    return new Promise((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.textWaiters = this.textWaiters.filter((w) => w !== waiter);
        reject(new LinkError(`the board did not print ${re} within ${Math.round(ms / 1000)} s`, "timeout"));
      }, ms);
      const waiter: TextWaiter = {
        re,
        seen: "",
        resolve: (m) => {
          this.clock.clearTimeout(timer);
          resolve(m);
        },
        reject: (err) => {
          this.clock.clearTimeout(timer);
          reject(err);
        },
      };
      this.textWaiters.push(waiter);
    });
  }

  /** Resolves once the board has sent nothing (no byte at all) for `quietMs` (at most `maxMs`). */
  async quiet(quietMs: number, maxMs = 10_000): Promise<void> {
    const start = this.clock.now();
    let seen = this.received;
    let since = this.clock.now();
    while (this.clock.now() - start < maxMs) {
      await this.sleep(Math.min(50, quietMs));
      this.check();
      if (this.received !== seen) {
        seen = this.received;
        since = this.clock.now();
      } else if (this.clock.now() - since >= quietMs) return;
    }
  }

  // --- the console ------------------------------------------------------------------------------

  /** Ctrl-C: interrupts running code and clears the input line. At most one per 5.5 s. */
  async interrupt(): Promise<void> {
    const wait = this.lastCtrlC + CTRL_C_SPACING_MS - this.clock.now();
    if (wait > 0) await this.sleep(wait);
    this.lastCtrlC = this.clock.now();
    await this.send(Uint8Array.of(CTRL_C));
  }

  /**
   * Gets the board's attention and asks what it is: Ctrl-C, then Ctrl-E (2v25+ answers
   * `Espruino 2v29 ESP32`); before 2v25 Ctrl-E means nothing, so a line of code asks next. A board
   * in the middle of a packet takes all of that as packet data until its 5 s packet timeout, so one
   * more Ctrl-E follows that. `quick`: the first Ctrl-C and Ctrl-E only (about a second).
   * `unlike`: when the first round gets no answer, what the board printed may already say why
   * (the ROM's messages of a board without an interpreter): the error it returns is thrown.
   */
  async identify(options: { quick?: boolean; unlike?: (text: string) => LinkError | undefined } = {}): Promise<Identity> {
    const enq = async (ms: number) => {
      await this.interrupt();
      await this.quiet(150, 2000);
      const answer = this.waitForText(/Espruino \d+v\d+(\.\d+)? \S+\r?\n/, ms).catch(() => undefined);
      await this.send(Uint8Array.of(ENQ));
      const m = await answer;
      return m ? parseIdentity(m[0]) : undefined;
    };
    const started = this.clock.now();
    const first = await enq(1000);
    if (first) return first;
    const unlike = options.unlike?.(this.text);
    if (unlike) throw unlike;
    if (options.quick) throw new LinkError("no answer to Ctrl-E: no Espruino 2v25+ prompt on this port yet", "no-prompt");
    const answer = this.waitForText(/@@(\d+v\d+[^ ]*) (\S+)@@/, 1500).catch(() => undefined);
    await this.send('\x10print("@@"+process.env.VERSION+" "+process.env.BOARD+"@@")\n');
    const m = await answer;
    const old = m ? parseIdentity(`Espruino ${m[1]} ${m[2]}`) : undefined;
    if (old) return old;
    await this.sleep(Math.max(0, started + 5200 - this.clock.now()));
    const second = await enq(2000);
    if (second) return second;
    throw new LinkError(
      "no Espruino prompt on this port. Check that the board runs Espruino (see the README's \"Put it on a board\"), that it is powered, that --baud matches (115200 for an ESP32), and that no other program holds the port; then press the board's EN (reset) button and try again",
      "no-prompt",
    );
  }

  /**
   * process.env.VERSION and BOARD read with an EVAL packet: what the board says of itself, and proof
   * that the packet protocol works before anything is written.
   */
  async processEnv(): Promise<Identity> {
    const v = await this.eval(`process.env.VERSION+" "+process.env.BOARD`);
    const id = parseIdentity(`Espruino ${String(v)}`);
    if (!id) throw new LinkError(`the board answered process.env with ${JSON.stringify(v)}, not a version and a board`, "eval");
    return id;
  }

  /** Refuses an interpreter without the packet protocol, or a board other than `board`. */
  static checkIdentity(id: Identity, board: string): void {
    if (!hasPacketProtocol(id.major, id.minor)) {
      throw new LinkError(
        `this board runs Espruino ${id.version}; Wisp needs 2v25 or newer (the console's packet protocol). Flash Espruino 2v29 for ESP32 (espruino.com/Download, "ESP32"), then run npx wisp flash again`,
        "old-interpreter",
      );
    }
    if (id.board !== board) {
      throw new LinkError(
        `this port has Espruino ${id.version} for ${id.board}, not ${board}: the node is built for an ${board} board. Pick the ESP32's port (npx wisp ports), or flash Espruino's ${board} build onto this board`,
        "wrong-board",
      );
    }
  }

  /** Evaluates an expression on the board (an EVAL packet); the result as E.toJS gave it. */
  /**
   * Evaluates an expression on the board (an EVAL packet); the result as E.toJS gave it. A NAK or
   * no answer (noise on the line) sends it again, after the board's own packet timeout has passed;
   * the expressions Wisp sends are safe to run twice.
   */
  async eval(expression: string, options: { timeoutMs?: number; attempts?: number } = {}): Promise<unknown> {
    const attempts = options.attempts ?? PACKET_ATTEMPTS;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.evalOnce(expression, options.timeoutMs ?? ACK_TIMEOUT_MS);
      } catch (err) {
        if (!(err instanceof LinkError) || (err.code !== "eval" && err.code !== "timeout") || attempt >= attempts) throw err;
        this.retries.packets++;
        await this.quiet(300, ACK_TIMEOUT_MS);
      }
    }
  }

  private async evalOnce(expression: string, timeoutMs: number): Promise<unknown> {
    const data = padToSafe(PacketType.EVAL, expression);
    const answer = this.next((e) => e.kind === "ack" || e.kind === "nak", timeoutMs, "answer to an EVAL packet");
    const response = this.next((e) => e.kind === "packet" && e.type === PacketType.RESPONSE, timeoutMs, "RESPONSE packet");
    answer.catch(() => undefined);
    response.catch(() => undefined);
    const at = this.textOffset;
    try {
      await this.send(packet(PacketType.EVAL, data));
      const a = await answer;
      if (a.kind === "nak") {
        response.cancel();
        await this.quiet(100, 1000);
        const said = firstLine(this.textSince(at));
        throw new LinkError(`the board could not run ${JSON.stringify(expression.slice(0, 60))}: ${said || "NAK"}`, "eval");
      }
      const reply = await response;
      return parseResponse((reply as { data: string }).data);
    } finally {
      answer.cancel();
      response.cancel();
    }
  }

  /** Where the console text received so far ends (for `textSince`). */
  get position(): number {
    return this.textOffset;
  }

  /** The console text received since `position` was `offset` (as much as is kept: 64 KB). */
  textSince(offset: number): string {
    const start = this.text.length - (this.textOffset - offset);
    return this.text.slice(Math.max(0, start));
  }

  /**
   * Writes `data` to the board's Storage as file `name` and checks it there by CRC-32; a packet
   * NAKed or unanswered goes again, a file whose CRC does not match goes again whole.
   */
  async writeFile(name: string, data: Uint8Array, onProgress?: (p: FileProgress) => void): Promise<void> {
    const want = crc32(data) >>> 0;
    for (let attempt = 1; ; attempt++) {
      const textBefore = this.textOffset;
      try {
        await this.sendFile(name, data, onProgress);
      } catch (err) {
        if (!(err instanceof LinkError) || err.code !== "resync" || attempt >= FILE_ATTEMPTS) throw err;
        // an ACK that did not come: the board may or may not have the packet; start the file again
        this.retries.files++;
        await this.quiet(300, 2 * ACK_TIMEOUT_MS);
        continue;
      }
      const said = this.textSince(textBefore);
      // 2v29 ACKs a DATA packet whose Storage write failed, then prints the error
      const storage = /Uncaught Error: (Unable to find or create file|Too much data for file size|File already written with different data)/.exec(said);
      if (storage) {
        throw new LinkError(`${name}: the board could not write it to Storage ("${storage[1]}"): Storage is full or damaged. Free space on the board (require("Storage").list() shows the files; require("Storage").erase(name) or eraseAll()), then flash again`, "storage");
      }
      const stray = this.textOffset !== textBefore;
      const got = await this.eval(`E.CRC32(require("Storage").read(${jsString(name)}))`);
      if (got === want) return;
      if (attempt >= FILE_ATTEMPTS) {
        throw new LinkError(
          `${name}: the board's copy does not match (CRC-32 ${fmtCrc(got)}, sent ${fmtCrc(want)}) after ${FILE_ATTEMPTS} attempts: the line loses or changes bytes. Try a shorter or better USB cable, another USB port, or a lower --baud`,
          "crc",
        );
      }
      this.retries.files++;
      // a packet cut short leaves its tail in the input line, echoed: clear it before trying again
      if (stray) {
        await this.interrupt();
        await this.quiet(150, 2000);
      }
    }
  }

  private async sendFile(name: string, data: Uint8Array, onProgress?: (p: FileProgress) => void): Promise<void> {
    const chunks = data.some(unsafeByte) ? undefined : planChunks(data.length);
    if (!chunks) return this.sendFileByEval(name, data, onProgress);
    const header = padToSafe(PacketType.FILE_SEND, `{fn:${jsString(name)},s:${data.length}}`);
    await this.packetWithAck(packet(PacketType.FILE_SEND, header), `starting ${name}`);
    let offset = 0;
    for (const size of chunks) {
      await this.packetWithAck(packet(PacketType.DATA, data.subarray(offset, offset + size)), `${name} at byte ${offset}`);
      offset += size;
      onProgress?.({ file: name, sent: offset, size: data.length });
    }
  }

  /** Files with bytes a packet cannot carry (or shorter than 32 bytes) go as base64 in EVAL packets. */
  private async sendFileByEval(name: string, data: Uint8Array, onProgress?: (p: FileProgress) => void): Promise<void> {
    const step = 480;
    for (let offset = 0; offset < data.length; offset += step) {
      const part = Buffer.from(data.subarray(offset, offset + step)).toString("base64");
      const size = offset === 0 ? `,0,${data.length}` : `,${offset}`;
      await this.eval(`require("Storage").write(${jsString(name)},atob("${part}")${size})`);
      onProgress?.({ file: name, sent: Math.min(data.length, offset + step), size: data.length });
    }
  }

  /**
   * Sends a packet and waits for its ACK. A NAK means the board dropped it: it goes again. No
   * answer leaves it unknown whether the board took it (the ACK may be what was lost), and DATA
   * packets carry no offset, so that is a "resync" error: the caller starts the file again.
   */
  private async packetWithAck(bytes: Uint8Array, what: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const answer = this.next((e) => e.kind === "ack" || e.kind === "nak", ACK_TIMEOUT_MS, `ACK for ${what}`);
      answer.catch(() => undefined);
      await this.send(bytes);
      let result: ConsoleEvent | LinkError;
      try {
        result = await answer;
      } catch (err) {
        if (!(err instanceof LinkError) || err.code !== "timeout") throw err;
        result = err;
      }
      if (result instanceof LinkError) {
        throw new LinkError(`${what}: no answer from the board (${result.message}). Is it still plugged in and powered?`, "resync");
      }
      if (result.kind === "nak") {
        if (attempt >= PACKET_ATTEMPTS) throw new LinkError(`${what}: the board refused the packet ${PACKET_ATTEMPTS} times (NAK)`, "resync");
        this.retries.packets++;
        continue;
      }
      return;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => this.clock.setTimeout(r, ms));
  }

  // --- lifecycle --------------------------------------------------------------------------------

  private check(): void {
    if (this.closedError) throw this.closedError;
  }

  private closed(err?: Error): void {
    if (this.closedError) return;
    this.closedError = new LinkError(
      `the port closed${err ? ` (${err.message})` : ""}: the board was unplugged or reset its USB connection. Plug it in and run the command again`,
      "closed",
    );
    this.rejectAll(this.closedError);
    this.resolveClosed(this.closedError);
  }

  private rejectAll(err: LinkError): void {
    if (this.pumpTimer) this.clock.clearTimeout(this.pumpTimer);
    this.pumpTimer = undefined;
    if (this.pauseTimer !== undefined) this.clock.clearTimeout(this.pauseTimer);
    this.pauseTimer = undefined;
    for (const w of this.waiters.splice(0)) w.reject(err);
    for (const w of this.textWaiters.splice(0)) w.reject(err);
    this.outbox = [];
    for (const d of this.drained.splice(0)) d.reject(err);
  }

  get isClosed(): boolean {
    return this.closedError !== undefined;
  }

  async close(): Promise<void> {
    this.closedError ??= new LinkError("the link was closed", "closed");
    this.rejectAll(this.closedError);
    this.resolveClosed(this.closedError);
    await this.transport.close();
  }
}

/** The first line of console text as a terminal shows it (escape sequences applied, controls dropped). */
export function firstLine(text: string): string {
  const lines: string[] = [];
  new ConsoleLines((l) => lines.push(l)).write(Buffer.from(text + "\n", "latin1"));
  return lines.find((l) => l.trim() !== "")?.trim() ?? "";
}

/** The last `n` lines of console text as a terminal shows them. */
export function lastLines(text: string, n: number): string[] {
  const lines: string[] = [];
  new ConsoleLines((l) => lines.push(l)).write(Buffer.from(text + "\n", "latin1"));
  return lines.filter((l) => l.trim() !== "").slice(-n);
}

function fmtCrc(v: unknown): string {
  return typeof v === "number" ? "0x" + (v >>> 0).toString(16).padStart(8, "0") : String(v);
}


