// `wisp install-espruino [DIR]`: put the Espruino interpreter itself on an ESP32 (a new board comes
// without it), then check that it answers on its console. `wisp flash --interpreter DIR` does the
// same and goes on to upload the node.

import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { boards } from "../boards/index.ts";
import type { Board } from "../boards/types.ts";
import { PROJECT_ROOT } from "./build.ts";
import { identifyAfter } from "./flash.ts";
import { formatHelp, intOption, parseOptions, UsageError, usageFailure } from "./options.ts";
import { isEspruinoVersion, TESTED_ESPRUINO } from "./serial/espruino-download.ts";
import { DEFAULT_FLASH_BAUD, findInterpreter, FLASH_BAUD, installInterpreter, InterpreterError } from "./serial/interpreter.ts";
import { ConsoleLink, LinkError } from "./serial/link.ts";
import { findBoardPort, openPort, PortError } from "./serial/port.ts";
import { writeStandIn } from "./serial/stand-in.ts";
import { modemLinesSocket } from "./serial/webserial.ts";

const USAGE = `usage: wisp install-espruino [DIR | VERSION] [options]

Writes Espruino's ESP32 build (bootloader.bin at 0x1000, partitions_espruino.bin at 0x8000,
espruino_esp32.bin at 0x10000) through the chip's ROM bootloader, checks each region by MD5,
restarts the board and waits for Espruino's prompt. The build comes from the folder DIR, or is
downloaded from espruino.com (VERSION such as 2v29; without either, ${TESTED_ESPRUINO}, the version
Wisp is tested with) into ~/.cache/wisp. The files are checked first: names, image headers and
checksums, the chip they are built for, that the interpreter is an Espruino application that fits its
partition, and that the partition table keeps Storage (the node's files) clear. Regions are written
in 64 KB pieces checked by MD5; pieces already in place are not written again.

  -p, --port PATH     the board's serial port (default: the one USB port with an ESP32 bridge)
      --board ID      the board (default: flash.config.json's "board", else esp32-devkitc)
      --flash-baud N  rate to write at (default 921600; 115200 on poor cables)
      --erase-all     erase the whole flash first (old settings and Storage go too)
      --stand-in DIR  write stand-in files for the simulator into DIR and stop: laid out as
                      Espruino's build, offline, but NOT Espruino (no real board runs them)
  -h, --help          this text

The board is reset into its bootloader with DTR/RTS, as esptool does; a board without that
circuit: hold BOOT, press and release EN, let go of BOOT, then run the command.`;

/**
 * ` --config <file>` for a simulated board (`wisp sim --serial` writes the config of its lab,
 * with its access point and broker, beside the consoles); empty for a real one.
 */
function labConfig(port: string): string {
  const lab = path.join(path.dirname(port), "flash.config.json");
  return existsSync(modemLinesSocket(port)) && existsSync(lab) ? ` --config ${lab}` : "";
}

function defaultBoard(): string {
  const file = path.join(PROJECT_ROOT, "flash.config.json");
  try {
    const board = (JSON.parse(readFileSync(file, "utf8")) as { board?: unknown }).board;
    if (typeof board === "string" && boards[board]) return board;
  } catch {
    // no config (yet): the common board
  }
  return "esp32-devkitc";
}

export async function main(argv: string[]): Promise<number> {
  let parsed, board: Board, flashBaud: number;
  try {
    parsed = parseOptions(
      argv,
      {
        port: { type: "string", short: "p" },
        board: { type: "string" },
        "flash-baud": { type: "string" },
        "erase-all": { type: "boolean" },
        "stand-in": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      true,
    );
    if (parsed.values.help) {
      console.log(formatHelp(USAGE));
      return 0;
    }
    if (parsed.positionals.length > 1) throw new UsageError(`one folder, got ${parsed.positionals.length}: ${parsed.positionals.join(" ")}`);
    const boardId = parsed.values.board ?? defaultBoard();
    const found = boards[boardId];
    if (!found) throw new UsageError(`unknown board ${JSON.stringify(boardId)}; known: ${Object.keys(boards).join(", ")}`);
    board = found;
    flashBaud = intOption("flash-baud", parsed.values["flash-baud"], DEFAULT_FLASH_BAUD, FLASH_BAUD);
  } catch (err) {
    if (err instanceof UsageError) return usageFailure("install-espruino", err);
    throw err;
  }
  const args = parsed.values;
  const spec = parsed.positionals[0];
  if (args["stand-in"] !== undefined) {
    if (spec !== undefined && !isEspruinoVersion(spec)) return usageFailure("install-espruino", new UsageError(`--stand-in DIR takes a version (such as ${TESTED_ESPRUINO}), not ${JSON.stringify(spec)}`));
    const dir = args["stand-in"];
    if (dir.trim() === "") return usageFailure("install-espruino", new UsageError("--stand-in needs a folder to write to"));
    writeStandIn(dir, board, spec ?? TESTED_ESPRUINO);
    console.log(
      `wrote stand-in files for the simulator in ${dir}: NOT Espruino (a real board cannot run them, and wisp will not write them to one).\n` +
        `A simulated blank board (wisp sim --serial --blank) boots them as Espruino ${spec ?? TESTED_ESPRUINO}: npx wisp flash --interpreter ${dir} --port <its console> --config <the lab config wisp sim prints>`,
    );
    return 0;
  }
  // Ctrl-C: the board is reset out of its bootloader and the terminal put back (the progress bar
  // hides the cursor); a second Ctrl-C leaves at once
  const abort = new AbortController();
  const interrupted = () => {
    if (abort.signal.aborted) process.exit(130);
    abort.abort();
  };
  process.on("SIGINT", interrupted);
  try {
    const interpreter = await findInterpreter(spec, board, { say: (line) => console.log(line) });
    if (abort.signal.aborted) {
      console.error("wisp install-espruino: interrupted before anything touched the board");
      return 130;
    }
    const port = args.port ?? (await findBoardPort()).path;
    const result = await installInterpreter({ port, interpreter, board, flashBaud, eraseAll: args["erase-all"], signal: abort.signal });
    const link = new ConsoleLink(await openPort(port, 115_200));
    try {
      const id = await identifyAfter(link, true, (line) => console.log(line));
      ConsoleLink.checkIdentity(id, board.espruinoBoard);
      const written = Math.min(result.regions.reduce((n, r) => n + r.written, 0), result.regions.reduce((n, r) => n + r.bytes, 0));
      console.log(
        `Espruino ${id.version} is running on ${port} (${id.board}): ${written.toLocaleString("en-US")} bytes written at ${result.baud} baud and verified, in ${result.seconds.toFixed(1)} s\n` +
          `next: npx wisp flash --port ${port}${labConfig(port)}`,
      );
    } finally {
      await link.close();
    }
    return 0;
  } catch (err) {
    if (err instanceof InterpreterError && err.code === "interrupted") {
      if (process.stderr.isTTY) process.stderr.write("\x1b[?25h\x1b[?7h\n");
      console.error(`wisp install-espruino: ${err.message}`);
      return 130;
    }
    if (err instanceof InterpreterError || err instanceof PortError || err instanceof LinkError) {
      console.error(`wisp install-espruino: ${err.message}`);
      return 1;
    }
    throw err;
  } finally {
    process.off("SIGINT", interrupted);
  }
}
