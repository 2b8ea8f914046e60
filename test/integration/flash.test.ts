// `wisp flash` end to end against simulated ESP32s whose consoles are pseudo-terminals: the real
// uploader, serialport, socat, the simulated console and UART, the embedded broker.
import { execSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { SerialPort } from "serialport";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SimNode } from "../../host-sim/node.ts";
import { PROJECT_ROOT } from "../../tools/build.ts";
import { STORAGEFILE } from "../../host-sim/storage.ts";
import { initBrokerFolder, readPasswords } from "../../tools/broker/folder.ts";
import { loadFlashConfig } from "../../tools/config.ts";
import { flash, watchCommand } from "../../tools/flash.ts";
import { LinkError } from "../../tools/serial/link.ts";
import { PortError } from "../../tools/serial/port.ts";
import { findTool } from "../helpers/mosquitto.ts";
import { type SimBoards, simBoards } from "../helpers/sim-board.ts";

const firmware = () => readFileSync(join(PROJECT_ROOT, "dist", "firmware.js"));
const quiet = { say: () => undefined, progress: false };

let boards: SimBoards;
beforeAll(async () => {
  boards = await simBoards({ nodes: 8, flash: false });
});
afterAll(() => boards?.stop());

const board = (i: number): SimNode => boards.sim.nodes[i]!;
const port = (i: number) => board(i).consolePath!;

describe("wisp flash against a simulated board on a pseudo-terminal", () => {
  it("uploads the firmware and wisp.json, checks both by CRC-32 on the board, and the node boots and comes online", async () => {
    const node = board(0);
    const result = await flash({ port: port(0), configFile: boards.configFile, baud: 115200, ...quiet });
    expect(result.serial).toBe(node.serial);
    expect(result.prefix).toBe(`wisp/${node.serial}`);
    expect(Buffer.from(node.flashStorage.bytes(".bootcde")!)).toEqual(firmware());
    const settings = JSON.parse(node.flashStorage.read("wisp.json")!);
    expect(settings.mqtt.url).toBe(boards.sim.brokerUrl);
    expect(result.files.map((f) => f.name)).toEqual([".bootcde", "wisp.json"]);
    expect(result.retries).toEqual({ packets: 0, files: 0 });
    // one Ctrl-C to get a prompt; no packet header or payload byte looked like one
    expect(node.console.ctrlCs).toBe(1);
    expect(node.console.packets.nak).toBe(0);
    expect(node.line.lost).toBe(0);
    await until(() => node.status === "online", 10_000);
  });

  it("with --broker-dir the node gets its own login from the broker folder, added when new", async () => {
    const node = board(0);
    const dir = join(mkdtempSync(join(tmpdir(), "wisp-flash-broker-")), "broker");
    initBrokerFolder({ dir, config: loadFlashConfig(boards.configFile), nodes: [], plugin: null });
    try {
      await flash({ port: port(0), configFile: boards.configFile, baud: 115200, brokerDir: dir, ...quiet });
      const settings = JSON.parse(node.flashStorage.read("wisp.json")!);
      expect(settings.mqtt.username).toBe(node.serial);
      expect(settings.mqtt.password).toBe(readPasswords(dir)!.nodes[node.serial]);
      // the watch command printed at the end logs in as the folder's operator (the ACL lets no one
      // else read the node), the password read by the shell when it runs, never printed
      const operator = readPasswords(dir)!.operator.password;
      const watch = watchCommand("mqtt://127.0.0.1:1885", "wisp/" + node.serial, dir);
      expect(watch).toMatch(/^mosquitto_sub -h 127\.0\.0\.1 -p 1885 -u wisp-operator -P "\$\(node -p 'require\(".*broker\/passwords\.json"\)\.operator\.password'\)" -v -t 'wisp\/[0-9a-f-]+\/#'$/);
      expect(watch).not.toContain(operator);
      expect(execSync(/"\$\((.*)\)"/.exec(watch)![1]!, { encoding: "utf8" }).trim()).toBe(operator);
    } finally {
      rmSync(dirname(dir), { recursive: true, force: true });
    }
  });

  it("a byte corrupted on the line is caught by the CRC-32 check and the file is sent again", async () => {
    const node = board(1);
    // well inside the first DATA packets of .bootcde: a payload byte, so the board ACKs it as it is
    node.line.injectFault("corrupt", 3000);
    const result = await flash({ port: port(1), configFile: boards.configFile, baud: 115200, ...quiet });
    expect(result.retries.files).toBe(1);
    expect(Buffer.from(node.flashStorage.bytes(".bootcde")!)).toEqual(firmware());
  });

  it("an Espruino older than 2v25 (no packet protocol) is refused with what to flash", async () => {
    board(2).installInterpreter("2v24");
    board(2).reboot();
    const err = await flash({ port: port(2), configFile: boards.configFile, baud: 115200, ...quiet }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LinkError);
    expect((err as LinkError).code).toBe("old-interpreter");
    expect((err as Error).message).toMatch(/Espruino 2v24; Wisp needs 2v25 or newer.*Flash Espruino 2v29 for ESP32/);
    expect(board(2).flashStorage.list()).toEqual([]);
  });

  it("a board that is not the config's chip is refused", async () => {
    board(3).console.identity.board = "ESP32C3";
    board(3).reboot();
    const err = await flash({ port: port(3), configFile: boards.configFile, baud: 115200, ...quiet }).catch((e: unknown) => e);
    expect((err as LinkError).code).toBe("wrong-board");
    expect((err as Error).message).toMatch(/Espruino 2v29 for ESP32C3, not ESP32/);
  });

  it("a port another program holds is reported as busy", async () => {
    const holder = await new Promise<SerialPort>((resolve, reject) => {
      const p: SerialPort = new SerialPort({ path: port(4), baudRate: 115200 }, (e) => (e ? reject(e) : resolve(p)));
    });
    try {
      const err = await flash({ port: port(4), configFile: boards.configFile, baud: 115200, ...quiet }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PortError);
      expect((err as Error).message).toMatch(/is busy: another program has it open/);
    } finally {
      await new Promise((r) => holder.close(r));
    }
  });

  it("a board unplugged in the middle of the upload fails with a message that says so", async () => {
    const node = board(5);
    const upload = flash({ port: port(5), configFile: boards.configFile, baud: 115200, ...quiet }).catch((e: unknown) => e);
    await until(() => (node.flashStorage.bytes(".bootcde")?.some((b) => b !== 0xff) ?? false), 10_000);
    await boards.sim.unplugConsole(node);
    const err = await upload;
    expect(err).toBeInstanceOf(LinkError);
    expect((err as LinkError).code).toBe("closed");
    expect((err as Error).message).toMatch(/unplugged/);
    await boards.sim.plugConsole(node);
  });
});

describe("wisp flash and the outbox (readings waiting in flash)", () => {
  it("leaves the outbox on the board, says what it holds, and the node sends its readings once it is back", async () => {
    const node = board(6);
    const taken = Date.UTC(2025, 4, 31, 23, 0, 0);
    const record = `r0 1${taken.toString(36)} climate {"temperature":19.5,"humidity":40,"pressure":1001}\n`;
    node.flashStorage.write("wisp.o3\x01", Buffer.from(record, "latin1"), 0, 4064, STORAGEFILE);
    const said: string[] = [];
    await flash({ port: port(6), configFile: boards.configFile, baud: 115200, ...quiet, say: (l) => said.push(l) });
    expect(said).toContain("the outbox holds 4,096 bytes of readings in 1 segments: they stay, and go once the node is back");
    const kept = () => boards.sim.traffic.find((m) => m.topic === `${node.prefix}/climate` && JSON.parse(m.payload).ts === taken);
    await until(() => kept() !== undefined, 15_000);
    expect(JSON.parse(kept()!.payload).temperature).toBe(19.5);
  });

  it("refuses a board whose Storage would not leave the outbox its outbox.maxBytes, before anything changes", async () => {
    const node = board(7);
    node.flashStorage.fill(node.flashStorage.size - 150_000);
    const before = node.flashStorage.list();
    const err = await flash({ port: port(7), configFile: boards.configFile, baud: 115200, ...quiet }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LinkError);
    expect((err as LinkError).code).toBe("storage");
    expect((err as Error).message).toMatch(/would not leave the outbox its outbox\.maxBytes \(262,144\).*Lower outbox\.maxBytes in the config/);
    expect(node.flashStorage.list()).toEqual(before);
    node.flashStorage.release();
  });

  it('a config with "outbox": false while readings wait in the outbox: refused with their count and how to keep or drop them; --drop-outbox erases them and says so', async () => {
    const node = board(7);
    const taken = Date.UTC(2025, 4, 31, 23, 0, 0).toString(36);
    // readings 0-2 taken, 0 sent at QoS 0 ("d0"), 1 with the client and acknowledged ("x"), 2 waiting
    const records = `r0 0${taken} climate {"a":1}\nd0\nr1 1${taken} climate {"a":2}\npo1 1\nxo1\nr2 1${taken} climate {"a":3}\n`;
    node.flashStorage.write("wisp.o0\x01", Buffer.from(records, "latin1"), 0, 4064, STORAGEFILE);
    const configFile = join(mkdtempSync(join(tmpdir(), "wisp-flash-no-outbox-")), "flash.config.json");
    writeFileSync(configFile, JSON.stringify({ ...JSON.parse(readFileSync(boards.configFile, "utf8")), outbox: false }));
    const before = node.flashStorage.list();
    const err = await flash({ port: port(7), configFile, baud: 115200, ...quiet }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LinkError);
    expect((err as Error).message).toMatch(/the board's outbox holds 1 readings not yet sent \(4,096 bytes in 1 files wisp\.o<n>\), and this config has "outbox": false.*Nothing was changed.*to drop them, flash again with --drop-outbox/);
    expect(node.flashStorage.list()).toEqual(before);
    const said: string[] = [];
    await flash({ port: port(7), configFile, baud: 115200, ...quiet, say: (l) => said.push(l), dropOutbox: true });
    expect(said).toContain('the outbox\'s 1 readings not yet sent were dropped (--drop-outbox) and its 1 files erased: this config has "outbox": false');
    // (the node flashed here has an outbox of its own: what it writes is new, the old records are gone)
    const left = node.flashStorage.list().filter((n) => n.startsWith("wisp.o")).map((n) => Buffer.from(node.flashStorage.bytes(n)!).toString("latin1"));
    expect(left.filter((text) => text.includes('{"a":3}'))).toEqual([]);
  });
});

describe("the wisp flash command", () => {
  it("exits 0 once verified and prints a mosquitto_sub command that sees the node come online", async () => {
    const node = board(0);
    const out = await run(["flash", "--no-build", "--port", port(0), "--config", boards.configFile]);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(new RegExp(`node ${node.serial} booted`));
    const watch = /watch it: (mosquitto_sub .*)/.exec(out.stdout)?.[1];
    expect(watch).toBeDefined();
    if (!findTool("mosquitto_sub")) return; // CI installs it (.ci/run); the command was checked above
    const sub = spawn("sh", ["-c", `${watch} -W 15`]);
    let seen = "";
    sub.stdout.on("data", (d: Buffer) => (seen += d.toString()));
    await until(() => /\/status online/.test(seen), 15_000);
    sub.kill();
  });

  it("never flashes a board with a missing secret: it stops before it opens the port, and the board keeps what it had", async () => {
    const node = board(1);
    const before = node.flashStorage.bytes(".bootcde");
    const ctrlCs = node.console.ctrlCs;
    const config = JSON.parse(readFileSync(boards.configFile, "utf8"));
    const file = join(mkdtempSync(join(tmpdir(), "wisp-secret-")), "flash.config.json");
    writeFileSync(file, JSON.stringify({ ...config, wifi: { ssid: config.wifi.ssid, password: { env: "WISP_TEST_UNSET_PASSWORD" } } }));
    const out = await run(["flash", "--no-build", "--port", port(1), "--config", file]);
    expect(out.code).toBe(1);
    expect(out.stderr).toBe(
      `wisp flash: ${file} cannot be written to the board as wisp.json:\n  wifi.password: environment variable WISP_TEST_UNSET_PASSWORD is not set (export WISP_TEST_UNSET_PASSWORD=... first, or write the value in the file)\nnothing was uploaded\n`,
    );
    expect(node.console.ctrlCs).toBe(ctrlCs);
    expect(node.flashStorage.bytes(".bootcde")).toEqual(before);
  });

  it("exits 1 with the reason on a port that does not exist, 2 on a bad option", async () => {
    const missing = await run(["flash", "--no-build", "--port", "/dev/ttyUSB-nothing-here", "--config", boards.configFile]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/\/dev\/ttyUSB-nothing-here does not exist: is the board plugged in\?/);
    const bad = await run(["flash", "--baud", "fast"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--baud must be a whole number/);
  });
});

async function until(check: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, "tools", "wisp.js"), ...args], { cwd: PROJECT_ROOT });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
