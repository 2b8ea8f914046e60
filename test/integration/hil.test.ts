// `wisp hil` as CI runs it: on a simulated board (--sim), on a board given by --port that the map
// does not know (its sensor tests are skipped, with the reason in the JUnit report), and with no
// board at all (skipped, or a failure under WISP_HIL=required).
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "../../tools/build.ts";
import { createServer } from "node:net";
import { simBoards } from "../helpers/sim-board.ts";

const dir = mkdtempSync(join(tmpdir(), "wisp-hil-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** flash.config.json with a 2 s interval, so a reading is due soon. */
function fastConfig(): string {
  const config = JSON.parse(readFileSync(join(PROJECT_ROOT, "flash.config.json"), "utf8"));
  const file = join(dir, "fast.json");
  writeFileSync(file, JSON.stringify({ ...config, $schema: join(PROJECT_ROOT, "flash.schema.json"), interval: 2 }));
  return file;
}

function wisp(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, "tools", "wisp.js"), ...args], { cwd: PROJECT_ROOT, env: { ...process.env, ...env } });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.on("close", (code) => resolve({ code, out }));
  });
}

const count = (xml: string, re: RegExp) => (xml.match(re) ?? []).length;

/**
 * A free port outside the range the kernel hands out for port 0 (32768-60999 on Linux), so no
 * other test's broker takes it between this check and wisp hil binding it.
 */
async function quietPort(): Promise<number> {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 10000);
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer().once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

describe("wisp hil", () => {
  it("--sim: flashes a simulated board and passes every test, with JUnit XML and a serial log per test; --broker at a free local address gets an embedded broker", async () => {
    const junit = join(dir, "sim.xml");
    const logs = join(dir, "sim-logs");
    const r = await wisp(["hil", "--sim", "--broker", `mqtt://127.0.0.1:${await quietPort()}`, "--config", fastConfig(), "--junit", junit, "--logs", logs]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/nothing listened on 127\.0\.0\.1:\d+: embedded broker started there/);
    const xml = readFileSync(junit, "utf8");
    expect(count(xml, /<testcase /g)).toBe(9);
    expect(xml).toMatch(/failures="0"/);
    expect(count(xml, /<skipped/g)).toBe(0);
    for (const name of ["flashes the node", "publishes online, retained", "a reading from climate (bme280)", "command ping", "command interval", "command sample", "an unknown command", "command restart", "match what was flashed, by CRC-32"]) {
      expect(xml).toContain(name);
    }
    // the serial log of the restart test shows the node booting again
    const restart = readdirSync(logs).find((f) => f.startsWith("command-restart"))!;
    expect(readFileSync(join(logs, restart), "utf8")).toMatch(/wisp: restarting[\s\S]*wisp: node \S+, prefix/);
  }, 90_000);

  it("finds a board of the map by its fixed port; a sensor whose fixture is not wired there is skipped with that reason", async () => {
    // a board on the simulation's Wi-Fi and broker, as a bench board is on the lab's
    const boards = await simBoards({ nodes: 1, flash: false, interval: 2 });
    try {
      const junit = join(dir, "port.xml");
      const map = join(dir, "bench.json");
      writeFileSync(map, JSON.stringify({ boards: [{ id: "bench-sim", port: boards.sim.nodes[0]!.consolePath!, fixtures: [] }] }));
      const r = await wisp(["hil", "--map", map, "--broker", boards.sim.brokerUrl, "--config", boards.configFile, "--junit", junit, "--logs", join(dir, "port-logs")]);
      expect(r.code, r.out).toBe(0);
      expect(r.out).toMatch(/wisp hil: board bench-sim on \//);
      const xml = readFileSync(junit, "utf8");
      expect(xml).toMatch(/failures="0"/);
      expect(xml).toMatch(/<skipped message="fixture bme280 at 0x76 is not wired to board bench-sim \(hil.map.json\)"\/>/);
    } finally {
      await boards.stop();
    }
  }, 90_000);

  it("never deletes a folder it did not make (--logs), and a --map that is not there is an error, not an empty map", async () => {
    const precious = join(dir, "precious");
    mkdirSync(join(precious, "sub"), { recursive: true });
    writeFileSync(join(precious, "notes.txt"), "important");
    const logs = await wisp(["hil", "--sim", "--logs", precious]);
    expect(logs.code).toBe(1);
    expect(logs.out).toMatch(/--logs .*precious is not empty and was not made by wisp hil; give a new or empty folder \(nothing in it was touched\)/);
    expect(readFileSync(join(precious, "notes.txt"), "utf8")).toBe("important");
    expect(existsSync(join(precious, "sub"))).toBe(true);
    const map = await wisp(["hil", "--map", join(dir, "typo.json")]);
    expect(map.code).toBe(1);
    expect(map.out).toMatch(/--map .*typo.json: no such file/);
  }, 30_000);

  it("with no board plugged in: skipped with a clear message, or a failure under WISP_HIL=required", async () => {
    const map = join(dir, "map.json");
    writeFileSync(map, JSON.stringify({ boards: [{ id: "bench-1", serial: "not-here-0001", fixtures: [{ type: "bme280", address: 118 }] }] }));
    const skipped = await wisp(["hil", "--map", map]);
    expect(skipped.code, skipped.out).toBe(0);
    expect(skipped.out).toMatch(/wisp hil: skipped: no board to test: none of the 1 board of .* is plugged in.*--port PATH/);
    const required = await wisp(["hil", "--map", map], { WISP_HIL: "required" });
    expect(required.code).toBe(1);
    expect(required.out).toMatch(/no board to test.*\(WISP_HIL=required\)/);
  }, 60_000);
});
