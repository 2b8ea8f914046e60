// What `wisp hil` hands the HIL suite (in the WISP_HIL environment variable, JSON): the board's
// port, the config to flash it with, the broker to watch, and the fixtures wired to it.

export interface HilTarget {
  /** Name of the board in reports (hil.map.json id, or the port). */
  boardId: string;
  port: string;
  baud: number;
  /** flash.config.json to flash, its mqtt.url the broker below (and, for a simulated board, its Wi-Fi). */
  configFile: string;
  /** Where the tests watch the node's topics. */
  brokerUrl: string;
  brokerUsername?: string;
  brokerPassword?: string;
  /** Sensors wired to the board; null when the board is not in hil.map.json. */
  fixtures: { type: string; address?: number }[] | null;
  /** One serial log per test goes here. */
  logDir: string;
  /** process.env.BOARD to accept (default the board file's). */
  expectBoard?: string;
}

export function hilTarget(): HilTarget {
  const raw = process.env.WISP_HIL;
  if (!raw) throw new Error("the HIL suite runs under `wisp hil` (it sets WISP_HIL): run `npx wisp hil --sim` or `npx wisp hil --port PATH`");
  return JSON.parse(raw) as HilTarget;
}
