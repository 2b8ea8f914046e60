// A Web Serial `SerialPort` over `serialport`, so that Espressif's esptool-js, which is written for
// browsers, flashes boards from Node. esptool-js's Transport (lib/webserial.js) uses exactly this
// much of a port: open({ baudRate }), the `readable` and `writable` streams (a reader and a writer
// taken and released around each read and write), setSignals({ dataTerminalReady, requestToSend,
// break }) for its reset sequences, setBaudRate() (used in place when a port has it; otherwise it
// closes and opens the port, which would reset some boards), getInfo() for the USB ids (it picks
// its reset sequence by them) and close(). Node 20's web streams serve as they are.
//
// DTR and RTS: on a USB-serial bridge they are set on the port (TIOCMSET through serialport's
// set()). A pseudo-terminal has none, and set() fails with ENOTTY ("Inappropriate ioctl for
// device"); a simulated board's pseudo-terminal has a control socket beside it instead
// (`<path>.lines`, host-sim/serial/pty.ts), which this adapter then uses. Without either, setting
// them does nothing (`modemLines` says so): the board must then be put into its bootloader by hand.

import { existsSync } from "node:fs";
import { createConnection, type Socket } from "node:net";
import { SerialPort } from "serialport";
import { openError } from "./port.ts";

export interface SerialSignals {
  dataTerminalReady?: boolean;
  requestToSend?: boolean;
  break?: boolean;
}

/** How DTR/RTS reach the board: the port's own lines, a simulated board's socket, or not at all. */
export type ModemLineRoute = "port" | "socket" | "none";

/** Where the modem-line socket of a simulated board's pseudo-terminal is (host-sim/serial/pty.ts). */
export const modemLinesSocket = (path: string) => `${path}.lines`;

export class NodeSerialPort {
  readable: ReadableStream<Uint8Array> | null = null;
  writable: WritableStream<Uint8Array> | null = null;
  /** Known once the lines were first set. */
  modemLines: ModemLineRoute | undefined;
  /** Why the port went away on its own (unplugged), if it did. */
  lost: Error | undefined;
  /** The last bytes received (at most 8 KB), for error messages. */
  received = "";

  readonly path: string;
  private readonly info: { usbVendorId?: number; usbProductId?: number };
  private port: SerialPort | undefined;
  private signals = { dtr: false, rts: false, brk: false };
  private socket: Socket | undefined;
  private socketReplies: ((line: string) => void)[] = [];
  private closing = false;

  constructor(path: string, info: { usbVendorId?: number; usbProductId?: number } = {}) {
    this.path = path;
    this.info = info;
  }

  getInfo(): { usbVendorId?: number; usbProductId?: number } {
    return { ...this.info };
  }

  async open(options: { baudRate: number }): Promise<void> {
    if (this.port?.isOpen) throw new Error(`${this.path} is already open`);
    if (!existsSync(this.path)) throw openError(this.path, new Error("ENOENT"));
    this.closing = false;
    this.lost = undefined;
    const port = await new Promise<SerialPort>((resolve, reject) => {
      const p: SerialPort = new SerialPort({ path: this.path, baudRate: options.baudRate, lock: true }, (err) => (err ? reject(openError(this.path, err)) : resolve(p)));
    });
    this.port = port;
    // opening a tty asserts DTR and RTS (the kernel does, with HUPCL); the reset circuit ignores both at once
    this.signals = { dtr: true, rts: true, brk: false };
    let stopped = false;
    const pendingWrites: ((err: Error) => void)[] = [];
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        port.on("data", (data: Buffer) => {
          this.received = (this.received + data.toString("latin1")).slice(-8192);
          if (!stopped) controller.enqueue(new Uint8Array(data));
        });
        const end = (err?: Error) => {
          if (stopped) return;
          stopped = true;
          if (this.closing) controller.close();
          else {
            this.lost = err ?? new Error("the port closed");
            // what Web Serial raises when the device goes away
            controller.error(new DOMException("The device has been lost.", "NetworkError"));
          }
        };
        port.on("close", (err?: Error) => end(err ?? undefined));
        port.on("error", (err: Error) => end(err));
        // serialport never calls back a write on a port that closed under it: fail them instead
        port.on("close", () => {
          for (const reject of pendingWrites.splice(0)) reject(this.lost ?? new Error(`${this.path} closed`));
        });
      },
      cancel: () => {
        stopped = true;
      },
    });
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) =>
        new Promise<void>((resolve, reject) => {
          if (!port.isOpen) {
            // closed, and not by close(): the device went away (serialport may not have said so yet)
            if (!this.closing) this.lost ??= new Error(`${this.path} closed`);
            return reject(this.lost ?? new Error(`${this.path} is not open`));
          }
          const settle = (err?: Error | null) => {
            const i = pendingWrites.indexOf(reject);
            if (i >= 0) pendingWrites.splice(i, 1);
            if (err) reject(err);
            else resolve();
          };
          pendingWrites.push(reject);
          port.write(Buffer.from(chunk), (err) => {
            // a write that fails with EIO/EBADF: the device is gone, though its close event may come later
            if (err && !this.closing && (/EIO|EBADF|ENXIO|bad file descriptor/i.test(err.message) || !port.isOpen)) this.lost ??= err;
            if (err) return settle(err);
            port.drain((e) => settle(e));
          });
        }),
    });
  }

  /** Sets DTR, RTS and break; the ones not given keep their level. */
  async setSignals(signals: SerialSignals): Promise<void> {
    const port = this.port;
    if (!port?.isOpen) throw new Error(`${this.path} is not open`);
    if (signals.dataTerminalReady !== undefined) this.signals.dtr = signals.dataTerminalReady;
    if (signals.requestToSend !== undefined) this.signals.rts = signals.requestToSend;
    if (signals.break !== undefined) this.signals.brk = signals.break;
    if (this.modemLines === undefined || this.modemLines === "port") {
      try {
        // serialport's set() puts unnamed lines to its defaults, so every line is named
        await new Promise<void>((resolve, reject) => port.set({ dtr: this.signals.dtr, rts: this.signals.rts, brk: this.signals.brk }, (err) => (err ? reject(err) : resolve())));
        this.modemLines = "port";
        return;
      } catch (err) {
        if (!/Inappropriate ioctl|ENOTTY/i.test((err as Error).message)) throw err;
        this.modemLines = existsSync(modemLinesSocket(this.path)) ? "socket" : "none";
      }
    }
    if (this.modemLines === "socket") {
      let socket: Socket;
      try {
        socket = this.socket ?? (await this.connectSocket());
      } catch {
        // a socket file nobody listens on (left by a simulator that stopped): no lines to set
        this.modemLines = "none";
        return;
      }
      await this.socketSet(socket);
    }
  }

  /**
   * esptool-js's Transport.write() keeps the writer when a write fails, and its disconnect() waits
   * until nothing is locked: a stream left locked that way is let go of (nothing writes to it again).
   */
  dropLockedWritable(): void {
    if (this.writable?.locked) this.writable = null;
  }

  /** Changes the host side's rate in place (esptool-js prefers this to closing and opening the port). */
  async setBaudRate(baudRate: number): Promise<void> {
    const port = this.port;
    if (!port?.isOpen) throw new Error(`${this.path} is not open`);
    await new Promise<void>((resolve, reject) => port.update({ baudRate }, (err) => (err ? reject(err) : resolve())));
  }

  async close(): Promise<void> {
    this.closing = true;
    const port = this.port;
    this.port = undefined;
    this.socket?.destroy();
    this.socket = undefined;
    this.socketReplies = [];
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
    this.readable = null;
    this.writable = null;
  }

  private async socketSet(socket: Socket): Promise<void> {
    const reply = new Promise<string>((resolve) => this.socketReplies.push(resolve));
    socket.write(`dtr=${this.signals.dtr ? 1 : 0} rts=${this.signals.rts ? 1 : 0}\n`);
    const answer = await reply;
    if (answer !== "ok") throw new Error(`${modemLinesSocket(this.path)}: ${answer}`);
  }

  private connectSocket(): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(modemLinesSocket(this.path));
      let buffered = "";
      socket.setEncoding("latin1");
      socket.once("error", reject);
      socket.on("data", (text: string) => {
        buffered += text;
        for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          this.socketReplies.shift()?.(line);
        }
      });
      socket.on("close", () => {
        for (const r of this.socketReplies.splice(0)) r("the board's modem-line socket closed");
        if (this.socket === socket) this.socket = undefined;
      });
      socket.once("connect", () => {
        socket.off("error", reject);
        socket.on("error", () => undefined);
        this.socket = socket;
        resolve(socket);
      });
    });
  }
}
