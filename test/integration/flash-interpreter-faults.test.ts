// Putting Espruino on boards that do not cooperate: one whose DTR/RTS do not reach EN/IO0 (no
// auto-program circuit), and a blank board given to plain `wisp flash`. These wait out esptool's
// connection attempts and the console's prompt timeouts, so they live apart from
// flash-interpreter.test.ts and run beside it.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { esp32DevkitC } from "../../boards/esp32-devkitc.ts";
import { flash } from "../../tools/flash.ts";
import { PROJECT_ROOT } from "../../tools/paths.ts";
import { installInterpreter, InterpreterError, readInterpreter } from "../../tools/serial/interpreter.ts";
import { LinkError } from "../../tools/serial/link.ts";
import { type EspruinoFolder, espruinoFolder } from "../helpers/espruino-files.ts";
import { interruptWhileWriting, type SimBoards, simBoards } from "../helpers/sim-board.ts";

let espruino: EspruinoFolder;
/** Big enough that the write is still going when the cable comes out. */
let espruinoFolderForUnplug: EspruinoFolder;
let boards: SimBoards;
beforeAll(async () => {
  espruino = espruinoFolder({ appBytes: 16 * 1024 });
  espruinoFolderForUnplug = espruinoFolder({ appBytes: 512 * 1024 });
  boards = await simBoards({ nodes: 5, blank: true });
});
afterAll(async () => {
  await boards?.stop();
  espruino?.remove();
  espruinoFolderForUnplug?.remove();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("putting Espruino on a board that does not cooperate", () => {
  it("a board whose reset circuit does not reach EN/IO0 never enters download mode: the error says to hold BOOT while pressing EN, and doing so works", async () => {
    const node = boards.sim.nodes[0]!;
    node.resetCircuit = false;
    const interpreter = readInterpreter(espruino.dir, esp32DevkitC);
    // two rounds of esptool's reset and sync instead of seven: the outcome is the same, sooner
    const err = await installInterpreter({ port: node.consolePath!, interpreter, board: esp32DevkitC, say: () => undefined, progress: false, connectAttempts: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InterpreterError);
    expect((err as InterpreterError).code).toBe("no-download-mode");
    expect((err as Error).message).toMatch(/did not enter its ROM bootloader \(download mode\): it keeps booting from its flash, which is empty.*hold the BOOT button down, press and release EN, let go of BOOT/);
    expect(node.spiFlash.stats.bytesProgrammed).toBe(0);

    // what the message says, by hand
    node.setButton("BOOT", true);
    node.setButton("EN", true);
    await sleep(50);
    node.setButton("EN", false);
    await sleep(50);
    node.setButton("BOOT", false);
    expect(node.download).toBeDefined();
    const said: string[] = [];
    const result = await flash({
      port: node.consolePath!,
      configFile: boards.configFile,
      baud: 115200,
      interpreter,
      progress: false,
      // nothing resets the board after writing: the user presses EN when asked
      say: (line) => {
        said.push(line);
        if (/press its EN \(reset\) button/.test(line)) {
          node.setButton("EN", true);
          setTimeout(() => node.setButton("EN", false), 50);
        }
      },
    });
    expect(said).toContain("the board did not restart by itself: press its EN (reset) button");
    expect(result.serial).toBe(node.serial);
    expect(node.interpreterVersion).toBe("2v29");
  }, 60_000);

  it("a board unplugged while the interpreter is written: the error says so", async () => {
    const node = boards.sim.nodes[2]!;
    const interpreter = readInterpreter(espruinoFolderForUnplug.dir, esp32DevkitC);
    const writing = installInterpreter({ port: node.consolePath!, interpreter, board: esp32DevkitC, say: () => undefined, progress: false }).catch((e: unknown) => e);
    const end = Date.now() + 20_000;
    while (node.spiFlash.stats.bytesProgrammed === 0 && Date.now() < end) await sleep(20);
    await boards.sim.unplugConsole(node);
    const err = await writing;
    expect(err).toBeInstanceOf(InterpreterError);
    expect((err as InterpreterError).code).toBe("closed");
    expect((err as Error).message).toMatch(/the port closed .*unplugged.*the interpreter is not complete on it/);
    // a DevKitC powered by its USB cable alone loses power with it, and starts again when plugged in
    expect(node.power).toBe("off");
    await boards.sim.plugConsole(node);
    expect(node.power).toBe("on");
    expect(node.download).toBeUndefined();
  }, 30_000);

  it("plain wisp flash on a blank board says it has no Espruino and how to put it there", async () => {
    const node = boards.sim.nodes[1]!;
    const err = await flash({ port: node.consolePath!, configFile: boards.configFile, baud: 115200, say: () => undefined, progress: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LinkError);
    expect((err as LinkError).code).toBe("no-interpreter");
    expect((err as Error).message).toMatch(/this board has no Espruino: it prints "invalid header" in a reset loop.*npx wisp flash --interpreter 2v29/);
    // from the command line, the command to run next keeps the user's port and config (it dropped them)
    const cli = spawn(process.execPath, [join(PROJECT_ROOT, "tools", "wisp.js"), "flash", "--no-build", "--port", node.consolePath!, "--config", boards.configFile], { cwd: PROJECT_ROOT });
    let stderr = "";
    cli.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => cli.on("exit", resolve));
    expect(code).toBe(1);
    expect(stderr).toContain(`Put Espruino on it first: npx wisp flash --interpreter 2v29 --no-build --port ${node.consolePath} --config ${boards.configFile} (or`);
  }, 30_000);

  it("an interpreter written and verified that the board's bootloader will not start: the message quotes the bootloader, and does not say to write it again", async () => {
    const node = boards.sim.nodes[3]!;
    const interpreter = readInterpreter(espruino.dir, esp32DevkitC);
    // checked files, then a flipped byte on the way (as if the build's app were built wrong): written as is, verified, not bootable
    const app = interpreter.regions.find((r) => r.kind === "app")!;
    app.data = app.data.slice();
    app.data[700] ^= 0x10;
    const err = await flash({ port: node.consolePath!, configFile: boards.configFile, baud: 115200, interpreter, say: () => undefined, progress: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LinkError);
    expect((err as Error).message).toMatch(/Espruino was written and verified, but the board does not start it: its bootloader says "checksum failed: calculated 0x[0-9a-f]+, read 0x[0-9a-f]+; Factory app partition is not bootable; No bootable app partitions in the partition table"/);
    expect((err as Error).message).not.toMatch(/--interpreter 2v29/);
  }, 60_000);

  it("Ctrl-C while wisp flash --interpreter writes Espruino: the board is reset to run what it holds and the node is not uploaded; exit 130", async () => {
    const node = boards.sim.nodes[4]!;
    const { code, stderr } = await interruptWhileWriting(node, ["flash", "--no-build", "--interpreter", espruinoFolderForUnplug.dir, "--port", node.consolePath!, "--config", boards.configFile]);
    expect(code).toBe(130);
    expect(stderr).toMatch(/wisp flash: interrupted: Espruino may not be complete on the board, which was reset to run what it holds\. Run the same command again .*; the node was not uploaded/);
    const until = Date.now() + 5_000;
    while (node.download !== undefined && Date.now() < until) await sleep(20);
    expect(node.download).toBeUndefined();
    expect(node.flashStorage.list()).toEqual([]);
  }, 90_000);
});
