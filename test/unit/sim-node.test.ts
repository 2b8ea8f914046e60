import { afterEach, describe, expect, it } from "vitest";
import { createSimulation, type Simulation, type SimulationOptions } from "../../host-sim/sim.ts";
import { TINY_CONFIG, tinyFirmware } from "./sim-tiny-firmware.ts";

let sims: Simulation[] = [];
afterEach(async () => {
  for (const s of sims) await s.stop();
  sims = [];
});

async function simulate(options: SimulationOptions = {}): Promise<Simulation> {
  const sim = await createSimulation({ nodes: 1, clock: "fake", firmware: tinyFirmware(), config: TINY_CONFIG, ...options });
  sims.push(sim);
  return sim;
}

const topics = (sim: Simulation, suffix: string) => sim.traffic.filter((t) => t.topic.endsWith(suffix));

describe("deterministic simulation on one fake clock", () => {
  it("runs nodes in node time: a publish every second, stamped with the node's clock (ms since power-on until set)", async () => {
    const sim = await simulate({ nodes: 2 });
    await sim.advance(60_000);
    for (const node of sim.nodes) {
      expect(node.wifi).toBe("connected");
      expect(node.mqtt).toBe("connected");
      expect(node.status).toBe("online");
      const counts = sim.traffic.filter((t) => t.node === node && t.topic.endsWith("/count"));
      // Wi-Fi takes ~1.5-2 s to join, then one message per second
      expect(counts.length).toBeGreaterThanOrEqual(57);
      expect(counts.length).toBeLessThanOrEqual(59);
      for (const c of counts) {
        const { t } = JSON.parse(c.payload) as { t: number };
        // zero network latency in node time; an ESP32's clock counts from 0 (1970) at power-on, in
        // RTC ticks (Espruino's time has a fraction of a millisecond: the simulated one a quarter)
        expect(t * 1000).toBeCloseTo(c.at + 0.25, 6);
      }
    }
    expect(sim.nodes[0]!.serial).not.toBe(sim.nodes[1]!.serial);
    expect(sim.nodes[0]!.serial).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}$/);
  });

  it("is repeatable: the same seed gives the same messages at the same node times", async () => {
    const run = async () => {
      const sim = await simulate({ nodes: 2, seed: 3 });
      await sim.advance(20_000);
      const out = sim.traffic.map((t) => `${t.at} ${t.topic} ${t.payload}`).sort();
      await sim.stop();
      return out;
    };
    const a = await run();
    expect(a.length).toBeGreaterThan(30);
    expect(await run()).toEqual(a);
  });

  it("runs an hour of node time in seconds", async () => {
    const sim = await simulate({ config: { ...TINY_CONFIG, interval: 10 } });
    const started = performance.now();
    await sim.advance(3_600_000);
    expect(performance.now() - started).toBeLessThan(15_000);
    expect(sim.now()).toBe(3_600_000);
    expect(topics(sim, "/count").length + 0).toBeGreaterThan(0);
    expect(sim.nodes[0]!.published).toBe(1 + 360); // "online", then a count every 10 s from boot
    expect(sim.nodes[0]!.uptime).toBe(3_600_000);
  });
});

describe("a simulated node's life cycle", () => {
  it("reboot(): the broker sends the will (no DISCONNECT), the node boots and comes back online", async () => {
    const sim = await simulate();
    await sim.advance(5_000);
    const node = sim.nodes[0]!;
    node.reboot();
    await sim.advance(100);
    expect(node.status).toBe("offline");
    expect(node.mqtt).not.toBe("connected");
    await sim.advance(5_000);
    expect(node.status).toBe("online");
    expect(node.boots).toBe(2);
    expect(node.log).toContain("-- power on --");
  });

  it("deepSleep(us): the chip stops (will fires), sleeps that long in node time, then boots from Storage", async () => {
    const body = `join(); setTimeout(function () { print("sleeping"); require("ESP32").deepSleep(10e6); print("never"); }, 5000);`;
    const sim = await simulate({ firmware: tinyFirmware(body) });
    const node = sim.nodes[0]!;
    await sim.advance(5_100);
    expect(node.power).toBe("sleeping");
    expect(node.status).toBe("offline");
    expect(node.wifi).toBe("off");
    await sim.advance(9_800);
    expect(node.boots).toBe(1);
    await sim.advance(200);
    expect(node.power).toBe("on");
    expect(node.boots).toBe(2);
    expect(node.log.filter((l) => l === "sleeping")).toHaveLength(1);
    expect(node.log).not.toContain("never");
  });

  it("load() runs E 'kill', keeps Wi-Fi associated and runs .bootcde again with E 'init'; reset() runs nothing", async () => {
    const body = `E.on("init", function () { print("init"); }); E.on("kill", function () { print("kill"); });
      join(); setTimeout(function () { if (!require("Storage").read("once")) { require("Storage").write("once", "1"); load(); } }, 3000);
      setTimeout(function () { reset(); }, 8000);`;
    const sim = await simulate({ firmware: tinyFirmware(body) });
    const node = sim.nodes[0]!;
    await sim.advance(3_100);
    expect(node.log.filter((l) => l === "init")).toHaveLength(2);
    expect(node.log.filter((l) => l === "kill")).toHaveLength(1);
    // the radio is hardware: a soft reset keeps it associated (no "disconnected"; the new boot re-joins)
    expect(node.log.some((l) => l.startsWith("wifi lost"))).toBe(false);
    expect(node.wifi).not.toBe("off");
    await sim.advance(2_000);
    expect(node.status).toBe("online");
    await sim.advance(8_000); // the second boot's reset() timer fires 8 s after it booted
    expect(node.log.filter((l) => l === "kill")).toHaveLength(2);
    expect(node.log.filter((l) => l === "init")).toHaveLength(2); // reset() does not load saved code
    expect(node.runtime?.run("typeof join")).toBe("undefined");
  });

  it("pins: LED1 is D2 of the board; digitalRead sees what the host drives", async () => {
    const sim = await simulate({ firmware: "LED1.write(1); var level = digitalRead(D4);" });
    const node = sim.nodes[0]!;
    expect(node.led).toBe(true);
    expect(node.runtime!.run("LED1 == 2 && D2 === LED1")).toBe(true);
    node.pins.setExternal(5, true);
    expect(node.runtime!.run("[digitalRead(D5), D5.read(), digitalRead([D5, D4])]")).toEqual([1, true, 2]);
    node.runtime!.run("digitalWrite(LED1, 0)");
    expect(node.led).toBe(false);
  });

  it("unplugging the sensor detaches it from I2C1 (the bus stops ACKing) until it is plugged in again", async () => {
    const sim = await simulate({ firmware: `I2C1.setup({ sda: 21, scl: 22 });` });
    const node = sim.nodes[0]!;
    const chipId = () => node.runtime!.run(`I2C1.writeTo(0x76, 0xD0); I2C1.readFrom(0x76, 1)[0]`);
    expect(chipId()).toBe(0x60);
    node.unplug();
    expect(chipId).toThrow("jshI2CWrite: slave doesn't ACK the transfer");
    node.reboot(); // still unplugged after a reboot
    node.runtime!.run(`I2C1.setup({ sda: 21, scl: 22 });`);
    expect(chipId).toThrow("slave doesn't ACK");
    node.plug();
    expect(chipId()).toBe(0x60);
  });

  it("wires the sensors wisp.json names: I2C chips at their addresses, DS18B20s on their pin, a battery on its ADC input", async () => {
    const sensors = [
      { name: "air", type: "bme280", address: 0x77 },
      { name: "rh", type: "sht4x", address: 0x45 },
      { name: "soil", type: "ds18b20", pin: 5 },
      { name: "pond", type: "ds18b20", pin: 5, rom: "28ff9c2e93160450" },
      { name: "battery", type: "battery", pin: 34, divider: 2 },
    ];
    const sim = await simulate({ firmware: `I2C1.setup({ sda: 21, scl: 22 });`, config: { ...TINY_CONFIG, sensors } });
    const node = sim.nodes[0]!;
    const run = (code: string) => node.runtime!.run(code);
    expect(run(`I2C1.writeTo(0x77, 0xD0); I2C1.readFrom(0x77, 1)[0]`)).toBe(0x60);
    expect([...node.sensors.keys()]).toEqual(["air", "rh", "soil", "pond", "battery"]);
    const roms = run(`new OneWire(5).search()`) as string[];
    expect(roms).toHaveLength(2);
    expect(roms).toContain("28ff9c2e93160450");
    expect(run(`analogRead(34)`) as number).toBeCloseTo(((3.9 / 2 - 0.142) / 3.3) * (1100 / node.adc.vref), 1);
    // unplug by name; it stays unplugged across a power cycle
    node.unplug("pond");
    expect(run(`new OneWire(5).search().length`)).toBe(1);
    node.reboot();
    expect(node.runtime!.run(`new OneWire(5).search().length`)).toBe(1);
    node.plug("pond");
    expect(node.runtime!.run(`new OneWire(5).search().length`)).toBe(2);
    // faults: CRC errors only where there is a CRC; a stuck bus is the whole bus
    expect(node.fault("crc", true).map((s) => s.name)).toEqual(["rh", "soil", "pond"]);
    node.fault("crc", false);
    node.fault("stuck", true, "air");
    node.runtime!.run(`I2C1.setup({ sda: 21, scl: 22 });`);
    expect(() => node.runtime!.run(`I2C1.readFrom(0x45, 1)`)).toThrow("Operation timeout because the bus is busy");
    node.fault("stuck", false, "air");
    expect(() => node.runtime!.run(`I2C1.writeTo(0x45, 0xfd)`)).not.toThrow();
  });
});

describe("scenario faults", () => {
  it("wifi-drop, broker-restart and power-cut: nodes lose the link and come back by themselves", async () => {
    const sim = await simulate({
      nodes: 2,
      scenario: {
        environment: [{ at: 0, temperature: 20, humidity: 50, pressure: 1000 }],
        faults: [
          { at: 10, fault: "wifi-drop", for: 5 },
          { at: 30, fault: "broker-restart", for: 3 },
          { at: 50, fault: "power-cut", for: 4, node: 1 },
        ],
      },
    });
    const faults: string[] = [];
    sim.on("fault", (f) => faults.push(`${f.at / 1000} ${f.fault} ${f.phase}`));
    const port = sim.broker!.port;
    await sim.advance(11_000);
    expect(sim.nodes.map((n) => n.wifi)).toEqual(["connecting", "connecting"]); // retrying, the AP is gone
    expect(sim.nodes.map((n) => n.mqtt)).toEqual(["offline", "offline"]);
    expect(sim.nodes[0]!.log.some((l) => l.startsWith("wifi lost BEACON_TIMEOUT"))).toBe(true);
    await sim.advance(9_000);
    expect(sim.nodes.map((n) => n.wifi)).toEqual(["connected", "connected"]);
    const before = topics(sim, "/count").length;
    await sim.advance(11_000);
    expect(sim.broker).toBeUndefined();
    await sim.advance(9_000);
    expect(sim.broker?.port).toBe(port);
    expect(sim.nodes.map((n) => n.mqtt)).toEqual(["connected", "connected"]);
    expect(topics(sim, "/count").length).toBeGreaterThan(before + 20);
    await sim.advance(11_000);
    expect(sim.nodes.map((n) => n.power)).toEqual(["on", "off"]);
    await sim.advance(9_000);
    expect(sim.nodes[1]!.power).toBe("on");
    expect(sim.nodes[1]!.status).toBe("online");
    expect(faults).toEqual([
      "10 wifi-drop start", "15 wifi-drop end",
      "30 broker-restart start", "33 broker-restart end",
      "50 power-cut start", "54 power-cut end",
    ]);
  });

  it("bridge-down cuts the link it is given for its duration, and is reported as ignored without one", async () => {
    const calls: string[] = [];
    const scenario = { environment: [{ at: 0, temperature: 20, humidity: 50, pressure: 1000 }], faults: [{ at: 5, fault: "bridge-down" as const, for: 60 }] };
    const sim = await simulate({ scenario, link: { down: () => calls.push(`down ${sim.now()}`), up: () => calls.push(`up ${sim.now()}`) } });
    await sim.advance(70_000);
    expect(calls).toEqual(["down 5000", "up 65000"]);
    const alone = await simulate({ scenario });
    const warnings: string[] = [];
    alone.on("warning", (w) => warnings.push(w));
    await alone.advance(6_000);
    expect(warnings).toEqual(["bridge-down needs two bridged brokers (wisp sim --topology edge-cloud); ignored"]);
  });
});
