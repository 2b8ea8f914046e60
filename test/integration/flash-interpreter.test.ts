// From a blank ESP32 to a running node: `wisp flash --interpreter DIR` against simulated boards
// whose flash is empty, on pseudo-terminals. The real path end to end: esptool-js behind Wisp's
// serialport adapter, DTR/RTS through the simulator's modem-line socket, the simulated ROM
// bootloader and flasher stub, the simulated SPI flash, the boot from it, then the node upload.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { esp32DevkitC } from "../../boards/esp32-devkitc.ts";
import type { SimNode } from "../../host-sim/node.ts";
import { CHIP_MODELS } from "../../host-sim/serial/rom.ts";
import { PROJECT_ROOT } from "../../tools/build.ts";
import { installInterpreter, InterpreterError, readInterpreter } from "../../tools/serial/interpreter.ts";
import { type EspruinoFolder, espruinoFolder } from "../helpers/espruino-files.ts";
import { type SimBoards, simBoards } from "../helpers/sim-board.ts";

const quiet = { say: () => undefined, progress: false };
const md5 = (data: Uint8Array) => createHash("md5").update(data).digest("hex");

let espruino: EspruinoFolder;
let boards: SimBoards;
beforeAll(async () => {
  espruino = espruinoFolder({ version: "2v29" });
  boards = await simBoards({ nodes: 3, blank: true });
});
afterAll(async () => {
  await boards?.stop();
  espruino?.remove();
});
const board = (i: number): SimNode => boards.sim.nodes[i]!;

describe("wisp flash --interpreter: a blank ESP32 to a running node in one command", () => {
  it("wisp sim --serial --blank, then the command it prints with --interpreter: the board gets Espruino, then the node, and publishes online", async () => {
    const sim = wisp(["sim", "--serial", "--blank", "--plain", "--no-build", "--port", "0", "--nodes", "1", "--duration", "120"]);
    try {
      // the hint names a version to download; this test passes a folder of small images instead (no network in CI)
      const hint = await sim.waitFor(/flash a node: npx wisp flash --interpreter 2v29 --port (\S+) --config (\S+)/, 20_000);
      const [, port, config] = hint;
      await sim.waitFor(/invalid header: 0xffffffff/, 5_000); // what a new ESP32 prints
      const started = performance.now();
      const flash = await run(["flash", "--no-build", "--interpreter", espruino.dir, "--port", port!, "--config", config!]);
      const seconds = (performance.now() - started) / 1000;
      expect(flash.stderr).toBe("");
      expect(flash.code).toBe(0);
      expect(flash.stdout).toMatch(/: ESP32-D0WDQ6 \(revision 1\), MAC 24:0a:c4:[0-9a-f:]+, in its ROM bootloader/);
      for (const [name, address] of [
        ["bootloader.bin", "0x1000"],
        ["partitions_espruino.bin", "0x8000"],
        ["espruino_esp32.bin", "0x10000"],
      ]) {
        expect(flash.stdout).toMatch(new RegExp(`wrote ${name.replace(".", "\\.")} at ${address}: [\\d,]+ bytes \\([\\d,]+ compressed\\) in [\\d.]+ s, MD5 verified`));
      }
      expect(flash.stdout).toMatch(/Espruino 2v29 on ESP32/);
      expect(flash.stdout).toMatch(/node \S+ booted/);
      const id = /node (\S+) booted/.exec(flash.stdout)![1]!;
      await sim.waitFor(new RegExp(`mqtt wisp/${id}/status online`), 20_000);
      console.log(`blank board to a node publishing online: wisp flash --interpreter took ${seconds.toFixed(1)} s (${(espruino.files["espruino_esp32.bin"]!.length / 1024).toFixed(0)} KB interpreter image)`);
    } finally {
      await sim.stop();
    }
  }, 90_000);

  it("offline, as the README's new user: sim --blank prints the flash and test commands; install-espruino --stand-in, install-espruino with it, then its 'next' command brings the node online", async () => {
    const sim = wisp(["sim", "--serial", "--blank", "--plain", "--no-build", "--port", "0", "--nodes", "2", "--duration", "120"]);
    const standIn = mkdtempSync(join(tmpdir(), "wisp-stand-in-"));
    try {
      const [, port, config] = await sim.waitFor(/flash a node: npx wisp flash --interpreter 2v29 --port (\S+) --config (\S+)/, 20_000);
      await sim.waitFor(/test it: +npx wisp hil --port \S+ --config \S+ \(once flashed\)/, 1_000);
      await sim.waitFor(/no network\? npx wisp install-espruino --stand-in DIR/, 1_000);
      await sim.waitFor(/other nodes: the same with their --port/, 1_000);
      const made = await run(["install-espruino", "--stand-in", standIn]);
      expect(made.code).toBe(0);
      expect(made.stdout).toMatch(/NOT Espruino/);
      expect(readInterpreter(standIn, esp32DevkitC)).toMatchObject({ version: "2v29", standIn: true });
      const installed = await run(["install-espruino", standIn, "--port", port!]);
      expect(installed.stderr).toBe("");
      const next = /next: (npx wisp flash .*)/.exec(installed.stdout)?.[1];
      expect(next).toBe(`npx wisp flash --port ${port} --config ${config}`);
      const flashed = await run([...next!.split(" ").slice(2), "--no-build"]);
      expect(flashed.code).toBe(0);
      const id = /node (\S+) booted/.exec(flashed.stdout)![1]!;
      await sim.waitFor(new RegExp(`mqtt wisp/${id}/status online`), 20_000);
    } finally {
      rmSync(standIn, { recursive: true, force: true });
      await sim.stop();
    }
  }, 120_000);

  it("a block that lands wrong in flash is caught by its MD5 and the region is written again; then the board is reset into it (EN low for 100 ms, IO0 released)", async () => {
    const node = board(0);
    const lines: { at: number; dtr: boolean; rts: boolean }[] = [];
    const setModemLines = node.setModemLines.bind(node);
    node.setModemLines = (l) => {
      setModemLines(l);
      lines.push({ at: performance.now(), ...node.modemLines });
    };
    const app = espruino.files["espruino_esp32.bin"]!;
    const at = 0x4000; // inside the interpreter image, a byte that is not 0
    expect(app[at]).not.toBe(0);
    node.spiFlash.injectFault({ address: 0x10000 + at, mask: 0xff, kind: "once" });
    const result = await installInterpreter({ port: node.consolePath!, interpreter: readInterpreter(espruino.dir, esp32DevkitC), board: esp32DevkitC, ...quiet });
    expect(result.retries).toBe(1);
    expect(md5(node.spiFlash.read(0x10000, app.length))).toBe(md5(app));
    // the board was reset into what it now holds: the last EN pulse (RTS without DTR) lasts as esptool's
    // does, and ends with both lines released, so IO0 is not held low afterwards
    const last = lines.map((l) => l.rts && !l.dtr).lastIndexOf(true);
    expect(last).toBeGreaterThan(0);
    expect(lines[last + 1]!.at - lines[last]!.at).toBeGreaterThanOrEqual(90);
    expect(lines.at(-1)).toMatchObject({ dtr: false, rts: false });
    await until(() => node.runtime !== undefined, 5_000);
    expect(node.interpreterVersion).toBe("2v29");
  }, 60_000);

  it("another chip than the board file's is refused before anything is written, and left running", async () => {
    const node = board(1);
    node.chip = CHIP_MODELS["ESP32-S3"]!;
    const before = node.spiFlash.stats.bytesProgrammed;
    const err = await installInterpreter({ port: node.consolePath!, interpreter: readInterpreter(espruino.dir, esp32DevkitC), board: esp32DevkitC, ...quiet }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InterpreterError);
    expect((err as InterpreterError).code).toBe("wrong-chip");
    expect((err as Error).message).toMatch(/has an ESP32-S3, not an ESP32: board esp32-devkitc/);
    expect(node.spiFlash.stats.bytesProgrammed).toBe(before);
    // reset out of its bootloader again: back to what it ran (its empty flash's reset loop)
    await until(() => node.download === undefined, 5_000);
  }, 60_000);
});

describe("wisp install-espruino", () => {
  it("with a folder: only the interpreter, verified, and the board answers as Espruino; without one and without a network: where to get it", async () => {
    const node = board(2);
    const installed = await run(["install-espruino", espruino.dir, "--port", node.consolePath!]);
    expect(installed.stderr).toBe("");
    expect(installed.code).toBe(0);
    expect(installed.stdout).toMatch(new RegExp(`Espruino 2v29 is running on ${node.consolePath} \\(ESP32\\): [\\d,]+ bytes written at 921600 baud and verified`));
    expect(installed.stdout).toContain(`next: npx wisp flash --port ${node.consolePath}`);
    expect(node.interpreterVersion).toBe("2v29");
    expect(node.flashStorage.list()).toEqual([]); // the node is not on it yet
    // no folder: it downloads the tested version; here nothing answers (as without a network)
    const cache = mkdtempSync(join(tmpdir(), "wisp-cache-"));
    try {
      const none = await run(["install-espruino", "--port", node.consolePath!], { WISP_ESPRUINO_BINARIES: "http://127.0.0.1:1", XDG_CACHE_HOME: cache });
      expect(none.code).toBe(1);
      expect(none.stderr).toMatch(/could not reach http:\/\/127\.0\.0\.1:1\/espruino_2v29_esp32\/bootloader\.bin \([^)]+\): no network here\? Get Espruino for ESP32 from https:\/\/www\.espruino\.com\/Download .*npx wisp flash --interpreter/);
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  }, 60_000);
});

async function until(check: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, "tools", "wisp.js"), ...args], { cwd: PROJECT_ROOT, env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** A long-running `wisp` command whose output is watched line by line. */
function wisp(args: string[]) {
  const child = spawn(process.execPath, [join(PROJECT_ROOT, "tools", "wisp.js"), ...args], { cwd: PROJECT_ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  const check = () => {
    for (const w of [...waiters]) {
      const m = w.re.exec(out);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
    check();
  });
  child.stderr.on("data", (d: Buffer) => {
    out += d.toString();
    check();
  });
  const exited = new Promise<void>((resolve) => child.on("close", () => resolve()));
  return {
    waitFor(re: RegExp, ms: number): Promise<RegExpExecArray> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`wisp ${args[0]} did not print ${re} within ${ms} ms; it printed:\n${out.slice(-3000)}`)), ms);
        waiters.push({
          re,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
        });
        check();
      });
    },
    async stop(): Promise<void> {
      if (child.exitCode === null) child.kill("SIGINT");
      await exited;
    },
  };
}
