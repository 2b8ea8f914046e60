import vm from "node:vm";
import { describe, expect, it } from "vitest";
import { EmulatedI2C, installI2C, NACK, type I2CDevice } from "../../host-sim/i2c.ts";
import { createRuntime } from "../../host-sim/runtime.ts";

/** A device that records what it is sent and answers from a fixed list of bytes. */
function recorder(answer: number[] = []) {
  const writes: number[][] = [];
  const reads: number[] = [];
  const device: I2CDevice = {
    write: (bytes) => void writes.push([...bytes]),
    read: (n) => {
      reads.push(n);
      return Uint8Array.from(answer.slice(0, n));
    },
  };
  return { device, writes, reads };
}

/** installI2C against a bare vm context standing in for a host-sim Runtime. */
function installInContext(context: vm.Context) {
  const realm = vm.runInContext("({ Uint8Array, Error })", context);
  const buses = installI2C({ realm, defineGlobal: (name, value) => void (context[name] = value) });
  return { buses };
}

function busWith(address: number, device: I2CDevice): EmulatedI2C {
  const bus = new EmulatedI2C();
  bus.setup({ scl: 22, sda: 21 });
  bus.attach(address, device);
  return bus;
}

describe("EmulatedI2C (ESP32 hardware I2C semantics)", () => {
  it("fails like ESP-IDF when used before setup()", () => {
    const bus = new EmulatedI2C();
    bus.attach(0x76, recorder().device);
    expect(() => bus.writeTo(0x76, 1)).toThrow("jshI2CWrite:, unknown error code 259");
    expect(() => bus.readFrom(0x76, 1)).toThrow("jshI2CRead:, unknown error code 259");
  });

  it("rejects a bitrate below 100 as Espruino does", () => {
    expect(() => new EmulatedI2C().setup({ scl: 22, sda: 21, bitrate: 50 })).toThrow("Invalid I2C bitrate");
  });

  it("delivers every data form Espruino's writeTo accepts as one flat transfer", () => {
    const { device, writes } = recorder();
    const bus = busWith(0x40, device);
    bus.writeTo(0x40, 0x1ff);
    bus.writeTo(0x40, [1, 2, 3]);
    bus.writeTo(0x40, "AB");
    bus.writeTo(0x40, new Uint8Array([9, 8]));
    bus.writeTo(0x40, { data: [7], count: 3 });
    bus.writeTo({ address: 0x40, stop: false }, 5, [6, "\x07"]);
    expect(writes).toEqual([[0xff], [1, 2, 3], [65, 66], [9, 8], [7, 7, 7], [5, 6, 7]]);
  });

  it("sends nothing for an empty write, even to a missing device", () => {
    const { device, writes } = recorder();
    const bus = busWith(0x40, device);
    bus.writeTo(0x40, []);
    bus.writeTo(0x41, "");
    expect(writes).toEqual([]);
  });

  it("reads n bytes from the addressed device only", () => {
    const a = recorder([1, 2, 3]);
    const b = recorder([9]);
    const bus = busWith(0x40, a.device);
    bus.attach(0x41, b.device);
    const got = bus.readFrom(0x40, 3);
    expect(got).toBeInstanceOf(Uint8Array);
    expect([...got]).toEqual([1, 2, 3]);
    expect(b.reads).toEqual([]);
  });

  it("clocks in 0xFF where the device stops sending", () => {
    const bus = busWith(0x40, recorder([1]).device);
    expect([...bus.readFrom(0x40, 3)]).toEqual([1, 0xff, 0xff]);
  });

  it("returns undefined for a read of zero bytes without touching the bus", () => {
    const bus = new EmulatedI2C();
    expect(bus.readFrom(0x40, 0)).toBeUndefined();
  });

  it("throws Espruino's no-ACK error for an address nobody answers, and after detach", () => {
    const bus = busWith(0x76, recorder([0x60]).device);
    expect(() => bus.writeTo(0x77, 0xd0)).toThrow("jshI2CWrite: slave doesn't ACK the transfer");
    expect(() => bus.readFrom(0x77, 1)).toThrow("jshI2CRead: slave doesn't ACK the transfer");
    expect([...bus.readFrom(0x76, 1)]).toEqual([0x60]);
    bus.detach(0x76);
    expect(() => bus.readFrom(0x76, 1)).toThrow(Error);
    expect(() => bus.readFrom(0x76, 1)).toThrow("slave doesn't ACK");
  });

  it("refuses two devices on one address and addresses beyond 7 bits", () => {
    const bus = busWith(0x76, recorder().device);
    expect(() => bus.attach(0x76, recorder().device)).toThrow("0x76 is already taken");
    expect(() => bus.attach(0x80, recorder().device)).toThrow(RangeError);
  });

  it("lets a fault hook fail chosen transfers before they reach the device", () => {
    const { device, writes } = recorder([1, 2]);
    const bus = busWith(0x76, device);
    bus.fault = (t) => (t.kind === "read" ? "jshI2CRead:, Operation timeout because the bus is busy" : undefined);
    bus.writeTo(0x76, 0xf7);
    expect(() => bus.readFrom(0x76, 2)).toThrow("Operation timeout because the bus is busy");
    expect(writes).toEqual([[0xf7]]);

    const seen: string[] = [];
    bus.fault = (t) => {
      seen.push(`${t.kind} ${t.address} ${t.data ? [...t.data] : t.quantity}`);
      return t.kind === "write" ? new Error("glitch") : undefined;
    };
    expect(() => bus.writeTo(0x76, [0xf4, 0x25])).toThrow("glitch");
    expect([...bus.readFrom(0x76, 2)]).toEqual([1, 2]);
    expect(seen).toEqual(["write 118 244,37", "read 118 2"]);
    expect(writes).toEqual([[0xf7]]);

    bus.fault = undefined;
    bus.writeTo(0x76, 1);
    expect(writes).toEqual([[0xf7], [1]]);
  });

  it("hands the firmware's realm typed arrays and errors, and takes its arrays", () => {
    const context = vm.createContext({});
    const { buses } = installInContext(context);
    const bus = buses.I2C1;
    expect(vm.runInContext("try { I2C1.writeTo(0x10, 1) } catch (e) { e instanceof Error }", context)).toBe(true);
    bus.setup({});
    bus.attach(0x10, recorder([4, 5]).device);
    expect(vm.runInContext("I2C1.readFrom(0x10, 2) instanceof Uint8Array", context)).toBe(true);
    expect(vm.runInContext("try { I2C1.readFrom(0x12, 2) } catch (e) { e instanceof Error && e.message }", context)).toBe(
      "jshI2CRead: slave doesn't ACK the transfer",
    );
    // and accepts arrays built inside that realm
    const { device, writes } = recorder();
    bus.attach(0x11, device);
    vm.runInContext("I2C1.writeTo(0x11, [1, 2]); I2C1.writeTo(0x11, new Uint8Array([3]))", context);
    expect(writes).toEqual([[1, 2], [3]]);
  });
});

describe("EmulatedI2C (software I2C semantics: no ACK check)", () => {
  it("drops writes and reads 0xFF when no device answers", () => {
    const bus = new EmulatedI2C({ kind: "software" });
    bus.setup({ scl: 22, sda: 21 });
    expect(() => bus.writeTo(0x76, 0xd0)).not.toThrow();
    expect([...bus.readFrom(0x76, 2)]).toEqual([0xff, 0xff]);
  });
});

describe("new I2C() in a runtime", () => {
  it("gives a software bus that reaches the devices on the hardware bus's wires", () => {
    let buses!: ReturnType<typeof installI2C>;
    const rt = createRuntime({ plugins: [(r) => void (buses = installI2C(r))] });
    buses.I2C1.setup({ sda: 21, scl: 22 });
    buses.I2C1.attach(0x40, { write() {}, read: (n: number) => new Uint8Array(n).fill(0x5a) });
    expect(rt.run("var b = new I2C(); b.setup({ sda: 21, scl: 22 }); b.readFrom(0x40, 2)[1]", "t.js")).toBe(0x5a);
    // other pins, other wires: a software bus does not check ACKs and reads 0xFF
    expect(rt.run("var c = new I2C(); c.setup({ sda: 4, scl: 5 }); c.readFrom(0x40, 1)[0]", "t.js")).toBe(0xff);
    rt.dispose();
  });
});

describe("EmulatedI2C: devices that do not acknowledge, and a bus held low", () => {
  it("a device's NACK fails the transfer as an absent device's would (hardware), and goes unnoticed on software I2C", () => {
    const busy: I2CDevice = { write: () => NACK, read: () => NACK };
    const hw = new EmulatedI2C();
    hw.setup({ scl: 22, sda: 21 });
    hw.attach(0x44, busy);
    expect(() => hw.writeTo(0x44, 1)).toThrow("jshI2CWrite: slave doesn't ACK the transfer");
    expect(() => hw.readFrom(0x44, 3)).toThrow("jshI2CRead: slave doesn't ACK the transfer");
    const sw = new EmulatedI2C({ kind: "software" });
    sw.setup({ scl: 22, sda: 21 });
    sw.attach(0x44, busy);
    expect(() => sw.writeTo(0x44, 1)).not.toThrow();
    expect([...sw.readFrom(0x44, 2)]).toEqual([0xff, 0xff]);
  });

  it("SDA held low: ESP32's driver times out on every address; a software bus reads zeros", () => {
    const hw = new EmulatedI2C();
    hw.setup({ scl: 22, sda: 21 });
    hw.stuck = true;
    expect(() => hw.readFrom(0x10, 1)).toThrow("jshI2CRead:, Operation timeout because the bus is busy");
    expect(() => hw.writeTo(0x76, 0xd0)).toThrow("jshI2CWrite:, Operation timeout because the bus is busy");
    const sw = new EmulatedI2C({ kind: "software", wires: [hw] });
    sw.setup({ scl: 22, sda: 21 });
    expect([...sw.readFrom(0x10, 2)]).toEqual([0, 0]); // same wires
  });
});
