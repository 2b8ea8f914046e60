// The accounts and access rules every test broker enforces: Mosquitto through its password and
// ACL files, aedes through the equivalent hooks (test/helpers/aedes.ts), so one contract suite
// holds against both.

export interface Account {
  username: string;
  password: string;
}

export const WISP: Account = { username: "wisp", password: "secret" };
export const PEER: Account = { username: "peer", password: "peer" };
export const ACCOUNTS: readonly Account[] = [WISP, PEER];

/** The wisp user may neither subscribe to nor publish under this prefix (SUBACK gives 128). */
export const REFUSED_PREFIX = "wisp/forbidden";

export function isRefusedFor(username: string | undefined, topic: string): boolean {
  return username === WISP.username && (topic === REFUSED_PREFIX || topic.startsWith(`${REFUSED_PREFIX}/`));
}
