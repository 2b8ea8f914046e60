// No reading lost: the built firmware's outbox (readings in flash with the time they were taken) and
// its MQTT session kept in flash, in simulated nodes on a fake clock, against aedes and Mosquitto.
// A reading's "ts" is checked against the scenario: the temperature climbs 12 °C an hour, so a
// reading stamped with its arrival time instead of the time it was taken would be degrees off.
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startBroker, type Broker } from "../../host-sim/broker.ts";
import { type Simulation, type SimulationOptions } from "../../host-sim/sim.ts";
import { STORAGEFILE } from "../../host-sim/storage.ts";
import { CONFIG, expectTakenAtTs, firmwareFor, outboxSimulation, readings, type Reading } from "../helpers/outbox-sim.ts";
import { startMosquitto, type Mosquitto } from "../helpers/mosquitto.ts";
import { startProxy, type Proxy } from "../helpers/proxy.ts";
import { describeWithMosquitto } from "../helpers/suites.ts";
import { WISP } from "../helpers/users.ts";

const HOUR = 3_600_000;
let sim: Simulation | undefined;
let peers: MqttClient[] = [];
afterEach(async () => {
  for (const p of peers) p.end(true);
  peers = [];
  await sim?.stop();
  sim = undefined;
});

async function simulate(options: Parameters<typeof outboxSimulation>[0]): Promise<Simulation> {
  sim = await outboxSimulation(options);
  return sim;
}

/** One reading every interval from the first to the last, apart from `gaps` (ms) where the node was off. */
function expectEveryInterval(list: Reading[], gaps: number[] = []): void {
  const taken = [...new Set(list.map((r) => r.ts!))].sort((a, b) => a - b);
  const jumps = taken.slice(1).map((t, i) => t - taken[i]!).filter((d) => d !== 10_000);
  expect(jumps.length, `gaps between readings: ${jumps.join(", ")}`).toBe(gaps.length);
  for (let i = 0; i < gaps.length; i++) expect(jumps[i]).toBeGreaterThanOrEqual(gaps[i]!);
}

async function watch(url: string, filter: string, options: mqtt.IClientOptions = {}): Promise<{ client: MqttClient; messages: { topic: string; payload: Buffer; qos: number; retain: boolean }[] }> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, ...options });
  peers.push(client);
  const messages: { topic: string; payload: Buffer; qos: number; retain: boolean }[] = [];
  client.on("message", (topic, payload, packet) => messages.push({ topic, payload, qos: packet.qos, retain: packet.retain }));
  await client.subscribeAsync(filter, { qos: 2 });
  return { client, messages };
}

/** Node time in small steps, so that the peers' real socket IO keeps up. */
async function runUntil(s: Simulation, until: () => boolean, limitMs: number): Promise<void> {
  for (let t = 0; t < limitMs && !until(); t += 1000) {
    await s.advance(1000);
    await new Promise((r) => setTimeout(r, 1));
  }
  expect(until()).toBe(true);
}

/** The outage test, for a broker given by URL (Mosquitto) or the embedded aedes. */
async function hourWithPowerCut(qos: 1 | 2, options: SimulationOptions = {}): Promise<void> {
  const s = await simulate({ ...options, changes: { qos } });
  const node = s.nodes[0]!;
  // node time in steps that let the broker's real IO keep up (Mosquitto is another process)
  await runUntil(s, () => readings(s).length >= 5, 120_000);
  s.cutBroker(HOUR);
  await s.advance(HOUR / 2);
  node.powerOff(); // a power cut in the middle: the readings are in flash, the session too
  await s.advance(5_000);
  node.powerOn();
  await s.advance(HOUR / 2);
  await runUntil(s, () => readings(s).length >= 360 + 6 && node.outboxStatus !== undefined, 300_000);
  await s.advance(30_000);
  const got = readings(s);
  const distinct = new Set(got.map((r) => r.ts));
  if (qos === 2) expect(got.length, "QoS 2: each reading exactly once").toBe(distinct.size);
  // none lost: every 10 s from the first reading to the last, but for the power cut
  expectEveryInterval(got, [5_000]);
  expect(distinct.size).toBeGreaterThanOrEqual(360 + 6);
  expectTakenAtTs(s, got);
  // the ones taken in the outage arrived late, with the time they were taken
  const late = got.filter((r) => r.at - (r.ts! - s.startMs) > 60_000);
  expect(late.length).toBeGreaterThan(340);
}

describe("the outbox, with the embedded broker (aedes)", () => {
  it("the broker unreachable for an hour, a power cut in the middle: every QoS 1 reading arrives, with the time it was taken", async () => {
    await hourWithPowerCut(1);
  }, 60_000);

  it("... and QoS 2 readings arrive exactly once", async () => {
    await hourWithPowerCut(2);
  }, 60_000);

  it("without a clock yet (no time server), readings wait, go with their uptime, and later ones carry ts", async () => {
    const s = await simulate({ powerOn: false });
    s.stopSntp(120_000);
    await s.powerOn();
    await s.advance(60_000);
    const early = readings(s);
    expect(early.length).toBeGreaterThanOrEqual(4);
    // after the first round of questions (3 tries, 2 s apart) the node stops holding them back
    for (const r of early) {
      expect(r.ts).toBeUndefined();
      expect(r.uptime).toBeGreaterThan(1);
    }
    expect(s.nodes[0]!.log.some((l) => /time: no answer from pool\.ntp\.org/.test(l))).toBe(true);
    await s.advance(180_000);
    // it answers again at 133.5 s (asked each minute)
    const later = readings(s).filter((r) => r.at > 140_000);
    expect(later.length).toBeGreaterThan(3);
    expectTakenAtTs(s, later);
  }, 30_000);

  it("QoS 0 with the time server answering: the first reading of each boot waits for the clock too (about 6 s at most), none goes with only its uptime", async () => {
    const s = await simulate({ changes: { qos: 0 } });
    const node = s.nodes[0]!;
    await s.advance(30_000);
    node.powerOff();
    await s.advance(5_000);
    node.powerOn();
    await s.advance(60_000);
    const got = readings(s);
    expect(got.filter((r) => r.ts === undefined)).toEqual([]);
    expectEveryInterval(got, [5_000]);
    expectTakenAtTs(s, got);
    expect(got.length).toBeGreaterThanOrEqual(9);
  }, 30_000);

  it("readings taken before the clock is set get their ts once it is (the broker away meanwhile)", async () => {
    const s = await simulate({ powerOn: false });
    s.stopSntp(5_000); // the first two questions go unanswered, the third is answered
    s.cutBroker(60_000);
    await s.powerOn();
    await s.advance(120_000);
    const got = readings(s);
    expect(got.length).toBeGreaterThanOrEqual(11);
    expectTakenAtTs(s, got);
    expectEveryInterval(got);
  }, 30_000);

  it("when the outbox is full the oldest readings go, the count is published retained on <prefix>/status/outbox, and the node goes on", async () => {
    const s = await simulate({ changes: { outbox: { maxBytes: 8192 } } });
    const node = s.nodes[0]!;
    await s.advance(30_000);
    s.cutBroker(2 * HOUR); // 720 readings: far more than 2 segments of 4 KB hold
    await s.advance(2 * HOUR);
    await runUntil(s, () => node.outboxStatus !== undefined && Number(node.outboxStatus.dropped) > 0, 120_000);
    const status = node.outboxStatus!;
    expect(status.dropped).toBeGreaterThan(500);
    expect(status.ts).toBeGreaterThan(s.startMs);
    expect(node.log.some((l) => /^wisp: outbox full: the oldest \d+ readings dropped$/.test(l))).toBe(true);
    // what was kept arrives, the newest ones, in order, with their time; then the node goes on as before
    const after = readings(s).filter((r) => r.at > 30_000);
    expect(after.length).toBeGreaterThan(30);
    expectTakenAtTs(s, after);
    const kept = after.map((r) => r.ts!);
    expect([...kept].sort((a, b) => a - b)).toEqual(kept);
    // dropped and kept make up what was taken in the outage
    const keptFromOutage = kept.filter((t) => t - s.startMs > 30_000 && t - s.startMs < 30_000 + 2 * HOUR).length;
    expect(Math.abs((status.dropped as number) + keptFromOutage - 720)).toBeLessThanOrEqual(1);
    const count = readings(s).length;
    await s.advance(60_000);
    expect(readings(s).length).toBe(count + 6);
    const retained = await watch(s.brokerUrl, node.prefix + "/status/outbox");
    await runUntil(s, () => retained.messages.length > 0, 10_000);
    expect(retained.messages[0]!.retain).toBe(true);
    expect(JSON.parse(retained.messages[0]!.payload.toString()).dropped).toBe(status.dropped);
  }, 60_000);

  it("Storage full: what cannot be kept is said on the console and on status/outbox, the readings wait in RAM, the node keeps running", async () => {
    const s = await simulate({ powerOn: false });
    const node = s.nodes[0]!;
    node.flashStorage.fill(); // as if other files had taken every free byte
    await s.powerOn();
    await s.advance(30_000);
    expect(node.power).toBe("on");
    expect(node.log.filter((l) => /^wisp: outbox: Storage is full \(Unable to find or create file\): readings wait in RAM \(mqtt\.queueSize 32\) until it takes them$/.test(l))).toHaveLength(1);
    await runUntil(s, () => typeof node.outboxStatus?.error === "string", 10_000);
    expect(node.outboxStatus!.error).toBe("Storage is full (Unable to find or create file)");
    // online, readings go out from RAM; offline, RAM holds them (mqtt.queueSize)
    s.cutBroker(100_000);
    await s.advance(100_000);
    node.flashStorage.release();
    await s.advance(60_000);
    // the first, taken as the node connected and before its clock was set, waited in RAM for its ts
    const got = readings(s);
    expect(got.length).toBeGreaterThanOrEqual(19);
    expectEveryInterval(got);
    expectTakenAtTs(s, got);
  }, 30_000);

  it("a firmware update (wisp flash: new .bootcde and wisp.json) keeps the outbox: its readings are sent after it", async () => {
    const s = await simulate({});
    const node = s.nodes[0]!;
    await s.advance(30_000);
    s.cutBroker(5 * 60_000);
    await s.advance(120_000);
    // what wisp flash does: reset(), write the files, load()
    node.runtime!.run("reset()");
    await s.advance(100);
    node.flash(await firmwareFor(), { ...CONFIG, interval: 10 } as never);
    node.runtime!.run("load()");
    await s.advance(5 * 60_000);
    await runUntil(s, () => readings(s).some((r) => r.at > 5 * 60_000 + 30_000), 60_000);
    const got = readings(s);
    expectTakenAtTs(s, got);
    expect(got.filter((r) => r.ts! - s.startMs > 30_000 && r.ts! - s.startMs < 150_000).length).toBeGreaterThanOrEqual(11);
  }, 30_000);
});

/** The outbox's segments (their first chunk, as far as written), oldest first. */
function segments(s: Simulation): { name: string; end: number; text: string }[] {
  const flash = s.nodes[0]!.flashStorage;
  return flash
    .list()
    .filter((n) => /^wisp\.o\d+\x01$/.test(n) && flash.fileFlags(n) === STORAGEFILE)
    .sort((a, b) => Number(a.slice(6, -1)) - Number(b.slice(6, -1)))
    .map((name) => {
      const data = flash.bytes(name)!;
      const end = data.indexOf(0xff) < 0 ? data.length : data.indexOf(0xff);
      return { name, end, text: Buffer.from(data.subarray(0, end)).toString("latin1") };
    });
}

const session = (packet: string) => Buffer.from(packet, "latin1").toString("base64");

describe("what the outbox reads from flash is checked, never trusted", () => {
  // A power cut stops a StorageFile.write after a few bytes; the boot after ends the line, and every
  // boot after that must still see it for what it is. Before: "r", "d" or "po1 " read back as a whole
  // record on the second boot made nextSeq NaN, and every later reading was kept as "rNaN" and never sent.
  const torn = ["r", "d", "p", "po1 ", "z", "t", "r1", "x", `po5 - ${session("\x32\x21\x00\x19wisp/240ac4c1-0eda/status").slice(0, 12)}`];
  for (const bytes of torn) {
    it(`a write cut after ${JSON.stringify(bytes)}, then two more boots: every reading arrives with its ts, nothing NaN in flash, the line counted as skipped`, async () => {
      const s = await simulate({});
      const node = s.nodes[0]!;
      await s.advance(30_000);
      s.cutBroker(5 * 60_000);
      await s.advance(120_000);
      node.powerOff();
      const last = segments(s).at(-1)!;
      node.flashStorage.writeRaw(last.name, Buffer.from(bytes, "latin1"), last.end);
      await s.advance(2_000);
      // status/outbox is kept current: the boot that reconnects says what it skipped; a later boot whose
      // flash no longer holds the torn line (its segment sent and erased) has nothing to say of it
      let reconnected: Record<string, unknown> | undefined;
      for (let boot = 0; boot < 3; boot++) {
        node.powerOn();
        await s.advance(boot === 1 ? 5 * 60_000 : 30_000);
        if (boot === 1) reconnected = node.outboxStatus;
        node.powerOff();
        await s.advance(2_000);
      }
      node.powerOn();
      await s.advance(120_000);
      const got = readings(s);
      expectEveryInterval(got, [2_000, 2_000, 2_000, 2_000]);
      expectTakenAtTs(s, got);
      expect(segments(s).map((x) => x.text).join("").split("\n").filter((l) => /NaN/.test(l))).toEqual([]);
      expect(reconnected).toMatchObject({ dropped: 0, skipped: 1 });
      expect(node.outboxStatus).toMatchObject({ readings: 0, dropped: 0 });
    }, 30_000);
  }

  // Lines no boot of this firmware wrote: junk, numbers out of range, packets that are not packets.
  // Each is skipped and counted; the node boots, and its new readings go, each with its ts.
  const junk: Record<string, string> = {
    "binary bytes": Buffer.from(Array.from({ length: 600 }, (_, i) => (i * 97 + 13) % 255)).toString("latin1"),
    "lines of another format": '{"topic":"climate","payload":"x"}\n',
    "record letters with junk": "rubbish here\nd!!\npx y\nx\nt\nz?\nr \nd\n",
    "a seq too big to count exactly": 'rzzzzzzzzzzzzzzz 1mbd98mu climate {"a":1}\n',
    "a time that is not one": 'r0 1!! climate {"a":1}\nr1 1zz climate {"a":1}\n',
    "a clock line with a junk epoch": 'tabcd zz!!\ntabce zz\n',
    "a dropped count that is not a number": "zNaN\nz\n",
    "a session line with a packet that is not base64": "po1 - %%%not-base64%%%\n",
    "a session line whose packet is not a PUBLISH": `po1 - ${session("\x40\x02\x00\x01")}\npo2 - AAAA\npo3 -\n`,
    "a session line cut in its base64": `po5 - ${session("\x32\x21\x00\x19wisp/240ac4c1-0eda/status").slice(0, 12)}\n`,
    "a session line naming a reading that is not there": "po1 zz\n",
    "a session key that is no packet id": `pq9 - ${session("\x32\x05\x00\x01a\x00\x05")}\npo0 - AAAA\npo70000 - AAAA\n`,
  };
  for (const [name, text] of Object.entries(junk)) {
    it(`${name}: skipped and counted on status/outbox; the node connects once and its readings go with their ts`, async () => {
      const s = await simulate({ powerOn: false });
      const node = s.nodes[0]!;
      node.flashStorage.write("wisp.o0\x01", Buffer.from(text, "latin1"), 0, node.flashStorage.chunkBytes, STORAGEFILE);
      await s.powerOn();
      await s.advance(120_000);
      const got = readings(s);
      expect(got.length).toBeGreaterThanOrEqual(12);
      expectTakenAtTs(s, got);
      expect(node.log.filter((l) => /MQTT connected/.test(l))).toHaveLength(1);
      expect(node.log.filter((l) => /Uncaught|NaN/.test(l))).toEqual([]);
      expect(node.outboxStatus).toMatchObject({ dropped: 0, readings: 0 });
      expect(node.outboxStatus!.skipped).toBeGreaterThanOrEqual(1);
      expect(node.log.some((l) => /outbox: \d+ lines in flash not whole records/.test(l))).toBe(true);
    }, 30_000);
  }
});

describe('a firmware update to "outbox": false while readings wait', () => {
  // wisp flash asks first (test/integration/flash.test.ts); a firmware put there by other means says so
  it("by other means than wisp flash: the node says on the console and on status/outbox that an earlier outbox waits unsent, and how to erase it", async () => {
    const s = await simulate({});
    const node = s.nodes[0]!;
    await s.advance(30_000);
    s.cutBroker(10 * 60_000);
    await s.advance(5 * 60_000);
    node.runtime!.run("reset()");
    await s.advance(100);
    node.flash(await firmwareFor({ outbox: false }), { ...CONFIG, outbox: false } as never);
    node.runtime!.run("load()");
    await s.advance(10 * 60_000);
    const said = 'an earlier outbox waits in Storage (wisp.o<n>); with "outbox": false it is not sent: wisp flash --drop-outbox erases it';
    expect(node.log).toContain("wisp: " + said);
    await runUntil(s, () => node.outboxStatus?.error === said, 30_000);
  }, 30_000);
});

describe("a reboot in the middle of a QoS 2 exchange (a proxy holds the broker's answer back)", () => {
  let broker: Broker;
  let proxy: Proxy;
  beforeAll(async () => {
    broker = await startBroker({ port: 0 });
    proxy = await startProxy({ host: broker.host, port: broker.port });
  });
  afterAll(async () => {
    await proxy?.close();
    await broker?.close();
  });

  for (const held of ["PUBREC", "PUBCOMP"] as const) {
    it(`a reading whose ${held} never came before the power cut is delivered once`, async () => {
      const s = await simulate({ brokerUrl: proxy.url, observer: { url: broker.url }, changes: { qos: 2 } });
      const node = s.nodes[0]!;
      await runUntil(s, () => readings(s).length >= 2, 60_000);
      proxy.holdFrom("down", held);
      const before = readings(s).length;
      const from = proxy.packets.length;
      await runUntil(s, () => proxy.packets.slice(from).some((p) => p.direction === "down" && p.name === held), 30_000);
      node.powerOff();
      proxy.release();
      await s.advance(3_000);
      node.powerOn();
      await s.advance(60_000);
      const got = readings(s);
      expect(got.length).toBeGreaterThan(before + 4);
      expect(new Set(got.map((r) => r.ts)).size, proxy.transcript()).toBe(got.length);
      expectEveryInterval(got, [3_000]);
      // after the reboot it went again, as the same message: DUP set, the same packet id
      const up = proxy.packets.filter((p) => p.direction === "up" && (p.name === "PUBLISH" || p.name === "PUBREL"));
      expect(up.some((p) => (held === "PUBREC" ? p.name === "PUBLISH" && (p.bytes[0]! & 8) !== 0 : p.name === "PUBREL" && up.filter((q) => q.messageId === p.messageId && q.name === "PUBREL").length === 2))).toBe(true);
    }, 30_000);
  }

  it("a QoS 2 command whose PUBREL was on the way when power was cut is answered once", async () => {
    const s = await simulate({ brokerUrl: proxy.url, observer: { url: broker.url } });
    const node = s.nodes[0]!;
    await runUntil(s, () => node.status === "online", 30_000);
    await s.advance(2_000);
    const operator = await watch(broker.url, node.prefix + "/reply/#");
    proxy.holdFrom("down", "PUBREL");
    const from = proxy.packets.length;
    await operator.client.publishAsync(node.prefix + "/cmd/ping", "", { qos: 2 });
    await runUntil(s, () => proxy.packets.slice(from).some((p) => p.direction === "down" && p.name === "PUBREL"), 10_000);
    await runUntil(s, () => operator.messages.length > 0, 10_000);
    node.powerOff();
    proxy.release();
    await s.advance(3_000);
    node.powerOn();
    await s.advance(30_000);
    expect(operator.messages.map((m) => m.topic)).toEqual([node.prefix + "/reply/ping"]);
    // the broker sent PUBREL again to the rebooted node, which completed the flow from its kept session
    expect(proxy.packets.slice(from).filter((p) => p.direction === "down" && p.name === "PUBREL").length).toBeGreaterThanOrEqual(2);
    expect(proxy.packets.slice(from).some((p) => p.direction === "up" && p.name === "PUBCOMP")).toBe(true);
  }, 30_000);
});

describe("deep-sleep duty cycle", () => {
  it("100 cycles with random broker and Wi-Fi outages: no reading lost, each with its time; commands sent while it sleeps answered at the next wake", async () => {
    const s = await simulate({ changes: { sleep: { seconds: 60, awake: 20 } } });
    const node = s.nodes[0]!;
    const operator = await watch(s.brokerUrl, node.prefix + "/reply/#", { clientId: "operator", clean: false });
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    let sent = 0;
    for (let cycle = 0; cycle < 100; cycle++) {
      const r = random();
      if (r < 0.15) s.cutBroker(20_000 + random() * 100_000);
      else if (r < 0.3) s.dropWifi(20_000 + random() * 100_000);
      if (cycle % 10 === 5) {
        await operator.client.publishAsync(node.prefix + "/cmd/ping", String(cycle), { qos: 1 });
        sent++;
      }
      await s.advance(60_000);
      await new Promise((done) => setTimeout(done, 1));
    }
    // no more faults: until every wake's reading is in
    await runUntil(s, () => node.power === "sleeping" && new Set(readings(s).map((r) => r.ts)).size === node.boots && operator.messages.length >= sent, 10 * 60_000);
    const got = readings(s);
    const taken = [...new Set(got.map((r) => r.ts!))].sort((a, b) => a - b);
    // one reading per wake, every 60 s from the first: none missing
    expect(node.boots).toBeGreaterThanOrEqual(100);
    expect(taken.length).toBe(node.boots);
    expect(taken.slice(1).map((t, i) => t - taken[i]!).filter((d) => Math.abs(d - 60_000) > 2_000)).toEqual([]);
    expectTakenAtTs(s, got);
    expect(operator.messages.length).toBe(sent);
    for (const m of operator.messages) expect(JSON.parse(m.payload.toString())).toMatchObject({ pong: true });
    // awake per cycle: join Wi-Fi (1.5 s), connect, send, a moment for waiting commands
    expect(node.lastAwakeMs).toBeLessThan(3_000);
  }, 120_000);
});

describeWithMosquitto("the outbox, with Mosquitto 2", () => {
  let mosquitto: Mosquitto;
  beforeAll(async () => {
    mosquitto = await startMosquitto({ logTypes: ["error", "warning"] });
  });
  afterAll(() => mosquitto?.stop());

  const options = (): SimulationOptions => ({ brokerUrl: mosquitto.url, login: WISP });
  it("the broker unreachable for an hour, a power cut in the middle: every QoS 1 reading arrives, with its time", async () => {
    await hourWithPowerCut(1, options());
  }, 90_000);

  it("... and QoS 2 readings arrive exactly once", async () => {
    await hourWithPowerCut(2, options());
  }, 90_000);
});
