// Regression tests for bugs the behaviour tests found in the BUILT client (dist/mqtt.js), each with
// what the client used to do, as the scripted broker saw it. The ones that used to hang the device
// in a synchronous loop run in a child process with a deadline, so a regression fails instead of
// freezing the test run.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { beforeEach, describe, expect, it } from "vitest";
import { encode } from "../../firmware/mqtt/codec-server.ts";
import { brief, type Rig, recorder, useRig } from "../helpers/fake-time-device.ts";
import { type } from "../helpers/scripted-broker.ts";
import type { ScenarioResult } from "./client-regressions.scenarios.ts";

const rigOf = useRig();
let rig: Rig;
beforeEach(() => {
  rig = rigOf();
});

describe("client regressions", () => {
  // Seen in bc4ea6f: after CONNACK sessionPresent=0 the client sends
  // `SUBSCRIBE id 5 a/+@1` twice, same id, back to back: it tracks the resubscribe in the session and
  // writes it, then redeliver() writes every pending entry again, the new SUBSCRIBE included.
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

describe("client regressions: end()", () => {
  // Seen: end(false, cb1) then end(false, cb2) while connected: one DISCONNECT, one "end", and only
  // cb2 is called; cb1 never is (client.ts keeps one `ended_` callback and the second call replaces
  // it). Code that waits for its own end() callback (a shutdown step, say) waits for good. MQTT.js
  // calls the callback of an end() made while already ending.
  it("calls the callback of every end() call, once", async () => {
    const dev = await rig.connected();
    const calls: string[] = [];
    dev.client.end(false, () => calls.push("first"));
    dev.client.end(false, () => calls.push("second"));
    await dev.next("end");
    await rig.broker.next("DISCONNECT");
    rig.clock.tick(60_000);
    await rig.runtime.settle();
    expect(calls.sort()).toEqual(["first", "second"]);
    expect(dev.of("end")).toHaveLength(1);
    expect(rig.broker.seen("DISCONNECT")).toHaveLength(1);
  });
});

describe("client regressions: a throwing callback", () => {
  // Seen: the publish callback runs inside the socket's data listener (handle() from received()), so
  // its exception leaves the listener: the device prints "Uncaught Error: callback broke", and the
  // packets that came in the same read stay undecoded in the client's buffer until the broker next
  // sends something (a PINGRESP, keepalive seconds later; with keepalive 0 maybe never). Here: the
  // second PUBACK (its callback does not fire) and a QoS 1 PUBLISH (neither delivered nor PUBACKed).
  // STYLE.md: deliver to user callbacks outside the receive path, each call guarded.
  it("a publish callback that throws does not hold up the packets behind it", async () => {
    const { broker } = rig;
    broker.script = (r) => r.name !== "PUBLISH" && broker.respond(r);
    const dev = await rig.connected();
    const done: string[] = [];
    dev.client.publish("a", "1", { qos: 1 }, () => {
      done.push("a: ok");
      throw new Error("callback broke");
    });
    dev.client.publish("b", "2", { qos: 1 }, recorder(done, "b"));
    const a = await broker.next((r) => r.name === "PUBLISH" && r.packet.topic === "a");
    const b = await broker.next((r) => r.name === "PUBLISH" && r.packet.topic === "b");
    broker.conn.write(
      encode({ type: type("PUBACK"), messageId: a.packet.messageId }) +
        encode({ type: type("PUBACK"), messageId: b.packet.messageId }) +
        encode({ type: type("PUBLISH"), topic: "in", payload: "x", qos: 1, messageId: 7 }),
    );
    await broker.next((r) => r.name === "PUBACK" && r.packet.messageId === 7, 0, 3_000);
    await rig.runtime.settle();
    expect(done).toEqual(["a: ok", "b: ok"]);
    expect(dev.messages().map((m) => m.topic)).toEqual(["in"]);
  });
});

const SCENARIOS = fileURLToPath(new URL("./client-regressions.scenarios.ts", import.meta.url));
/** A scenario takes about a second; one still running after this is stuck in a loop. */
const HUNG_AFTER_MS = 8_000;

/** Runs a scenario of client-regressions.scenarios.ts in its own process, killed if it hangs. */
function runScenario(name: string): Promise<{ result?: ScenarioResult; output: string; hung: boolean }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", SCENARIOS, name], { timeout: HUNG_AFTER_MS, encoding: "utf8" }, (err, stdout, stderr) => {
      const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
      resolve({
        result: line ? JSON.parse(line.slice("RESULT ".length)) : undefined,
        output: `${stdout}${stderr}`.trim(),
        hung: Boolean(err && (err as { killed?: boolean }).killed),
      });
    });
  });
}

// Seen: with two or more publish/subscribe calls waiting (offline, or the in-flight window full), the
// device hangs for good in a synchronous loop as soon as they may go: flush() in client.ts shifts
// the first waiting call and runs it again; ready() then finds the queue not empty (the others still
// wait), so the call queues itself again at the back, and flush() goes round forever. No packet is
// sent, no timer or event runs again; on a board the watchdog or the user must reset it. One waiting
// call is fine, which is why the single-item cases in client-api.test.ts pass.
describe.concurrent("client regressions: two or more waiting calls used to hang the device", () => {
  it("queueSize 2: three publishes while offline, then CONNACK: the first two go out in order", async ({ expect }) => {
    const run = await runScenario("offline-queue");
    expect(run.hung, `the device hung; its last words:\n${run.output}`).toBe(false);
    expect(run.result?.done).toEqual(["3: queue full", "1: ok", "2: ok"]);
    expect(run.result?.packets.filter((p) => p.startsWith("PUBLISH"))).toHaveLength(2);
  });

  it("inflight 2: four QoS 1 publishes go out as PUBACKs free the window", async ({ expect }) => {
    const run = await runScenario("inflight-window");
    expect(run.hung, `the device hung; its last words:\n${run.output}`).toBe(false);
    expect(run.result?.done).toEqual(["1: ok", "2: ok", "3: ok", "4: ok"]);
  });

  it("subscribe and publish called right after connect(), before CONNACK, both go out after it", async ({ expect }) => {
    const run = await runScenario("subscribe-and-publish-at-boot");
    expect(run.hung, `the device hung; its last words:\n${run.output}`).toBe(false);
    expect(run.result?.done).toEqual(["subscribe: ok", "publish: ok"]);
    expect(run.result?.packets.map((p) => p.split(" ")[0])).toEqual(["CONNECT", "SUBSCRIBE", "PUBLISH"]);
  });
});
