// `wisp sim` as a user types it with Mosquitto: a broker folder (each node its own login), two bridged
// brokers, and a broker of the user's that wants a login. No password may reach the terminal.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { freePort } from "../../tools/broker/mosquitto.ts";
import { killLeftovers, secrets, untilOnline, wisp as run, writeConfig, type Run, type RunOptions } from "../helpers/cli.ts";
import { startMosquitto, type Mosquitto } from "../helpers/mosquitto.ts";
import { describeWithMosquitto } from "../helpers/suites.ts";
import { PEER, WISP } from "../helpers/users.ts";

const wisp = (args: string[], options: Partial<RunOptions> = {}) => run(args, { cwd: scratch, ...options });

let scratch: string;
let configFile: string;

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), "wisp-sim-broker-"));
  configFile = join(scratch, "flash.config.json");
  writeConfig(configFile, await freePort());
});
afterEach(killLeftovers);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function expectNoSecret(run: Run, passwords: string[]): void {
  for (const password of passwords) {
    expect(run.out).not.toContain(password);
    expect(run.err).not.toContain(password);
  }
}

describeWithMosquitto("wisp sim with broker folders", () => {
  it("wisp sim --broker-config runs the folder with each node logged in as itself", async () => {
    await wisp(["broker", "init", "--out", "sim-fleet", "--nodes", "2", "-c", configFile]);
    const r = await wisp(["sim", "--broker-config", "sim-fleet", "--nodes", "2", "--duration", "20", "--no-build", "--plain", "-c", configFile], { onLine: untilOnline(2) });
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out.match(/mqtt wisp\/[0-9a-f-]+\/status online/g)).toHaveLength(2);
    expect(r.out).toMatch(/watch: mosquitto_sub -h 127\.0\.0\.1 -p \d+ -u wisp-operator -P "\$\(node -p 'require\(".*sim-fleet\/passwords\.json"\)\.operator\.password'\)" -v -t 'wisp\/#'/);
    expectNoSecret(r, secrets(join(scratch, "sim-fleet")));
    const short = await wisp(["sim", "--broker-config", "sim-fleet", "--nodes", "3", "--duration", "1", "--no-build", "-c", configFile]);
    expect(short.code).toBe(1);
    expect(short.err).toMatch(/1 of the 3 simulated nodes has no login in sim-fleet \(240ac4c1-0edc\): run npx wisp broker init --out sim-fleet --nodes 3/);
  }, 30_000);

  it("wisp sim --topology edge-cloud bridges two brokers; the watcher sees the nodes on the central one", async () => {
    const r = await wisp(["sim", "--topology", "edge-cloud", "--nodes", "1", "--duration", "20", "--no-build", "--plain", "-c", configFile], { onLine: untilOnline(1) });
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/wisp sim: 1 node, edge broker mqtt:\/\/127\.0\.0\.1:\d+ bridged to mqtts:\/\/127\.0\.0\.1:\d+/);
    expect(r.out).toMatch(/watch: mosquitto_sub -h 127\.0\.0\.1 -p \d+ --cafile \S+\/ca\.crt -u wisp-operator/);
    expect(r.out).toMatch(/mqtt wisp\/[0-9a-f-]+\/status online/);
  }, 30_000);
});

/** True when nothing listens on 127.0.0.1:port. */
function closed(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });
}

describeWithMosquitto("wisp sim leaves no broker behind", () => {
  // Without it the sim died of EPIPE (`| head`) or SIGHUP (a closed terminal) and its two Mosquittos
  // lived on, holding their ports; a killed sim's temporary folder stayed too.
  for (const how of ["close-pipe", "SIGHUP"] as const) {
    it(`when ${how === "close-pipe" ? "the reader of its output goes away (| head)" : "its terminal closes (SIGHUP)"}`, async () => {
      let ports: number[] = [];
      const r = await wisp(["sim", "--topology", "edge-cloud", "--nodes", "1", "--duration", "60", "--no-build", "--plain", "-c", configFile], {
        onLine: (line, stop) => {
          const m = /edge broker mqtt:\/\/127\.0\.0\.1:(\d+) bridged to mqtts:\/\/127\.0\.0\.1:(\d+)/.exec(line);
          if (m) ports = [Number(m[1]), Number(m[2])];
          if (line.startsWith("watch:")) stop(how);
        },
      });
      expect(ports).toHaveLength(2);
      expect(r.err).not.toMatch(/EPIPE|Error:/);
      expect(r.code).toBe(0);
      for (const p of ports) expect(await closed(p), `port ${p}`).toBe(true);
    }, 30_000);
  }
});

describeWithMosquitto("wisp sim --broker with a login", () => {
  let broker: Mosquitto;
  beforeAll(async () => {
    broker = await startMosquitto({ logTypes: ["error", "warning", "notice", "information"] });
  });
  afterAll(() => broker?.stop());

  it("takes mqtt://user:pass@host or --username/--password, for the nodes and the watcher alike, and prints neither", async () => {
    const inUrl = await wisp(["sim", "--broker", `mqtt://${WISP.username}:${WISP.password}@127.0.0.1:${broker.port}`, "--duration", "20", "--no-build", "--plain", "-c", configFile], { onLine: untilOnline(1) });
    expect(inUrl.err).toBe("");
    expect(inUrl.code).toBe(0);
    expect(inUrl.out).toMatch(/mqtt wisp\/[0-9a-f-]+\/status online/); // the watcher got in
    expect(inUrl.out).toContain(`watch: mosquitto_sub -h 127.0.0.1 -p ${broker.port} -u ${WISP.username} -P <password> -v -t 'wisp/#'`);
    expect(inUrl.out).not.toContain(WISP.password);
    await broker.waitForLog(new RegExp(`as wisp-sim-observer-\\d+ \\(.*u'${WISP.username}'\\)`));
    await broker.waitForLog(new RegExp(`as wisp-240ac4c1-0eda \\(.*u'${WISP.username}'\\)`));

    const apart = await wisp(["sim", "--broker", `mqtt://127.0.0.1:${broker.port}`, "--username", PEER.username, "--password", PEER.password, "--duration", "20", "--no-build", "--plain", "-c", configFile], { onLine: untilOnline(1) });
    expect(apart.code).toBe(0);
    expect(apart.out).toMatch(/mqtt wisp\/[0-9a-f-]+\/status online/);
    await broker.waitForLog(new RegExp(`as wisp-sim-observer-\\d+ \\(.*u'${PEER.username}'\\)`));

    const refused = await wisp(["sim", "--broker", `mqtt://${WISP.username}:wrong@127.0.0.1:${broker.port}`, "--duration", "1", "--no-build", "-c", configFile]);
    expect(refused.code).toBe(1);
    expect(refused.err).toBe(`wisp sim: --broker mqtt://127.0.0.1:${broker.port}: 127.0.0.1:${broker.port} refused the login as ${WISP.username}: not authorized; for a broker made by \`npx wisp broker init\`, run --broker-config DIR instead of --broker: each node logs in as itself, the watcher as the operator\n`);
    expect(refused.err + refused.out).not.toContain("wrong");
  }, 40_000);
});
