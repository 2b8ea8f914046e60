// `wisp flash` when things go wrong in ways a hostile tester found: a stray XOFF, a lost ACK, noise
// in an EVAL packet, a Storage too full for the node, settings that are not ASCII, a prefix with a
// space. Simulated boards on pseudo-terminals, as in flash.test.ts.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flash } from "../../tools/flash.ts";
import { LinkError } from "../../tools/serial/link.ts";
import { type SimBoards, simBoards } from "../helpers/sim-board.ts";

const quiet = { say: () => undefined, progress: false };
let boards: SimBoards;
beforeAll(async () => {
  boards = await simBoards({ nodes: 6, flash: false });
});
afterAll(() => boards?.stop());

const node = (i: number) => boards.sim.nodes[i]!;
const flashNode = (i: number, configFile = boards.configFile) => flash({ port: node(i).consolePath!, configFile, baud: 115200, ...quiet });

/** The simulation's config with some fields changed, in a file of its own. */
function config(change: (c: Record<string, any>) => void): string {
  const c = JSON.parse(readFileSync(boards.configFile, "utf8"));
  change(c);
  const file = join(mkdtempSync(join(tmpdir(), "wisp-robust-")), "flash.config.json");
  writeFileSync(file, JSON.stringify(c));
  return file;
}

describe("wisp flash holds up", () => {
  it("an XOFF whose XON never comes (a board reset, noise, a program printing 0x13) pauses the upload 3 s, not for ever", async () => {
    node(0).line.send(Uint8Array.of(0x13));
    const result = await flashNode(0);
    expect(result.serial).toBe(node(0).serial);
  }, 30_000);

  it("an ACK lost on the way back: the file starts again (a DATA packet sent twice would shift the file)", async () => {
    // the fifth ACK of the session: one for a DATA packet of .bootcde
    node(1).line.injectOutputFault("drop", (b) => b === 0x06, 4);
    const result = await flashNode(1);
    expect(result.retries.files).toBe(1);
    expect(node(1).console.packets.ack).toBeGreaterThan(0);
  }, 40_000);

  it("noise in an EVAL packet: it goes again", async () => {
    // after Ctrl-C and Ctrl-E, the first EVAL packet (process.env) loses a byte
    node(2).line.injectFault("drop", 8);
    const result = await flashNode(2);
    expect(result.retries.packets).toBeGreaterThanOrEqual(1);
  }, 40_000);

  it("a Storage too full for the node is refused before anything is erased; the old node stays", async () => {
    const n = node(3);
    n.flashStorage.write(".bootcde", Buffer.from('print("old node")'));
    n.flashStorage.write("filler", new Uint8Array(n.flashStorage.getFree() - 4096).fill(0x41));
    const err = await flashNode(3).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LinkError);
    expect((err as LinkError).code).toBe("storage");
    expect((err as Error).message).toMatch(/Storage is too full for the node: it needs [\d,]+ bytes, [\d,]+ can be had .*Nothing was changed/);
    expect(n.flashStorage.read(".bootcde")).toBe('print("old node")');
  }, 30_000);

  it("settings that are not ASCII go as UTF-8 (the ESP32 build keeps strings as their bytes, as the access point's SSID is)", async () => {
    const file = config((c) => (c.wifi.ssid = "Café ☕"));
    const result = await flashNode(4, file);
    expect(result.serial).toBe(node(4).serial);
    const stored = Buffer.from(node(4).flashStorage.bytes("wisp.json")!);
    expect(JSON.parse(stored.toString("utf8")).wifi.ssid).toBe("Café ☕");
  }, 30_000);

  it("a prefix with a space is the node's prefix", async () => {
    const file = config((c) => (c.prefix = "my home/{id}"));
    const result = await flashNode(5, file);
    expect(result.prefix).toBe(`my home/${node(5).serial}`);
  }, 30_000);
});
