// A simulated board's console on a pseudo-terminal, so that host tools open it as they would a
// board's /dev/ttyUSB0 (serialport, screen, picocom). `socat` (Debian package socat) makes the
// pseudo-terminal and passes its bytes through its standard input and output.

import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
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
  close(): Promise<void>;
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
 */
export async function openPty(line: SerialLine, link = join(mkdtempSync(join(tmpdir(), "wisp-pty-")), "tty")): Promise<Pty> {
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
  let closed: Promise<void> | undefined;
  return {
    path: link,
    device,
    close() {
      closed ??= (async () => {
        line.detachHost();
        socat.kill();
        await exited;
        rmSync(link, { force: true });
      })();
      return closed;
    },
  };
}
