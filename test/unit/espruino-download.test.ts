// Espruino's ESP32 build by version: fetched once from a binaries folder laid out as espruino.com's
// (a local server here: CI has no network), kept in the cache, checked like any folder.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { esp32DevkitC } from "../../boards/esp32-devkitc.ts";
import { findInterpreter, InterpreterError } from "../../tools/serial/interpreter.ts";
import { type EspruinoFolder, espruinoFolder } from "../helpers/espruino-files.ts";

const readInterpreterApp = (dir: string) => readFileSync(join(dir, "espruino_esp32.bin"));

let espruino: EspruinoFolder;
/** How the server sends a version other than 2v29 (which it sends whole). */
const SERVED: Record<string, "cut" | "stall" | "html" | "slow" | "good"> = { "2v40": "cut", "2v41": "stall", "2v42": "html", "2v43": "slow", "2v44": "good" };
let server: Server;
let base: string;
let cache: string;
const requests: string[] = [];

beforeAll(async () => {
  espruino = espruinoFolder({ version: "2v29", appBytes: 96 * 1024 });
  cache = mkdtempSync(join(tmpdir(), "wisp-cache-"));
  server = createServer((req, res) => {
    requests.push(req.url!);
    const m = /^\/espruino_(\w+)_esp32\/([\w.]+)$/.exec(req.url!);
    const file = m && (m[1] === "2v29" || SERVED[m[1]!]) ? espruino.files[m[2]!] : undefined;
    if (!file) {
      res.writeHead(404, "Not Found").end();
      return;
    }
    const data = Buffer.from(file);
    const how = SERVED[m![1]!];
    if (how === "cut" || how === "stall") {
      // says the whole length, sends a part; then drops the connection, or sends nothing more
      res.writeHead(200, { "content-length": data.length });
      res.write(data.subarray(0, 1000));
      if (how === "cut") setTimeout(() => res.socket?.destroy(), 20);
      return;
    }
    if (how === "html") {
      res.writeHead(200, { "content-type": "text/html" }).end("<html><body>Sign in to the Wi-Fi</body></html>");
      return;
    }
    if (how === "slow") {
      // 4 KB every 40 ms: the whole file takes longer than the idle limit, no pause does
      res.writeHead(200, { "content-length": data.length });
      let at = 0;
      const tick = setInterval(() => {
        res.write(data.subarray(at, at + 4096));
        at += 4096;
        if (at >= data.length) {
          clearInterval(tick);
          res.end();
        }
      }, 40);
      return;
    }
    res.writeHead(200, { "content-type": "application/octet-stream" }).end(data);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  espruino.remove();
  rmSync(cache, { recursive: true, force: true });
});

describe("Espruino by version (wisp flash --interpreter 2v29, wisp install-espruino)", () => {
  it("downloads the build's three files into the cache once, then checks them like a folder", async () => {
    const said: string[] = [];
    const interpreter = await findInterpreter("2v29", esp32DevkitC, { base, cacheDir: cache, say: (l) => said.push(l) });
    expect(interpreter.dir).toBe(join(cache, "espruino_2v29_esp32"));
    expect(interpreter.version).toBe("2v29");
    expect(interpreter.regions.map((r) => Buffer.from(r.data).equals(Buffer.from(espruino.files[r.name]!)))).toEqual([true, true, true]);
    expect(said).toEqual([`downloading Espruino 2v29 for ESP32 from ${base}/espruino_2v29_esp32/`, `Espruino 2v29 for ESP32 kept in ${join(cache, "espruino_2v29_esp32")}`]);
    const count = requests.length;
    await findInterpreter(undefined, esp32DevkitC, { base, cacheDir: cache }); // the tested version, 2v29: cached
    expect(requests.length).toBe(count);
  });

  it("a version that is not there is named, with where to get Espruino; nothing half-downloaded stays", async () => {
    const err = await findInterpreter("2v99", esp32DevkitC, { base, cacheDir: cache }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InterpreterError);
    expect((err as InterpreterError).code).toBe("download");
    expect((err as Error).message).toMatch(/espruino_2v99_esp32\/bootloader\.bin answered 404 Not Found: is there an Espruino 2v99 for esp32\? Get Espruino for ESP32 from .*--interpreter \.\/espruino_2v99_esp32$/);
    const again = await findInterpreter("2v99", esp32DevkitC, { base, cacheDir: cache }).catch((e: unknown) => e);
    expect((again as Error).message).toMatch(/answered 404/);
  });

  const download = (version: string, idleMs?: number, say?: (l: string) => void) =>
    findInterpreter(version, esp32DevkitC, { base, cacheDir: cache, idleMs, say }).catch((e: unknown) => e as InterpreterError);
  const failed = async (version: string, idleMs?: number) => {
    const err = await download(version, idleMs);
    expect(err).toBeInstanceOf(InterpreterError);
    return err as InterpreterError;
  };
  const leftovers = () => readdirSync(cache).filter((n) => n.includes(".partial"));

  it("a body cut off mid-transfer is a download error naming how far it got; nothing is cached", async () => {
    const err = await failed("2v40");
    expect(err.message).toMatch(/the download of .*espruino_2v40_esp32\/bootloader\.bin (broke off|ended) after 1,000 of [\d,]+ bytes.*Get Espruino for ESP32 .*espruino_2v40_esp32/);
    expect(existsSync(join(cache, "espruino_2v40_esp32"))).toBe(false);
    expect(leftovers()).toEqual([]);
  });

  it("a body that stalls is given up after the idle time, not after a whole-download timeout", async () => {
    const err = await failed("2v41", 300);
    expect(err.message).toMatch(/broke off after 1,000 of [\d,]+ bytes \(nothing arrived for 0\.3 s\)/);
    expect(leftovers()).toEqual([]);
  });

  it("a slow download that keeps coming finishes though it takes longer than the idle time", async () => {
    const t0 = Date.now();
    const interpreter = await download("2v43", 300);
    expect(interpreter).not.toBeInstanceOf(Error);
    expect(Date.now() - t0).toBeGreaterThan(300);
  });

  it("a web page served instead of the files (a captive portal) is refused and never cached", async () => {
    for (let run = 0; run < 2; run++) {
      const err = await failed("2v42");
      expect(err.code).toBe("download");
      expect(err.message).toMatch(/is not a usable build, so nothing was cached: .*bootloader\.bin is a web page \(HTML\)/);
      expect(existsSync(join(cache, "espruino_2v42_esp32"))).toBe(false);
    }
    expect(leftovers()).toEqual([]);
  });

  it("a cached copy that no longer passes the checks is named, dropped and downloaded again", async () => {
    await download("2v44");
    const dir = join(cache, "espruino_2v44_esp32");
    writeFileSync(join(dir, "espruino_esp32.bin"), Buffer.from(espruino.files["espruino_esp32.bin"]!).subarray(0, 5000));
    const said: string[] = [];
    const interpreter = await download("2v44", undefined, (l) => said.push(l));
    expect(interpreter).not.toBeInstanceOf(Error);
    expect(said[0]).toMatch(new RegExp(`the cached copy of Espruino 2v44 in ${dir} is not usable \\(.*espruino_esp32\\.bin.*\\): removing it and downloading again`));
    expect(Buffer.from(readInterpreterApp(dir)).equals(Buffer.from(espruino.files["espruino_esp32.bin"]!))).toBe(true);
  });

  it("two downloads of one version at once both succeed (each in its own partial folder)", async () => {
    const both = await Promise.all([download("2v43", 2000), download("2v43", 2000)].map((p) => p));
    rmSync(join(cache, "espruino_2v43_esp32"), { recursive: true, force: true });
    const again = await Promise.all([download("2v43", 2000), download("2v43", 2000)]);
    for (const r of [...both, ...again]) expect(r).not.toBeInstanceOf(Error);
    expect(leftovers()).toEqual([]);
  });

  it("a version too old for Wisp is refused before anything is downloaded", async () => {
    const count = requests.length;
    const err = await failed("2v24");
    expect(err.code).toBe("old-interpreter");
    expect(err.message).toMatch(/Espruino 2v24; Wisp needs 2v25 or newer/);
    expect(requests.length).toBe(count);
  });
});

describe("an empty interpreter name", () => {
  it("is named, not taken for the current folder or a download", async () => {
    const err = await findInterpreter("", esp32DevkitC, { base: "http://127.0.0.1:1", cacheDir: "/nonexistent" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InterpreterError);
    expect((err as Error).message).toMatch(/the interpreter given is empty \(""\): pass Espruino's folder or a version such as 2v29/);
  });
});
