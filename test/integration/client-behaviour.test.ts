// Behaviour of the BUILT client (dist/mqtt.js in the host simulator) against a scripted broker, on a
// fake clock: keepalive, timeouts, reconnect backoff, redelivery, QoS 2 exactly once, resubscribe,
// malformed input, queues, end() and argument errors. See test/helpers/scripted-broker.ts.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Device, type DeviceEvent, Rig } from "../helpers/fake-time-device.ts";
import { type Received, type } from "../helpers/scripted-broker.ts";

let rig: Rig;
beforeEach(async () => {
  rig = await Rig.start();
});
afterEach(async (context) => {
  if (context.task.result?.state === "fail") console.log(rig.transcript());
  await rig.dispose();
});

const noop = () => {};

describe("keepalive", () => {
  it("pings only after keepalive seconds with nothing sent, again after each PINGRESP, later after a publish", async () => {
    const { clock, broker } = rig;
    const dev = rig.connect({ keepalive: 10 });
    let last: Received = await broker.next("CONNECT");
    await dev.next("connect");

    // a publish every 5 s for 30 s: never 10 s of silence, so no PINGREQ
    for (let i = 0; i < 6; i++) {
      clock.tick(5_000);
      const from = broker.mark();
      dev.client.publish("t", `x${i}`, { qos: 0 }, noop);
      last = await broker.next("PUBLISH", from);
    }
    expect(last.at).toBe(30_000);
    expect(broker.seen("PINGREQ")).toEqual([]);

    // nothing sent for 10 s: PINGREQ exactly then, not a millisecond earlier
    clock.tick(9_999);
    await rig.sync();
    expect(broker.seen("PINGREQ")).toEqual([]);
    clock.tick(1);
    const ping1 = await broker.next("PINGREQ");
    expect(ping1.at).toBe(last.at + 10_000);

    // the broker answered PINGRESP: the same schedule again
    await rig.sync();
    clock.tick(9_999);
    await rig.sync();
    expect(broker.seen("PINGREQ")).toHaveLength(1);
    clock.tick(1);
    const ping2 = await broker.next("PINGREQ", ping1.index + 1);
    expect(ping2.at).toBe(ping1.at + 10_000);
    await rig.sync();

    // a publish 6 s later postpones the next PINGREQ to 10 s after the publish
    clock.tick(6_000);
    let from = broker.mark();
    dev.client.publish("t", "late", { qos: 1 }, noop);
    const pub = await broker.next("PUBLISH", from);
    await rig.sync(); // PUBACK handled
    clock.tick(4_000); // when the PINGREQ would have come without the publish
    await rig.sync();
    expect(broker.seen("PINGREQ", from)).toEqual([]);
    clock.tick(5_999);
    await rig.sync();
    expect(broker.seen("PINGREQ", from)).toEqual([]);
    clock.tick(1);
    const ping3 = await broker.next("PINGREQ", from);
    expect(ping3.at).toBe(pub.at + 10_000);
    expect(dev.errors()).toEqual([]);
    expect(broker.connections).toHaveLength(1);
  });

  it("closes with a keepalive timeout error when PINGRESP does not come, then reconnects", async () => {
    const { clock, broker } = rig;
    broker.script = (r) => r.name !== "PINGREQ" && broker.respond(r);
    const dev = rig.connect({ keepalive: 10, reconnectPeriod: 1_000 });
    await dev.next("connect");
    clock.tick(10_000);
    const ping = await broker.next("PINGREQ");
    await rig.sync();
    const from = dev.mark();
    clock.tick(10_000);
    const error = await dev.next("error", from);
    expect(error.args[0].message).toMatch(/keepalive|ping/i);
    expect(error.at).toBeGreaterThan(ping.at);
    expect(error.at).toBeLessThanOrEqual(ping.at + 10_000);
    const close = await dev.next("close", from);
    const offline = await dev.next("offline", from);
    expect(close.index).toBeGreaterThan(error.index);
    expect(offline.index).toBeGreaterThan(close.index);
    expect(dev.client.connected).toBe(false);
    await broker.connections[0].closed;

    // the first reconnect comes within reconnectPeriod
    broker.script = (r) => broker.respond(r);
    clock.tick(1_000);
    const again = await broker.next("CONNECT", ping.index);
    expect(again.conn.id).toBe(2);
    await dev.next("reconnect", from);
    await dev.next("connect", from);
    expect(dev.client.connected).toBe(true);
  });
});

/**
 * Fires device timers in time order until the client starts a reconnect attempt, and returns its
 * "reconnect" event. `clock.next()` stops exactly at each timer, so event times are exact.
 */
async function nextReconnect(dev: Device, from: number): Promise<DeviceEvent> {
  for (let timers = 0; timers < 10 && rig.clock.countTimers() > 0; timers++) {
    rig.clock.next();
    await rig.runtime.settle();
    const attempt = dev.of("reconnect", from)[0];
    if (attempt) return attempt;
  }
  throw new Error(`the client made no reconnect attempt\n${rig.transcript()}`);
}

describe("reconnect backoff", () => {
  const refusals = [
    { how: "closes the connection at once", returnCode: 0 },
    { how: "answers CONNACK 4 (bad username or password)", returnCode: 4, message: /bad user ?name or password/i },
    { how: "answers CONNACK 5 (not authorized)", returnCode: 5, message: /not authori[sz]ed/i },
  ];
  for (const refusal of refusals) {
    it(`when the broker ${refusal.how}: delays double from reconnectPeriod with jitter, up to 60 s; a CONNACK 0 resets them`, async () => {
      const { broker } = rig;
      if (refusal.returnCode) broker.returnCode = refusal.returnCode;
      else broker.onConnection = (conn) => conn.drop();
      const dev = rig.connect({ reconnectPeriod: 1_000 });
      const delays: number[] = [];
      let from = 0;
      for (let attempt = 0; attempt < 9; attempt++) {
        const close = await dev.next("close", from);
        from = close.index + 1;
        if (attempt === 8) {
          // the broker lets the last attempt in
          broker.returnCode = 0;
          broker.onConnection = undefined;
        }
        const reconnect = await nextReconnect(dev, from);
        const conn = await broker.connection(attempt + 2);
        expect(conn.at).toBe(reconnect.at);
        delays.push(reconnect.at - close.at);
      }
      const ceilings = [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000];
      delays.forEach((delay, i) => {
        expect(delay, `delay ${i + 1} of ${delays.join(", ")}`).toBeGreaterThanOrEqual(ceilings[i] / 2);
        expect(delay, `delay ${i + 1} of ${delays.join(", ")}`).toBeLessThanOrEqual(ceilings[i]);
      });
      // the jitter spreads the delays: not every one sits on a bound
      expect(delays.some((delay, i) => delay !== ceilings[i] && delay !== ceilings[i] / 2)).toBe(true);
      const connect = await dev.next("connect", from);
      expect(dev.of("connect")).toHaveLength(1);
      if (refusal.returnCode) {
        const errors = dev.errors();
        expect(errors).toHaveLength(9);
        for (const err of errors) {
          expect(err.code).toBe(refusal.returnCode);
          expect(err.message).toMatch(refusal.message!);
        }
      }

      // connected: the next drop is followed by a reconnect within reconnectPeriod again
      broker.conn.drop();
      const close = await dev.next("close", connect.index);
      const reconnect = await nextReconnect(dev, close.index);
      expect(reconnect.at - close.at).toBeGreaterThanOrEqual(500);
      expect(reconnect.at - close.at).toBeLessThanOrEqual(1_000);
      await dev.next("connect", reconnect.index);
    });
  }
});

/** "PUBLISH a 3 dup": type, topic, packet id and DUP of a received packet. */
function brief(r: Received): string {
  return [r.name, r.packet.topic, r.packet.messageId, r.packet.dup && "dup"].filter((part) => part !== undefined && part !== false).join(" ");
}

/** A callback that records `name` and its error (null when it succeeded) in `log` each time it is called. */
function recorder(log: string[], name: string) {
  return (err?: Error | null) => log.push(`${name}: ${err ? err.message : "ok"}`);
}

describe("redelivery after a reconnect", () => {
  it("resends PUBLISH a (DUP), PUBREL b, PUBLISH c (DUP) in that order before new work; callbacks fire once each when their flows complete", async () => {
    const { broker } = rig;
    // only "b" gets its PUBREC, and its PUBREL no PUBCOMP
    broker.script = (r) => {
      if (r.name === "PUBLISH" && r.packet.topic === "b") r.conn.send({ type: type("PUBREC"), messageId: r.packet.messageId });
      else if (r.name !== "PUBLISH" && r.name !== "PUBREL") broker.respond(r);
    };
    const dev = await rig.connected({ clean: false, reconnectPeriod: 1_000 });
    const done: string[] = [];
    dev.client.publish("a", "1", { qos: 1 }, recorder(done, "a"));
    dev.client.publish("b", "2", { qos: 2 }, recorder(done, "b"));
    dev.client.publish("c", "3", { qos: 2 }, recorder(done, "c"));
    const [a, b, c] = await Promise.all(["a", "b", "c"].map((t) => broker.next((r) => r.name === "PUBLISH" && r.packet.topic === t)));
    const ids = { a: a.packet.messageId, b: b.packet.messageId, c: c.packet.messageId };
    expect(new Set(Object.values(ids)).size).toBe(3);
    await broker.next((r) => r.name === "PUBREL" && r.packet.messageId === ids.b);

    broker.conn.drop();
    const close = await dev.next("close");
    dev.client.publish("d", "4", { qos: 1 }, recorder(done, "d")); // offline: waits for the connection
    broker.sessionPresent = true;
    broker.script = (r) => r.name === "CONNECT" && broker.respond(r);
    const from = broker.mark();
    await nextReconnect(dev, close.index);
    await dev.next("connect", close.index);
    await broker.next((r) => r.name === "PUBLISH" && r.packet.topic === "d", from);
    await rig.sync();
    const resent = broker.seen(() => true, from).map(brief);
    expect(resent).toEqual(["CONNECT", `PUBLISH a ${ids.a} dup`, `PUBREL ${ids.b}`, `PUBLISH c ${ids.c} dup`, `PUBLISH d ${broker.seen("PUBLISH", from)[2].packet.messageId}`]);
    expect(broker.seen("PUBLISH", from).map((r) => r.packet.payload)).toEqual(["1", "3", "4"]);
    expect(done).toEqual([]);

    const conn = broker.conn;
    conn.send({ type: type("PUBACK"), messageId: ids.a });
    conn.send({ type: type("PUBCOMP"), messageId: ids.b });
    conn.send({ type: type("PUBREC"), messageId: ids.c });
    await broker.next((r) => r.name === "PUBREL" && r.packet.messageId === ids.c, from);
    await rig.sync();
    expect(done).toEqual(["a: ok", "b: ok"]);
    conn.send({ type: type("PUBCOMP"), messageId: ids.c });
    conn.send({ type: type("PUBACK"), messageId: broker.seen("PUBLISH", from)[2].packet.messageId });
    await rig.sync();
    // duplicates of the acknowledgements change nothing
    conn.send({ type: type("PUBACK"), messageId: ids.a });
    conn.send({ type: type("PUBCOMP"), messageId: ids.b });
    await rig.sync();
    expect(done).toEqual(["a: ok", "b: ok", "c: ok", "d: ok"]);
    expect(dev.errors(close.index)).toEqual([]);
  });
});
