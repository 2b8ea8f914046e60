// The fleet's topic ACL as Wisp writes it, read back by the same rules Mosquitto 2.0 applies
// (src/security_default.c). The real broker enforcing it: test/integration/broker-mosquitto.test.ts.
import { describe, expect, it } from "vitest";
import { aclAllows, fleetFilter, parseAcl, renderAcl, renderCentralAcl, renderDynamicSecurity, topicMatches } from "../../tools/broker/acl.ts";

const A = "240ac4c1-0eda",
  B = "240ac4c1-0edb";
const fleet = {
  prefix: "wisp/{id}",
  nodes: [A, B].map((id) => ({ username: id, clientId: `wisp-${id}` })),
  operator: "wisp-operator",
  bridge: { username: "wisp-bridge-lab", remoteClientId: "wisp-bridge-lab" },
};
const node = (id: string) => ({ username: id, clientId: `wisp-${id}` });
const operator = { username: "wisp-operator", clientId: "dashboard" };

describe("the fleet ACL", () => {
  const { acl, problems } = parseAcl(renderAcl(fleet));

  it("is written with pattern rules derived from the prefix: %u is the node's {id}", () => {
    const text = renderAcl(fleet);
    expect(problems).toEqual([]);
    expect(text).toContain("pattern write wisp/%u/#\n");
    expect(text).toContain("pattern read wisp/%u/cmd/+\n");
    expect(acl.patterns).toHaveLength(2);
  });

  it("lets a node publish only under its own prefix (readings, status, its will, replies)", () => {
    for (const t of [`wisp/${A}/climate`, `wisp/${A}/status`, `wisp/${A}/status/climate`, `wisp/${A}/reply/ping`]) expect(aclAllows(acl, node(A), t, "write")).toBe(true);
    for (const t of [`wisp/${B}/climate`, `wisp/${B}/status`, "wisp/other", "elsewhere/x"]) expect(aclAllows(acl, node(A), t, "write")).toBe(false);
  });

  it("lets a node receive only its own commands", () => {
    expect(aclAllows(acl, node(A), `wisp/${A}/cmd/interval`, "read")).toBe(true);
    expect(aclAllows(acl, node(A), `wisp/${B}/cmd/interval`, "read")).toBe(false);
    expect(aclAllows(acl, node(A), `wisp/${A}/climate`, "read")).toBe(false);
    expect(aclAllows(acl, node(A), `wisp/${A}/cmd/a/b`, "read")).toBe(false);
  });

  it("lets the operator read every node and $SYS and send commands, nothing else", () => {
    expect(aclAllows(acl, operator, `wisp/${B}/climate`, "read")).toBe(true);
    expect(aclAllows(acl, operator, "$SYS/broker/uptime", "read")).toBe(true);
    expect(aclAllows(acl, operator, `wisp/${B}/cmd/ping`, "write")).toBe(true);
    expect(aclAllows(acl, operator, `wisp/${B}/climate`, "write")).toBe(false);
    expect(aclAllows(acl, operator, "other/topic", "read")).toBe(false);
  });

  it("gives nothing to anonymous clients or to a login with + or # in its name or client id", () => {
    expect(aclAllows(acl, { clientId: "x" }, `wisp/${A}/climate`, "read")).toBe(false);
    expect(aclAllows(acl, { username: "+", clientId: "x" }, "wisp/+/climate", "write")).toBe(false);
    expect(aclAllows(acl, { username: A, clientId: "a#" }, `wisp/${A}/climate`, "write")).toBe(false);
  });

  it("writes a block per node for a prefix without {id} (one node)", () => {
    const single = parseAcl(renderAcl({ ...fleet, prefix: "kitchen", nodes: [node(A)] })).acl;
    expect(aclAllows(single, node(A), "kitchen/climate", "write")).toBe(true);
    expect(aclAllows(single, node(A), "kitchen/cmd/ping", "read")).toBe(true);
    expect(aclAllows(single, node(B), "kitchen/climate", "write")).toBe(false);
  });

  it("covers the fleet with a filter where {id} is any level", () => {
    expect(fleetFilter("wisp/{id}")).toBe("wisp/+");
    expect(fleetFilter("site/n-{id}/env")).toBe("site/+/env");
    expect(fleetFilter("kitchen")).toBe("kitchen");
  });

  it("gives the bridge on the central broker the fleet's messages out, commands in, and its state", () => {
    const central = parseAcl(renderCentralAcl(fleet)).acl;
    const bridge = { username: "wisp-bridge-lab", clientId: "wisp-bridge-lab" };
    expect(aclAllows(central, bridge, `wisp/${A}/climate`, "write")).toBe(true);
    expect(aclAllows(central, bridge, `wisp/${A}/cmd/ping`, "read")).toBe(true);
    expect(aclAllows(central, bridge, `wisp/${A}/climate`, "read")).toBe(false);
    expect(aclAllows(central, bridge, "$SYS/broker/connection/wisp-bridge-lab/state", "write")).toBe(true);
    expect(aclAllows(central, node(A), `wisp/${A}/climate`, "write")).toBe(false);
    expect(aclAllows(central, operator, `wisp/${A}/cmd/ping`, "write")).toBe(true);
  });

  it("ties each node to its client id and its commands in the dynamic security config", () => {
    const dyn = JSON.parse(renderDynamicSecurity(fleet));
    expect(dyn.defaultACLAccess).toEqual({ publishClientSend: false, publishClientReceive: false, subscribe: false, unsubscribe: true });
    expect(dyn.clients[0]).toMatchObject({ username: A, clientid: `wisp-${A}`, roles: [{ rolename: `wisp-node-${A}` }] });
    expect(dyn.clients[0].password).toBeUndefined(); // passwords stay with password_file
    expect(dyn.roles[1].acls).toEqual([
      { acltype: "subscribePattern", topic: `wisp/${B}/cmd/+`, priority: 1, allow: true },
      { acltype: "subscribePattern", topic: "#", priority: 0, allow: false },
    ]);
  });
});

describe("acl_file semantics (Mosquitto 2.0)", () => {
  it("match topics as MQTT does, $ topics only by a $ filter", () => {
    expect(topicMatches("a/+/c", "a/b/c")).toBe(true);
    expect(topicMatches("a/#", "a")).toBe(true);
    expect(topicMatches("a/+", "a/b/c")).toBe(false);
    expect(topicMatches("#", "$SYS/x")).toBe(false);
    expect(topicMatches("$SYS/#", "$SYS/x")).toBe(true);
  });

  it("check deny rules first, then the user's rules, then patterns with %c and %u", () => {
    const { acl, problems } = parseAcl("topic read public/#\nuser u\ntopic readwrite a/#\ntopic deny a/secret\npattern write c/%c/#\npattern read u/%u/#\nbogus line\n");
    expect(problems).toEqual(['line 7: unknown keyword "bogus"']);
    const u = { username: "u", clientId: "c1" };
    expect(aclAllows(acl, u, "a/x", "write")).toBe(true);
    expect(aclAllows(acl, u, "a/secret", "read")).toBe(false);
    expect(aclAllows(acl, u, "c/c1/x", "write")).toBe(true);
    expect(aclAllows(acl, u, "c/c1/x", "read")).toBe(false);
    expect(aclAllows(acl, u, "u/u/x", "read")).toBe(true);
    expect(aclAllows(acl, { clientId: "anon" }, "public/x", "read")).toBe(true);
    expect(aclAllows(acl, { clientId: "anon" }, "u/anon/x", "read")).toBe(false); // %u needs a user name
  });
});
