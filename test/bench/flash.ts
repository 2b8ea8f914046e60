// npm run bench:flash — how fast the node's files reach a simulated ESP32 over its serial console at
// 115,200 baud (11.52 KB/s is what the line can carry), in one run:
//
// - Wisp's upload: the console's packet protocol (FILE_SEND, DATA packets of up to 1,019 bytes, an
//   ACK for each), then E.CRC32 on the board;
// - the Web IDE's way, for comparison: the file as lines of
//   `require("Storage").write(name, atob("<384 bytes in base64>"), offset[, size])` (EspruinoTools
//   getUploadFileCode), each run with echo off (DLE) and followed by a pause for the board, then
//   the same CRC check.
//
// Both go through the same pseudo-terminal, serialport and simulated UART (which runs at the baud
// rate and charges the board's CPU time for evaluating lines and writing flash). The time runs from
// the first byte of the first file to the verified CRC of the last. Median of 3 rounds.
//
//   npm run bench:flash [-- --rounds N --pause MS]

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { crc32 } from "node:zlib";
import { createSimulation } from "../../host-sim/sim.ts";
import { PROJECT_ROOT } from "../../tools/build.ts";
import { ConsoleLink, type Transport } from "../../tools/serial/link.ts";
import { openPort } from "../../tools/serial/port.ts";
import { jsString } from "../../tools/serial/protocol.ts";

const { values } = parseArgs({ options: { rounds: { type: "string" }, pause: { type: "string" } } });
const ROUNDS = Number(values.rounds ?? 3);
/** ms the Web IDE way waits after each line for the board to run it. */
const PAUSE_MS = Number(values.pause ?? 20);
const BAUD = 115_200;
const LINE_RATE = BAUD / 10; // bytes per second, 8N1

const files = [
  { name: ".bootcde", data: new Uint8Array(readFileSync(join(PROJECT_ROOT, "dist", "firmware.js"))) },
  {
    name: "wisp.json",
    data: new Uint8Array(
      Buffer.from(JSON.stringify({ wifi: { ssid: "wisp-sim", password: "wisp-sim-password" }, mqtt: { url: "mqtt://127.0.0.1:1883", clientId: "wisp-{id}", keepalive: 30, queueSize: 32 }, prefix: "wisp/{id}", interval: 10, qos: 1, i2c: { sda: 21, scl: 22, bitrate: 100000 }, sensors: [{ name: "climate", type: "bme280", address: 118 }] })),
    ),
  },
];
const fileBytes = files.reduce((n, f) => n + f.data.length, 0);

/** Counts the bytes put on the line. */
function counting(t: Transport): Transport & { written: number } {
  const c = Object.assign(Object.create(t) as Transport, { written: 0 });
  c.write = (bytes) => {
    c.written += bytes.length;
    t.write(bytes);
  };
  return c;
}

async function packets(link: ConsoleLink): Promise<void> {
  for (const f of files) await link.writeFile(f.name, f.data);
}

async function webIde(link: ConsoleLink): Promise<void> {
  const CHUNK = 384;
  for (const f of files) {
    const text = Buffer.from(f.data).toString("latin1");
    for (let i = 0; i < text.length; i += CHUNK) {
      const part = Buffer.from(text.slice(i, i + CHUNK), "latin1").toString("base64");
      await link.send(`\x10require("Storage").write(${jsString(f.name)},atob("${part}"),${i}${i === 0 ? `,${text.length}` : ""})\n`);
      await new Promise((r) => setTimeout(r, PAUSE_MS));
    }
    const printed = link.waitForText(/CRC=(\d+)\r?\n/, 10_000);
    await link.send(`\x10print("CRC="+E.CRC32(require("Storage").read(${jsString(f.name)})))\n`);
    const got = Number((await printed)[1]);
    if (got !== crc32(f.data) >>> 0) throw new Error(`${f.name}: CRC mismatch after the Web IDE way`);
  }
}

const sim = await createSimulation({ clock: "real", serial: true, flash: false, nodes: 2 * ROUNDS });
const results: Record<string, { seconds: number; wire: number }[]> = { packets: [], "web-ide": [] };
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, method] of (["packets", "web-ide"] as const).entries()) {
      const node = sim.nodes[round * 2 + i]!;
      const transport = counting(await openPort(node.consolePath!, BAUD));
      const link = new ConsoleLink(transport, { baud: BAUD });
      await link.identify();
      await link.quiet(200);
      const before = transport.written;
      const t0 = performance.now();
      await (method === "packets" ? packets(link) : webIde(link));
      results[method]!.push({ seconds: (performance.now() - t0) / 1000, wire: transport.written - before });
      if (node.line.lost) throw new Error(`${method}: the board lost ${node.line.lost} bytes`);
      await link.close();
    }
  }
} finally {
  await sim.stop();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows = Object.entries(results).map(([method, rs]) => {
  const seconds = median(rs.map((r) => r.seconds));
  const wire = median(rs.map((r) => r.wire));
  const rate = fileBytes / seconds;
  return { method, seconds, wire, rate, share: rate / LINE_RATE };
});
const label: Record<string, string> = {
  packets: "Wisp: packet protocol (FILE_SEND + DATA, ACK each) + E.CRC32",
  "web-ide": `Web IDE: Storage.write lines of 384 B in base64, ${PAUSE_MS} ms pause each, + E.CRC32`,
};
console.log(`\nupload of dist/firmware.js + wisp.json (${fileBytes.toLocaleString("en-US")} bytes) to a simulated ESP32 at ${BAUD.toLocaleString("en-US")} baud (line rate ${(LINE_RATE / 1000).toFixed(2)} KB/s), median of ${ROUNDS}\n`);
console.log("| method | bytes on the line | seconds | KB/s of file | share of line rate |");
console.log("|---|---|---|---|---|");
for (const r of rows) {
  console.log(`| ${label[r.method]} | ${r.wire.toLocaleString("en-US")} | ${r.seconds.toFixed(2)} | ${(r.rate / 1000).toFixed(2)} | ${(100 * r.share).toFixed(0)}% |`);
}
const wisp = rows.find((r) => r.method === "packets")!;
const ide = rows.find((r) => r.method === "web-ide")!;
console.log(`\nWisp ÷ Web IDE: ${(ide.seconds / wisp.seconds).toFixed(2)}× faster; goal: at least 80% of line rate — ${wisp.share >= 0.8 ? "met" : "NOT met"} (${(100 * wisp.share).toFixed(0)}%)`);
process.exit(0);
