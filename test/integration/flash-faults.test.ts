// `wisp flash` against boards that answer slowly or not at all. These wait out the board's own
// timeouts (5 s for an incomplete packet), so they live apart from flash.test.ts and run beside it.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "../../tools/build.ts";
import { flash } from "../../tools/flash.ts";
import { LinkError } from "../../tools/serial/link.ts";
import { type SimBoards, simBoards } from "../helpers/sim-board.ts";

const quiet = { say: () => undefined, progress: false };
let boards: SimBoards;
beforeAll(async () => {
  boards = await simBoards({ nodes: 3, flash: false });
});
afterAll(() => boards?.stop());

describe("wisp flash when the line or the board fails", () => {
  it("--monitor after a failed flash: exit 1 and the port is free again (it used to stay open for ever)", async () => {
    const node = boards.sim.nodes[2]!;
    node.installInterpreter("2v24");
    node.reboot();
    // not spawnSync: the simulated board runs in this process and must answer meanwhile
    const child = spawn(process.execPath, [join(PROJECT_ROOT, "tools", "wisp.js"), "flash", "--no-build", "--monitor", "--port", node.consolePath!, "--config", boards.configFile]);
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdin.end();
    const code = await new Promise((resolve) => child.on("close", resolve));
    expect(code, stderr).toBe(1);
    expect(stderr).toMatch(/Espruino 2v24; Wisp needs 2v25/);
  }, 40_000);

  it("a byte lost on the line: the board NAKs the short packet after its 5 s timeout and the packet goes again", async () => {
    const node = boards.sim.nodes[0]!;
    node.line.injectFault("drop", 3000);
    const result = await flash({ port: node.consolePath!, configFile: boards.configFile, baud: 115200, ...quiet });
    expect(node.console.packets.nak).toBe(1);
    expect(result.retries.packets).toBe(1);
    expect(result.retries.files).toBe(0);
  }, 30_000);

  it("no prompt (the board is off): an error that says what to check, and nothing else sent", async () => {
    const node = boards.sim.nodes[1]!;
    node.powerOff();
    const err = await flash({ port: node.consolePath!, configFile: boards.configFile, baud: 115200, ...quiet }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LinkError);
    expect((err as LinkError).code).toBe("no-prompt");
    expect((err as Error).message).toMatch(/no Espruino prompt on this port.*--baud.*press the board's EN \(reset\) button/);
  }, 30_000);
});
