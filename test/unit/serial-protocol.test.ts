// The host side of the console's packet protocol: framing (no header byte may be a control
// character), splitting files into packets, taking the board's output apart, and ConsoleLink's
// upload over serialport's mock binding against a scripted board.
import fc from "fast-check";
import { SerialPortMock } from "serialport";
import { afterEach, describe, expect, it } from "vitest";
import { crc32 } from "node:zlib";
import { ConsoleLink } from "../../tools/serial/link.ts";
import { serialTransport } from "../../tools/serial/port.ts";
import {
  ACK,
  ConsoleReader,
  type ConsoleEvent,
  NAK,
  packet,
  PacketType,
  padToSafe,
  parseResponse,
  planChunks,
  safeLength,
  XOFF,
  XON,
} from "../../tools/serial/protocol.ts";

const control = (b: number) => b < 0x20 || b === 0x7f;

describe("packet framing", () => {
  it("a packet is DLE SOH, type and length in 16 bits, then the data", () => {
    expect([...packet(PacketType.EVAL, "1+2 is 3 and this pads past 32..")]).toEqual([0x10, 0x01, 0x20, 32, ...Buffer.from("1+2 is 3 and this pads past 32..")]);
  });

  it("refuses a length whose header byte would be a control character (3, 259, 17, 19 …)", () => {
    for (const n of [3, 4, 17, 19, 259, 256, 127]) expect(() => packet(PacketType.DATA, new Uint8Array(n))).toThrow(/control character in its header/);
  });

  it("pads an expression with spaces to a length with safe header bytes", () => {
    for (let n = 0; n < 600; n++) {
      const text = padToSafe(PacketType.EVAL, "x".repeat(n));
      expect(safeLength(PacketType.EVAL, text.length)).toBe(true);
      expect(text.trimEnd()).toBe("x".repeat(n));
    }
  });

  it("splits any file of 32 bytes or more into DATA packets that fit the 1,024-byte buffer, with no control byte in any header", () => {
    fc.assert(
      fc.property(fc.integer({ min: 32, max: 200_000 }), (total) => {
        const sizes = planChunks(total)!;
        expect(sizes.reduce((a, b) => a + b, 0)).toBe(total);
        for (const n of sizes) {
          expect(n + 4).toBeLessThanOrEqual(1024);
          const header = PacketType.DATA | n;
          expect(control(header >> 8) || control(header & 0xff)).toBe(false);
        }
      }),
    );
    expect(planChunks(31)).toBeUndefined();
  });
});

describe("reading the board's output", () => {
  const stream = Buffer.concat([
    Buffer.from("=3\r\n>"),
    Buffer.of(ACK, 0x10, 0x01, 0x00, 0x05),
    Buffer.from("12345"),
    Buffer.of(NAK),
    Buffer.from("Uncaught Error\r\n"),
    Buffer.of(0x10, 0x01, 0x00, 0x03),
    Buffer.from("a"),
    Buffer.of(XOFF),
    Buffer.from("bc"),
    Buffer.of(XON),
    // a 19-byte reply: its length byte is 0x13, which is not XOFF there
    Buffer.of(0x10, 0x01, 0x00, 0x13),
    Buffer.from('"2v29.123 ESP32C3" '),
    // a file's bytes in a DATA packet are data, 0x11 and 0x13 too
    Buffer.of(0x10, 0x01, 0x80, 0x03, 0x11, 0x13, 0x41),
  ]);
  const expected: ConsoleEvent[] = [
    { kind: "text", text: "=3\r\n>" },
    { kind: "ack" },
    { kind: "packet", type: PacketType.RESPONSE, data: "12345" },
    { kind: "nak" },
    { kind: "text", text: "Uncaught Error\r\n" },
    { kind: "xoff" },
    { kind: "packet", type: PacketType.RESPONSE, data: "abc" },
    { kind: "xon" },
    { kind: "packet", type: PacketType.RESPONSE, data: '"2v29.123 ESP32C3" ' },
    { kind: "packet", type: PacketType.DATA, data: "\x11\x13A" },
  ];

  it("takes text, ACK, NAK, reply packets and flow control apart, however the bytes are split", () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const events: ConsoleEvent[] = [];
      const reader = new ConsoleReader((e) => events.push(e));
      reader.push(stream.subarray(0, cut));
      reader.push(stream.subarray(cut));
      const merged = events.reduce<ConsoleEvent[]>((out, e) => {
        const last = out[out.length - 1];
        if (e.kind === "text" && last?.kind === "text") last.text += e.text;
        else out.push({ ...e });
        return out;
      }, []);
      expect(merged, `split at ${cut}`).toEqual(expected);
    }
  });

  it("reads E.toJS answers as the board writes them", () => {
    expect(parseResponse('"2v29\\5"')).toBe("2v29\x05");
    expect(parseResponse('"a\\x80\\n\\"q\\""')).toBe('a\x80\n"q"');
    expect(parseResponse("222957957")).toBe(222957957);
    expect(parseResponse("null")).toBe(null);
    expect(parseResponse("-0.1")).toBe(-0.1);
    expect(parseResponse("[1,2]")).toBe("[1,2]");
  });
});

/**
 * A board scripted on serialport's mock binding: it parses what the link writes and answers
 * FILE_SEND, DATA and EVAL packets; `nak` says which DATA packets (by count) to refuse once,
 * `badCrc` how many CRC checks to answer wrongly.
 */
function scriptedBoard(options: { nak?: number[]; badCrc?: number } = {}) {
  const path = `/dev/wisp-mock-${Math.random().toString(36).slice(2)}`;
  SerialPortMock.binding.createPort(path, { echo: false, record: true });
  const port = new SerialPortMock({ path, baudRate: 115200 });
  const mock = () => (port as unknown as { port: { recording: Buffer; emitData(d: Buffer): void } }).port;
  const received: { type: number; data: Buffer }[] = [];
  let file = Buffer.alloc(0);
  let dataPackets = 0;
  let badCrc = options.badCrc ?? 0;
  let parsed = 0;
  const answer = (bytes: number[] | Buffer) => mock().emitData(Buffer.from(bytes as Buffer));
  const timer = setInterval(() => {
    const rec = mock()?.recording;
    if (!rec) return;
    while (parsed < rec.length) {
      if (rec[parsed] !== 0x10 || rec[parsed + 1] !== 0x01) {
        parsed++;
        continue;
      }
      if (rec.length < parsed + 4) return;
      const header = (rec[parsed + 2]! << 8) | rec[parsed + 3]!;
      const len = header & 0x1fff;
      if (rec.length < parsed + 4 + len) return;
      const data = rec.subarray(parsed + 4, parsed + 4 + len);
      parsed += 4 + len;
      const type = header & 0xe000;
      received.push({ type, data: Buffer.from(data) });
      if (type === PacketType.FILE_SEND) {
        file = Buffer.alloc(0);
        answer([ACK]);
      } else if (type === PacketType.DATA) {
        dataPackets++;
        if (options.nak?.includes(dataPackets)) {
          options.nak.splice(options.nak.indexOf(dataPackets), 1);
          answer([NAK]);
        } else {
          file = Buffer.concat([file, data]);
          answer([ACK]);
        }
      } else if (type === PacketType.EVAL) {
        const crc = String((crc32(file) >>> 0) + (badCrc-- > 0 ? 1 : 0));
        answer(Buffer.concat([Buffer.of(ACK, 0x10, 0x01, 0, crc.length), Buffer.from(crc)]));
      }
    }
  }, 1);
  return {
    port,
    received,
    file: () => file,
    close: async () => {
      clearInterval(timer);
      if (port.isOpen) await new Promise((r) => port.close(r));
    },
  };
}

describe("ConsoleLink writing a file (serialport mock binding)", () => {
  let board: ReturnType<typeof scriptedBoard> | undefined;
  afterEach(async () => {
    await board?.close();
    SerialPortMock.binding.reset();
  });

  const data = Buffer.from(Array.from({ length: 5000 }, (_, i) => 0x20 + ((i * 7) % 90)));

  it("sends FILE_SEND with the name and size, then DATA packets of the file, then checks its CRC-32", async () => {
    board = scriptedBoard();
    await new Promise((r) => board!.port.on("open", r));
    const link = new ConsoleLink(serialTransport(board.port), { baud: 1_000_000 });
    await link.writeFile(".bootcde", data);
    expect(board.file()).toEqual(data);
    const [first, ...rest] = board.received;
    expect(first!.type).toBe(PacketType.FILE_SEND);
    expect(first!.data.toString().trim()).toBe('{fn:".bootcde",s:5000}');
    expect(rest.at(-1)!.type).toBe(PacketType.EVAL);
    expect(rest.at(-1)!.data.toString().trim()).toBe('E.CRC32(require("Storage").read(".bootcde"))');
    expect(link.retries).toEqual({ packets: 0, files: 0 });
  });

  it("sends a NAKed packet again, and nothing twice that was ACKed", async () => {
    board = scriptedBoard({ nak: [2, 4] });
    await new Promise((r) => board!.port.on("open", r));
    const link = new ConsoleLink(serialTransport(board.port), { baud: 1_000_000 });
    await link.writeFile("f", data);
    expect(board.file()).toEqual(data);
    expect(link.retries.packets).toBe(2);
  });

  it("sends the file again when the board's CRC-32 differs, and gives up after three tries with a message that says what to check", async () => {
    board = scriptedBoard({ badCrc: 1 });
    await new Promise((r) => board!.port.on("open", r));
    const link = new ConsoleLink(serialTransport(board.port), { baud: 1_000_000 });
    await link.writeFile("f", data);
    expect(link.retries.files).toBe(1);

    await board.close();
    SerialPortMock.binding.reset();
    board = scriptedBoard({ badCrc: 3 });
    await new Promise((r) => board!.port.on("open", r));
    const link2 = new ConsoleLink(serialTransport(board.port), { baud: 1_000_000 });
    await expect(link2.writeFile("f", data)).rejects.toThrow(/f: the board's copy does not match .* after 3 attempts.*USB cable/);
  });
});
