// The `wisp` command table, in plain JavaScript: `wisp --help`, `wisp --version` and a mistyped
// command are answered from here without loading TypeScript (registering tsx and compiling a
// command's modules takes most of a second; these answers take a tenth of one).
// A command's own module is loaded only when that command runs.

import { readFileSync } from "node:fs";

/**
 * @typedef {object} Command
 * @property {string} summary  one line for `wisp --help`
 * @property {string} module   the TypeScript module (beside this file) whose `main(argv)` runs it
 * @property {boolean} [builds] builds dist/ first when it is missing or stale
 */

/** @type {Record<string, Command>} */
export const COMMANDS = {
  build: { summary: "bundle the firmware into dist/, check it for Espruino and its size budgets, check flash.config.json", module: "./build.ts" },
  sim: { summary: "run simulated sensor nodes (the built firmware) against a local broker, with a live view", module: "./sim.ts", builds: true },
  ports: { summary: "list the USB serial ports a board could be on", module: "./ports.ts" },
  flash: { summary: "upload the node to an ESP32 running Espruino over USB serial, verify it, restart it", module: "./flash.ts", builds: true },
  "install-espruino": { summary: "put the Espruino interpreter itself on an ESP32 (a new board has none), each region checked by MD5", module: "./install-espruino.ts" },
  monitor: { summary: "the serial console of a board or a simulated node", module: "./monitor.ts" },
  hil: { summary: "flash a board (or a simulated one) and test it: boot, readings, commands, restart; JUnit XML", module: "./hil.ts", builds: true },
  broker: { summary: "configure Mosquitto for the fleet (logins, topic ACL, TLS, a bridge), check it and run it", module: "./broker.ts" },
};

/** What the firmware needs on the board (README "Put it on a board"). */
export const ESPRUINO_TARGET = "Espruino 2v25 or newer, ESP32 build (tested with 2v29)";

/** `wisp 0.1.0`, from package.json. */
export function version() {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  return `wisp ${pkg.version}`;
}

/** Words of `text` in lines of at most `width` chars (a longer word gets a line of its own). */
export function wrap(text, width) {
  const lines = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** The top-level help, in 80 columns. */
export function usage() {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const indent = " ".repeat(width + 4);
  const lines = Object.entries(COMMANDS).flatMap(([name, c]) =>
    wrap(c.summary, 80 - indent.length).map((l, i) => (i === 0 ? `  ${name.padEnd(width)}  ${l}` : indent + l)),
  );
  return [
    "usage: wisp <command> [options]",
    "",
    "commands:",
    ...lines,
    "",
    "  wisp <command> --help   that command's options",
    "  wisp --version          the version, and the Espruino the node needs",
    "",
    "From the project folder, run it as `npx wisp ...` (or `node tools/wisp.js ...`).",
    "Start with `npm start` (npx wisp sim): a simulated node on a local broker, no",
    "hardware needed.",
  ].join("\n");
}

/** Edit distance (insert, delete, substitute, swap of neighbours), for "did you mean". */
export function distance(a, b) {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The closest of `candidates` to `word`, when it is close enough to be a typo. */
export function closest(word, candidates) {
  let best, bestDistance = Infinity;
  for (const c of candidates) {
    const dist = distance(word.toLowerCase(), c.toLowerCase());
    if (dist < bestDistance) [best, bestDistance] = [c, dist];
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(best.length / 3)) ? best : undefined;
}

/** The message for a command that does not exist. */
export function unknownCommand(name) {
  const guess = closest(name, Object.keys(COMMANDS));
  const hint = guess ? ` Did you mean \`npx wisp ${guess}\`?` : "";
  return `wisp: there is no command "${name}".${hint} Commands: ${Object.keys(COMMANDS).join(", ")}. \`npx wisp --help\` says what each does.`;
}
