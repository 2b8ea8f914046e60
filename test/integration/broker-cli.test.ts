// The commands as a user types them: `wisp broker init|check|run`. No password may reach the terminal.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { freePort } from "../../tools/broker/mosquitto.ts";
import { killLeftovers, secrets, wisp as run, writeConfig, type Run, type RunOptions } from "../helpers/cli.ts";
import { describeWithMosquitto } from "../helpers/suites.ts";

const wisp = (args: string[], options: Partial<RunOptions> = {}) => run(args, { cwd: scratch, ...options });

let scratch: string;
let configFile: string;
let port: number;

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), "wisp-broker-cli-"));
  port = await freePort();
  configFile = join(scratch, "flash.config.json");
  writeConfig(configFile, port);
});
afterEach(killLeftovers);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function expectNoSecret(run: Run, passwords: string[]): void {
  for (const password of passwords) {
    expect(run.out).not.toContain(password);
    expect(run.err).not.toContain(password);
  }
}

describeWithMosquitto("wisp broker from the command line", () => {
  it("init writes a folder and says what it did without a password; check passes it and names a problem", async () => {
    const usage = await wisp(["broker", "frobnicate"]);
    expect(usage.code).toBe(2);
    expect(usage.err).toContain('unknown subcommand "frobnicate" (init, run or check)');

    const init = await wisp(["broker", "init", "--out", "fleet", "--nodes", "2", "-c", configFile]);
    expect(init.err).toBe("");
    expect(init.code).toBe(0);
    expect(init.out).toContain(`wisp broker init: fleet/ for 2 nodes (prefix wisp/{id}) and the operator (wisp-operator); MQTT on ${port}\n`);
    expect(init.out).toContain("passwords: fleet/passwords.json (mode 0600");
    // commands a user can paste: `wisp` is not on PATH, npx finds it in the project
    expect(init.out).toContain("next: npx wisp broker check fleet && npx wisp broker run fleet");
    expectNoSecret(init, secrets(join(scratch, "fleet")));

    const ok = await wisp(["broker", "check", "fleet", "-c", configFile]);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/wisp broker check: fleet is ready: 2 node logins and the operator's, an ACL block for every node/);
    chmodSync(join(scratch, "fleet", "passwd"), 0o644);
    const bad = await wisp(["broker", "check", "fleet"]);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain("passwd has mode 0644: others can read it; chmod 600");
    chmodSync(join(scratch, "fleet", "passwd"), 0o600);
  }, 30_000);

  // New-user finding: `wisp sim --config examples/garden.json --broker-config broker` with a folder made
  // for flash.config.json never connected and never said why (the device log: not authorized), and
  // `wisp broker check broker --config examples/garden.json` named flash.config.json.
  it("a folder made for another config: wisp sim refuses it before starting, and check names the config it was given", async () => {
    const garden = join(scratch, "garden.json");
    const config = JSON.parse(readFileSync(configFile, "utf8"));
    writeFileSync(garden, JSON.stringify({ ...config, prefix: "garden/{id}", mqtt: { ...config.mqtt, clientId: "garden-{id}" } }));
    const init = await wisp(["broker", "init", "--out", "mixed", "--nodes", "1", "-c", configFile]);
    expect(init.code).toBe(0);
    const remake = "make the folder for it with npx wisp broker init --out mixed --config garden.json (it keeps the passwords), or use a folder made for it";
    const check = await wisp(["broker", "check", "mixed", "--config", "garden.json"]);
    expect(check.code).toBe(1);
    expect(check.err).toContain(`garden.json's prefix is "garden/{id}", the folder was made for "wisp/{id}": its ACL would refuse the nodes' topics; ${remake}`);
    expect(check.err).not.toContain("flash.config.json");
    const sim = await wisp(["sim", "--config", "garden.json", "--broker-config", "mixed", "--no-build", "--duration", "5", "--plain"]);
    expect(sim.code).toBe(1);
    expect(sim.err).toContain(`garden.json's mqtt.clientId is "garden-{id}", the folder was made for "wisp-{id}": the broker would refuse the nodes' logins (not authorized); ${remake}`);
    expect(sim.out).not.toContain("status online");
  }, 30_000);

  // New-user finding: --bridge mqtt://central:1883 was taken silently and wrote a bridge whose password
  // and readings cross the network unencrypted, though the README says the bridge runs over TLS
  it("init refuses a plain mqtt:// bridge unless --bridge-plain says the link is private", async () => {
    const plain = await wisp(["broker", "init", "--out", "plainbridge", "--nodes", "1", "-c", configFile, "--bridge", "mqtt://central:1883"]);
    expect(plain.code).toBe(1);
    expect(plain.err).toContain("--bridge mqtt://central:1883 would send the bridge's password and every reading unencrypted over the network");
    expect(plain.err).toContain("--bridge mqtts://central:8883");
    expect(plain.err).toContain("--bridge-plain");
    const allowed = await wisp(["broker", "init", "--out", "plainbridge", "--nodes", "1", "-c", configFile, "--bridge", "mqtt://central:1883", "--bridge-plain"]);
    expect(allowed.code).toBe(0);
    expect(readFileSync(join(scratch, "plainbridge", "mosquitto.conf"), "utf8")).toMatch(/^address central:1883$/m);
  }, 30_000);

  // New-user finding: init --out /tmp/rv/brk-tls printed ../../tmp/rv/brk-tls/
  it("init names a folder outside where the user is by its absolute path", async () => {
    const elsewhere = mkdtempSync(join(tmpdir(), "wisp-broker-elsewhere-"));
    try {
      const out = join(elsewhere, "brk");
      const init = await wisp(["broker", "init", "--out", out, "--nodes", "1", "-c", configFile]);
      expect(init.code).toBe(0);
      expect(init.out).toContain(`wisp broker init: ${out}/ for 1 node`);
      expect(init.out).toContain(`next: npx wisp broker check ${out} && npx wisp broker run ${out}`);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  }, 30_000);

  it("run starts Mosquitto with the folder in the foreground until Ctrl-C; says so when it cannot", async () => {
    const dir = join(scratch, "fleet");
    const missing = await wisp(["broker", "run", "fleet"], { env: { WISP_MOSQUITTO: "/nonexistent/mosquitto" } });
    expect(missing.code).toBe(1);
    expect(missing.err).toContain("WISP_MOSQUITTO=/nonexistent/mosquitto is not an executable file");

    const operator = JSON.parse(readFileSync(join(dir, "passwords.json"), "utf8")).operator;
    let connected = false;
    const run = await wisp(["broker", "run", "fleet"], {
      onLine: (line, stop) => {
        if (!line.includes("Ctrl-C stops it")) return;
        // Mosquitto's own log goes to the same (piped, so buffered) stdout: try until it accepts
        void (async () => {
          for (let i = 0; i < 100 && !connected; i++) {
            const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { username: operator.username, password: operator.password, reconnectPeriod: 0 }).catch(() => undefined);
            if (c) {
              connected = true;
              await c.endAsync();
            } else await new Promise((r) => setTimeout(r, 50));
          }
        })().finally(stop);
      },
    });
    expect(run.out).toContain(`wisp broker run: mosquitto -c ${join(dir, "mosquitto.conf")}`);
    expect(run.out).toContain(`listening on ${port}; Ctrl-C stops it`);
    expect(connected).toBe(true);
    expect(run.code).toBe(0);
    expectNoSecret(run, secrets(dir));

    // a closed terminal (SIGHUP) stops Mosquitto too: on SIGHUP alone it reloads its files and lives on
    const hup = await wisp(["broker", "run", "fleet"], { onLine: (line, stop) => line.includes("Ctrl-C stops it") && stop("SIGHUP") });
    expect(hup.code).toBe(0);
    const left = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { username: operator.username, password: operator.password, reconnectPeriod: 0, connectTimeout: 2000 }).catch((e: Error) => e);
    expect(left).toBeInstanceOf(Error);

    // the port taken (a Mosquitto service already running, say)
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(port, () => r()));
    try {
      const taken = await wisp(["broker", "run", "fleet"]);
      expect(taken.code).toBe(1);
      expect(taken.err).toContain(`port ${port} is in use`);
      // not only a Mosquitto service: a wisp sim, say; and a way out that keeps it running
      expect(taken.err).toContain("a wisp sim");
      expect(taken.err).toContain("--port P");
      // ... --port moves the listener; the folder's own mosquitto.conf stays as it is
      const other = await freePort();
      let reached = false;
      const moved = await wisp(["broker", "run", "fleet", "--port", String(other)], {
        onLine: (line, stop) => {
          if (!line.includes("Ctrl-C stops it")) return;
          void (async () => {
            for (let i = 0; i < 100 && !reached; i++) {
              const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${other}`, { username: operator.username, password: operator.password, reconnectPeriod: 0 }).catch(() => undefined);
              if (c) {
                reached = true;
                await c.endAsync();
              } else await new Promise((r) => setTimeout(r, 50));
            }
          })().finally(stop);
        },
      });
      expect(moved.out).toContain(`listening on ${other}; Ctrl-C stops it`);
      expect(reached).toBe(true);
      expect(moved.code).toBe(0);
      expect(readFileSync(join(dir, "mosquitto.conf"), "utf8")).toContain(`listener ${port}`);
    } finally {
      await new Promise((r) => busy.close(r));
    }
  }, 30_000);
});
