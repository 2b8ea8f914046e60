// The ESP32's flash formats: the app image (second-stage bootloader and application share it) and
// the partition table. Read by `wisp flash --interpreter` to check Espruino's three files before
// anything touches the board, and by the simulated board's ROM and bootloader to decide what it
// boots; built here too, so that tests and simulated boards get small valid images without an
// Espressif toolchain or an Espruino binary.
//
// Sources: ESP-IDF components/bootloader_support/include/esp_app_format.h (esp_image_header_t,
// esp_image_segment_header_t, esp_app_desc_t), components/bootloader_support/src/esp_image_format.c
// (checksum and SHA-256 checks), components/partition_table/gen_esp32part.py and
// esp_flash_partitions.h (32-byte entries, magic 0x50AA, the MD5 entry 0xEBEB); esptool's
// docs/en/advanced-topics/firmware-image-format.rst.

import { createHash } from "node:crypto";

export const IMAGE_MAGIC = 0xe9;
/** XOR seed of the image checksum (ESP_ROM_CHECKSUM_INITIAL). */
export const CHECKSUM_SEED = 0xef;
export const IMAGE_HEADER_BYTES = 24;
const SEGMENT_HEADER_BYTES = 8;
/** esp_app_desc_t.magic_word, at the start of an application's first segment. */
export const APP_DESC_MAGIC = 0xabcd5432;
/** ESP_PARTITION_MAGIC as it lies in flash (0xAA, 0x50). */
const PARTITION_MAGIC = 0x50aa;
/** ESP_PARTITION_MAGIC_MD5: the entry after the last partition holds the MD5 of those before. */
const PARTITION_MD5_MAGIC = 0xebeb;
const PARTITION_ENTRY_BYTES = 32;
/** The partition table's whole area (ESP_PARTITION_TABLE_MAX_LEN). */
export const PARTITION_TABLE_BYTES = 0xc00;
/** At most this many segments (ESP_IMAGE_MAX_SEGMENTS). */
const MAX_SEGMENTS = 16;

/** esp_image_header_t.chip_id (esp_app_format.h esp_chip_id_t). */
export const IMAGE_CHIP_IDS: Record<number, string> = {
  0x0000: "ESP32",
  0x0002: "ESP32-S2",
  0x0005: "ESP32-C3",
  0x0009: "ESP32-S3",
  0x000c: "ESP32-C2",
  0x000d: "ESP32-C6",
  0x0010: "ESP32-H2",
  0x0012: "ESP32-P4",
};

export class ImageError extends Error {}

export interface ImageSegment {
  loadAddress: number;
  /** Offset of the segment's data in the image. */
  offset: number;
  length: number;
}

export interface AppImage {
  entry: number;
  chipId: number;
  segments: ImageSegment[];
  /** The image's bytes, checksum and SHA-256 included. */
  length: number;
  hashAppended: boolean;
  /** The first segment starts with an app description (esp_app_desc_t): an application, not a bootloader. */
  appDescription: boolean;
  /** esp_app_desc_t.version and project_name, when the first segment starts with one. */
  appVersion?: string;
  projectName?: string;
}

const u32 = (b: Uint8Array, at: number) => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
const u16 = (b: Uint8Array, at: number) => b[at]! | (b[at + 1]! << 8);
const hex = (n: number, digits = 8) => "0x" + n.toString(16).padStart(digits, "0");

function cString(b: Uint8Array, at: number, max: number): string {
  let end = at;
  while (end < at + max && end < b.length && b[end] !== 0) end++;
  return Buffer.from(b.subarray(at, end)).toString("latin1");
}

/**
 * Parses and checks an app image at the start of `bytes` (which may run on: flash past the image):
 * magic, segment headers within bounds, the XOR checksum and, when the header says so, the
 * appended SHA-256, as the bootloader does before it runs one. Throws an ImageError naming what is
 * wrong.
 */
export function parseAppImage(bytes: Uint8Array): AppImage {
  if (bytes.length < IMAGE_HEADER_BYTES) throw new ImageError(`${bytes.length} bytes is too short for an image header (${IMAGE_HEADER_BYTES})`);
  if (bytes[0] !== IMAGE_MAGIC) throw new ImageError(`invalid magic byte ${hex(bytes[0]!, 2)} (an image starts with 0xe9)`);
  const count = bytes[1]!;
  if (count === 0 || count > MAX_SEGMENTS) throw new ImageError(`invalid segment count ${count}`);
  const segments: ImageSegment[] = [];
  let at = IMAGE_HEADER_BYTES;
  let checksum = CHECKSUM_SEED;
  for (let i = 0; i < count; i++) {
    if (at + SEGMENT_HEADER_BYTES > bytes.length) throw new ImageError(`segment ${i} header at ${hex(at)} is past the end (${bytes.length} bytes)`);
    const loadAddress = u32(bytes, at);
    const length = u32(bytes, at + 4);
    at += SEGMENT_HEADER_BYTES;
    if (length % 4 !== 0 || at + length > bytes.length) throw new ImageError(`segment ${i} (${length} bytes at ${hex(at)}) runs past the end or is not word-aligned`);
    for (let j = at; j < at + length; j++) checksum ^= bytes[j]!;
    segments.push({ loadAddress, offset: at, length });
    at += length;
  }
  // the checksum byte sits where the image, padded, ends on a 16-byte boundary
  const checksumAt = (at & ~15) + 15;
  if (checksumAt >= bytes.length) throw new ImageError(`the checksum byte at ${hex(checksumAt)} is past the end (${bytes.length} bytes)`);
  if (bytes[checksumAt] !== checksum) throw new ImageError(`checksum failed: calculated ${hex(checksum, 2)}, read ${hex(bytes[checksumAt]!, 2)}`);
  let length = checksumAt + 1;
  const hashAppended = bytes[23] === 1;
  if (hashAppended) {
    if (length + 32 > bytes.length) throw new ImageError("the appended SHA-256 is past the end");
    const digest = createHash("sha256").update(bytes.subarray(0, length)).digest();
    if (!digest.equals(Buffer.from(bytes.subarray(length, length + 32)))) throw new ImageError("the image's SHA-256 does not match its contents");
    length += 32;
  }
  const image: AppImage = { entry: u32(bytes, 4), chipId: u16(bytes, 12), segments, length, hashAppended, appDescription: false };
  const first = segments[0];
  if (first && first.length >= 256 && u32(bytes, first.offset) === APP_DESC_MAGIC) {
    image.appDescription = true;
    image.appVersion = cString(bytes, first.offset + 16, 32);
    image.projectName = cString(bytes, first.offset + 48, 32);
  }
  return image;
}

/**
 * Where a chip maps its flash into the address space (esp_image_format.c should_map(), soc.h
 * SOC_DROM_LOW/HIGH and SOC_IROM_LOW/HIGH): an application's code and constants load there, a
 * bootloader's segments never do (they load into RAM: bootloader.ld).
 */
const FLASH_MAPPED: Record<string, readonly (readonly [number, number])[]> = {
  ESP32: [
    [0x3f400000, 0x3f800000],
    [0x400d0000, 0x40400000],
  ],
};

/** `address` is in `chip`'s flash-mapped ranges; undefined for a chip whose map is not known here. */
export function isFlashMapped(chip: string, address: number): boolean | undefined {
  const ranges = FLASH_MAPPED[chip];
  return ranges ? ranges.some(([lo, hi]) => address >= lo && address < hi) : undefined;
}

/** The chip an image's header names, as esptool names it (`ESP32`, `ESP32-S3`, …). */
export function imageChipName(chipId: number): string {
  return IMAGE_CHIP_IDS[chipId] ?? `chip id ${chipId}`;
}

/**
 * The Espruino version an image carries: a NUL-delimited `2v29` (or `2v29.12`) string, as
 * JS_VERSION (src/jsutils.h) and the app description's version field lie in the binary.
 */
export function espruinoVersion(bytes: Uint8Array): string | undefined {
  const m = /\x00(\d{1,2}v\d{2}(?:\.\d+)?)\x00/.exec(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1"));
  return m?.[1];
}

export interface Partition {
  label: string;
  /** 0 app, 1 data. */
  type: number;
  subtype: number;
  offset: number;
  size: number;
  flags: number;
}

/** gen_esp32part.py's names for the types and the subtypes an Espruino table uses. */
export function partitionKind(p: Partition): string {
  if (p.type === 0) return p.subtype === 0 ? "app/factory" : p.subtype >= 0x10 && p.subtype < 0x20 ? `app/ota_${p.subtype - 0x10}` : `app/${p.subtype}`;
  const data: Record<number, string> = { 0: "ota", 1: "phy", 2: "nvs", 3: "coredump", 4: "nvs_keys", 5: "efuse", 6: "undefined", 0x81: "fat", 0x82: "spiffs" };
  return `data/${data[p.subtype] ?? hex(p.subtype, 2)}`;
}

/** Parses and checks a partition table (with its MD5 entry when it has one). Throws an ImageError. */
export function parsePartitionTable(bytes: Uint8Array): Partition[] {
  const partitions: Partition[] = [];
  for (let at = 0; at + PARTITION_ENTRY_BYTES <= Math.min(bytes.length, PARTITION_TABLE_BYTES); at += PARTITION_ENTRY_BYTES) {
    const magic = u16(bytes, at);
    if (magic === 0xffff) break;
    if (magic === PARTITION_MD5_MAGIC) {
      const want = Buffer.from(bytes.subarray(at + 16, at + 32));
      const got = createHash("md5").update(bytes.subarray(0, at)).digest();
      if (!got.equals(want)) throw new ImageError("the partition table's MD5 does not match its entries");
      break;
    }
    if (magic !== PARTITION_MAGIC) throw new ImageError(`partition ${partitions.length} has an invalid magic number ${hex(magic, 4)}`);
    partitions.push({
      type: bytes[at + 2]!,
      subtype: bytes[at + 3]!,
      offset: u32(bytes, at + 4),
      size: u32(bytes, at + 8),
      label: cString(bytes, at + 12, 16),
      flags: u32(bytes, at + 28),
    });
  }
  if (partitions.length === 0) throw new ImageError("no partitions (the first entry is erased or missing)");
  return partitions;
}

// --- building images (tests and simulated boards) ----------------------------------------------

export interface AppImageOptions {
  /** esp_image_header_t.chip_id (default 0, ESP32). */
  chipId?: number;
  /** The app description's version, and a JS_VERSION-like string in the data (default "2v29"). */
  version?: string;
  projectName?: string;
  /** Bytes of filler data, so the image has about this size (default 4096). */
  bytes?: number;
  entry?: number;
  /** Seed of the filler (deterministic, half compressible like code). */
  seed?: number;
  /** A bootloader: no app description, segments in RAM. */
  bootloader?: boolean;
  /** An application's segments without an app description (not something ESP-IDF builds). */
  noAppDescription?: boolean;
}

const pad4 = (n: number) => (n + 3) & ~3;

/** A valid app image: header, segments, checksum and appended SHA-256. */
export function buildAppImage(options: AppImageOptions = {}): Uint8Array {
  const version = options.version ?? "2v29";
  const fillerBytes = pad4(Math.max(64, options.bytes ?? 4096));
  const filler = new Uint8Array(fillerBytes);
  let seed = (options.seed ?? 1) >>> 0 || 1;
  for (let i = 0; i < filler.length; i++) {
    // xorshift; every other 64-byte run repeats a pattern, so deflate gets code-like ratios
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    filler[i] = (i >> 6) & 1 ? i & 0xff : seed & 0xff;
  }
  const text = Buffer.from(`\x00${version}\x00Espruino ${version}\x00`, "latin1");
  const drom = new Uint8Array(pad4(256 + text.length));
  if (!options.bootloader && !options.noAppDescription) {
    const view = new DataView(drom.buffer);
    view.setUint32(0, APP_DESC_MAGIC, true);
    drom.set(Buffer.from(version, "latin1").subarray(0, 31), 16);
    drom.set(Buffer.from(options.projectName ?? "espruino", "latin1").subarray(0, 31), 48);
    drom.set(Buffer.from("Jun  1 2025", "latin1"), 96);
    drom.set(Buffer.from("v4.4.8", "latin1"), 112);
  }
  drom.set(text, 256);
  const segments: [number, Uint8Array][] = options.bootloader
    ? [
        [0x3fff0030, drom],
        [0x40078000, filler],
      ]
    : [
        [0x3f400020, drom],
        [0x400d0020, filler],
      ];
  const body = segments.reduce((n, [, d]) => n + SEGMENT_HEADER_BYTES + d.length, 0);
  const unpadded = IMAGE_HEADER_BYTES + body;
  const checksumAt = (unpadded & ~15) + 15;
  const image = new Uint8Array(checksumAt + 1 + 32);
  const view = new DataView(image.buffer);
  image[0] = IMAGE_MAGIC;
  image[1] = segments.length;
  image[2] = 2; // DIO
  image[3] = 0x20; // 4 MB, 40 MHz
  view.setUint32(4, options.entry ?? (options.bootloader ? 0x40080400 : 0x40081000), true);
  image[8] = 0xee; // WP pin: not used
  view.setUint16(12, options.chipId ?? 0, true);
  image[23] = 1; // SHA-256 appended
  let at = IMAGE_HEADER_BYTES;
  let checksum = CHECKSUM_SEED;
  for (const [address, data] of segments) {
    view.setUint32(at, address, true);
    view.setUint32(at + 4, data.length, true);
    image.set(data, at + SEGMENT_HEADER_BYTES);
    for (const b of data) checksum ^= b;
    at += SEGMENT_HEADER_BYTES + data.length;
  }
  image[checksumAt] = checksum;
  image.set(createHash("sha256").update(image.subarray(0, checksumAt + 1)).digest(), checksumAt + 1);
  return image;
}

/** A partition table with its MD5 entry, padded with 0xFF to its 3 KB area. */
export function buildPartitionTable(partitions: readonly Partition[]): Uint8Array {
  const table = new Uint8Array(PARTITION_TABLE_BYTES).fill(0xff);
  const view = new DataView(table.buffer);
  let at = 0;
  for (const p of partitions) {
    view.setUint16(at, PARTITION_MAGIC, true);
    table[at + 2] = p.type;
    table[at + 3] = p.subtype;
    view.setUint32(at + 4, p.offset, true);
    view.setUint32(at + 8, p.size, true);
    table.fill(0, at + 12, at + 28);
    table.set(Buffer.from(p.label, "latin1").subarray(0, 16), at + 12);
    view.setUint32(at + 28, p.flags, true);
    at += PARTITION_ENTRY_BYTES;
  }
  view.setUint16(at, PARTITION_MD5_MAGIC, true);
  table.set(createHash("md5").update(table.subarray(0, at)).digest(), at + 16);
  return table;
}

/**
 * Espruino 2v29's ESP32 partition table (targets/esp32/IDF4/partitions.csv): nvs, phy_init, the
 * 2000 KB factory app at 0x10000, its "flash" data area, and Storage at 0x320000.
 */
export const ESPRUINO_PARTITIONS: readonly Partition[] = [
  { label: "nvs", type: 1, subtype: 2, offset: 0x9000, size: 0x6000, flags: 0 },
  { label: "phy_init", type: 1, subtype: 1, offset: 0xf000, size: 0x1000, flags: 0 },
  { label: "factory", type: 0, subtype: 0, offset: 0x10000, size: 2000 * 1024, flags: 0 },
  { label: "flash", type: 1, subtype: 0x40, offset: 0x310000, size: 0x10000, flags: 0 },
  { label: "storage", type: 1, subtype: 6, offset: 0x320000, size: 896 * 1024, flags: 0 },
];
