// The README is the user's manual: a person following only it must succeed. What a test can hold
// it to: every command and option it names exists, every file it links is in the repository, the
// topics it shows have the node ids the firmware uses, and its Node snippet runs (and says so when
// no broker listens instead of waiting in silence).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startBroker } from "../../host-sim/broker.ts";
import { macFor, serialFromMac } from "../../host-sim/wifi.ts";
import { COMMANDS } from "../../tools/commands.js";
import { PROJECT_ROOT } from "../../tools/paths.ts";

const README = readFileSync(join(PROJECT_ROOT, "README.md"), "utf8");
const DOCS = ["README.md", "docs/espruino-compat.md", "docs/espruino-notes.md"];

const helpCache = new Map<string, string>();
function help(command: string): string {
  if (!helpCache.has(command)) {
    const r = spawnSync(process.execPath, [join(PROJECT_ROOT, "tools", "wisp.js"), command, "--help"], { cwd: PROJECT_ROOT, encoding: "utf8" });
    helpCache.set(command, r.stdout);
  }
  return helpCache.get(command)!;
}

describe("README truths", () => {
  it("names only commands that exist, with options they take", () => {
    const uses: { command: string; options: string[]; text: string }[] = [];
    for (const m of README.matchAll(/\bwisp ([a-z][a-z-]*)([^`\n#|)]*)/g)) uses.push({ command: m[1]!, options: m[2]!.match(/--[a-z][a-z-]*/g) ?? [], text: m[0] });
    for (const m of README.matchAll(/npm start -- ([^#\n]*)/g)) uses.push({ command: "sim", options: m[1]!.match(/--[a-z][a-z-]*/g) ?? [], text: m[0] });
    expect(uses.length).toBeGreaterThan(30);
    for (const use of uses) {
      expect(Object.keys(COMMANDS), use.text).toContain(use.command);
      for (const option of use.options) expect(help(use.command), `${use.text}: ${option}`).toContain(option);
    }
  });

  it("shows wisp commands as a user can paste them: npx wisp, never a bare wisp (it is not on PATH)", () => {
    const bare = [...README.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => m[1]!.split("\n")).filter((l) => /^\s*wisp /.test(l));
    expect(bare).toEqual([]);
  });

  it("links only files that are in the repository, and nothing outside it", () => {
    for (const doc of DOCS) {
      const text = readFileSync(join(PROJECT_ROOT, doc), "utf8");
      expect(text, doc).not.toMatch(/\.\.\/shared|\/work\//);
      for (const m of text.matchAll(/\]\(([^)#]+)(#[^)]*)?\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target)) continue;
        expect(existsSync(join(PROJECT_ROOT, dirname(doc), target)), `${doc} links ${target}`).toBe(true);
      }
    }
  });

  it("shows node ids in the form getSerial() has on an ESP32 and in the simulator", () => {
    expect(serialFromMac(macFor(0, 0))).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}$/);
    const ids = [...README.matchAll(/wisp\/([0-9a-f][0-9a-f-]{5,})\//g)].map((m) => m[1]);
    expect(ids.length).toBeGreaterThanOrEqual(3);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}$/);
    expect(README).toContain(serialFromMac(macFor(0, 0))); // the first simulated node, as npm start shows it
  });
});

describe("the README's Node snippet", () => {
  const snippet = /### From Node[^]*?```ts\n([^]*?)```/.exec(README)![1]!;
  const dir = mkdtempSync(join(tmpdir(), "wisp-readme-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** The snippet as a user saves it in the project folder, with the broker's port `port`. */
  function run(port: number): Promise<{ code: number | null; out: string; err: string }> {
    const file = join(dir, `snippet-${port}.ts`);
    writeFileSync(file, snippet.replace('"./host-sim/runtime.ts"', JSON.stringify(join(PROJECT_ROOT, "host-sim", "runtime.ts"))).replace("127.0.0.1:1883", `127.0.0.1:${port}`));
    return new Promise((resolve) => {
      const child = spawn(process.execPath, ["--import", "tsx", file], { cwd: PROJECT_ROOT });
      let out = "",
        err = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (err += d.toString()));
      child.on("exit", (code) => resolve({ code, out, err }));
    });
  }

  it("publishes through a broker and exits", async () => {
    const broker = await startBroker({ port: 0 });
    const seen: string[] = [];
    broker.aedes.on("publish", (packet) => {
      if (!packet.topic.startsWith("$SYS")) seen.push(`${packet.topic} ${packet.payload.toString()}`);
    });
    try {
      const r = await run(broker.port);
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      expect(seen).toContain("hello world");
    } finally {
      await broker.close();
    }
  });

  it("says so and exits when no broker listens, instead of waiting in silence", async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise((r) => server.close(r));
    const r = await run(port);
    expect(r.err).toMatch(/^MQTT: \S/);
    expect(r.code).toBe(0);
  });
});
