// The Linux builds of Espruino 2v29 (/work/shared/espruino/README.md: built once per machine into
// ~/.cache/espruino-ref, or $ESPRUINO_REF), for benchmarks that measure on the real interpreter.
// Optional: CI has no such build, so callers say "not measured" when referenceBinary() is undefined.
// Nothing under test/ that must pass depends on it.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";

/** espruino32-flash: the ESP32's 14-byte JsVars, code run from Storage kept in flash as on a board. */
export function referenceBinary(name = "espruino32-flash"): string | undefined {
  const file = join(process.env.ESPRUINO_REF ?? join(homedir(), ".cache/espruino-ref"), name);
  return existsSync(file) ? file : undefined;
}

/** A Wifi module for the Linux build (it has none): joins at once, reports 127.0.0.1. */
export const WIFI_STAND_IN = `Modules.addCached("Wifi", function () {
  exports.connect = function (ssid, o, cb) { setTimeout(cb, 10, null); };
  exports.getIP = function () { return { ip: "127.0.0.1" }; };
  exports.setSNTP = function () {};
});`;

/**
 * Runs `files` as a board's Storage: a first script writes them, then load() boots the board from
 * them (.boot0 to .boot3, then .bootcde). Resolves with what the interpreter printed, once `until`
 * matched or after `timeoutMs`.
 */
export async function runFromStorage(binary: string, files: Record<string, string>, options: { until: RegExp; timeoutMs?: number }): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "wisp-espruino-"));
  try {
    const writes = Object.entries(files).map(([name, text]) => `S.write(${JSON.stringify(name)}, ${JSON.stringify(text)});`);
    writeFileSync(join(dir, "setup.js"), `var S = require("Storage"); S.eraseAll(); ${writes.join("\n")}\nsetTimeout(load, 10);\n`, "latin1");
    const child = spawn(binary.includes("32") ? "qemu-i386" : binary, binary.includes("32") ? [binary, "setup.js"] : ["setup.js"], { cwd: dir, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    return await new Promise<string>((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        child.kill("SIGKILL");
        resolve(out);
      };
      const timer = setTimeout(finish, options.timeoutMs ?? 20_000);
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString("latin1");
        if (options.until.test(out)) finish();
      });
      child.stderr.on("data", (d: Buffer) => (out += d.toString("latin1")));
      child.on("exit", finish);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
