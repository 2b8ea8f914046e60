// The client built with fewer features (tools/build.ts PROFILES, clientFeatures): what a profile leaves
// out is refused with an error that says so, nothing of it goes on the wire, and what it keeps works as
// in dist/mqtt.js. The smallest profile (QoS 0/1, mqtt://, no will, no login in the URL, no store) runs against
// the scripted broker on a fake clock, built in memory from the same sources.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ALL_FEATURES, bundle, clientDefines, clientFeatures, type ClientFeatures } from "../../tools/build.ts";
import { loadFlashConfig } from "../../tools/config.ts";
import { type Rig, recorder } from "../helpers/fake-time-device.ts";
import { type } from "../helpers/scripted-broker.ts";

const SMALLEST: ClientFeatures = { qos2: false, tls: false, will: false, urlLogin: false, store: false };

describe("clientFeatures: what a node's config can use", () => {
  it("flash.config.json (QoS 1 readings, mqtt://, the status will, a login in mqtt.username, the outbox): no QoS 2, no TLS, the will, no login in the URL, the session store", () => {
    expect(clientFeatures(loadFlashConfig())).toEqual({ qos2: false, tls: false, will: true, urlLogin: false, store: true });
  });
  it("QoS 2 readings and an mqtts:// broker bring QoS 2 and TLS; \"outbox\": false leaves the session store out", () => {
    expect(clientFeatures({ qos: 2, mqtt: { url: "mqtts://broker.lan:8883" } })).toEqual({ qos2: true, tls: true, will: true, urlLogin: false, store: true });
    expect(clientFeatures({ qos: 1, mqtt: { url: "mqtt://broker.lan" }, outbox: false }).store).toBe(false);
  });
  it("dist/mqtt.js has them all", () => {
    expect(Object.values(ALL_FEATURES).every(Boolean)).toBe(true);
  });
});

describe("the smallest profile, on the scripted broker", () => {
  let dir: string;
  let file: string;
  let rig: Rig;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "wisp-profile-"));
    file = path.join(dir, "mqtt.js");
    writeFileSync(file, (await bundle("firmware/mqtt/index.ts", { outfile: file, define: clientDefines(SMALLEST) })).code);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  beforeEach(async () => {
    const { Rig } = await import("../helpers/fake-time-device.ts");
    rig = await Rig.start({ path: file });
    return () => rig.dispose();
  });

  it("refuses mqtts://, a login in the URL, a will and a session store at once, saying why; opens no socket", () => {
    expect(() => rig.mqtt.connect(rig.broker.url.replace("mqtt:", "mqtts:"))).toThrow("unsupported URL");
    expect(() => rig.mqtt.connect(rig.broker.url.replace("mqtt://", "mqtt://user:secret@"))).toThrow("unsupported URL");
    expect(() => rig.mqtt.connect(rig.broker.url, { will: { topic: "w", payload: "x" } })).toThrow(/will: not in this build/);
    const store = { put() {}, remove() {}, load: () => [] };
    expect(() => rig.mqtt.connect(rig.broker.url, { clean: false, store } as never)).toThrow(/store: not in this build/);
    expect(rig.runtime.timerCount).toBe(0);
  });

  it("refuses QoS 2 in publish and subscribe through the callback, and sends neither", async () => {
    const dev = await rig.connected();
    const from = rig.broker.mark();
    const done: string[] = [];
    dev.client.publish("t", "x", { qos: 2 }, recorder(done, "publish"));
    dev.client.subscribe("t/#", { qos: 2 }, recorder(done, "subscribe"));
    expect(done).toEqual(["publish: QoS 2 is not in this build", "subscribe: QoS 2 is not in this build"]);
    await rig.sync();
    expect(rig.broker.seen(() => true, from)).toEqual([]);
  });

  it("publishes at QoS 0 and 1, subscribes at 1 and takes a QoS 1 message, as dist/mqtt.js does", async () => {
    const { broker } = rig;
    const dev = await rig.connected();
    const done: string[] = [];
    dev.client.subscribe("in/+", { qos: 1 }, recorder(done, "subscribe"));
    dev.client.publish("out", "zero", { qos: 0 }, recorder(done, "qos 0"));
    dev.client.publish("out", "one", { qos: 1 }, recorder(done, "qos 1"));
    await broker.next((r) => r.name === "PUBLISH" && r.packet.qos === 1);
    broker.conn.send({ type: type("PUBLISH"), topic: "in/a", payload: "hi", qos: 1, messageId: 3 });
    await broker.next((r) => r.name === "PUBACK" && r.packet.messageId === 3);
    await rig.sync();
    expect(done.sort()).toEqual(["qos 0: ok", "qos 1: ok", "subscribe: ok"]);
    expect(dev.messages().map((m) => [m.topic, m.payload, m.packet.qos])).toEqual([["in/a", "hi", 1]]);
  });

  it("takes a QoS 2 PUBLISH from the broker as malformed (nothing subscribed at QoS 2), closes and reconnects", async () => {
    const { broker } = rig;
    const dev = await rig.connected({ reconnectPeriod: 1_000 });
    broker.conn.send({ type: type("PUBLISH"), topic: "in/a", payload: "x", qos: 2, messageId: 5 });
    const error = await dev.next("error");
    expect(error.args[0].message).toMatch(/malformed packet: bad PUBLISH/);
    const close = await dev.next("close");
    await rig.nextReconnect(dev, close.index);
    await dev.next("connect", close.index);
    expect(dev.messages()).toEqual([]);
  });
});
