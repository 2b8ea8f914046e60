// Behaviour of the BUILT client (dist/mqtt.js in the host simulator) against a scripted broker, on a
// fake clock (test/helpers/scripted-broker.ts, fake-time-device.ts): the connection's life. Keepalive,
// ping and connect timeouts, reconnect backoff. Siblings: client-qos, client-input, client-api.
import { beforeEach, describe, expect, it } from "vitest";
import { type Rig, useRig } from "../helpers/fake-time-device.ts";
import { closedPort, type Received, startScriptedBroker } from "../helpers/scripted-broker.ts";

const rigOf = useRig();
let rig: Rig;
beforeEach(() => {
  rig = rigOf();
});

const noop = () => {};

describe("keepalive", () => {
  // Issue 7 (K4) changed this: a PINGREQ used to go only when nothing had been *sent* for the keepalive
  // period, so a node publishing often never noticed that its broker was gone. Now what was *received*
  // decides (and, [MQTT-3.1.2-23], what was sent: the broker must hear from the client in time too).
  it("pings when nothing was received, or nothing sent, for the keepalive period, however often the client publishes", async () => {
    const { clock, broker } = rig;
    const dev = rig.connect({ keepalive: 10 });
    await broker.next("CONNECT");
    await dev.next("connect");

    // a QoS 0 publish every 5 s for 30 s gets no answer: a PINGREQ every 10 s all the same, answered
    for (let i = 1; i <= 6; i++) {
      clock.tick(5_000);
      const from = broker.mark();
      dev.client.publish("t", `x${i}`, { qos: 0 }, noop);
      await broker.next("PUBLISH", from);
      if (i % 2 === 0) {
        await broker.next("PINGREQ", from);
        await rig.sync(); // the PINGRESP has been handled
      }
    }
    expect(broker.seen("PINGREQ").map((r) => r.at)).toEqual([10_000, 20_000, 30_000]);

    // a QoS 1 publish every 5 s: each PUBACK is news from the broker, so no PINGREQ
    let last: Received | undefined;
    let from = broker.mark();
    for (let i = 0; i < 6; i++) {
      clock.tick(5_000);
      const mark = broker.mark();
      await new Promise((resolve) => dev.client.publish("t", `y${i}`, { qos: 1 }, resolve));
      last = await broker.next("PUBLISH", mark);
    }
    expect(last!.at).toBe(60_000);
    expect(broker.seen("PINGREQ", from)).toEqual([]);

    // nothing sent or received for 10 s: PINGREQ exactly then, not a millisecond earlier
    clock.tick(9_999);
    await rig.runtime.settle();
    expect(broker.seen("PINGREQ", from)).toEqual([]);
    clock.tick(1);
    const ping = await broker.next("PINGREQ", from);
    expect(ping.at).toBe(last!.at + 10_000);
    await rig.sync();

    // the broker talks (a QoS 0 message every 5 s) and the client has nothing to say: a PINGREQ every
    // 10 s, so the broker hears from it within its keepalive
    from = broker.mark();
    for (let i = 1; i <= 4; i++) {
      clock.tick(5_000);
      const mark = broker.mark();
      if (i % 2 === 0) await broker.next("PINGREQ", mark);
      await rig.sync();
    }
    expect(broker.seen("PINGREQ", from).map((r) => r.at)).toEqual([ping.at + 10_000, ping.at + 20_000]);
    expect(dev.errors()).toEqual([]);
    expect(broker.connections).toHaveLength(1);
  });

  it("keepalive 0: never pings, and no timer runs once connected", async () => {
    const { clock, broker } = rig;
    const dev = await rig.connected({ keepalive: 0 });
    expect(broker.seen("CONNECT")[0].packet.keepalive).toBe(0);
    clock.tick(3_600_000);
    await rig.sync();
    expect(broker.seen("PINGREQ")).toEqual([]);
    expect(rig.runtime.timerCount).toBe(0);
    expect(dev.client.connected).toBe(true);
  });

  it("closes with a keepalive timeout error when PINGRESP does not come, then reconnects", async () => {
    const { clock, broker } = rig;
    broker.script = (r) => r.name !== "PINGREQ" && broker.respond(r);
    const dev = rig.connect({ keepalive: 10, reconnectPeriod: 1_000 });
    await dev.next("connect");
    clock.tick(10_000);
    const ping = await broker.next("PINGREQ");
    // (no rig.sync() here: a message from the broker would show that the link is alive)
    await rig.runtime.settle();
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
    const reconnect = await rig.nextReconnect(dev, from);
    expect(reconnect.at - close.at).toBeLessThanOrEqual(1_000);
    const again = await broker.next("CONNECT", ping.index);
    expect(again.conn.id).toBe(2);
    expect(again.at).toBe(reconnect.at);
    await dev.next("connect", from);
    expect(dev.client.connected).toBe(true);

    // keepalive runs afresh on the new connection: a PINGREQ 10 s after its CONNECT, answered
    clock.tick(10_000);
    const ping2 = await broker.next("PINGREQ", again.index);
    expect(ping2.at).toBe(again.at + 10_000);
    await rig.sync();
    clock.tick(10_000);
    await broker.next("PINGREQ", ping2.index + 1);
    await rig.sync();
    expect(dev.errors(from)).toHaveLength(1);
  });
});

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
        const reconnect = await rig.nextReconnect(dev, from);
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
      const reconnect = await rig.nextReconnect(dev, close.index);
      expect(reconnect.at - close.at).toBeGreaterThanOrEqual(500);
      expect(reconnect.at - close.at).toBeLessThanOrEqual(1_000);
      await dev.next("connect", reconnect.index);
    });
  }
});

describe("broker down", () => {
  it("connection refused: an error, then attempts with growing delays until the broker listens, then connected", async () => {
    const port = await closedPort();
    const dev = rig.connect({ reconnectPeriod: 1_000 }, `mqtt://127.0.0.1:${port}`);
    let from = 0;
    for (const ceiling of [1_000, 2_000, 4_000]) {
      const close = await dev.next("close", from);
      const reconnect = await rig.nextReconnect(dev, close.index);
      expect(reconnect.at - close.at).toBeGreaterThanOrEqual(ceiling / 2);
      expect(reconnect.at - close.at).toBeLessThanOrEqual(ceiling);
      from = reconnect.index + 1;
    }
    expect(dev.errors().length).toBeGreaterThanOrEqual(3);
    expect(dev.of("offline")).toEqual([]);

    const close = await dev.next("close", from);
    const broker = await startScriptedBroker({ now: () => rig.clock.now }, port);
    try {
      await rig.nextReconnect(dev, close.index);
      await dev.next("connect", close.index);
      expect((await broker.next("CONNECT")).packet.clientId).toBe("dev1");
    } finally {
      await broker.close();
    }
  });
});

describe("connect timeout", () => {
  it("closes with a connect timeout error when the broker accepts TCP but sends no CONNACK, and tries again", async () => {
    const { clock, broker } = rig;
    broker.script = () => {};
    const dev = rig.connect({ connectTimeout: 5_000, reconnectPeriod: 1_000 });
    const connect1 = await broker.next("CONNECT");
    clock.tick(4_999);
    // (no rig.sync() before CONNACK: a PUBLISH before it is a protocol error [MQTT-3.2.0-1])
    await rig.runtime.settle();
    expect(dev.errors()).toEqual([]);
    clock.tick(1);
    const error = await dev.next("error");
    expect(error.args[0].message).toMatch(/connect timeout/i);
    expect(error.at).toBe(connect1.conn.at + 5_000);
    const close = await dev.next("close");
    await connect1.conn.closed;
    expect(dev.of("offline")).toEqual([]); // it never was online

    // the retry times out the same way; the one after it gets in
    const retry = await rig.nextReconnect(dev, close.index);
    const connect2 = await broker.next("CONNECT", connect1.index + 1);
    expect(connect2.conn.id).toBe(2);
    expect(retry.at - close.at).toBeLessThanOrEqual(1_000);
    clock.tick(5_000);
    const error2 = await dev.next("error", retry.index);
    expect(error2.args[0].message).toMatch(/connect timeout/i);
    expect(error2.at).toBe(connect2.conn.at + 5_000);
    const close2 = await dev.next("close", retry.index);
    broker.script = (r) => broker.respond(r);
    await rig.nextReconnect(dev, close2.index);
    await dev.next("connect", close2.index);
    // connected: the old timeout does not fire later
    clock.tick(60_000);
    await rig.sync();
    expect(dev.errors(close2.index)).toEqual([]);
    expect(dev.client.connected).toBe(true);
  });
});

describe("CONNECT", () => {
  it("carries the client id, keepalive, clean flag, credentials and will the options give", async () => {
    const { broker } = rig;
    const options = {
      clientId: "node-7",
      keepalive: 30,
      clean: false,
      username: "user",
      password: "pa55",
      will: { topic: "nodes/node-7/status", payload: "offline", qos: 1, retain: true },
    };
    await rig.connected({ ...options, will: { ...options.will } }); // the client may annotate its options
    expect(broker.seen("CONNECT")[0].packet).toMatchObject(options);
  });
});
