// Espruino's build for a board, by version, from espruino.com: the folder of its binaries
// (`https://www.espruino.com/binaries/espruino_2v29_esp32/`, as README_flash.txt's folder is laid
// out) fetched once into the user's cache, then checked like any folder (interpreter.ts
// readInterpreter), so a bad or partial download is refused the same way a bad folder is.
// WISP_ESPRUINO_BINARIES names another place with the same layout (a mirror; the tests' server).

import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { Board } from "../../boards/types.ts";

export const ESPRUINO_BINARIES = "https://www.espruino.com/binaries";
/** The version Wisp is tested with, fetched when none is named. */
export const TESTED_ESPRUINO = "2v29";
const TIMEOUT_MS = 30_000;

export class DownloadError extends Error {}

/** `2v29`, `2v29.12`: a version, not a folder. */
export function isEspruinoVersion(text: string): boolean {
  return /^\d+v\d+(\.\d+)?$/.test(text);
}

export interface DownloadOptions {
  /** Where the binaries folders are (default WISP_ESPRUINO_BINARIES, else espruino.com's). */
  base?: string;
  /** Where downloaded builds are kept (default $XDG_CACHE_HOME/wisp or ~/.cache/wisp). */
  cacheDir?: string;
  say?: (line: string) => void;
}

export function espruinoCacheDir(env: Record<string, string | undefined> = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "wisp");
}

/**
 * The folder of Espruino `version` for `board`, downloaded into the cache when it is not there
 * yet. Throws a DownloadError saying what failed (no network, not found) and where else to get it.
 */
export async function downloadEspruino(version: string, board: Board, options: DownloadOptions = {}): Promise<string> {
  const name = `espruino_${version}_${board.espruinoBuild}`;
  const dir = join(options.cacheDir ?? espruinoCacheDir(), name);
  const files = board.interpreter.files.map((f) => f.name);
  if (files.every((f) => existsSync(join(dir, f)))) return dir;
  const base = (options.base ?? process.env.WISP_ESPRUINO_BINARIES ?? ESPRUINO_BINARIES).replace(/\/+$/, "");
  const url = `${base}/${name}/`;
  options.say?.(`downloading Espruino ${version} for ${board.chip.name} from ${url}`);
  const partial = `${dir}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  try {
    for (const file of files) {
      let response: Response;
      try {
        response = await fetch(url + file, { signal: AbortSignal.timeout(TIMEOUT_MS) });
      } catch (err) {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        throw new DownloadError(`could not reach ${url} (${cause?.code ?? cause?.message ?? (err as Error).message}): no network here?`);
      }
      if (!response.ok) throw new DownloadError(`${url}${file} answered ${response.status} ${response.statusText}: no Espruino ${version} for ${board.espruinoBuild} there?`);
      writeFileSync(join(partial, file), new Uint8Array(await response.arrayBuffer()));
    }
    rmSync(dir, { recursive: true, force: true });
    renameSync(partial, dir);
  } catch (err) {
    rmSync(partial, { recursive: true, force: true });
    throw err;
  }
  return dir;
}
