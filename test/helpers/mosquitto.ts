// A private Mosquitto 2 for one test file or benchmark: 127.0.0.1 on free ports, a plain and a TLS
// listener, password and ACL files from test/helpers/users.ts, no persistence, logging to a file.
// Free of vitest so the benchmark can use it too; the skip/fail rule lives in ./suites.ts.
import { execFileSync } from "node:child_process";
import { pbkdf2Sync, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { findDynamicSecurityPlugin, findMosquitto, findTool, freePort, isExecutable, launchMosquitto } from "../../tools/broker/mosquitto.ts";
import { makeCerts, OPENSSL, type TestCerts } from "./certs.ts";
import { ACCOUNTS, PEER, REFUSED_PREFIX, WISP } from "./users.ts";

export { findDynamicSecurityPlugin, findMosquitto, findTool, freePort };

export const MOSQUITTO_MISSING = "Mosquitto not found: apt-get install mosquitto mosquitto-clients to run this suite";

/** Everything startMosquitto needs: the broker, mosquitto_passwd (same package) and openssl. */
export function mosquittoAvailable(): boolean {
  return findMosquitto() !== undefined && findTool("mosquitto_passwd") !== undefined && isExecutable(OPENSSL);
}

export interface MosquittoOptions {
  /** Mosquitto log_type values. Default ["all"]: every packet, for diagnosing failures. */
  logTypes?: string[];
  /** Lines appended to the generated mosquitto.conf (global section). */
  extraConfig?: string;
}

export interface Mosquitto {
  host: string;
  port: number;
  tlsPort: number;
  url: string;
  tlsUrl: string;
  certs: TestCerts;
  dir: string;
  /** True when the dynamic security plugin was found: SUBSCRIBE under REFUSED_PREFIX by wisp gets 0x80. */
  refusesSubscriptions: boolean;
  /** The broker's log so far. */
  log(): string;
  /** Resolves with the first log line matching pattern (written at or after `fromOffset`, a log().length). */
  waitForLog(pattern: RegExp, timeoutMs?: number, fromOffset?: number): Promise<string>;
  /** SIGTERM, wait for exit, remove the temp dir. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Mosquitto's acl_file never refuses a SUBSCRIBE (it only filters delivery; security_default.c
 * skips subscribe checks), so the SUBACK 0x80 test needs the dynamic security plugin, which
 * Debian ships in the mosquitto package. It holds the same accounts and refuses the wisp user
 * REFUSED_PREFIX for subscribe, publish and delivery. Measured on 2.0.11: once the plugin
 * allows an operation the acl_file is not consulted, so its rules must be repeated here; the
 * acl_file remains the fallback when the plugin is missing.
 */
function dynamicSecurityConfig(): string {
  // Hash format of the plugin (and of `mosquitto_ctrl dynsec`): PBKDF2-SHA512, 101 iterations, base64.
  const client = (account: { username: string; password: string }) => {
    const salt = randomBytes(12);
    return {
      username: account.username,
      password: pbkdf2Sync(account.password, salt, 101, 64, "sha512").toString("base64"),
      salt: salt.toString("base64"),
      iterations: 101,
      roles: account === WISP ? [{ rolename: "refused" }] : [],
    };
  };
  return JSON.stringify({
    clients: ACCOUNTS.map(client),
    groups: [],
    roles: [{
      rolename: "refused",
      acls: ["subscribePattern", "publishClientSend", "publishClientReceive"].map((acltype) => ({
        acltype, topic: `${REFUSED_PREFIX}/#`, priority: 1, allow: false,
      })),
    }],
    defaultACLAccess: { publishClientSend: true, publishClientReceive: true, subscribe: true, unsubscribe: true },
  });
}

function aclFile(): string {
  // Mosquitto's ACL wildcards, like subscriptions, do not match topics starting with "$" [MQTT-4.7.2-1],
  // so the "$wisp/..." topics of the $-topic test need their own line.
  return [
    `user ${WISP.username}`,
    `topic deny ${REFUSED_PREFIX}/#`,
    `topic deny ${REFUSED_PREFIX}`,
    "topic readwrite #",
    "topic readwrite $wisp/#",
    "",
    `user ${PEER.username}`,
    "topic readwrite #",
    "topic readwrite $wisp/#",
    "topic read $SYS/#",
    "",
  ].join("\n");
}

function config(dir: string, port: number, tlsPort: number, certs: TestCerts, options: MosquittoOptions, plugin?: string): string {
  return [
    ...(plugin ? [`plugin ${plugin}`, `plugin_opt_config_file ${join(dir, "dynamic-security.json")}`] : []),
    "per_listener_settings false",
    "allow_anonymous false",
    `password_file ${join(dir, "passwd")}`,
    `acl_file ${join(dir, "acl")}`,
    "persistence false",
    // Nagle would hold a small packet for the peer's delayed ACK (40 ms): a simulation on a fake clock moves on without it
    "set_tcp_nodelay true",
    `log_dest file ${join(dir, "mosquitto.log")}`,
    ...(options.logTypes ?? ["all"]).map((type) => `log_type ${type}`),
    "log_timestamp true",
    "log_timestamp_format %H:%M:%S",
    "connection_messages true",
    // Run as root (CI), Mosquitto would otherwise switch to the "mosquitto" user, who cannot read this temp dir.
    `user ${userInfo().username}`,
    options.extraConfig ?? "",
    `listener ${port} 127.0.0.1`,
    `listener ${tlsPort} 127.0.0.1`,
    `cafile ${certs.caFile}`,
    `certfile ${certs.serverCertFile}`,
    `keyfile ${certs.serverKeyFile}`,
    "",
  ].join("\n");
}

export async function startMosquitto(options: MosquittoOptions = {}): Promise<Mosquitto> {
  const mosquitto = findMosquitto();
  const passwd = findTool("mosquitto_passwd");
  if (!mosquitto || !passwd || !isExecutable(OPENSSL)) throw new Error(MOSQUITTO_MISSING);

  const dir = mkdtempSync(join(tmpdir(), "wisp-mosquitto-"));
  try {
    const certs = makeCerts(join(dir, "certs"));
    const passwordFile = join(dir, "passwd");
    writeFileSync(passwordFile, "");
    chmodSync(passwordFile, 0o600);
    for (const account of ACCOUNTS) {
      execFileSync(passwd, ["-b", passwordFile, account.username, account.password], { stdio: "pipe" });
    }
    writeFileSync(join(dir, "acl"), aclFile());
    const plugin = findDynamicSecurityPlugin();
    if (plugin) writeFileSync(join(dir, "dynamic-security.json"), dynamicSecurityConfig());

    // The ports are free when picked but may be taken before Mosquitto binds them: retry with new ones.
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      const tlsPort = await freePort();
      writeFileSync(join(dir, "mosquitto.conf"), config(dir, port, tlsPort, certs, options, plugin));
      try {
        return await launch(mosquitto, dir, port, tlsPort, certs, plugin !== undefined);
      } catch (err) {
        lastError = err;
        if (!/address already in use/i.test(String((err as Error).message))) break;
      }
    }
    throw lastError;
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function launch(
  binary: string,
  dir: string,
  port: number,
  tlsPort: number,
  certs: TestCerts,
  refusesSubscriptions: boolean,
): Promise<Mosquitto> {
  const broker = await launchMosquitto({ binary, config: join(dir, "mosquitto.conf"), logFile: join(dir, "mosquitto.log"), probePort: port });
  return {
    host: "127.0.0.1",
    port,
    tlsPort,
    url: `mqtt://127.0.0.1:${port}`,
    tlsUrl: `mqtts://127.0.0.1:${tlsPort}`,
    certs,
    dir,
    refusesSubscriptions,
    log: broker.log,
    waitForLog: broker.waitForLog,
    stop: async () => {
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
