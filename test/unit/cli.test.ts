// What every `wisp` command shares: the answers that need no TypeScript (help, version, a mistyped
// command), option errors in plain words, the messages for the user's files, and for a broker that
// cannot be reached.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { closest, COMMANDS } from "../../tools/commands.js";
import { describeConnectError } from "../../tools/connect-error.ts";
import { displayPath, FileError, parseJson, readJsonFile } from "../../tools/files.ts";
import { brokerOption, formatHelp, intOption, parseOptions, UsageError } from "../../tools/options.ts";
import { PROJECT_ROOT } from "../../tools/paths.ts";

const version = JSON.parse(readFileSync(join(PROJECT_ROOT, "package.json"), "utf8")).version as string;

function wisp(args: string[], root = PROJECT_ROOT) {
  const r = spawnSync(process.execPath, [join(root, "tools", "wisp.js"), ...args], { cwd: root, encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe("wisp without a command's module", () => {
  // A copy of the dispatcher with no node_modules beside it: tsx cannot load there, so whatever
  // answers did not load TypeScript (which takes most of a second: tools/commands.js says why).
  const bare = mkdtempSync(join(tmpdir(), "wisp-bare-"));
  mkdirSync(join(bare, "tools"));
  for (const f of ["tools/wisp.js", "tools/commands.js", "package.json"]) copyFileSync(join(PROJECT_ROOT, f), join(bare, f));

  it("--help lists every command with what it does, without loading TypeScript", () => {
    const r = wisp(["--help"], bare);
    expect(r.code).toBe(0);
    for (const name of Object.keys(COMMANDS)) expect(r.out).toMatch(new RegExp(`^  ${name} +\\w`, "m"));
    expect(r.out).toContain("wisp <command> --help");
    expect(wisp(["help"], bare).out).toBe(r.out);
  });

  it("--version and -V give the version and the Espruino the node needs, after a command too", () => {
    for (const args of [["--version"], ["-V"], ["flash", "--version"]]) {
      const r = wisp(args, bare);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(new RegExp(`^wisp ${version.replace(/\./g, "\\.")} \\(Node v\\d+`));
      expect(r.out).toContain("Espruino 2v25 or newer, ESP32 build");
    }
  });

  it("a mistyped command exits 2 with the likely one, and no command prints the usage", () => {
    const r = wisp(["flsah"], bare);
    expect(r.code).toBe(2);
    expect(r.err).toBe('wisp: there is no command "flsah". Did you mean `npx wisp flash`? Commands: build, sim, ports, flash, install-espruino, monitor, hil, broker. `npx wisp --help` says what each does.\n');
    expect(wisp(["frobnicate"], bare).err).not.toContain("Did you mean");
    const none = wisp([], bare);
    expect(none.code).toBe(2);
    expect(none.err).toContain("usage: wisp <command>");
  });

  it("did-you-mean only for near misses", () => {
    expect(closest("brokr", Object.keys(COMMANDS))).toBe("broker");
    expect(closest("simm", Object.keys(COMMANDS))).toBe("sim");
    expect(closest("--nodse", ["--nodes", "--seed"])).toBe("--nodes");
    expect(closest("xyz", Object.keys(COMMANDS))).toBeUndefined();
  });
});

describe("a command's --help and option errors", () => {
  it("every command answers --help with its usage, exit 0", () => {
    for (const name of Object.keys(COMMANDS)) {
      const r = wisp([name, "--help"]);
      expect(r.code, name).toBe(0);
      expect(r.out, name).toContain(`usage: wisp ${name}`);
      // an 80-column terminal shows it unwrapped
      expect(r.out.split("\n").filter((l) => l.length > 80), name).toEqual([]);
    }
    expect(wisp(["--help"]).out.split("\n").filter((l) => l.length > 80)).toEqual([]);
  });

  it("a bad option says what is wrong and where the options are, not the whole help", () => {
    const r = wisp(["sim", "--nodse", "3"]);
    expect(r.code).toBe(2);
    expect(r.err).toBe("wisp sim: unknown option --nodse (did you mean --nodes?)\n(`npx wisp sim --help` lists the options)\n");
  });

  it("parses options with messages in plain words", () => {
    const options = { nodes: { type: "string", short: "n" }, plain: { type: "boolean" } } as const;
    const fails = (argv: string[]) => {
      try {
        parseOptions(argv, options);
      } catch (e) {
        expect(e).toBeInstanceOf(UsageError);
        return (e as Error).message;
      }
      throw new Error("no error");
    };
    expect(fails(["--nodes"])).toBe("--nodes needs a value (--nodes VALUE)");
    expect(fails(["--plain=yes"])).toBe("--plain takes no value");
    expect(fails(["extra"])).toBe('unexpected argument "extra": this command takes options only (--name value)');
    expect(fails(["--nodes", "-x"])).toMatch(/--nodes needs a value, and the next argument starts with "-"/);
    // a negative number is the (wrong) value, for the option's own range check to name
    expect(parseOptions(["--nodes", "-3", "--plain"], options).values.nodes).toBe("-3");
    expect(parseOptions(["-n", "-3"], options).values.nodes).toBe("-3");
    expect(parseOptions(["-n", "3"], options).values.nodes).toBe("3");
    // parseArgs alone keeps the last: two values for one option are named instead
    expect(fails(["-n", "3", "--nodes=4"])).toBe('--nodes is given twice ("3" and "4"): give it once');
  });

  it("help texts fit 80 columns: descriptions and paragraphs wrap at word boundaries, blank lines stay", () => {
    const help = formatHelp(
      ["usage: x [options]", "", "A paragraph that is far too long for eighty columns, so it has to be wrapped at a word boundary here.", "", "  -n, --nodes N   how many nodes, 1 to 1000 (default 1); each has its own serial, client id", "                  and Storage", "      --plain     one line"].join("\n"),
    );
    expect(help.split("\n")).toEqual([
      "usage: x [options]",
      "",
      "A paragraph that is far too long for eighty columns, so it has to be wrapped at",
      "a word boundary here.",
      "",
      "  -n, --nodes N   how many nodes, 1 to 1000 (default 1); each has its own",
      "                  serial, client id and Storage",
      "      --plain     one line",
    ]);
  });

  it("numbers are checked against the range each option takes, naming it", () => {
    const nodes = { min: 1, max: 1000, unit: "nodes" };
    expect(intOption("nodes", undefined, 1, nodes)).toBe(1);
    expect(intOption("nodes", "20", 1, nodes)).toBe(20);
    for (const bad of ["abc", "0", "1001", "2.5", ""]) {
      expect(() => intOption("nodes", bad, 1, nodes)).toThrow(`--nodes must be a whole number from 1 to 1,000 nodes, got ${JSON.stringify(bad)}`);
    }
  });

  it("a broker URL needs mqtt:// or mqtts://, a host and a port in range; a login in it is never shown", () => {
    expect(brokerOption("broker", "mqtt://127.0.0.1:1883")).toBe("mqtt://127.0.0.1:1883");
    expect(() => brokerOption("broker", "mqtt://127.0.0.1:99999")).toThrow("--broker: port 99999 is out of range (1 to 65,535)");
    expect(() => brokerOption("broker", "http://user:secret@host:1883")).toThrow('--broker must start with mqtt:// or mqtts://, got "http://***@host:1883"');
    expect(() => brokerOption("broker", "localhost:1883")).toThrow(/must start with mqtt:\/\//);
  });
});

describe("the user's files", () => {
  it("shows a path relative to where the user is when it is inside, absolute otherwise", () => {
    expect(displayPath("/work/x/flash.config.json", "/work/x")).toBe("flash.config.json");
    expect(displayPath("broker/passwords.json", "/work/x")).toBe("broker/passwords.json");
    expect(displayPath("/tmp/other/a.json", "/work/x")).toBe("/tmp/other/a.json");
    expect(displayPath("../y/a.json", "/work/x")).toBe("/work/y/a.json");
  });

  it("a missing file is named as missing, with where it was looked for and how to name another", () => {
    const dir = mkdtempSync(join(tmpdir(), "wisp-files-"));
    const file = join(dir, "nope.json");
    expect(() => readJsonFile(file, "the config", "-c FILE names another")).toThrow(`the config ${file} does not exist; -c FILE names another`);
    expect(() => readJsonFile(dir, "the config")).toThrow(`the config ${dir} is a folder, not a file`);
  });

  it("a JSON mistake is shown at its line and column, with the line and what to do", () => {
    const text = '{\n  "interval": 10,\n  "sensors": [],\n}\n';
    const err = (() => {
      try {
        parseJson(text, join(PROJECT_ROOT, "x.json"));
      } catch (e) {
        return e as FileError;
      }
      throw new Error("parsed");
    })();
    expect(err).toBeInstanceOf(FileError);
    const cwdPath = displayPath(join(PROJECT_ROOT, "x.json"));
    expect(err.message).toBe(
      `${cwdPath}:3:16: not valid JSON: a trailing comma: JSON allows no comma after the last field; remove it\n` + '  2 |   "interval": 10,\n  3 |   "sensors": [],\n    |                ^',
    );
    const message = (t: string) => {
      try {
        parseJson(t, "f.json");
        return "";
      } catch (e) {
        return (e as Error).message.split("\n")[0];
      }
    };
    expect(message('{ "a": 1 "b": 2 }')).toBe("f.json:1:10: not valid JSON: a comma is missing before this");
    expect(message('{ "a": [1, 2,] }')).toBe("f.json:1:13: not valid JSON: a trailing comma: JSON allows no comma after the last item; remove it");
    expect(message("{ 'a': 1 }")).toBe("f.json:1:3: not valid JSON: strings and names in JSON take double quotes, not single ones");
    expect(message("{ a: 1 }")).toBe("f.json:1:3: not valid JSON: names and strings need double quotes (JSON has no bare words but true, false and null)");
    expect(message('{ "a": [1, 2 }')).toBe("f.json:1:14: not valid JSON: this } does not close what is open here: a ] is missing before it");
    expect(message('{\n  "a": 1')).toBe("f.json:2:9: not valid JSON: the file ends too early: a closing } is missing");
    expect(message('// settings\n{ "a": 1 }')).toBe('f.json:1:1: not valid JSON: JSON has no comments: remove it (a "description" field can say the same)');
    expect(message('{ "a": 1 }}')).toBe("f.json:1:11: not valid JSON: something follows the end of the JSON value: an extra } or ], or two objects in one file");
    expect(message("  \n")).toBe("f.json is empty: it must hold a JSON object");
  });
});

describe("a broker that cannot be reached", () => {
  it("says that nothing listens there, not ECONNREFUSED alone", async () => {
    // a port that was free a moment ago
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise((r) => server.close(r));
    const err = await new Promise<Error>((resolve) => net.connect(port, "127.0.0.1").on("error", resolve));
    expect(describeConnectError(err, `mqtt://127.0.0.1:${port}`)).toBe(
      `nothing listens on 127.0.0.1:${port} (connection refused): is the broker running, and on port ${port}? Check the host and port you gave; \`ss -ltn\` lists the ports in use here`,
    );
  });

  it("names an unknown host, a refused login and a certificate problem", () => {
    const e = (code: string | number, message = "x") => Object.assign(new Error(message), { code });
    expect(describeConnectError(e("ENOTFOUND"), "mqtt://brokr.lan:1883")).toMatch(/^the host name brokr\.lan is not known/);
    expect(describeConnectError(e(5), "mqtt://b:1883", "node-1")).toBe("b:1883 refused the login as node-1: not authorized");
    expect(describeConnectError(e("DEPTH_ZERO_SELF_SIGNED_CERT"), "mqtts://b:8883")).toMatch(/not signed by a CA this tool trusts/);
  });
});

describe("config files given to commands", () => {
  it("a file given with -c that does not exist is named as missing (not 'is not valid: ENOENT')", () => {
    const dir = mkdtempSync(join(tmpdir(), "wisp-cli-"));
    const r = spawnSync(process.execPath, [join(PROJECT_ROOT, "tools", "wisp.js"), "sim", "--no-build", "-c", "nope.json"], { cwd: dir, encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`wisp sim: the config nope.json does not exist (${join(dir, "nope.json")}); -c FILE names another (default flash.config.json)\n`);
  });

  it("a trailing comma and a quoted number are shown where they are, with what to write", () => {
    const dir = mkdtempSync(join(tmpdir(), "wisp-cli-"));
    const config = JSON.parse(readFileSync(join(PROJECT_ROOT, "flash.config.json"), "utf8"));
    writeFileSync(join(dir, "comma.json"), JSON.stringify(config, null, 2).replace(/\n}$/, ",\n}"));
    writeFileSync(join(dir, "quoted.json"), JSON.stringify({ ...config, interval: "10" }, null, 2));
    const run = (file: string) => spawnSync(process.execPath, [join(PROJECT_ROOT, "tools", "wisp.js"), "build", "--check", "-c", file], { cwd: dir, encoding: "utf8" });
    const comma = run("comma.json");
    expect(comma.status).toBe(1);
    expect(comma.stderr).toMatch(/error: comma\.json:\d+:\d+: not valid JSON: a trailing comma: JSON allows no comma after the last field; remove it\n {2}\d+ \| .*\n {2}\d+ \| .*\n +\| +\^/);
    const quoted = run("quoted.json");
    expect(quoted.status).toBe(1);
    expect(quoted.stderr).toContain('quoted.json is not valid:\n  interval: must be a whole number from 1 to 86400 (seconds between samples), got the string "10" (write 10 without quotes)');
  });
});

describe("--flash-baud", () => {
  it("takes 115200 up: slower rates cannot carry esptool-js's blocks within their timeout", async () => {
    const { FLASH_BAUD } = await import("../../tools/serial/interpreter.ts");
    expect(() => intOption("flash-baud", "19200", 921600, FLASH_BAUD)).toThrow(/--flash-baud must be a whole number from 115,200 to 3,000,000 bits per second/);
    expect(intOption("flash-baud", "115200", 921600, FLASH_BAUD)).toBe(115200);
  });
});
