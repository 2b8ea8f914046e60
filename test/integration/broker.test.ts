// host-sim/broker.ts: the embedded aedes broker of the simulator and the tests.
import net from "node:net";
import tls from "node:tls";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import { startBroker, type Broker } from "../../host-sim/broker.ts";
import { makeCerts } from "../helpers/certs.ts";
import { freePort } from "../helpers/mosquitto.ts";

const started: Broker[] = [];
async function broker(options: Parameters<typeof startBroker>[0]): Promise<Broker> {
  const b = await startBroker(options);
  started.push(b);
  return b;
}
afterEach(async () => {
  await Promise.all(started.splice(0).map((b) => b.close()));
});

function rawConnection(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => resolve(socket));
    socket.on("error", reject);
  });
}

describe("startBroker", () => {
  it("listens on 127.0.0.1 on a random port with port 0 and carries messages", async () => {
    const b = await broker({ port: 0 });
    expect(b.host).toBe("127.0.0.1");
    expect(b.port).toBeGreaterThan(0);
    expect(b.url).toBe(`mqtt://127.0.0.1:${b.port}`);

    const client = await mqtt.connectAsync(b.url, { reconnectPeriod: 0 });
    await client.subscribeAsync("sim/echo", { qos: 1 });
    const message = new Promise<string>((resolve) => client.on("message", (_topic, payload) => resolve(payload.toString())));
    await client.publishAsync("sim/echo", "hello", { qos: 1 });
    expect(await message).toBe("hello");
    await client.endAsync();
  });

  it("with fallback, takes the next free port when the wanted one is taken", async () => {
    const first = await broker({ port: 0 });
    const second = await broker({ port: first.port, fallback: true });
    expect(second.port).toBeGreaterThan(first.port);
    expect(second.url).toBe(`mqtt://127.0.0.1:${second.port}`);
  });

  it("without fallback, a taken port is an error that names it", async () => {
    const first = await broker({ port: 0 });
    await expect(startBroker({ port: first.port })).rejects.toThrow(new RegExp(`127\\.0\\.0\\.1:${first.port}.*EADDRINUSE`));
  });

  it("close() drops connected clients, half-open sockets and the listener at once, and is idempotent", async () => {
    const b = await broker({ port: 0 });
    const client = await mqtt.connectAsync(b.url, { reconnectPeriod: 0 });
    const clientClosed = new Promise<void>((resolve) => client.on("close", () => resolve()));
    const silent = await rawConnection(b.port); // connected, never sends CONNECT
    const silentClosed = new Promise<void>((resolve) => silent.on("close", () => resolve()));

    const start = Date.now();
    await b.close();
    await b.close();
    expect(Date.now() - start).toBeLessThan(1_000);
    await Promise.all([clientClosed, silentClosed]);
    client.end(true);
    expect(b.aedes.closed).toBe(true);

    // The port is free again.
    const again = await broker({ port: b.port });
    expect(again.port).toBe(b.port);
  });

  it("serves mqtts:// with the given certificate and closes fast with a handshake in progress", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wisp-broker-certs-"));
    try {
      const certs = makeCerts(dir);
      const b = await broker({ port: 0, tls: { key: certs.serverKey, cert: certs.serverCert } });
      expect(b.url).toBe(`mqtts://127.0.0.1:${b.port}`);

      const client = await mqtt.connectAsync(b.url, { reconnectPeriod: 0, ca: certs.ca });
      expect(client.connected).toBe(true);
      await client.endAsync();

      const untrusting = tls.connect({ host: "127.0.0.1", port: b.port, ca: certs.wrongCa });
      const refused = new Promise<Error>((resolve) => untrusting.on("error", resolve));
      expect((await refused).message).toMatch(/certificate/);

      const stalled = await rawConnection(b.port); // TCP up, no ClientHello
      const stalledClosed = new Promise<void>((resolve) => stalled.on("close", () => resolve()));
      const start = Date.now();
      await b.close();
      await stalledClosed;
      expect(Date.now() - start).toBeLessThan(1_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("passes authenticate and authorizeSubscribe to aedes", async () => {
    const b = await broker({
      port: await freePort(),
      authenticate: (_client, username, _password, done) => done(null, username === "node"),
      authorizeSubscribe: (_client, subscription, done) => done(null, subscription.topic.startsWith("private/") ? null : subscription),
    });
    await expect(mqtt.connectAsync(b.url, { reconnectPeriod: 0, username: "stranger" })).rejects.toThrow(/Not authorized|Bad username/i);

    const client = await mqtt.connectAsync(b.url, { reconnectPeriod: 0, username: "node" });
    // MQTT.js reports a refusal as an error and echoes the requested QoS; the SUBACK itself has 128.
    const suback = new Promise<number[]>((resolve) =>
      client.on("packetreceive", (packet) => packet.cmd === "suback" && resolve(packet.granted as number[])),
    );
    client.subscribe(["public/a", "private/b"], { qos: 1 }, () => {});
    const granted = await suback;
    expect(granted).toEqual([1, 128]);
    await client.endAsync();
  });
});
