// The hardware-in-the-loop suite: one board (real, or simulated on a pseudo-terminal), flashed with
// the built node, checked over its console and through the broker. Run by `wisp hil`, which picks
// the board, the broker and the config, and writes JUnit XML; each test keeps its own serial log.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import mqtt from "mqtt";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, type TestContext } from "vitest";
import { loadFlashConfig } from "../../tools/config.ts";
import { SENSOR_TYPES } from "../../tools/drivers.ts";
import { flash, type FlashResult, nodeFiles } from "../../tools/flash.ts";
import { ConsoleLines } from "../../tools/serial/lines.ts";
import type { ConsoleLink } from "../../tools/serial/link.ts";
import { jsString } from "../../tools/serial/protocol.ts";
import { hilTarget } from "./target.ts";

const target = hilTarget();
const config = loadFlashConfig(target.configFile);
/** Slack on top of a sensor's interval before its reading counts as late, s. */
const SLACK_S = 10;

let link: ConsoleLink | undefined;
let node: FlashResult | undefined;
let watcher: mqtt.MqttClient;
let serialLog: string[] = [];
const received: { topic: string; payload: string; retain: boolean }[] = [];

beforeAll(async () => {
  watcher = await mqtt.connectAsync(target.brokerUrl, {
    clientId: `wisp-hil-${process.pid}`,
    username: target.brokerUsername,
    password: target.brokerPassword,
    reconnectPeriod: 1000,
  });
  watcher.on("message", (topic, payload, packet) => received.push({ topic, payload: payload.toString(), retain: packet.retain }));
  mkdirSync(target.logDir, { recursive: true });
});

afterAll(async () => {
  await link?.close();
  await watcher?.endAsync(true);
});

beforeEach(() => {
  serialLog = [];
});

afterEach((ctx) => {
  // the console as a terminal shows it: prompts overwritten, escape sequences applied, packets left out
  const lines: string[] = [];
  new ConsoleLines((l) => lines.push(l)).write(Buffer.from(serialLog.join("") + "\n", "latin1"));
  const text = lines.filter((l, i) => l !== "" || i < lines.length - 1).join("\n");
  writeFileSync(join(target.logDir, `${ctx.task.name.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "")}.log`), text + "\n");
  // goes into the JUnit report as this test's <system-out>
  if (text) console.log(text);
});

function ready(): { link: ConsoleLink; node: FlashResult } {
  if (!link || !node) throw new Error("the node was not flashed (see the first test)");
  return { link, node };
}

/** Set once the node has published `online`: the tests that need the broker fail at once without it. */
let online = false;

function connected(): { link: ConsoleLink; node: FlashResult } {
  const r = ready();
  if (!online) throw new Error("the node never came online (see the test of <prefix>/status and its serial log)");
  return r;
}

/** Where the messages received from now on start (for `message`'s `from`). */
const mark = () => received.length;

/** The first message on `topic` from `from` on (by default any, a retained one too), within `ms`. */
async function message(topic: string, ms: number, match: (payload: string, retain: boolean) => boolean = () => true, from = 0) {
  await watcher.subscribeAsync(topic, { qos: 1 });
  const end = Date.now() + ms;
  for (;;) {
    const m = received.slice(from).find((r) => r.topic === topic && match(r.payload, r.retain));
    if (m) return m;
    if (Date.now() > end) throw new Error(`no message on ${topic} within ${Math.round(ms / 1000)} s (received: ${received.filter((r) => r.topic === topic).map((r) => r.payload).join(", ") || "nothing"})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Publishes a command and returns the node's JSON reply. */
async function command(name: string, payload: string): Promise<Record<string, unknown>> {
  const { node } = connected();
  const since = mark();
  const reply = message(`${node.prefix}/reply/${name}`, 10_000, () => true, since);
  await watcher.publishAsync(`${node.prefix}/cmd/${name}`, payload, { qos: 1 });
  return JSON.parse((await reply).payload) as Record<string, unknown>;
}

/** A sensor's I2C address, or its type's default (tools/drivers.ts); undefined off I2C. */
function addressOf(sensor: { type: string; address?: number }): number | undefined {
  return sensor.address ?? (SENSOR_TYPES as Record<string, { addresses?: readonly number[] }>)[sensor.type]?.addresses?.[0];
}

/** A fixture of hil.map.json that is this configured sensor: same type, and same address on I2C. */
function isWired(sensor: { type: string; address?: number }): boolean {
  return target.fixtures?.some((f) => f.type === sensor.type && addressOf(f) === addressOf(sensor)) === true;
}

/** Skips the test when the sensor's fixture is not wired to this board, saying so in the report. */
async function needFixture(ctx: TestContext, sensor: { type: string; address?: number }): Promise<void> {
  const address = addressOf(sensor);
  let reason: string | undefined;
  if (target.fixtures === null) reason = `board ${target.boardId} is not in hil.map.json, so its fixtures are unknown`;
  else if (!isWired(sensor)) {
    reason = `fixture ${sensor.type}${address === undefined ? "" : ` at 0x${address.toString(16)}`} is not wired to board ${target.boardId} (hil.map.json)`;
  }
  if (reason) {
    await ctx.annotate(reason, "skip-reason");
    ctx.skip(reason);
  }
}

describe(`node on ${target.boardId}`, () => {
  it("flashes the node, verifies it by CRC-32 and it boots (boot line)", async () => {
    node = await flash({
      port: target.port,
      configFile: target.configFile,
      baud: target.baud,
      expectBoard: target.expectBoard,
      keepOpen: true,
      progress: false,
      say: (line) => serialLog.push(`[wisp flash] ${line}\n`),
      onText: (text) => serialLog.push(text),
    });
    link = node.link;
    expect(node.serial).toMatch(/\S/);
    expect(node.prefix).toBe(config.prefix.split("{id}").join(node.serial));
  }, 60_000);

  it("the files on the board match what was flashed, by CRC-32", async () => {
    const { link } = ready();
    const { crc32 } = await import("node:zlib");
    for (const f of nodeFiles(config)) {
      const onBoard = await link.eval(`E.CRC32(require("Storage").read(${jsString(f.name)}))`);
      expect(onBoard, f.name).toBe(crc32(f.data) >>> 0);
    }
  }, 20_000);

  it("publishes online, retained, on <prefix>/status", async () => {
    const { node } = ready();
    const status = await message(`${node.prefix}/status`, 20_000, (p) => p === "online");
    expect(status.payload).toBe("online");
    online = true;
  }, 30_000);

  for (const sensor of config.sensors) {
    it(`a reading from ${sensor.name} (${sensor.type}) within its interval of ${config.interval} s plus ${SLACK_S} s`, async (ctx) => {
      await needFixture(ctx, sensor);
      const { node } = connected();
      const reading = await message(`${node.prefix}/${sensor.name}`, (config.interval + SLACK_S) * 1000);
      const values = JSON.parse(reading.payload) as Record<string, unknown>;
      expect(Object.values(values).length).toBeGreaterThan(0);
      for (const v of Object.values(values)) expect(typeof v).toBe("number");
      // when it was taken: "ts" from the node's clock (SNTP), or its uptime where no time server answers
      if (values.ts !== undefined) expect(Math.abs((values.ts as number) - Date.now())).toBeLessThan(config.interval * 1000 + 60_000);
      else expect(values.uptime).toBeGreaterThan(0);
    }, (config.interval + SLACK_S + 5) * 1000);
  }

  it("command ping: pong and the uptime", async () => {
    const reply = await command("ping", "");
    expect(reply.pong).toBe(true);
    expect(typeof reply.uptime).toBe("number");
  }, 15_000);

  it("command interval: reads it, sets it, and the new one is kept", async () => {
    expect(await command("interval", "")).toEqual({ interval: config.interval });
    expect(await command("interval", String(config.interval + 1))).toEqual({ interval: config.interval + 1 });
    expect(await command("interval", "")).toEqual({ interval: config.interval + 1 });
    expect(await command("interval", String(config.interval))).toEqual({ interval: config.interval });
  }, 30_000);

  it("command sample: ok, then a fresh reading from each wired sensor", async (ctx) => {
    const { node } = ready();
    const since = mark();
    expect(await command("sample", "")).toEqual({ ok: true });
    const wired = config.sensors.filter(isWired);
    if (wired.length === 0) {
      await ctx.annotate("no sensor of the config is wired to this board", "note");
      return;
    }
    for (const s of wired) await message(`${node.prefix}/${s.name}`, 10_000, () => true, since);
  }, 30_000);

  it("an unknown command gets an error reply and the node carries on", async () => {
    const reply = await command("no-such-command", "x");
    expect(String(reply.error)).toMatch(/unknown command/);
    expect((await command("ping", "")).pong).toBe(true);
  }, 20_000);

  it("command restart: the node reboots and comes back online", async () => {
    const { link, node } = connected();
    const since = mark();
    const booted = link.waitForText(/wisp: node \S+, prefix \S+\r?\n/, 30_000);
    booted.catch(() => undefined); // awaited below; a failure before that must not go unhandled
    expect(await command("restart", "")).toEqual({ ok: true });
    await booted;
    await message(`${node.prefix}/status`, 30_000, (p) => p === "online", since);
  }, 60_000);
});
