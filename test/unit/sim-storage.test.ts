import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createRuntime, type Runtime } from "../../host-sim/runtime.ts";
import { ESP32_STORAGE_BYTES, FlashStorage, storagePlugin } from "../../host-sim/storage.ts";

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const fn of cleanup) fn();
  cleanup = [];
});

function device(flash = new FlashStorage()): { flash: FlashStorage; runtime: Runtime; run: (src: string) => any } {
  const runtime = createRuntime({ plugins: [storagePlugin(flash)] });
  cleanup.push(() => runtime.dispose());
  return { flash, runtime, run: (src) => runtime.run(src) };
}

describe("Storage (Espruino jsflash semantics)", () => {
  it("writes with offset and size as the Espruino reference example does", () => {
    const { run } = device();
    run(`var f = require("Storage"); f.write("a", "Hello", 0, 14);`);
    expect(run(`f.read("a")`)).toBe("Hello" + "\xff".repeat(9));
    run(`f.write("a", " ", 5); f.write("a", "World!!!", 6);`);
    expect(run(`f.read("a")`)).toBe("Hello World!!!");
    expect(run(`f.read("a", 6, 5)`)).toBe("World");
    run(`f.write("a", " ", 0);`); // offset 0 starts the file again
    expect(run(`f.read("a")`)).toBe(" ");
  });

  it("refuses to rewrite written bytes or to write past the file's end, with Espruino's messages", () => {
    const { run } = device();
    run(`var f = require("Storage"); f.write("a", "abc", 0, 6);`);
    expect(() => run(`f.write("a", "x", 1)`)).toThrow("File already written with different data");
    expect(() => run(`f.write("a", "wxyz", 3)`)).toThrow("Too much data for file size");
    expect(() => run(`f.write("b", "")`)).toThrow("Can't create zero length file");
    expect(run(`f.read("a")`)).toBe("abc\xff\xff\xff");
  });

  it("stores objects as JSON, arrays and typed arrays as bytes; readJSON(name, true) gives undefined for bad JSON", () => {
    const { run } = device();
    run(`var f = require("Storage"); f.write("o", { a: 1, b: [2] }); f.write("bytes", [104, 105]); f.write("u8", new Uint8Array([0, 255]));`);
    expect(run(`f.readJSON("o").b[0]`)).toBe(2);
    expect(run(`f.read("bytes")`)).toBe("hi");
    expect(run(`f.read("u8")`)).toBe("\x00\xff");
    run(`f.write("bad", "{nope")`);
    expect(run(`f.readJSON("bad", true)`)).toBeUndefined();
    expect(run(`f.readJSON("missing", true)`)).toBeUndefined();
    expect(() => run(`f.readJSON("bad")`)).toThrow();
    expect(run(`f.readJSON("o") instanceof Object`)).toBe(true); // an object of the device's realm
    run(`f.writeJSON("j", { x: "y" })`);
    expect(run(`f.read("j")`)).toBe('{"x":"y"}');
  });

  it("counts free space as flash does: header and 4-byte alignment, erased files are trash until compaction", () => {
    const { run, flash } = device();
    expect(run(`require("Storage").getFree()`)).toBe(ESP32_STORAGE_BYTES);
    run(`require("Storage").write("x", "12345")`);
    expect(flash.getFree()).toBe(ESP32_STORAGE_BYTES - (8 + 32));
    run(`require("Storage").erase("x")`);
    expect(run(`require("Storage").read("x")`)).toBeUndefined();
    expect(flash.getFree()).toBe(ESP32_STORAGE_BYTES - 40);
    run(`require("Storage").compact()`);
    expect(flash.getFree()).toBe(ESP32_STORAGE_BYTES);
  });

  it("compacts by itself when only that makes room, and fails when even that would not", () => {
    const { run, flash } = device(new FlashStorage({ size: 1000 }));
    run(`var f = require("Storage"); f.write("big", "x".repeat(600)); f.erase("big");`);
    expect(flash.getFree()).toBe(1000 - 632);
    run(`f.write("again", "y".repeat(600))`); // fits only once the trash is gone
    expect(flash.getFree()).toBe(1000 - 632);
    expect(() => run(`f.write("more", "z".repeat(400))`)).toThrow("Unable to find or create file");
  });

  it("cuts names to 28 chars, lists with a regular expression, and require()s a module from a file", () => {
    const { run } = device();
    const long = "n".repeat(30);
    run(`var f = require("Storage"); f.write("${long}", "1"); f.write("mod", "exports.answer = 42;"); f.write("a.json", "{}");`);
    expect(run(`f.read("${"n".repeat(28)}")`)).toBe("1");
    expect(run(`f.list(/\\.json$/)`)).toEqual(["a.json"]);
    expect(run(`f.list().length`)).toBe(3);
    expect(run(`require("mod").answer`)).toBe(42);
  });

  it("survives a new process when persisted to a directory", () => {
    const dir = mkdtempSync(join(tmpdir(), "wisp-storage-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    device(new FlashStorage({ dir })).run(`require("Storage").write(".bootcde", "print(1)"); require("Storage").write("q/1", "a");`);
    const again = new FlashStorage({ dir });
    expect(again.read(".bootcde")).toBe("print(1)");
    expect(again.list().sort()).toEqual([".bootcde", "q/1"]);
    expect(again.getFree()).toBe(ESP32_STORAGE_BYTES - 40 - 36);
  });

  it("keeps a StorageFile's chunks across a new process", () => {
    const dir = mkdtempSync(join(tmpdir(), "wisp-storage-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    device(new FlashStorage({ dir })).run(`require("Storage").open("log", "a").write("one\\n")`);
    const again = device(new FlashStorage({ dir }));
    again.run(`require("Storage").open("log", "a").write("two\\n")`);
    expect(again.run(`var r = require("Storage").open("log", "r"); r.readLine() + r.readLine()`)).toBe("one\ntwo\n");
    expect(again.run(`require("Storage").list(undefined, { sf: true })`)).toEqual(["log"]);
  });
});

describe("StorageFile (require(\"Storage\").open)", () => {
  it("does what Espruino 2v29 did with the same script (test/fixtures/storagefile: appends across chunks, lines, modes, errors, a full Storage)", () => {
    // the probe ran on the 32-bit Linux build: 262,144 bytes of Storage in 1,024-byte pages
    const flash = new FlashStorage({ size: 262144, pageBytes: 1024 });
    const { runtime } = device(flash);
    const dir = join(import.meta.dirname, "../fixtures/storagefile");
    runtime.run(readFileSync(join(dir, "probe.js"), "latin1"), "probe.js");
    const expected = readFileSync(join(dir, "expected.txt"), "latin1").trimEnd().split("\n");
    expect(runtime.logs).toEqual(expected);
  });

  it("counts the flash bytes each append programs: the data, in whole words, and a header per chunk", () => {
    const { run, flash } = device();
    run(`var f = require("Storage").open("o", "a");`);
    const before = flash.bytesWritten;
    run(`f.write("12345\\n")`); // creates chunk 1: header + 6 bytes as 2 words
    expect(flash.bytesWritten - before).toBe(32 + 8);
    run(`f.write("ab\\n")`); // offset 6 to 9: words 4-8 and 8-12
    expect(flash.bytesWritten - before).toBe(32 + 8 + 8);
    expect(flash.chunkBytes).toBe(4064);
  });
});
