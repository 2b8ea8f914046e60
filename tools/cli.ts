// The `wisp` command dispatcher (tools/wisp.js loads this through tsx).
// A command is one table entry; its module is imported only when that command runs, so a slow or
// broken command never costs the others anything.

export interface CommandModule {
  /** Runs the command with the arguments after its name; returns the process exit code. */
  main(argv: string[]): Promise<number> | number;
}

interface Command {
  summary: string;
  load: () => Promise<CommandModule>;
}

export const COMMANDS: Record<string, Command> = {
  build: { summary: "bundle firmware into dist/, check it for Espruino, enforce size budgets", load: () => import("./build.ts") },
  broker: { summary: "configure Mosquitto for the fleet (logins, topic ACL, TLS, a bridge), check it and run it", load: () => import("./broker.ts") },
  sim: { summary: "run simulated sensor nodes (the built firmware) against a local broker, with a live view", load: () => import("./sim.ts") },
  flash: { summary: "upload the node to an ESP32 running Espruino over USB serial, verify it, restart it", load: () => import("./flash.ts") },
  monitor: { summary: "the serial console of a board or a simulated node", load: () => import("./monitor.ts") },
  ports: { summary: "list the USB serial ports a board could be on", load: () => import("./ports.ts") },
  hil: { summary: "flash a board (or a simulated one) and test it: boot, readings, commands, restart; JUnit XML", load: () => import("./hil.ts") },
};

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `usage: wisp <command> [options]\n\ncommands:\n${lines.join("\n")}\n\n\`wisp <command> --help\` for a command's options.`;
}

/** Returns the exit code: the command's own, 2 for an unknown command or missing command. */
export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return 0;
  }
  if (name === undefined) {
    console.error(usage());
    return 2;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    console.error(`wisp: unknown command "${name}". Available commands: ${Object.keys(COMMANDS).join(", ")}.\n\n${usage()}`);
    return 2;
  }
  const module = await command.load();
  return await module.main(rest);
}

process.exitCode = await run(process.argv.slice(2)).catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  return 1;
});
