// The live view of `wisp sim`, laid out for real terminal sizes: frames rendered from simulated
// nodes running dist/firmware.js on a fake clock, checked for what a terminal needs to redraw them
// in place (no line wider than the screen, no frame taller), and for what a user reads in them.
import { afterEach, describe, expect, it } from "vitest";
import { visibleWidth } from "../../host-sim/layout.ts";
import { loadScenario } from "../../host-sim/scenario.ts";
import { createSimulation, type FaultEvent, type NodeConfig, type Simulation } from "../../host-sim/sim.ts";
import { renderScreen } from "../../host-sim/view.ts";
import { build } from "../../tools/build.ts";
import { loadFlashConfig, renderDeviceConfig } from "../../tools/config.ts";
import { PROJECT_ROOT } from "../../tools/paths.ts";

const strip = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "");
const WATCH = "mosquitto_sub -h 127.0.0.1 -p 1884 -v -t 'wisp/#'";

let sim: Simulation | undefined;
afterEach(async () => {
  await sim?.stop();
  sim = undefined;
});

/** A simulation with the fault scenario, recording the faults as the live view does. */
async function start(nodes: number): Promise<{ sim: Simulation; faults: FaultEvent[] }> {
  const s = await createSimulation({ nodes, clock: "fake", scenario: loadScenario(`${PROJECT_ROOT}/scenarios/faults.json`), powerOn: false });
  sim = s;
  const faults: FaultEvent[] = [];
  s.on("fault", (f: FaultEvent) => faults.push(f));
  await s.powerOn();
  return { sim: s, faults };
}

/** The frame at a terminal size, as lines without colours; checks that it can be redrawn in place. */
function frame(s: Simulation, columns: number, rows: number, faults: FaultEvent[] = [], logs: string[] = []): string[] {
  const text = renderScreen(s, { watch: WATCH, notes: ["port 1883 is taken: this broker is on 1884; use -p 1884"], size: { columns, rows } }, logs, faults);
  const lines = text.split("\n");
  expect(lines.length, `${columns}x${rows}: lines`).toBeLessThanOrEqual(rows - 1);
  for (const l of lines) expect(visibleWidth(l), `${columns}x${rows}: ${strip(l)}`).toBeLessThanOrEqual(columns - 1);
  return lines.map(strip);
}

describe("the live view fits the terminal", () => {
  it("at 80x24 after 80 s (a full traffic list, a fault): the header stays, rows end at whole values", async () => {
    const { sim, faults } = await start(1);
    await sim.advance(80_000);
    const node = sim.nodes[0]!;
    node.consolePath = "/tmp/wisp-sim-AbC123/node-0"; // as wisp sim --serial sets it
    const logs = node.log.map((l) => `00:00:00 ${node.serial} ${l}`);
    const lines = frame(sim, 80, 24, faults, logs);
    expect(lines).toContain("consoles: node 0 /tmp/wisp-sim-AbC123/node-0");
    expect(lines[0]).toMatch(/^wisp sim · 1 node · scenario faults · 00:01:20/);
    expect(lines[1]).toMatch(/^broker mqtt:\/\/127\.0\.0\.1:\d+ · Wi-Fi wisp-sim (up|down) · \d+ messages$/);
    expect(lines[2]).toBe(`watch: ${WATCH}`);
    const row = lines.find((l) => l.startsWith(node.serial))!;
    // the reading is cut between values, never inside one: it ends with a unit or a min–max
    expect(row).toMatch(/(°C|%RH|hPa|\d\.\d\d–\d+\.\d\d)$/);
    expect(lines).toContain("recent MQTT traffic");
    expect(lines.some((l) => l.includes("fault wifi-drop started"))).toBe(true);
    expect(lines.some((l) => l.startsWith("next fault: sensor-unplug on node 0 at 00:02:00"))).toBe(true);
  });

  it("with 50 nodes at 160x45: the header is on screen, the nodes that do not fit are summed up, the newest traffic shows", async () => {
    const { sim, faults } = await start(50);
    await sim.advance(30_000);
    const lines = frame(sim, 160, 45, faults);
    expect(lines[0]).toMatch(/^wisp sim · 50 nodes · scenario faults · 00:00:30 · Ctrl-C stops$/);
    const shown = lines.filter((l) => /^[0-9a-f]{8}-[0-9a-f]{4} /.test(l)).length;
    expect(shown).toBeGreaterThan(10);
    expect(lines).toContain(`… and ${50 - shown} more · power: 50 on · wifi: 50 connected · mqtt: 50 connected`);
    const traffic = lines.indexOf("recent MQTT traffic");
    expect(traffic).toBeGreaterThan(0);
    expect(lines[traffic + 1]).toMatch(/^00:00:\d\d wisp\/[0-9a-f-]+\//);
  });

  it("any size from 80x24 up, and smaller ones too: every frame fits; a wider one shows every quantity", async () => {
    const { sim, faults } = await start(5);
    await sim.advance(40_000);
    for (const [columns, rows] of [
      [80, 24],
      [100, 30],
      [132, 43],
      [200, 60],
      [60, 15],
      [40, 8],
    ] as const) {
      frame(sim, columns, rows, faults);
    }
    const wide = frame(sim, 200, 60, faults).find((l) => l.startsWith(sim.nodes[0]!.serial))!;
    const spark = "[▁▂▃▄▅▆▇█]+";
    expect(wide).toMatch(new RegExp(`\\d+\\.\\d\\d °C {2}${spark} [\\d.]+–[\\d.]+ {2}\\d+\\.\\d %RH {2}${spark} [\\d.]+–[\\d.]+ {2}\\d+\\.\\d\\d hPa {2}${spark} [\\d.]+–[\\d.]+$`));
    expect(wide).toMatch(/ on +connected +connected +40s /);
  });
});

describe("what the view says", () => {
  it("the first reading comes at boot, not an interval later", async () => {
    const { sim } = await start(1);
    await sim.advance(5_000); // Wi-Fi and MQTT take about 2 s; the interval is 10 s
    expect(sim.nodes[0]!.readings.climate?.values.temperature).toBeCloseTo(17.5, 0);
  });

  it("a reading that stops coming during an outage is marked stale, with its age", async () => {
    const { sim } = await start(1);
    await sim.advance(58_000);
    const row = () => frame(sim, 120, 40).find((l) => l.startsWith(sim.nodes[0]!.serial))!;
    expect(row()).not.toContain("stale");
    await sim.advance(22_000); // the access point went down at 60 s for 20 s
    expect(row()).toMatch(/ offline +1m20s {2}stale 2\ds {2}\d+\.\d\d °C/);
  });

  it("the LED shows, labelled, only when something lights it", async () => {
    const { sim } = await start(1);
    await sim.advance(5_000);
    const node = sim.nodes[0]!;
    const row = () => frame(sim, 160, 40).find((l) => l.startsWith(node.serial))!;
    expect(row()).not.toMatch(/LED|[●○]/);
    node.runtime!.run("digitalWrite(LED1, 1)");
    expect(row()).toMatch(/LED ●$/);
  });

  it("the sparkline is labelled and shows its min–max; noise draws as a nearly flat line", async () => {
    const { sim } = await start(1);
    await sim.advance(55_000);
    const lines = frame(sim, 160, 40);
    expect(lines.find((l) => l.startsWith("node "))).toContain("latest reading · sparkline of the last readings, their min–max");
    const m = /([▁▂▃▄▅▆▇█]+) (\d+\.\d\d)–(\d+\.\d\d)/.exec(lines.find((l) => l.startsWith(sim.nodes[0]!.serial))!)!;
    expect(Number(m[3]) - Number(m[2])).toBeLessThan(0.5); // the first minute of faults.json is 17.5 °C with 0.03 of noise
    expect(m[1]).toMatch(/^[▂▃▄▅▆]+$/);
  });

  // New-user finding: with examples/garden.json, the fault {"fault":"sensor-unplug","sensor":"battery"}
  // showed "sensor unplugged" on the first row (air), which kept reading; the battery's row said nothing.
  it("an unplugged sensor is flagged on its own row, and named when its row is not shown", async () => {
    const file = `${PROJECT_ROOT}/examples/garden.json`;
    const built = await build({ config: file, write: false, log: () => {} });
    const firmware = built.reports.find((r) => r.target)!.bundle!.code;
    const config = renderDeviceConfig(loadFlashConfig(file), { wifi: { ssid: "x" }, mqttUrl: "mqtt://127.0.0.1:1883" }) as unknown as NodeConfig;
    sim = await createSimulation({ nodes: 1, clock: "fake", firmware, config });
    await sim.advance(120_000);
    const node = sim.nodes[0]!;
    node.unplug("battery");
    await sim.advance(20_000);
    const lines = frame(sim, 120, 40);
    const row = (name: string) => lines.find((l) => new RegExp(`(^${node.serial}.*|^ +)${name}  `).test(l))!;
    expect(row("air")).not.toContain("unplugged");
    expect(row("battery")).toMatch(/battery +sensor unplugged/);
    const table = lines.slice(0, lines.indexOf("recent MQTT traffic"));
    expect(table.filter((l) => l.includes("sensor unplugged"))).toHaveLength(1);
    // too little room for a row per sensor: the node's one row names the sensor
    const small = frame(sim, 80, 12).find((l) => l.startsWith(node.serial))!;
    expect(small).toMatch(/air +battery unplugged/);
  }, 30_000);

  // New-user finding: at 80 columns most sensors had no sparkline though there was room (soil, pond),
  // and at 140 the BME280's humidity and pressure had none: the first quantity took all the room.
  it("gives every sensor's quantities a sparkline where the row has room, at 80 and at 140 columns", async () => {
    const file = `${PROJECT_ROOT}/examples/garden.json`;
    const built = await build({ config: file, write: false, log: () => {} });
    const firmware = built.reports.find((r) => r.target)!.bundle!.code;
    const config = renderDeviceConfig(loadFlashConfig(file), { wifi: { ssid: "x" }, mqttUrl: "mqtt://127.0.0.1:1883" }) as unknown as NodeConfig;
    sim = await createSimulation({ nodes: 1, clock: "fake", firmware, config });
    await sim.advance(300_000);
    const node = sim.nodes[0]!;
    const SPARK = /[▁▂▃▄▅▆▇█]{4,}/g;
    const row = (lines: string[], name: string) => lines.find((l) => new RegExp(`(^${node.serial}.*|^ +)${name}  `).test(l))!;
    const narrow = frame(sim, 80, 24);
    for (const name of ["soil", "pond", "light", "battery"]) expect(row(narrow, name), name).toMatch(SPARK);
    // every value stays before any sparkline
    expect(row(narrow, "air")).toMatch(/°C .*%RH/);
    const wide = frame(sim, 140, 40);
    expect(row(wide, "air").match(SPARK)).toHaveLength(3);
    expect(row(wide, "co2").match(SPARK)).toHaveLength(3);
    // the default config's BME280 alone: its three values, then sparklines as the width allows
    await sim.stop();
    sim = await createSimulation({ nodes: 1, clock: "fake" });
    await sim.advance(300_000);
    const single = frame(sim, 80, 24).find((l) => l.startsWith(sim!.nodes[0]!.serial))!;
    expect(single).toMatch(/°C +[\d.]+ %RH +[\d.]+ hPa/);
    expect(frame(sim, 140, 40).find((l) => l.startsWith(sim!.nodes[0]!.serial))!.match(SPARK)).toHaveLength(3);
  }, 30_000);

  // New-user findings at 80 columns: the watch command with a login was cut (and in the preamble only,
  // which scrolls off at 24 rows), a sensor's error was cut to ~20 chars, and below 80x24 nothing said
  // the view was missing things.
  it("keeps the whole watch command, a sensor's whole error, and says when the terminal is too small", async () => {
    const file = `${PROJECT_ROOT}/examples/garden.json`;
    const built = await build({ config: file, write: false, log: () => {} });
    const firmware = built.reports.find((r) => r.target)!.bundle!.code;
    const config = renderDeviceConfig(loadFlashConfig(file), { wifi: { ssid: "x" }, mqttUrl: "mqtt://127.0.0.1:1883" }) as unknown as NodeConfig;
    sim = await createSimulation({ nodes: 1, clock: "fake", firmware, config });
    await sim.advance(60_000);
    sim.nodes[0]!.unplug("light");
    await sim.advance(30_000);
    const error = sim.nodes[0]!.sensorStatus.light!;
    expect(error.length).toBeGreaterThan(30);
    const watch = `mosquitto_sub -h 127.0.0.1 -p 41234 -u wisp-operator -P "$(node -p 'require("/tmp/wisp-x1y2z3/passwords.json").operator.password')" -v -t 'garden/#'`;
    const lines = strip(renderScreen(sim, { watch, size: { columns: 80, rows: 24 } })).split("\n");
    for (const l of lines) expect(l.length, l).toBeLessThanOrEqual(79);
    // the command as the shell reads it: lines joined at their trailing backslashes
    const at = lines.findIndex((l) => l.startsWith("watch: "));
    const parts: string[] = [];
    for (let i = at; ; i++) {
      const l = lines[i]!.replace(/^watch: /, "").trim();
      parts.push(l.replace(/ \\$/, ""));
      if (!l.endsWith(" \\")) break;
    }
    expect(parts.join(" ")).toBe(watch);
    // the error, over the rows under the sensor's name
    const row = lines.findIndex((l) => /^ +light  /.test(l));
    const column = /^ +light +/.exec(lines[row]!)![0].length;
    const text = [lines[row]!.slice(column), ...lines.slice(row + 1, row + 3).filter((l) => /^ {20,}\S/.test(l) && l.slice(0, column).trim() === "").map((l) => l.slice(column))].join(" ");
    expect(text).toContain(error);
    expect(lines.join("\n")).not.toContain("the view wants");
    // the note itself whole, down to a 50-column terminal (it was cut at 60)
    for (const [columns, rows] of [[70, 20], [60, 16], [50, 12]]) {
      const small = strip(renderScreen(sim, { watch, size: { columns, rows } })).split("\n");
      expect(small[1]).toBe(`${columns}x${rows}: the view wants 80x24; --plain shows all`);
    }
  }, 30_000);
});
