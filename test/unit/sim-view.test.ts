import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import net from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { readOutbox } from "../../host-sim/outbox.ts";
import { createSimulation, DEFAULT_NODE_CONFIG, splitLogin, type Simulation } from "../../host-sim/sim.ts";
import { fit, fitParts, visibleWidth } from "../../host-sim/layout.ts";
import { scaledClock } from "../../host-sim/runtime/timers.ts";
import { clockText, duration, outboxText, plural, renderScreen, sparkline, startPlainView } from "../../host-sim/view.ts";
import { build, PROJECT_ROOT } from "../../tools/build.ts";
import { commandExample, prefixBase, setupNotes, watchCommand } from "../../tools/sim.ts";
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
    // noise of a tenth of a degree is not drawn as full swings when the span is at least half a degree
    expect(sparkline([17.88, 17.99, 17.9, 17.95], 16, 0.5)).toBe("▄▅▄▅");
    expect(sparkline([17, 18], 16, 0.5)).toBe("▁█");
    expect([plural(1, "message"), plural(2, "message"), plural(1200, "node")]).toEqual(["1 message", "2 messages", "1,200 nodes"]);
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
    const screen = strip(renderScreen(sim, { watch: "mosquitto_sub -h x", rows: 3, size: { columns: 120, rows: 40 } }));
    const lines = screen.split("\n");
    expect(lines[0]).toContain("12 nodes");
    const row = lines.find((l) => l.startsWith(sim.nodes[0]!.serial))!;
    expect(row).toMatch(/on\s+connected\s+connected\s+10s/);
    expect(row).toMatch(/[▁▂▃▄▅▆▇█]{3,} \d+–\d+/); // the counter's history, and its min–max
    expect(screen).toMatch(/… and 9 more · power: 12 on · wifi: 12 connected · mqtt: 12 connected/);
    expect(screen).toMatch(/recent MQTT traffic\n\d\d:\d\d:\d\d t\/[0-9a-f-]+\/count \{"n":/);
  });

  it("take the watch command, a command example and the setup notes with the port actually used", () => {
    expect(commandExample("mqtt://127.0.0.1:1884", "wisp/240ac4c1-0eda")).toBe("mosquitto_pub -h 127.0.0.1 -p 1884 -q 1 -t 'wisp/240ac4c1-0eda/cmd/ping' -m ''");
    const config = JSON.parse(readFileSync(join(PROJECT_ROOT, "flash.config.json"), "utf8"));
    const notes = setupNotes({ configFile: join(process.cwd(), "flash.config.json"), config, sim: { brokerUrl: "mqtt://127.0.0.1:1884", portTaken: 1883, ap: { ssid: "wisp-sim" } as never }, broker: "embedded" });
    expect(notes.map((n) => n.text)).toEqual([
      "port 1883 is taken (by another broker: a Mosquitto that `apt-get install mosquitto` started, or another wisp sim), so the embedded broker is on 1884: use -p 1884 with mosquitto_sub and mosquitto_pub (or stop the other one, or pick one with --port)",
      "flash.config.json's broker mqtt://192.168.1.10:1883 is for boards: the simulated nodes use the embedded broker mqtt://127.0.0.1:1884 (--broker mqtt://192.168.1.10:1883 uses that one)",
      'the nodes join the simulated access point "wisp-sim", not flash.config.json\'s "wisp-lab"',
    ]);
    expect(notes.map((n) => n.short)).toEqual(["port 1883 is taken: this broker is on 1884; use -p 1884", "the nodes use this broker, not the config's mqtt://192.168.1.10:1883 (--broker URL)", undefined]);
    // a broker the user gave replaces the config's on purpose: nothing to say about it
    expect(setupNotes({ configFile: "flash.config.json", config, sim: { brokerUrl: "mqtt://10.0.0.5:1883", portTaken: undefined, ap: { ssid: "wisp-sim" } as never }, broker: "given" })).toHaveLength(1);
    // the operator's login of a broker folder, given to --broker: its ACL drops every reading
    const operator = setupNotes({ configFile: "flash.config.json", config, sim: { brokerUrl: "mqtt://127.0.0.1:1883", portTaken: undefined, ap: { ssid: "wisp-sim" } as never }, broker: "given", username: "wisp-operator" });
    expect(operator[0]!.text).toMatch(/^--broker logs the nodes in as wisp-operator, .* not publish readings, .* Run with --broker-config DIR/);
    // --topology edge-cloud without a folder: no folder to name
    const edge = setupNotes({ configFile: join(process.cwd(), "flash.config.json"), config, sim: { brokerUrl: "mqtt://127.0.0.1:40001", portTaken: undefined, ap: { ssid: "wisp-sim" } as never }, broker: "edge" });
    expect(edge[0]!.text).toContain("the simulated nodes use the simulation's edge Mosquitto mqtt://127.0.0.1:40001");
    // with Mosquitto from a folder or an edge broker, --broker is not the way (each node needs its own login)
    expect(edge[0]!.text).not.toContain("--broker");
    const folder = setupNotes({ configFile: "flash.config.json", config, sim: { brokerUrl: "mqtt://127.0.0.1:1885", portTaken: undefined, ap: { ssid: "wisp-sim" } as never }, broker: "folder" });
    expect(folder[0]!.text).toMatch(/the folder's Mosquitto mqtt:\/\/127\.0\.0\.1:1885$/);
  });

  it("a taken port moves the embedded broker to the next one, and the simulation says which was taken", async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const taken = (blocker.address() as net.AddressInfo).port;
    try {
      const sim = await createSimulation({ nodes: 1, clock: "fake", firmware: tinyFirmware(), config: TINY_CONFIG, port: taken, portFallback: true, powerOn: false });
      sims.push(sim);
      expect(sim.portTaken).toBe(taken);
      expect(new URL(sim.brokerUrl).port).not.toBe(String(taken));
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });
  it("show every sensor of a node on its own line, a sparkline per quantity, and a failing sensor's error", async () => {
    const sim = await createSimulation({ nodes: 1, clock: "fake", firmware: tinyFirmware(SENSORS), config: { ...TINY_CONFIG, sensors: [{ name: "climate", type: "bme280" }, { name: "soil", type: "ds18b20" }, { name: "light", type: "bh1750" }] } });
    sims.push(sim);
    await sim.advance(12_000);
    const lines = strip(renderScreen(sim, { watch: "w", rows: 10, size: { columns: 140, rows: 40 } })).split("\n");
    const at = lines.findIndex((l) => l.startsWith(sim.nodes[0]!.serial));
    // each quantity: its value, a sparkline of its recent values and their min–max
    expect(lines[at]).toMatch(/climate +21\.50 °C +[▁▂▃▄▅▆▇█]{3,} 21\.50–21\.50 +45\.0 %RH +[▁▂▃▄▅▆▇█]{3,} 45\.0–45\.0/);
    expect(lines[at + 1]).toMatch(/^ +soil +DS18B20 28aa: CRC mismatch$/);
    expect(lines[at + 2]).toMatch(/^ +light +\d+\.\d lx +[▁▂▃▄▅▆▇█]{3,} \d+\.\d–\d+\.\d$/);
    // too many for the rows: each node's first sensor with readings, and how many more
    const compact = strip(renderScreen(sim, { watch: "w", rows: 2, size: { columns: 140, rows: 40 } })).split("\n");
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

describe("layout", () => {
  it("keeps the most important rows, drops the rest lowest first, and keeps display order", () => {
    const rows = (names: string, base: number) => names.split("").map((n, i) => ({ text: n, priority: base - i }));
    const sections = [
      { rows: [{ text: "header", priority: 100 }] },
      { gap: true, title: "nodes", rows: rows("abcdef", 70), overflow: (n: number) => `+${n}` },
      { gap: true, title: "traffic", rows: rows("xyz", 30) },
    ];
    // 7 lines (size.rows - 1): header, gap, title, 3 nodes and the overflow line
    expect(fit(sections, { columns: 80, rows: 8 })).toEqual(["header", "", "nodes", "a", "b", "c", "+3"]);
    // room for everything: no overflow line
    expect(fit(sections, { columns: 80, rows: 20 })).toEqual(["header", "", "nodes", "a", "b", "c", "d", "e", "f", "", "traffic", "x", "y", "z"]);
    // a section with no row shown takes no title and no gap
    expect(fit(sections, { columns: 80, rows: 2 })).toEqual(["header"]);
  });

  it("cuts lines to the width, colours and all, and joins only the parts that fit whole", () => {
    expect(fit([{ rows: [{ text: "\x1b[32m" + "x".repeat(100) + "\x1b[39m", priority: 1 }] }], { columns: 40, rows: 5 }).map(visibleWidth)).toEqual([39]);
    const parts = [
      { text: "21.47 °C", priority: 9 },
      { text: "▁▂▃ 21.40–21.52", priority: 7 },
      { text: "48.3 %RH", priority: 6 },
    ];
    expect(fitParts(parts, 40)).toBe("21.47 °C  ▁▂▃ 21.40–21.52  48.3 %RH");
    expect(fitParts(parts, 30)).toBe("21.47 °C  ▁▂▃ 21.40–21.52");
    expect(fitParts(parts, 20)).toBe("21.47 °C  48.3 %RH");
    // a sensor's error is cut to the room left rather than dropped
    const failing = [{ text: "BME280 not found at 0x76: no answer on the bus", priority: 11, shrink: true }, ...parts];
    expect(fitParts(failing, 30)).toBe("BME280 not found at 0x76: no …");
  });
});

describe("--speed: node time N times wall time", () => {
  it("timers fire after 1/N of their time and the node's clock runs N times faster", () => {
    vi.useFakeTimers({ now: 1_000_000 });
    try {
      const clock = scaledClock(10, Date.now());
      const fired: number[] = [];
      clock.setTimeout(() => fired.push(clock.Date.now()), 10_000);
      const every = clock.setInterval(() => fired.push(-1), 60_000);
      vi.advanceTimersByTime(999);
      expect(fired).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(fired).toEqual([1_010_000]);
      vi.advanceTimersByTime(5_000);
      expect(fired).toEqual([1_010_000, -1]);
      expect(clock.Date.now()).toBe(1_060_000);
      clock.clearInterval(every);
    } finally {
      vi.useRealTimers();
    }
  });

  // New-user finding: at --speed, bridge-down (at 120 s) came at 00:02:02-06 and power on at 00:00:07:
  // node time started before the broker, Mosquitto and the watcher were set up, the scenario with it
  it("node time and the scenario's faults start when the nodes power on, not with the setup before", async () => {
    const scenario = { name: "one fault", environment: [{ at: 0, temperature: 20, humidity: 50, pressure: 1000 }], faults: [{ at: 2, fault: "wifi-drop", for: 1 }] };
    const sim = await createSimulation({ clock: "real", speed: 10, scenario: scenario as any, powerOn: false, firmware: tinyFirmware(), config: TINY_CONFIG });
    sims.push(sim);
    const faults: number[] = [];
    sim.on("fault", (f: { at: number; phase: string }) => f.phase === "start" && faults.push(f.at));
    await new Promise((r) => setTimeout(r, 400)); // the setup: 4 s of node time at speed 10
    expect(faults).toEqual([]);
    await sim.powerOn();
    expect(sim.now()).toBeLessThan(1000);
    await vi.waitFor(() => expect(faults).toHaveLength(1), { timeout: 10_000 });
    expect(faults[0]).toBeGreaterThanOrEqual(2000);
  });

  it("a simulation refuses a speed without a real clock, and serial consoles with one", async () => {
    await expect(createSimulation({ clock: "fake", speed: 10, firmware: tinyFirmware(), config: TINY_CONFIG })).rejects.toThrow(/speed needs clock: "real"/);
    await expect(createSimulation({ clock: "real", speed: 10, serial: true, firmware: tinyFirmware(), config: TINY_CONFIG })).rejects.toThrow(/serial consoles need speed 1/);
  });
});

describe("wisp sim (piped)", () => {
  it("--help explains the options; a bad option is a usage error", async () => {
    const help = await wisp(["--help"]);
    expect(help.code).toBe(0);
    expect(help.out).toContain("--nodes N");
    const bad = await wisp(["--nodes", "zero"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toBe('wisp sim: --nodes must be a whole number from 1 to 1,000 nodes, got "zero"\n(`npx wisp sim --help` lists the options)\n');
    expect((await wisp(["--nodes", "0"])).err).toContain('--nodes must be a whole number from 1 to 1,000 nodes, got "0"');
  });

  // New-user findings: each of these said something beside the point
  it("option mistakes name the option and the fix: a negative number, --port with --broker, an unknown --topology", async () => {
    const negative = await wisp(["--duration", "-1"]);
    expect(negative.code).toBe(2);
    expect(negative.err).toContain('--duration must be a number above 0 and at most 315,360,000 seconds, got "-1"');
    const port = await wisp(["--broker", "mqtt://127.0.0.1:1883", "--port", "18832"]);
    expect(port.code).toBe(2);
    expect(port.err).toContain("--port is the port of the broker wisp sim starts; with --broker the port is the one in its URL");
    const star = await wisp(["--topology", "star"]);
    expect(star.code).toBe(2);
    expect(star.err).toContain('--topology must be single (one broker, the default) or edge-cloud (two Mosquittos bridged), got "star"');
  });

  it("a config mistake is reported as one, not as a failed build; a port given and busy says what to do", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wisp-sim-cli-"));
    try {
      const bad = join(dir, "bad.json");
      const config = JSON.parse(readFileSync(join(PROJECT_ROOT, "flash.config.json"), "utf8"));
      delete config.prefix;
      writeFileSync(bad, JSON.stringify(config));
      const r = await wisp(["--config", bad, "--duration", "1"]);
      expect(r.code).toBe(1);
      expect(r.err).toBe(`wisp sim: ${bad} is not valid:\n  (top level): missing field "prefix"\n`);
      expect(r.out).toBe("");

      const busy = net.createServer();
      await new Promise<void>((done) => busy.listen(0, "127.0.0.1", () => done()));
      const taken = (busy.address() as net.AddressInfo).port;
      try {
        const t = await wisp(["--port", String(taken), "--duration", "1", "--no-build"]);
        expect(t.code).toBe(1);
        expect(t.err).toContain(`wisp sim: port ${taken} is in use, so the embedded broker cannot listen there`);
        expect(t.err).toContain("another wisp sim");
        expect(t.err).toContain("leave --port out to take the next free one");
      } finally {
        await new Promise((done) => busy.close(done));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it("runs nodes against the embedded broker for --duration, printing the watch command and events, then exits 0", async () => {
    const r = await wisp(["--duration", "3", "--port", "0", "--nodes", "2", "--no-build"]);
    expect(r.code).toBe(0);
    const port = /broker mqtt:\/\/127\.0\.0\.1:(\d+)/.exec(r.out)![1];
    expect(r.out).toContain(`watch: mosquitto_sub -h 127.0.0.1 -p ${port} -v -t 'wisp/#'`);
    expect(r.out).toMatch(new RegExp(`send a command: mosquitto_pub -h 127\\.0\\.0\\.1 -p ${port} -q 1 -t 'wisp/[0-9a-f]{8}-[0-9a-f]{4}/cmd/ping' -m ''`));
    // the config's broker is not used, and it says so
    expect(r.out).toContain(`note: flash.config.json's broker mqtt://192.168.1.10:1883 is for boards: the simulated nodes use the embedded broker mqtt://127.0.0.1:${port}`);
    expect(r.out).toMatch(/mqtt wisp\/[0-9a-f-]+\/status online \(retained\)/);
    expect(r.out).toContain("wisp sim: stopped");
  }, 30_000);

  it("--speed 20 shows the fault scenario's first fault within seconds, as it happens; not with --serial", async () => {
    // 70 s of node time: at speed 1 the command would outlast the test's 60 s
    const r = await wisp(["--speed", "20", "--scenario", "scenarios/faults.json", "--duration", "70", "--port", "0", "--no-build"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("node time ×20");
    expect(r.out).toMatch(/^00:01:0\d fault wifi-drop start$/m);
    const both = await wisp(["--speed", "5", "--serial"]);
    expect(both.code).toBe(2);
    expect(both.err).toMatch(/^wisp sim: --serial needs --speed 1: a console's serial line runs on the node's clock/);
  }, 60_000);
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
