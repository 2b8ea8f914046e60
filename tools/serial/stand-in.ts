// Stand-in Espruino files for the simulator: a folder laid out as Espruino's ESP32 build
// (bootloader.bin, partitions_espruino.bin, espruino_esp32.bin) whose images are valid as images
// but hold no code, made here from esp-image.ts without a network or an Espruino binary. A
// simulated board (`wisp sim --serial --blank`) boots them as the interpreter version they carry;
// a real ESP32 cannot run them, so installInterpreter refuses to write them to a real board.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Board } from "../../boards/types.ts";
import { buildAppImage, buildPartitionTable, ESPRUINO_PARTITIONS } from "./esp-image.ts";
import { TESTED_ESPRUINO } from "./espruino-download.ts";

/** The app description's project name that marks a stand-in (esp_app_desc_t.project_name). */
export const STAND_IN_PROJECT = "wisp-stand-in";

/** Writes the stand-in files for `board` into `dir` (created when missing); returns their paths. */
export function writeStandIn(dir: string, board: Board, version = TESTED_ESPRUINO): string[] {
  mkdirSync(dir, { recursive: true });
  const data: Record<string, Uint8Array> = {
    bootloader: buildAppImage({ bootloader: true, bytes: 16 * 1024, chipId: board.chip.imageChipId, seed: 3 }),
    "partition-table": buildPartitionTable(ESPRUINO_PARTITIONS),
    app: buildAppImage({ bytes: 256 * 1024, version, projectName: STAND_IN_PROJECT, chipId: board.chip.imageChipId, seed: 5 }),
  };
  const written = board.interpreter.files.map((f) => {
    const path = join(dir, f.name);
    writeFileSync(path, data[f.kind]!);
    return path;
  });
  writeFileSync(
    join(dir, "README.txt"),
    `NOT ESPRUINO. Stand-in files made by \`wisp install-espruino --stand-in\` for Wisp's simulator\n` +
      `(wisp sim --serial --blank), where a board boots them as Espruino ${version}. They hold no code: a real\n` +
      `ESP32 cannot run them, and wisp refuses to write them to one. For a real board: https://www.espruino.com/Download\n`,
  );
  return written;
}
