// `wisp monitor` on a simulated board's pseudo-terminal: lines in and out when piped, timestamps,
// and the board unplugged and plugged in again.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "../../tools/build.ts";
import { type SimBoards, simBoards } from "../helpers/sim-board.ts";

let boards: SimBoards;
beforeAll(async () => {
  boards = await simBoards({ nodes: 2, flash: false });
});
afterAll(() => boards?.stop());

function monitor(args: string[]) {
  const child = spawn(process.execPath, [join(PROJECT_ROOT, "tools", "wisp.js"), "monitor", ...args], { cwd: PROJECT_ROOT, stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
  return {
    child,
    output: () => out,
    exited,
    async until(re: RegExp, ms = 10_000) {
      const end = Date.now() + ms;
      while (!re.test(out)) {
        if (Date.now() > end) throw new Error(`no ${re} in ${JSON.stringify(out)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

describe("wisp monitor", () => {
  it("piped: sends the lines it reads, prints the board's output as lines with timestamps, exits 0 at the end of input", async () => {
    const m = monitor(["--port", boards.sim.nodes[0]!.consolePath!, "--timestamps"]);
    m.child.stdin.end("1+2\nprint('hello')\n");
    expect(await m.exited).toBe(0);
    const lines = m.output().split("\n");
    expect(lines).toContainEqual(expect.stringMatching(/^\[\d\d:\d\d:\d\d\.\d{3}\] =3$/));
    expect(lines).toContainEqual(expect.stringMatching(/^\[\d\d:\d\d:\d\d\.\d{3}\] hello$/));
  }, 20_000);

  it("piped: everything read goes to the board before it leaves, however long the board takes", async () => {
    const lines = ["echo(0)", ...Array.from({ length: 400 }, (_, i) => `var a${i}=${i};`), "echo(1)", "print('last', a399)"];
    const m = monitor(["--port", boards.sim.nodes[0]!.consolePath!]);
    m.child.stdin.end(lines.join("\n") + "\n");
    expect(await m.exited).toBe(0);
    expect(m.output()).toMatch(/^last 399$/m);
  }, 30_000);

  it("says when the board is unplugged, and carries on when it is back", async () => {
    const node = boards.sim.nodes[1]!;
    const m = monitor(["--port", node.consolePath!]);
    m.child.stdin.write("1+1\n");
    await m.until(/=2/);
    await boards.sim.unplugConsole(node);
    await m.until(/closed: the board was unplugged or reset its USB. Waiting for it to come back/);
    await boards.sim.plugConsole(node);
    await m.until(/is back/);
    m.child.stdin.end("40+2\n");
    await m.until(/=42/);
    expect(await m.exited).toBe(0);
  }, 30_000);

  it("a missing port is an error with the fix; a bad option is a usage error", async () => {
    const m = monitor(["--port", "/dev/ttyUSB-not-there"]);
    m.child.stdin.end();
    expect(await m.exited).toBe(1);
    expect(m.output()).toMatch(/\/dev\/ttyUSB-not-there does not exist: is the board plugged in\?/);
    const bad = monitor(["--baud", "x"]);
    expect(await bad.exited).toBe(2);
  }, 20_000);
});
