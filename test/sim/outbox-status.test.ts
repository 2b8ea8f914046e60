// How a node reports its outbox and the order its readings go in, through the faults a user meets:
// the broker unreachable, Storage full (other files take it), no time server. The built firmware in
// simulated nodes on a fake clock, against the embedded broker (aedes).
import mqtt, { type MqttClient } from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import type { Simulation } from "../../host-sim/sim.ts";
import { expectTakenAtTs, outboxSimulation, readings, type Reading } from "../helpers/outbox-sim.ts";

const MINUTE = 60_000;
let sim: Simulation | undefined;
let peers: MqttClient[] = [];
afterEach(async () => {
  for (const p of peers) p.end(true);
  peers = [];
  await sim?.stop();
  sim = undefined;
});

async function simulate(options: Parameters<typeof outboxSimulation>[0] = {}): Promise<Simulation> {
  sim = await outboxSimulation(options);
  return sim;
}

/** Every <prefix>/status/outbox the broker saw, in order, with when (ms since the start). */
function statuses(s: Simulation): ({ at: number; retain: boolean } & Record<string, unknown>)[] {
  const topic = s.nodes[0]!.prefix + "/status/outbox";
  return s.traffic.filter((m) => m.topic === topic).map((m) => ({ at: m.at, retain: m.retain, ...JSON.parse(m.payload) }));
}

/** The retained status/outbox: the last one published (each is retained). */
function retained(s: Simulation): Record<string, unknown> | undefined {
  const all = statuses(s);
  for (const st of all) expect(st.retain).toBe(true);
  return all[all.length - 1];
}

/** Node time in steps of a second until `until()` holds (at most `limitMs`). */
async function runUntil(s: Simulation, until: () => boolean, limitMs: number): Promise<void> {
  for (let t = 0; t < limitMs && !until(); t += 1000) await s.advance(1000);
  expect(until()).toBe(true);
}

/** Node time until the node is connected again after `since` (ms since the start): when it was. */
async function untilBack(s: Simulation, since: number): Promise<number> {
  const online = () => s.traffic.find((m) => m.at > since && m.topic === s.nodes[0]!.prefix + "/status" && m.payload === "online");
  await runUntil(s, () => online() !== undefined, 10 * MINUTE);
  return online()!.at;
}

/** Oldest first: no reading arrives after one taken later. */
function expectOldestFirst(list: Reading[]): void {
  const back = list.slice(1).map((r, i) => [list[i]!.ts!, r.ts!]).filter(([a, b]) => b! < a!);
  expect(back.map(([a, b]) => `${(b! - a!) / 1000} s`), "ts going back").toEqual([]);
}

describe("<prefix>/status/outbox says the outbox's state as it is now", () => {
  it("a normal boot: once the first reading has gone it says readings 0, and it says nothing per reading", async () => {
    const s = await simulate();
    await s.advance(10 * MINUTE);
    expect(readings(s).length).toBeGreaterThanOrEqual(60);
    expect(retained(s)).toMatchObject({ readings: 0, dropped: 0, repliesDropped: 0 });
    expect(retained(s)!.error).toBeUndefined();
    // once per boot, not per reading
    expect(statuses(s)).toHaveLength(1);
  }, 30_000);

  it("after an outage: the backlog is said on connect, readings 0 once it has gone, and nothing per reading", async () => {
    const s = await simulate();
    await s.advance(MINUTE);
    s.cutBroker(5 * MINUTE);
    await s.advance(5 * MINUTE);
    const back = await untilBack(s, MINUTE);
    const atConnect = statuses(s).filter((st) => st.at > MINUTE);
    expect(atConnect[0]).toMatchObject({ at: back, dropped: 0 });
    expect(atConnect[0]!.readings).toBeGreaterThanOrEqual(29);
    await s.advance(10 * MINUTE);
    const backlog = readings(s).filter((r) => r.at >= back && r.at < back + 10_000);
    expect(backlog.length).toBeGreaterThanOrEqual(29);
    expect(retained(s)).toMatchObject({ readings: 0, dropped: 0 });
    // the backlog, then drained: two, however many readings went
    expect(statuses(s).filter((st) => st.at > MINUTE)).toHaveLength(2);
  }, 30_000);

  it("Storage full while online: the error is said at once and goes once Storage takes readings again", async () => {
    const s = await simulate();
    const node = s.nodes[0]!;
    await s.advance(MINUTE);
    node.flashStorage.fill();
    // once the outbox's file in use is full (some 40 readings)
    await runUntil(s, () => retained(s)?.error !== undefined, 10 * MINUTE);
    expect(retained(s)!.error).toBe("Storage is full (Unable to find or create file)");
    const failedAt = s.now();
    await s.advance(2 * MINUTE);
    // readings go on meanwhile, through RAM
    expect(readings(s).filter((r) => r.at > failedAt)).toHaveLength(12);
    node.flashStorage.release();
    await s.advance(3 * MINUTE);
    expect(retained(s)).toMatchObject({ readings: 0, dropped: 0 });
    expect(retained(s)!.error).toBeUndefined();
    const got = readings(s).filter((r) => r.at > 20_000);
    expect(got.length).toBeGreaterThanOrEqual(40);
    expectTakenAtTs(s, got);
    expectOldestFirst(got);
    expect(statuses(s).length).toBeLessThanOrEqual(4);
  }, 30_000);

  it("Storage full while the broker is away: the error is on status/outbox when the node is back, with the readings waiting", async () => {
    const s = await simulate();
    const node = s.nodes[0]!;
    await s.advance(MINUTE);
    s.cutBroker(10 * MINUTE);
    await s.advance(MINUTE);
    node.flashStorage.fill();
    // the outbox's file in use has room for some 45 readings: Storage refuses the ones after them
    await s.advance(9 * MINUTE);
    expect(node.log.filter((l) => /Storage is full/.test(l))).toHaveLength(1);
    const back = await untilBack(s, MINUTE);
    const said = statuses(s).filter((st) => st.at > MINUTE);
    expect(said[0]).toMatchObject({ at: back, error: "Storage is full (Unable to find or create file)" });
    expect(said[0]!.readings).toBeGreaterThanOrEqual(59);
    // 59 readings through a real socket, 4 at a time: on a loaded machine that takes more turns of
    // the fake clock, so step until they have gone (bounded), not one fixed minute
    for (let i = 0; i < 10 && retained(s)?.readings !== 0; i++) await s.advance(MINUTE / 2);
    // still full: the error stays, the readings have gone
    expect(retained(s)).toMatchObject({ readings: 0, error: "Storage is full (Unable to find or create file)" });
    expect(node.log.filter((l) => /Storage is full/.test(l))).toHaveLength(1);
  }, 30_000);
});

describe("readings go oldest first", () => {
  it("Storage fills in an outage: the readings kept in RAM go after the older ones in flash; those RAM cannot hold are counted once", async () => {
    const s = await simulate();
    const node = s.nodes[0]!;
    await s.advance(MINUTE);
    s.cutBroker(20 * MINUTE);
    await s.advance(MINUTE);
    node.flashStorage.fill();
    await s.advance(19 * MINUTE);
    const back = await untilBack(s, MINUTE);
    await s.advance(2 * MINUTE);
    const got = readings(s).filter((r) => r.at > MINUTE);
    expectTakenAtTs(s, got);
    expectOldestFirst(got);
    // what the outbox's file had room for, then the newest 32 (mqtt.queueSize) in RAM; the rest counted
    const outage = got.filter((r) => r.at === back);
    expect(outage.length).toBeGreaterThanOrEqual(40 + 32);
    const dropped = retained(s)!.dropped as number;
    expect(dropped).toBeGreaterThanOrEqual(20);
    const taken = Math.floor((back - MINUTE) / 10_000);
    expect(Math.abs(outage.length + dropped - taken)).toBeLessThanOrEqual(1);
    // said once each, not per reading
    expect(node.log.filter((l) => /dropped/.test(l))).toEqual(["wisp: readings dropped (the oldest: RAM holds mqtt.queueSize): counted on status/outbox"]);
    expect(node.log.filter((l) => /Storage/.test(l))).toEqual(["wisp: outbox: Storage is full (Unable to find or create file): readings wait in RAM (mqtt.queueSize 32) until it takes them"]);
  }, 30_000);

  it("Storage fills and frees in an outage: flash, RAM and flash again go in the order taken, none lost", async () => {
    const s = await simulate();
    const node = s.nodes[0]!;
    await s.advance(MINUTE);
    s.cutBroker(10 * MINUTE);
    await s.advance(3 * MINUTE);
    node.flashStorage.fill();
    await s.advance(3 * MINUTE);
    node.flashStorage.release();
    await untilBack(s, MINUTE);
    await s.advance(2 * MINUTE);
    const got = readings(s).filter((r) => r.at > MINUTE);
    expectTakenAtTs(s, got);
    expectOldestFirst(got);
    const taken = [...new Set(got.map((r) => r.ts!))];
    expect(taken.slice(1).map((t, i) => t - taken[i]!).filter((d) => d !== 10_000)).toEqual([]);
    expect(retained(s)).toMatchObject({ readings: 0, dropped: 0 });
  }, 30_000);
});

describe("time", () => {
  it("no time server: the first reading goes as soon as the first tries end (about 6 s), not at the next sample", async () => {
    const s = await simulate({ powerOn: false });
    s.stopSntp(10 * MINUTE);
    const from = s.now();
    await s.powerOn();
    await runUntil(s, () => readings(s).length > 0, 30_000);
    const first = readings(s)[0]!;
    // Wi-Fi up at 1.5 s, then 3 tries 2 s apart
    expect(first.at - from).toBeLessThanOrEqual(8_000);
    expect(first.uptime).toBeGreaterThan(1);
  }, 30_000);
});

describe("a node on a duty cycle", () => {
  it("the interval command sets its period (sleep.seconds), kept in wisp.json, from this wake on", async () => {
    const s = await simulate({ changes: { sleep: { seconds: 60, awake: 20 } } });
    const node = s.nodes[0]!;
    const operator = await mqtt.connectAsync(s.brokerUrl, { reconnectPeriod: 0, clientId: "operator", clean: false });
    peers.push(operator);
    const replies: string[] = [];
    operator.on("message", (_topic, payload) => replies.push(payload.toString()));
    await operator.subscribeAsync(node.prefix + "/reply/#", { qos: 1 });
    await s.advance(30_000);
    expect(node.power).toBe("sleeping");
    // sent while it sleeps: answered at its next wake
    await operator.publishAsync(node.prefix + "/cmd/interval", "5", { qos: 1 });
    await operator.publishAsync(node.prefix + "/cmd/interval", "120", { qos: 1 });
    await operator.publishAsync(node.prefix + "/cmd/interval", "", { qos: 1 });
    await runUntil(s, () => replies.length >= 3, 2 * MINUTE);
    expect(JSON.parse(replies[0]!).error).toBe('interval (sleep.seconds: the node sleeps) must be a whole number of seconds from 10 to 2147, in decimal digits; got "5"');
    expect(replies.slice(1).map((r) => JSON.parse(r))).toEqual([{ interval: 120 }, { interval: 120 }]);
    expect(JSON.parse(node.flashStorage.read("wisp.json")!).sleep.seconds).toBe(120);
    const from = readings(s).length - 1;
    await s.advance(10 * MINUTE);
    const taken = readings(s).slice(from).map((r) => r.ts!);
    expect(taken.length).toBeGreaterThanOrEqual(5);
    expect(taken.slice(1).map((t, i) => Math.round((t - taken[i]!) / 1000))).toEqual(taken.slice(1).map(() => 120));
  }, 30_000);
});
