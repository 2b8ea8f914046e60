import net from "node:net";
import FakeTimers from "@sinonjs/fake-timers";
import { afterEach, describe, expect, it } from "vitest";
import { createRuntime, type Runtime } from "../../host-sim/runtime.ts";
import { AccessPoint, ipFor, macFor, serialFromMac, WifiStation } from "../../host-sim/wifi.ts";

let cleanup: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

/** Poll (real time) until `cond` holds; socket IO is real even when the device clock is fake. */
async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function rig() {
  const clock = FakeTimers.createClock(0);
  const ap = new AccessPoint({ ssid: "lab", password: "secret" });
  const station = new WifiStation({ ap, clock, mac: macFor(0), ip: ipFor(0), joinMs: 1500, failMs: 4000 });
  const runtime: Runtime = createRuntime({ clock, plugins: [station.plugin()] });
  cleanup.push(() => {
    runtime.dispose();
    station.dispose();
  });
  const run = (src: string) => runtime.run(src);
  run(`var log = []; var W = require("Wifi");
    W.on("associated", function () { log.push("associated"); });
    W.on("connected", function (d) { log.push("connected " + d.ip); });
    W.on("disconnected", function (d) { log.push("disconnected " + d.msg + " " + d.reason); });`);
  return { clock, ap, station, runtime, run, log: () => runtime.global.log as string[] };
}

async function server(): Promise<{ port: number; closed: () => number }> {
  let closed = 0;
  const srv = net.createServer((s) => {
    s.on("close", () => closed++);
    s.on("error", () => {});
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  cleanup.push(() => new Promise<void>((r) => srv.close(() => r())));
  return { port: (srv.address() as net.AddressInfo).port, closed: () => closed };
}

describe("simulated Wi-Fi (ESP32 Espruino)", () => {
  it("joins after the association delay: callback(null) between 'associated' and 'connected', then an IP", async () => {
    const { clock, runtime, run, log } = rig();
    run(`W.connect("lab", { password: "secret" }, function (err) { log.push("cb " + err); });`);
    expect(run(`W.getStatus().station`)).toBe("connecting");
    clock.tick(1499);
    await runtime.settle();
    expect(log()).toEqual([]);
    clock.tick(1);
    await runtime.settle();
    expect(log()).toEqual(["associated", "cb null", "connected 10.0.0.2"]);
    expect(run(`W.getStatus().station`)).toBe("connected");
    expect(run(`W.getIP().mac`)).toBe(macFor(0));
  });

  it("reports NO_AP_FOUND for an unknown network or a dead access point, AUTH_FAIL for a wrong password", async () => {
    const { clock, ap, runtime, run, log } = rig();
    run(`W.connect("other", { password: "secret" }, function (err) { log.push("cb " + err); });`);
    clock.tick(4000);
    await runtime.settle();
    run(`W.connect("lab", { password: "wrong" }, function (err) { log.push("cb " + err); });`);
    clock.tick(4000);
    await runtime.settle();
    ap.down();
    run(`W.connect("lab", { password: "secret" }, function (err) { log.push("cb " + err); });`);
    clock.tick(4000);
    await runtime.settle();
    expect(log()).toEqual([
      "disconnected NO_AP_FOUND 201", "cb NO_AP_FOUND",
      "disconnected AUTH_FAIL 202", "cb AUTH_FAIL",
      "disconnected NO_AP_FOUND 201", "cb NO_AP_FOUND",
    ]);
    expect(run(`W.getStatus().station`)).toBe("off");
  });

  it("when the access point drops: 'disconnected' fires and open sockets close", async () => {
    const { clock, ap, runtime, run, log } = rig();
    const srv = await server();
    run(`W.connect("lab", { password: "secret" });`);
    clock.tick(2000);
    await runtime.settle();
    run(`var sock = require("net").connect({ host: "127.0.0.1", port: ${srv.port} }, function () { log.push("socket open"); });
      sock.on("close", function () { log.push("socket closed"); });`);
    await until(() => log().includes("socket open"), "the socket to open");
    ap.down();
    await until(() => log().includes("socket closed"), "the socket to close");
    expect(log()).toContain("disconnected BEACON_TIMEOUT 200");
    expect(run(`W.getStatus().station`)).toBe("off");
    await until(() => srv.closed() === 1, "the server to see the close");
  });

  it("without a link, net.connect does not throw but fails with 'no route' then closes (ESP32 networking stays 'online')", async () => {
    const { runtime, run, log } = rig();
    const srv = await server();
    run(`var s = require("net").connect({ host: "127.0.0.1", port: ${srv.port} }, function () { log.push("connected?!"); });
      s.on("error", function (e) { log.push("error " + e.code + " " + e.message); });
      s.on("close", function (hadError) { log.push("close " + hadError); });`);
    await until(() => log().some((l) => l.startsWith("close")), "close");
    await runtime.settle();
    expect(log()).toEqual(["error -4 no route", "close true"]);
  });

  it("disconnect() closes sockets, fires 'disconnected' (ASSOC_LEAVE) and calls back", async () => {
    const { clock, runtime, run, log } = rig();
    run(`W.connect("lab", { password: "secret" });`);
    clock.tick(2000);
    await runtime.settle();
    run(`W.disconnect(function () { log.push("cb"); });`);
    await runtime.settle();
    expect(log().slice(-2)).toEqual(["cb", "disconnected ASSOC_LEAVE 8"]);
  });

  it("derives ESP32-style serials and distinct MACs and IPs per node", () => {
    const macs = new Set(Array.from({ length: 1000 }, (_, i) => macFor(i, 7)));
    expect(macs.size).toBe(1000);
    expect(serialFromMac("24:0a:c4:12:34:56")).toBe("240ac412-3456");
    expect(ipFor(0)).toBe("10.0.0.2");
    expect(ipFor(300)).toBe("10.0.1.46");
  });
});
