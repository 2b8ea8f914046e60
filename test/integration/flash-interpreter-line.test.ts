// Putting Espruino on a board over a line that loses or garbles bytes, and on boards that make
// esptool-js fail outside the region writes: every outcome is the interpreter written and
// verified, or an InterpreterError that names the step and the fix; never a raw esptool-js error;
// and never a board left in its ROM bootloader (the node would stay offline).
import { createHash } from "node:crypto";
import { join } from "node:path";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { esp32DevkitC } from "../../boards/esp32-devkitc.ts";
import type { SimNode } from "../../host-sim/node.ts";
import { CHIP_MODELS } from "../../host-sim/serial/rom.ts";
import { PROJECT_ROOT } from "../../tools/paths.ts";
import { installInterpreter, InterpreterError, readInterpreter } from "../../tools/serial/interpreter.ts";
import { writeStandIn } from "../../tools/serial/stand-in.ts";
import { type EspruinoFolder, espruinoFolder } from "../helpers/espruino-files.ts";
import { interruptWhileWriting, type SimBoards, simBoards } from "../helpers/sim-board.ts";

const md5 = (data: Uint8Array) => createHash("md5").update(data).digest("hex");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let espruino: EspruinoFolder;
let boards: SimBoards;
beforeAll(async () => {
  espruino = espruinoFolder({ appBytes: 384 * 1024 });
  boards = await simBoards({ nodes: 5, blank: true });
});
afterAll(async () => {
  await boards?.stop();
  espruino?.remove();
});

const install = (node: SimNode, said: string[] = [], connectAttempts?: number) =>
  installInterpreter({ port: node.consolePath!, interpreter: readInterpreter(espruino.dir, esp32DevkitC), board: esp32DevkitC, say: (l) => said.push(l), progress: false, connectAttempts });

/** Calls `then` once the flasher stub runs on `node`. */
async function onceStubRuns(node: SimNode, then: () => void): Promise<void> {
  const end = Date.now() + 30_000;
  while (!node.download?.stub && Date.now() < end) await sleep(2);
  then();
}

/** The board left its bootloader and runs what its flash holds (a reset loop, or the interpreter). */
async function runsAgain(node: SimNode): Promise<void> {
  const end = Date.now() + 5_000;
  while (node.download !== undefined && Date.now() < end) await sleep(20);
  expect(node.download).toBeUndefined();
}

describe("writing the interpreter over a line that loses or garbles bytes", () => {
  it("an inverted byte every ~64 KB from the host: the garbled pieces are written again and the interpreter is complete", async () => {
    const node = boards.sim.nodes[0]!;
    const app = espruino.files["espruino_esp32.bin"]!;
    const said: string[] = [];
    const faults = onceStubRuns(node, () => {
      for (let k = 1; k <= 6; k++) node.line.injectFault("corrupt", k * 65536 + ((k * 7919) % 4096));
    });
    // what the stub refused (bad checksum, bad length): each garbled block is sent again by
    // esptool-js or, when an answer was lost, the piece is written again from its start
    let refused = 0;
    const watch = setInterval(() => (refused = Math.max(refused, Object.values(node.download?.stats.errors ?? {}).reduce((n, c) => n + c, 0))), 2);
    try {
      await install(node, said);
    } finally {
      clearInterval(watch);
    }
    await faults;
    expect(refused).toBeGreaterThan(0);
    expect(md5(node.spiFlash.read(0x10000, app.length))).toBe(md5(app));
    await runsAgain(node);
    expect(node.interpreterVersion).toBe("2v29");
  }, 120_000);

  it("answers from the board that lose their SLIP end byte: the stub's state is checked, the piece written again, the interpreter complete", async () => {
    const node = boards.sim.nodes[1]!;
    const app = espruino.files["espruino_esp32.bin"]!;
    const faults = onceStubRuns(node, () => {
      for (const skip of [10, 30, 60, 90]) node.line.injectOutputFault("drop", (b) => b === 0xc0, skip);
    });
    await install(node);
    await faults;
    // every end byte was lost on the way (whether esptool-js read past it or Wisp wrote a piece again)
    expect(node.line.outputFaultsPending).toBe(0);
    expect(md5(node.spiFlash.read(0x10000, app.length))).toBe(md5(app));
    await runsAgain(node);
    expect(node.interpreterVersion).toBe("2v29");
  }, 120_000);

  it("an answer lost whole while a piece is written: esptool-js sends the block again, which the stub writes twice; Wisp writes the piece again from its start", async () => {
    const node = boards.sim.nodes[3]!;
    const app = espruino.files["espruino_esp32.bin"]!;
    const said: string[] = [];
    const faults = onceStubRuns(node, () => {
      // 24 bytes in a row from the board, some way into the writes: two answers, or most of them
      for (let k = 0; k < 24; k++) node.line.injectOutputFault("drop", () => true, 400 + k);
    });
    const result = await install(node, said);
    await faults;
    expect(result.retries).toBeGreaterThan(0);
    expect(said.join("\n")).not.toMatch(/starting over/); // the stub still answered: no new session
    expect(md5(node.spiFlash.read(0x10000, app.length))).toBe(md5(app));
    await runsAgain(node);
    expect(node.interpreterVersion).toBe("2v29");
  }, 120_000);

  it("a second run finds the regions in place and writes nothing again", async () => {
    const node = boards.sim.nodes[1]!;
    const before = node.spiFlash.stats.bytesProgrammed;
    const said: string[] = [];
    const result = await install(node, said);
    expect(node.spiFlash.stats.bytesProgrammed).toBe(before);
    expect(result.regions.map((r) => r.written)).toEqual([0, 0, 0]);
    expect(said).toContain(`espruino_esp32.bin at 0x10000 is in place already (${app().length.toLocaleString("en-US")} bytes, MD5 verified): not written again`);
    await runsAgain(node);
  }, 60_000);
});

const app = () => espruino.files["espruino_esp32.bin"]!;

describe("failures outside the region writes are named, and the board is left running", () => {
  it("noise while syncing with the ROM: written anyway, or a clear error; never a raw one, never left in the bootloader", async () => {
    const node = boards.sim.nodes[2]!;
    const noise = setInterval(() => {
      if (node.download && !node.download.stub) node.line.injectFault("corrupt", Math.floor(Math.random() * 40));
    }, 10);
    let outcome: unknown;
    try {
      outcome = await install(node, [], 1).catch((e: unknown) => e);
    } finally {
      clearInterval(noise);
    }
    if (outcome instanceof Error) {
      expect(outcome).toBeInstanceOf(InterpreterError);
      // noise is named as noise: not another chip, not a missing BOOT press
      expect(["no-download-mode", "link", "flash"]).toContain((outcome as InterpreterError).code);
      expect(outcome.message).not.toMatch(/ESP32-P4|hold the BOOT button|did not enter its ROM bootloader|\.\./);
    }
    await runsAgain(node);
  }, 120_000);

  it("a chip read once as another (a garbled chip-id answer) is read again in a new session, not refused", async () => {
    const node = boards.sim.nodes[2]!;
    const esp32 = node.chip;
    node.chip = CHIP_MODELS["ESP32-S3"]!; // what the first session's answers say
    let first: unknown;
    const watch = setInterval(() => {
      if (node.download && first === undefined) first = node.download;
      else if (node.download && node.download !== first) node.chip = esp32;
    }, 1);
    const log: string[] = [];
    try {
      const result = await installInterpreter({ port: node.consolePath!, interpreter: readInterpreter(espruino.dir, esp32DevkitC), board: esp32DevkitC, say: () => undefined, progress: false, onLog: (l) => log.push(l) });
      expect(result.chip).toMatch(/^ESP32-D0WDQ6/);
    } finally {
      clearInterval(watch);
      node.chip = esp32;
    }
    expect(log).toContain("the chip read as ESP32-S3; reading it again in a new session");
    await runsAgain(node);
  }, 60_000);

  it("a chip esptool-js does not know is refused, and reset out of its bootloader", async () => {
    const node = boards.sim.nodes[3]!;
    const chip = node.chip;
    node.chip = { ...chip, name: "ESP32-X", magic: 0x12345678 } as typeof chip;
    try {
      const err = await install(node).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InterpreterError);
      expect((err as InterpreterError).code).toBe("wrong-chip");
      expect((err as Error).message).toMatch(/Unexpected CHIP magic value 0x12345678.*not an Espressif chip that esptool knows/);
      await runsAgain(node);
    } finally {
      node.chip = chip;
    }
  }, 60_000);

  it("a stale modem-line socket beside the port (a simulator that crashed) is named, not a crash", async () => {
    const node = boards.sim.nodes[3]!;
    const socket = `${node.consolePath!}.lines`;
    rmSync(socket, { force: true });
    writeFileSync(socket, "");
    const err = await install(node, [], 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InterpreterError);
    expect((err as Error).message).toMatch(/did not enter its ROM bootloader.*no DTR\/RTS lines/);
  }, 60_000);

  it("wisp's stand-in files are refused on a board that is not simulated (here: no modem-line socket, BOOT held by hand)", async () => {
    const node = boards.sim.nodes[3]!; // its modem-line socket is a dead file since the test above
    const dir = mkdtempSync(join(tmpdir(), "wisp-stand-in-"));
    try {
      writeStandIn(dir, esp32DevkitC);
      node.setButton("BOOT", true);
      node.setButton("EN", true);
      await sleep(20);
      node.setButton("EN", false);
      await sleep(20);
      node.setButton("BOOT", false);
      const before = node.spiFlash.stats.bytesProgrammed;
      const err = await installInterpreter({ port: node.consolePath!, interpreter: readInterpreter(dir, esp32DevkitC), board: esp32DevkitC, say: () => undefined, progress: false }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InterpreterError);
      expect((err as Error).message).toMatch(/holds Wisp's stand-in files for the simulator .*not Espruino: a real board cannot run them/);
      expect(node.spiFlash.stats.bytesProgrammed).toBe(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("Ctrl-C while wisp install-espruino writes: the board is reset to run what it holds, the message says what to do, exit 130", async () => {
    const node = boards.sim.nodes[4]!;
    const { code, stderr } = await interruptWhileWriting(node, ["install-espruino", espruino.dir, "--port", node.consolePath!]);
    expect(code).toBe(130);
    expect(stderr).toMatch(/wisp install-espruino: interrupted: Espruino may not be complete on the board, which was reset to run what it holds\. Run the same command again/);
    expect(stderr).not.toMatch(/internal error/);
    await runsAgain(node);
  }, 90_000);
});
