// The simulated ESP32's ROM and reset circuit on a fake clock: what it prints at reset, the reset
// loop of a board with empty flash, download mode entered through DTR/RTS as esptool does it, the
// serial bootloader's SLIP answers, and booting what the flash holds.
import { createHash } from "node:crypto";
import FakeTimers from "@sinonjs/fake-timers";
import { afterEach, describe, expect, it } from "vitest";
import { SimNode, type SimNodeOptions } from "../../host-sim/node.ts";
import type { Clock } from "../../host-sim/runtime.ts";
import { CHIP_DETECT_MAGIC_REG, Command } from "../../host-sim/serial/rom.ts";
import { AccessPoint } from "../../host-sim/wifi.ts";
import { buildAppImage, buildPartitionTable } from "../../tools/serial/esp-image.ts";

const nodes: SimNode[] = [];
afterEach(() => {
  for (const n of nodes.splice(0)) n.dispose();
});

function board(options: Partial<SimNodeOptions> = {}) {
  const clock = FakeTimers.createClock(0, 1e9);
  const node = new SimNode({ index: 0, clock: clock as unknown as Clock, ap: new AccessPoint(), ...options });
  nodes.push(node);
  let text = "";
  const packets: Uint8Array[] = [];
  let frame: number[] | undefined;
  let escaping = false;
  node.line.attachHost((bytes) => {
    for (const b of bytes) {
      text += String.fromCharCode(b);
      if (b === 0xc0) {
        if (frame && frame.length) packets.push(Uint8Array.from(frame));
        frame = [];
      } else if (frame) {
        if (escaping) frame.push(b === 0xdc ? 0xc0 : 0xdb);
        else if (b !== 0xdb) frame.push(b);
        escaping = b === 0xdb && !escaping;
      }
    }
  });
  const send = (op: number, data: Uint8Array = new Uint8Array(0), checksum = 0) => {
    const packet = new Uint8Array(8 + data.length);
    packet[1] = op;
    new DataView(packet.buffer).setUint16(2, data.length, true);
    new DataView(packet.buffer).setUint32(4, checksum, true);
    packet.set(data, 8);
    const out = [0xc0];
    for (const b of packet) out.push(...(b === 0xc0 ? [0xdb, 0xdc] : b === 0xdb ? [0xdb, 0xdd] : [b]));
    out.push(0xc0);
    node.line.write(Uint8Array.from(out));
  };
  const word = (n: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n, true);
    return b;
  };
  return { node, clock, send, word, packets, text: () => text, clearText: () => (text = "") };
}

/** esptool's classic reset: EN low (RTS), then EN released with IO0 low (DTR), then both released. */
async function classicReset(b: ReturnType<typeof board>): Promise<void> {
  b.node.setModemLines({ dtr: false, rts: true });
  await b.clock.tickAsync(100);
  b.node.setModemLines({ dtr: true, rts: false });
  await b.clock.tickAsync(50);
  b.node.setModemLines({ dtr: false, rts: false });
  await b.clock.tickAsync(10);
}

const SYNC = Uint8Array.from([0x07, 0x07, 0x12, 0x20, ...new Array(32).fill(0x55)]);

describe("the simulated ESP32's ROM", () => {
  it("a blank board prints the ROM's reset loop: invalid header, then the RTC watchdog resets it", async () => {
    const b = board({ blank: true });
    b.node.powerOn();
    await b.clock.tickAsync(1000);
    const text = b.text().replace(/\r/g, "");
    expect(text).toMatch(/^ets Jun {2}8 2016 00:22:57\n\nrst:0x1 \(POWERON_RESET\),boot:0x13 \(SPI_FAST_FLASH_BOOT\)\n(invalid header: 0xffffffff\n){7}ets Jun/);
    expect(text).toContain("rst:0x10 (RTCWDT_RTC_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)");
    expect(b.node.runtime).toBeUndefined();
    expect(b.node.interpreterVersion).toBeUndefined();
  });

  it("DTR/RTS as esptool sets them put it in download mode; DTR and RTS together, as a terminal opening the port sets them, do not reset it", async () => {
    const b = board();
    b.node.powerOn();
    await b.clock.tickAsync(10);
    expect(b.node.runtime).toBeDefined();
    b.node.setModemLines({ dtr: true, rts: true });
    await b.clock.tickAsync(50);
    expect(b.node.power).toBe("on");
    expect(b.node.runtime).toBeDefined();
    b.clearText();
    await classicReset(b);
    expect(b.text()).toContain("rst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\nwaiting for download");
    expect(b.node.download).toBeDefined();
    expect(b.node.runtime).toBeUndefined();
  });

  it("without the auto-program circuit DTR/RTS do nothing; BOOT held while EN is pressed does it by hand", async () => {
    const b = board({ resetCircuit: false });
    b.node.powerOn();
    await classicReset(b);
    expect(b.node.download).toBeUndefined();
    expect(b.node.runtime).toBeDefined();
    b.node.setButton("BOOT", true);
    b.node.setButton("EN", true);
    expect(b.node.power).toBe("reset");
    b.node.setButton("EN", false);
    await b.clock.tickAsync(20);
    b.node.setButton("BOOT", false);
    expect(b.node.download).toBeDefined();
  });

  it("answers SYNC eight times, READ_REG with the chip's magic, an unknown command with eight 'invalid message' responses", async () => {
    const b = board({ blank: true });
    b.node.setButton("BOOT", true);
    b.node.powerOn();
    await b.clock.tickAsync(10);
    b.send(Command.SYNC, SYNC);
    await b.clock.tickAsync(50);
    expect(b.packets.length).toBe(8);
    for (const p of b.packets) {
      expect([...p.subarray(0, 2)]).toEqual([0x01, Command.SYNC]);
      expect(new DataView(p.buffer).getUint32(4, true)).toBe(0x20120707);
      expect([...p.subarray(8)]).toEqual([0, 0, 0, 0]); // the ESP32 ROM's four status bytes
    }
    b.packets.length = 0;
    b.send(Command.READ_REG, b.word(CHIP_DETECT_MAGIC_REG));
    await b.clock.tickAsync(20);
    expect(new DataView(b.packets[0]!.buffer).getUint32(4, true)).toBe(0x00f01d83);
    b.packets.length = 0;
    b.send(Command.GET_SECURITY_INFO);
    await b.clock.tickAsync(50);
    expect(b.packets.length).toBe(8);
    expect([...b.packets[0]!.subarray(8)]).toEqual([1, 5, 0, 0]);
    expect(b.packets[0]![1]).not.toBe(Command.GET_SECURITY_INFO);
  });

  it("the ROM itself writes flash: FLASH_BEGIN erases, FLASH_DATA checks its checksum, SPI_FLASH_MD5 answers in hex", async () => {
    const b = board({ blank: true });
    b.node.setButton("BOOT", true);
    b.node.powerOn();
    await b.clock.tickAsync(10);
    const data = new Uint8Array(1024).map((_, i) => (i * 7) & 0xff);
    let sum = 0xef;
    for (const x of data) sum ^= x;
    const block = (seq: number) => Uint8Array.from([...b.word(data.length), ...b.word(seq), ...b.word(0), ...b.word(0), ...data]);
    const status = () => [...b.packets.at(-1)!.subarray(-4)];
    b.send(Command.FLASH_BEGIN, Uint8Array.from([...b.word(4096), ...b.word(1), ...b.word(1024), ...b.word(0x9000)]));
    await b.clock.tickAsync(100);
    expect(status()).toEqual([0, 0, 0, 0]);
    b.send(Command.FLASH_DATA, block(0), sum ^ 0x01);
    await b.clock.tickAsync(200); // 1,056 bytes at 115,200 baud
    expect(status()).toEqual([1, 0x07, 0, 0]); // "Invalid CRC in message"
    b.send(Command.FLASH_DATA, block(0), sum);
    await b.clock.tickAsync(200);
    expect(status()).toEqual([0, 0, 0, 0]);
    expect([...b.node.spiFlash.read(0x9000, 1024)]).toEqual([...data]);
    b.send(Command.SPI_FLASH_MD5, Uint8Array.from([...b.word(0x9000), ...b.word(1024), ...b.word(0), ...b.word(0)]));
    await b.clock.tickAsync(50);
    const answer = b.packets.at(-1)!;
    expect(Buffer.from(answer.subarray(8, 40)).toString("latin1")).toBe(createHash("md5").update(data).digest("hex"));
  });

  it("runs the flasher stub it is given (OHAI, two status bytes); the stub's ERASE_FLASH takes the whole flash, Storage too", async () => {
    const b = board();
    b.node.flashStorage.write(".bootcde", Uint8Array.of(0x31));
    b.node.setButton("BOOT", true);
    b.node.powerOn();
    await b.clock.tickAsync(10);
    const code = new Uint8Array(64).fill(0x36);
    const header = (n: number, seq: number) => {
      const h = new Uint8Array(16);
      new DataView(h.buffer).setUint32(0, n, true);
      new DataView(h.buffer).setUint32(4, seq, true);
      return h;
    };
    b.send(Command.MEM_BEGIN, Uint8Array.from([...b.word(64), ...b.word(1), ...b.word(0x1800), ...b.word(0x400a8000)]));
    await b.clock.tickAsync(10);
    // MEM_DATA's checksum: 0xEF XOR the data, in the header's checksum field
    let sum = 0xef;
    for (const x of code) sum ^= x;
    const packet = Uint8Array.from([...header(64, 0), ...code]);
    const frame = new Uint8Array(8 + packet.length);
    frame[1] = Command.MEM_DATA;
    new DataView(frame.buffer).setUint16(2, packet.length, true);
    new DataView(frame.buffer).setUint32(4, sum, true);
    frame.set(packet, 8);
    b.node.line.write(Uint8Array.from([0xc0, ...frame, 0xc0]));
    await b.clock.tickAsync(10);
    b.packets.length = 0;
    b.send(Command.MEM_END, Uint8Array.from([...b.word(0), ...b.word(0x400a8010)]));
    await b.clock.tickAsync(20);
    expect(Buffer.from(b.packets.at(-1)!).toString("latin1")).toBe("OHAI");
    expect(b.node.download!.stub).toBe(true);
    b.packets.length = 0;
    b.send(Command.ERASE_FLASH);
    await b.clock.tickAsync(5_000);
    expect(b.packets.length).toBe(0); // a whole-chip erase takes about 10 s (W25Q32JV, typical)
    await b.clock.tickAsync(6_000);
    expect([...b.packets[0]!.subarray(0, 2)]).toEqual([0x01, Command.ERASE_FLASH]);
    expect([...b.packets[0]!.subarray(8)]).toEqual([0, 0]);
    expect(b.node.flashStorage.list()).toEqual([]);
    expect(b.node.interpreterVersion).toBeUndefined();
  });

  it("the stub, as esptool's does, checks a data block's length and checksum only: a block sent again is written again after the last", async () => {
    const b = board({ blank: true });
    b.node.setButton("BOOT", true);
    b.node.powerOn();
    await b.clock.tickAsync(10);
    const code = new Uint8Array(64).fill(0x36);
    let sum = 0xef;
    for (const x of code) sum ^= x;
    b.send(Command.MEM_BEGIN, Uint8Array.from([...b.word(64), ...b.word(1), ...b.word(0x1800), ...b.word(0x400a8000)]));
    await b.clock.tickAsync(10);
    b.send(Command.MEM_DATA, Uint8Array.from([...b.word(64), ...b.word(0), ...b.word(0), ...b.word(0), ...code]), sum);
    await b.clock.tickAsync(10);
    b.send(Command.MEM_END, Uint8Array.from([...b.word(0), ...b.word(0x400a8010)]));
    await b.clock.tickAsync(20);
    expect(b.node.download!.stub).toBe(true);
    const block = (seq: number, fill: number) => {
      const data = new Uint8Array(1024).fill(fill);
      let s = 0xef;
      for (const x of data) s ^= x;
      return [Uint8Array.from([...b.word(data.length), ...b.word(seq), ...b.word(0), ...b.word(0), ...data]), s] as const;
    };
    b.send(Command.FLASH_BEGIN, Uint8Array.from([...b.word(3072), ...b.word(3), ...b.word(1024), ...b.word(0x9000)]));
    await b.clock.tickAsync(100);
    for (const [seq, fill] of [
      [0, 0x11],
      [0, 0x22], // sent again (its answer lost, say), with the same sequence number
      [1, 0x33],
    ] as const) {
      b.send(Command.FLASH_DATA, ...block(seq, fill));
      await b.clock.tickAsync(200);
      expect([...b.packets.at(-1)!.subarray(-2)]).toEqual([0, 0]);
    }
    expect([b.node.spiFlash.read(0x9000, 1)[0], b.node.spiFlash.read(0x9400, 1)[0], b.node.spiFlash.read(0x9800, 1)[0]]).toEqual([0x11, 0x22, 0x33]);
  });

  it("boots the interpreter the flash holds and reports the version its image carries", async () => {
    const b = board();
    b.node.installInterpreter("2v27");
    b.node.powerOn();
    await b.clock.tickAsync(500); // the boot log crosses the line at 115,200 baud
    expect(b.node.runtime!.run("process.env.VERSION")).toBe("2v27");
    expect(b.text()).toContain("I (97) boot: Loaded app from partition at offset 0x10000");
  });

  it("an app image that fails its checksum is not booted: the bootloader says so and resets the chip", async () => {
    const b = board();
    const bad = buildAppImage();
    bad[700] ^= 0x10;
    b.node.spiFlash.erase(0x10000, bad.length);
    b.node.spiFlash.program(0x10000, bad);
    b.node.powerOn();
    await b.clock.tickAsync(500);
    expect(b.node.runtime).toBeUndefined();
    const text = b.text();
    expect(text).toMatch(/E \(\d+\) esp_image: checksum failed/);
    expect(text).toMatch(/E \(\d+\) boot: Factory app partition is not bootable/);
    expect(text).toContain("rst:0x3 (SW_RESET)");
  });

  it("the bootloader's last log line is sent whole before it resets the chip; a factory app that fails is passed over for the first OTA app", async () => {
    const b = board();
    b.node.installInterpreter("2v27");
    // a table with the factory app at 0x10000 (now broken) and an OTA slot holding Espruino
    const table = buildPartitionTable([
      { label: "nvs", type: 1, subtype: 2, offset: 0x9000, size: 0x6000, flags: 0 },
      { label: "factory", type: 0, subtype: 0, offset: 0x10000, size: 0x100000, flags: 0 },
      { label: "ota_0", type: 0, subtype: 0x10, offset: 0x110000, size: 0x100000, flags: 0 },
    ]);
    b.node.spiFlash.erase(0x8000, 0x1000);
    b.node.spiFlash.program(0x8000, table);
    const app = buildAppImage({ version: "2v28" });
    b.node.spiFlash.erase(0x110000, 0x10000);
    b.node.spiFlash.program(0x110000, app);
    b.node.spiFlash.erase(0x10000, 0x1000);
    b.node.powerOn();
    await b.clock.tickAsync(500);
    expect(b.text()).toMatch(/E \(\d+\) boot: Factory app partition is not bootable/);
    expect(b.text()).toContain("Loaded app from partition at offset 0x110000");
    expect(b.node.interpreterVersion).toBe("2v28");

    // no app that boots: every line of the log arrives, the last one too, before the reset
    b.node.powerOff();
    b.node.spiFlash.erase(0x110000, 0x1000);
    b.clearText();
    b.node.powerOn();
    await b.clock.tickAsync(300);
    const text = b.text().replace(/\r/g, "");
    expect(text).toMatch(/E \(\d+\) boot: No bootable app partitions in the partition table\nets Jun/);
  });

  it("erasing flash over Storage's area erases Storage's files", () => {
    const b = board();
    b.node.flashStorage.write("x", Uint8Array.of(1, 2, 3));
    b.node.spiFlash.erase(0x1000, 0x1000);
    expect(b.node.flashStorage.list()).toEqual(["x"]);
    b.node.spiFlash.erase(0x320000, 0x1000);
    expect(b.node.flashStorage.list()).toEqual([]);
  });
});

describe("the ROM's rate", () => {
  it("the ROM and the bootloader talk 115200 whatever the console's rate; Espruino's console then runs at its own", async () => {
    const b = board({ blank: true, baud: 9600 });
    b.node.powerOn();
    await b.clock.tickAsync(5);
    expect(b.node.line.baud).toBe(115_200);
    const c = board({ baud: 9600 });
    c.node.installInterpreter("2v29");
    c.node.powerOn();
    await c.clock.tickAsync(2000);
    expect(c.node.runtime).toBeDefined();
    expect(c.node.line.baud).toBe(9600);
  });
});

describe("a blank board's uptime", () => {
  it("counts from its last reset, not from 1970", async () => {
    const clock = FakeTimers.createClock(1_700_000_000_000, 1e9);
    const node = new SimNode({ index: 0, clock: clock as unknown as Clock, ap: new AccessPoint(), blank: true });
    nodes.push(node);
    node.powerOn();
    await clock.tickAsync(2000);
    expect(node.uptime).toBeLessThan(1000); // the RTC watchdog resets it every few hundred ms
  });
});
