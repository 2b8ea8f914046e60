// Behaviour of the BUILT client against a scripted broker on a fake clock: what the broker sends
// that the client must survive. Malformed packets close that connection with an error that says
// what was wrong, and the client reconnects; nothing escapes into the device; a throwing "message"
// handler does not cost the packets behind it.
import { beforeEach, describe, expect, it } from "vitest";
import { type Rig, recorder, useRig } from "../helpers/fake-time-device.ts";
import { type } from "../helpers/scripted-broker.ts";
import { encode } from "../../firmware/mqtt/codec-server.ts";

const rigOf = useRig();
let rig: Rig;
beforeEach(() => {
  rig = rigOf();
});

const MAX_PACKET = 64;

const malformed: { what: string; bytes: string; error: RegExp }[] = [
  // [MQTT-2.2.2-2] PUBACK's flags are 0000
  { what: "PUBACK with reserved flag bits set", bytes: "\x42\x02\x00\x01", error: /reserved flag bits|flags/i },
  // [MQTT-2.2.3] at most four bytes of Remaining Length
  { what: "a Remaining Length of 5 bytes", bytes: "\x30\xff\xff\xff\xff\x01", error: /remaining length/i },
  // [MQTT-1.5.3-1] "\xc3\x28" is not UTF-8
  { what: "a PUBLISH whose topic is not UTF-8", bytes: "\x30\x05\x00\x02\xc3\x28x", error: /UTF-8/i },
  // (a PUBLISH over maxPacket is not malformed: it is read past, see "maxPacket" below; issue 7, K5)
  // (a SUBACK is taken up to 64 KB: it answers the client's own SUBSCRIBE; issue 7 round 2, K5)
  { what: `an UNSUBACK over maxPacket (${MAX_PACKET} bytes)`, bytes: "\xb0\x7f\x00\x01" + "x".repeat(125), error: /over maxPacket/i },
  // [MQTT-3.3.1-4] QoS 3
  { what: "a PUBLISH with QoS 3", bytes: "\x36\x05\x00\x01t\x00\x01", error: /PUBLISH|QoS/i },
  // a server never sends PINGREQ
  { what: "a PINGREQ from the server", bytes: "\xc0\x00", error: /unexpected packet type/i },
];

describe("malformed input", () => {
  for (const bad of malformed) {
    it(`${bad.what}: an error saying so, that connection closed, a reconnect; nothing thrown in the device`, async () => {
      const { broker } = rig;
      const victim = await rig.connected({ clientId: "victim", reconnectPeriod: 1_000, maxPacket: MAX_PACKET });
      const victimConn = broker.conn;
      const bystander = await rig.connected({ clientId: "bystander" });
      const bystanderConn = broker.conn;

      victimConn.write(bad.bytes);
      const error = await victim.next("error");
      expect(error.args[0].message).toMatch(bad.error);
      const close = await victim.next("close");
      await victim.next("offline");
      await victimConn.closed;
      expect(victim.client.connected).toBe(false);

      await rig.nextReconnect(victim, close.index);
      await victim.next("connect", close.index);
      expect(broker.conn.id).toBe(3);
      expect(victim.errors()).toHaveLength(1);

      // the other client in the same device did not notice
      const done: string[] = [];
      bystander.client.publish("still/here", "yes", { qos: 1 }, recorder(done, "publish"));
      await broker.next((r) => r.name === "PUBLISH" && r.conn === bystanderConn);
      await rig.sync(bystander, bystanderConn);
      expect(done).toEqual(["publish: ok"]);
      expect(bystander.events.map((e) => e.name).filter((n) => n !== "message")).toEqual(["connect"]);
      expect(bystanderConn.closedAt).toBeUndefined();

      expect(rig.runtime.errors).toEqual([]);
      expect(rig.runtime.logs.filter((l) => /Uncaught/.test(l))).toEqual([]);
    });
  }
});

describe("maxPacket", () => {
  // Issue 7 (K5) changed the second half: a PUBLISH one byte over used to close the connection (and the
  // broker sent it again on the next one, and so on); now it is reported, acknowledged and read past.
  it("accepts a packet of exactly maxPacket bytes and rejects one byte more, without closing the connection", async () => {
    const { broker } = rig;
    const dev = await rig.connected({ maxPacket: MAX_PACKET, reconnectPeriod: 1_000 });
    // header 2 + topic 2+1 + payload: 59 bytes of payload make 64
    const fits = encode({ type: type("PUBLISH"), topic: "t", payload: "x".repeat(MAX_PACKET - 5), qos: 0 });
    expect(fits.length).toBe(MAX_PACKET);
    broker.conn.write(fits);
    await rig.sync();
    expect(dev.messages()).toHaveLength(1);
    expect(dev.errors()).toEqual([]);

    broker.conn.write(encode({ type: type("PUBLISH"), topic: "t", payload: "x".repeat(MAX_PACKET - 4), qos: 0 }));
    const error = await dev.next("error");
    expect(error.args[0].message).toMatch(new RegExp(`${MAX_PACKET + 1}.*${MAX_PACKET}`));
    await rig.sync(); // the stream goes on after it
    expect(dev.messages()).toHaveLength(1);
    expect(dev.of("close")).toEqual([]);
  });
});

describe("a dropped connection", () => {
  it("leaves no half-read packet behind to corrupt the next connection", async () => {
    const { broker } = rig;
    const dev = await rig.connected({ reconnectPeriod: 1_000 });
    // the start of a 16-byte PUBLISH, then the broker closes (FIN, so the bytes are read first)
    broker.conn.socket.end(Buffer.from("\x30\x10\x00\x05", "latin1"));
    const close = await dev.next("close");
    await rig.nextReconnect(dev, close.index);
    await dev.next("connect", close.index);
    broker.conn.send({ type: type("PUBLISH"), topic: "fresh", payload: "ok", qos: 1, messageId: 1 });
    await broker.next("PUBACK");
    await rig.sync();
    expect(dev.messages().map((m) => [m.topic, m.payload])).toEqual([["fresh", "ok"]]);
    expect(dev.errors()).toEqual([]);
  });
});

describe("a throwing message handler", () => {
  it("does not stop the packet behind it in the same read", async () => {
    const { broker } = rig;
    const dev = await rig.connected();
    dev.client.on("message", (topic) => {
      if (topic === "boom") throw new Error("handler broke");
    });
    broker.conn.write(
      encode({ type: type("PUBLISH"), topic: "boom", payload: "1", qos: 1, messageId: 1 }) +
        encode({ type: type("PUBLISH"), topic: "after", payload: "2", qos: 1, messageId: 2 }),
    );
    await broker.next((r) => r.name === "PUBACK" && r.packet.messageId === 2);
    await rig.sync();
    expect(dev.messages().map((m) => m.topic)).toEqual(["boom", "after"]);
    expect(broker.seen("PUBACK").map((r) => r.packet.messageId)).toEqual([1, 2]);
    expect(dev.client.connected).toBe(true);
    expect(dev.of("close")).toEqual([]);
    // the device reports it as Espruino does an exception in an event listener, and goes on
    expect(rig.runtime.logs.join("\n")).toMatch(/Uncaught.*handler broke/);

    // and the connection still works afterwards
    broker.conn.send({ type: type("PUBLISH"), topic: "later", payload: "3", qos: 0 });
    await rig.sync();
    expect(dev.messages().map((m) => m.topic)).toEqual(["boom", "after", "later"]);
  });
});
