// Espruino's ESP32 build by version: fetched once from a binaries folder laid out as espruino.com's
// (a local server here: CI has no network), kept in the cache, checked like any folder.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { esp32DevkitC } from "../../boards/esp32-devkitc.ts";
import { findInterpreter, InterpreterError } from "../../tools/serial/interpreter.ts";
import { type EspruinoFolder, espruinoFolder } from "../helpers/espruino-files.ts";

let espruino: EspruinoFolder;
let server: Server;
let base: string;
let cache: string;
const requests: string[] = [];

beforeAll(async () => {
  espruino = espruinoFolder({ version: "2v29" });
  cache = mkdtempSync(join(tmpdir(), "wisp-cache-"));
  server = createServer((req, res) => {
    requests.push(req.url!);
    const m = /^\/espruino_2v29_esp32\/([\w.]+)$/.exec(req.url!);
    const file = m ? espruino.files[m[1]!] : undefined;
    if (!file) {
      res.writeHead(404, "Not Found").end();
      return;
    }
    res.writeHead(200, { "content-type": "application/octet-stream" }).end(Buffer.from(file));
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
    expect(said).toEqual([`downloading Espruino 2v29 for ESP32 from ${base}/espruino_2v29_esp32/`]);
    const count = requests.length;
    await findInterpreter(undefined, esp32DevkitC, { base, cacheDir: cache }); // the tested version, 2v29: cached
    expect(requests.length).toBe(count);
  });

  it("a version that is not there is named, with where to get Espruino; nothing half-downloaded stays", async () => {
    const err = await findInterpreter("2v99", esp32DevkitC, { base, cacheDir: cache }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InterpreterError);
    expect((err as InterpreterError).code).toBe("download");
    expect((err as Error).message).toMatch(/espruino_2v99_esp32\/bootloader\.bin answered 404 Not Found: no Espruino 2v99 for esp32 there\?\. Get Espruino for ESP32 from/);
    const again = await findInterpreter("2v99", esp32DevkitC, { base, cacheDir: cache }).catch((e: unknown) => e);
    expect((again as Error).message).toMatch(/answered 404/);
  });
});
