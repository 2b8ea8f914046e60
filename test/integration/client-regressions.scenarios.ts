// Scenarios of client-regressions.test.ts that hang the device in a synchronous loop. A hung loop cannot be
// interrupted inside the test runner's process, so each runs in its own process, which the test kills
// after a deadline: `node --import tsx client-regressions.scenarios.ts <name>`. Each prints progress lines
// (the last one shows where it stuck) and, when it finishes, `RESULT <json>`.
import { brief, Rig, recorder } from "../helpers/fake-time-device.ts";
import { type } from "../helpers/scripted-broker.ts";

export interface ScenarioResult {
  /** Publish/subscribe callbacks, in the order they fired. */
  done: string[];
  /** What the broker received, one brief line per packet. */
  packets: string[];
}

const scenarios: Record<string, (rig: Rig, done: string[]) => Promise<void>> = {
  /** queueSize 2: three publishes before CONNACK, then CONNACK. */
  async "offline-queue"(rig, done) {
    const { broker } = rig;
    broker.script = (r) => r.name !== "CONNECT" && broker.respond(r);
    const dev = rig.connect({ queueSize: 2 });
    const connect = await broker.next("CONNECT");
    for (const n of ["1", "2", "3"]) dev.client.publish("q", n, { qos: 1 }, recorder(done, n));
    console.log("progress: three publishes made offline; sending CONNACK");
    connect.conn.send({ type: type("CONNACK"), sessionPresent: false, returnCode: 0 });
    await dev.next("connect");
    console.log("progress: connected");
    await broker.next((r) => r.name === "PUBLISH" && r.packet.payload === "2");
    await rig.sync();
  },

  /** inflight 2: four QoS 1 publishes while connected, PUBACKs one at a time. */
  async "inflight-window"(rig, done) {
    const { broker } = rig;
    broker.script = (r) => r.name !== "PUBLISH" && broker.respond(r);
    const dev = await rig.connected({ inflight: 2 });
    for (const n of ["1", "2", "3", "4"]) dev.client.publish("w", n, { qos: 1 }, recorder(done, n));
    for (let acked = 0; acked < 4; acked++) {
      const publish = await broker.next((r) => r.name === "PUBLISH" && r.packet.payload === String(acked + 1));
      console.log(`progress: PUBACK for ${acked + 1}`);
      broker.conn.send({ type: type("PUBACK"), messageId: publish.packet.messageId });
    }
    await rig.sync();
  },

  /** What an application does at boot: subscribe and publish right after connect(), before CONNACK. */
  async "subscribe-and-publish-at-boot"(rig, done) {
    const { broker } = rig;
    const dev = rig.connect();
    dev.client.subscribe("cmd/#", { qos: 1 }, recorder(done, "subscribe"));
    dev.client.publish("status", "online", { qos: 1 }, recorder(done, "publish"));
    console.log("progress: subscribe and publish made before CONNACK");
    await dev.next("connect");
    console.log("progress: connected");
    await broker.next("PUBLISH");
    await rig.sync();
  },
};

async function main(name: string): Promise<void> {
  const scenario = scenarios[name];
  if (!scenario) throw new Error(`no scenario ${name}; have ${Object.keys(scenarios).join(", ")}`);
  const rig = await Rig.start();
  const done: string[] = [];
  try {
    await scenario(rig, done);
    const result: ScenarioResult = { done, packets: rig.broker.packets.map(brief) };
    console.log(`RESULT ${JSON.stringify(result)}`);
  } finally {
    await rig.dispose();
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, "/"))) {
  main(process.argv[2]).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
