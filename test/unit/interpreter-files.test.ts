// Espruino's three ESP32 files as `wisp flash --interpreter DIR` checks them before it touches a
// board, and the image formats underneath (app image, partition table).
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { esp32DevkitC } from "../../boards/esp32-devkitc.ts";
import {
  buildAppImage,
  buildPartitionTable,
  ESPRUINO_PARTITIONS,
  espruinoVersion,
  ImageError,
  type Partition,
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
    expect(refused("/nonexistent/espruino").message).toMatch(/\/nonexistent\/espruino does not exist\. Get Espruino for ESP32 from https:\/\/www\.espruino\.com\/Download/);
  });
});

describe("files that would lose Storage or never boot are refused before the board is touched", () => {
  const table = (parts: Partial<Record<string, Partial<Partition> | null>>, extra: Partition[] = []) =>
    ESPRUINO_PARTITIONS.flatMap((p) => (parts[p.label] === null ? [] : [{ ...p, ...parts[p.label] }])).concat(extra);

  it("an app partition over Storage, with no storage entry (a 3.4 MB app in 0x10000 + 0x3f0000): Storage would be erased", () => {
    const parts = [ESPRUINO_PARTITIONS[0]!, ESPRUINO_PARTITIONS[1]!, { label: "factory", type: 0, subtype: 0, offset: 0x10000, size: 0x3f0000, flags: 0 }];
    const err = refused(folder({ partitions: parts }).dir);
    expect(err.code).toBe("files");
    expect(err.message).toMatch(/the app partition factory \(app\/factory\) at 0x10000 \([\d,]+ bytes\) runs over Espruino's Storage \(the node's files\) at 0x320000-0x400000: writing the interpreter would erase them/);
  });

  it("a table with no data partition over Storage is refused", () => {
    const err = refused(folder({ partitions: table({ storage: null }) }).dir);
    expect(err.message).toMatch(/no data partition over Espruino's Storage/);
  });

  it("overlapping partitions are refused, naming both", () => {
    const err = refused(folder({ partitions: table({ factory: { size: 0x320000 } }) }).dir);
    expect(err.message).toMatch(/factory \(app\/factory\) at 0x10000 \([\d,]+ bytes\) overlaps flash \(data\/0x40\) at 0x310000/);
  });

  it("a partition past the end of the 4 MB flash is refused", () => {
    const past = { label: "extra", type: 1, subtype: 0x81, offset: 0x3f0000, size: 0x20000, flags: 0 };
    const err = refused(folder({ partitions: table({ storage: { size: 0xd0000 } }, [past]) }).dir);
    expect(err.message).toMatch(/extra \(data\/fat\) at 0x3f0000 with 131,072 bytes ends at 0x410000, past the end of the board's 4 MB flash/);
  });

  it("a factory app past the end of flash (the bootloader could never start it) is refused", () => {
    const err = refused(folder({ partitions: table({}, [{ label: "factory2", type: 0, subtype: 0, offset: 0x400000, size: 0x10000, flags: 0 }]) }).dir);
    expect(err.message).toMatch(/factory2 .* past the end of the board's 4 MB flash/);
  });

  it("ota_0 at 0x10000 with the factory app elsewhere: the bootloader starts the factory app, so it is refused", () => {
    const parts = [
      ESPRUINO_PARTITIONS[0]!,
      { label: "ota_0", type: 0, subtype: 0x10, offset: 0x10000, size: 0x100000, flags: 0 },
      { label: "factory", type: 0, subtype: 0, offset: 0x110000, size: 0x100000, flags: 0 },
      ESPRUINO_PARTITIONS[4]!,
    ];
    const err = refused(folder({ partitions: parts }).dir);
    expect(err.message).toMatch(/the bootloader starts factory \(app\/factory\) at 0x110000, not ota_0 \(app\/ota_0\) at 0x10000 where espruino_esp32\.bin goes/);
  });

  it("a merged image saved as espruino_esp32.bin is not an application", () => {
    const f = folder();
    const merged = new Uint8Array(0x40000).fill(0xff);
    merged.set(f.files["bootloader.bin"]!, 0);
    merged.set(f.files["partitions_espruino.bin"]!, 0x7000);
    merged.set(f.files["espruino_esp32.bin"]!, 0xf000);
    const err = refused(folder({ replace: { "espruino_esp32.bin": merged } }).dir);
    expect(err.message).toMatch(/espruino_esp32\.bin is not an application: it is a bootloader image \(its segments load at 0x3fff0030, 0x40078000\), followed by more data: a merged image/);
  });

  it("an app image without the app description (magic 0xabcd5432) is refused", () => {
    const err = refused(folder({ replace: { "espruino_esp32.bin": buildAppImage({ bytes: 8000, noAppDescription: true }) } }).dir);
    expect(err.message).toMatch(/espruino_esp32\.bin is not an application: it has no app description/);
  });

  it("an application that carries no Espruino version (another firmware) is refused", () => {
    const err = refused(folder({ replace: { "espruino_esp32.bin": buildAppImage({ bytes: 8000, version: "v1.22.0", projectName: "micropython" }) } }).dir);
    expect(err.message).toMatch(/carries no Espruino version \(such as 2v29\); its app description says "micropython v1\.22\.0": it is not Espruino's build/);
  });

  it("an application saved as bootloader.bin (files swapped) is refused", () => {
    const err = refused(folder({ replace: { "bootloader.bin": buildAppImage({ bytes: 8000 }) } }).dir);
    expect(err.message).toMatch(/bootloader\.bin is an application image, not a bootloader/);
  });
});

describe("a folder that is not what it should be is named, never a crash", () => {
  it("a folder named bootloader.bin", () => {
    const f = folder({ omit: ["bootloader.bin"] });
    mkdirSync(join(f.dir, "bootloader.bin"));
    expect(refused(f.dir).message).toMatch(/bootloader\.bin is a folder, not a file/);
  });

  it("a dangling link", () => {
    const f = folder({ omit: ["espruino_esp32.bin"] });
    symlinkSync("/nonexistent/x.bin", join(f.dir, "espruino_esp32.bin"));
    expect(refused(f.dir).message).toMatch(/espruino_esp32\.bin is a link to \/nonexistent\/x\.bin, which does not exist/);
  });

  it("web pages saved under the files' names", () => {
    const html = new TextEncoder().encode("<html><body>404 Not Found</body></html>");
    const err = refused(folder({ replace: { "bootloader.bin": html } }).dir);
    expect(err.message).toMatch(/bootloader\.bin is a web page \(HTML\), not a binary/);
  });

  it("an empty file", () => {
    expect(refused(folder({ replace: { "espruino_esp32.bin": new Uint8Array(0) } }).dir).message).toMatch(/espruino_esp32\.bin is empty/);
  });

  it("two subfolders that each have the files: both named, pass one", () => {
    const f = folder({ omit: ["bootloader.bin", "partitions_espruino.bin", "espruino_esp32.bin"] });
    for (const sub of ["a", "b"]) {
      mkdirSync(join(f.dir, sub));
      for (const [name, data] of Object.entries(f.files)) writeFileSync(join(f.dir, sub, name), data);
    }
    expect(refused(f.dir).message).toMatch(/has Espruino's files in 2 subfolders \(a, b\): pass the one you mean/);
  });

  it("an empty name", () => {
    expect(refused("").message).toMatch(/an empty folder name: pass Espruino's folder or a version \(2v29\)/);
  });
});
