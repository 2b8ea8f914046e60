// `wisp broker init` and `check` on the files alone (the broker running them:
// test/integration/broker-mosquitto.test.ts). Certificates are made with openssl, as .ci/run installs it.
import { chmodSync, cpSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createSimulation } from "../../host-sim/sim.ts";
import { certificateFacts } from "../../tools/broker/certs.ts";
import {
  checkBrokerFolder,
  ensureNodeLogin,
  initBrokerFolder,
  nodeLogin,
  parseNodesFile,
  readPasswords,
  simulatedIds,
  type InitOptions,
} from "../../tools/broker/folder.ts";
import { hashPassword, parsePasswd, verifyPassword } from "../../tools/broker/passwd.ts";
import { renderDeviceConfig, type FlashConfig } from "../../tools/config.ts";
import { TINY_CONFIG, tinyFirmware } from "./sim-tiny-firmware.ts";

const CONFIG: FlashConfig = {
  board: "esp32-devkitc",
  wifi: { ssid: "lab", password: "wifi-secret" },
  mqtt: { url: "mqtt://192.168.1.10:1883", clientId: "wisp-{id}", keepalive: 30 },
  prefix: "wisp/{id}",
  interval: 10,
  qos: 1,
  sensors: [{ name: "climate", type: "bme280", address: 118 }],
};
const IDS = ["30aea40c1d2e", "30aea40c1d2f", "30aea40c1d30"];

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

function folder(): string {
  const d = mkdtempSync(join(tmpdir(), "wisp-broker-test-"));
  dirs.push(d);
  return join(d, "broker");
}

function init(dir: string, options: Partial<InitOptions> = {}) {
  return initBrokerFolder({ dir, config: CONFIG, nodes: IDS, plugin: null, ...options });
}

const mode = (f: string) => statSync(f).mode & 0o777;

describe("wisp broker init", () => {
  it("writes the folder: a $7$ login per node and for the operator, matching passwords.json, secrets 0600", () => {
    const dir = folder();
    const result = init(dir);
    expect(result.added).toEqual(IDS);
    const passwords = readPasswords(dir)!;
    const entries = parsePasswd(readFileSync(join(dir, "passwd"), "utf8"));
    expect(entries.map((e) => e.username)).toEqual(["wisp-operator", ...IDS]);
    for (const e of entries) {
      expect(e.hash).toMatch(/^\$7\$101\$/);
      const password = e.username === "wisp-operator" ? passwords.operator.password : passwords.nodes[e.username]!;
      expect(password).toMatch(/^[A-Za-z0-9_-]{24}$/);
      expect(verifyPassword(password, e.hash)).toBe(true);
    }
    expect(new Set(Object.values(passwords.nodes)).size).toBe(3); // every node its own password
    for (const f of ["passwd", "passwords.json", "mosquitto.conf", "acl"]) expect(mode(join(dir, f))).toBe(0o600);
    expect(mode(dir)).toBe(0o700);
    expect(readFileSync(join(dir, ".gitignore"), "utf8")).toContain("*");
    expect(checkBrokerFolder(dir, { config: CONFIG })).toMatchObject({ problems: [] });
  });

  it("writes a mosquitto.conf with the nodes' port, no anonymous clients, persistence and the nodes' packet limit", () => {
    const dir = folder();
    init(dir, { config: { ...CONFIG, mqtt: { ...CONFIG.mqtt, url: "mqtt://10.0.0.5:1884" } } });
    const conf = readFileSync(join(dir, "mosquitto.conf"), "utf8");
    for (const line of ["listener 1884", "allow_anonymous false", `password_file ${join(dir, "passwd")}`, `acl_file ${join(dir, "acl")}`, "persistence true", "max_packet_size 4096", "max_queued_messages 1000", "queue_qos0_messages false"]) {
      expect(conf.split("\n")).toContain(line);
    }
    // every setting is explained by a comment above it
    expect(conf.split("\n").filter((l) => l.startsWith("#")).length).toBeGreaterThan(10);
    expect(conf).not.toContain("plugin");
  });

  it("keeps passwords when run again, adds and removes nodes, and makes new ones with --rotate", () => {
    const dir = folder();
    init(dir);
    const before = readPasswords(dir)!;
    const again = init(dir, { nodes: [IDS[0]!, IDS[2]!, "30aea40c1d31"] });
    expect(again.added).toEqual(["30aea40c1d31"]);
    expect(again.removed).toEqual([IDS[1]]);
    const after = readPasswords(dir)!;
    expect(after.operator.password).toBe(before.operator.password);
    expect(after.nodes[IDS[0]!]).toBe(before.nodes[IDS[0]!]);
    expect(after.nodes[IDS[1]!]).toBeUndefined();
    expect(parsePasswd(readFileSync(join(dir, "passwd"), "utf8")).map((e) => e.username)).not.toContain(IDS[1]);
    // without --nodes, the folder's list stays
    expect(init(dir, { nodes: undefined }).manifest.nodes).toEqual([IDS[0], IDS[2], "30aea40c1d31"]);
    const rotated = init(dir, { nodes: undefined, rotate: true });
    expect(rotated.rotated).toBe(true);
    const fresh = readPasswords(dir)!;
    expect(fresh.operator.password).not.toBe(before.operator.password);
    expect(fresh.nodes[IDS[0]!]).not.toBe(before.nodes[IDS[0]!]);
    expect(checkBrokerFolder(dir).problems).toEqual([]);
  });

  it("--nodes N means the nodes `wisp sim --nodes N` runs", async () => {
    const sim = await createSimulation({ nodes: 3, clock: "fake", firmware: tinyFirmware(), config: TINY_CONFIG, powerOn: false });
    try {
      expect(simulatedIds(3)).toEqual(sim.nodes.map((n) => n.serial));
    } finally {
      await sim.stop();
    }
  });

  it("reads a nodes file (one id a line, # comments) and names every bad line", () => {
    expect(parseNodesFile("# kitchen\n30aea40c1d2e\n\n30aea40c1d2f  # hall\n", "nodes.txt")).toEqual(["30aea40c1d2e", "30aea40c1d2f"]);
    expect(() => parseNodesFile("a b\nok\nok\nwisp-operator\n", "nodes.txt")).toThrow(
      /nodes\.txt:\n {2}line 1: login name "a b" must be 1 to 64.*\n {2}line 3: ok is listed twice\n {2}line 4: "wisp-operator" is the name of a Wisp login/,
    );
  });

  it("refuses what cannot be made safe: a shared prefix, TLS nodes without --tls, someone else's folder", () => {
    expect(() => init(folder(), { config: { ...CONFIG, prefix: "kitchen" } })).toThrow(/prefix "kitchen" has no \{id\}: every node would publish under the same topics/);
    expect(() => init(folder(), { config: { ...CONFIG, mqtt: { ...CONFIG.mqtt, clientId: "node" } } })).toThrow(/clientId "node" has no \{id\}/);
    expect(() => init(folder(), { config: { ...CONFIG, mqtt: { url: "mqtts://h:8883" } }, tls: false })).toThrow(/the nodes use TLS, so the broker needs --tls/);
    expect(() => init(folder(), { nodes: undefined })).toThrow(/which nodes\? give --nodes FILE/);
    const other = folder();
    init(other);
    rmSync(join(other, "wisp-broker.json"));
    expect(() => init(other)).toThrow(/is not empty and was not written by wisp broker init/);
    // one node may have a fixed prefix
    const single = folder();
    init(single, { config: { ...CONFIG, prefix: "kitchen" }, nodes: [IDS[0]!] });
    expect(checkBrokerFolder(single).problems).toEqual([]);
  });

  it("makes a CA, a server certificate for the nodes' host, localhost and 127.0.0.1, and the CA as DER for the nodes", () => {
    const dir = folder();
    const result = init(dir, { tls: true, hosts: ["broker.lan"] });
    expect(result.certificates).toEqual(["ca.crt", "ca.key", "server.crt", "server.key"]);
    const ca = readFileSync(join(dir, "ca.crt"), "utf8");
    const server = certificateFacts(readFileSync(join(dir, "server.crt"), "utf8"));
    expect(server.signedBy(ca)).toBe(true);
    expect(server.hosts.sort()).toEqual(["127.0.0.1", "192.168.1.10", "broker.lan", "localhost"]);
    expect(readFileSync(join(dir, "ca.der")).toString("base64")).toBe(nodeLogin(dir, IDS[0]!)!.ca);
    for (const key of ["ca.key", "server.key"]) expect(mode(join(dir, key))).toBe(0o600);
    const conf = readFileSync(join(dir, "mosquitto.conf"), "utf8");
    expect(conf).toMatch(/\nlistener 8883\ncertfile .*server\.crt\nkeyfile .*server\.key\ntls_version tlsv1\.2\n/);
    expect(result.notes.join()).toContain("until it is mqtts://192.168.1.10:8883");
    // run again: the CA stays (nodes carry it); a new host name gets a new server certificate
    expect(init(dir, { tls: undefined, hosts: ["broker.lan"] }).certificates).toEqual([]);
    expect(init(dir, { tls: undefined, hosts: ["mqtt.example"] }).certificates).toEqual(["server.crt", "server.key"]);
    expect(readFileSync(join(dir, "ca.crt"), "utf8")).toBe(ca);
    expect(checkBrokerFolder(dir).problems).toEqual([]);
  });

  it("with mqtts:// nodes, serves them TLS and keeps plain MQTT on this machine only", () => {
    const dir = folder();
    const result = init(dir, { config: { ...CONFIG, mqtt: { ...CONFIG.mqtt, url: "mqtts://192.168.1.10:8883" } } });
    expect(result.manifest.listeners).toEqual({ mqtt: 1883, mqttLocal: true, mqtts: 8883 });
    const conf = readFileSync(join(dir, "mosquitto.conf"), "utf8").split("\n");
    expect(conf).toContain("listener 1883 127.0.0.1");
    expect(conf).toContain("listener 8883");
  });

  it("writes a bridge with its own login, TLS to the central broker, queueing, and the central broker's side", () => {
    const dir = folder();
    init(dir, { bridge: "mqtts://central.example:8883", name: "lab" });
    const conf = readFileSync(join(dir, "mosquitto.conf"), "utf8");
    const passwords = readPasswords(dir)!;
    const block = conf.slice(conf.indexOf("connection wisp-lab"));
    for (const line of [
      "address central.example:8883",
      "remote_username wisp-bridge-lab",
      `remote_password ${passwords.bridge!.password}`,
      "cleansession false",
      `bridge_cafile ${join(dir, "ca.crt")}`,
      "bridge_insecure false",
      "topic wisp/+/# out 1",
      "topic wisp/+/cmd/+ in 1",
    ]) expect(block.split("\n")).toContain(line);
    expect(mode(join(dir, "mosquitto.conf"))).toBe(0o600); // it holds the bridge's password
    const central = parsePasswd(readFileSync(join(dir, "central", "passwd"), "utf8"));
    expect(central.map((e) => e.username)).toEqual(["wisp-operator", "wisp-bridge-lab"]);
    expect(verifyPassword(passwords.bridge!.password, central[1]!.hash)).toBe(true);
    expect(certificateFacts(readFileSync(join(dir, "central", "server.crt"), "utf8")).hosts).toContain("central.example");
    expect(readFileSync(join(dir, "central", "mosquitto.conf"), "utf8").split("\n")).toContain("listener 8883");
    expect(checkBrokerFolder(dir).problems).toEqual([]);
    // removing it again
    const removed = init(dir, { nodes: undefined, bridge: null });
    expect(readFileSync(join(dir, "mosquitto.conf"), "utf8")).not.toMatch(/^connection /m);
    expect(removed.notes.join()).toContain("central/ is left as it was");
  });

  it("sizes the bridge's queue for an hour of the fleet's readings", () => {
    const many = Array.from({ length: 50 }, (_, i) => `node-${i}`);
    const result = init(folder(), { nodes: many, bridge: "mqtt://central:1883", bridgePlain: true, config: { ...CONFIG, interval: 5 } });
    expect(result.manifest.bridge!.queue).toBe(50 * 720 + 500);
    expect(readFileSync(join(result.dir, "mosquitto.conf"), "utf8")).toContain(`max_queued_messages ${50 * 720 + 500}\n`);
  });
});

describe("wisp broker check", () => {
  it("reports readable secrets, missing files, a wrong password hash and a bad line, each with the fix", () => {
    const dir = folder();
    init(dir);
    chmodSync(join(dir, "passwords.json"), 0o644);
    rmSync(join(dir, "acl"));
    const passwd = join(dir, "passwd");
    const lines = readFileSync(passwd, "utf8").split("\n");
    const i = lines.findIndex((l) => l.startsWith(`${IDS[1]}:`));
    lines[i] = `${IDS[1]}:${hashPassword("not-the-password")}`;
    lines.push(`${IDS[2]}:plain`);
    writeFileSync(passwd, lines.join("\n"));
    const { problems } = checkBrokerFolder(dir);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^acl is missing: run npx wisp broker init --out .* again \(it keeps the passwords\)$/),
        expect.stringMatching(/^passwords\.json has mode 0644: others can read it; chmod 600 /),
        `passwd: the password of ${IDS[1]} is not the one in passwords.json (changed with mosquitto_passwd?); put the new one in passwords.json or run npx wisp broker init --rotate`,
        expect.stringMatching(new RegExp(`^passwd line \\d+ \\(${IDS[2]}\\): does not start with \\$6\\$ or \\$7\\$`)),
      ]),
    );
  });

  it("finds a node without an ACL block, an ACL wider than Wisp writes, and a node that lost its login", () => {
    const dir = folder();
    init(dir);
    const acl = join(dir, "acl");
    writeFileSync(acl, readFileSync(acl, "utf8").replace("pattern read wisp/%u/cmd/+", "pattern read wisp/+/cmd/+"));
    let problems = checkBrokerFolder(dir).problems;
    expect(problems).toContain(`node ${IDS[0]} may publish or read under another node's prefix (wisp/wisp-check-other-node): the acl is wider than Wisp writes it; run npx wisp broker init --out ${dir} again (it keeps the passwords)`);
    writeFileSync(acl, "user wisp-operator\ntopic read wisp/+/#\ntopic write wisp/+/cmd/+\n");
    problems = checkBrokerFolder(dir).problems;
    expect(problems.filter((p) => /has no ACL block giving it its own topics/.test(p))).toHaveLength(3);
    writeFileSync(join(dir, "passwd"), readFileSync(join(dir, "passwd"), "utf8").split("\n").filter((l) => !l.startsWith(IDS[0]!)).join("\n"));
    expect(checkBrokerFolder(dir).problems).toContain(`${IDS[0]} has no login in passwd: run npx wisp broker init --out ${dir} again (it keeps the passwords)`);
  });

  it("notices a moved folder, a plugin from another machine and a config that changed since init", () => {
    const dir = folder();
    init(dir, { plugin: "/nowhere/mosquitto_dynamic_security.so" });
    const moved = `${dir}-moved`;
    renameSync(dir, moved);
    dirs.push(moved);
    const { problems } = checkBrokerFolder(moved, { config: { ...CONFIG, prefix: "site/{id}" } });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^mosquitto\.conf: password_file .*\/broker\/passwd does not exist \(was the folder moved\?\)/),
        expect.stringMatching(/^the dynamic security plugin is not at \/nowhere\/mosquitto_dynamic_security\.so on this machine/),
        expect.stringMatching(/^flash\.config\.json's prefix is "site\/\{id\}", the folder was made for "wisp\/\{id\}"/),
      ]),
    );
    expect(checkBrokerFolder(join(dir, "nope")).problems[0]).toMatch(/does not exist: make it with npx wisp broker init/);
  });

  // New-user finding: `cp -a brk-tls moved; wisp broker check moved` said ready, and `wisp broker run
  // moved` ran on the original's passwd, ACL and data folder (its mosquitto.conf's absolute paths).
  it("notices a copied folder whose mosquitto.conf still names the original's files, until init rewrites them", () => {
    const dir = folder();
    init(dir, { tls: true });
    const copy = `${dir}-copy`;
    cpSync(dir, copy, { recursive: true });
    dirs.push(copy);
    const { problems } = checkBrokerFolder(copy);
    expect(problems).toEqual([
      expect.stringMatching(
        new RegExp(`^\\d+ files Mosquitto would use are outside this folder \\(was it copied\\?\\): mosquitto\\.conf: password_file ${dir}/passwd; .* run npx wisp broker init --out ${copy} \\(it writes this folder's paths and keeps the passwords\\)$`),
      ),
    ]);
    const before = readPasswords(copy);
    initBrokerFolder({ dir: copy, config: CONFIG, plugin: null });
    expect(checkBrokerFolder(copy).problems).toEqual([]);
    expect(readPasswords(copy)).toEqual(before);
    expect(readFileSync(join(copy, "mosquitto.conf"), "utf8")).not.toContain(`${dir}/`);
  });

  it("a config other than flash.config.json is named, and so is how to make a folder for it", () => {
    const dir = folder();
    init(dir);
    const { problems } = checkBrokerFolder(dir, { config: { ...CONFIG, prefix: "garden/{id}", mqtt: { ...CONFIG.mqtt, clientId: "garden-{id}" } }, configFile: "examples/garden.json" });
    const remake = `make the folder for it with npx wisp broker init --out ${dir} --config examples/garden.json (it keeps the passwords), or use a folder made for it`;
    expect(problems).toEqual([
      `examples/garden.json's prefix is "garden/{id}", the folder was made for "wisp/{id}": its ACL would refuse the nodes' topics; ${remake}`,
      `examples/garden.json's mqtt.clientId is "garden-{id}", the folder was made for "wisp-{id}": the broker would refuse the nodes' logins (not authorized); ${remake}`,
    ]);
  });
});

describe("a node's login for wisp flash and the simulator", () => {
  it("nodeLogin gives the node's own login and the CA; renderDeviceConfig writes them into wisp.json", () => {
    const dir = folder();
    init(dir, { tls: true });
    const login = nodeLogin(dir, IDS[0]!)!;
    expect(login).toEqual({ username: IDS[0], password: readPasswords(dir)!.nodes[IDS[0]!], ca: readFileSync(join(dir, "ca.der")).toString("base64") });
    expect(nodeLogin(dir, "unknown-node")).toBeUndefined();
    const wisp = renderDeviceConfig({ ...CONFIG, mqtt: { ...CONFIG.mqtt, username: "shared", password: { env: "UNSET_PASSWORD" } } }, { login, env: {} });
    expect(wisp.mqtt).toMatchObject({ username: IDS[0], password: login.password, ca: login.ca, url: CONFIG.mqtt.url });
    // without a login the file's own (nothing added)
    expect(renderDeviceConfig(CONFIG).mqtt).not.toHaveProperty("ca");
  });

  it("ensureNodeLogin adds a login for a new board, keeping every other", () => {
    const dir = folder();
    init(dir);
    const before = readPasswords(dir)!;
    const { login, added } = ensureNodeLogin(dir, "30aea40c9999");
    expect(added).toBe(true);
    expect(ensureNodeLogin(dir, "30aea40c9999")).toEqual({ login, added: false });
    const entries = parsePasswd(readFileSync(join(dir, "passwd"), "utf8"));
    expect(verifyPassword(login.password, entries.find((e) => e.username === "30aea40c9999")!.hash)).toBe(true);
    expect(readPasswords(dir)!.nodes[IDS[0]!]).toBe(before.nodes[IDS[0]!]);
    expect(checkBrokerFolder(dir).problems).toEqual([]);
    expect(() => ensureNodeLogin(dir, "bad id")).toThrow(/must be 1 to 64/);
    expect(existsSync(join(dir, "passwd"))).toBe(true);
  });
});
