// `wisp flash` against boards that answer slowly or not at all. These wait out the board's own
// timeouts (5 s for an incomplete packet), so they live apart from flash.test.ts and run beside it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flash } from "../../tools/flash.ts";
import { LinkError } from "../../tools/serial/link.ts";
import { type SimBoards, simBoards } from "../helpers/sim-board.ts";

const quiet = { say: () => undefined, progress: false };
let boards: SimBoards;
beforeAll(async () => {
  boards = await simBoards({ nodes: 2, flash: false });
});
afterAll(() => boards?.stop());

describe("wisp flash when the line or the board fails", () => {
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
