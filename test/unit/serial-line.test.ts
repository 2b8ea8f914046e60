// The simulated board's serial line: bytes at the baud rate, a 1,024-byte receive buffer, XON/XOFF
// when it fills, bytes lost when a sender ignores XOFF; and the host's ConsoleLink, which honours it.
import FakeTimers from "@sinonjs/fake-timers";
import { afterEach, describe, expect, it } from "vitest";
import { SimNode } from "../../host-sim/node.ts";
import type { Clock } from "../../host-sim/runtime.ts";
import type { SerialLine } from "../../host-sim/serial/line.ts";
import { AccessPoint } from "../../host-sim/wifi.ts";
import { ConsoleLink, type Transport } from "../../tools/serial/link.ts";

const nodes: SimNode[] = [];
afterEach(() => {
  for (const n of nodes.splice(0)) n.dispose();
});

function blankBoard(clock: Clock): SimNode {
  const node = new SimNode({ index: 0, clock, ap: new AccessPoint() });
  nodes.push(node);
  node.powerOn();
  return node;
}

/** The host end of a simulated line, as a Transport for ConsoleLink. */
function lineTransport(line: SerialLine): Transport {
  const listeners: ((b: Uint8Array) => void)[] = [];
  line.attachHost((bytes) => listeners.forEach((l) => l(bytes)));
  return {
    write: (bytes) => line.write(bytes),
    onData: (l) => listeners.push(l),
    onClose: () => undefined,
    close: async () => line.detachHost(),
  };
}

/** 400 lines that each push a number: typed at the REPL, each is echoed and answered with its result. */
const PASTE = Array.from({ length: 400 }, (_, i) => `a.push(${100000 + i});\n`).join("");

describe("the simulated serial line", () => {
  it("carries bytes no faster than the baud rate, both ways", async () => {
    const clock = FakeTimers.createClock(0, 1e9);
    const node = blankBoard(clock as unknown as Clock);
    await clock.tickAsync(1000);
    const arrivals: { at: number; n: number }[] = [];
    node.line.attachHost((b) => arrivals.push({ at: clock.now, n: b.length }));
    const sentAt = clock.now;
    node.line.write(Buffer.from('\x10print("x".repeat(5000))\n'));
    await clock.tickAsync(2000);
    const total = arrivals.reduce((n, a) => n + a.n, 0);
    expect(total).toBeGreaterThan(5000);
    // 115,200 baud, 10 bits a byte: 11.52 bytes per ms, never more
    let sum = 0;
    for (const a of arrivals) {
      sum += a.n;
      expect(sum).toBeLessThanOrEqual(Math.ceil(((a.at - sentAt) * 115200) / 10 / 1000) + 1);
    }
    expect(arrivals.at(-1)!.at - sentAt).toBeGreaterThanOrEqual((total * 10 * 1000) / 115200 - 1);
  });

  it("a sender that ignores XOFF loses bytes when the board falls behind, as on the device", async () => {
    const clock = FakeTimers.createClock(0, 1e9);
    const node = blankBoard(clock as unknown as Clock);
    await clock.tickAsync(1000);
    node.line.attachHost(() => undefined);
    node.line.write(Buffer.from("var a=[];\n" + PASTE));
    await clock.tickAsync(10_000);
    expect(node.line.xoffs).toBeGreaterThan(0);
    expect(node.line.lost).toBeGreaterThan(0);
    const count = node.runtime!.run("a.length") as number;
    expect(count).toBeLessThan(400);
  });

  it("a sender that honours XOFF (ConsoleLink) loses nothing at 115,200 baud", async () => {
    // one fake clock for the board and the sender: the sender keeps the line full, as on an idle host
    const clock = FakeTimers.createClock(0, 1e9);
    const node = blankBoard(clock as unknown as Clock);
    await clock.tickAsync(1000);
    const link = new ConsoleLink(lineTransport(node.line), { baud: 115200, clock: { now: () => clock.now, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout } });
    let sent = false;
    void link.send("var a=[];\n" + PASTE).then(() => (sent = true));
    while (!sent) await clock.tickAsync(10);
    await clock.tickAsync(5000);
    expect(node.line.xoffs).toBeGreaterThan(0);
    expect(node.line.lost).toBe(0);
    expect(node.runtime!.run("a.length")).toBe(400);
    expect(node.runtime!.run("a[399]")).toBe(100399);
    await link.close();
  });
});
