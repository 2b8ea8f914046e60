// `wisp broker init` folders run by real Mosquitto 2 (started here on loopback): the generated logins,
// ACL, subscription refusals, TLS and bridge, with simulated nodes running dist/firmware.js on a fake
// clock and peers as the operator.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { createSimulation, DEFAULT_NODE_CONFIG, type Simulation } from "../../host-sim/sim.ts";
import { makeCa, pemToDerBase64 } from "../../tools/broker/certs.ts";
import { checkBrokerFolder, initBrokerFolder, readPasswords, simulatedIds } from "../../tools/broker/folder.ts";
import { findDynamicSecurityPlugin, findTool } from "../../tools/broker/mosquitto.ts";
import { hashPassword, parsePasswd, verifyPassword } from "../../tools/broker/passwd.ts";
import { startFleetBrokers, type FleetBrokers } from "../../tools/broker/topology.ts";
import type { FlashConfig } from "../../tools/config.ts";
import { runUntil as runUntilIn, waitFor } from "../helpers/run-until.ts";
import { describeWithMosquitto } from "../helpers/suites.ts";
import { Clients, connected, publish, subscribe, withTimeout } from "../helpers/wisp.ts";

const CONFIG: FlashConfig = {
  board: "esp32-devkitc",
  wifi: { ssid: "lab" },
  mqtt: { url: "mqtts://127.0.0.1:8883", clientId: "wisp-{id}", keepalive: 30 },
  prefix: "wisp/{id}",
  interval: 10,
  qos: 1,
  sensors: [{ name: "climate", type: "bme280", address: 118 }],
};
const IDS = simulatedIds(3);
const [A, B] = IDS as [string, string, string];

let scratch: string;
let dir: string;
let brokers: FleetBrokers;
const clients = new Clients();
let sims: Simulation[] = [];

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), "wisp-broker-it-"));
  dir = join(scratch, "broker");
  // the nodes use TLS (mqtt.url is mqtts://), the operator the plain listener on this machine
  initBrokerFolder({ dir, config: CONFIG, nodes: IDS });
  brokers = await startFleetBrokers({ dir, config: CONFIG, logTypes: ["all"] });
});
afterEach(async () => {
  await clients.closeAll();
  for (const s of sims) await s.stop();
  sims = [];
});
afterAll(async () => {
  await brokers?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

/** Runs node time until `until` holds (see the helper); `limitMs` is the node time it may take. */
function runUntil(s: Simulation, until: () => boolean, limitMs = 120_000): Promise<void> {
  return runUntilIn(s, until, { nodeMs: limitMs });
}

async function simulate(nodes: number, options: Partial<Parameters<typeof createSimulation>[0]> = {}): Promise<Simulation> {
  const s = await createSimulation({
    nodes,
    clock: "fake",
    brokerUrl: brokers.nodeUrl,
    nodeLogin: brokers.nodeLogin,
    observer: brokers.observer,
    config: DEFAULT_NODE_CONFIG,
    ...options,
  });
  sims.push(s);
  return s;
}

const operator = () => {
  const p = readPasswords(dir)!.operator;
  return clients.peer(brokers.edge.url!, { username: p.username, password: p.password });
};

function refusal(url: string, options: Record<string, unknown>): Promise<string> {
  return clients.peer(url, options).then(
    () => "connected",
    (err: Error) => err.message,
  );
}

describeWithMosquitto("wisp broker folders on Mosquitto 2", () => {
  it("every node connects over TLS with its own login; a wrong password and an anonymous client are refused", async () => {
    const s = await simulate(3);
    await runUntil(s, () => s.nodes.every((n) => n.status === "online"));
    for (const id of IDS) {
      // Mosquitto logs the login each client used: the node's own, on the TLS listener
      await brokers.edge.waitForLog(new RegExp(`New client connected from .* as wisp-${id} \\(p2, c0, k30, u'${id}'\\)`));
    }
    expect(brokers.nodeUrl).toMatch(/^mqtts:/);
    expect(await refusal(brokers.edge.url!, { username: A, password: "wrong", clientId: `wisp-${A}` })).toMatch(/Not authorized/);
    expect(await refusal(brokers.edge.url!, { clientId: "anonymous-peer" })).toMatch(/Not authorized/);
    // a node's login works only with its own client id (no taking over another node's session)
    const password = readPasswords(dir)!.nodes[A]!;
    expect(await refusal(brokers.edge.url!, { username: A, password, clientId: `wisp-${B}` })).toMatch(/Not authorized/);
  });

  it("the operator sees every node and commands one", async () => {
    const s = await simulate(3);
    const op = await operator();
    await op.client.subscribeAsync("wisp/#", { qos: 1 });
    // what the operator's own connection got (the simulation's watcher, another connection, may be ahead of it)
    const seen = (id: string) => op.inbox.on(`wisp/${id}/status`).map((m) => m.payload.toString());
    await runUntil(s, () => IDS.every((id) => seen(id).includes("online")) && s.nodes.every((n) => n.readings.climate !== undefined));
    for (const id of IDS) expect(seen(id)).toContain("online");
    op.client.publish(`wisp/${B}/cmd/ping`, "", { qos: 1 });
    await runUntil(s, () => op.inbox.on(`wisp/${B}/reply/ping`).length > 0, 30_000);
    expect(JSON.parse(op.inbox.on(`wisp/${B}/reply/ping`)[0]!.payload.toString())).toMatchObject({ pong: true });
    expect(op.inbox.on(`wisp/${A}/reply/ping`)).toEqual([]);
  });

  it("node A cannot publish under node B's prefix nor subscribe to B's commands; its own topics work", async () => {
    const op = await operator();
    await op.client.subscribeAsync("wisp/#", { qos: 1 });
    const a = clients.wisp(brokers.edge.url!, { clientId: `wisp-${A}`, username: A, password: readPasswords(dir)!.nodes[A] });
    await connected(a);
    const granted = await subscribe(a.client, [`wisp/${A}/cmd/+`, `wisp/${B}/cmd/+`], 1);
    // Mosquitto's acl_file never refuses a SUBSCRIBE; the dynamic security plugin (Debian ships it) does
    expect(granted.map((g) => g.qos)).toEqual([1, findDynamicSecurityPlugin() ? 0x80 : 1]);
    // the broker acknowledges a publish the ACL denies (MQTT 3.1.1 has no negative PUBACK) and drops it
    await publish(a.client, `wisp/${B}/climate`, "forged", { qos: 1 });
    await publish(a.client, `wisp/${B}/status`, "forged offline", { qos: 1, retain: true });
    await publish(a.client, `wisp/${A}/climate`, "mine", { qos: 1 });
    await op.inbox.next((m) => m.topic === `wisp/${A}/climate` && m.payload.toString() === "mine");
    expect(op.inbox.messages.filter((m) => m.payload.toString().startsWith("forged"))).toEqual([]);
    await brokers.edge.waitForLog(new RegExp(`Denied PUBLISH from wisp-${A} .*'wisp/${B}/climate'`));
    // commands: its own arrive, B's do not
    await op.client.publishAsync(`wisp/${B}/cmd/ping`, "for B", { qos: 1 });
    await op.client.publishAsync(`wisp/${A}/cmd/ping`, "for A", { qos: 1 });
    expect((await a.inbox.next(`wisp/${A}/cmd/ping`)).payload.toString()).toBe("for A");
    expect(a.inbox.messages.map((m) => m.topic)).toEqual([`wisp/${A}/cmd/ping`]);
  });

  it("verifies the broker with the generated CA (the simulated node checks it); another CA fails", async () => {
    const other = join(scratch, "other-ca");
    makeCa(other, "ca", "Some other CA", 2);
    const otherCa = pemToDerBase64(readFileSync(join(other, "ca.crt"), "utf8"));
    // node 1 carries the wrong CA: its TLS handshake fails and it never gets on
    const s = await simulate(2, { nodeLogin: (serial, index) => ({ ...brokers.nodeLogin(serial)!, ca: index === 1 ? otherCa : brokers.nodeLogin(serial)!.ca }) });
    await runUntil(s, () => s.nodes[0]!.status === "online" && s.nodes[1]!.log.some((l) => /certificate/i.test(l)), 60_000);
    expect(s.nodes[1]!.log.join("\n")).not.toContain("MQTT connected");
    expect(s.nodes[1]!.log.join("\n")).toMatch(/TLS handshake failed: unable to verify the first certificate\nwisp: MQTT: SSL handshake failed/);
    const op = readPasswords(dir)!.operator;
    expect(await refusal(brokers.edge.tlsUrl!, { ...op, ca: readFileSync(join(other, "ca.crt")) })).toMatch(/self[- ]signed|unable to verify|certificate/i);
    expect(await refusal(brokers.edge.tlsUrl!, { ...op, ca: readFileSync(join(dir, "ca.crt")) })).toBe("connected");
  });

  it("drops a command bigger than the nodes' client takes (max_packet_size) instead of passing it on", async () => {
    const op = await operator();
    const closed = new Promise<void>((resolve) => op.client.once("close", () => resolve()));
    op.client.publish(`wisp/${A}/cmd/interval`, "x".repeat(5000), { qos: 1 });
    await withTimeout(closed, 5_000, "Mosquitto did not close the connection that sent a 5000-byte packet");
  });
});

describeWithMosquitto("Mosquitto password files, both ways", () => {
  it("Mosquitto accepts a login hashed by Wisp", async () => {
    // every login of the suite above is Wisp's; this one is hashed alone and checked by the broker's log
    const line = parsePasswd(readFileSync(join(dir, "passwd"), "utf8")).find((e) => e.username === "wisp-operator")!;
    expect(line.hash).toMatch(/^\$7\$101\$/);
    const op = await operator();
    expect(op.client.connected).toBe(true);
  });

  it("Wisp verifies what mosquitto_passwd writes (-b and -U), and broker check catches a changed password", () => {
    const passwd = findTool("mosquitto_passwd")!;
    const file = join(scratch, "plain");
    writeFileSync(file, "alice:first secret\nbob:s3cr:et\n");
    execFileSync(passwd, ["-U", file], { stdio: "pipe" });
    const entries = parsePasswd(readFileSync(file, "utf8"));
    expect(entries.map((e) => e.hash.slice(0, 7))).toEqual(["$7$101$", "$7$101$"]);
    expect(verifyPassword("first secret", entries[0]!.hash)).toBe(true);
    expect(verifyPassword("first secreT", entries[0]!.hash)).toBe(false);

    const own = join(scratch, "check");
    initBrokerFolder({ dir: own, config: CONFIG, nodes: IDS, plugin: null });
    const password = readPasswords(own)!.nodes[A]!;
    execFileSync(passwd, ["-b", join(own, "passwd"), A, password], { stdio: "pipe" });
    expect(readFileSync(join(own, "passwd"), "utf8")).not.toContain(hashPassword(password)); // a new salt
    expect(checkBrokerFolder(own).problems).toEqual([]);
    execFileSync(passwd, ["-b", join(own, "passwd"), A, "someone else's"], { stdio: "pipe" });
    expect(checkBrokerFolder(own).problems).toEqual([expect.stringContaining(`passwd: the password of ${A} is not the one in passwords.json`)]);
  });
});

describeWithMosquitto("edge and central Mosquitto bridged as wisp broker init --bridge writes them", () => {
  it("readings cross to the central broker and commands come back; with the bridge down for a minute, QoS 1 readings wait at the edge and all arrive after", async () => {
    // Node time is the simulation's fake clock: the nodes publish a minute of readings while the link
    // is down, in a fraction of a second of real time. The edge's bridge notices the cut at once (the
    // link closes its connection) and reconnects a second after it is back (restart_timeout 1 30).
    const config: FlashConfig = { ...CONFIG, mqtt: { ...CONFIG.mqtt, url: "mqtt://127.0.0.1:1883" } };
    const bridged = await startFleetBrokers({ topology: "edge-cloud", config, nodes: 2, logTypes: ["all"] });
    try {
      const ids = bridged.manifest.nodes;
      const s = await simulate(2, {
        brokerUrl: bridged.nodeUrl,
        nodeLogin: bridged.nodeLogin,
        observer: bridged.observer,
        link: bridged.link,
        scenario: { environment: [{ at: 0, temperature: 21, humidity: 45, pressure: 1013 }], faults: [{ at: 120, fault: "bridge-down", for: 60 }] },
      });
      const cloud = await clients.peer(bridged.observer.url, { username: bridged.observer.username, password: bridged.observer.password, ca: bridged.observer.ca });
      await cloud.client.subscribeAsync(["wisp/#", "$SYS/broker/connection/+/state"], { qos: 1 });
      const edge = await clients.peer(bridged.edge.url!, { username: bridged.observer.username, password: bridged.observer.password });
      await edge.client.subscribeAsync("wisp/+/climate", { qos: 1 });
      const readings = (inbox: typeof cloud.inbox, id: string) => inbox.on(`wisp/${id}/climate`).map((m) => m.payload.toString());

      await runUntil(s, () => ids.every((id) => readings(cloud.inbox, id).length >= 2));
      expect(bridged.central!.log()).toMatch(/New bridge connected from .* as wisp-bridge-sim-edge .*u'wisp-bridge-sim-edge'/);
      cloud.client.publish(`wisp/${ids[0]}/cmd/ping`, "", { qos: 1 });
      await runUntil(s, () => cloud.inbox.on(`wisp/${ids[0]}/reply/ping`).length > 0, 30_000);

      // up to the cut
      const faults: string[] = [];
      s.on("fault", (f) => faults.push(`${f.fault} ${f.phase} ${f.at}`));
      await s.advance(120_000 - s.now());
      expect(faults).toEqual(["bridge-down start 120000"]);
      const before = { cloud: ids.map((id) => readings(cloud.inbox, id).length), edge: ids.map((id) => readings(edge.inbox, id).length) };
      // a minute of node time with the link down
      for (let t = 0; t < 60_000; t += 2_000) {
        await s.advance(2_000);
        await new Promise((r) => setTimeout(r, 3));
      }
      expect(faults).toEqual(["bridge-down start 120000", "bridge-down end 180000"]);
      // a reading every 10 s (the edge's peer may get the last ones a little later in real time)
      await waitFor(() => ids.every((id, i) => readings(edge.inbox, id).length - before.edge[i]! >= 5));
      const during = ids.map((id, i) => readings(edge.inbox, id).slice(before.edge[i]));
      // what the nodes published during the outage reaches the central broker, all of it, after
      await withTimeout(
        (async () => {
          while (!ids.every((id, i) => during[i]!.every((p) => readings(cloud.inbox, id).includes(p)))) {
            await s.advance(500);
            await new Promise((r) => setTimeout(r, 20));
          }
        })(),
        15_000,
        "the readings queued at the edge did not all reach the central broker",
      );
      for (const [i, id] of ids.entries()) expect(readings(cloud.inbox, id).length).toBeGreaterThanOrEqual(before.cloud[i]! + during[i]!.length);
      const state = cloud.inbox.on("$SYS/broker/connection/wisp-bridge-sim-edge/state").map((m) => m.payload.toString());
      expect(state.slice(-2)).toEqual(["0", "1"]); // the central broker saw the bridge go and come back
      await bridged.edge.waitForLog(/Sending PUBLISH to wisp-bridge-sim-edge\.local \(d0, q1/);
    } finally {
      await clients.closeAll();
      for (const s of sims) await s.stop();
      sims = [];
      await bridged.stop();
    }
  }, 60_000);
});
