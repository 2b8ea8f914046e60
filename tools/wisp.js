#!/usr/bin/env node
// The `wisp` command. The commands are TypeScript, run by tsx on Node 20 without a compile step;
// what needs no command (help, version, a mistyped name) is answered before tsx is loaded.
import { existsSync } from "node:fs";
import { COMMANDS, ESPRUINO_TARGET, unknownCommand, usage, version } from "./commands.js";

const [name, ...rest] = process.argv.slice(2);
const isVersion = (arg) => arg === "--version" || arg === "-V";

if (name === "--help" || name === "-h" || name === "help") {
  console.log(usage());
} else if (isVersion(name) || name === "version" || (name !== undefined && Object.hasOwn(COMMANDS, name) && rest.length === 1 && isVersion(rest[0]))) {
  console.log(`${version()} (Node ${process.version}); the node needs ${ESPRUINO_TARGET}`);
} else if (name === undefined) {
  console.error(usage());
  process.exitCode = 2;
} else if (!Object.hasOwn(COMMANDS, name)) {
  console.error(unknownCommand(name));
  process.exitCode = 2;
} else {
  const command = COMMANDS[name];
  const help = rest.includes("--help") || rest.includes("-h");
  if (command.builds && !help && !existsSync(new URL("../dist/firmware.js", import.meta.url))) {
    // the first run compiles the tools and builds dist/: a few seconds with nothing else to see
    console.error(`wisp ${name}: first run: loading the tools, then building dist/ ...`);
  }
  const { register } = await import("tsx/esm/api");
  register();
  const module = await import(new URL(command.module, import.meta.url).href);
  try {
    process.exitCode = await module.main(rest);
  } catch (e) {
    // a fault of wisp itself, not of the user's input: the stack is for a bug report
    console.error(`wisp ${name}: internal error (please report it with what follows):\n${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  }
}
