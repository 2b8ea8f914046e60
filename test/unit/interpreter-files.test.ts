// Espruino's three ESP32 files as `wisp flash --interpreter DIR` checks them before it touches a
// board, and the image formats underneath (app image, partition table).
import { mkdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { esp32DevkitC } from "../../boards/esp32-devkitc.ts";
import {
  buildAppImage,
  buildPartitionTable,
  ESPRUINO_PARTITIONS,
  espruinoVersion,
  ImageError,
  parseAppImage,
  parsePartitionTable,
} from "../../tools/serial/esp-image.ts";
import { InterpreterError, readInterpreter } from "../../tools/serial/interpreter.ts";
import { type EspruinoFolder, type EspruinoFolderOptions, espruinoFolder } from "../helpers/espruino-files.ts";

const folders: EspruinoFolder[] = [];
afterEach(() => {
  for (const f of folders.splice(0)) f.remove();
});
const folder = (options?: EspruinoFolderOptions) => {
  const f = espruinoFolder(options);
  folders.push(f);
  return f;
};
const refused = (dir: string): InterpreterError => {
  try {
    readInterpreter(dir, esp32DevkitC);
  } catch (err) {
    expect(err).toBeInstanceOf(InterpreterError);
    return err as InterpreterError;
  }
  throw new Error("readInterpreter accepted the folder");
};

describe("ESP32 image formats", () => {
  it("an app image round-trips: segments, checksum, SHA-256, chip id and the app description's version", () => {
    const bytes = buildAppImage({ version: "2v27", bytes: 10_000, chipId: 0 });
    const image = parseAppImage(bytes);
    expect(image.length).toBe(bytes.length);
    expect(image.hashAppended).toBe(true);
    expect(image.chipId).toBe(0);
    expect(image.appVersion).toBe("2v27");
    expect(espruinoVersion(bytes)).toBe("2v27");
  });

  it("a changed byte fails the checksum or the SHA-256; a wrong first byte is named", () => {
    const bytes = buildAppImage();
    const segmentByte = bytes.slice();
    segmentByte[600] ^= 0x01;
    expect(() => parseAppImage(segmentByte)).toThrow(/checksum failed/);
    const headerByte = bytes.slice();
    headerByte[2] = 3; // flash mode: outside the checksum, inside the hash
    expect(() => parseAppImage(headerByte)).toThrow(/SHA-256 does not match/);
    expect(() => parseAppImage(new Uint8Array(64).fill(0xff))).toThrow(/invalid magic byte 0xff/);
  });

  it("Espruino's partition table round-trips and its MD5 entry is checked", () => {
    const table = buildPartitionTable(ESPRUINO_PARTITIONS);
    expect(table.length).toBe(0xc00);
    const parts = parsePartitionTable(table);
    expect(parts.map((p) => [p.label, p.offset, p.size])).toEqual(ESPRUINO_PARTITIONS.map((p) => [p.label, p.offset, p.size]));
    const changed = table.slice();
    changed[8] ^= 1;
    expect(() => parsePartitionTable(changed)).toThrow(ImageError);
    expect(() => parsePartitionTable(new Uint8Array(0xc00).fill(0xff))).toThrow(/no partitions/);
  });
});

describe("wisp flash --interpreter DIR: the files, checked before the board is touched", () => {
  it("takes the three files at 0x1000, 0x8000 and 0x10000 and reports the version the interpreter carries", () => {
    const f = folder({ version: "2v29" });
    const interpreter = readInterpreter(f.dir, esp32DevkitC);
    expect(interpreter.regions.map((r) => [r.name, r.address])).toEqual([
      ["bootloader.bin", 0x1000],
      ["partitions_espruino.bin", 0x8000],
      ["espruino_esp32.bin", 0x10000],
    ]);
    expect(interpreter.version).toBe("2v29");
    expect(interpreter.appPartition.label).toBe("factory");
  });

  it("finds the files in the one subfolder that has them (a release zip unpacked one level up)", () => {
    const f = folder();
    const inner = join(f.dir, "espruino_2v29_esp32");
    mkdirSync(inner);
    for (const name of Object.keys(f.files)) renameSync(join(f.dir, name), join(inner, name));
    expect(readInterpreter(f.dir, esp32DevkitC).dir).toBe(inner);
  });

  it("a missing file is named, with where to get Espruino", () => {
    const err = refused(folder({ omit: ["partitions_espruino.bin"] }).dir);
    expect(err.code).toBe("files");
    expect(err.message).toMatch(/has no partitions_espruino\.bin.*espruino\.com\/Download.*--interpreter/);
  });

  it("a file that is not an image says so and why", () => {
    const err = refused(folder({ replace: { "espruino_esp32.bin": new Uint8Array(4096).fill(0) } }).dir);
    expect(err.message).toMatch(/espruino_esp32\.bin is not an ESP32 app image: invalid magic byte 0x00/);
  });

  it("an image built for another chip is refused by name", () => {
    const err = refused(folder({ chipId: 9 }).dir);
    expect(err.message).toMatch(/bootloader\.bin is built for the ESP32-S3, not the ESP32 of board esp32-devkitc/);
  });

  it("an interpreter larger than its partition is refused with both sizes", () => {
    const small = ESPRUINO_PARTITIONS.map((p) => (p.label === "factory" ? { ...p, size: 32 * 1024 } : p));
    const err = refused(folder({ partitions: small, appBytes: 40 * 1024 }).dir);
    expect(err.message).toMatch(/espruino_esp32\.bin is [\d,]+ bytes; its partition \(factory at 0x10000\) holds 32,768/);
  });

  it("a bootloader that would run into the partition table is refused", () => {
    const err = refused(folder({ bootloaderBytes: 30 * 1024 }).dir);
    expect(err.message).toMatch(/bootloader\.bin is [\d,]+ bytes: written at 0x1000 it would run into the partition table at 0x8000/);
  });

  it("a partition table without an app partition where the interpreter goes is refused, listing what it has", () => {
    const moved = ESPRUINO_PARTITIONS.map((p) => (p.label === "factory" ? { ...p, offset: 0x20000 } : p));
    const err = refused(folder({ partitions: moved }).dir);
    expect(err.message).toMatch(/has no app partition at 0x10000, where espruino_esp32\.bin goes; it has .*factory \(app\/factory\) at 0x20000/);
  });

  it("an Espruino older than 2v25 is refused: Wisp needs the packet protocol", () => {
    const err = refused(folder({ version: "2v24" }).dir);
    expect(err.code).toBe("old-interpreter");
    expect(err.message).toMatch(/Espruino 2v24; Wisp needs 2v25 or newer/);
  });

  it("a folder that does not exist says where to get Espruino", () => {
    expect(refused("/nonexistent/espruino").message).toMatch(/is not a folder\. Get Espruino for ESP32 from https:\/\/www\.espruino\.com\/Download/);
  });
});
