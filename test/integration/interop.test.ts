// Interoperability: messages cross between Wisp and other implementations: Mosquitto's own
// command-line clients (against Mosquitto) and MQTT.js (against aedes). A UTF-8 topic and a
// payload holding every byte value go both ways.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../../host-sim/broker.ts";
import { startTestAedes } from "../helpers/aedes.ts";
import { findTool, startMosquitto, type Mosquitto } from "../helpers/mosquitto.ts";
import { describeWithMosquitto } from "../helpers/suites.ts";
import { PEER, WISP } from "../helpers/users.ts";
import { Clients, connected, publish, subscribe, uniqueId, withTimeout } from "../helpers/wisp.ts";

const EVERY_BYTE = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
/** Non-ASCII in two and three UTF-8 bytes: "€" is e2 82 ac, "ü" is c3 bc. */
const utf8Topic = () => `wisp/€/ü/${uniqueId("i")}`;

const clients = new Clients();
afterEach(() => clients.closeAll());

describeWithMosquitto("interop with mosquitto_pub and mosquitto_sub", () => {
  let mosquitto: Mosquitto;
  let scratch: string;
  beforeAll(async () => {
    mosquitto = await startMosquitto();
    scratch = mkdtempSync(join(tmpdir(), "wisp-interop-"));
  });
  afterAll(async () => {
    await mosquitto?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  const auth = ["-h", "127.0.0.1", "-u", PEER.username, "-P", PEER.password];

  /** Runs a Mosquitto command-line client to completion; rejects with its output on failure. */
  function run(tool: "mosquitto_pub" | "mosquitto_sub", args: string[], timeoutMs = 5_000): Promise<Buffer> {
    const binary = findTool(tool);
    if (!binary) throw new Error(`${tool} not found: apt-get install mosquitto-clients`);
    const child = spawn(binary, [...auth, "-p", String(mosquitto.port), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk));
    return withTimeout(
      new Promise<Buffer>((resolve, reject) => {
        child.once("error", reject);
        child.once("close", (code) => {
          if (code === 0) resolve(Buffer.concat(out));
          else reject(new Error(`${tool} ${args.join(" ")} exited with ${code}: ${Buffer.concat(err).toString()}`));
        });
      }),
      timeoutMs,
      `${tool} ${args.join(" ")} did not finish`,
    ).finally(() => child.kill());
  }

  async function wisp() {
    const node = clients.wisp(mosquitto.url, { clientId: uniqueId("wisp"), ...WISP });
    await connected(node);
    return node;
  }

  for (const qos of [0, 1, 2]) {
    it(`mosquitto_sub receives Wisp's QoS ${qos} message on a UTF-8 topic with every byte value`, async () => {
      const topic = utf8Topic();
      const subscriberId = uniqueId("sub");
      const logFrom = mosquitto.log().length;
      // -F "%t|%q|%x": topic, QoS and the payload in hex, so any byte survives the trip through stdout.
      const received = run("mosquitto_sub", ["-i", subscriberId, "-t", topic, "-q", "2", "-C", "1", "-F", "%t|%q|%x"]);
      // mosquitto_sub says nothing when it is subscribed; the broker's log does.
      await mosquitto.waitForLog(new RegExp(`Sending SUBACK to ${subscriberId}`), 5_000, logFrom);
      const node = await wisp();

      await publish(node.client, topic, EVERY_BYTE, { qos });

      const [gotTopic, gotQos, hex] = (await received).toString("utf8").trim().split("|");
      expect(gotTopic).toBe(topic);
      expect(Number(gotQos)).toBe(qos);
      expect(hex).toBe(EVERY_BYTE.toString("hex"));
    });

    it(`Wisp receives mosquitto_pub's QoS ${qos} message on a UTF-8 topic with every byte value`, async () => {
      const topic = utf8Topic();
      const node = await wisp();
      await subscribe(node.client, topic, 2);
      const payloadFile = join(scratch, `${uniqueId("payload")}.bin`);
      writeFileSync(payloadFile, EVERY_BYTE);

      await run("mosquitto_pub", ["-i", uniqueId("pub"), "-t", topic, "-q", String(qos), "-f", payloadFile]);

      const message = await node.inbox.next(topic);
      expect(message.topic).toBe(topic);
      expect(message.qos).toBe(qos);
      expect([...message.payload]).toEqual([...EVERY_BYTE]);
    });
  }

  it("a retained text message from mosquitto_pub reaches Wisp with retain set", async () => {
    const topic = utf8Topic();
    await run("mosquitto_pub", ["-t", topic, "-q", "1", "-r", "-m", "grüße €"]);
    try {
      const node = await wisp();
      await subscribe(node.client, topic, 1);
      const message = await node.inbox.next(topic);
      expect(message.retain).toBe(true);
      expect(message.payload.toString("utf8")).toBe("grüße €");
    } finally {
      await run("mosquitto_pub", ["-t", topic, "-q", "1", "-r", "-n"]);
    }
  });
});

describe("interop with MQTT.js (against aedes)", () => {
  let broker: Broker;
  beforeAll(async () => {
    broker = await startTestAedes();
  });
  afterAll(() => broker?.close());

  async function pair() {
    const node = clients.wisp(broker.url, { clientId: uniqueId("wisp"), ...WISP });
    await connected(node);
    const peer = await clients.peer(broker.url, { clientId: uniqueId("mqttjs"), ...PEER });
    return { node, peer };
  }

  for (const qos of [0, 1, 2] as const) {
    it(`MQTT.js receives Wisp's QoS ${qos} message on a UTF-8 topic with every byte value`, async () => {
      const topic = utf8Topic();
      const { node, peer } = await pair();
      await peer.client.subscribeAsync(topic, { qos: 2 });

      await publish(node.client, topic, EVERY_BYTE, { qos });

      const message = await peer.inbox.next(topic);
      expect(message.topic).toBe(topic);
      expect(message.qos).toBe(qos);
      expect(message.payload.equals(EVERY_BYTE)).toBe(true);
    });

    it(`Wisp receives MQTT.js's QoS ${qos} message on a UTF-8 topic through a wildcard filter`, async () => {
      const topic = utf8Topic();
      const { node, peer } = await pair();
      // "wisp/€/+/<id>": the filter matches level by level on the decoded UTF-8.
      const filter = topic.replace("/ü/", "/+/");
      const granted = await subscribe(node.client, filter, 2);
      expect(granted).toEqual([{ topic: filter, qos: 2 }]);

      await peer.client.publishAsync(topic, EVERY_BYTE, { qos });

      const message = await node.inbox.next(topic);
      expect(message.qos).toBe(qos);
      expect(message.payload.equals(EVERY_BYTE)).toBe(true);
    });
  }

  it("a UTF-8 text payload published by Wisp as a string of UTF-8 bytes arrives as that text", async () => {
    // Wisp payload strings are byte strings (Espruino has no TextEncoder): the app sends UTF-8 bytes.
    const topic = utf8Topic();
    const { node, peer } = await pair();
    await peer.client.subscribeAsync(topic, { qos: 1 });

    await publish(node.client, topic, Buffer.from("Temperatur 21,5 °C", "utf8").toString("latin1"), { qos: 1 });

    expect((await peer.inbox.next(topic)).payload.toString("utf8")).toBe("Temperatur 21,5 °C");
  });
});
