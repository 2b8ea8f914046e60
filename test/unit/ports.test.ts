// Finding the board's port from what `SerialPort.list()` reports (stubbed: this machine has no
// boards), and not crashing where `udevadm`, which it needs on Linux, is missing.
import { beforeEach, describe, expect, it, vi } from "vitest";

const list = vi.fn();
let udevadm = true;
let onPath = true;
vi.mock("serialport", () => ({ SerialPort: { list: () => list() } }));
vi.mock("node:child_process", async (original) => ({
  ...(await original<typeof import("node:child_process")>()),
  execFileSync: (bin: string) => {
    if (!udevadm || (onPath === false && bin === "udevadm")) throw Object.assign(new Error(`spawnSync ${bin} ENOENT`), { code: "ENOENT" });
    return Buffer.from("252");
  },
}));

const { findBoardPort, listPorts, PortError } = await import("../../tools/serial/port.ts");

const cp2102 = { path: "/dev/ttyUSB0", vendorId: "10C4", productId: "EA60", serialNumber: "0001", manufacturer: "Silicon Labs" };
const ch340 = { path: "/dev/ttyUSB1", vendorId: "1a86", productId: "7523", serialNumber: undefined, manufacturer: "QinHeng" };
const arduino = { path: "/dev/ttyACM0", vendorId: "2341", productId: "0043", serialNumber: "7573", manufacturer: "Arduino" };
const uart = { path: "/dev/ttyS0" };

beforeEach(() => {
  udevadm = true;
  onPath = true;
  list.mockReset();
});

describe("finding the board's port", () => {
  it("takes the one port with an ESP32 bridge, whatever else is plugged in", async () => {
    list.mockResolvedValue([uart, arduino, cp2102]);
    const p = await findBoardPort();
    expect(p.path).toBe("/dev/ttyUSB0");
    expect(p.bridge?.chip).toMatch(/CP210x/);
  });

  it("with several boards, lists them and asks for --port", async () => {
    list.mockResolvedValue([cp2102, ch340]);
    const err = await findBoardPort().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortError);
    expect((err as Error).message).toMatch(/2 ESP32 boards are plugged in; pick one with --port:\n {2}--port \/dev\/ttyUSB0 .*10c4:ea60, serial 0001.*\n {2}--port \/dev\/ttyUSB1 .*1a86:7523/);
  });

  it("with none, names the bridges it looks for, the other ports, and --port", async () => {
    list.mockResolvedValue([uart, arduino]);
    const err = await findBoardPort().catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/no ESP32 board found.*CP210x \(10c4:ea60\).*--port PATH.*Other USB serial ports: \/dev\/ttyACM0 \(2341:0043\)/s);
  });

  it("without udevadm, an error that says how to install it, instead of the crash SerialPort.list() gives", async () => {
    udevadm = false;
    const err = await listPorts().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortError);
    expect((err as Error).message).toMatch(/udevadm.*apt-get install udev.*--port/);
    expect(list).not.toHaveBeenCalled();
  });

  it("finds udevadm in /sbin when PATH lacks it (serialport runs it from PATH)", async () => {
    onPath = false;
    const path = process.env.PATH;
    list.mockResolvedValue([cp2102]);
    try {
      expect((await listPorts()).map((p) => p.path)).toEqual(["/dev/ttyUSB0"]);
      expect(process.env.PATH).toMatch(/:\/usr\/bin$/);
    } finally {
      process.env.PATH = path;
    }
  });
});
