// Client behaviour that the behaviour tests found wrong in the BUILT client (dist/mqtt.js). These
// tests state what the client should do; they fail until firmware/mqtt/ is fixed. Each says what
// the client did instead, as the scripted broker saw it.
import { beforeEach, describe, expect, it } from "vitest";
import { brief, type Rig, useRig } from "../helpers/fake-time-device.ts";

const rigOf = useRig();
let rig: Rig;
beforeEach(() => {
  rig = rigOf();
});

describe("client bugs", () => {
  // Seen: after CONNACK sessionPresent=0 the client sends `SUBSCRIBE id 5 a/+@1` twice, same id,
  // back to back: client.ts tracks the resubscribe in the session and writes it, then
  // redeliver(session) writes every pending entry again, the new SUBSCRIBE included.
  it("restores subscriptions with one SUBSCRIBE after a reconnect without a session", async () => {
    const { broker } = rig;
    const dev = await rig.connected({ reconnectPeriod: 1_000 });
    await new Promise((resolve) => dev.client.subscribe("a/+", { qos: 1 }, resolve));
    const from = broker.mark();
    broker.conn.drop();
    const close = await dev.next("close");
    await rig.nextReconnect(dev, close.index);
    await dev.next("connect", close.index);
    await broker.next("SUBSCRIBE", from);
    await rig.sync();
    expect(broker.seen(() => true, from).map(brief)).toEqual(["CONNECT", expect.stringMatching(/^SUBSCRIBE \d+$/)]);
  });
});
