// Regression tests for the faults of issue 7: users of other MQTT clients (MQTT.js, Paho, esp-mqtt,
// PubSubClient, tinyMQTT, mqtt_as, ...) reported them, and replaying the reports against Wisp found
// these. Each is one example of a kind (K1..K5); the tests run the BUILT client (dist/mqtt.js) against
// a scripted broker on a fake clock, and each comment says what the client did before the fix.
import { beforeEach, describe, expect, it } from "vitest";
import { encode } from "../../firmware/mqtt/codec-server.ts";
import { netState } from "../../host-sim/net.ts";
import { type Rig, recorder, useRig } from "../helpers/fake-time-device.ts";
import { type Received, type } from "../helpers/scripted-broker.ts";

const rigOf = useRig();
let rig: Rig;
beforeEach(() => {
  rig = rigOf();
});

const noop = () => {};

/** What the device printed as uncaught (an exception out of a listener or timer). */
function uncaught(): string[] {
  return rig.runtime.logs.filter((line) => /Uncaught/.test(line));
}

/** Reconnect delays: from each "close" to the "reconnect" after it, for `attempts` attempts. */
async function reconnectDelays(dev: ReturnType<Rig["connect"]>, attempts: number): Promise<number[]> {
  const delays: number[] = [];
  let from = 0;
  for (let n = 0; n < attempts; n++) {
    const close = await dev.next("close", from);
    const reconnect = await rig.nextReconnect(dev, close.index + 1);
    delays.push(reconnect.at - close.at);
    from = reconnect.index + 1;
  }
  return delays;
}

describe("K1: every call's callback runs exactly once, in every state of the client", () => {
  // Before: with reconnectPeriod 0, calls made after the drop waited in the queue for a connection
  // that never came: no callback, ever, for up to queueSize of them.
  it("reconnectPeriod 0: once the broker drops the connection, publish, subscribe and unsubscribe fail at once", async () => {
    const { broker } = rig;
    broker.script = (r) => r.name !== "PUBLISH" && broker.respond(r); // no PUBACK: one in flight, one queued
    const dev = await rig.connected({ reconnectPeriod: 0, inflight: 1 });
    const done: string[] = [];
    dev.client.publish("t", "in flight", { qos: 1 }, recorder(done, "in flight"));
    dev.client.publish("t", "queued", { qos: 1 }, recorder(done, "queued"));
    await broker.next("PUBLISH");
    broker.conn.drop();
    await dev.next("close");
    await rig.runtime.settle();
    expect(done.sort()).toEqual(["in flight: connection closed", "queued: connection closed"]);

    dev.client.publish("t", "x", { qos: 1 }, recorder(done, "publish"));
    dev.client.subscribe("s", { qos: 1 }, recorder(done, "subscribe"));
    dev.client.unsubscribe("s", recorder(done, "unsubscribe"));
    expect(done.slice(2)).toEqual(["publish: connection closed", "subscribe: connection closed", "unsubscribe: connection closed"]);
    rig.clock.tick(60_000);
    await rig.runtime.settle();
    expect(done).toHaveLength(5);
    expect(broker.connections).toHaveLength(1);
    expect(rig.runtime.timerCount).toBe(0);
  });

  // Before: the failed net.connect was reported on a timer that end() did not stop: end's callback
  // ran twice, and the events were end, error, close, end.
  it("net.connect throws (no Wi-Fi), then end(cb): the callback once, and nothing after end", async () => {
    netState(rig.runtime).online = false;
    const dev = rig.connect({ reconnectPeriod: 1_000 });
    const ended: string[] = [];
    dev.client.end(false, () => ended.push("first"));
    await dev.next("end");
    rig.clock.tick(60_000);
    await rig.runtime.settle();
    expect(ended).toEqual(["first"]);
    expect(dev.events.map((e) => e.name)).toEqual(["end"]);

    // end() again once ended: its callback runs, and no second "end"
    dev.client.end(false, () => ended.push("again"));
    await rig.runtime.settle();
    expect(ended).toEqual(["first", "again"]);
    expect(dev.events.map((e) => e.name)).toEqual(["end"]);
    expect(rig.runtime.timerCount).toBe(0);
  });

  // Before: the keepalive timeout ended the socket but left the client "connected", so the publish
  // made by the error listener wrote to the ended socket: "This socket is closed" was thrown into
  // the application (Uncaught on the device), and the message went out later anyway.
  it("keepalive 5 s without PINGRESP: an error listener that publishes gets no exception, and the message goes once, after reconnecting", async () => {
    const { broker, clock } = rig;
    broker.script = (r) => r.name !== "PINGREQ" && broker.respond(r);
    const dev = rig.connect({ keepalive: 5, reconnectPeriod: 1_000 });
    const done: string[] = [];
    let published = 0;
    dev.client.on("error", () => {
      if (!published++) dev.client.publish("alarm", "link lost", { qos: 1 }, recorder(done, "alarm"));
    });
    await dev.next("connect");
    clock.tick(10_000);
    const error = await dev.next("error");
    expect(error.args[0].message).toMatch(/keepalive/);
    const close = await dev.next("close");
    broker.script = (r) => broker.respond(r);
    await rig.nextReconnect(dev, close.index);
    await dev.next("connect", close.index);
    await broker.next((r) => r.name === "PUBLISH" && r.packet.topic === "alarm");
    await rig.sync();
    expect(uncaught()).toEqual([]);
    expect(rig.runtime.errors).toEqual([]);
    expect(done).toEqual(["alarm: ok"]);
    expect(broker.seen((r) => r.name === "PUBLISH" && r.packet.topic === "alarm").map((r) => r.conn.id)).toEqual([2]);
  });

  it("a callback that throws is reported as an error, and the other callbacks still run", async () => {
    const { broker } = rig;
    broker.script = (r) => r.name !== "PUBLISH" && broker.respond(r);
    const dev = await rig.connected({ reconnectPeriod: 0 });
    const done: string[] = [];
    dev.client.publish("t", "1", { qos: 1 }, () => {
      done.push("1");
      throw new Error("application bug");
    });
    dev.client.publish("t", "2", { qos: 1 }, recorder(done, "2"));
    await broker.next((r) => r.name === "PUBLISH" && r.packet.payload === "2");
    broker.conn.drop();
    await dev.next("close");
    await rig.runtime.settle();
    expect(done).toEqual(["1", "2: connection closed"]);
    expect(dev.errors().map((e) => e.message)).toContain("application bug");
    expect(uncaught()).toEqual([]);
  });
});

describe("K2: arguments are checked before anything goes on the wire, the same way on V8 and Espruino", () => {
  // Before: an empty SUBSCRIBE went out [MQTT-3.8.3-3]; Mosquitto drops such a client, and the
  // SUBSCRIBE went again after every reconnect.
  it("subscribe([]) and unsubscribe([]) fail at once and send nothing", async () => {
    const dev = await rig.connected({ reconnectPeriod: 1_000 });
    const from = rig.broker.mark();
    const errors: string[] = [];
    dev.client.subscribe([], { qos: 1 }, (err) => errors.push(err ? err.message : "ok"));
    dev.client.unsubscribe([], (err) => errors.push(err ? err.message : "ok"));
    expect(errors).toHaveLength(2);
    for (const message of errors) expect(message).toMatch(/topic filter/);
    await rig.sync();
    expect(rig.broker.seen(() => true, from)).toEqual([]);
    expect(rig.broker.malformed).toEqual([]);
    expect(rig.broker.connections).toHaveLength(1);
  });

  // Before: the CONNECT went out, was refused with code 2, and was retried forever.
  it('clientId "" with clean: false is refused by connect() itself [MQTT-3.1.3-7]; no connection is made', () => {
    expect(() => rig.mqtt.connect(rig.broker.url, { clientId: "", clean: false })).toThrow(/clientId.*clean/);
    expect(netState(rig.runtime).sockets.size).toBe(0);
    expect(rig.runtime.timerCount).toBe(0);
    // the same for the other options that cannot work, each with what is wrong
    const bad: [object, RegExp][] = [
      [{ password: "p" }, /password.*username/],
      [{ keepalive: 70_000 }, /keepalive/],
      [{ will: { topic: "w/#", payload: "x" } }, /will.*topic/],
      [{ will: { topic: "w", payload: "x", qos: 3 } }, /will.*QoS/],
    ];
    for (const [options, error] of bad) expect(() => rig.mqtt.connect(rig.broker.url, options as object), JSON.stringify(options)).toThrow(error);
    expect(netState(rig.runtime).sockets.size).toBe(0);
  });

  // Before: V8's `.` does not match a line terminator, so "a/#\n" passed the check in the simulator
  // (Espruino's `.` does match one); Mosquitto then disconnects the client, which resubscribes...
  it("a filter with anything after '#' is refused [MQTT-4.7.1-2], line terminators included", async () => {
    const dev = await rig.connected();
    const from = rig.broker.mark();
    const errors: string[] = [];
    for (const filter of ["a/#\n", "a/#\r", "#\u2028", "a/#\u2029", "a/#/"]) {
      dev.client.subscribe(filter, { qos: 0 }, (err) => errors.push(`${JSON.stringify(filter)}: ${err ? err.message : "ok"}`));
      dev.client.unsubscribe([filter], (err) => errors.push(`${JSON.stringify(filter)}: ${err ? err.message : "ok"}`));
    }
    expect(errors).toHaveLength(10);
    for (const e of errors) expect(e).toMatch(/invalid topic filter/);
    await rig.sync();
    expect(rig.broker.seen(() => true, from)).toEqual([]);
  });

  // Before: a lone surrogate made the topic check itself throw (URIError, on V8 only), and a null or
  // undefined payload made publish throw: the exception came out of publish().
  it("nothing an argument can be makes publish throw: a broken topic fails through the callback, a missing payload is empty", async () => {
    const dev = await rig.connected();
    const done: string[] = [];
    dev.client.publish("a\ud800", "x", { qos: 0 }, recorder(done, "lone surrogate"));
    dev.client.publish(undefined as unknown as string, "x", { qos: 0 }, recorder(done, "no topic"));
    dev.client.publish("p/undefined", undefined as unknown as string, { qos: 1 }, recorder(done, "undefined"));
    dev.client.publish("p/null", null as unknown as string, { qos: 0 }, recorder(done, "null"));
    dev.client.publish("p/number", 21.5 as unknown as string, { qos: 0 }, recorder(done, "number"));
    await rig.broker.next((r) => r.name === "PUBLISH" && r.packet.topic === "p/number");
    await rig.sync();
    expect(done.slice(0, 2)).toEqual(["lone surrogate: invalid topic name: a\ud800", "no topic: invalid topic name: undefined"]);
    expect(done.slice(2).sort()).toEqual(["null: ok", "number: ok", "undefined: ok"]);
    expect(rig.broker.seen("PUBLISH").map((r) => [r.packet.topic, r.packet.payload])).toEqual([
      ["p/undefined", ""],
      ["p/null", ""],
      ["p/number", "21.5"],
    ]);
  });

  // Before: "mqtt://user:secret@host:1883" connected to a host named "user".
  it("takes user name and password from the URL as MQTT.js does, percent-decoded", async () => {
    const url = rig.broker.url.replace("mqtt://", "mqtt://node%2D7:s3cr%40t:x@");
    const dev = rig.connect({}, url);
    await dev.next("connect");
    expect(rig.broker.seen("CONNECT")[0].packet).toMatchObject({ username: "node-7", password: "s3cr@t:x" });
  });

  it("never puts the password in an error: a refused login, a bad URL, a bad %-escape", async () => {
    rig.broker.returnCode = 4;
    const dev = rig.connect({ reconnectPeriod: 1_000 }, rig.broker.url.replace("mqtt://", "mqtt://user:hunter2@"));
    const refused = await dev.next("error");
    expect(refused.args[0].message).toMatch(/bad username or password/);
    const thrown: string[] = [];
    for (const url of ["http://user:hunter2@127.0.0.1:1883", "mqtt://user:hunter2@", "mqtt://user:hunter2%zz@127.0.0.1:1883"]) {
      try {
        rig.mqtt.connect(url);
        thrown.push(`${url}: no error`);
      } catch (err) {
        thrown.push((err as Error).message);
      }
    }
    expect(thrown).toEqual(["unsupported URL", "unsupported URL", "unsupported URL"]);
    const everything = [...dev.errors().map((e) => e.message), ...thrown, ...rig.runtime.logs].join("\n");
    expect(everything).not.toContain("hunter2");
  });
});

describe("K3: acknowledgements from the broker are validated against what is pending", () => {
  // Before: accepted; the callback got a second entry with no topic, and after the next reconnect
  // without a session the client subscribed to a filter named "undefined".
  it("a SUBACK with two return codes for one filter closes the connection; the SUBSCRIBE goes again as it was", async () => {
    const { broker } = rig;
    let bogus = true;
    broker.script = (r) => {
      if (r.name === "SUBSCRIBE" && bogus) {
        bogus = false;
        const id = r.packet.messageId as number;
        return r.conn.write(`\x90\x04${String.fromCharCode(id >> 8, id & 255)}\x01\x01`);
      }
      broker.respond(r);
    };
    const dev = await rig.connected({ reconnectPeriod: 1_000 });
    const granted: unknown[] = [];
    dev.client.subscribe("cmd/+", { qos: 1 }, (err, g) => granted.push(err ? err.message : g));
    const error = await dev.next("error");
    expect(error.args[0].message).toMatch(/SUBACK/);
    const close = await dev.next("close");
    expect(granted).toEqual([]);
    await rig.nextReconnect(dev, close.index);
    await dev.next("connect", close.index);
    await broker.next((r) => r.name === "SUBSCRIBE" && r.conn.id === 2);
    await rig.sync();
    expect(granted).toEqual([[{ topic: "cmd/+", qos: 1 }]]);
    expect(dev.errors()).toHaveLength(1);
    expect(broker.seen("SUBSCRIBE").map((r) => r.packet.subscriptions.map((s: { topic: string }) => s.topic))).toEqual([["cmd/+"], ["cmd/+"]]);

    // and the next session-less reconnect restores cmd/+ alone
    const from = broker.mark();
    broker.conn.drop();
    const close2 = await dev.next("close", close.index + 1);
    await rig.nextReconnect(dev, close2.index);
    const resub = await broker.next("SUBSCRIBE", from);
    expect(resub.packet.subscriptions).toEqual([{ topic: "cmd/+", qos: 1 }]);
  });

  // Before: each connection that reported no session and closed before the SUBACK added one more
  // pending SUBSCRIBE, all resent each time (1, 2, ... 10 per connection); after 8 the in-flight
  // window was full and even QoS 0 publishes failed with "queue full".
  it("at most one resubscription in flight, however many connections close before its SUBACK", async () => {
    const { broker } = rig;
    const dev = await rig.connected({ reconnectPeriod: 1_000 });
    await new Promise((resolve) => dev.client.subscribe("cmd/+", { qos: 1 }, resolve));
    // each new connection: CONNACK without a session, then dropped once the SUBSCRIBE arrives
    broker.script = (r) => (r.name === "SUBSCRIBE" ? r.conn.drop() : broker.respond(r));
    broker.conn.drop();
    for (let id = 2; id <= 11; id++) {
      await rig.nextReconnect(dev, (await dev.next("close", dev.mark() - 1)).index);
      await broker.next((r) => r.name === "SUBSCRIBE" && r.conn.id === id);
      await broker.connection(id).then((c) => c.closed);
    }
    broker.script = (r) => broker.respond(r);
    await rig.nextReconnect(dev, (await dev.next("close", dev.mark() - 1)).index);
    await broker.next((r) => r.name === "SUBSCRIBE" && r.conn.id === 12);
    await rig.sync();
    const perConnection = new Map<number, number>();
    for (const r of broker.seen("SUBSCRIBE")) perConnection.set(r.conn.id, (perConnection.get(r.conn.id) ?? 0) + 1);
    expect([...perConnection.values()]).toEqual(Array(12).fill(1));

    const done: string[] = [];
    dev.client.publish("t", "qos 0", { qos: 0 }, recorder(done, "qos 0"));
    dev.client.publish("t", "qos 1", { qos: 1 }, recorder(done, "qos 1"));
    await broker.next((r) => r.name === "PUBLISH" && r.packet.qos === 1);
    await rig.sync();
    expect(done).toEqual(["qos 0: ok", "qos 1: ok"]);
  });
});

describe("K4: a dead or stalled link is noticed, and memory stays bounded", () => {
  // Before: every write re-armed the ping timer, so after 300 s there had been no PINGREQ and no close.
  it("keepalive 10 s, a QoS 0 publish every 5 s, a broker silent after CONNACK: found dead within 1.5 × keepalive", async () => {
    const { broker, clock } = rig;
    broker.script = (r) => void (r.name === "CONNECT" && broker.respond(r));
    const dev = rig.connect({ keepalive: 10, reconnectPeriod: 1_000 });
    const connect = await dev.next("connect");
    for (let i = 0; i < 60 && dev.client.connected; i++) {
      clock.tick(5_000);
      const from = broker.mark();
      const live = dev.client.connected;
      dev.client.publish("t", `reading ${i}`, { qos: 0 }, noop);
      if (live) await broker.next("PUBLISH", from);
      await rig.runtime.settle();
    }
    const error = await dev.next("error");
    expect(error.args[0].message).toMatch(/keepalive/);
    expect(error.at - connect.at).toBeGreaterThanOrEqual(10_000);
    expect(error.at - connect.at).toBeLessThanOrEqual(15_000);
    expect(broker.seen("PINGREQ")[0].at).toBeLessThan(error.at);
    await dev.next("close");
    await broker.connections[0].closed;
  });

  // Before: every QoS 0 callback reported success at once, and what the socket could not send piled
  // up in memory (about 60 MB/s in the simulator; on a board, out of memory).
  it("a broker that stops reading: publishes wait once sendBuffer bytes are unsent, memory stays bounded, and the link that never drains is dead", async () => {
    const { broker, clock } = rig;
    const sendBuffer = 65_536;
    const dev = await rig.connected({ keepalive: 10, reconnectPeriod: 1_000, sendBuffer, queueSize: 4 });
    const conn = broker.conn;
    conn.socket.pause();
    const payload = "x".repeat(4_000);
    const results = { ok: 0, full: 0, other: [] as string[] };
    const count = (err?: Error | null) => (err ? (/queue full/.test(err.message) ? results.full++ : results.other.push(err.message)) : results.ok++);
    const socket = [...netState(rig.runtime).sockets][0];
    let maxUnsent = 0;
    // publish until the socket has kept unsent bytes over many turns of the event loop: the kernel's
    // buffers are full and no "drain" comes
    for (let round = 0, stuck = 0; round < 5_000 && stuck < 50; round++) {
      for (let i = 0; i < 8; i++) dev.client.publish("flood", payload, { qos: 0 }, count);
      maxUnsent = Math.max(maxUnsent, socket.unsent);
      stuck = socket.unsent > 0 ? stuck + 1 : 0;
      await new Promise((resolve) => setImmediate(resolve));
      await rig.runtime.settle();
    }
    expect(results.other).toEqual([]);
    expect(results.full).toBeGreaterThan(0);
    expect(maxUnsent).toBeLessThanOrEqual(sendBuffer + payload.length + 16);

    // the broker still sends (so something is received), but nothing written leaves: dead all the same
    const from = dev.mark();
    for (let t = 0; t < 8 && dev.client.connected; t++) {
      conn.send({ type: type("PUBLISH"), topic: "still/talking", payload: String(t), qos: 0 });
      await dev.next("message", dev.mark());
      clock.tick(2_500);
      await rig.runtime.settle();
    }
    const error = await dev.next("error", from);
    expect(error.args[0].message).toMatch(/keepalive/);
    expect(error.at - dev.events[from].at).toBeLessThanOrEqual(15_000);
    // its socket cannot send what is left, so its "close" never comes: the client waits 5 s, no more
    rig.clock.tick(5_000);
    const close = await dev.next("close", from);
    expect(close.at - error.at).toBeLessThanOrEqual(5_000);
    await rig.nextReconnect(dev, close.index);
  });
});

describe("K5: a message the client cannot take is dealt with once, not in a loop", () => {
  /** A PUBLISH of exactly `size` bytes. */
  function publishOf(size: number, topic: string, qos: number, messageId: number, dup = false): string {
    const overhead = encode({ type: type("PUBLISH"), topic, payload: "", qos, messageId, dup }).length + 1; // 2 bytes of Remaining Length
    const bytes = encode({ type: type("PUBLISH"), topic, payload: "r".repeat(size - overhead), qos, messageId, dup });
    expect(bytes.length).toBe(size);
    return bytes;
  }

  // Before: "malformed packet: packet of 5000 bytes is over the limit of 4096", twice; the connection
  // closed, the broker sent it again on the next one, and so on every ~2.7 s for as long as the
  // session lasted.
  it("a 5,000-byte QoS 1 PUBLISH over maxPacket 4,096 is acknowledged after its first 4,096 bytes, read past, and reported once; the connection stays", async () => {
    const { broker } = rig;
    const dev = await rig.connected({ clean: false, reconnectPeriod: 1_000 });
    const big = publishOf(5_000, "nodes/7/firmware", 1, 42);
    broker.conn.write(big.slice(0, 4_096));
    // the PUBACK comes before the rest is even sent: the client did not wait to hold it whole
    const puback = await broker.next("PUBACK");
    expect(puback.packet.messageId).toBe(42);
    broker.conn.write(big.slice(4_096, 4_500));
    broker.conn.write(big.slice(4_500) + encode({ type: type("PUBLISH"), topic: "after", payload: "fine", qos: 1, messageId: 43 }));
    await broker.next((r) => r.name === "PUBACK" && r.packet.messageId === 43);
    await rig.sync();
    expect(dev.messages().map((m) => [m.topic, m.payload])).toEqual([["after", "fine"]]);
    const errors = dev.errors().map((e) => e.message);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/maxPacket/);
    expect(errors[0]).toContain("5000");
    expect(errors[0]).toContain("4096");
    expect(errors[0]).toContain("nodes/7/firmware");
    expect(errors[0]).not.toMatch(/malformed/);
    expect(dev.of("close")).toEqual([]);
    expect(broker.connections).toHaveLength(1);
  });

  it("QoS 2 over maxPacket: PUBREC, and a resend with DUP before PUBREL is not reported again", async () => {
    const { broker } = rig;
    const dev = await rig.connected({ maxPacket: 256 });
    broker.conn.write(publishOf(1_000, "big", 2, 9));
    await broker.next("PUBREC");
    broker.conn.write(publishOf(1_000, "big", 2, 9, true));
    await broker.next("PUBREC", broker.mark());
    broker.conn.send({ type: type("PUBREL"), messageId: 9 });
    await broker.next("PUBCOMP");
    await rig.sync();
    expect(dev.errors()).toHaveLength(1);
    expect(dev.messages()).toEqual([]);
  });

  // Before: a successful CONNACK reset the backoff, so a connection that died right after it was
  // retried after reconnectPeriod, for ever.
  it("a broker that closes every connection right after CONNACK: the reconnect delays grow as for a refusal", async () => {
    const { broker } = rig;
    broker.script = (r: Received) => {
      broker.respond(r);
      if (r.name === "CONNECT") r.conn.socket.end();
    };
    const dev = rig.connect({ reconnectPeriod: 1_000 });
    const delays = await reconnectDelays(dev, 7);
    const ceilings = [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000];
    delays.forEach((delay, i) => {
      expect(delay, `delay ${i + 1} of ${delays.join(", ")}`).toBeGreaterThanOrEqual(ceilings[i] / 2);
      expect(delay, `delay ${i + 1} of ${delays.join(", ")}`).toBeLessThanOrEqual(ceilings[i]);
    });
    expect(dev.of("connect").length).toBeGreaterThanOrEqual(7);
  });

  it("a connection that lasted 10 s starts the backoff again; those that die sooner count as failed attempts", async () => {
    const { broker, clock } = rig;
    let closeAfterConnack = 4;
    broker.script = (r: Received) => {
      broker.respond(r);
      if (r.name === "CONNECT" && closeAfterConnack-- > 0) r.conn.socket.end();
    };
    const dev = rig.connect({ reconnectPeriod: 1_000 });
    const delays = await reconnectDelays(dev, 4);
    expect(delays[3]).toBeGreaterThan(4_000); // the 8 s ceiling: four short connections in a row
    const connect = await dev.next("connect", dev.mark() - 1);
    clock.tick(10_000);
    await rig.runtime.settle();
    broker.conn.drop(); // it lasted: back to reconnectPeriod
    const close = await dev.next("close", connect.index);
    const reconnect = await rig.nextReconnect(dev, close.index);
    expect(reconnect.at - close.at).toBeLessThanOrEqual(1_000);
    // and one short connection after it waits no longer than a first failure
    await dev.next("connect", reconnect.index);
    clock.tick(9_000);
    await rig.runtime.settle();
    broker.conn.drop();
    const short = await dev.next("close", reconnect.index);
    const next = await rig.nextReconnect(dev, short.index);
    expect(next.at - short.at).toBeLessThanOrEqual(1_000);
  });


});

// Round 2 of issue 7: further cases of the same five kinds, found on main after the first fixes.
describe("K1, round 2: callbacks once, nothing after end, nothing thrown", () => {
  // Before: end(false) waited for the PUBACK for ever: neither callback ran, and no "end".
  it("end(false) while a QoS 1 message is never acknowledged: after connectTimeout both callbacks run, DISCONNECT goes, then end", async () => {
    const { broker, clock } = rig;
    broker.script = (r) => r.name !== "PUBLISH" && broker.respond(r); // answers pings, never PUBACKs
    const dev = await rig.connected({ keepalive: 10, connectTimeout: 20_000 });
    const done: string[] = [];
    dev.client.publish("t", "x", { qos: 1 }, recorder(done, "publish"));
    await broker.next("PUBLISH");
    dev.client.end(false, recorder(done, "end"));
    clock.tick(19_999);
    await rig.runtime.settle();
    expect(done).toEqual([]);
    clock.tick(1);
    await broker.next("DISCONNECT");
    const end = await dev.next("end");
    expect(end.at).toBe(20_000);
    expect(done).toEqual(["publish: client ended", "end: ok"]);
    expect(dev.events.map((e) => e.name)).toEqual(["connect", "close", "offline", "end"]);
    expect(rig.runtime.timerCount).toBe(0);
  });

  // Before: finish() emitted "end" and then ran the callbacks, whose exception became an "error" after it.
  it("a throwing end() callback is reported before end; one of a call made after end is thrown on its own, not as an event", async () => {
    const dev = await rig.connected();
    dev.client.end(false, () => {
      throw new Error("shutdown step broke");
    });
    await dev.next("end");
    await rig.runtime.settle();
    expect(dev.events.map((e) => e.name + (e.name === "error" ? `: ${e.args[0].message}` : ""))).toEqual(["connect", "close", "offline", "error: shutdown step broke", "end"]);
    let thrown = "";
    try {
      dev.client.publish("t", "x", { qos: 0 }, () => {
        throw new Error("late callback broke");
      });
      dev.client.end(false, () => {
        throw new Error("late end callback broke");
      });
    } catch (e) {
      thrown = String(e);
    }
    expect(thrown).toBe("");
    rig.clock.tick(10);
    await rig.runtime.settle();
    expect(dev.events.map((e) => e.name).slice(-1)).toEqual(["end"]);
    expect(uncaught().join("\n")).toMatch(/late callback broke[^]*late end callback broke/);
  });

  // Before: the conversion threw out of publish() after a packet id was taken (the slot stayed for
  // good); queued before CONNACK, it threw in the data handler at every CONNACK and dropped the connection.
  it("a payload that cannot be made bytes fails through its callback, live or queued, and takes no packet id; a DataView is its bytes", async () => {
    const { broker } = rig;
    broker.script = (r) => r.name !== "CONNECT" && broker.respond(r); // CONNACK when the test says
    const dev = rig.connect({ inflight: 1 });
    const connect = await broker.next("CONNECT");
    const done: string[] = [];
    const realm = (rig.runtime as unknown as { realm: { Object: ObjectConstructor } }).realm;
    const bad = [realm.Object.create(null), { toString: () => { throw new Error("no text"); } }];
    dev.client.publish("t", bad[0], { qos: 1 }, recorder(done, "queued"));
    connect.conn.send({ type: type("CONNACK"), sessionPresent: false, returnCode: 0 });
    await dev.next("connect");
    await rig.runtime.settle();
    expect(done).toEqual(["queued: payload: not a string, typed array or number"]);
    let thrown = "";
    try {
      dev.client.publish("t", bad[1], { qos: 1 }, recorder(done, "live"));
    } catch (e) {
      thrown = String(e);
    }
    expect(thrown).toBe("");
    expect(done[1]).toBe("live: payload: not a string, typed array or number");
    // the in-flight window (1) is free: the next publish goes at once
    const bytes = new DataView(new Uint8Array([0x31, 0x32, 0x33, 0x34]).buffer, 1, 2);
    dev.client.publish("t", bytes as unknown as string, { qos: 1 }, recorder(done, "dataview"));
    const sent = await broker.next("PUBLISH");
    expect(sent.packet.payload).toBe("23");
    await rig.sync();
    expect(done[2]).toBe("dataview: ok");
    expect(dev.of("close")).toEqual([]);
  });
});

describe("K2, round 2: arguments checked before the wire, the same on both engines", () => {
  it("numeric options that cannot work are refused by connect(), naming the option", () => {
    const bad: [object, RegExp][] = [
      [{ reconnectPeriod: -1_000 }, /reconnectPeriod/],
      [{ inflight: -1 }, /inflight/],
      [{ sendBuffer: -1 }, /sendBuffer/],
      [{ queueSize: "many" }, /queueSize/],
      [{ connectTimeout: -5 }, /connectTimeout/],
      [{ maxPacket: 3 }, /maxPacket.*4/],
      // a fraction went on the wire as 0 (no keepalive) while the client pinged every 150 ms and gave up after 450
      [{ keepalive: 0.3 }, /keepalive: not a whole number/],
    ];
    for (const [options, error] of bad) expect(() => rig.mqtt.connect(rig.broker.url, options as object), JSON.stringify(options)).toThrow(error);
    expect(netState(rig.runtime).sockets.size).toBe(0);
  });

  // Before: the 2-byte length overflowed; the broker dropped the CONNECT and the client reconnected for ever.
  it("CONNECT fields over 65,535 bytes are refused by connect(); so are control characters in clientId and username", () => {
    const long = "x".repeat(70_000);
    const bad: [object, RegExp][] = [
      [{ clientId: long }, /clientId/],
      [{ username: long }, /username/],
      [{ username: "u", password: long }, /password/],
      [{ will: { topic: "w", payload: long } }, /will: payload/],
      [{ clientId: "node\u0001" }, /clientId/],
      [{ username: "u\u0085" }, /username/],
      [{ will: { topic: "w/\u007f", payload: "x" } }, /will: invalid topic/],
    ];
    for (const [options, error] of bad) expect(() => rig.mqtt.connect(rig.broker.url, options as object), JSON.stringify(options).slice(0, 60)).toThrow(error);
    expect(netState(rig.runtime).sockets.size).toBe(0);
  });

  // Before: Mosquitto drops a client that sends these [MQTT-1.5.3-2]; the QoS 1 message went again on every connection.
  it("topics with control characters or noncharacters are refused: U+0001-U+001F, U+007F-U+009F, U+FDD0-U+FDEF, U+nFFFE/F", async () => {
    const dev = await rig.connected();
    const from = rig.broker.mark();
    const errors: string[] = [];
    const topics = ["a\u0001", "a/\u001f", "a\u007f", "a\u0085", "a\u009f", "a\ufdd0", "a\ufdef", "a\ufffe", "a\uffff", "a\ud83f\udfff"];
    for (const t of topics) {
      dev.client.publish(t, "x", { qos: 1 }, (err) => errors.push(err ? err.message : "ok"));
      dev.client.subscribe(t, { qos: 1 }, (err) => errors.push(err ? err.message : "ok"));
    }
    expect(errors).toHaveLength(2 * topics.length);
    for (const e of errors) expect(e).toMatch(/invalid topic/);
    // and their neighbours are fine
    const fine: string[] = [];
    for (const t of ["a\u00a0", "a\ufdf0", "a\ufffd", "a/\u00e9", "a\ud83d\ude00"]) dev.client.publish(t, "x", { qos: 0 }, recorder(fine, t));
    await rig.broker.until(() => (rig.broker.seen("PUBLISH", from).length >= 5 ? true : undefined), 5_000, () => "5 PUBLISH");
    expect(fine.every((f) => f.endsWith(": ok"))).toBe(true);
    expect(rig.broker.seen("PUBLISH", from).map((r) => r.packet.topic)).toEqual(["a\u00a0", "a\ufdf0", "a\ufffd", "a/\u00e9", "a\ud83d\ude00"]);
    expect(rig.broker.seen("SUBSCRIBE", from)).toEqual([]);
  });

  // Before: connect() wrote host, port, clientId and the URL's credentials into the caller's object.
  it("connect() leaves the caller's options alone: two clients sharing one object get their own client ids and credentials", async () => {
    const options = { keepalive: 0, reconnectPeriod: 1_000, will: { topic: "w", payload: new Uint8Array([0x61]) as unknown as string } };
    const a = rig.mqtt.connect(rig.broker.url.replace("mqtt://", "mqtt://alice:hunter2@"), options);
    const b = rig.mqtt.connect(rig.broker.url, options);
    await rig.broker.next((r) => r.name === "CONNECT" && r.conn.id === 2);
    await rig.broker.next((r) => r.name === "CONNECT" && r.conn.id === 1);
    expect(Object.keys(options)).toEqual(["keepalive", "reconnectPeriod", "will"]);
    expect(options.will.payload).toBeInstanceOf(Uint8Array);
    const connects = rig.broker.seen("CONNECT").map((r) => r.packet);
    expect(connects[0].clientId).not.toBe(connects[1].clientId);
    expect(connects.map((p) => p.username).sort()).toEqual(["alice", undefined]);
    a.end(true);
    b.end(true);
  });

  // Before: V8's decodeURIComponent threw URIError where Espruino's took the escape; a port over 65535
  // wrapped on Espruino; "abc" became 1883; "[::1]" gave the host "[".
  it("URLs: every %-escape two hex digits of UTF-8, a port of 1 to 65535 digits, an IPv6 host in brackets", () => {
    for (const url of ["mqtt://u:pw%@h", "mqtt://u:pw%A@h", "mqtt://u:p%FF@h", "mqtt://u:p%C3@h", "mqtt://h:84375", "mqtt://h:0", "mqtt://h:abc", "mqtt://h:-1", "mqtt://[::1", "mqtt://a:b:c", "mqtt://:1883", "mqtt://", "mqtt://u@", "mqtt://[]:1"]) {
      expect(() => rig.mqtt.connect(url), url).toThrow("unsupported URL");
    }
    expect(netState(rig.runtime).sockets.size).toBe(0);
    const v6 = rig.mqtt.connect("mqtt://u:p%C3%A9@[::1]:65535", { reconnectPeriod: 0 });
    const socket = [...netState(rig.runtime).sockets][0];
    expect([socket.host, socket.port]).toEqual(["::1", 65535]);
    v6.end(true);
  });
});

describe("K3, round 2: acknowledgements checked against what is pending", () => {
  // Before: believed; no resubscription, and the subscriptions were lost.
  it("CONNACK with sessionPresent answering clean: true is taken as no session [MQTT-3.2.2-1]: the client resubscribes", async () => {
    const { broker } = rig;
    const dev = await rig.connected({ reconnectPeriod: 1_000 });
    await new Promise((resolve) => dev.client.subscribe("cmd/+", { qos: 1 }, resolve));
    broker.sessionPresent = true;
    const from = broker.mark();
    broker.conn.drop();
    await rig.nextReconnect(dev, (await dev.next("close")).index);
    const resub = await broker.next("SUBSCRIBE", from);
    expect(resub.packet.subscriptions).toEqual([{ topic: "cmd/+", qos: 1 }]);
  });

  // Before: a PUBACK before CONNACK completed a pending publish; a PUBLISH before it was delivered and acknowledged.
  it("anything before CONNACK is a protocol error [MQTT-3.2.0-1]: nothing completed, delivered or acknowledged", async () => {
    const { broker } = rig;
    broker.script = (r) => r.name !== "PUBLISH" && broker.respond(r);
    const dev = await rig.connected({ reconnectPeriod: 1_000, clean: false });
    const done: string[] = [];
    dev.client.publish("t", "x", { qos: 1 }, recorder(done, "publish"));
    await broker.next("PUBLISH");
    let early = 0;
    broker.script = (r) => {
      if (r.name === "CONNECT" && early++ < 2)
        return r.conn.write(early === 1 ? encode({ type: type("PUBACK"), messageId: 1 }) : encode({ type: type("PUBLISH"), topic: "early", payload: "x", qos: 1, messageId: 5 }));
      if (r.name !== "PUBLISH" || r.conn.id === 4) broker.respond(r);
    };
    broker.conn.drop();
    for (let id = 2; id <= 3; id++) {
      const close = await dev.next("close", dev.mark() - 1);
      await rig.nextReconnect(dev, close.index);
      await broker.connection(id).then((c) => c.closed);
    }
    await rig.nextReconnect(dev, (await dev.next("close", dev.mark() - 1)).index);
    await broker.next((r) => r.name === "PUBLISH" && r.conn.id === 4);
    await rig.sync();
    expect(dev.errors().map((e) => e.message).filter((m) => /CONNACK/.test(m))).toEqual([
      "malformed packet: unexpected packet type 4 before CONNACK",
      "malformed packet: unexpected packet type 3 before CONNACK",
    ]);
    expect(done).toEqual(["publish: ok"]);
    expect(dev.messages()).toEqual([]);
    expect(broker.seen("PUBACK")).toEqual([]);
  });

  // Before: the SUBACK put the filter back on the list to restore, and a session-less reconnect subscribed it again.
  it("subscribe then unsubscribe before the SUBACK: the filter is not restored after a reconnect without a session", async () => {
    const { broker } = rig;
    const dev = await rig.connected({ reconnectPeriod: 1_000 });
    await new Promise((resolve) => dev.client.subscribe("keep", { qos: 0 }, resolve));
    const done: string[] = [];
    dev.client.subscribe("gone/+", { qos: 1 }, recorder(done, "subscribe"));
    dev.client.unsubscribe("gone/+", recorder(done, "unsubscribe"));
    await broker.next("UNSUBSCRIBE");
    await rig.sync();
    expect(done).toEqual(["subscribe: ok", "unsubscribe: ok"]);
    const from = broker.mark();
    broker.conn.drop();
    await rig.nextReconnect(dev, (await dev.next("close")).index);
    const resub = await broker.next("SUBSCRIBE", from);
    expect(resub.packet.subscriptions).toEqual([{ topic: "keep", qos: 0 }]);
  });

  // Before: the PUBACK was ignored and the QoS 2 callback never ran; a SUBACK granting more than asked was taken.
  it("a PUBACK answering a QoS 2 publish, and a SUBACK granting QoS 2 for 0, are protocol errors; the request goes again", async () => {
    const { broker } = rig;
    let wrong = 1;
    broker.script = (r) => {
      const id = r.packet.messageId as number;
      if (r.name === "PUBLISH" && wrong-- > 0) return r.conn.send({ type: type("PUBACK"), messageId: id });
      if (r.name === "SUBSCRIBE" && r.conn.id === 2) return r.conn.send({ type: type("SUBACK"), messageId: id, granted: [2] });
      broker.respond(r);
    };
    const dev = await rig.connected({ reconnectPeriod: 1_000 });
    const done: string[] = [];
    dev.client.publish("t", "x", { qos: 2 }, recorder(done, "qos 2"));
    const error = await dev.next("error");
    expect(error.args[0].message).toMatch(/unexpected packet type 4/);
    await rig.nextReconnect(dev, (await dev.next("close")).index);
    await dev.next("connect", 2);
    dev.client.subscribe("s", { qos: 0 }, recorder(done, "subscribe"));
    const error2 = await dev.next("error", error.index + 1, (e) => /SUBACK/.test(e.args[0].message));
    expect(error2.args[0].message).toMatch(/SUBACK grants more than asked/);
    await rig.nextReconnect(dev, (await dev.next("close", error2.index)).index);
    await broker.next((r) => r.name === "PUBCOMP" || (r.name === "SUBSCRIBE" && r.conn.id === 3));
    await broker.next((r) => r.name === "PUBREL" && r.conn.id === 3);
    await rig.sync();
    expect(done.sort()).toEqual(["qos 2: ok", "subscribe: ok"]);
  });
});

describe("K4, round 2: a dead or stalled link is noticed, memory stays bounded", () => {
  // Before: any byte received counted as alive: one byte every 4 s kept a link alive for ever.
  it("keepalive 10 s, a broker that trickles one byte every 4 s: only whole packets count, the link is found dead within 1.5 × keepalive", async () => {
    const { broker, clock } = rig;
    broker.script = (r) => void (r.name === "CONNECT" && broker.respond(r));
    const dev = rig.connect({ keepalive: 10, reconnectPeriod: 60_000 });
    const connect = await dev.next("connect");
    const endless = encode({ type: type("PUBLISH"), topic: "slow", payload: "y".repeat(100), qos: 0 });
    for (let i = 0; i < 10 && dev.client.connected; i++) {
      broker.conn.write(endless[i]);
      await new Promise((resolve) => setTimeout(resolve, 20));
      clock.tick(4_000);
      await rig.runtime.settle();
    }
    const error = await dev.next("error");
    expect(error.args[0].message).toMatch(/keepalive/);
    expect(error.at - connect.at).toBeLessThanOrEqual(16_000);
  });

  it("a PUBLISH header claiming 200 MB, then its bytes trickling: read past, and the link still found dead", async () => {
    const { broker, clock } = rig;
    broker.script = (r) => void (r.name === "CONNECT" && broker.respond(r));
    const dev = rig.connect({ keepalive: 10, reconnectPeriod: 60_000, maxPacket: 64 });
    const connect = await dev.next("connect");
    broker.conn.write("\x30\x80\x80\x80\x64\x00\x04huge" + "z".repeat(60));
    for (let i = 0; i < 10 && dev.client.connected; i++) {
      broker.conn.write("z".repeat(100));
      await new Promise((resolve) => setTimeout(resolve, 20));
      clock.tick(4_000);
      await rig.runtime.settle();
    }
    const error = await dev.next("error", 0, (e) => /keepalive/.test(e.args[0].message));
    expect(error.at - connect.at).toBeLessThanOrEqual(16_000);
    expect(dev.errors()[0].message).toMatch(/huge: message of 209715205 bytes is over maxPacket 64/);
  });

  // Before: a read on the socket hung up on (still open on a device while it has unsent data) reset the
  // new connection's keepalive, and its messages were delivered.
  it("the old, hung-up socket is not read: its messages are not delivered and do not keep the new connection alive", async () => {
    const { broker, clock } = rig;
    const dev = await rig.connected({ keepalive: 10, reconnectPeriod: 1_000, sendBuffer: 65_536, queueSize: 4 });
    const conn1 = broker.conn;
    conn1.socket.pause();
    const socket = [...netState(rig.runtime).sockets][0];
    const payload = "x".repeat(4_000);
    for (let round = 0, stuck = 0; round < 5_000 && stuck < 50; round++) {
      for (let i = 0; i < 8; i++) dev.client.publish("flood", payload, { qos: 0 }, noop);
      stuck = socket.unsent > 0 ? stuck + 1 : 0;
      await new Promise((resolve) => setImmediate(resolve));
      await rig.runtime.settle();
    }
    // connection 1 goes on sending after the client hung up on it; connection 2 gets CONNACK and then nothing
    broker.script = (r) => void (r.name === "CONNECT" && broker.respond(r));
    let hungUp = -1;
    for (let t = 0; t < 16; t++) {
      conn1.send({ type: type("PUBLISH"), topic: "old", payload: String(t), qos: 0 });
      await new Promise((resolve) => setTimeout(resolve, 20));
      await rig.runtime.settle();
      if (hungUp < 0 && dev.of("error").length) hungUp = dev.messages().length;
      clock.tick(2_500);
      await rig.runtime.settle();
    }
    const connect2 = await dev.next("connect", 1);
    const error2 = await dev.next("error", connect2.index);
    expect(error2.args[0].message).toMatch(/keepalive/);
    expect(error2.at - connect2.at).toBeLessThanOrEqual(15_000);
    expect(dev.messages().length).toBe(hungUp);
  });

  // Before: acknowledgements bypassed sendBuffer: 27.7 MB of unsent PUBCOMPs with keepalive 0.
  it("a broker that floods and does not read: the acknowledgements it is owed stay within 2 × sendBuffer, then the link is closed as dead", async () => {
    const { broker } = rig;
    const sendBuffer = 4_096;
    const dev = await rig.connected({ keepalive: 0, reconnectPeriod: 60_000, sendBuffer });
    const conn = broker.conn;
    conn.socket.pause();
    const socket = [...netState(rig.runtime).sockets][0];
    let maxUnsent = 0;
    for (let round = 0, id = 0; round < 200 && dev.client.connected; round++) {
      let chunk = "";
      for (let i = 0; i < 2_000; i++) chunk += encode({ type: type("PUBREL"), messageId: (id = (id % 65_535) + 1) });
      conn.write(chunk);
      await new Promise((resolve) => setTimeout(resolve, 5));
      await rig.runtime.settle();
      maxUnsent = Math.max(maxUnsent, socket.unsent);
    }
    const error = await dev.next("error");
    expect(error.args[0].message).toMatch(/send buffer/);
    expect(dev.client.connected).toBe(false);
    expect(maxUnsent).toBeLessThanOrEqual(2 * sendBuffer + 8);
  });

  // Before: every id up to 65,535 was kept (on an ESP32, about a JsVar each, of 16,383 at most).
  it("incoming QoS 2 messages never released: at most 100 ids wait for PUBREL, then a protocol error, before the PUBREC", async () => {
    const { broker } = rig;
    const dev = await rig.connected({ keepalive: 0, reconnectPeriod: 60_000 });
    let chunk = "";
    for (let id = 1; id <= 150; id++) chunk += encode({ type: type("PUBLISH"), topic: "q2", payload: String(id), qos: 2, messageId: id });
    broker.conn.write(chunk);
    const error = await dev.next("error");
    expect(error.args[0].message).toMatch(/over 100 QoS 2 messages without PUBREL/);
    await dev.next("close");
    await broker.until(() => (broker.seen("PUBREC").length >= 100 ? true : undefined), 5_000, () => "100 PUBREC");
    await broker.conn.closed;
    expect(broker.seen("PUBREC")).toHaveLength(100);
    expect(dev.messages()).toHaveLength(100);
  });
});

describe("K5, round 2: a message the client cannot take is dealt with once", () => {
  // Before: "malformed packet: too short", the connection dropped, and the broker sent it again on every connection.
  for (const [maxPacket, topicLength] of [[4_096, 5_000], [256, 251], [64, 80]]) {
    it(`an over-size QoS 1 PUBLISH whose topic (${topicLength} bytes) or packet id lies past maxPacket ${maxPacket}: acknowledged, reported once, the connection stays`, async () => {
      const { broker } = rig;
      const dev = await rig.connected({ clean: false, reconnectPeriod: 1_000, maxPacket });
      const topic = "t".repeat(topicLength);
      broker.conn.write(encode({ type: type("PUBLISH"), topic, payload: "p".repeat(100), qos: 1, messageId: 42 }) + encode({ type: type("PUBLISH"), topic: "after", payload: "fine", qos: 1, messageId: 43 }));
      await broker.next((r) => r.name === "PUBACK" && r.packet.messageId === 43);
      await rig.sync();
      expect(broker.seen("PUBACK").map((r) => r.packet.messageId)).toEqual([42, 43]);
      expect(dev.messages().map((m) => m.topic)).toEqual(["after"]);
      const errors = dev.errors().map((e) => e.message);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(new RegExp(`^t{${topicLength}}: message of \\d+ bytes is over maxPacket ${maxPacket}$`));
      expect(broker.connections).toHaveLength(1);
    });
  }

  // Before: the SUBACK was over maxPacket, so malformed; the SUBSCRIBE went again on every connection.
  it("a SUBACK over maxPacket answers the client's own SUBSCRIBE: taken, for 70 filters at maxPacket 64 and for a resubscription of 61", async () => {
    const { broker } = rig;
    const dev = await rig.connected({ maxPacket: 64, reconnectPeriod: 1_000, inflight: 64 });
    const filters = Array.from({ length: 70 }, (_, i) => `f/${i}`);
    const granted = await new Promise<unknown>((resolve) => dev.client.subscribe(filters, { qos: 1 }, (err, g) => resolve(err ? err.message : g)));
    expect(granted).toHaveLength(70);
    for (let i = 0; i < 61; i++) dev.client.subscribe(`s/${i}`, { qos: 0 }, noop);
    await broker.until(() => (broker.seen("SUBSCRIBE").length >= 62 ? true : undefined), 5_000, () => "62 SUBSCRIBE");
    await rig.sync();
    const from = broker.mark();
    broker.conn.drop();
    await rig.nextReconnect(dev, (await dev.next("close")).index);
    const resub = await broker.next("SUBSCRIBE", from);
    expect(resub.packet.subscriptions).toHaveLength(131);
    await rig.sync(dev, broker.conn);
    expect(dev.errors().map((e) => e.message)).toEqual(["connection reset"]);
    expect(broker.connections).toHaveLength(2);
  });
});
