import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { readOutbox } from "../../host-sim/outbox.ts";
import { createSimulation, DEFAULT_NODE_CONFIG, splitLogin, type Simulation } from "../../host-sim/sim.ts";
import { clockText, duration, outboxText, renderScreen, sparkline, startPlainView } from "../../host-sim/view.ts";
import { build, PROJECT_ROOT } from "../../tools/build.ts";
import { prefixBase, watchCommand } from "../../tools/sim.ts";
import { TINY_CONFIG, tinyFirmware } from "./sim-tiny-firmware.ts";

let sims: Simulation[] = [];

/** Tiny firmware body publishing what three sensors would, one of them failing. */
const SENSORS = `
join();
var k = 0;
setInterval(function () {
  if (!client || !client.connected) return;
  k++;
  client.publish(base + "/climate", JSON.stringify({ temperature: 21.5, humidity: 45 }), { qos: 1 });
  client.publish(base + "/light", JSON.stringify({ illuminance: 100 + k }), { qos: 1 });
  client.publish(base + "/status/soil", "DS18B20 28aa: CRC mismatch", { qos: 1, retain: true });
}, 1000);
`;
afterEach(async () => {
  for (const s of sims) await s.stop();
  sims = [];
});

const strip = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "");

/** The firmware built for the project's config with `changes` (a duty cycle, say). */
async function firmwareFor(changes: Record<string, unknown>): Promise<string> {
  const config = { board: "esp32-devkitc", wifi: { ssid: "x" }, mqtt: { url: "mqtt://127.0.0.1:1883" }, prefix: "wisp/{id}", interval: 10, sensors: [{ name: "climate", type: "bme280" }], ...changes };
  const result = await build({ config: config as never, write: false, log: () => {} });
  return result.reports.find((r) => r.target)!.bundle!.code;
}

describe("view pieces", () => {
  it("draw sparklines scaled to their range, durations and clock times", () => {
    expect(sparkline([1, 2, 3, 4, 5, 6, 7, 8])).toBe("▁▂▃▄▅▆▇█");
    expect(sparkline([5, 5, 5])).toBe("▄▄▄");
    expect(sparkline(Array.from({ length: 40 }, (_, i) => i), 16)).toHaveLength(16);
    expect(sparkline([])).toBe("");
    expect([duration(42_000), duration(185_000), duration(3_720_000)]).toEqual(["42s", "3m05s", "1h02m"]);
    expect(clockText(3_723_000)).toBe("01:02:03");
  });

  it("print the mosquitto_sub command for the nodes' topics", () => {
    expect(prefixBase("wisp/{id}")).toBe("wisp");
    expect(prefixBase("site/a/{id}/x")).toBe("site/a");
    expect(watchCommand("mqtt://127.0.0.1:1884", "wisp/{id}")).toBe("mosquitto_sub -h 127.0.0.1 -p 1884 -v -t 'wisp/#'");
    expect(watchCommand("mqtts://127.0.0.1:8884", "wisp/{id}", { username: "op", password: '"$(cat pw)"', cafile: "b/ca.crt" })).toBe(
      `mosquitto_sub -h 127.0.0.1 -p 8884 --cafile b/ca.crt -u op -P "$(cat pw)" -v -t 'wisp/#'`,
    );
  });

  it("take a login out of a broker URL (percent-decoded) for the nodes' wisp.json", () => {
    expect(splitLogin("mqtt://127.0.0.1:1883")).toEqual({ url: "mqtt://127.0.0.1:1883" });
    expect(splitLogin("mqtt://node%40lab:p%3Ass@broker.lan:1884")).toEqual({ url: "mqtt://broker.lan:1884", login: { username: "node@lab", password: "p:ss" } });
  });

  it("render each node's state and readings, summarise a large fleet, and show the traffic", async () => {
    const sim = await createSimulation({ nodes: 12, clock: "fake", firmware: tinyFirmware(), config: TINY_CONFIG });
    sims.push(sim);
    await sim.advance(10_000);
    const screen = strip(renderScreen(sim, { watch: "mosquitto_sub -h x", rows: 3 }));
    const lines = screen.split("\n");
    expect(lines[0]).toContain("12 nodes");
    const row = lines.find((l) => l.startsWith(sim.nodes[0]!.serial))!;
    expect(row).toMatch(/on\s+connected\s+connected\s+10s/);
    expect(row).toMatch(/[▁▂▃▄▅▆▇█]{3,}/); // the counter's history
    expect(screen).toContain("… and 9 more");
    expect(screen).toContain("mqtt: 12 connected");
    expect(screen).toMatch(/recent MQTT traffic\n\d\d:\d\d:\d\d t\/[0-9a-f-]+\/count \{"n":/);
  });

  it("show every sensor of a node on its own line, a sparkline per quantity, and a failing sensor's error", async () => {
    const sim = await createSimulation({ nodes: 1, clock: "fake", firmware: tinyFirmware(SENSORS), config: { ...TINY_CONFIG, sensors: [{ name: "climate", type: "bme280" }, { name: "soil", type: "ds18b20" }, { name: "light", type: "bh1750" }] } });
    sims.push(sim);
    await sim.advance(12_000);
    const lines = strip(renderScreen(sim, { watch: "w", rows: 10 })).split("\n");
    const at = lines.findIndex((l) => l.startsWith(sim.nodes[0]!.serial));
    expect(lines[at]).toMatch(/climate +21\.50 °C [▁▂▃▄▅▆▇█]{3,} +45\.0 %RH [▁▂▃▄▅▆▇█]{3,}/);
    expect(lines[at + 1]).toMatch(/^ +soil +DS18B20 28aa: CRC mismatch$/);
    expect(lines[at + 2]).toMatch(/^ +light +\d+\.\d lx [▁▂▃▄▅▆▇█]{3,}$/);
    // too many for the rows: each node's first sensor with readings, and how many more
    const compact = strip(renderScreen(sim, { watch: "w", rows: 2 })).split("\n");
    expect(compact.find((l) => l.startsWith(sim.nodes[0]!.serial))).toMatch(/climate .* \+2 sensors/);
  });

  it("show each node's outbox (readings waiting, their bytes, the oldest one's age, drops) read from its flash, and a sleeping node's awake time per cycle", async () => {
    const config = { ...DEFAULT_NODE_CONFIG, outbox: { maxBytes: 262144 } };
    const sim = await createSimulation({ nodes: 1, clock: "fake", config: config as never });
    sims.push(sim);
    await sim.advance(20_000);
    const node = sim.nodes[0]!;
    const row = () => strip(renderScreen(sim, { watch: "w", rows: 10 })).split("\n").find((l) => /outbox/.test(l)) ?? "";
    expect(row()).toMatch(/^ +outbox empty · 0\.\d KB$/);
    sim.cutBroker(300_000);
    await sim.advance(300_000);
    expect(readOutbox(node.flashStorage)).toMatchObject({ readings: 30, segments: 1, dropped: 0 });
    expect(row()).toMatch(/^ +outbox 30 readings · [23]\.\d KB · oldest 4m5\ds$/);
    await sim.advance(60_000);
    expect(row()).toMatch(/^ +outbox empty · /);
    expect(outboxText(node, sim.clock.Date.now())).not.toMatch(/awake/);

    const sleepy = await createSimulation({ nodes: 1, clock: "fake", firmware: await firmwareFor({ sleep: { seconds: 60 } }), config: { ...config, sleep: { seconds: 60, awake: 20 } } as never });
    sims.push(sleepy);
    await sleepy.advance(200_000);
    expect(strip(outboxText(sleepy.nodes[0]!, sleepy.clock.Date.now()))).toMatch(/^outbox empty · \d\.\d KB · awake 1\.\d s\/cycle \(4 cycles\)$/);
  });

  it("print one plain line per event when piped", async () => {
    const sim = await createSimulation({ nodes: 1, clock: "fake", firmware: tinyFirmware(), config: TINY_CONFIG, powerOn: false });
    sims.push(sim);
    const lines: string[] = [];
    const view = startPlainView(sim, (l) => lines.push(l));
    await sim.powerOn();
    await sim.advance(3_000);
    view.stop();
    const serial = sim.nodes[0]!.serial;
    expect(lines).toContain(`00:00:00 node ${serial} power=on wifi=connecting mqtt=offline`);
    expect(lines).toContain(`00:00:00 log ${serial} -- power on --`);
    expect(lines.some((l) => l.includes(`mqtt t/${serial}/status online (retained)`))).toBe(true);
    expect(lines.some((l) => /^00:00:0\d mqtt t\/.*\/count \{"n":2,/.test(l))).toBe(true);
  });
});

function wisp(args: string[], onLine?: (line: string, proc: ReturnType<typeof spawn>) => void): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [join(PROJECT_ROOT, "tools", "wisp.js"), "sim", ...args], { cwd: PROJECT_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    proc.stdout.on("data", (d: Buffer) => {
      const text = d.toString();
      out += text;
      for (const line of text.split("\n")) if (line) onLine?.(line, proc);
    });
    proc.stderr.on("data", (d: Buffer) => (err += d.toString()));
    proc.on("exit", (code) => resolve({ code, out, err }));
  });
}

describe("wisp sim (piped)", () => {
  it("--help explains the options; a bad option is a usage error", async () => {
    const help = await wisp(["--help"]);
    expect(help.code).toBe(0);
    expect(help.out).toContain("--nodes N");
    const bad = await wisp(["--nodes", "zero"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("--nodes must be a whole number");
  });

  it("runs nodes against the embedded broker for --duration, printing the watch command and events, then exits 0", async () => {
    const r = await wisp(["--duration", "3", "--port", "0", "--nodes", "2", "--no-build"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/watch: mosquitto_sub -h 127\.0\.0\.1 -p \d+ -v -t 'wisp\/#'/);
    expect(r.out).toMatch(/mqtt wisp\/[0-9a-f-]+\/status online \(retained\)/);
    expect(r.out).toContain("wisp sim: stopped");
  }, 30_000);

  it("--config builds that config's firmware in memory and simulates its sensors", async () => {
    const r = await wisp(["--config", "examples/garden.json", "--duration", "4", "--port", "0"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/built the firmware for examples\/garden\.json in memory: [\d,]+ bytes \(types: bme280, sht3x, sht4x, scd4x, bh1750, ds18b20, battery; Home Assistant discovery\)/);
    expect(r.out).toMatch(/mqtt homeassistant\/sensor\/wisp_[0-9a-f-]+\/pond_temperature\/config \{"name":"pond temperature"/);
  }, 30_000);

  it("stops cleanly on Ctrl-C (SIGINT): nodes off, broker closed, exit 0", async () => {
    let sent = false;
    const r = await wisp(["--port", "0", "--no-build"], (line, proc) => {
      if (!sent && line.includes("status online")) {
        sent = true;
        proc.kill("SIGINT");
      }
    });
    expect(sent).toBe(true);
    expect(r.code).toBe(0);
    expect(r.out).toContain("power=off");
    expect(r.out).toContain("wisp sim: stopped");
  }, 30_000);
});
