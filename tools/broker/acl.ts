// Topic access for the fleet: the Mosquitto acl_file Wisp writes, a reader that decides access the
// way Mosquitto 2.0 does (for `wisp broker check` and tests), and the dynamic-security rules that make
// the broker refuse a node's SUBSCRIBE outside its own commands.
//
// Mosquitto 2.0's acl_file governs PUBLISH in both directions (a denied publish is acknowledged and
// dropped, a denied delivery is not sent) but never a SUBSCRIBE (src/security_default.c,
// mosquitto_acl_check_default: "FIXME - implement ACL subscription strings"), so a node subscribing to
// another node's commands would get a SUBACK granting it and then nothing. The dynamic security
// plugin, which Debian ships with the broker, does check SUBSCRIBE (plugins/dynamic-security/acl.c);
// Wisp gives it only subscribe rules and a node's client id, and defers everything else to the
// acl_file and the password file (a plugin answer of "defer" passes the decision on).

export type Access = "read" | "write";

export interface AclRule {
  access: "read" | "write" | "readwrite" | "deny";
  topic: string;
}

export interface Acl {
  /** `topic` lines before any `user` line: they apply to clients without a user name. */
  anonymous: AclRule[];
  users: Map<string, AclRule[]>;
  patterns: AclRule[];
}

/** MQTT topic filter matching [MQTT-4.7]; wildcards at the first level do not match `$` topics [MQTT-4.7.2-1]. */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith("$") && !filter.startsWith("$")) return false;
  const f = filter.split("/"),
    t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Reads an acl_file as Mosquitto does: `user`, `topic [read|write|readwrite|deny] T`, `pattern ... T`. */
export function parseAcl(text: string): { acl: Acl; problems: string[] } {
  const acl: Acl = { anonymous: [], users: new Map(), patterns: [] },
    problems: string[] = [];
  let current: AclRule[] = acl.anonymous;
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/\r$/, "").trim();
    if (!line || line.startsWith("#")) return;
    const [word, ...rest] = line.split(/\s+/);
    if (word === "user") {
      const name = line.slice(4).trim();
      if (!name) return void problems.push(`line ${i + 1}: "user" without a name`);
      if (!acl.users.has(name)) acl.users.set(name, []);
      current = acl.users.get(name)!;
      return;
    }
    if (word !== "topic" && word !== "pattern") return void problems.push(`line ${i + 1}: unknown keyword "${word}"`);
    let access: AclRule["access"] = "readwrite";
    if (rest.length > 1 && ["read", "write", "readwrite", "deny"].includes(rest[0]!)) access = rest.shift() as AclRule["access"];
    const topic = rest.join(" ");
    if (!topic) return void problems.push(`line ${i + 1}: "${word}" without a topic`);
    // deny rules are checked first (security_default.c puts them at the front of the list)
    const list = word === "pattern" ? acl.patterns : current;
    if (access === "deny") list.unshift({ access, topic });
    else list.push({ access, topic });
  });
  return { acl, problems };
}

function decide(rules: AclRule[], topic: string, access: Access): boolean | undefined {
  for (const rule of rules) {
    if (topic.startsWith("$") && !rule.topic.startsWith("$")) continue;
    if (!topicMatches(rule.topic, topic)) continue;
    if (rule.access === "deny") return false;
    if (rule.access === "readwrite" || rule.access === access) return true;
  }
  return undefined;
}

/**
 * Whether the acl_file lets this client publish (`write`) to or receive (`read`) `topic`, following
 * mosquitto_acl_check_default (2.0): the user's own rules (or the anonymous ones), then the patterns
 * with `%c` (client id) and `%u` (user name) filled in; no match is a denial.
 */
export function aclAllows(acl: Acl, client: { username?: string; clientId: string }, topic: string, access: Access): boolean {
  const own = client.username === undefined ? acl.anonymous : acl.users.get(client.username);
  const mine = own ? decide(own, topic, access) : undefined;
  if (mine !== undefined) return mine;
  const dangerous = /[+#]/;
  if (acl.patterns.length && ((client.username && dangerous.test(client.username)) || dangerous.test(client.clientId))) return false;
  const patterns = acl.patterns
    .filter((p) => client.username !== undefined || !p.topic.includes("%u"))
    .map((p) => ({ access: p.access, topic: p.topic.replace(/%[cu]/g, (m) => (m === "%c" ? client.clientId : client.username!)) }));
  return decide(patterns, topic, access) ?? false;
}

/** `{id}` in a template; a topic level that holds it becomes `+` in filters that cover the whole fleet. */
export const ID = "{id}";

export function expandId(template: string, id: string): string {
  return template.split(ID).join(id);
}

/** The filter for every node's prefix: `wisp/{id}` → `wisp/+`, `site/n-{id}/env` → `site/+/env`. */
export function fleetFilter(prefixTemplate: string): string {
  return prefixTemplate
    .split("/")
    .map((level) => (level.includes(ID) ? "+" : level))
    .join("/");
}

export interface FleetAccess {
  /** flash.config.json `prefix`, with `{id}`. */
  prefix: string;
  /** Node logins: the user name is the node's `{id}`. */
  nodes: readonly { username: string; clientId: string }[];
  operator: string;
  /** The bridge's login on the central broker, and the client id its state notifications use. */
  bridge?: { username: string; remoteClientId: string };
}

const COMMANDS = "cmd/+";

function header(what: string): string[] {
  return [
    `# ${what}`,
    "# Written by `wisp broker init`, which rewrites it from flash.config.json: edit that, not this file.",
    "# Mosquitto reads it at start and on SIGHUP. A client may do only what a line below grants.",
    "",
  ];
}

/** The acl_file of the fleet's (edge) broker: nodes and the operator. */
export function renderAcl(fleet: FleetAccess): string {
  const fleetTopics = fleetFilter(fleet.prefix);
  const lines = header("Topic access for the Wisp nodes of this broker.");
  if (fleet.prefix.includes(ID)) {
    // A node's login name is its {id}, so %u in a pattern stands for that node's {id}.
    const own = expandId(fleet.prefix, "%u");
    lines.push(
      `# Nodes. A node's login name is its id ({id} in flash.config.json, the chip's getSerial()), so %u`,
      `# below is that id and "${fleet.prefix}" is "${own}": each node publishes only under its own prefix`,
      "# (readings, status, its will, replies) and receives only its own commands.",
      `pattern write ${own}/#`,
      `pattern read ${own}/${COMMANDS}`,
      "",
    );
  } else {
    // Without {id} every node would share the prefix; init allows this for one node only.
    for (const node of fleet.nodes) {
      lines.push(`# The node (prefix "${fleet.prefix}" has no {id}, so it gets its own block)`, `user ${node.username}`);
      lines.push(`topic write ${fleet.prefix}/#`, `topic read ${fleet.prefix}/${COMMANDS}`, "");
    }
  }
  lines.push(...operatorBlock(fleet.operator, fleetTopics));
  return lines.join("\n");
}

function operatorBlock(operator: string, fleetTopics: string): string[] {
  return [
    "# The operator (dashboards, mosquitto_sub/_pub, the simulator's watcher): reads every node's",
    "# topics and the broker's $SYS statistics, and sends commands.",
    `user ${operator}`,
    `topic read ${fleetTopics}/#`,
    "topic read $SYS/#",
    `topic write ${fleetTopics}/${COMMANDS}`,
    "",
  ];
}

/** The acl_file of the central broker an edge bridges to: the bridge and the operator. */
export function renderCentralAcl(fleet: FleetAccess & { bridge: NonNullable<FleetAccess["bridge"]> }): string {
  const fleetTopics = fleetFilter(fleet.prefix);
  return [
    ...header("Topic access on the central broker for the Wisp fleet bridged to it."),
    "# The edge broker's bridge: forwards every node's messages here and takes commands back. It may",
    "# also report its own connection state (1 up, 0 down: its will) on $SYS.",
    `user ${fleet.bridge.username}`,
    `topic write ${fleetTopics}/#`,
    `topic read ${fleetTopics}/${COMMANDS}`,
    `topic write $SYS/broker/connection/${fleet.bridge.remoteClientId}/state`,
    "",
    ...operatorBlock(fleet.operator, fleetTopics),
  ].join("\n");
}

/**
 * Configuration of Mosquitto's dynamic security plugin (its JSON file format, 2.0): each node may
 * subscribe to its own commands and nothing else (SUBACK 0x80), and may log in only with its own
 * client id. No passwords (the plugin defers to password_file) and no publish rules (it defers to the
 * acl_file: defaultACLAccess false means "no opinion" for a known client).
 */
export function renderDynamicSecurity(fleet: FleetAccess): string {
  const roles = fleet.nodes.map((node) => ({
    rolename: `wisp-node-${node.username}`,
    acls: [
      { acltype: "subscribePattern", topic: `${expandId(fleet.prefix, node.username)}/${COMMANDS}`, priority: 1, allow: true },
      { acltype: "subscribePattern", topic: "#", priority: 0, allow: false },
    ],
  }));
  const clients = fleet.nodes.map((node) => ({
    username: node.username,
    clientid: node.clientId,
    textdescription: "Wisp node (written by wisp broker init)",
    roles: [{ rolename: `wisp-node-${node.username}` }],
  }));
  return (
    JSON.stringify(
      {
        defaultACLAccess: { publishClientSend: false, publishClientReceive: false, subscribe: false, unsubscribe: true },
        clients,
        groups: [],
        roles,
      },
      null,
      2,
    ) + "\n"
  );
}
