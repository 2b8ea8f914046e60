// A broker folder: everything Mosquitto 2 needs to serve a Wisp fleet, written by `wisp broker init`
// from flash.config.json, checked by `wisp broker check`, started by `wisp broker run`, the simulator
// and the tests.
//
//   mosquitto.conf         listeners, logins, ACL, persistence, limits, the bridge   (0600: may hold the bridge password)
//   passwd                 one `$7$` login per node and one for the operator           (0600)
//   acl                    topic access: `pattern` rules for the nodes, a block for the operator
//   dynamic-security.json  makes the broker refuse a node's SUBSCRIBE outside its commands (see acl.ts)
//   passwords.json         the plain passwords, for wisp flash / wisp sim and you       (0600)
//   wisp-broker.json       what the folder was made from (no secrets): init runs again from it
//   ca.crt ca.der ca.key   with TLS: the CA (ca.der is what the nodes take); server.crt server.key
//   central/               with a bridge: the central broker's side (its conf, passwd, acl, certificate)
//   data/                  Mosquitto's persistence (sessions and queued messages)
//
// A node's login name is its {id} (getSerial() on the chip), which lets one `pattern` ACL line serve
// every node; its password is random, kept across runs of init unless rotated.

import { randomBytes } from "node:crypto";
import { displayPath, FileError, parseJson } from "../files.ts";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { hostname, userInfo } from "node:os";
import path from "node:path";
import { macFor, serialFromMac } from "../../host-sim/wifi.ts";
import type { FlashConfig } from "../config.ts";
import { aclAllows, expandId, fleetFilter, ID, parseAcl, renderAcl, renderCentralAcl, renderDynamicSecurity, type FleetAccess } from "./acl.ts";
import { certificateFacts, makeCa, makeLeaf, pemToDerBase64 } from "./certs.ts";
import { findDynamicSecurityPlugin } from "./mosquitto.ts";
import { checkUsername, formatPasswd, parseHash, parsePasswd, verifyPassword } from "./passwd.ts";

/** The largest packet the nodes' MQTT client takes (firmware/mqtt/client.ts, `maxPacket` default). */
export const NODE_MAX_PACKET = 4096;
export const OPERATOR = "wisp-operator";
export const MANIFEST = "wisp-broker.json";
export const PASSWORDS = "passwords.json";
const CA_DAYS = 3650;
const SERVER_DAYS = 825;
/** A server certificate closer than this to its end is renewed by init and reported by check. */
const RENEW_MS = 30 * 86_400_000;

export interface Login {
  username: string;
  password: string;
}

/** What wisp flash (and the simulator) writes into a node's wisp.json: its own login, and the CA with TLS. */
export interface NodeLogin extends Login {
  /** The broker's CA certificate as base64 of its DER bytes (wisp.json `mqtt.ca`; the node runs atob() on it). */
  ca?: string;
}

export interface Manifest {
  version: 1;
  /** flash.config.json `prefix` and `mqtt.clientId`, with {id}. */
  prefix: string;
  clientId: string;
  /** Readings per node per interval (its sensors), and the interval: they size the bridge's queue. */
  sensors: number;
  interval: number;
  qos: number;
  /** The nodes' ids ({id}), which are also their login names. */
  nodes: string[];
  operator: string;
  /** Listener ports; `mqtt` is on every interface unless `mqttLocal`. */
  listeners: { mqtt: number; mqttLocal: boolean; mqtts?: number };
  /** Names the server certificate is for (with TLS). */
  tls?: { hosts: string[] };
  bridge?: BridgeManifest;
  /** The dynamic security plugin's path on the machine init ran on. */
  plugin?: string;
  /** The user Mosquitto runs as when started as root (it owns the 0600 files). */
  user: string;
}

export interface BridgeManifest {
  url: string;
  /** This (edge) broker's name: the bridge's login and client id on the central broker are wisp-bridge-<name>. */
  name: string;
  username: string;
  /** The CA file the bridge verifies the central broker with (with mqtts://), relative to the folder. */
  ca?: string;
  /** Names the central broker's certificate is for (when init makes it). */
  hosts: string[];
  /** The central broker's listener ports (central/mosquitto.conf). */
  port: number;
  tls: boolean;
  /** Messages the edge keeps for the central broker while the link is down. */
  queue: number;
}

export interface Passwords {
  operator: Login;
  bridge?: Login;
  /** id → password; the login name is the id. */
  nodes: Record<string, string>;
}

export interface InitOptions {
  dir: string;
  config: FlashConfig;
  /** The nodes' ids; undefined keeps the folder's list. */
  nodes?: string[];
  /** TLS listener; undefined keeps the folder's choice (first run: on when mqtt.url is mqtts://). */
  tls?: boolean;
  /** More names for the server certificate (the host of mqtt.url, localhost and 127.0.0.1 are always in). */
  hosts?: string[];
  /** Central broker URL; null removes the bridge; undefined keeps it. */
  bridge?: string | null;
  /** A PEM CA file for a central broker whose certificate init did not make. */
  bridgeCa?: string;
  /** Allow a plain mqtt:// bridge (its login and the readings unencrypted): a link that is private. */
  bridgePlain?: boolean;
  /** This broker's name for the bridge (default: the host name). */
  name?: string;
  /** New passwords for every login. */
  rotate?: boolean;
  /** The dynamic security plugin (default: found on this machine); null leaves it out. */
  plugin?: string | null;
}

export interface InitResult {
  dir: string;
  manifest: Manifest;
  added: string[];
  removed: string[];
  rotated: boolean;
  /** Files (re)made this run, relative to dir. */
  certificates: string[];
  notes: string[];
}

export class BrokerFolderError extends Error {}

const file = (dir: string, ...names: string[]) => path.join(dir, ...names);

/** The ids of the nodes `wisp sim --nodes N` runs (seed 0): what `wisp broker init --nodes N` means. */
export function simulatedIds(count: number, seed = 0): string[] {
  return Array.from({ length: count }, (_, i) => serialFromMac(macFor(i, seed)));
}

/** Node ids from a file: one a line; blank lines and `#` comments are skipped. */
export function parseNodesFile(text: string, source: string): string[] {
  const ids: string[] = [],
    problems: string[] = [];
  text.split("\n").forEach((raw, i) => {
    const id = raw.replace(/#.*/, "").trim();
    if (!id) return;
    try {
      checkId(id);
    } catch (err) {
      return void problems.push(`line ${i + 1}: ${(err as Error).message}`);
    }
    if (ids.includes(id)) problems.push(`line ${i + 1}: ${id} is listed twice`);
    else ids.push(id);
  });
  if (problems.length) throw new BrokerFolderError(`${source}:\n${problems.map((p) => `  ${p}`).join("\n")}`);
  return ids;
}

function checkId(id: string): void {
  checkUsername(id);
  if (id === OPERATOR || id.startsWith("wisp-bridge-")) throw new Error(`"${id}" is the name of a Wisp login; a node id cannot be it`);
}

function randomPassword(): string {
  // 144 bits; base64url has no ":" or quoting trouble in mosquitto.conf or a shell
  return randomBytes(18).toString("base64url");
}

function readJson<T>(f: string): T | undefined {
  if (!existsSync(f)) return undefined;
  try {
    return parseJson(readFileSync(f, "utf8"), f) as T;
  } catch (err) {
    // a hand edit gone wrong: where, and what, as for every JSON file Wisp reads
    throw new BrokerFolderError(err instanceof FileError ? err.message : `${displayPath(f)}: ${(err as Error).message}`);
  }
}

export function readManifest(dir: string): Manifest | undefined {
  return readJson<Manifest>(file(dir, MANIFEST));
}

export function readPasswords(dir: string): Passwords | undefined {
  return readJson<Passwords>(file(dir, PASSWORDS));
}

/** Writes through a temporary file and a rename, so a reader never sees half a file; `mode` applies. */
function writeAtomic(f: string, content: string, mode: number): void {
  const tmp = `${f}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, f);
}

function urlParts(url: string, what: string): { scheme: "mqtt" | "mqtts"; host: string; port: number } {
  const m = /^(mqtts?):\/\/(?:[^@/]*@)?(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/.exec(url);
  if (!m) throw new BrokerFolderError(`${what} ${JSON.stringify(url)} is not mqtt://host:port or mqtts://host:port`);
  const scheme = m[1] as "mqtt" | "mqtts";
  return { scheme, host: m[2]!.replace(/^\[|\]$/g, ""), port: m[3] ? Number(m[3]) : scheme === "mqtts" ? 8883 : 1883 };
}

function serverHosts(...extra: (string | undefined)[]): string[] {
  const hosts = ["localhost", "127.0.0.1"];
  for (const h of extra) if (h && h !== "0.0.0.0" && h !== "::" && !hosts.includes(h)) hosts.unshift(h);
  return hosts;
}

/** Writes or updates the folder for `config`; keeps passwords and certificates that are still good. */
export function initBrokerFolder(options: InitOptions): InitResult {
  const dir = path.resolve(options.dir);
  const old = existsSync(dir) ? readManifest(dir) : undefined;
  if (!old && existsSync(dir) && readdirSync(dir).length > 0) {
    throw new BrokerFolderError(`${dir} is not empty and was not written by wisp broker init (no ${MANIFEST}); choose another --out`);
  }
  const config = options.config;
  const prefix = config.prefix,
    clientId = config.mqtt.clientId ?? "wisp-{id}";
  if (prefix.includes("%") || prefix.startsWith("$")) throw new BrokerFolderError(`prefix "${prefix}" must not contain "%" or start with "$" (Mosquitto reads those in ACLs)`);

  const nodes = options.nodes ?? old?.nodes;
  if (!nodes) throw new BrokerFolderError("which nodes? give --nodes FILE (one node id, the chip's serial, a line) or --nodes N (the nodes of wisp sim --nodes N)");
  for (const id of nodes) checkId(id);
  if (!prefix.includes(ID) && nodes.length > 1) {
    throw new BrokerFolderError(`prefix "${prefix}" has no {id}: every node would publish under the same topics and no ACL could keep them apart; use e.g. "wisp/{id}"`);
  }
  if (!clientId.includes(ID) && nodes.length > 1) {
    throw new BrokerFolderError(`mqtt.clientId "${clientId}" has no {id}: every node would have the same client id and they would take over each other's sessions`);
  }

  const nodeUrl = urlParts(config.mqtt.url, "mqtt.url");
  const tls = options.tls ?? (old ? old.tls !== undefined : nodeUrl.scheme === "mqtts");
  const notes: string[] = [];
  if (nodeUrl.scheme === "mqtts" && !tls) throw new BrokerFolderError(`mqtt.url is ${config.mqtt.url}: the nodes use TLS, so the broker needs --tls`);
  if (nodeUrl.scheme === "mqtt" && tls) notes.push(`mqtt.url is ${config.mqtt.url}: the nodes will not use the TLS listener until it is mqtts://${nodeUrl.host}:8883`);
  const listeners =
    nodeUrl.scheme === "mqtts"
      ? { mqtt: 1883, mqttLocal: true, mqtts: nodeUrl.port }
      : { mqtt: nodeUrl.port, mqttLocal: false, mqtts: tls ? (nodeUrl.port === 8883 ? 8884 : 8883) : undefined };

  // The bridge
  let bridge: BridgeManifest | undefined;
  const bridgeUrl = options.bridge === null ? undefined : (options.bridge ?? old?.bridge?.url);
  if (bridgeUrl) {
    const b = urlParts(bridgeUrl, "--bridge");
    if (/@/.test(bridgeUrl)) throw new BrokerFolderError("--bridge takes no login in the URL: init makes the bridge's own login");
    // a bridge crosses the network with its own password and every reading: plain only when asked for
    if (b.scheme === "mqtt" && options.bridge !== undefined && !options.bridgePlain) {
      throw new BrokerFolderError(
        `--bridge ${bridgeUrl} would send the bridge's password and every reading unencrypted over the network: give the central broker's TLS listener (--bridge mqtts://${b.host}:8883; init --tls makes one), or add --bridge-plain when the link is private (a VPN, one host)`,
      );
    }
    const name = (options.name ?? old?.bridge?.name ?? hostname()).replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 40) || "edge";
    const readingsPerHour = Math.ceil((nodes.length * Math.max(1, config.sensors.length) * 3600) / config.interval);
    bridge = {
      url: bridgeUrl,
      name,
      username: `wisp-bridge-${name}`,
      ca: b.scheme === "mqtts" ? (options.bridgeCa ? "bridge-ca.crt" : (old?.bridge?.ca ?? "ca.crt")) : undefined,
      hosts: serverHosts(b.host),
      port: b.port,
      tls: b.scheme === "mqtts",
      // an hour of the fleet's readings (plus status and replies), and never below Mosquitto's default
      queue: Math.max(1000, readingsPerHour + nodes.length * 10),
    };
  }

  if (!bridge && old?.bridge && existsSync(file(dir, "central"))) {
    notes.push(`the bridge is gone; central/ is left as it was (it may hold the central broker's data): delete it when that broker no longer needs it`);
  }

  const plugin = options.plugin === null ? undefined : (options.plugin ?? findDynamicSecurityPlugin());
  if (!plugin) notes.push("Mosquitto's dynamic security plugin was not found: a node subscribing to another node's commands gets a SUBACK but no messages (the ACL still stops them), and logins are not tied to client ids");

  const manifest: Manifest = {
    version: 1,
    prefix,
    clientId,
    sensors: Math.max(1, config.sensors.length),
    interval: config.interval,
    qos: config.qos ?? 1,
    nodes: [...nodes],
    operator: OPERATOR,
    listeners,
    tls: tls ? { hosts: serverHosts(nodeUrl.host, ...(options.hosts ?? old?.tls?.hosts ?? [])) } : undefined,
    bridge,
    plugin,
    user: userInfo().username,
  };

  // Logins: kept unless rotated
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const oldPasswords = options.rotate ? undefined : readPasswords(dir);
  const passwords: Passwords = {
    operator: { username: OPERATOR, password: oldPasswords?.operator?.password ?? randomPassword() },
    bridge: bridge ? { username: bridge.username, password: (oldPasswords?.bridge?.username === bridge.username && oldPasswords.bridge.password) || randomPassword() } : undefined,
    nodes: {},
  };
  const added: string[] = [];
  for (const id of nodes) {
    const kept = oldPasswords?.nodes?.[id];
    passwords.nodes[id] = kept ?? randomPassword();
    if (!old?.nodes.includes(id)) added.push(id);
  }
  const removed = (old?.nodes ?? []).filter((id) => !nodes.includes(id));

  // Certificates: the CA is kept (nodes carry it); a server certificate is made again when it is
  // missing, not signed by the CA, near its end, or not for every host
  const certificates: string[] = [];
  if (tls || bridge?.tls) {
    if (!existsSync(file(dir, "ca.crt")) || !existsSync(file(dir, "ca.key"))) {
      makeCa(dir, "ca", `Wisp broker CA (${manifest.user}@${hostname()})`, CA_DAYS);
      certificates.push("ca.crt", "ca.key");
    }
    writeFileSync(file(dir, "ca.der"), Buffer.from(pemToDerBase64(readFileSync(file(dir, "ca.crt"), "utf8")), "base64"));
  }
  if (tls && serverCertificateStale(dir, "server", manifest.tls!.hosts)) {
    makeLeaf(dir, "server", { commonName: manifest.tls!.hosts[0]!, hosts: manifest.tls!.hosts, days: SERVER_DAYS, usage: "server" });
    certificates.push("server.crt", "server.key");
  }
  if (bridge?.tls && options.bridgeCa) {
    writeFileSync(file(dir, "bridge-ca.crt"), readFileSync(options.bridgeCa, "utf8"));
  }

  writeFolder(dir, manifest, passwords);
  if (bridge) {
    const central = file(dir, "central");
    mkdirSync(file(central, "data"), { recursive: true, mode: 0o700 });
    if (bridge.tls && bridge.ca === "ca.crt" && serverCertificateStale(dir, "central/server", bridge.hosts)) {
      makeLeaf(dir, "central/server", { commonName: bridge.hosts[0]!, hosts: bridge.hosts, days: SERVER_DAYS, usage: "server" });
      certificates.push("central/server.crt", "central/server.key");
    }
  }
  return { dir, manifest, added, removed, rotated: options.rotate === true, certificates, notes };
}

function serverCertificateStale(dir: string, name: string, hosts: string[]): boolean {
  const crt = file(dir, `${name}.crt`);
  if (!existsSync(crt) || !existsSync(file(dir, `${name}.key`))) return true;
  try {
    const facts = certificateFacts(readFileSync(crt, "utf8"));
    return (
      !facts.signedBy(readFileSync(file(dir, "ca.crt"), "utf8")) ||
      facts.validTo.getTime() - Date.now() < RENEW_MS ||
      hosts.some((h) => !facts.hosts.includes(h))
    );
  } catch {
    return true;
  }
}

function fleetAccess(manifest: Manifest): FleetAccess {
  return {
    prefix: manifest.prefix,
    nodes: manifest.nodes.map((id) => ({ username: id, clientId: expandId(manifest.clientId, id) })),
    operator: manifest.operator,
    bridge: manifest.bridge ? { username: manifest.bridge.username, remoteClientId: manifest.bridge.username } : undefined,
  };
}

/** Every generated file from the manifest and the passwords (certificates are made by init). */
function writeFolder(dir: string, manifest: Manifest, passwords: Passwords): void {
  mkdirSync(file(dir, "data"), { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  writeAtomic(file(dir, ".gitignore"), "# passwords and private keys: never commit this folder\n*\n", 0o644);
  writeAtomic(file(dir, PASSWORDS), JSON.stringify(passwords, null, 2) + "\n", 0o600);
  writeAtomic(file(dir, MANIFEST), JSON.stringify(manifest, null, 2) + "\n", 0o644);
  const logins: Login[] = [passwords.operator, ...manifest.nodes.map((id) => ({ username: id, password: passwords.nodes[id]! }))];
  writeAtomic(file(dir, "passwd"), formatPasswd(logins), 0o600);
  const access = fleetAccess(manifest);
  writeAtomic(file(dir, "acl"), renderAcl(access), 0o600);
  if (manifest.plugin) writeAtomic(file(dir, "dynamic-security.json"), renderDynamicSecurity(access), 0o600);
  writeAtomic(file(dir, "mosquitto.conf"), renderConf(dir, manifest, passwords), 0o600);
  if (manifest.bridge) {
    const central = file(dir, "central");
    mkdirSync(file(central, "data"), { recursive: true, mode: 0o700 });
    writeAtomic(file(central, "passwd"), formatPasswd([passwords.operator, passwords.bridge!]), 0o600);
    writeAtomic(file(central, "acl"), renderCentralAcl({ ...access, bridge: access.bridge! }), 0o600);
    writeAtomic(file(central, "mosquitto.conf"), renderCentralConf(dir, manifest), 0o600);
  }
}

function commonSettings(dir: string, manifest: Manifest, queue: number): string[] {
  return [
    "# Every listener shares one set of logins and one ACL.",
    "per_listener_settings false",
    "# No anonymous clients: each node logs in with its own login, the operator with its own.",
    "allow_anonymous false",
    `password_file ${file(dir, "passwd")}`,
    `acl_file ${file(dir, "acl")}`,
    "",
    "# Sessions, subscriptions and queued QoS 1/2 messages survive a restart of the broker; saved",
    "# every minute and at shutdown.",
    "persistence true",
    `persistence_location ${file(dir, "data")}`,
    "autosave_interval 60",
    "",
    "# Limits. A client may have this many QoS 1/2 messages queued while it is away (a node's",
    "# commands, the operator's readings); QoS 0 messages are not queued.",
    `max_queued_messages ${queue}`,
    "queue_qos0_messages false",
    `# No packet larger than the nodes' MQTT client takes (maxPacket ${NODE_MAX_PACKET} bytes) gets in, so none`,
    "# can be delivered to a node, which would drop its connection over it.",
    `max_packet_size ${NODE_MAX_PACKET}`,
    "# Small packets go at once (TCP_NODELAY): Nagle's algorithm would hold an acknowledgement that",
    "# follows another until the node's delayed ACK, keeping a battery node awake for it.",
    "set_tcp_nodelay true",
    "",
    "# Log to the terminal (or the journal under systemd): connections, refusals, errors.",
    "log_dest stdout",
    "log_type error",
    "log_type warning",
    "log_type notice",
    "log_type information",
    "connection_messages true",
    "log_timestamp_format %Y-%m-%dT%H:%M:%S",
    "",
    "# Started as root, Mosquitto drops to this user before reading the files above; it owns them (mode 0600).",
    `user ${manifest.user}`,
    "",
  ];
}

function renderConf(dir: string, manifest: Manifest, passwords: Passwords): string {
  const l = manifest.listeners;
  const lines = [
    "# Mosquitto 2 configuration for the Wisp fleet, written by `wisp broker init`.",
    `# Start it with \`npx wisp broker run ${dir}\` (or mosquitto -c ${file(dir, "mosquitto.conf")});`,
    "# check it with `npx wisp broker check`. Running init again rewrites this file (passwords are kept).",
    "",
    ...commonSettings(dir, manifest, manifest.bridge ? manifest.bridge.queue : 1000),
  ];
  if (manifest.plugin) {
    lines.push(
      "# The dynamic security plugin refuses a node's SUBSCRIBE outside its own commands (SUBACK 0x80;",
      "# Mosquitto 2.0's acl_file never refuses one) and ties each node's login to its client id. It",
      "# decides nothing else: publishing is the acl file's, passwords the passwd file's.",
      `plugin ${manifest.plugin}`,
      `plugin_opt_config_file ${file(dir, "dynamic-security.json")}`,
      "",
    );
  }
  lines.push(
    l.mqttLocal ? "# Plain MQTT, on this machine only (the nodes use TLS below)." : "# Plain MQTT for the nodes (mqtt.url of flash.config.json).",
    l.mqttLocal ? `listener ${l.mqtt} 127.0.0.1` : `listener ${l.mqtt}`,
    "",
  );
  if (l.mqtts !== undefined) {
    lines.push(
      `# MQTT over TLS with the certificate of ${manifest.tls!.hosts.join(", ")}, signed by ca.crt (the nodes carry`,
      "# ca.der). Clients log in with their password; no client certificates.",
      `listener ${l.mqtts}`,
      `certfile ${file(dir, "server.crt")}`,
      `keyfile ${file(dir, "server.key")}`,
      "tls_version tlsv1.2",
      "",
    );
  }
  const b = manifest.bridge;
  if (b) {
    const fleetTopics = fleetFilter(manifest.prefix);
    const qos = Math.max(1, manifest.qos);
    const central = urlParts(b.url, "bridge");
    lines.push(
      `# The bridge to the central broker ${b.url}: every node's messages go there, commands come back.`,
      `connection wisp-${b.name}`,
      `address ${central.host.includes(":") ? `[${central.host}]` : central.host}:${central.port}`,
      "bridge_protocol_version mqttv311",
      "# Its own login on the central broker (central/passwd holds it hashed); the client id matches it.",
      `remote_clientid ${b.username}`,
      `remote_username ${b.username}`,
      `remote_password ${passwords.bridge!.password}`,
      `local_clientid ${b.username}.local`,
      "# Queueing while the link is down: with persistent sessions on both ends, QoS 1 messages wait",
      "# here (up to max_queued_messages above: an hour of the fleet's readings) and go when the link is",
      "# back; commands wait on the central broker.",
      "cleansession false",
      "# Reconnect a second after a failure, backing off (with jitter) to 30 s while the link stays down.",
      "restart_timeout 1 30",
      "keepalive_interval 30",
      "# Tells a central Mosquitto not to send our own messages back.",
      "try_private true",
      `# Connection state (1 up, 0 down) on $SYS/broker/connection/${b.username}/state, here and there.`,
      "notifications true",
    );
    if (b.tls) {
      lines.push(
        "# TLS, verifying the central broker's certificate and host name.",
        `bridge_cafile ${file(dir, b.ca ?? "ca.crt")}`,
        "bridge_insecure false",
        "bridge_tls_version tlsv1.2",
      );
    }
    lines.push(
      "# out: everything the nodes publish (readings, status, replies); in: commands for them.",
      `topic ${fleetTopics}/# out ${qos}`,
      `topic ${fleetTopics}/cmd/+ in 1`,
      "",
    );
  }
  return lines.join("\n");
}

function renderCentralConf(dir: string, manifest: Manifest): string {
  const b = manifest.bridge!;
  const central = file(dir, "central");
  const lines = [
    "# Mosquitto 2 configuration for a central broker that the Wisp edge broker bridges to, written by",
    "# `wisp broker init --bridge`. Use it as it is (`npx wisp broker run " + central + "`), or add the lines",
    "# of central/passwd and central/acl to the files of the broker you have.",
    "",
    ...commonSettings(central, manifest, 1000),
  ];
  if (b.tls) {
    lines.push(
      `# MQTT over TLS for the bridge and the operator, with the certificate of ${b.hosts.join(", ")}.`,
      `listener ${b.port}`,
      `certfile ${file(central, "server.crt")}`,
      `keyfile ${file(central, "server.key")}`,
      "tls_version tlsv1.2",
      "",
    );
  } else {
    lines.push("# Plain MQTT for the bridge and the operator.", `listener ${b.port}`, "");
  }
  return lines.join("\n");
}

/**
 * The folder's operator login as a user types it into mosquitto_sub: the user name, and the password
 * as a shell expression that reads it from the folder's passwords.json when the command runs (so it is
 * never printed), the path as the user would type it (require() wants ./ before a relative one).
 */
export function operatorShellLogin(dir: string, username?: string): { username: string; password: string; cafile: string } {
  const shown = displayPath(path.join(dir, "passwords.json"));
  const passwords = path.isAbsolute(shown) ? shown : `./${shown}`;
  return {
    username: username ?? readManifest(dir)?.operator ?? OPERATOR,
    password: `"$(node -p 'require(${JSON.stringify(passwords)}).operator.password')"`,
    cafile: displayPath(path.join(dir, "ca.crt")),
  };
}

/** The node's login from the folder, or undefined when the node has none (see ensureNodeLogin). */
export function nodeLogin(dir: string, id: string): NodeLogin | undefined {
  const manifest = readManifest(dir);
  const passwords = readPasswords(dir);
  if (!manifest || !passwords) throw new BrokerFolderError(`${path.resolve(dir)} is not a broker folder: make it with npx wisp broker init --out ${dir}`);
  const password = passwords.nodes[id];
  if (!manifest.nodes.includes(id) || password === undefined) return undefined;
  const ca = manifest.tls && existsSync(file(dir, "ca.crt")) ? pemToDerBase64(readFileSync(file(dir, "ca.crt"), "utf8")) : undefined;
  return { username: id, password, ca };
}

/**
 * The node's login, added to the folder (passwd, dynamic-security.json, passwords.json) when it has
 * none. A running Mosquitto reads the new passwd line on SIGHUP (`kill -HUP <pid>`) or restart.
 */
export function ensureNodeLogin(dir: string, id: string): { login: NodeLogin; added: boolean } {
  const existing = nodeLogin(dir, id);
  if (existing) return { login: existing, added: false };
  checkId(id);
  const manifest = readManifest(dir)!;
  const passwords = readPasswords(dir)!;
  manifest.nodes.push(id);
  passwords.nodes[id] = randomPassword();
  writeFolder(path.resolve(dir), manifest, passwords);
  return { login: nodeLogin(dir, id)!, added: true };
}

export interface CheckResult {
  problems: string[];
  notes: string[];
  manifest?: Manifest;
}

/** Validates a folder: files present, modes, every login hashed right, every node an ACL block. */
export function checkBrokerFolder(dirArg: string, options: { config?: FlashConfig; configFile?: string } = {}): CheckResult {
  const dir = path.resolve(dirArg);
  const problems: string[] = [],
    notes: string[] = [];
  if (!existsSync(dir)) return { problems: [`${dir} does not exist: make it with npx wisp broker init --out ${dirArg}`], notes };
  let manifest: Manifest | undefined, passwords: Passwords | undefined;
  try {
    manifest = readManifest(dir);
    passwords = readPasswords(dir);
  } catch (err) {
    return { problems: [(err as Error).message], notes };
  }
  if (!manifest) return { problems: [`${MANIFEST} is missing: this folder was not written by wisp broker init`], notes };
  const rerun = `run npx wisp broker init --out ${dirArg} again (it keeps the passwords)`;

  const required = ["mosquitto.conf", "passwd", "acl", PASSWORDS];
  if (manifest.plugin) required.push("dynamic-security.json");
  if (manifest.tls) required.push("ca.crt", "ca.der", "server.crt", "server.key");
  if (manifest.bridge) required.push("central/mosquitto.conf", "central/passwd", "central/acl");
  if (manifest.bridge?.tls) required.push(manifest.bridge.ca ?? "ca.crt");
  if (manifest.bridge?.tls && manifest.bridge.ca === "ca.crt") required.push("central/server.crt", "central/server.key");
  for (const name of required) if (!existsSync(file(dir, name))) problems.push(`${name} is missing: ${rerun}`);
  const secret = ["mosquitto.conf", "passwd", PASSWORDS, "dynamic-security.json", "ca.key", "server.key", "central/mosquitto.conf", "central/passwd", "central/server.key"];
  for (const name of secret) {
    const f = file(dir, name);
    if (!existsSync(f)) continue;
    const mode = statSync(f).mode & 0o777;
    if (mode & 0o077) problems.push(`${name} has mode ${mode.toString(8).padStart(4, "0")}: others can read it; chmod 600 ${f}`);
  }

  // Logins: each one present, hashed in a format Mosquitto reads, and matching passwords.json
  const checkPasswd = (name: string, logins: Login[]) => {
    const f = file(dir, name);
    if (!existsSync(f)) return;
    const text = readFileSync(f, "utf8");
    if (/^#/m.test(text)) notes.push(`${name} has comment lines: Mosquitto skips them, but mosquitto_passwd 2.0 calls the file corrupt and, changing one login, drops all the others`);
    const entries = parsePasswd(text);
    for (const e of entries) {
      const parsed = parseHash(e.hash);
      if (typeof parsed === "string") problems.push(`${name} line ${e.line} (${e.username}): ${parsed}; Mosquitto ignores this login`);
    }
    for (const login of logins) {
      const entry = entries.find((e) => e.username === login.username);
      if (!entry) problems.push(`${login.username} has no login in ${name}: ${rerun}`);
      else if (typeof parseHash(entry.hash) !== "string" && !verifyPassword(login.password, entry.hash)) {
        problems.push(`${name}: the password of ${login.username} is not the one in ${PASSWORDS} (changed with mosquitto_passwd?); put the new one in ${PASSWORDS} or run npx wisp broker init --rotate`);
      }
    }
    const known = new Set(logins.map((l) => l.username));
    for (const e of entries) if (!known.has(e.username)) notes.push(`${name} has a login "${e.username}" that ${MANIFEST} does not list (added by hand?)`);
  };
  if (!passwords) problems.push(`${PASSWORDS} is missing: the passwords are lost; run npx wisp broker init --out ${dirArg} --rotate and flash the nodes again`);
  else {
    const nodes: Login[] = [];
    for (const id of manifest.nodes) {
      const password = passwords.nodes?.[id];
      if (password === undefined) problems.push(`node ${id} has no password in ${PASSWORDS}: ${rerun}`);
      else nodes.push({ username: id, password });
    }
    checkPasswd("passwd", [passwords.operator, ...nodes]);
    if (manifest.bridge) {
      if (!passwords.bridge) problems.push(`the bridge has no password in ${PASSWORDS}: ${rerun}`);
      else checkPasswd("central/passwd", [passwords.operator, passwords.bridge]);
    }
  }

  // ACL: every node reaches its own topics and no other node's
  const aclFile = file(dir, "acl");
  if (existsSync(aclFile)) {
    const { acl, problems: aclProblems } = parseAcl(readFileSync(aclFile, "utf8"));
    for (const p of aclProblems) problems.push(`acl ${p}`);
    const other = "wisp-check-other-node";
    for (const id of manifest.nodes) {
      const client = { username: id, clientId: expandId(manifest.clientId, id) };
      const own = expandId(manifest.prefix, id),
        theirs = expandId(manifest.prefix, other);
      const missing: string[] = [];
      if (!aclAllows(acl, client, `${own}/status`, "write")) missing.push(`publish ${own}/status`);
      if (!aclAllows(acl, client, `${own}/x`, "write")) missing.push(`publish readings under ${own}`);
      if (!aclAllows(acl, client, `${own}/cmd/x`, "read")) missing.push(`receive ${own}/cmd/+`);
      if (missing.length) problems.push(`node ${id} has no ACL block giving it its own topics (it cannot ${missing.join(", ")}): ${rerun}`);
      if (manifest.prefix.includes(ID) && (aclAllows(acl, client, `${theirs}/x`, "write") || aclAllows(acl, client, `${theirs}/cmd/x`, "read"))) {
        problems.push(`node ${id} may publish or read under another node's prefix (${theirs}): the acl is wider than Wisp writes it; ${rerun}`);
      }
    }
    const fleetTopic = expandId(manifest.prefix, manifest.nodes[0] ?? other);
    const op = { username: manifest.operator, clientId: "operator" };
    if (!aclAllows(acl, op, `${fleetTopic}/status`, "read") || !aclAllows(acl, op, `${fleetTopic}/cmd/x`, "write")) {
      problems.push(`the operator (${manifest.operator}) cannot read the nodes or send commands: ${rerun}`);
    }
  }

  // dynamic-security.json: each node bound to its client id
  if (manifest.plugin) {
    if (!existsSync(manifest.plugin)) problems.push(`the dynamic security plugin is not at ${manifest.plugin} on this machine (made elsewhere?): ${rerun} here`);
    const dyn = readJson<{ clients?: { username: string; clientid?: string }[] }>(file(dir, "dynamic-security.json"));
    for (const id of dyn ? manifest.nodes : []) {
      const c = dyn!.clients?.find((x) => x.username === id);
      if (!c || c.clientid !== expandId(manifest.clientId, id)) problems.push(`dynamic-security.json has no entry tying node ${id} to client id ${expandId(manifest.clientId, id)}: ${rerun}`);
    }
  }

  // mosquitto.conf: the files it names are this folder's (absolute paths: a moved folder breaks them,
  // a copied one still names the original's logins, ACL and data)
  const moved = `run npx wisp broker init --out ${dirArg} (it writes this folder's paths and keeps the passwords)`;
  const elsewhere = new Set<string>();
  for (const conf of ["mosquitto.conf", ...(manifest.bridge ? ["central/mosquitto.conf"] : [])]) {
    const f = file(dir, conf);
    if (!existsSync(f)) continue;
    const text = readFileSync(f, "utf8");
    if (!/^allow_anonymous false$/m.test(text)) problems.push(`${conf} does not say "allow_anonymous false": anyone could connect`);
    for (const m of text.matchAll(/^(password_file|acl_file|plugin_opt_config_file|certfile|keyfile|cafile|bridge_cafile|persistence_location) (.+)$/gm)) {
      const target = m[2]!.trim();
      const inside = !path.relative(dir, target).startsWith("..") && !path.isAbsolute(path.relative(dir, target));
      if (!existsSync(target)) problems.push(`${conf}: ${m[1]} ${target} does not exist${inside ? "" : " (was the folder moved?)"}: ${inside ? rerun : moved}`);
      else if (!inside) elsewhere.add(`${conf}: ${m[1]} ${target}`);
    }
  }
  if (elsewhere.size) {
    const list = [...elsewhere];
    problems.push(`${list.length === 1 ? "a file" : `${list.length} files`} Mosquitto would use ${list.length === 1 ? "is" : "are"} outside this folder (was it copied?): ${list.slice(0, 3).join("; ")}${list.length > 3 ? "; ..." : ""}; ${moved}`);
  }

  // Certificates
  const certs: [string, string[]][] = [];
  if (manifest.tls) certs.push(["server", manifest.tls.hosts]);
  if (manifest.bridge?.tls && manifest.bridge.ca === "ca.crt") certs.push(["central/server", manifest.bridge.hosts]);
  if (certs.length && existsSync(file(dir, "ca.crt"))) {
    const ca = readFileSync(file(dir, "ca.crt"), "utf8");
    for (const [name, hosts] of certs) {
      if (!existsSync(file(dir, `${name}.crt`))) continue;
      try {
        const facts = certificateFacts(readFileSync(file(dir, `${name}.crt`), "utf8"));
        if (!facts.signedBy(ca)) problems.push(`${name}.crt is not signed by ca.crt: ${rerun}`);
        const left = facts.validTo.getTime() - Date.now();
        if (left < 0) problems.push(`${name}.crt expired on ${facts.validTo.toISOString().slice(0, 10)}: ${rerun}`);
        else if (left < RENEW_MS) notes.push(`${name}.crt expires on ${facts.validTo.toISOString().slice(0, 10)}: ${rerun} to renew it`);
        const missing = hosts.filter((h) => !facts.hosts.includes(h));
        if (missing.length) problems.push(`${name}.crt is not for ${missing.join(", ")}: ${rerun}`);
      } catch (err) {
        problems.push(`${name}.crt cannot be read: ${(err as Error).message}`);
      }
    }
  }

  // The config the nodes are flashed from must still match
  if (options.config) {
    const c = options.config;
    const name = options.configFile ?? "flash.config.json";
    const given = options.configFile && options.configFile !== "flash.config.json" ? ` --config ${options.configFile}` : "";
    // init from that config: the nodes' prefix and client id are what the ACL and the logins are made for
    const remake = `make the folder for it with npx wisp broker init --out ${dirArg}${given} (it keeps the passwords), or use a folder made for it`;
    if (c.prefix !== manifest.prefix) problems.push(`${name}'s prefix is "${c.prefix}", the folder was made for "${manifest.prefix}": its ACL would refuse the nodes' topics; ${remake}`);
    const cid = c.mqtt.clientId ?? "wisp-{id}";
    if (cid !== manifest.clientId) problems.push(`${name}'s mqtt.clientId is "${cid}", the folder was made for "${manifest.clientId}": the broker would refuse the nodes' logins (not authorized); ${remake}`);
    const scheme = c.mqtt.url.split(":")[0];
    if (scheme === "mqtts" && !manifest.tls) problems.push(`${name}'s mqtt.url is mqtts:// but the folder has no TLS listener: run npx wisp broker init --out ${dirArg}${given} --tls`);
  }
  return { problems, notes, manifest };
}
