import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { netState } from "../../host-sim/net.ts";
import { createRuntime, type Runtime } from "../../host-sim/runtime.ts";

const servers: net.Server[] = [];
let runtimes: Runtime[] = [];

afterEach(async () => {
  for (const rt of runtimes) rt.dispose();
  runtimes = [];
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

function device(): Runtime {
  const rt = createRuntime({ name: "net-test" });
  runtimes.push(rt);
  return rt;
}

async function listen(server: net.Server): Promise<number> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as net.AddressInfo).port;
}

async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function echoServer(): net.Server {
  return net.createServer((s) => s.pipe(s));
}

/** Device code that records every socket event in the global array `ev`. */
const RECORD = `
  var ev = [], got = "";
  function record(sock) {
    sock.on("data", function (d) { got += d; ev.push("data"); });
    sock.on("drain", function () { ev.push("drain"); });
    sock.on("error", function (e) { ev.push("error " + e.code + " " + e.message); });
    sock.on("end", function () { ev.push("end"); });
    sock.on("close", function (hadError) { ev.push("close " + hadError); });
  }
`;

describe('require("net")', () => {
  it("round-trips every byte value exactly, as chars 0..255", async () => {
    const port = await listen(echoServer());
    const rt = device();
    rt.run(RECORD + `
      var all = ""; for (var i = 0; i < 256; i++) all += String.fromCharCode(i);
      var sock = require("net").connect({ host: "127.0.0.1", port: ${port} }, function (s) {
        ev.push("connected " + (s === sock));
        ev.push("write " + sock.write(all));
      });
      record(sock);
    `);
    await until(() => rt.global.got.length >= 256, "echo");
    expect(rt.global.got).toBe(rt.global.all);
    expect(rt.run(`ev.slice(0, 2)`)).toEqual(["connected true", "write false"]);
    expect(rt.errors).toEqual([]);
  });

  it("sends the low byte of chars above 255, as Espruino's 8-bit strings do", async () => {
    const received: Buffer[] = [];
    const port = await listen(net.createServer((s) => s.on("data", (d) => received.push(d))));
    const rt = device();
    rt.run(`require("net").connect({ host: "127.0.0.1", port: ${port} }, function (s) { s.write("\\u0141A"); });`);
    await until(() => Buffer.concat(received).length >= 2, "bytes at the server");
    expect([...Buffer.concat(received)]).toEqual([0x41, 0x41]);
  });

  it("delivers data before end and close when the server closes, and emits connect then drain", async () => {
    const port = await listen(net.createServer((s) => s.end("bye")));
    const rt = device();
    rt.run(RECORD + `
      var sock = require("net").connect({ host: "127.0.0.1", port: ${port} });
      sock.on("connect", function () { ev.push("connect"); });
      record(sock);
    `);
    await until(() => rt.global.ev.includes("close false"), "close");
    expect(rt.global.got).toBe("bye");
    expect(rt.run(`ev.join()`)).toBe("connect,drain,data,end,close false");
  });

  it("keeps data that arrives before any data listener, and hands it over on on('data')", async () => {
    const port = await listen(net.createServer((s) => s.write("early")));
    const rt = device();
    rt.run(`var got = ""; var sock = require("net").connect({ host: "127.0.0.1", port: ${port} });`);
    await until(() => rt.run(`sock.available()`) === 5, "buffered data");
    rt.run(`sock.on("data", function (d) { got += d; });`);
    await rt.settle();
    expect(rt.global.got).toBe("early");
  });

  it("a refused connection gives error {code: -9} then close(true)", async () => {
    const probe = net.createServer();
    const port = await listen(probe);
    await new Promise((r) => probe.close(r));
    const rt = device();
    rt.run(RECORD + `
      var sock = require("net").connect({ host: "127.0.0.1", port: ${port} }, function () { ev.push("connected?"); });
      record(sock);
    `);
    await until(() => rt.global.ev.some((e: string) => e.startsWith("close")), "close");
    expect(rt.run(`ev.join()`)).toBe("error -9 connection reset,end,close true");
  });

  it("end() closes the socket fully; writing afterwards throws 'This socket is closed'", async () => {
    let serverGot = "";
    let serverSawEnd = false;
    const port = await listen(
      net.createServer((s) => s.on("data", (d) => (serverGot += d)).on("end", () => (serverSawEnd = true))),
    );
    const rt = device();
    rt.run(RECORD + `
      var sock = require("net").connect({ host: "127.0.0.1", port: ${port} }, function () {
        sock.write("last words");
        sock.end();
        try { sock.write("more"); } catch (e) { ev.push("threw " + e.message); }
      });
      record(sock);
    `);
    await until(() => rt.global.ev.includes("close false"), "close");
    await until(() => serverSawEnd, "end at the server");
    expect(serverGot).toBe("last words");
    expect(rt.global.ev).toContain("threw This socket is closed");
    // no "error": ending is not a failure
    expect(rt.run(`ev.filter(function (e) { return e !== "drain"; }).join()`)).toBe("threw This socket is closed,end,close false");
  });

  it("a throwing data listener is printed on the device console and the socket carries on", async () => {
    const port = await listen(echoServer());
    const rt = device();
    rt.run(RECORD + `
      var sock = require("net").connect({ host: "127.0.0.1", port: ${port} }, function () { sock.write("x"); });
      sock.on("data", function () { throw new Error("listener bug"); });
      record(sock);
      sock.on("data", function () { sock.end(); });
    `);
    await until(() => rt.global.ev.includes("close false"), "close");
    expect(rt.logs).toContain("Uncaught Error: listener bug");
    expect(rt.global.got).toBe("x");
  });

  it("netState().closeAll() drops every connection (a lost network): end then close, no error", async () => {
    const port = await listen(echoServer());
    const rt = device();
    rt.run(RECORD + `var sock = require("net").connect({ host: "127.0.0.1", port: ${port} }, function () { ev.push("connect"); }); record(sock);`);
    await until(() => rt.global.ev.includes("connect"), "connect");
    netState(rt).closeAll();
    await until(() => rt.global.ev.some((e: string) => e.startsWith("close")), "close");
    expect(rt.run(`ev.join()`)).toBe("connect,drain,end,close false");
    expect(netState(rt).sockets.size).toBe(0);
  });

  it("throws when the network is down, like Espruino without Wi-Fi", () => {
    const rt = device();
    netState(rt).online = false;
    expect(() => rt.run(`require("net").connect({ host: "127.0.0.1", port: 1 })`)).toThrow("Not connected to the internet");
    expect(() => rt.run(`require("net").connect("nope")`)).toThrow("Expecting Options to be an Object");
  });

  it("dispose() closes every socket the device opened, without further device events", async () => {
    const serverSockets: net.Socket[] = [];
    let serverClosed = 0;
    const port = await listen(
      net.createServer((s) => {
        serverSockets.push(s);
        s.on("close", () => serverClosed++);
        s.resume();
      }),
    );
    const rt = device();
    rt.run(RECORD + `
      var a = require("net").connect({ host: "127.0.0.1", port: ${port} }); record(a);
      var b = require("net").connect({ host: "127.0.0.1", port: ${port} }); record(b);
    `);
    await until(() => serverSockets.length === 2 && netState(rt).sockets.size === 2, "two connections");
    const before = rt.logs.length;
    rt.dispose();
    await until(() => serverClosed === 2, "server sees both closed");
    expect(rt.global.ev.filter((e: string) => e.startsWith("close"))).toEqual([]);
    expect(rt.logs.length).toBe(before);
  });
});

describe('require("tls")', () => {
  let dir: string;
  let cert: string;
  let key: string;
  let otherCert: string;

  function selfSigned(name: string): { cert: string; key: string } {
    const keyFile = join(dir, `${name}.key`);
    const certFile = join(dir, `${name}.crt`);
    execFileSync("/usr/bin/openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", keyFile, "-out", certFile, "-days", "1", "-subj", `/CN=${name}`,
      "-addext", "subjectAltName=IP:127.0.0.1",
    ], { stdio: "pipe" });
    return { cert: readFileSync(certFile, "utf8"), key: readFileSync(keyFile, "utf8") };
  }

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "wisp-tls-"));
    ({ cert, key } = selfSigned("wisp-broker"));
    otherCert = selfSigned("someone-else").cert;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function tlsEchoServer(): Promise<number> {
    const server = tls.createServer({ cert, key }, (s) => s.pipe(s));
    server.on("tlsClientError", () => {});
    return listen(server);
  }

  it("connects and verifies the server against the given ca; bytes round-trip", async () => {
    const port = await tlsEchoServer();
    const rt = device();
    rt.global.CA = cert;
    rt.run(RECORD + `
      var sock = require("tls").connect({ host: "127.0.0.1", port: ${port}, ca: CA }, function () {
        ev.push("connected"); sock.write("\\x00secure\\xff");
      });
      record(sock);
    `);
    await until(() => rt.global.got.length >= 8, "tls echo");
    expect(rt.global.got).toBe("\x00secure\xff");
    expect(rt.global.ev[0]).toBe("connected");
  });

  it("fails with an error event (SSL handshake failed) then close when the ca does not match", async () => {
    const port = await tlsEchoServer();
    const rt = device();
    rt.global.CA = otherCert;
    rt.run(RECORD + `
      var sock = require("tls").connect({ host: "127.0.0.1", port: ${port}, ca: CA }, function () { ev.push("connected?"); });
      record(sock);
    `);
    await until(() => rt.global.ev.some((e: string) => e.startsWith("close")), "close");
    expect(rt.run(`ev.join()`)).toBe("error -13 SSL handshake failed,end,close true");
    expect(rt.logs.some((l) => l.startsWith("TLS handshake failed:"))).toBe(true);
  });

  it("takes ca as DER (atob of the PEM body), the form the ESP32 build of Espruino needs", async () => {
    const port = await tlsEchoServer();
    const rt = device();
    rt.global.CA_BODY = cert.replace(/-----[^-]+-----|\s/g, "");
    rt.run(`var ok = false; require("tls").connect({ host: "127.0.0.1", port: ${port}, ca: atob(CA_BODY) }, function () { ok = true; });`);
    await until(() => rt.global.ok === true, "connect");
  });

  it("takes ca from a Storage file named by a short string", async () => {
    const port = await tlsEchoServer();
    const files: Record<string, string> = { "ca.pem": cert };
    const rt = createRuntime({ storage: { read: (n) => files[n] } });
    runtimes.push(rt);
    rt.run(`var ok = false; require("tls").connect({ host: "127.0.0.1", port: ${port}, ca: "ca.pem" }, function () { ok = true; });`);
    await until(() => rt.global.ok === true, "connect");
  });

  it("does not verify without a ca, as Espruino's mbedTLS setup", async () => {
    const port = await tlsEchoServer();
    const rt = device();
    rt.run(`var ok = false; require("tls").connect({ host: "127.0.0.1", port: ${port} }, function () { ok = true; });`);
    await until(() => rt.global.ok === true, "connect");
  });
});
