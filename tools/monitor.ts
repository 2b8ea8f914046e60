// `wisp monitor`: the serial console of a board or a simulated node. On a terminal, keys go to the
// board as they are typed (Ctrl-C too: it interrupts the board's code) and Ctrl-] leaves. Piped,
// the board's output comes as plain lines and lines read from stdin are sent. When the board is
// unplugged the monitor says so and opens the port again when it is back.

import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { ConsoleLines } from "./serial/lines.ts";
import { ConsoleLink, LinkError } from "./serial/link.ts";
import { BAUD, intOption, parseOptions, UsageError, usageFailure, formatHelp } from "./options.ts";
import { findBoardPort, openPort, PortError } from "./serial/port.ts";

const USAGE = `usage: wisp monitor [options]

The board's serial console: what it prints, and what you type goes to it (Ctrl-C interrupts the
board's code; Ctrl-] leaves). With stdin or stdout not a terminal, lines in and lines out.

  -p, --port PATH     the serial port (default: the one USB port with an ESP32 bridge)
  -b, --baud N        baud rate (default 115200)
  -t, --timestamps    start each line with the time it arrived
  -h, --help          this text`;

/** Ctrl-]: leaves the monitor (as in telnet, picocom and idf.py monitor). */
const LEAVE = 0x1d;
const REOPEN_MS = 500;

export interface MonitorOptions {
  port: string;
  baud: number;
  timestamps: boolean;
  input?: NodeJS.ReadStream;
  output?: NodeJS.WriteStream;
  /** Show the link's console text from this position on first (what the board printed before the monitor took over). */
  from?: number;
}

function stamp(): string {
  const d = new Date();
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `[${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}] `;
}

/** Runs the monitor on `link` (already open on `options.port`) until the user leaves; returns the exit code. */
export async function monitorLink(first: ConsoleLink, options: MonitorOptions): Promise<number> {
  const input = options.input ?? process.stdin;
  const output = options.output ?? process.stdout;
  const raw = input.isTTY === true && output.isTTY === true;
  const note = (text: string) => output.write(`${raw ? "\r\n" : ""}-- ${text} --\n`);

  // what the board prints
  let atLineStart = true;
  const lines = new ConsoleLines((line) => output.write((options.timestamps ? stamp() : "") + line + "\n"));
  const show = (text: string) => {
    if (!raw) return lines.write(Buffer.from(text, "latin1"));
    if (!options.timestamps) return void output.write(Buffer.from(text, "latin1"));
    let out = "";
    for (const c of text) {
      if (atLineStart && c !== "\n" && c !== "\r") out += stamp();
      out += c;
      atLineStart = c === "\n";
    }
    output.write(Buffer.from(out, "latin1"));
  };

  let link: ConsoleLink | undefined = first;
  let leaving = false;
  let finish: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => (finish = resolve));

  const attach = (l: ConsoleLink) => {
    link = l;
    l.onTextListener(show);
    void l.closedPromise.then(async () => {
      if (leaving) return;
      link = undefined;
      note(`${options.port} closed: the board was unplugged or reset its USB. Waiting for it to come back (${raw ? "Ctrl-]" : "Ctrl-C"} leaves)`);
      for (;;) {
        await new Promise((r) => setTimeout(r, REOPEN_MS));
        if (leaving) return;
        if (!existsSync(options.port)) continue;
        try {
          const t = await openPort(options.port, options.baud);
          note(`${options.port} is back`);
          attach(new ConsoleLink(t, { baud: options.baud }));
          return;
        } catch {
          // not ready yet
        }
      }
    });
  };
  if (options.from !== undefined) show(first.textSince(options.from));
  attach(first);

  const leave = (code: number) => {
    if (leaving) return;
    leaving = true;
    if (raw) input.setRawMode(false);
    input.pause();
    void (link?.close() ?? Promise.resolve()).finally(() => finish(code));
  };
  // the reader of our output went away (`wisp monitor | head`): nothing left to show
  output.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") leave(0);
  });

  if (raw) {
    note(`${options.port} at ${options.baud} baud; Ctrl-] leaves`);
    input.setRawMode(true);
    input.resume();
    input.on("data", (d: Buffer) => {
      const i = d.indexOf(LEAVE);
      const keys = i >= 0 ? d.subarray(0, i) : d;
      if (keys.length && link) link.send(new Uint8Array(keys)).catch(() => undefined);
      if (i >= 0) leave(0);
    });
  } else {
    process.once("SIGINT", () => leave(0));
    // lines in (typed with line editing, or piped); the link paces them and honours XOFF
    let sent: Promise<void> = Promise.resolve();
    const rl = createInterface({ input, terminal: false });
    rl.on("line", (text) => {
      if (link) sent = link.send(text + "\n").catch(() => undefined);
    });
    rl.on("close", () => {
      if (input.isTTY) return; // Ctrl-D on a terminal: keep showing the board until Ctrl-C
      // stdin ended: everything read goes to the board first, then its answers, then leave
      void (async () => {
        await sent;
        await link?.quiet(500, 60_000).catch(() => undefined);
        leave(0);
      })();
    });
  }
  return done;
}

export async function main(argv: string[]): Promise<number> {
  let args, baud: number;
  try {
    args = parseOptions(argv, {
      port: { type: "string", short: "p" },
      baud: { type: "string", short: "b" },
      timestamps: { type: "boolean", short: "t" },
      help: { type: "boolean", short: "h" },
    }).values;
    if (args.help) {
      console.log(formatHelp(USAGE));
      return 0;
    }
    baud = intOption("baud", args.baud, 115_200, BAUD);
  } catch (err) {
    if (err instanceof UsageError) return usageFailure("monitor", err);
    throw err;
  }
  try {
    const port = args.port ?? (await findBoardPort()).path;
    const link = new ConsoleLink(await openPort(port, baud), { baud });
    return await monitorLink(link, { port, baud, timestamps: args.timestamps === true });
  } catch (err) {
    if (err instanceof PortError || err instanceof LinkError) {
      console.error(`wisp monitor: ${err.message}`);
      return 1;
    }
    throw err;
  }
}
