// The BUILT client's session store (`store` with `clean: false`): what it puts and removes, and that
// a client made after a reboot from what the store kept goes on with the same flows, so QoS 2 stays
// exactly once across it [MQTT-4.3.3], [MQTT-4.4.0-1]. A scripted broker on a fake clock.
import { beforeEach, describe, expect, it } from "vitest";
import { brief, type Rig, useRig } from "../helpers/fake-time-device.ts";
import { type } from "../helpers/scripted-broker.ts";
import { memoryStore } from "../helpers/memory-store.ts";

const rigOf = useRig();
let rig: Rig;
beforeEach(() => {
  rig = rigOf();
});

describe("the session store", () => {
  it("gets each QoS 1/2 flow when it starts (with the publish's ref), the PUBREL in place of its PUBLISH, and loses it when it completes; incoming QoS 2 ids until PUBREL", async () => {
    const { broker } = rig;
    const store = memoryStore();
    const dev = await rig.connected({ clean: false, store } as never);
    dev.client.publish("q1", "a", { qos: 1, ref: 7 } as never, () => {});
    dev.client.publish("q2", "b", { qos: 2 } as never, () => {});
    dev.client.publish("q0", "c", { qos: 0 }, () => {});
    await broker.next((r) => r.name === "PUBLISH" && r.packet.topic === "q0");
    await rig.sync();
    broker.conn.send({ type: type("PUBLISH"), topic: "in", payload: "x", qos: 2, messageId: 9 });
    await broker.next((r) => r.name === "PUBREC" && r.packet.messageId === 9);
    broker.conn.send({ type: type("PUBLISH"), topic: "in1", payload: "y", qos: 1, messageId: 10 });
    broker.conn.send({ type: type("PUBREL"), messageId: 9 });
    await broker.next((r) => r.name === "PUBCOMP" && r.packet.messageId === 9);
    await rig.sync();
    // load, then: PUBLISH 0x32 (QoS 1) and 0x34 (QoS 2) under their ids, PUBREL 0x62 after PUBREC,
    // gone after PUBACK / PUBCOMP; the incoming QoS 2 id kept from PUBLISH to PUBREL; QoS 0 and 1 in nothing
    expect(store.calls.slice(0, 3)).toEqual(["load", "put o1 32 ref 7", "put o2 34"]);
    expect(store.calls.indexOf("put o2 62")).toBeLessThan(store.calls.indexOf("remove o2"));
    expect(store.calls.indexOf("put i9 ")).toBeLessThan(store.calls.indexOf("remove i9"));
    expect(store.calls).toContain("remove o1");
    expect(store.map.size).toBe(0);
  });

  it("after a reboot, a client made with the same store sends the kept flows again first: the PUBLISH with DUP and its id, the PUBREL; a QoS 2 resend it had already delivered is not delivered again", async () => {
    const { broker } = rig;
    const store = memoryStore();
    // the broker answers nothing the first time: the flows stay open
    broker.script = (r) => r.name === "CONNECT" && broker.respond(r);
    const first = await rig.connected({ clean: false, store } as never);
    first.client.publish("a", "1", { qos: 2 }, () => {});
    first.client.publish("b", "2", { qos: 2 }, () => {});
    const a = await broker.next((r) => r.name === "PUBLISH" && r.packet.topic === "a");
    await broker.next((r) => r.name === "PUBLISH" && r.packet.topic === "b");
    broker.conn.send({ type: type("PUBREC"), messageId: a.packet.messageId });
    await broker.next((r) => r.name === "PUBREL");
    broker.conn.send({ type: type("PUBLISH"), topic: "cmd", payload: "go", qos: 2, messageId: 42 });
    await broker.next((r) => r.name === "PUBREC" && r.packet.messageId === 42);
    await rig.sync(first);
    expect(first.messages().map((m) => m.payload)).toEqual(["go"]);

    // power cut: the socket drops, RAM is gone, the store stays
    first.client.end(true);
    const kept = [...store.map.keys()];
    expect(kept).toEqual([`o${a.packet.messageId}`, expect.stringMatching(/^o\d+$/), "i42"]);
    broker.sessionPresent = true;
    broker.script = (r) => broker.respond(r);
    const from = broker.mark();
    const second = await rig.connected({ clean: false, store, clientId: "dev1" } as never);
    await broker.next((r) => r.name === "PUBLISH" && r.packet.topic === "b", from);
    await rig.sync(second);
    const again = broker.seen(() => true, from).map(brief);
    expect(again.slice(0, 3)).toEqual(["CONNECT", `PUBREL ${a.packet.messageId}`, expect.stringMatching(/^PUBLISH b \d+ dup$/)]);
    // the broker sends the command again (it never got PUBCOMP... it got PUBREC; a resend with DUP)
    broker.conn.send({ type: type("PUBLISH"), topic: "cmd", payload: "go", qos: 2, messageId: 42, dup: true });
    await broker.next((r) => r.name === "PUBREC" && r.packet.messageId === 42, from);
    broker.conn.send({ type: type("PUBREL"), messageId: 42 });
    await broker.next((r) => r.name === "PUBCOMP" && r.packet.messageId === 42, from);
    await rig.sync(second);
    expect(second.messages().filter((m) => m.topic === "cmd")).toEqual([]);
    expect(store.map.size).toBe(0);
  });

  it("clean: true keeps nothing: the store is neither loaded nor written", async () => {
    const store = memoryStore([["o5", "\x32\x05\x00\x01a\x00\x05"]]);
    const dev = await rig.connected({ clean: true, store } as never);
    dev.client.publish("x", "1", { qos: 1 }, () => {});
    await rig.broker.next((r) => r.name === "PUBLISH");
    await rig.sync(dev);
    expect(store.calls).toEqual([]);
  });

  it("a broker that kept no session (sessionPresent 0): the incoming QoS 2 ids in the store go too", async () => {
    const store = memoryStore([["i7", ""]]);
    const dev = await rig.connected({ clean: false, store } as never);
    await rig.sync(dev);
    expect(store.calls).toEqual(["load", "remove i7"]);
    // a new message under that id is a new message
    rig.broker.conn.send({ type: type("PUBLISH"), topic: "t", payload: "new", qos: 2, messageId: 7 });
    await rig.broker.next((r) => r.name === "PUBREC" && r.packet.messageId === 7);
    await rig.sync(dev);
    expect(dev.messages().map((m) => m.payload)).toEqual(["new"]);
  });

  // A store's flash cut short by a power cut or corrupted hands back what is not a packet: sent on every
  // connection, the broker would close each one and nothing new would ever leave.
  const junk: Record<string, unknown[]> = {
    "a PUBLISH cut short": ["o1", "\x32\x0a\x00"],
    "text that is not a packet": ["o1", "hello world"],
    "an empty packet": ["o1", ""],
    "a QoS 0 PUBLISH (nothing to wait for)": ["o1", "\x30\x03\x00\x01a"],
    "a PUBACK": ["o1", "\x40\x02\x00\x01"],
    "a PUBLISH under another id than its key's": ["o2", "\x32\x05\x00\x01a\x00\x05"],
    "a packet with bytes after it": ["o5", "\x32\x05\x00\x01a\x00\x05xx"],
    "an unknown key": ["q9", "x"],
    "a key whose id is not a number": ["oX", "\x32\x05\x00\x01a\x00\x05"],
    "an entry that is not a pair": [null],
  };
  for (const [name, entry] of Object.entries(junk)) {
    it(`load() gives ${name}: it is dropped and said once as an "error", the client connects once and a new QoS 1 publish is acknowledged`, async () => {
      const valid: [string, string] = ["o7", "\x32\x05\x00\x01v\x00\x07"];
      const store = { put() {}, remove() {}, load: () => (entry[0] === null ? [null, valid] : [entry, valid]) };
      const dev = await rig.connected({ clean: false, store } as never);
      let done: unknown = "pending";
      dev.client.publish("x", "1", { qos: 1 }, (err: unknown) => (done = err));
      await rig.broker.next((r) => r.name === "PUBLISH" && r.packet.topic === "x");
      await rig.sync(dev);
      expect(done).toBe(null);
      expect(rig.broker.seen((r) => r.name === "CONNECT")).toHaveLength(1);
      // what was whole is sent again, with DUP
      expect(rig.broker.seen((r) => r.name === "PUBLISH").map(brief)).toEqual(["PUBLISH v 7 dup", expect.stringMatching(/^PUBLISH x \d+$/)]);
      // on the next tick, once the application listens
      rig.clock.tick(1);
      await rig.runtime.settle();
      expect(dev.errors().map((e) => e.message)).toEqual(["store: 1 entries not whole packets, dropped"]);
    });
  }
});
