// The Espruino console of a simulated ESP32, byte for byte as Espruino 2v29 handles its console
// UART (src/jsinteractive.c jsiHandleConsoleChar, jsiHandleNewLine, jsiPacket*; checked against the
// Linux build of 2v29 on a pseudo-terminal, see test/fixtures/console/):
//
// - REPL: echo, `>` prompt, `:` for a continued line (unclosed brackets), `=result` after each
//   line, "Uncaught ..." for errors; output printed while the prompt shows first erases the input
//   line (`\r\x1b[J`) and the prompt comes back after it.
// - DLE (0x10) at the start of a line: that line runs without echo. `echo(0)` / `echo(1)`.
// - Ctrl-C (0x03): checked as the byte lands, before it is processed (interrupt level on the
//   chip); clears the input line. Ctrl-E (0x05) on an empty line prints "Espruino 2v29 ESP32".
// - The 2v25+ packet protocol: DLE SOH, a 16-bit header (3 bits of type, 13 of length), the data;
//   EVAL, EVENT, FILE_SEND, DATA and FILE_RECV; ACK 0x06 / NAK 0x15; a packet not complete 5 s
//   after its SOH is NAKed (jsiPacketStart sets a 5000 ms timeout); a file with no DATA for 10 s is
//   closed. As on 2v29, a DATA packet whose Storage write fails is still ACKed, and the error is
//   printed as Uncaught (packet_file_write ORs the write's result into an `ok` that starts true).
//
// What each byte costs the CPU (µs, returned to the line so that bytes keep landing while the
// board is busy) is an estimate for an ESP32 at 240 MHz: `CONSOLE_COSTS`.

import type { Runtime, RuntimePlugin } from "../runtime.ts";
import { errorText, quoteJS, replValue } from "../runtime/format.ts";
import type { Clock } from "../runtime/timers.ts";
import type { FlashStorage } from "../storage.ts";
import type { LineDevice, SerialLine } from "./line.ts";

export const DLE = 0x10;
export const SOH = 0x01;
export const ACK = 0x06;
export const NAK = 0x15;

/** Packet types: the top 3 bits of the 16-bit header (README_Protocol.md). */
export const PacketType = {
  RESPONSE: 0x0000,
  EVAL: 0x2000,
  EVENT: 0x4000,
  FILE_SEND: 0x6000,
  DATA: 0x8000,
  FILE_RECV: 0xa000,
} as const;
export const PACKET_TYPE_MASK = 0xe000;
export const PACKET_LENGTH_MASK = 0x1fff;
/** ms from SOH until an incomplete packet is NAKed (jsiPacketStart). */
export const PACKET_TIMEOUT_MS = 5000;
/** ms without DATA after which an open file transfer is closed (jsiPacketFileSetTimeout). */
export const FILE_TIMEOUT_MS = 10_000;
/** Bytes per DATA packet of a FILE_RECV reply (jsiPacketProcess). */
const FILE_RECV_CHUNK = 1024;

/**
 * CPU time per thing the console does, µs (estimates for an ESP32 at 240 MHz): taking a byte off
 * the IO queue and handling it; lexing, parsing and running code; programming flash (NOR page
 * program, typically 0.7 ms per 256 bytes in the GD25Q32/W25Q32 datasheets).
 */
export const CONSOLE_COSTS = { charUs: 2, evalUsPerByte: 5, flashUsPerByte: 2.7, packetUs: 200 };

export interface ConsoleIdentity {
  /** process.env.VERSION (default "2v29"; a SimNode sets it at every boot from the interpreter image its flash holds: SimNode.installInterpreter). */
  version: string;
  /** process.env.BOARD (default "ESP32"). */
  board: string;
  /** getSerial(). */
  serial: string;
  /** Storage bytes, process.env.STORAGE. */
  storageBytes: number;
}

/** The chip around the console. */
export interface ConsoleBoard {
  /** The interpreter of the current boot, undefined while the chip is off or asleep. */
  readonly runtime: Runtime | undefined;
  readonly flashStorage: FlashStorage;
  readonly clock: Clock;
}

type InputState =
  | "none"
  | "dle"
  | "esc"
  | "esc["
  | "esc[n"
  | "escO"
  | "packet0"
  | "packet1"
  | "packetData";

interface FileTransfer {
  fn: string;
  size: number;
  offset: number;
}

const LOGO = [
  "",
  " ____                 _ ",
  "|  __|___ ___ ___ _ _|_|___ ___ ",
  "|  __|_ -| . |  _| | | |   | . |",
  "|____|___|  _|_| |___|_|_|_|___|",
  "         |_| espruino.com",
];

/** ms a line typed at the REPL may run before it is stopped (a Ctrl-C cannot reach V8 mid-run). */
const REPL_TIMEOUT_MS = 2000;

export class EspruinoConsole implements LineDevice {
  readonly identity: ConsoleIdentity;
  /** Packets answered, by outcome (for tests and benchmarks). */
  readonly packets = { ack: 0, nak: 0 };
  /** Ctrl-C bytes the interrupt-level check has seen (one per burst that held any). */
  ctrlCs = 0;

  private readonly board: ConsoleBoard;
  private readonly line: SerialLine;
  private state: InputState = "none";
  private input = "";
  /** The prompt and input line are not on screen (output was printed over them). */
  private inputRemoved = true;
  private echoOff = false;
  private echoOffForLine = false;
  private ctrlC = false;
  private escNumber = 0;
  private running = false;
  private packetHeader = 0;
  private packetData: number[] = [];
  private packetTimer: unknown;
  private savedInput = "";
  private file: FileTransfer | undefined;
  private fileTimer: unknown;
  private promptTimer: unknown;

  constructor(board: ConsoleBoard, line: SerialLine, identity: Partial<ConsoleIdentity> & { serial: string }) {
    this.board = board;
    this.line = line;
    this.identity = { version: "2v29", board: "ESP32", storageBytes: board.flashStorage.size, ...identity };
    line.device = this;
  }

  /** Globals the console gives the interpreter: echo(), process. */
  plugin(): RuntimePlugin {
    return (rt) => {
      rt.defineGlobal("echo", (on: unknown) => {
        this.echoOff = !on;
      });
      const id = this.identity;
      rt.defineGlobal(
        "process",
        rt.newObject({
          version: id.version,
          env: rt.newObject({
            VERSION: id.version,
            GIT_COMMIT: "c12258a",
            BOARD: id.board,
            RAM: 524288,
            FLASH: 0,
            SPIFLASH: 4194304,
            STORAGE: id.storageBytes,
            SERIAL: id.serial,
            CONSOLE: "Serial1",
            MODULES: "Flash,Storage,heatshrink,fs,net,dgram,http,NetworkJS,Wifi,TelnetServer,crypto,neopixel",
            EXPTR: 1073610824,
          }),
          memory: () => rt.newObject({ free: 12000, usage: 4383, total: 16383, history: 0, gc: 0, gctime: 1, blocksize: 14 }),
          on: undefined,
        }),
      );
    };
  }

  // --- output ---------------------------------------------------------------------------------

  /** What the interpreter prints (console.log, print, Uncaught errors): one call, one line. */
  print(text: string): void {
    this.removeInputLine();
    this.write(text + "\n");
    this.returnSoon();
  }

  /** Bytes to the UART, `\n` as `\r\n` (jsiConsolePrintChar). */
  private write(text: string): void {
    this.line.send(text.replace(/\r?\n/g, "\r\n"));
  }

  private get echo(): boolean {
    return !this.echoOff && !this.echoOffForLine;
  }

  /** jsiConsoleRemoveInputLine: back to the start of the input (the cursor is at its end), erase. */
  private removeInputLine(): void {
    if (this.inputRemoved) return;
    this.inputRemoved = true;
    if (!this.echo) return;
    const lines = this.input.split("\n");
    this.line.send("\x1b[D".repeat(lines[lines.length - 1]!.length) + "\x1b[A".repeat(lines.length - 1) + "\r\x1b[J");
  }

  private returnInputLine(): void {
    if (!this.inputRemoved) return;
    this.inputRemoved = false;
    if (this.echo) this.line.send(">" + this.input.replace(/\n/g, "\r\n:"));
  }

  /** The prompt comes back once the code that printed has returned (end of the idle loop). */
  private returnSoon(): void {
    if (this.promptTimer !== undefined) return;
    this.promptTimer = this.board.clock.setTimeout(() => {
      this.promptTimer = undefined;
      if (!this.isPacketTransfer && this.board.runtime) this.returnInputLine();
    }, 0);
  }

  // --- the chip's life --------------------------------------------------------------------------

  /** The chip resets (power on, EN, E.reboot, wake from deep sleep): the ROM speaks first (serial/rom.ts romBanner). */
  hardReset(romText: string): void {
    this.clearState();
    this.line.clear();
    this.attach();
    this.write(romText);
  }

  /** Text the ROM or the bootloader prints on the UART before the interpreter runs. */
  romText(text: string): void {
    this.write(text);
  }

  /** The UART's bytes come to the console again (after the ROM's serial bootloader had them). */
  attach(): void {
    this.line.device = this;
  }

  /**
   * reset() or load(): the input line and packet state start over; a prompt on screen stays there
   * (the next output erases it, as after an EVAL packet's load()).
   */
  softReset(): void {
    const removed = this.inputRemoved;
    this.clearState();
    this.inputRemoved = removed;
  }

  /**
   * The boot code has run (jsiSemiInit): without saved code the logo, then a blank line; the
   * prompt comes back after.
   */
  booted(loadedCode: boolean): void {
    if (!loadedCode && !this.echoOff) {
      const id = this.identity;
      this.write(
        [...LOGO, ` ${id.version} (c) 2025 G.Williams`, "", "Espruino is Open Source. Our work is supported", "only by sales of official boards and donations:", "http://espruino.com/Donate", "", ""].join("\n"),
      );
    }
    this.inputRemoved = true;
    this.returnSoon();
  }

  /** The chip stops (power off, deep sleep): whatever was half-received is gone. */
  off(): void {
    this.clearState();
    this.line.clear();
  }

  private clearState(): void {
    this.state = "none";
    this.input = "";
    this.inputRemoved = true;
    this.echoOff = false;
    this.echoOffForLine = false;
    this.ctrlC = false;
    this.packetData = [];
    this.file = undefined;
    for (const t of [this.packetTimer, this.fileTimer, this.promptTimer]) if (t !== undefined) this.board.clock.clearTimeout(t);
    this.packetTimer = this.fileTimer = this.promptTimer = undefined;
  }

  // --- input (LineDevice) -----------------------------------------------------------------------

  /** 2v25 brought the packet protocol and the Ctrl-E answer; an older identity has neither. */
  private get packetProtocol(): boolean {
    const m = /^(\d+)v(\d+)/.exec(this.identity.version);
    return !m || Number(m[1]) > 2 || (Number(m[1]) === 2 && Number(m[2]) >= 25);
  }

  private get isPacketTransfer(): boolean {
    return this.state === "packet0" || this.state === "packet1" || this.state === "packetData";
  }

  received(bytes: Uint8Array): void {
    // jshPushIOCharEventsHandler → jsiCtrlC, which a packet already being received ignores
    if (bytes.includes(3) && !this.isPacketTransfer && this.board.runtime) {
      this.ctrlC = true;
      this.ctrlCs++;
    }
  }

  idle(): void {
    if (!this.board.runtime) return;
    // jsiLoop: a Ctrl-C clears the input line (unless a packet is coming in)
    if (this.ctrlC && !this.isPacketTransfer) {
      this.ctrlC = false;
      if (this.input !== "") {
        this.removeInputLine();
        this.input = "";
      }
    }
    // the prompt comes back at the end of the loop, after a load() or reset() the line asked for
    if (!this.isPacketTransfer) this.returnSoon();
  }

  consume(byte: number): number {
    if (!this.board.runtime || this.running) return 0;
    this.running = true;
    try {
      return CONSOLE_COSTS.charUs + this.handle(byte);
    } catch (err) {
      this.print(`Uncaught ${errorText(err)}`);
      return 0;
    } finally {
      this.running = false;
    }
  }

  /** jsiHandleConsoleChar; returns the extra µs the byte cost. */
  private handle(ch: number): number {
    if (ch === 3 && this.isPacketTransfer) this.ctrlC = false; // "if we got Ctrl-C, ignore it"
    switch (this.state) {
      case "packet0":
        if (this.input === "") this.echoOffForLine = false;
        this.packetHeader = ch << 8;
        this.state = "packet1";
        return 0;
      case "packet1":
        this.packetHeader |= ch;
        if ((this.packetHeader & PACKET_LENGTH_MASK) === 0) return this.packetProcess();
        this.state = "packetData";
        return 0;
      case "packetData":
        this.packetData.push(ch);
        return this.packetData.length >= (this.packetHeader & PACKET_LENGTH_MASK) ? this.packetProcess() : 0;
    }
    if (ch === 0) {
      this.state = "none";
    } else if (ch === SOH) {
      if (this.state === "dle" && this.packetProtocol) this.packetStart();
    } else if (ch === 3) {
      // handled as it landed
    } else if (ch === 5) {
      if (this.input === "" && this.packetProtocol) this.write(`Espruino ${this.identity.version} ${this.identity.board}\n`);
    } else if (ch === DLE) {
      if (this.input === "") this.echoOffForLine = true;
      this.state = "dle";
    } else if (ch === 27) {
      this.state = "esc";
    } else if (this.state === "esc") {
      this.state = ch === 79 ? "escO" : ch === 91 ? "esc[" : "none";
      if (ch === 10) return this.newLine(false); // ESC then Enter (Alt-Enter): a new line without running it
    } else if (this.state === "escO") {
      this.state = "none";
    } else if (this.state === "esc[") {
      // arrows, home, end: the simulated console keeps the cursor at the end of the line
      if (ch >= 0x30 && ch <= 0x39) {
        this.escNumber = ch - 0x30;
        this.state = "esc[n";
      } else this.state = "none";
    } else if (this.state === "esc[n") {
      if (ch >= 0x30 && ch <= 0x39) this.escNumber = this.escNumber * 10 + ch - 0x30;
      else this.state = "none";
    } else {
      this.state = "none";
      if (ch === 8 || ch === 0x7f) {
        if (this.input.length > 0 && !this.input.endsWith("\n")) {
          this.input = this.input.slice(0, -1);
          if (this.showInputLine) this.line.send("\b \b");
        }
      } else if (ch === 13 || ch === 10) {
        // \r\n is two new lines: 2v29's check for it (IPS_HAD_R) comes after the state is reset
        return this.newLine(true);
      } else if (ch >= 32 || ch === 9) {
        this.aboutToEdit();
        const text = ch === 9 ? "    " : String.fromCharCode(ch);
        this.input += text;
        if (this.showInputLine) this.line.send(text);
      }
    }
    return 0;
  }

  private get showInputLine(): boolean {
    return this.echo && !this.inputRemoved;
  }

  /** jsiIsAboutToEditInputLine: the prompt comes back before a typed character is echoed. */
  private aboutToEdit(): void {
    if (this.echo) this.returnInputLine();
  }

  /** jsiHandleNewLine: run the line when its brackets are closed, else continue it with `:`. */
  private newLine(execute: boolean): number {
    if (!execute || continues(this.input)) {
      this.aboutToEdit();
      if (this.showInputLine) this.line.send("\r\n:");
      this.input += "\n";
      return 0;
    }
    if (this.showInputLine) this.write("\n");
    if (!this.echoOffForLine) this.inputRemoved = true;
    const code = withoutUnfinishedComment(this.input.trimEnd());
    this.input = "";
    const cost = CONSOLE_COSTS.evalUsPerByte * code.length;
    if (code !== "") {
      const rt = this.board.runtime!;
      let result: unknown;
      let failed = false;
      try {
        result = rt.run(code, "REPL", { timeout: REPL_TIMEOUT_MS });
      } catch (err) {
        failed = true;
        this.removeInputLine();
        this.write(`Uncaught ${replError(err)}\n`);
      }
      if (!failed && this.echo) this.write(`=${replValue(result)}\n`);
    }
    this.echoOffForLine = false;
    return cost;
  }

  // --- packets ----------------------------------------------------------------------------------

  private packetStart(): void {
    this.state = "packet0";
    this.savedInput = this.input;
    this.input = "";
    this.packetData = [];
    this.packetTimer = this.board.clock.setTimeout(() => {
      this.packetTimer = undefined;
      this.reply(NAK);
      this.packetExit();
    }, PACKET_TIMEOUT_MS);
  }

  private packetExit(): void {
    this.state = "none";
    this.packetData = [];
    if (this.packetTimer !== undefined) this.board.clock.clearTimeout(this.packetTimer);
    this.packetTimer = undefined;
    this.input = this.savedInput;
    this.savedInput = "";
  }

  private reply(byte: number): void {
    if (byte === ACK) this.packets.ack++;
    else this.packets.nak++;
    this.line.send(Uint8Array.of(byte));
  }

  /** A RESPONSE or DATA packet back to the host (jsiPacketReply). */
  private sendPacket(type: number, data: string): void {
    const header = type | data.length;
    this.line.send(String.fromCharCode(DLE, SOH, header >> 8, header & 0xff) + data);
  }

  /** jsiPacketProcess: the packet is complete. Returns the µs it cost. */
  private packetProcess(): number {
    const type = this.packetHeader & PACKET_TYPE_MASK;
    const data = Buffer.from(this.packetData).toString("latin1");
    let cost = CONSOLE_COSTS.packetUs;
    const rt = this.board.runtime!;
    try {
      if (type === PacketType.EVAL) {
        cost += CONSOLE_COSTS.evalUsPerByte * data.length;
        let result: unknown;
        try {
          result = rt.run(`(${data}\n)`, "packet", { timeout: REPL_TIMEOUT_MS });
        } catch (err) {
          this.removeInputLine();
          this.reply(NAK);
          this.write(`Uncaught ${replError(err)}\n`);
          return cost;
        }
        this.reply(ACK);
        this.sendPacket(PacketType.RESPONSE, toJS(result));
      } else if (type === PacketType.EVENT) {
        // jsiExecuteEventCallbackOn: an object (not an array) runs E's "packet" listeners now, then the ACK
        const value = parseLiberal(data);
        const listeners = typeof value === "object" && value !== null && !Array.isArray(value) ? rt.listeners(rt.global.E, "packet") : undefined;
        if (listeners) for (const l of [...listeners]) rt.invoke(l, rt.global.E, [toDevice(rt, value)]);
        this.reply(listeners ? ACK : NAK);
      } else if (type === PacketType.FILE_RECV) {
        const request = parseLiberal(data) as { fn?: unknown } | undefined;
        const content = request && typeof request.fn === "string" ? this.board.flashStorage.read(request.fn) : undefined;
        if (content === undefined) {
          this.reply(NAK);
        } else {
          this.reply(ACK);
          for (let i = 0; i < content.length; i += FILE_RECV_CHUNK) this.sendPacket(PacketType.DATA, content.slice(i, i + FILE_RECV_CHUNK));
          this.sendPacket(PacketType.DATA, "");
        }
      } else if (type === PacketType.FILE_SEND) {
        this.fileEnd();
        const request = parseLiberal(data) as { fn?: unknown; s?: unknown; fs?: unknown; c?: unknown } | undefined;
        const size = request ? Math.trunc(Number(request.s)) || 0 : 0;
        // fs (a FAT file system) is not in the ESP32 build; c (heatshrink packets) is not simulated
        const ok = !!request && typeof request.fn === "string" && size !== 0 && !request.fs && !request.c;
        if (ok) {
          this.file = { fn: request.fn as string, size, offset: 0 };
          this.fileTimeout();
        }
        this.reply(ok ? ACK : NAK);
      } else if (type === PacketType.DATA) {
        const file = this.file;
        if (!file) {
          this.reply(NAK);
        } else {
          cost += CONSOLE_COSTS.flashUsPerByte * data.length;
          let failure: Error | undefined;
          try {
            this.board.flashStorage.write(file.fn, Buffer.from(data, "latin1"), file.offset, file.size);
          } catch (err) {
            failure = err as Error;
          }
          file.offset += data.length;
          if (file.offset >= file.size) this.fileEnd();
          else this.fileTimeout();
          this.reply(ACK);
          if (failure) {
            // the write's exception is reported after the ACK, by jsiCheckErrors
            this.removeInputLine();
            this.write(`Uncaught Error: ${failure.message}\n`);
            this.returnSoon();
          }
        }
      } else {
        this.reply(NAK);
      }
    } finally {
      this.packetExit();
    }
    return cost;
  }

  private fileTimeout(): void {
    if (this.fileTimer !== undefined) this.board.clock.clearTimeout(this.fileTimer);
    this.fileTimer = this.board.clock.setTimeout(() => {
      this.fileTimer = undefined;
      this.file = undefined;
    }, FILE_TIMEOUT_MS);
  }

  private fileEnd(): void {
    this.file = undefined;
    if (this.fileTimer !== undefined) this.board.clock.clearTimeout(this.fileTimer);
    this.fileTimer = undefined;
  }
}

/** What the console's lexer sees at the end of a line of input (jsiCountBracketsInInput). */
interface InputScan {
  /** Unclosed `(`, `[` and `{`; negative once a closing bracket comes before its opening one. */
  depth: number;
  /** Where a block comment that is never closed starts. */
  openComment?: number;
  /** A template literal is still open. */
  openTemplate: boolean;
}

function scanInput(code: string): InputScan {
  let depth = 0;
  for (let i = 0; i < code.length; i++) {
    const c = code[i]!;
    if (c === '"' || c === "'" || c === "`") {
      for (i++; i < code.length && code[i] !== c; i++) if (code[i] === "\\") i++;
      if (i >= code.length) return { depth, openTemplate: c === "`" };
    } else if (c === "/" && code[i + 1] === "/") {
      while (i < code.length && code[i] !== "\n") i++;
    } else if (c === "/" && code[i + 1] === "*") {
      const end = code.indexOf("*/", i + 2);
      if (end < 0) return { depth, openComment: i, openTemplate: false };
      i = end + 1;
    } else if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") {
      if (--depth < 0) return { depth, openTemplate: false };
    }
  }
  return { depth, openTemplate: false };
}

/**
 * Whether a line of input goes on to the next one instead of running, as 2v29 was measured to
 * decide: unclosed brackets or an unfinished template literal go on; an unfinished string or
 * comment runs at once, and so does a closing bracket before its opening one.
 */
export function continues(code: string): boolean {
  const scan = scanInput(code);
  return scan.openTemplate || (scan.openComment === undefined && scan.depth > 0);
}

/** Espruino's lexer ends the input at a comment that is never closed; V8 would call it an error. */
function withoutUnfinishedComment(code: string): string {
  const at = scanInput(code).openComment;
  return at === undefined ? code : code.slice(0, at);
}

/** The error as the REPL shows it; code stopped by the REPL's time limit is reported as a Ctrl-C would stop it. */
function replError(err: unknown): string {
  // errors of the device's realm are not `instanceof Error` here
  const message = typeof err === "object" && err !== null ? String((err as { message?: unknown }).message) : "";
  if (/^Script execution timed out/.test(message)) return "Error: Execution Interrupted";
  return errorText(err);
}

/**
 * E.toJS (src/jswrap_espruino.c), as 2v29 answers an EVAL packet: JSON-like with bare identifier
 * keys; undefined is `null` (and an undefined property is left out); typed arrays are plain arrays;
 * strings are quoted with `"` and escaped as src/jsutils.c escapeCharacter does for a byte string:
 * `\n \t \b \v \f \r \\ \"`, `\0`…`\7` before anything but an octal digit, else `\xNN`.
 */
export function toJS(value: unknown): string {
  if (typeof value === "string") return quoteJS(value);
  if (value === undefined || value === null) return "null";
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (typeof value === "function") return Function.prototype.toString.call(value);
  if (Array.isArray(value)) return `[${value.map(toJS).join(",")}]`;
  if (ArrayBuffer.isView(value)) return `[${Array.prototype.join.call(value, ",")}]`;
  if (typeof value === "object") {
    return `{${Object.keys(value)
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(k) ? k : quoteJS(k)}:${toJS((value as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return "null";
}


/**
 * jswrap_json_parse_liberal: JSON that also takes bare identifier keys and single-quoted strings,
 * as FILE_SEND headers are written (`{fn:"x",s:12}`); what follows the value is ignored. Returns
 * undefined when it is not that.
 */
export function parseLiberal(text: string): unknown {
  let i = 0;
  const ws = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  const fail = (): never => {
    throw new SyntaxError("bad liberal JSON");
  };
  const str = (): string => {
    const q = text[i++]!;
    let out = "";
    while (i < text.length && text[i] !== q) {
      if (text[i] === "\\") {
        const e = text[++i];
        if (e === "x") {
          out += String.fromCharCode(parseInt(text.slice(i + 1, i + 3), 16));
          i += 2;
        } else if (e === "u") {
          out += String.fromCharCode(parseInt(text.slice(i + 1, i + 5), 16));
          i += 4;
        } else out += e === "n" ? "\n" : e === "r" ? "\r" : e === "t" ? "\t" : e && /[0-7]/.test(e) ? String.fromCharCode(+e) : (e ?? "");
        i++;
      } else out += text[i++];
    }
    if (text[i] !== q) fail();
    i++;
    return out;
  };
  const value = (): unknown => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const o: Record<string, unknown> = {};
      ws();
      if (text[i] === "}") return i++, o;
      for (;;) {
        ws();
        let key: string;
        if (text[i] === '"' || text[i] === "'") key = str();
        else {
          const m = /^[A-Za-z_$][A-Za-z0-9_$]*/.exec(text.slice(i));
          if (!m) return fail();
          key = m[0];
          i += key.length;
        }
        ws();
        if (text[i++] !== ":") fail();
        o[key] = value();
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "}") return i++, o;
        else fail();
      }
    }
    if (c === "[") {
      i++;
      const a: unknown[] = [];
      ws();
      if (text[i] === "]") return i++, a;
      for (;;) {
        a.push(value());
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "]") return i++, a;
        else fail();
      }
    }
    if (c === '"' || c === "'") return str();
    const m = /^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i));
    if (!m) return fail();
    i += m[0].length;
    return JSON.parse(m[0]);
  };
  try {
    // like jswrap_json_parse_liberal, what follows a complete value is ignored
    return value();
  } catch {
    return undefined;
  }
}

/** A host value rebuilt from the device realm's JSON, so device code sees its own objects. */
function toDevice(rt: Runtime, value: unknown): unknown {
  return rt.global.JSON.parse(JSON.stringify(value));
}
