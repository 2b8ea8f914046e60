// `wisp flash`: put the node on a board over its USB serial port. Builds when stale, validates
// flash.config.json and renders wisp.json with the secrets from the environment, finds the port,
// with --interpreter first writes Espruino itself (serial/interpreter.ts: esptool-js and the ROM
// bootloader), checks that the board runs Espruino 2v25+ for the right chip, stops what runs there
// (reset()), uploads dist/firmware.js as .bootcde and wisp.json with the console's packet
// protocol, checks each on the board by CRC-32, then load()s and waits for the node's boot line.

import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { crc32 } from "node:zlib";
import { boards } from "../boards/index.ts";
import { ensureBuilt, PROJECT_ROOT } from "./build.ts";
import { ConfigError, loadFlashConfig, OUTBOX_DEFAULT_BYTES, renderDeviceConfig, type FlashConfig } from "./config.ts";
import { BAUD, intOption, parseOptions, UsageError, usageFailure, formatHelp } from "./options.ts";
import { ConsoleLink, type FileProgress, type Identity, lastLines, LinkError } from "./serial/link.ts";
import { jsString } from "./serial/protocol.ts";
import { BrokerFolderError, ensureNodeLogin, type NodeLogin, operatorShellLogin } from "./broker/folder.ts";
import { DEFAULT_FLASH_BAUD, findInterpreter, FLASH_BAUD, type InstallResult, installInterpreter, type Interpreter, InterpreterError } from "./serial/interpreter.ts";
import { findBoardPort, openPort, PortError } from "./serial/port.ts";
import { startProgress } from "./serial/progress.ts";

const USAGE = `usage: wisp flash [options]

Uploads the node (dist/firmware.js as .bootcde, and wisp.json rendered from the config with its
secrets) to an ESP32 running Espruino 2v25 or newer, checks both files on the board by CRC-32,
and restarts it. With --interpreter, first puts Espruino itself on the board (a new ESP32 has
none).

  -p, --port PATH     the board's serial port (default: the one USB port with an ESP32 bridge;
                      \`wisp ports\` lists them)
  -c, --config FILE   node configuration (default flash.config.json)
  -b, --baud N        console baud rate (default 115200, what Espruino's ESP32 build uses)
  -i, --interpreter DIR|VERSION  first write Espruino's ESP32 build from DIR (bootloader.bin at
                      0x1000, partitions_espruino.bin at 0x8000, espruino_esp32.bin at 0x10000), or
                      VERSION (2v29) downloaded from espruino.com, through the chip's ROM
                      bootloader, each region checked by MD5
      --flash-baud N  rate to write the interpreter at (default 921600; 115200 on poor cables)
      --erase-all     with --interpreter: erase the whole flash first (Storage included)
  -m, --monitor       stay on the board's console afterwards (Ctrl-] leaves)
      --drop-outbox   with a config that has "outbox": false: erase the board's outbox even
                      when readings in it were not sent yet (without it, wisp flash refuses)
      --broker-dir DIR  a \`wisp broker init\` folder: the node gets its own login (and the CA)
                      from it, added to the folder when the node is new
      --no-build      upload dist/ as it is
  -h, --help          this text

Secrets written as {"env": "NAME"} in the config are read from the environment now.`;

export interface FlashOptions {
  port?: string;
  configFile: string;
  baud: number;
  /** process.env.BOARD to accept (default: the board file's). */
  expectBoard?: string;
  /** Lines for the user (default console.log). */
  say?: (line: string) => void;
  /** Every byte of console text from the board. */
  onText?: (text: string) => void;
  /** Show a progress bar on stderr when it is a terminal (default true). */
  progress?: boolean;
  /** A `wisp broker init` folder to take the node's login from. */
  brokerDir?: string;
  /** Put this Espruino on the board first (readInterpreter). */
  interpreter?: Interpreter;
  /** Rate to write the interpreter at (default 921600). */
  flashBaud?: number;
  /** Erase the whole flash before writing the interpreter. */
  eraseAll?: boolean;
  /** esptool-js's log lines, while the interpreter is written. */
  onFlasherLog?: (line: string) => void;
  /** Stops writing the interpreter (Ctrl-C): the board is reset to run what it holds (installInterpreter). */
  signal?: AbortSignal;
  /** Called once the interpreter is written and verified. */
  onInstalled?: () => void;
  /** With "outbox": false in the config: erase the board's outbox even when readings in it wait. */
  dropOutbox?: boolean;
}

export interface FlashResult {
  port: string;
  /** The node's serial and topic prefix, from its boot line. */
  serial: string;
  prefix: string;
  files: { name: string; bytes: number; crc: number }[];
  seconds: number;
  /** Packets and files sent again (NAK, no answer, CRC mismatch). */
  retries: { packets: number; files: number };
  /** The link, still open, when `keepOpen` was asked for. */
  link?: ConsoleLink;
  /** The link's console position when load() was sent: what the node printed from its boot on. */
  bootFrom: number;
  brokerUrl: string;
  /** What writing the interpreter did, with --interpreter. */
  interpreter?: InstallResult;
}

/**
 * The node as it will be written, in upload order; `login` is the node's own broker login. Throws
 * ConfigError (naming `file`) when a secret of the config is missing from `env`.
 */
export function nodeFiles(
  config: FlashConfig,
  env: Record<string, string | undefined> = process.env,
  login?: NodeLogin,
  file?: string,
): { name: string; data: Uint8Array }[] {
  const firmwareFile = path.join(PROJECT_ROOT, "dist", "firmware.js");
  if (!existsSync(firmwareFile)) throw new ConfigError(firmwareFile, ["missing: build it (npm run build), or leave out --no-build"]);
  const firmware = readFileSync(firmwareFile);
  // UTF-8: the ESP32 build has no Unicode support, so a string is its bytes, as an access point's SSID is
  const settings = Buffer.from(JSON.stringify(renderDeviceConfig(config, { env, login, file })), "utf8");
  return [
    { name: ".bootcde", data: new Uint8Array(firmware) },
    { name: "wisp.json", data: new Uint8Array(settings) },
  ];
}

/** Flashes a board; throws ConfigError, PortError or LinkError with the cause and the fix. */
export async function flash(options: FlashOptions & { keepOpen?: boolean }): Promise<FlashResult> {
  const say = options.say ?? ((line: string) => console.log(line));
  const config = loadFlashConfig(options.configFile);
  let files = nodeFiles(config, process.env, undefined, options.configFile); // secrets are checked before anything touches the board
  const board = boards[config.board]!;
  const portPath = options.port ?? (await findBoardPort()).path;
  const started = performance.now();
  let installed: InstallResult | undefined;
  if (options.interpreter) {
    installed = await installInterpreter({
      port: portPath,
      interpreter: options.interpreter,
      board,
      flashBaud: options.flashBaud,
      eraseAll: options.eraseAll,
      say,
      progress: options.progress,
      onLog: options.onFlasherLog,
      signal: options.signal,
    });
    options.onInstalled?.();
  }
  const transport = await openPort(portPath, options.baud);
  const link = new ConsoleLink(transport, { baud: options.baud, onText: options.onText });
  try {
    const expected = options.expectBoard ?? board.espruinoBoard;
    ConsoleLink.checkIdentity(await identifyAfter(link, installed !== undefined, say), expected);
    const id = await link.processEnv();
    ConsoleLink.checkIdentity(id, expected);
    say(`${portPath}: Espruino ${id.version} on ${id.board}`);
    if (options.brokerDir) {
      const serial = String(await link.eval("getSerial()"));
      const { login, added } = ensureNodeLogin(options.brokerDir, serial);
      files = nodeFiles(config, process.env, login, options.configFile);
      say(`broker login for node ${serial} from ${options.brokerDir}${added ? " (new: send Mosquitto a SIGHUP so it reads passwd again)" : ""}`);
    }
    const outbox = await checkStorage(link, files, config.outbox === false ? 0 : (config.outbox?.maxBytes ?? OUTBOX_DEFAULT_BYTES));
    if (outbox.segments && config.outbox === false) await dropOutbox(link, outbox, options.dropOutbox === true, say);
    else if (outbox.segments) say(`the outbox holds ${outbox.bytes.toLocaleString("en-US")} bytes of readings in ${outbox.segments} segments: they stay, and go once the node is back`);
    // stop the node that runs now (its code may run from the flash about to be rewritten)
    await link.eval("reset()");
    await link.quiet(300, 5000);
    const total = files.reduce((n, f) => n + f.data.length, 0);
    const progress = startProgress(total, options.progress !== false, process.stderr, say);
    let done = 0;
    const written: FlashResult["files"] = [];
    for (const f of files) {
      const t0 = performance.now();
      await link.writeFile(f.name, f.data, (p: FileProgress) => progress.update(done + p.sent, f.name));
      done += f.data.length;
      progress.update(done, f.name);
      const s = (performance.now() - t0) / 1000;
      progress.log(`wrote ${f.name}: ${f.data.length.toLocaleString("en-US")} bytes in ${s.toFixed(1)} s, CRC-32 checked on the board`);
      written.push({ name: f.name, bytes: f.data.length, crc: crc32(f.data) >>> 0 });
    }
    progress.stop();
    const bootFrom = link.position;
    const boot = link.waitForText(/wisp: node (\S+), prefix ([^\r\n]+)\r?\n/, 20_000);
    const waiting = link.waitForText(/wisp: wisp\.json: ([^\r\n]*)\r?\n/, 20_000);
    boot.catch(() => undefined);
    waiting.catch(() => undefined);
    await link.eval("load()");
    let m: RegExpExecArray;
    try {
      m = await Promise.any([boot, waiting]);
    } catch {
      const said = lastLines(link.textSince(bootFrom), 6);
      throw new LinkError(
        `the files are on the board, but the node did not print its boot line (wisp: node …) within 20 s after load(). ${said.length ? `The board printed:\n  ${said.join("\n  ")}` : "The board printed nothing."}`,
        "timeout",
      );
    }
    if (m[0].startsWith("wisp: wisp.json")) throw new LinkError(`the node started but does not accept its settings: ${m[1]}`, "eval");
    const result: FlashResult = {
      interpreter: installed,
      port: portPath,
      serial: m[1]!,
      prefix: m[2]!,
      files: written,
      seconds: (performance.now() - started) / 1000,
      brokerUrl: config.mqtt.url,
      retries: { ...link.retries },
      bootFrom,
    };
    if (options.keepOpen) result.link = link;
    return result;
  } catch (err) {
    await link.close();
    throw err;
  } finally {
    if (!options.keepOpen) await link.close();
  }
}

/** Bytes a Storage file takes in flash: its size rounded to 4, and a header (src/jsflash.c; the same sum runs on the board below). */
const footprint = (size: number) => Math.ceil(size / 4) * 4 + 32;

/**
 * Refuses before anything is erased when the board's Storage cannot take the files: free space,
 * plus trash (Espruino compacts when a new file needs it), plus what the files being replaced take.
 */
/**
 * Refuses, before anything is erased, a board whose Storage cannot take the node: its files, in place
 * of the ones they replace, and room for the outbox to grow to `outboxBytes` (the outbox's files,
 * StorageFiles "wisp.o<n>" of 4 KB chunks, are not replaced: they stay, with the readings that wait).
 * Returns what the outbox holds now.
 */
async function checkStorage(link: ConsoleLink, files: { name: string; data: Uint8Array }[], outboxBytes: number): Promise<{ bytes: number; segments: number }> {
  const names = files.map((f) => jsString(f.name)).join(",");
  const answer = String(
    await link.eval(
      `(function(s){var t=s.getStats(),e=0,o=0,n=0;[${names}].forEach(function(n){var x=s.read(n);if(x!==undefined)e+=Math.ceil(x.length/4)*4+32;});` +
        `(s.list(/^wisp\\.o\\d+$/,{sf:true})||[]).forEach(function(f){n++;for(var c=1,x;(x=s.read(f+String.fromCharCode(c)))!==undefined;c++)o+=Math.ceil(x.length/4)*4+32;});` +
        `return t.freeBytes+","+t.trashBytes+","+e+","+o+","+n;})(require("Storage"))`,
    ),
  );
  const [free, trash, replaced, held, segments] = answer.split(",").map(Number);
  if (![free, trash, replaced].every((n) => Number.isFinite(n))) return { bytes: 0, segments: 0 }; // an interpreter without getStats: the write itself reports it
  const outbox = { bytes: held || 0, segments: segments || 0 };
  const need = files.reduce((n, f) => n + footprint(f.data.length), 0);
  const available = free! + trash! + replaced!;
  const fmt = (n: number) => n.toLocaleString("en-US");
  if (need > available) {
    throw new LinkError(
      `the board's Storage is too full for the node: it needs ${fmt(need)} bytes, ${fmt(available)} can be had (${fmt(free!)} free, ${fmt(trash!)} in erased files, ${fmt(replaced!)} in the files it replaces${outbox.segments ? `; the outbox's ${fmt(outbox.bytes)} bytes of waiting readings stay` : ""}). Nothing was changed. Free space on the board: \`npx wisp monitor\`, then require("Storage").list() and require("Storage").erase(name)`,
      "storage",
    );
  }
  const grow = Math.max(0, outboxBytes - outbox.bytes);
  if (need + grow > available) {
    throw new LinkError(
      `the board's Storage would not leave the outbox its outbox.maxBytes (${fmt(outboxBytes)}): after the node's ${fmt(need)} bytes, ${fmt(available - need)} are left for it to grow by ${fmt(grow)}. Nothing was changed. Lower outbox.maxBytes in the config, or free space on the board (\`npx wisp monitor\`, require("Storage").list(), require("Storage").erase(name))`,
      "storage",
    );
  }
  return outbox;
}

/**
 * A config with "outbox": false makes a node that neither reads nor erases the outbox's files: the
 * readings in them would never be sent, and their flash never freed. So before anything changes,
 * the board counts the readings that wait in them (a reading is done once a "d" or a session line
 * names it and its flow is complete: firmware/store/outbox.ts); with some waiting wisp flash refuses
 * unless `drop` (--drop-outbox), and then, or when none waits, erases the files.
 */
async function dropOutbox(link: ConsoleLink, outbox: { bytes: number; segments: number }, drop: boolean, say: (line: string) => void): Promise<void> {
  const waiting = Number(
    await link.eval(
      `(function(s){var h=-1,r=[],o={},n=0,k;(s.list(/^wisp\\.o\\d+$/,{sf:true})||[]).forEach(function(f){var F=s.open(f,"r"),l,c,q;` +
        `while((l=F.readLine())!==undefined){if(l[l.length-1]!="\\n")continue;k=l.slice(0,-1).split(" ");c=l[0];q=k[0].substr(1);` +
        `if(c=="r")r.push(parseInt(q,36));else if(c=="d")h=Math.max(h,parseInt(q,36)||0);else if(c=="p"&&k[1]!="-"){o[q]=parseInt(k[1],36)||0;h=Math.max(h,o[q]);}else if(c=="x")delete o[q];}});` +
        `r.forEach(function(x){if(x>h)n++;});for(k in o)n++;return n;})(require("Storage"))`,
    ),
  );
  const fmt = (n: number) => n.toLocaleString("en-US");
  if (waiting > 0 && !drop) {
    throw new LinkError(
      `the board's outbox holds ${fmt(waiting)} readings not yet sent (${fmt(outbox.bytes)} bytes in ${outbox.segments} files wisp.o<n>), and this config has "outbox": false: the node it makes would never send them. Nothing was changed. To keep them, let the node send them first (flash once it has been online with its broker: \`npx wisp monitor\` shows "wisp: MQTT connected"), or leave "outbox": false out of the config; to drop them, flash again with --drop-outbox`,
      "storage",
    );
  }
  await link.eval(`(function(s){(s.list(/^wisp\\.o\\d+$/,{sf:true})||[]).forEach(function(f){s.open(f,"r").erase();});return 1;})(require("Storage"))`);
  say(
    waiting > 0
      ? `the outbox's ${fmt(waiting)} readings not yet sent were dropped (--drop-outbox) and its ${outbox.segments} files erased: this config has "outbox": false`
      : `the outbox's ${outbox.segments} files (no reading waiting in them) were erased: this config has "outbox": false`,
  );
}

/**
 * The board's identity over its console; after the interpreter was just written, a board whose
 * reset circuit could not restart it gets a minute to be reset by hand. A board that answers with
 * what an ESP32 without Espruino prints gets told what to do.
 */
export async function identifyAfter(link: ConsoleLink, justInstalled: boolean, say: (line: string) => void): Promise<Identity> {
  if (!justInstalled) return await link.identify({ unlike: noInterpreter });
  const unlike = notStarted;
  // a board that restarts prints its boot log first; one that was not restarted prints nothing
  await link.quiet(300, 3000);
  const quick: Identity | Error = await link.identify({ quick: true, unlike }).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
  if (!(quick instanceof Error)) return quick;
  if (!(quick instanceof LinkError) || quick.code !== "no-prompt") throw quick;
  if (!/\S/.test(link.text)) {
    say("the board did not restart by itself: press its EN (reset) button");
    await link.waitForText(/\S/, 60_000);
    await link.quiet(500, 10_000);
  }
  return await link.identify({ unlike });
}

/**
 * What a board prints when the interpreter just written and verified does not start: writing it
 * again would not help, so the message says where the fault is (the files' layout) and quotes the
 * bootloader.
 */
export function notStarted(text: string): LinkError | undefined {
  const fault = noInterpreter(text);
  if (!fault) return undefined;
  if (/waiting for download/.test(text)) return fault;
  // one boot's errors (the reset loop repeats them)
  const errors = [...new Set([...text.matchAll(/^E \(\d+\) [\w.]+: (.*?)\r?$/gm)].map((m) => m[1]!.trim()))].slice(0, 4);
  const quote = errors.length > 0 ? `: its bootloader says "${errors.join("; ")}"` : ' ("invalid header" in a reset loop)';
  return new LinkError(
    `Espruino was written and verified, but the board does not start it${quote}. The build's bootloader or partition table does not suit this board: use Espruino's own ESP32 build, unchanged (https://www.espruino.com/Download)`,
    "no-interpreter",
  );
}

/** A word as a POSIX shell reads it back (quoted only when it needs to be). */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** What a board without a runnable Espruino prints, turned into what to do. */
export function noInterpreter(text: string): LinkError | undefined {
  if (/invalid header: 0x|flash read err/.test(text)) {
    return new LinkError(
      'this board has no Espruino: it prints "invalid header" in a reset loop, as an ESP32 with empty flash does. Put Espruino on it first: npx wisp flash --interpreter 2v29 (or Espruino\'s ESP32 folder; see the README, "Put it on a board")',
      "no-interpreter",
    );
  }
  if (/waiting for download/.test(text)) {
    return new LinkError(
      "this board is in its ROM bootloader (download mode: BOOT was held down, or DTR/RTS left it there). Press EN (reset) to run what its flash holds, or write Espruino with npx wisp flash --interpreter 2v29",
      "no-interpreter",
    );
  }
  if (/No bootable app partitions|load partition table error/.test(text)) {
    return new LinkError(
      "this board's bootloader finds no interpreter to start (its log says so in a reset loop): write Espruino with npx wisp flash --interpreter 2v29",
      "no-interpreter",
    );
  }
  return undefined;
}

/**
 * `mosquitto_sub` that shows the node's traffic. With `brokerDir` (a `wisp broker init` folder) it logs
 * in as the folder's operator, the one login its ACL lets read every node; the password is read from
 * the folder's passwords.json by the shell when the command runs, never printed.
 */
export function watchCommand(brokerUrl: string, prefix: string, brokerDir?: string): string {
  const url = new URL(brokerUrl);
  const tls = url.protocol === "mqtts:";
  const port = url.port || (tls ? "8883" : "1883");
  let auth = "";
  let ca = tls ? " --cafile <your CA file>" : "";
  if (brokerDir !== undefined) {
    const login = operatorShellLogin(brokerDir);
    auth = ` -u ${login.username} -P ${login.password}`;
    if (tls) ca = ` --cafile ${login.cafile}`;
  }
  return `mosquitto_sub -h ${url.hostname} -p ${port}${ca}${auth} -v -t '${prefix}/#'`;
}

export async function main(argv: string[]): Promise<number> {
  let args, baud: number, flashBaud: number;
  try {
    args = parseOptions(argv, {
      port: { type: "string", short: "p" },
      config: { type: "string", short: "c" },
      baud: { type: "string", short: "b" },
      monitor: { type: "boolean", short: "m" },
      "no-build": { type: "boolean" },
      "expect-board": { type: "string" },
      "broker-dir": { type: "string" },
      interpreter: { type: "string", short: "i" },
      "flash-baud": { type: "string" },
      "erase-all": { type: "boolean" },
      "drop-outbox": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    }).values;
    if (args.help) {
      console.log(formatHelp(USAGE));
      return 0;
    }
    baud = intOption("baud", args.baud, 115_200, BAUD);
    flashBaud = intOption("flash-baud", args["flash-baud"], DEFAULT_FLASH_BAUD, FLASH_BAUD);
    if ((args["flash-baud"] !== undefined || args["erase-all"]) && args.interpreter === undefined) throw new UsageError("--flash-baud and --erase-all go with --interpreter (a folder or a version)");
  } catch (err) {
    if (err instanceof UsageError) return usageFailure("flash", err);
    throw err;
  }
  const configFile = path.resolve(args.config ?? path.join(PROJECT_ROOT, "flash.config.json"));
  try {
    // the config and its secrets first: nothing to wait for (a build) before a mistake in them shows
    // (with --broker-dir the broker login comes from the folder once the board says its serial)
    const folderLogin = args["broker-dir"] ? { username: "-", password: "-" } : undefined;
    renderDeviceConfig(loadFlashConfig(configFile), { file: configFile, login: folderLogin });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`wisp flash: ${err.message}\nnothing was uploaded`);
    return 1;
  }
  // the interpreter's files too, before the build and before anything touches the board
  let interpreter: Interpreter | undefined;
  try {
    interpreter = args.interpreter === undefined ? undefined : await findInterpreter(args.interpreter, boards[loadFlashConfig(configFile).board]!, { say: (line) => console.log(line) });
  } catch (err) {
    if (!(err instanceof InterpreterError)) throw err;
    console.error(`wisp flash: ${err.message}\nnothing was written`);
    return 1;
  }
  // the firmware is built for the config: the drivers its sensors name (tools/build.ts)
  if (!args["no-build"] && !(await ensureBuilt(console.log, configFile))) {
    console.error("wisp flash: the build failed; nothing was uploaded");
    return 1;
  }
  // Ctrl-C: put the terminal back (the progress bar hides the cursor) and say where the board is
  const abort = new AbortController();
  let installing = interpreter !== undefined;
  const interrupted = () => {
    if (installing && !abort.signal.aborted) {
      // the interpreter's writer resets the board out of its bootloader and throws "interrupted"
      abort.abort();
      return;
    }
    if (process.stderr.isTTY) process.stderr.write("\x1b[?25h\x1b[?7h\n");
    console.error(
      interpreter
        ? "wisp flash: interrupted; the board may be left without Espruino or without the node: run the same command again (the board's ROM bootloader is always there to take it)"
        : "wisp flash: interrupted; the board may be left without a node (the files are checked only at the end): run npx wisp flash again",
    );
    process.exit(130);
  };
  process.on("SIGINT", interrupted);
  try {
    const result = await flash({
      port: args.port,
      configFile,
      baud,
      expectBoard: args["expect-board"],
      keepOpen: args.monitor,
      brokerDir: args["broker-dir"],
      interpreter,
      flashBaud,
      eraseAll: args["erase-all"],
      signal: abort.signal,
      onInstalled: () => (installing = false),
      dropOutbox: args["drop-outbox"],
    });
    const bytes = result.files.reduce((n, f) => n + f.bytes, 0);
    console.log(
      `node ${result.serial} booted (prefix ${result.prefix}): ${result.files.length} files, ${bytes.toLocaleString("en-US")} bytes, verified on the board, in ${result.seconds.toFixed(1)} s\n` +
        `watch it: ${watchCommand(result.brokerUrl, result.prefix, args["broker-dir"])}`,
    );
    if (args.monitor && result.link) {
      const { monitorLink } = await import("./monitor.ts");
      return await monitorLink(result.link, { port: result.port, baud, timestamps: false, from: result.bootFrom });
    }
    return 0;
  } catch (err) {
    if (err instanceof InterpreterError && err.code === "interrupted") {
      if (process.stderr.isTTY) process.stderr.write("\x1b[?25h\x1b[?7h\n");
      console.error(`wisp flash: ${err.message}; the node was not uploaded`);
      return 130;
    }
    if (err instanceof ConfigError || err instanceof PortError || err instanceof LinkError || err instanceof BrokerFolderError || err instanceof InterpreterError) {
      // the command to run next is this one with --interpreter, keeping the user's port, config and options
      const again = ["npx", "wisp", "flash", "--interpreter", "2v29", ...argv].map(shellWord).join(" ");
      const message = err instanceof LinkError && err.code === "no-interpreter" && !interpreter ? err.message.replaceAll("npx wisp flash --interpreter 2v29", again) : err.message;
      console.error(`wisp flash: ${message}`);
      return 1;
    }
    throw err;
  } finally {
    process.off("SIGINT", interrupted);
  }
}
