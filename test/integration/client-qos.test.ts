// Behaviour of the BUILT client against a scripted broker on a fake clock: QoS flows across
// reconnects. Redelivery order [MQTT-4.4.0-1], incoming QoS 2 exactly once [MQTT-4.3.3-2], QoS 1
// acknowledgement, and restoring subscriptions when the broker kept no session.
import { beforeEach, describe, expect, it } from "vitest";
import { brief, type Rig, recorder, useRig } from "../helpers/fake-time-device.ts";
import { type } from "../helpers/scripted-broker.ts";

const rigOf = useRig();
let rig: Rig;
beforeEach(() => {
  rig = rigOf();
});

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
    await rig.nextReconnect(dev, close.index);
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

describe("incoming messages", () => {
  it("QoS 2: a resend with DUP before PUBREL is answered with PUBREC but delivered once; PUBREL gets PUBCOMP", async () => {
    const { broker } = rig;
    const dev = await rig.connected();
    const conn = broker.conn;
    const publish = { type: type("PUBLISH"), topic: "in/two", payload: "once", qos: 2, messageId: 5 };
    conn.send(publish);
    const rec1 = await broker.next((r) => r.name === "PUBREC" && r.packet.messageId === 5);
    conn.send({ ...publish, dup: true });
    await broker.next((r) => r.name === "PUBREC" && r.packet.messageId === 5, rec1.index + 1);
    await rig.sync();
    expect(dev.messages().map((m) => [m.topic, m.payload, m.packet.qos, m.packet.messageId])).toEqual([["in/two", "once", 2, 5]]);
    expect(broker.seen("PUBCOMP")).toEqual([]);

    conn.send({ type: type("PUBREL"), messageId: 5 });
    await broker.next((r) => r.name === "PUBCOMP" && r.packet.messageId === 5);
    // released: id 5 is free again, and a new message under it is delivered
    conn.send({ ...publish, payload: "again" });
    await broker.next("PUBREC", broker.seen("PUBCOMP")[0].index);
    await rig.sync();
    expect(dev.messages().map((m) => m.payload)).toEqual(["once", "again"]);
    expect(broker.seen(() => true, 1).map(brief)).toEqual(["PUBREC 5", "PUBREC 5", "PUBCOMP 5", "PUBREC 5"]);
  });

  it("QoS 2 across a reconnect: with the session kept, a resend is not delivered again; without it, it is new", async () => {
    const { broker } = rig;
    const dev = await rig.connected({ clean: false, reconnectPeriod: 1_000 });
    const publish = { type: type("PUBLISH"), topic: "in/two", payload: "once", qos: 2, messageId: 9 };
    broker.conn.send(publish);
    await broker.next("PUBREC");
    await rig.sync();

    // the broker kept the session and resends before PUBREL: PUBREC again, no second delivery
    broker.sessionPresent = true;
    broker.conn.drop();
    let close = await dev.next("close");
    await rig.nextReconnect(dev, close.index);
    await dev.next("connect", close.index);
    let from = broker.mark();
    broker.conn.send({ ...publish, dup: true });
    await broker.next("PUBREC", from);
    broker.conn.send({ type: type("PUBREL"), messageId: 9 });
    await broker.next("PUBCOMP", from);
    await rig.sync();
    expect(dev.messages().map((m) => m.payload)).toEqual(["once"]);

    // a message under id 9 that was never released, then a broker without our session: it is new
    broker.conn.send({ ...publish, payload: "second" });
    await broker.next("PUBREC", from + 2);
    broker.sessionPresent = false;
    broker.conn.drop();
    close = await dev.next("close", close.index + 1);
    await rig.nextReconnect(dev, close.index);
    await dev.next("connect", close.index);
    from = broker.mark();
    broker.conn.send({ ...publish, payload: "third" });
    await broker.next("PUBREC", from);
    await rig.sync();
    expect(dev.messages().map((m) => m.payload)).toEqual(["once", "second", "third"]);
  });

  it("QoS 1: delivered and answered with PUBACK", async () => {
    const { broker } = rig;
    const dev = await rig.connected();
    broker.conn.send({ type: type("PUBLISH"), topic: "in/one", payload: "\x00\xff", qos: 1, messageId: 7, retain: true });
    await broker.next((r) => r.name === "PUBACK" && r.packet.messageId === 7);
    await rig.sync();
    expect(dev.messages().map((m) => [m.topic, m.payload, m.packet.qos, m.packet.retain])).toEqual([["in/one", "\x00\xff", 1, true]]);
  });
});

describe("subscriptions across reconnects", () => {
  it("are subscribed again when the broker has no session (sessionPresent=0), not when it has one", async () => {
    const { broker } = rig;
    broker.script = (r) =>
      r.name === "SUBSCRIBE"
        ? r.conn.send({ type: type("SUBACK"), messageId: r.packet.messageId, granted: r.packet.subscriptions.map((s: { topic: string; qos: number }) => (s.topic === "denied" ? 128 : s.qos)) })
        : broker.respond(r);
    const dev = await rig.connected({ clean: false, reconnectPeriod: 1_000 });
    const granted: unknown[] = [];
    dev.client.subscribe(["a/+", "b/#"], { qos: 1 }, (err, g) => granted.push(err ?? g));
    dev.client.subscribe("denied", { qos: 2 }, (err, g) => granted.push(err ?? g));
    dev.client.subscribe("gone", { qos: 0 }, (err, g) => granted.push(err ?? g));
    await broker.next((r) => r.name === "SUBSCRIBE" && r.packet.subscriptions[0].topic === "gone");
    await rig.sync();
    await new Promise<void>((resolve, reject) => dev.client.unsubscribe("gone", (err) => (err ? reject(err) : resolve())));
    expect(granted).toEqual([
      [{ topic: "a/+", qos: 1 }, { topic: "b/#", qos: 1 }],
      [{ topic: "denied", qos: 128 }],
      [{ topic: "gone", qos: 0 }],
    ]);

    // no session at the broker: the client restores what it has, as it had it
    let from = broker.mark();
    broker.conn.drop();
    let close = await dev.next("close");
    await rig.nextReconnect(dev, close.index);
    await dev.next("connect", close.index);
    const resubscribe = await broker.next("SUBSCRIBE", from);
    await rig.sync();
    expect(resubscribe.packet.subscriptions).toEqual([{ topic: "a/+", qos: 1 }, { topic: "b/#", qos: 1 }]);
    // (that it is sent once, not twice, is in client-bugs.test.ts)
    expect(broker.seen((r) => r.name !== "SUBSCRIBE", from).map(brief)).toEqual(["CONNECT"]);
    expect(broker.seen("SUBSCRIBE", from).every((r) => r.bytes === resubscribe.bytes)).toBe(true);
    expect(dev.errors(close.index)).toEqual([]);
    expect(granted).toHaveLength(3);

    // the broker kept the session: nothing to restore
    broker.sessionPresent = true;
    from = broker.mark();
    broker.conn.drop();
    close = await dev.next("close", close.index + 1);
    await rig.nextReconnect(dev, close.index);
    await dev.next("connect", close.index);
    await rig.sync();
    expect(broker.seen(() => true, from).map((r) => r.name)).toEqual(["CONNECT"]);
  });
});
