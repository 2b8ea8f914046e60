// Behaviour of the BUILT client's API against a scripted broker on a fake clock: the offline queue
// and the in-flight window, end() graceful and forced, and argument errors.
import { beforeEach, describe, expect, it } from "vitest";
import { brief, type Rig, recorder, useRig } from "../helpers/fake-time-device.ts";
import { netState } from "../../host-sim/net.ts";
import { type } from "../helpers/scripted-broker.ts";

const rigOf = useRig();
let rig: Rig;
beforeEach(() => {
  rig = rigOf();
});

describe("offline queue", () => {
  // queueSize 2 with three publishes is in client-regressions.test.ts (it used to hang the device).
  it("keeps queueSize publishes while offline, fails the next one at once with queue full, sends the kept one on connect", async () => {
    const { broker } = rig;
    broker.script = (r) => r.name !== "CONNECT" && broker.respond(r); // CONNACK when the test says
    const dev = rig.connect({ queueSize: 1 });
    const connect = await broker.next("CONNECT");
    const done: string[] = [];
    dev.client.publish("q", "1", { qos: 1 }, recorder(done, "1"));
    dev.client.publish("q", "2", { qos: 1 }, recorder(done, "2"));
    expect(done).toEqual(["2: queue full"]);
    // (no rig.sync() before CONNACK: a PUBLISH before it is a protocol error [MQTT-3.2.0-1]; the
    // PUBLISH list after CONNACK below shows nothing went before it)
    await rig.runtime.settle();
    expect(broker.seen("PUBLISH")).toEqual([]);

    connect.conn.send({ type: type("CONNACK"), sessionPresent: false, returnCode: 0 });
    await dev.next("connect");
    await broker.next("PUBLISH");
    await rig.sync();
    expect(broker.seen("PUBLISH").map((r) => r.packet.payload)).toEqual(["1"]);
    expect(done).toEqual(["2: queue full", "1: ok"]);
  });

  it("with inflight 2, sends the third QoS 1 publish only after a PUBACK", async () => {
    const { broker } = rig;
    broker.script = (r) => r.name !== "PUBLISH" && broker.respond(r); // PUBACK when the test says
    const dev = await rig.connected({ inflight: 2 });
    const done: string[] = [];
    for (const n of ["1", "2", "3"]) dev.client.publish("w", n, { qos: 1 }, recorder(done, n));
    await broker.next("PUBLISH");
    await rig.sync();
    const sent = broker.seen("PUBLISH");
    expect(sent.map((r) => r.packet.payload)).toEqual(["1", "2"]);

    broker.conn.send({ type: type("PUBACK"), messageId: sent[0].packet.messageId });
    const third = await broker.next("PUBLISH", sent[1].index + 1);
    expect(third.packet.payload).toBe("3");
    await rig.sync();
    expect(done).toEqual(["1: ok"]);
    broker.conn.send({ type: type("PUBACK"), messageId: sent[1].packet.messageId });
    broker.conn.send({ type: type("PUBACK"), messageId: third.packet.messageId });
    await rig.sync();
    expect(done).toEqual(["1: ok", "2: ok", "3: ok"]);
  });

  // publish() to the topic of the last publish takes a short way that reads neither the queue nor the
  // window (the topic it remembers is cleared when either holds calls back): these are the ways a call
  // to that same topic could have overtaken what waits.
  it("a QoS 0 publish to the last topic waits while QoS 1 publishes fill the window, and goes after them", async () => {
    const { broker } = rig;
    broker.script = (r) => r.name !== "PUBLISH" && broker.respond(r);
    const dev = await rig.connected({ inflight: 2 });
    const done: string[] = [];
    dev.client.publish("w", "1", { qos: 1 }, recorder(done, "1"));
    dev.client.publish("w", "2", { qos: 1 }, recorder(done, "2"));
    dev.client.publish("w", "3", { qos: 1 }, recorder(done, "3"));
    dev.client.publish("w", "4", { qos: 0 }, recorder(done, "4"));
    await broker.next("PUBLISH");
    await rig.sync();
    const sent = broker.seen("PUBLISH");
    expect(sent.map((r) => r.packet.payload)).toEqual(["1", "2"]);
    expect(done).toEqual([]);

    broker.conn.send({ type: type("PUBACK"), messageId: sent[0].packet.messageId });
    await broker.next("PUBLISH", sent[1].index + 1);
    await rig.sync();
    // "3" took the freed slot; "4" waits behind it for the next one
    expect(broker.seen("PUBLISH").map((r) => r.packet.payload)).toEqual(["1", "2", "3"]);
    broker.conn.send({ type: type("PUBACK"), messageId: sent[1].packet.messageId });
    await broker.next("PUBLISH", broker.seen("PUBLISH")[2].index + 1);
    await rig.sync();
    expect(broker.seen("PUBLISH").map((r) => r.packet.payload)).toEqual(["1", "2", "3", "4"]);
    expect(done).toEqual(["1: ok", "2: ok", "4: ok"]);
  });

  it("a publish to the last topic waits while a SUBSCRIBE holds the window's last slot", async () => {
    const { broker } = rig;
    broker.script = (r) => r.name !== "SUBSCRIBE" && broker.respond(r); // SUBACK when the test says
    const dev = await rig.connected({ inflight: 1 });
    const done: string[] = [];
    dev.client.publish("w", "before", { qos: 0 }, recorder(done, "before"));
    dev.client.subscribe("s", { qos: 0 }, recorder(done, "subscribe"));
    dev.client.publish("w", "after", { qos: 0 }, recorder(done, "after"));
    const subscribe = await broker.next("SUBSCRIBE");
    await rig.sync();
    expect(broker.seen("PUBLISH").map((r) => r.packet.payload)).toEqual(["before"]);
    expect(done).toEqual(["before: ok"]);

    broker.conn.send({ type: type("SUBACK"), messageId: subscribe.packet.messageId, granted: [0] });
    await broker.next("PUBLISH", subscribe.index + 1);
    await rig.sync();
    expect(broker.seen("PUBLISH").map((r) => r.packet.payload)).toEqual(["before", "after"]);
    expect(done).toEqual(["before: ok", "subscribe: ok", "after: ok"]);
  });

  it("a publish made in a replayed call's callback goes behind the calls still queued, even to the last topic", async () => {
    const { broker } = rig;
    broker.script = (r) => r.name !== "CONNECT" && broker.respond(r); // CONNACK when the test says
    const dev = rig.connect({});
    const connect = await broker.next("CONNECT");
    const done: string[] = [];
    dev.client.publish("w", "1", { qos: 0 }, (err) => {
      recorder(done, "1")(err);
      dev.client.publish("w", "from 1's callback", { qos: 0 }, recorder(done, "from 1's callback"));
    });
    dev.client.publish("w", "2", { qos: 0 }, recorder(done, "2"));
    dev.client.publish("w", "3", { qos: 0 }, recorder(done, "3"));
    connect.conn.send({ type: type("CONNACK"), sessionPresent: false, returnCode: 0 });
    await dev.next("connect");
    await broker.next("PUBLISH");
    await rig.sync();
    expect(broker.seen("PUBLISH").map((r) => r.packet.payload)).toEqual(["1", "2", "3", "from 1's callback"]);
  });
});

describe("end()", () => {
  /** A connected client with one QoS 1 publish in flight (no PUBACK yet) and one waiting behind it. */
  async function busy(done: string[]) {
    const { broker } = rig;
    broker.script = (r) => r.name !== "PUBLISH" && broker.respond(r);
    const dev = await rig.connected({ inflight: 1, reconnectPeriod: 1_000 });
    dev.client.publish("e", "in flight", { qos: 1 }, recorder(done, "in flight"));
    dev.client.publish("e", "queued", { qos: 1 }, recorder(done, "queued"));
    const inFlight = await broker.next("PUBLISH");
    return { dev, inFlight, conn: broker.conn };
  }

  /** Time passes for minutes: no reconnect, no second "end" or callback. */
  async function staysEnded(): Promise<void> {
    rig.clock.tick(300_000);
    await rig.runtime.settle();
    expect(rig.broker.connections).toHaveLength(1);
    expect(rig.runtime.timerCount).toBe(0);
  }

  it("graceful: waits for the in-flight PUBACK, then sends DISCONNECT and closes; queued work fails; end once", async () => {
    const done: string[] = [];
    const { dev, inFlight, conn } = await busy(done);
    const ended: number[] = [];
    dev.client.end(false, () => ended.push(rig.clock.now));
    expect(done).toEqual(["queued: client ended"]);
    await rig.sync();
    expect(rig.broker.seen("DISCONNECT")).toEqual([]);
    expect(conn.closedAt).toBeUndefined();

    conn.send({ type: type("PUBACK"), messageId: inFlight.packet.messageId });
    await rig.broker.next("DISCONNECT");
    await conn.closed;
    await dev.next("end");
    await rig.runtime.settle();
    expect(rig.broker.seen(() => true, inFlight.index).map(brief)).toEqual([`PUBLISH e ${inFlight.packet.messageId}`, "DISCONNECT"]);
    expect(done).toEqual(["queued: client ended", "in flight: ok"]);
    expect(ended).toHaveLength(1);
    await staysEnded();
    expect(dev.of("end")).toHaveLength(1);
    expect(ended).toHaveLength(1);
    expect(dev.client.connected).toBe(false);
  });

  it("forced: closes at once without DISCONNECT; in-flight and queued callbacks get Errors; end once", async () => {
    const done: string[] = [];
    const { dev, conn } = await busy(done);
    const ended: number[] = [];
    dev.client.end(true, () => ended.push(rig.clock.now));
    await conn.closed;
    await dev.next("end");
    await rig.runtime.settle();
    expect(rig.broker.seen("DISCONNECT")).toEqual([]);
    expect(done.sort()).toEqual(["in flight: client ended", "queued: client ended"]);
    expect(ended).toHaveLength(1);
    await staysEnded();
    expect(dev.of("end")).toHaveLength(1);
    expect(ended).toHaveLength(1);
  });

  it("while waiting to reconnect: ends at once and stops reconnecting", async () => {
    const dev = await rig.connected({ reconnectPeriod: 1_000 });
    const done: string[] = [];
    rig.broker.conn.drop();
    await dev.next("close");
    dev.client.publish("e", "offline", { qos: 1 }, recorder(done, "offline"));
    const ended: number[] = [];
    // end(callback): the callback in place of `force`, as the API allows
    (dev.client as unknown as { end(callback: () => void): void }).end(() => ended.push(rig.clock.now));
    await dev.next("end");
    await rig.runtime.settle();
    expect(done).toEqual(["offline: client ended"]);
    expect(ended).toHaveLength(1);
    await staysEnded();
    expect(dev.of("reconnect")).toEqual([]);
    expect(dev.of("end")).toHaveLength(1);
  });

  it("publishing after end() fails at once with client ended", async () => {
    const dev = await rig.connected();
    dev.client.end();
    await dev.next("end");
    const done: string[] = [];
    dev.client.publish("late", "x", { qos: 0 }, recorder(done, "publish"));
    dev.client.subscribe("late", { qos: 0 }, recorder(done, "subscribe"));
    expect(done).toEqual(["publish: client ended", "subscribe: client ended"]);
  });
});

describe("argument errors", () => {
  const cases: { call: string; run: (c: any, cb: (err?: Error | null) => void) => void; error: RegExp }[] = [
    { call: 'publish("a/+")', run: (c, cb) => c.publish("a/+", "x", { qos: 0 }, cb), error: /invalid topic name/i },
    { call: 'publish("a/#", qos 1)', run: (c, cb) => c.publish("a/#", "x", { qos: 1 }, cb), error: /invalid topic name/i },
    { call: 'publish("")', run: (c, cb) => c.publish("", "x", { qos: 0 }, cb), error: /invalid topic/i },
    { call: 'publish("a\\0b")', run: (c, cb) => c.publish("a\0b", "x", { qos: 0 }, cb), error: /invalid topic/i },
    { call: "publish(qos 3)", run: (c, cb) => c.publish("a", "x", { qos: 3 }, cb), error: /invalid QoS/i },
    { call: "publish(qos -1)", run: (c, cb) => c.publish("a", "x", { qos: -1 }, cb), error: /invalid QoS/i },
    { call: 'subscribe("a/#/b")', run: (c, cb) => c.subscribe("a/#/b", { qos: 0 }, cb), error: /invalid topic filter/i },
    { call: 'subscribe("a+")', run: (c, cb) => c.subscribe("a+", { qos: 0 }, cb), error: /invalid topic filter/i },
    { call: 'subscribe(["ok", "b#"])', run: (c, cb) => c.subscribe(["ok", "b#"], { qos: 0 }, cb), error: /invalid topic filter/i },
    { call: "subscribe(qos 3)", run: (c, cb) => c.subscribe("a", { qos: 3 }, cb), error: /invalid QoS/i },
    { call: 'unsubscribe("a/#b")', run: (c, cb) => c.unsubscribe("a/#b", cb), error: /invalid topic filter/i },
    { call: 'unsubscribe("")', run: (c, cb) => c.unsubscribe("", cb), error: /invalid topic/i },
  ];

  it("reach the callback at once with an Error that names the problem, and send nothing", async () => {
    const dev = await rig.connected();
    const from = rig.broker.mark();
    for (const c of cases) {
      const errors: (Error | null | undefined)[] = [];
      c.run(dev.client, (err) => errors.push(err));
      expect(errors, c.call).toHaveLength(1);
      expect(errors[0]?.message, c.call).toMatch(c.error);
    }
    await rig.sync();
    expect(rig.broker.seen(() => true, from)).toEqual([]);
    expect(dev.client.connected).toBe(true);
    expect(dev.errors()).toEqual([]);
  });

  it("while offline they fail at once too, and do not take a place in the queue", async () => {
    const { broker } = rig;
    broker.script = (r) => r.name !== "CONNECT" && broker.respond(r);
    const dev = rig.connect({ queueSize: 1 });
    const connect = await broker.next("CONNECT");
    const errors: string[] = [];
    for (const c of cases) c.run(dev.client, (err) => errors.push(`${c.call}: ${err ? err.message : "ok"}`));
    expect(errors).toHaveLength(cases.length);
    for (const [i, c] of cases.entries()) expect(errors[i]).toMatch(c.error);
    const done: string[] = [];
    dev.client.publish("fine", "x", { qos: 1 }, recorder(done, "fine"));
    expect(done).toEqual([]);
    connect.conn.send({ type: type("CONNACK"), sessionPresent: false, returnCode: 0 });
    await broker.next("PUBLISH");
    await rig.sync();
    expect(done).toEqual(["fine: ok"]);
    expect(broker.seen("PUBLISH").map((r) => r.packet.topic)).toEqual(["fine"]);
  });
});

describe("no network", () => {
  // Espruino 2v29 throws from net.connect when it cannot create a socket at all (measured on the
  // interpreter: "Unable to create socket" for a refused port); the simulator throws while offline.
  it("a connect that throws is an error and a reconnect attempt later, not a dead client", async () => {
    const net = netState(rig.runtime);
    net.online = false;
    const dev = rig.connect({ reconnectPeriod: 1_000 });
    rig.clock.tick(1); // the failure is reported on the next tick
    await rig.runtime.settle();
    const error = await dev.next("error");
    expect(error.args[0].message).toMatch(/Not connected to the internet/);
    await dev.next("close");
    net.online = true;
    await rig.nextReconnect(dev);
    await dev.next("connect");
    expect(rig.runtime.logs.filter((l) => l.includes("Uncaught"))).toEqual([]);
  });
});
