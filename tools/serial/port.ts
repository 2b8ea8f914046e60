// Serial ports for the `wisp` commands: finding the board's USB serial port without a prompt, and
// opening one as a Transport for ConsoleLink with errors that say what to do.

import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { SerialPort } from "serialport";
import type { Transport } from "./link.ts";

/** USB-serial bridges that ESP32 boards carry (vendor:product ids as `SerialPort.list()` gives them). */
export const ESP32_BRIDGES: readonly { vendorId: string; productId: string; chip: string; boards: string }[] = [
  { vendorId: "10c4", productId: "ea60", chip: "Silicon Labs CP210x", boards: "ESP32-DevKitC, NodeMCU-32S, most DevKit V1 clones" },
  { vendorId: "1a86", productId: "7523", chip: "WCH CH340", boards: "DOIT ESP32 DevKit V1 and other low-cost ESP32 boards" },
  { vendorId: "0403", productId: "6001", chip: "FTDI FT232R", boards: "ESP32 boards with an FTDI bridge, USB-serial adapters" },
  { vendorId: "303a", productId: "1001", chip: "Espressif USB Serial/JTAG", boards: "ESP32-S3 / ESP32-C3 on their native USB" },
];

export interface PortInfo {
  path: string;
  vendorId?: string;
  productId?: string;
  serialNumber?: string;
  manufacturer?: string;
  /** The bridge, when it is one ESP32 boards use. */
  bridge?: (typeof ESP32_BRIDGES)[number];
}

export class PortError extends Error {
  constructor(
    message: string,
    readonly code: "no-udevadm" | "none" | "several" | "busy" | "permission" | "missing" | "open",
  ) {
    super(message);
  }
}

/**
 * serialport runs `udevadm` from PATH. Where it is installed in a folder PATH lacks (/sbin on some
 * systems), that folder joins PATH; where it is not installed at all, false.
 */
function findUdevadm(): boolean {
  const run = (bin: string) => {
    try {
      execFileSync(bin, ["--version"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  };
  if (run("udevadm")) return true;
  for (const dir of ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]) {
    if (run(`${dir}/udevadm`)) {
      process.env.PATH = `${process.env.PATH ?? ""}:${dir}`;
      return true;
    }
  }
  return false;
}

/**
 * USB serial ports on this machine. On Linux, serialport lists them through `udevadm`; where it is
 * missing, `SerialPort.list()` would crash the process, so this says how to install it instead.
 */
export async function listPorts(options: { all?: boolean } = {}): Promise<PortInfo[]> {
  if (process.platform === "linux" && !findUdevadm()) {
    throw new PortError(
      "cannot list USB serial ports: `udevadm` is missing (Debian/Ubuntu package udev: sudo apt-get install udev). Or name the port: --port /dev/ttyUSB0",
      "no-udevadm",
    );
  }
  const ports = await SerialPort.list();
  return ports
    .filter((p) => options.all || p.vendorId !== undefined)
    .map((p) => {
      const vendorId = p.vendorId?.toLowerCase();
      const productId = p.productId?.toLowerCase();
      return {
        path: p.path,
        vendorId,
        productId,
        serialNumber: p.serialNumber,
        manufacturer: p.manufacturer,
        bridge: ESP32_BRIDGES.find((b) => b.vendorId === vendorId && b.productId === productId),
      };
    });
}

/** The one port an ESP32 board is on; with several or none, a PortError that lists them or says how to pass --port. */
export async function findBoardPort(): Promise<PortInfo> {
  const ports = await listPorts();
  const boards = ports.filter((p) => p.bridge);
  if (boards.length === 1) return boards[0]!;
  if (boards.length > 1) {
    throw new PortError(
      `${boards.length} ESP32 boards are plugged in; pick one with --port:\n` + boards.map((p) => `  --port ${p.path}   ${describePort(p)}`).join("\n"),
      "several",
    );
  }
  const others = ports.length ? `\nOther USB serial ports: ${ports.map((p) => `${p.path} (${p.vendorId}:${p.productId})`).join(", ")}; pass one with --port if the board is on it.` : "";
  throw new PortError(
    `no ESP32 board found: no USB serial port with a CP210x (10c4:ea60), CH340 (1a86:7523), FTDI (0403:6001) or ESP32-S3/C3 (303a:1001) bridge. Plug the board in with a data cable (some USB cables carry power only), or pass --port PATH.${others}`,
    "none",
  );
}

export function describePort(p: PortInfo): string {
  const id = p.vendorId ? `${p.vendorId}:${p.productId}` : "no USB ids";
  const serial = p.serialNumber ? `, serial ${p.serialNumber}` : "";
  const what = p.bridge ? ` — ${p.bridge.chip}: ${p.bridge.boards}` : p.manufacturer ? ` — ${p.manufacturer}` : "";
  return `${id}${serial}${what}`;
}

/** What went wrong opening `path`, and the fix. */
export function openError(path: string, err: Error): PortError {
  const m = err.message;
  if (/No such file|ENOENT/i.test(m)) return new PortError(`${path} does not exist: is the board plugged in? \`wisp ports\` lists the serial ports`, "missing");
  if (/Permission denied|EACCES/i.test(m)) {
    return new PortError(
      `permission denied on ${path}: your user may not open serial ports. Add it to the dialout group (sudo usermod -aG dialout $USER), then log out and back in`,
      "permission",
    );
  }
  if (/Inappropriate ioctl|ENOTTY/i.test(m)) return new PortError(`${path} is not a serial port (it takes no baud rate): pass the board's port, e.g. /dev/ttyUSB0 (wisp ports lists them)`, "open");
  if (/lock|busy|EBUSY|temporarily unavailable/i.test(m)) {
    return new PortError(`${path} is busy: another program has it open (a serial monitor, \`wisp monitor\`, an IDE). Close it and try again`, "busy");
  }
  return new PortError(`cannot open ${path}: ${m}`, "open");
}

/** Opens `path` as a Transport (raw bytes, no flow control of the host's own: ConsoleLink honours XON/XOFF itself). */
export async function openPort(path: string, baudRate: number): Promise<Transport> {
  if (!existsSync(path)) throw openError(path, new Error("ENOENT"));
  const port = await new Promise<SerialPort>((resolve, reject) => {
    const p: SerialPort = new SerialPort({ path, baudRate, lock: true }, (err) => (err ? reject(openError(path, err)) : resolve(p)));
  });
  return serialTransport(port);
}

/** A Transport over an open serialport stream (also serialport's mock binding). */
export function serialTransport(port: SerialPort | import("serialport").SerialPortMock): Transport {
  let closing = false;
  return {
    write: (bytes) => {
      port.write(Buffer.from(bytes));
    },
    onData: (listener) => port.on("data", (d: Buffer) => listener(new Uint8Array(d))),
    onClose: (listener) => {
      port.on("close", (err?: Error) => {
        if (!closing) listener(err ?? new Error("closed"));
      });
      port.on("error", (err: Error) => {
        if (!closing) listener(err);
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        if (!port.isOpen) return resolve();
        port.close(() => resolve());
      }),
  };
}
