// Espruino's build for a board, by version, from espruino.com: the folder of its binaries
// (`https://www.espruino.com/binaries/espruino_2v29_esp32/`, as README_flash.txt's folder is laid
// out) fetched once into the user's cache, then checked like any folder (interpreter-files.ts
// readInterpreter). The download goes into a folder of its own (two runs at once do not share
// it), is checked there, and only then moved into the cache, so the cache holds only builds that
// passed; a cached copy that fails the checks later (a changed file) is dropped and fetched again.
// WISP_ESPRUINO_BINARIES names another place with the same layout (a mirror; the tests' server).

import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { Board } from "../../boards/types.ts";

export const ESPRUINO_BINARIES = "https://www.espruino.com/binaries";
/** The version Wisp is tested with, fetched when none is named. */
export const TESTED_ESPRUINO = "2v29";
/** How long a download may go without a byte (connecting, waiting for the answer, or between chunks). */
const IDLE_MS = 30_000;

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
  /**
   * Checks a folder of the build and throws (an Error whose message says what is wrong) when it
   * is not usable: run on a download before it enters the cache and on a cached copy before use.
   */
  check?: (dir: string) => void;
  /** Milliseconds without a byte before a download is given up (default 30 s). */
  idleMs?: number;
}

export function espruinoCacheDir(env: Record<string, string | undefined> = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "wisp");
}

const bytes = (n: number) => n.toLocaleString("en-US");

/** The body of `url`, given up when no byte comes for `idleMs`; a cut or stalled body is a DownloadError. */
async function fetchBody(url: string, idleMs: number): Promise<Uint8Array> {
  const abort = new AbortController();
  let idle = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      idle = true;
      abort.abort();
    }, idleMs);
  };
  const stalled = () => `nothing arrived for ${idleMs / 1000} s`;
  arm();
  try {
    let response: Response;
    try {
      response = await fetch(url, { signal: abort.signal });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new DownloadError(`could not reach ${url} (${idle ? stalled() : (cause?.code ?? cause?.message ?? (err as Error).message)}): no network here?`);
    }
    if (!response.ok) throw new DownloadError(`${url} answered ${response.status} ${response.statusText}`);
    const declared = Number(response.headers.get("content-length") ?? NaN);
    const chunks: Uint8Array[] = [];
    let received = 0;
    const reader = response.body?.getReader();
    try {
      for (;;) {
        arm();
        const { done, value } = reader ? await reader.read() : { done: true, value: undefined };
        if (done || !value) break;
        chunks.push(value);
        received += value.length;
      }
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = idle ? stalled() : (cause?.code ?? cause?.message ?? (err as Error).message);
      throw new DownloadError(`the download of ${url} broke off after ${bytes(received)}${Number.isFinite(declared) ? ` of ${bytes(declared)}` : ""} bytes (${why})`);
    }
    if (Number.isFinite(declared) && received !== declared) {
      throw new DownloadError(`the download of ${url} ended after ${bytes(received)} of ${bytes(declared)} bytes: the connection broke`);
    }
    const body = new Uint8Array(received);
    let at = 0;
    for (const c of chunks) {
      body.set(c, at);
      at += c.length;
    }
    return body;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The folder of Espruino `version` for `board`, downloaded into the cache when it is not there
 * yet (or when the cached copy fails `check`). Throws a DownloadError saying what failed (no
 * network, not found, a cut or stalled download, files that fail the checks); nothing that fails
 * is left in the cache.
 */
export async function downloadEspruino(version: string, board: Board, options: DownloadOptions = {}): Promise<string> {
  const name = `espruino_${version}_${board.espruinoBuild}`;
  const cache = options.cacheDir ?? espruinoCacheDir();
  const dir = join(cache, name);
  const files = board.interpreter.files.map((f) => f.name);
  const check = (d: string): string | undefined => {
    try {
      options.check?.(d);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  };
  if (existsSync(dir)) {
    const complete = files.every((f) => existsSync(join(dir, f)));
    const fault = complete ? check(dir) : `it lacks ${files.filter((f) => !existsSync(join(dir, f))).join(", ")}`;
    if (fault === undefined) return dir;
    options.say?.(`the cached copy of Espruino ${version} in ${dir} is not usable (${fault}): removing it and downloading again`);
    rmSync(dir, { recursive: true, force: true });
  }
  const base = (options.base ?? process.env.WISP_ESPRUINO_BINARIES ?? ESPRUINO_BINARIES).replace(/\/+$/, "");
  const url = `${base}/${name}/`;
  options.say?.(`downloading Espruino ${version} for ${board.chip.name} from ${url}`);
  mkdirSync(cache, { recursive: true });
  const partial = mkdtempSync(join(cache, `${name}.partial-`));
  try {
    for (const file of files) {
      let body: Uint8Array;
      try {
        body = await fetchBody(url + file, options.idleMs ?? IDLE_MS);
      } catch (err) {
        if (err instanceof DownloadError && / answered 404 /.test(err.message)) {
          throw new DownloadError(`${err.message}: is there an Espruino ${version} for ${board.espruinoBuild}?`);
        }
        throw err;
      }
      writeFileSync(join(partial, file), body);
    }
    const fault = check(partial);
    if (fault !== undefined) throw new DownloadError(`what ${url} sent is not a usable build, so nothing was cached: ${fault}`);
    try {
      renameSync(partial, dir);
    } catch (err) {
      // another run finished the same download first: its copy passed the same checks
      const code = (err as { code?: string }).code;
      if ((code !== "ENOTEMPTY" && code !== "EEXIST") || check(dir) !== undefined) throw err;
    }
  } finally {
    rmSync(partial, { recursive: true, force: true });
  }
  options.say?.(`Espruino ${version} for ${board.chip.name} kept in ${dir}`);
  return dir;
}
