// `wisp ports`: the USB serial ports a board could be on, with their vendor:product ids, serial
// numbers and a guess of the board.

import { parseOptions, UsageError, usageFailure, formatHelp } from "./options.ts";
import { describePort, listPorts, PortError } from "./serial/port.ts";

const USAGE = `usage: wisp ports [--all]

Lists USB serial ports: path, vendor:product id, serial number and what board it likely is.
Ports whose USB bridge an ESP32 board uses are marked *; \`wisp flash\` picks one of those when
it is the only one.

  -a, --all    also list serial ports without USB ids (built-in UARTs)
  -h, --help   this text`;

export async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseOptions(argv, { all: { type: "boolean", short: "a" }, help: { type: "boolean", short: "h" } }).values;
  } catch (err) {
    if (err instanceof UsageError) return usageFailure("ports", err);
    throw err;
  }
  if (args.help) {
    console.log(formatHelp(USAGE));
    return 0;
  }
  try {
    const ports = await listPorts({ all: args.all === true });
    if (ports.length === 0) {
      console.log("no USB serial ports found. Plug the board in with a data cable (some USB cables carry power only); a simulated board's port is printed by `npx wisp sim --serial`.");
      return 0;
    }
    const width = Math.max(...ports.map((p) => p.path.length));
    for (const p of ports) console.log(`${p.bridge ? "*" : " "} ${p.path.padEnd(width)}  ${describePort(p)}`);
    return 0;
  } catch (err) {
    if (err instanceof PortError) {
      console.error(`wisp ports: ${err.message}`);
      return 1;
    }
    throw err;
  }
}
