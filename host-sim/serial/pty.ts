// A simulated board's console on a pseudo-terminal, so that host tools open it as they would a
// board's /dev/ttyUSB0 (serialport, screen, picocom). `socat` (Debian package socat) makes the
// pseudo-terminal and passes its bytes through its standard input and output.
//
// A pseudo-terminal has no modem lines: TIOCMSET on it fails with ENOTTY ("Inappropriate ioctl for
// device"), so a host cannot set DTR and RTS there, which is how esptool resets an ESP32 into its
// bootloader. Next to the pseudo-terminal's link the simulator therefore listens on a unix socket,
// `<link>.lines`, that stands for the USB-serial bridge's modem-control requests: the host sends
// lines such as `dtr=1 rts=0` (1 asserted, 0 not; either may be left out) and gets `ok` once the
// board's reset circuit has them. Closing the connection drops both, as closing a real port does
// (HUPCL). Wisp's serial adapter (tools/serial/webserial.ts) uses it when setting the lines on the
// port fails that way.

import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { SerialLine } from "./line.ts";

/** Output kept for the pseudo-terminal while nobody reads it; beyond, it is dropped as a UART would. */
const MAX_BACKLOG = 64 * 1024;

export class PtyError extends Error {}

export interface Pty {
  /** A link to the pseudo-terminal's device (`/dev/pts/N`), stable while the board is plugged in and out: what a host opens. */
  readonly path: string;
  /** The pseudo-terminal device itself. */
  readonly device: string;
  /** The modem-line socket (`<path>.lines`), when the board has one. */
  readonly linesPath: string | undefined;
  close(): Promise<void>;
}

/** The levels a host sets: true asserted. */
export interface ModemLines {
  dtr?: boolean;
  rts?: boolean;
}

/** Where the modem-line socket of the pseudo-terminal at `path` is. */
export function modemLinesPath(path: string): string {
  return `${path}.lines`;
}

/** Parses `dtr=1 rts=0`; undefined when the line is not that. */
export function parseModemLines(text: string): ModemLines | undefined {
  const lines: ModemLines = {};
  for (const part of text.trim().split(/\s+/)) {
    const m = /^(dtr|rts)=([01])$/.exec(part);
    if (!m) return undefined;
    lines[m[1] as "dtr" | "rts"] = m[2] === "1";
  }
  return lines;
}

let socatChecked = false;

/** Throws a PtyError saying how to install socat when it is missing. */
export function checkSocat(): void {
  if (socatChecked) return;
  try {
    execFileSync("socat", ["-V"], { stdio: "ignore" });
    socatChecked = true;
  } catch {
    throw new PtyError("socat is not installed; the simulated serial consoles need it: sudo apt-get install socat");
  }
}

/**
 * Puts `line`'s host end on a new pseudo-terminal, linked from `link` (default: a new temporary
 * file). Closing it is unplugging the board's USB cable: the link goes away until it is opened again.
 * With `modemLines`, DTR/RTS set through `<link>.lines` reach it.
 */
export async function openPty(line: SerialLine, link = join(mkdtempSync(join(tmpdir(), "wisp-pty-")), "tty"), modemLines?: (lines: ModemLines) => void): Promise<Pty> {
  checkSocat();
  mkdirSync(dirname(link), { recursive: true });
  const socat: ChildProcessWithoutNullStreams = spawn("socat", [`pty,raw,echo=0,link=${link}`, "STDIO"], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  socat.stderr.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  const exited = new Promise<number | null>((resolve) => socat.once("exit", (code) => resolve(code)));
  socat.stdin.on("error", () => undefined); // socat gone: its exit is reported below
  const deadline = Date.now() + 5000;
  while (!existsSync(link)) {
    if (socat.exitCode !== null || Date.now() > deadline) {
      socat.kill();
      throw new PtyError(`socat could not make a pseudo-terminal: ${stderr.trim() || "no reason given"}`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  const device = realpathSync(link);
  socat.stdout.on("data", (bytes: Buffer) => line.write(new Uint8Array(bytes)));
  line.attachHost((bytes) => {
    if (socat.stdin.writableLength < MAX_BACKLOG) socat.stdin.write(bytes);
  });
  const linesPath = modemLines ? modemLinesPath(link) : undefined;
  const server = linesPath && modemLines ? await serveModemLines(linesPath, modemLines) : undefined;
  let closed: Promise<void> | undefined;
  return {
    path: link,
    device,
    linesPath,
    close() {
      closed ??= (async () => {
        line.detachHost();
        socat.kill();
        await exited;
        rmSync(link, { force: true });
        if (server) await closeServer(server.server, server.sockets);
        if (linesPath) rmSync(linesPath, { force: true });
      })();
      return closed;
    },
  };
}

async function serveModemLines(path: string, apply: (lines: ModemLines) => void): Promise<{ server: Server; sockets: Set<Socket> }> {
  rmSync(path, { force: true });
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    let buffered = "";
    socket.setEncoding("latin1");
    socket.on("data", (text: string) => {
      buffered += text;
      for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
        const request = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const lines = parseModemLines(request);
        if (lines) apply(lines);
        socket.write(lines ? "ok\n" : `error: expected "dtr=0|1 rts=0|1", got ${JSON.stringify(request.slice(0, 40))}\n`);
      }
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      sockets.delete(socket);
      // the port closed: a USB-serial driver drops DTR and RTS (HUPCL)
      apply({ dtr: false, rts: false });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
  return { server, sockets };
}

function closeServer(server: Server, sockets: Set<Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}
