// A folder shaped like Espruino's ESP32 build (bootloader.bin, partitions_espruino.bin,
// espruino_esp32.bin), made at test time from small but valid images: no Espruino binary is
// committed or fetched, and the tests stay fast. The app image carries a version string as
// Espruino's does, so the simulated board reports it.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildAppImage, buildPartitionTable, ESPRUINO_PARTITIONS, type Partition } from "../../tools/serial/esp-image.ts";

export interface EspruinoFolderOptions {
  version?: string;
  /** Bytes of the interpreter image (default 48 KB; the real one is about 1.5 MB). */
  appBytes?: number;
  bootloaderBytes?: number;
  chipId?: number;
  partitions?: readonly Partition[];
  /** Files to leave out. */
  omit?: string[];
  /** Replace a file's bytes. */
  replace?: Record<string, Uint8Array>;
}

export interface EspruinoFolder {
  dir: string;
  files: Record<string, Uint8Array>;
  remove(): void;
}

export function espruinoFolder(options: EspruinoFolderOptions = {}): EspruinoFolder {
  const dir = mkdtempSync(join(tmpdir(), "wisp-espruino-"));
  const files: Record<string, Uint8Array> = {
    "bootloader.bin": buildAppImage({ bootloader: true, bytes: options.bootloaderBytes ?? 16 * 1024, chipId: options.chipId, seed: 3 }),
    "partitions_espruino.bin": buildPartitionTable(options.partitions ?? ESPRUINO_PARTITIONS),
    "espruino_esp32.bin": buildAppImage({ bytes: options.appBytes ?? 48 * 1024, version: options.version ?? "2v29", chipId: options.chipId, seed: 5 }),
    ...options.replace,
  };
  for (const [name, data] of Object.entries(files)) {
    if (!options.omit?.includes(name)) writeFileSync(join(dir, name), data);
  }
  return { dir, files, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
