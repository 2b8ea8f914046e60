// What a simulated ESP32 does with its flash when it boots normally (IO0 high at reset): the ROM
// loads the second-stage bootloader from 0x1000, which reads the partition table at 0x8000 and
// loads the factory app, checking each image (magic byte, segments, checksum, SHA-256) as
// ESP-IDF 4.4's bootloader does; the app is the interpreter. Anything missing or broken ends the
// way it ends on a board, in a reset loop with the board's own messages:
//
// - no bootloader (erased flash, a new ESP32): the ROM prints `invalid header: 0xffffffff` every
//   40 ms and the RTC watchdog resets the chip about 330 ms after it started (as logged from
//   boards with empty flash: seven such lines, then `rst:0x10 (RTCWDT_RTC_RESET)`);
// - no valid partition table, or no bootable app: the bootloader says so with ESP-IDF's own
//   messages (bootloader_support: "load partition table error!", "image at 0x10000 has invalid
//   magic byte (nothing flashed here?)", "No bootable app partitions in the partition table")
//   and resets the chip (`rst:0x3 (SW_RESET)`).
//
// The lines a good boot prints (the ROM's `load:`/`entry` lines from the bootloader's own segments,
// the bootloader's partition list) follow ESP-IDF v4.4 at log level INFO, which Espruino's
// sdkconfig (targets/esp32/IDF4/sdkconfig, CONFIG_BOOTLOADER_LOG_LEVEL_INFO) sets.

import type { Board } from "../boards/types.ts";
import {
  type AppImage,
  buildAppImage,
  buildPartitionTable,
  ESPRUINO_PARTITIONS,
  espruinoVersion,
  IMAGE_HEADER_BYTES,
  type ImageError,
  type Partition,
  parseAppImage,
  parsePartitionTable,
  partitionKind,
} from "../tools/serial/esp-image.ts";
import type { ResetReason } from "./serial/rom.ts";
import type { SpiFlash } from "./spi-flash.ts";

export const BOOTLOADER_ADDRESS = 0x1000;
export const PARTITION_TABLE_ADDRESS = 0x8000;
/** The most a bootloader may take: from 0x1000 up to the partition table. */
const BOOTLOADER_MAX = PARTITION_TABLE_ADDRESS - BOOTLOADER_ADDRESS;

/** Text the chip prints, `atMs` after the ROM's banner. */
export interface BootLine {
  atMs: number;
  text: string;
}

export type BootOutcome =
  | { kind: "app"; app: AppImage; partition: Partition; version: string | undefined }
  | { kind: "reset"; atMs: number; reason: ResetReason; why: string };

export interface BootPlan {
  lines: BootLine[];
  outcome: BootOutcome;
}

const hex8 = (n: number) => "0x" + (n >>> 0).toString(16).padStart(8, "0");
const pad8 = (n: number) => (n >>> 0).toString(16).padStart(8, "0");

/** What a normal boot from `flash` prints and leads to (pure: the caller runs the plan). */
export function planFlashBoot(flash: SpiFlash, board: Board): BootPlan {
  const lines: BootLine[] = [];
  // first stage: the ROM and the bootloader image
  const head = flash.read(BOOTLOADER_ADDRESS, BOOTLOADER_MAX);
  let bootloader: AppImage;
  try {
    bootloader = parseAppImage(head);
  } catch (err) {
    if (head[0] !== 0xe9) {
      const word = (head[0]! | (head[1]! << 8) | (head[2]! << 16) | (head[3]! << 24)) >>> 0;
      for (let i = 1; i <= 7; i++) lines.push({ atMs: 40 * i, text: `invalid header: ${hex8(word)}` });
    } else {
      lines.push({ atMs: 5, text: `csum err (${(err as Error).message})` }, { atMs: 5, text: "ets_main.c 371 " });
    }
    return { lines, outcome: { kind: "reset", atMs: 330, reason: "rtc-watchdog", why: "no valid second-stage bootloader at 0x1000" } };
  }
  lines.push(
    { atMs: 1, text: "configsip: 0, SPIWP:0xee" },
    { atMs: 1, text: "clk_drv:0x00,q_drv:0x00,d_drv:0x00,cs0_drv:0x00,hd_drv:0x00,wp_drv:0x00" },
    { atMs: 1, text: "mode:DIO, clock div:2" },
  );
  for (const s of bootloader.segments) lines.push({ atMs: 2, text: `load:${hex8(s.loadAddress)},len:${s.length}` });
  lines.push({ atMs: 3, text: `entry ${hex8(bootloader.entry)}` });
  // second stage: the bootloader's log (ms since it started, as esp_log_early_timestamp)
  let t = 27;
  const log = (level: "I" | "E", tag: string, text: string) => {
    lines.push({ atMs: t, text: `${level} (${t}) ${tag}: ${text}` });
    t += 5;
  };
  log("I", "boot", "ESP-IDF v4.4.8 2nd stage bootloader");
  log("I", "boot", "compile time 00:00:00");
  log("I", "boot", "chip revision: 1");
  log("I", "boot.esp32", "SPI Speed      : 40MHz");
  log("I", "boot.esp32", "SPI Mode       : DIO");
  log("I", "boot.esp32", `SPI Flash Size : ${flash.size / 1048576}MB`);
  const fail = (why: string): BootPlan => ({ lines, outcome: { kind: "reset", atMs: t + 5, reason: "software", why } });
  let partitions: Partition[];
  try {
    partitions = parsePartitionTable(flash.read(PARTITION_TABLE_ADDRESS, 0xc00));
  } catch (err) {
    log("E", "flash_parts", (err as ImageError).message);
    log("E", "boot", "Failed to verify partition table");
    log("E", "boot", "load partition table error!");
    return fail("no valid partition table at 0x8000");
  }
  log("I", "boot", "Partition Table:");
  log("I", "boot", "## Label            Usage          Type ST Offset   Length");
  partitions.forEach((p, i) => {
    log("I", "boot", ` ${i} ${p.label.padEnd(16)} ${usage(p).padEnd(16)} ${p.type.toString(16).padStart(2, "0")} ${p.subtype.toString(16).padStart(2, "0")} ${pad8(p.offset)} ${pad8(p.size)}`);
  });
  log("I", "boot", "End of partition table");
  // the factory app, else the OTA apps in order; one that cannot be loaded is passed over for the
  // next (bootloader_utility.c bootloader_utility_load_boot_image: "falling back to ...")
  const apps = partitions.filter((p) => p.type === 0 && (p.subtype === 0 || (p.subtype >= 0x10 && p.subtype < 0x20))).sort((x, y) => (x.subtype === 0 ? -1 : y.subtype === 0 ? 1 : x.subtype - y.subtype));
  let app: Partition | undefined;
  let bytes: Uint8Array = new Uint8Array(0);
  let image: AppImage | undefined;
  for (const candidate of apps) {
    const name = candidate.subtype === 0 ? "Factory app" : `OTA app ${candidate.subtype - 0x10}`;
    if (candidate.offset + candidate.size > flash.size) {
      log("E", "boot", `${name} partition at 0x${candidate.offset.toString(16)} lies past the end of flash`);
      continue;
    }
    const read = readImage(flash, candidate.offset, candidate.size);
    let parsed: AppImage;
    try {
      parsed = parseAppImage(read);
    } catch (err) {
      const message = read[0] !== 0xe9 ? `image at 0x${candidate.offset.toString(16)} has invalid magic byte (nothing flashed here?)` : (err as Error).message;
      log("E", "esp_image", message);
      log("E", "boot", `${name} partition is not bootable`);
      continue;
    }
    if (parsed.chipId !== board.chip.imageChipId) {
      log("E", "boot_comm", `mismatch chip ID, expected ${board.chip.imageChipId}, found ${parsed.chipId}`);
      log("E", "boot", `${name} partition is not bootable`);
      continue;
    }
    app = candidate;
    bytes = read;
    image = parsed;
    break;
  }
  if (!app || !image) {
    log("E", "boot", "No bootable app partitions in the partition table");
    return fail(apps.length === 0 ? "no app partition" : "no bootable app");
  }
  log("I", "boot", `Loaded app from partition at offset 0x${app.offset.toString(16)}`);
  log("I", "boot", "Disabling RNG early entropy source...");
  const version = espruinoVersion(bytes.subarray(0, image.length)) ?? (/^\d+v\d+/.test(image.appVersion ?? "") ? image.appVersion : undefined);
  return { lines, outcome: { kind: "app", app: image, partition: app, version } };
}

/**
 * The bytes of the image at `address` (at most `max`): its header and segment headers say how long
 * it is, so a 2 MB partition holding a 5 KB image costs 5 KB, as the bootloader reads it too.
 */
function readImage(flash: SpiFlash, address: number, max: number): Uint8Array {
  const head = flash.read(address, Math.min(IMAGE_HEADER_BYTES, max));
  if (head[0] !== 0xe9 || head.length < IMAGE_HEADER_BYTES) return head;
  let at = IMAGE_HEADER_BYTES;
  for (let i = 0; i < head[1]! && at + 8 <= max; i++) {
    const segment = flash.read(address + at, 8);
    at += 8 + new DataView(segment.buffer).getUint32(4, true);
  }
  // padding to the checksum byte, and room for the SHA-256 that may follow
  return flash.read(address, Math.min(max, (at & ~15) + 16 + 32));
}

/** The "Usage" column of the bootloader's partition list (bootloader_utility.c). */
function usage(p: Partition): string {
  const kind = partitionKind(p);
  if (kind === "app/factory") return "factory app";
  if (kind.startsWith("app/ota_")) return `OTA app`;
  if (kind === "data/nvs") return "WiFi data";
  if (kind === "data/phy") return "RF data";
  if (kind === "data/ota") return "OTA data";
  return "Unknown data";
}

const imageCache = new Map<string, { address: number; data: Uint8Array }[]>();

/**
 * A small but valid interpreter for a simulated board's flash: a bootloader, Espruino's partition
 * table and an app image that carries `version` (4 KB of filler instead of 1.5 MB of Xtensa code:
 * the simulator's runtime is what runs). What a simulated board that is not blank comes with.
 */
export function interpreterImages(board: Board, version = "2v29"): { address: number; data: Uint8Array }[] {
  const key = `${board.id} ${version}`;
  let images = imageCache.get(key);
  if (!images) {
    const at = (kind: string) => board.interpreter.files.find((f) => f.kind === kind)!.address;
    images = [
      { address: at("bootloader"), data: buildAppImage({ bootloader: true, chipId: board.chip.imageChipId, bytes: 2048, seed: 7 }) },
      { address: at("partition-table"), data: buildPartitionTable(ESPRUINO_PARTITIONS) },
      { address: at("app"), data: buildAppImage({ chipId: board.chip.imageChipId, version, bytes: 4096, seed: 11 }) },
    ];
    imageCache.set(key, images);
  }
  return images;
}

/** Erases and writes each image, as esptool would. */
export function writeImages(flash: SpiFlash, images: readonly { address: number; data: Uint8Array }[]): void {
  for (const { address, data } of images) {
    flash.erase(address, data.length);
    flash.program(address, data);
  }
}
