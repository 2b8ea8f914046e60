// Putting Espruino on boards that do not cooperate: one whose DTR/RTS do not reach EN/IO0 (no
// auto-program circuit), and a blank board given to plain `wisp flash`. These wait out esptool's
// connection attempts and the console's prompt timeouts, so they live apart from
// flash-interpreter.test.ts and run beside it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { esp32DevkitC } from "../../boards/esp32-devkitc.ts";
import { flash } from "../../tools/flash.ts";
import { installInterpreter, InterpreterError, readInterpreter } from "../../tools/serial/interpreter.ts";
import { LinkError } from "../../tools/serial/link.ts";
import { type EspruinoFolder, espruinoFolder } from "../helpers/espruino-files.ts";
import { type SimBoards, simBoards } from "../helpers/sim-board.ts";

let espruino: EspruinoFolder;
/** Big enough that the write is still going when the cable comes out. */
let espruinoFolderForUnplug: EspruinoFolder;
let boards: SimBoards;
beforeAll(async () => {
  espruino = espruinoFolder({ appBytes: 16 * 1024 });
  espruinoFolderForUnplug = espruinoFolder({ appBytes: 512 * 1024 });
  boards = await simBoards({ nodes: 3, blank: true });
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
    await boards.sim.plugConsole(node);
  }, 30_000);

  it("plain wisp flash on a blank board says it has no Espruino and how to put it there", async () => {
    const node = boards.sim.nodes[1]!;
    const err = await flash({ port: node.consolePath!, configFile: boards.configFile, baud: 115200, say: () => undefined, progress: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LinkError);
    expect((err as LinkError).code).toBe("no-interpreter");
    expect((err as Error).message).toMatch(/this board has no Espruino: it prints "invalid header" in a reset loop.*npx wisp flash --interpreter 2v29/);
  }, 30_000);
});
