// Behaviour of the BUILT client (dist/mqtt.js in the host simulator) against a scripted broker, on a
// fake clock: keepalive, timeouts, reconnect backoff, redelivery, QoS 2 exactly once, resubscribe,
// malformed input, queues, end() and argument errors. See test/helpers/scripted-broker.ts.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Rig } from "../helpers/fake-time-device.ts";
import { type Received } from "../helpers/scripted-broker.ts";

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
