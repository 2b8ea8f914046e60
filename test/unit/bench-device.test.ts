// `npm run bench:device` without the interpreter: what it says when something is missing or wrong
// (the interpreter's path, the peer module, the options), and that it leaves no Mosquitto, interpreter
// or folder behind when a run fails or is interrupted. A stand-in shell script plays the interpreter.
import { execFile, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "../../tools/build.ts";
import { buildLine, checkModule, checkProgram, howTo, LinuxTarget, moduleFailure, parseOptions, USAGE } from "../bench/device.ts";

const scratch = mkdtempSync(path.join(tmpdir(), "wisp-bench-device-test-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function file(name: string, text: string, mode = 0o644): string {
  const p = path.join(scratch, name);
  writeFileSync(p, text);
  chmodSync(p, mode);
  return p;
}

/** A module shaped like the EspruinoDocs MQTT module, as far as the probe goes. */
const PEER = `function M(){}M.prototype.connect=function(){this.emit("connected")};M.prototype.s=function(){this.emit("subscribed");this.emit("puback")};exports.create=function(h,o){return new M};`;
const TINY = `var _q;function T(){_q=this}T.prototype.connect=function(){_q.emit("connected")};function d(o){_q.emit("message",o)}exports.create=function(s,o){return new T};`;
const WISP = `function C(){}exports.connect=function(u,o){return new C};`;

const BENCH = ["--import", "tsx", "test/bench/device.ts"];

function run(args: string[], env: Record<string, string | undefined>) {
  const full: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const k of ["ESPRUINO_BIN", "ESPRUINO_BIN32", "ESPRUINO_BIN32_FLASH", "ESPRUINO_MQTT_MODULE", "ESPRUINO_TINYMQTT_MODULE", "WISP_MQTT_JS"]) if (!(k in env)) delete full[k];
  return promisify(execFile)(process.execPath, [...BENCH, ...args], { env: full, encoding: "utf8", cwd: PROJECT_ROOT }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  );
}

/** Processes whose command line mentions `text` (a run's own temp folder). */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
      if (cmdline.includes(text)) found.push(`${pid} ${cmdline}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** The benchmark's folders in a run's TMPDIR (tsx keeps its cache there too). */
function benchFolders(tmp: string): string[] {
  return readdirSync(tmp).filter((name) => name.startsWith("wisp-bench-"));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z ");
  } catch {
    return false;
  }
}

it("without ESPRUINO_BIN and ESPRUINO_MQTT_MODULE, says how to get them and exits 0", async () => {
  const { code, stdout } = await run([], {});
  expect(code).toBe(0);
  expect(stdout).toMatch(/ESPRUINO_BIN=/);
  expect(stdout).toMatch(/ESPRUINO_MQTT_MODULE=/);
  expect(stdout).toMatch(/EspruinoDocs/);
});

describe("the how-to", () => {
  it("has npx esbuild run from inside the project, and tinyMQTT's path", () => {
    const text = howTo({ bin: true, module: true, board: false });
    const cd = text.indexOf(`cd ${PROJECT_ROOT}`);
    expect(cd).toBeGreaterThan(0);
    expect(text.indexOf("npx esbuild --minify")).toBeGreaterThan(cd);
    expect(text).toMatch(/EspruinoDocs\/modules\/tinyMQTT\.js/);
    expect(text).toMatch(/ESPRUINO_TINYMQTT_MODULE=/);
    expect(text).toMatch(/Building Espruino for Linux/);
  });

  it("with --port and no module, gives only the module's steps, not the Linux build's", async () => {
    const { code, stdout } = await run(["--port", "/dev/ttyUSB9"], {});
    expect(code).toBe(0);
    expect(stdout).toMatch(/ESPRUINO_MQTT_MODULE=/);
    expect(stdout).not.toMatch(/Building Espruino|ESPRUINO_BIN=/);
  });

  it("with ESPRUINO_BIN given, does not ask for it again", () => {
    expect(howTo({ bin: false, module: true, board: false })).not.toMatch(/ESPRUINO_BIN=/);
  });
});

describe("options", () => {
  it("--help lists every option and variable and exits 0", async () => {
    const { code, stdout } = await run(["--help"], {});
    expect(code).toBe(0);
    for (const word of ["--port", "--host", "--config", "--baud", "--rounds", "--instructions", "-v, --verbose", "-h, --help", "ESPRUINO_BIN ", "ESPRUINO_BIN32 ", "ESPRUINO_BIN32_FLASH", "ESPRUINO_MQTT_MODULE", "ESPRUINO_TINYMQTT_MODULE", "WISP_MQTT_JS"])
      expect(stdout).toContain(word);
    expect(parseOptions(["-h"])).toEqual({ exit: 0, text: USAGE });
  });

  it("an unknown option is refused with the same list (exit 2)", async () => {
    const { code, stderr } = await run(["--frobnicate"], {});
    expect(code).toBe(2);
    expect(stderr).toMatch(/--frobnicate/);
    expect(stderr).toContain(USAGE);
  });

  it.each(["abc", "0", "-1", "2.5", ""])("--rounds=%s is refused, not read as 3", (value) => {
    const result = parseOptions([`--rounds=${value}`]);
    expect(result).toMatchObject({ exit: 2 });
    expect((result as { text: string }).text).toMatch(/--rounds .*whole number/);
  });

  it("takes --rounds 5 and --baud on a board", () => {
    expect(parseOptions(["--rounds", "5"])).toMatchObject({ options: { rounds: 5 } });
    expect(parseOptions(["--port", "/dev/ttyUSB0", "--baud", "921600"])).toMatchObject({ options: { baud: 921600, port: "/dev/ttyUSB0" } });
    expect(parseOptions(["--port", "/dev/ttyUSB0", "--baud", "fast"])).toMatchObject({ exit: 2 });
  });

  it("refuses the board's options without --port, and --instructions with it", () => {
    expect((parseOptions(["--host", "10.0.0.2"]) as { text: string }).text).toMatch(/--host apply to a board: give its serial port with --port/);
    expect((parseOptions(["--port", "/dev/ttyUSB0", "--instructions"]) as { text: string }).text).toMatch(/--instructions .*not on a board/);
  });
});

describe("the interpreter's path, checked before anything starts", () => {
  it("accepts an executable program", () => {
    expect(checkProgram("ESPRUINO_BIN=x", "ESPRUINO_BIN", process.execPath)).toBeUndefined();
    expect(checkProgram("ESPRUINO_BIN=x", "ESPRUINO_BIN", file("script", "#!/bin/sh\n", 0o755))).toBeUndefined();
  });

  it("names the variable, the path and the fix", () => {
    const noExec = file("espruino-noexec", "\x7fELF\x02rest");
    expect(checkProgram(`ESPRUINO_BIN=${noExec}`, "ESPRUINO_BIN", noExec)).toBe(`ESPRUINO_BIN=${noExec}: not executable: chmod +x ${noExec} (or set ESPRUINO_BIN to the build itself)`);
    const dir = path.join(scratch, "Espruino");
    mkdirSync(path.join(dir, "bin"), { recursive: true });
    file("Espruino/bin/espruino", "#!/bin/sh\n", 0o755);
    expect(checkProgram(`ESPRUINO_BIN=${dir}`, "ESPRUINO_BIN", dir)).toBe(
      `ESPRUINO_BIN=${dir}: is a directory, not the interpreter: set ESPRUINO_BIN to the program itself, e.g. ${dir}/bin/espruino`,
    );
    expect(checkProgram("ESPRUINO_BIN32=/nonexistent/espruino32", "ESPRUINO_BIN32", "/nonexistent/espruino32")).toBe("ESPRUINO_BIN32=/nonexistent/espruino32: no such file");
    expect(checkProgram("ESPRUINO_BIN32_FLASH=t", "ESPRUINO_BIN32_FLASH", file("text", "hello\n", 0o755))).toMatch(/^ESPRUINO_BIN32_FLASH=t: not a program/);
  });

  it("says that a quoted ~ is not expanded", () => {
    expect(checkProgram("ESPRUINO_BIN=~/x/espruino", "ESPRUINO_BIN", "~/x/espruino")).toMatch(/a "~" inside quotes is not expanded by the shell: write ESPRUINO_BIN=\$HOME\/x\/espruino/);
  });

  it("checks ESPRUINO_BIN32, ESPRUINO_BIN32_FLASH and the builds found beside ESPRUINO_BIN, all before Mosquitto starts", async () => {
    const dir = path.join(scratch, "beside");
    mkdirSync(dir, { recursive: true });
    const bin = file("beside/espruino", "#!/bin/sh\nexit 3\n", 0o755);
    file("beside/espruino32", "#!/bin/sh\n", 0o644);
    const module = file("peer-ok.js", PEER);
    const tmp = mkdtempSync(path.join(scratch, "tmp-"));
    const { code, stdout, stderr } = await run([], { ESPRUINO_BIN: bin, ESPRUINO_BIN32_FLASH: dir, ESPRUINO_MQTT_MODULE: module, WISP_MQTT_JS: file("wisp.js", WISP), TMPDIR: tmp });
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr).toContain(`${dir}/espruino32 (found beside ESPRUINO_BIN; ESPRUINO_BIN32 names another): not executable`);
    expect(stderr).toContain(`ESPRUINO_BIN32_FLASH=${dir}: is a directory`);
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(benchFolders(tmp)).toEqual([]);
  });
});

describe("a peer module that is not one", () => {
  const espruino = (name: string, text: string) => checkModule("espruino", "ESPRUINO_MQTT_MODULE", file(name, text));
  const notIt = /it does not look like the EspruinoDocs MQTT module \(ESPRUINO_MQTT_MODULE must name modules\/MQTT\.js in EspruinoDocs, minified\)/;

  it("accepts one shaped like it", () => {
    expect(espruino("peer.js", PEER)).toBeUndefined();
    expect(checkModule("tiny", "ESPRUINO_TINYMQTT_MODULE", file("tiny.js", TINY))).toBeUndefined();
    expect(checkModule("wisp", "WISP_MQTT_JS", file("wisp.js", WISP))).toBeUndefined();
  });

  it("empty, not JavaScript, or without create(): says so with the variable and the file", () => {
    const empty = path.join(scratch, "empty.js");
    expect(espruino("empty.js", "")).toMatch(new RegExp(`^ESPRUINO_MQTT_MODULE=${empty}: the file is empty: `));
    expect(espruino("empty.js", "")).toMatch(notIt);
    expect(espruino("bad.js", "var x = ;")).toMatch(/^ESPRUINO_MQTT_MODULE=.*bad\.js: not JavaScript \(Unexpected token \(1:8\)\)/);
    expect(espruino("readme.md", "# Title\n\nText")).toMatch(/not JavaScript/);
    expect(espruino("other.js", "module.exports = { create: 1 }")).toMatch(/it sets no exports\.create/);
    expect(espruino("other.js", "module.exports = { create: 1 }")).toMatch(notIt);
    expect(checkModule("espruino", "ESPRUINO_MQTT_MODULE", scratch)).toMatch(/not a regular file but a directory/);
    expect(checkModule("espruino", "ESPRUINO_MQTT_MODULE", "~/MQTT.min.js")).toMatch(/no such file \(a "~" inside quotes/);
  });

  it("tinyMQTT given as the MQTT module, and the other way round", () => {
    expect(espruino("tiny-as-mqtt.js", TINY)).toMatch(/never emits "subscribed", "puback".*it looks like tinyMQTT: that one goes in ESPRUINO_TINYMQTT_MODULE/);
    expect(checkModule("tiny", "ESPRUINO_TINYMQTT_MODULE", file("mqtt-as-tiny.js", PEER))).toMatch(/^ESPRUINO_TINYMQTT_MODULE=.*: it emits "puback", as the EspruinoDocs MQTT module does, not tinyMQTT/);
  });

  it("a failure on the interpreter names the variable and file, not the module's internal kind", () => {
    const message = moduleFailure({ kind: "espruino", variable: "ESPRUINO_MQTT_MODULE", who: "ESPRUINO_MQTT_MODULE=/tmp/x.js" }, "mem", '"vm" is not defined');
    expect(message).toBe(
      'ESPRUINO_MQTT_MODULE=/tmp/x.js: the mem phase failed on the interpreter: "vm" is not defined\n  (it does not look like the EspruinoDocs MQTT module: ESPRUINO_MQTT_MODULE must name modules/MQTT.js in EspruinoDocs, minified)',
    );
    expect(moduleFailure({ kind: "tiny", variable: "ESPRUINO_TINYMQTT_MODULE", who: "ESPRUINO_TINYMQTT_MODULE=/t.js" }, "rx", "x")).toMatch(/does not look like tinyMQTT: ESPRUINO_TINYMQTT_MODULE must name modules\/tinyMQTT\.js/);
  });
});

describe("the header", () => {
  it("names each build's BOARD and the JsVar size it reported; a size not 14 is said not to be an ESP32's", () => {
    const r64 = { version: "2v29", commit: "c12258a", board: "LINUX", blocksize: 27 };
    const r32 = { version: "2v29", commit: "c12258a", board: "LINUX_ESP32LAYOUT", blocksize: 14 };
    expect(buildLine("rates", "espruino", r64, false)).toBe("  rates: espruino, Espruino 2v29 (commit c12258a), BOARD LINUX, 27-byte JsVars");
    expect(buildLine("JsVars, Modules.addCached", "espruino32", r32, true)).toMatch(/BOARD LINUX_ESP32LAYOUT, 14-byte JsVars as on an ESP32$/);
    const line = buildLine("JsVars, Modules.addCached", "espruino", r64, true);
    expect(line).toMatch(/BOARD LINUX, 27-byte JsVars: not an ESP32's \(14 bytes\)/);
    expect(line).not.toMatch(/as on an ESP32/);
  });
});

describe("every failure path stops what the run started", () => {
  it("an interpreter that cannot be started is an error, not an unhandled 'error' event", async () => {
    const binary = file("espruino-not-exec", "#!/bin/sh\n");
    const target = new LinuxTarget(binary, `ESPRUINO_BIN=${binary}`);
    try {
      const config = { phase: "mem", kind: "wisp", name: "m", load: "cached", host: "127.0.0.1", port: 1, id: "x", topic: "t", count: 0, batch: 1, window: 1 } as const;
      await expect(target.run(config, () => undefined, new Promise(() => undefined))).rejects.toThrow(`ESPRUINO_BIN=${binary}: cannot run it: spawn ${binary} EACCES`);
    } finally {
      await target.close();
    }
    expect(existsSync(target.dir)).toBe(false);
  });

  it("an interpreter that exits at once: a clean message, and no Mosquitto or folder left", async () => {
    const tmp = mkdtempSync(path.join(scratch, "tmp-"));
    const bin = file("exits", "#!/bin/sh\necho 'something went wrong'\nexit 3\n", 0o755);
    const { code, stdout, stderr } = await run([], { ESPRUINO_BIN: bin, ESPRUINO_MQTT_MODULE: file("peer-ok.js", PEER), WISP_MQTT_JS: file("wisp.js", WISP), TMPDIR: tmp });
    expect({ code, stdout }).toEqual({ code: 1, stdout: "" });
    expect(stderr).toContain(`bench:device failed: WISP_MQTT_JS=${scratch}/wisp.js: the mem phase failed on the interpreter: the interpreter (ESPRUINO_BIN=${bin}) exited before the phase finished; its last output:\nsomething went wrong`);
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(benchFolders(tmp)).toEqual([]);
    expect(processesMentioning(tmp)).toEqual([]);
  });

  it("Ctrl-C (SIGINT) mid-run stops the interpreter and Mosquitto and removes their folders", async () => {
    const tmp = mkdtempSync(path.join(scratch, "tmp-"));
    // the stand-in interpreter says it started (its pid, in its working folder), then waits
    const bin = file("waits", "#!/bin/sh\necho $$ > started.pid\nexec sleep 60\n", 0o755);
    const env: NodeJS.ProcessEnv = { ...process.env, ESPRUINO_BIN: bin, ESPRUINO_MQTT_MODULE: file("peer-ok.js", PEER), WISP_MQTT_JS: file("wisp.js", WISP), TMPDIR: tmp };
    for (const k of ["ESPRUINO_BIN32", "ESPRUINO_BIN32_FLASH", "ESPRUINO_TINYMQTT_MODULE"]) delete env[k];
    const child = spawn(process.execPath, BENCH, { env, cwd: PROJECT_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    let pidFile: string | undefined;
    for (let i = 0; i < 300 && !pidFile; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      pidFile = readdirSync(tmp, { recursive: true, encoding: "utf8" })
        .map((f) => path.join(tmp, f))
        .find((f) => f.endsWith("started.pid") && readFileSync(f, "utf8").trim());
    }
    expect(pidFile, stderr).toBeDefined();
    const interpreterPid = Number(readFileSync(pidFile!, "utf8"));
    expect(processesMentioning(tmp).some((p) => p.includes("mosquitto"))).toBe(true);
    child.kill("SIGINT");
    expect(await exited).toBe(130);
    expect(stderr).toMatch(/SIGINT: stopping the interpreter and Mosquitto/);
    expect(stderr).not.toMatch(/bench:device failed|\n\s+at /);
    expect(benchFolders(tmp)).toEqual([]);
    expect(processesMentioning(tmp)).toEqual([]);
    expect(alive(interpreterPid)).toBe(false);
  }, 20_000);
});
