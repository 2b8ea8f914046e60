// An emulated Espruino I2C bus (I2C1, I2C2 or `new I2C()`), routing each transfer by 7-bit
// address to an attached device model.
//
// What a missing device does is taken from Espruino's source (2v29):
// - Hardware I2C on ESP32 (targets/esp32/jshardwareI2c.c, checkError): an un-ACKed transfer
//   throws Error("jshI2CWrite: slave doesn't ACK the transfer") (or "jshI2CRead: ...").
//   Using the bus before setup() fails inside ESP-IDF with ESP_ERR_INVALID_STATE (0x103),
//   which Espruino reports as "jshI2CWrite:, unknown error code 259".
// - Software I2C (`new I2C()`, src/jsi2c.c) does not check ACKs (I2C_NACK_CHECK is off):
//   writes vanish and reads return 0xFF from the pulled-up SDA line.
// - writeTo with no data sends nothing; readFrom with quantity <= 0 returns undefined
//   (src/jswrap_spi_i2c.c).

/**
 * What a device answers instead of data when it does not acknowledge (a Sensirion chip busy
 * measuring, an SCD4x with no new data): the transfer fails as an absent device's would.
 */
export const NACK = Symbol("I2C NACK");

/** A device model on the bus. Register pointers and auto-increment are the model's business. */
export interface I2CDevice {
  write(bytes: Uint8Array): void | typeof NACK;
  read(n: number): Uint8Array | typeof NACK;
}

export interface I2CTransfer {
  kind: "write" | "read";
  address: number;
  /** The bytes written (write) or the quantity requested (read). */
  data?: Uint8Array;
  quantity?: number;
}

/** Return an Error (or message) to make the transfer fail with it; return nothing to let it pass. */
export type I2CFaultHook = (transfer: I2CTransfer) => Error | string | undefined | void;

export interface EmulatedI2COptions {
  /** "hardware" (default): ESP32 I2C1/I2C2 semantics. "software": `new I2C()`, no ACK check. */
  kind?: "hardware" | "software";
  /**
   * Constructors of the realm the firmware runs in (a `vm` context has its own; pass
   * `runtime.realm`), so results and errors pass the device's `instanceof` checks.
   */
  realm?: { Uint8Array: Uint8ArrayConstructor; Error: ErrorConstructor };
  /**
   * Software only: hardware buses whose wires a software bus set up on the same SDA/SCL pins
   * shares, so it reaches the devices attached to them.
   */
  wires?: EmulatedI2C[];
}

/** Espruino's address argument: a number, or `{ address, stop }` to leave the bus claimed. */
type AddressArg = number | { address: number; stop?: boolean };

type WriteData = number | string | ArrayLike<number> | { data: WriteData; count?: number } | WriteData[];

const ESP_ERR_INVALID_STATE = 0x103;

export class EmulatedI2C {
  readonly kind: "hardware" | "software";
  /** Called before every transfer (after routing is known); see I2CFaultHook. */
  fault: I2CFaultHook | undefined;
  /** The options last passed to setup(), or undefined while the bus is not set up. */
  options: { scl?: unknown; sda?: unknown; bitrate?: number } | undefined;
  /**
   * SDA held low (a device hung mid-transfer, a short): the ESP32's controller times out on every
   * transfer, whatever the address; a software bus reads zeros.
   */
  stuck = false;
  private readonly devices = new Map<number, I2CDevice>();
  private readonly realm: { Uint8Array: Uint8ArrayConstructor; Error: ErrorConstructor };
  private readonly wires: EmulatedI2C[];

  constructor(options: EmulatedI2COptions = {}) {
    this.kind = options.kind ?? "hardware";
    this.realm = options.realm ?? { Uint8Array, Error };
    this.wires = options.wires ?? [];
  }

  setup(options: { scl?: unknown; sda?: unknown; bitrate?: number } = {}): void {
    // src/jsi2c.c jsi2cPopulateI2CInfo
    if (options.bitrate !== undefined && options.bitrate < 100) throw new this.realm.Error("Invalid I2C bitrate");
    this.options = { bitrate: 100000, ...options };
  }

  attach(address: number, device: I2CDevice): void {
    checkAddress(address);
    if (this.devices.has(address)) throw new Error(`I2C address 0x${hex(address)} is already taken`);
    this.devices.set(address, device);
  }

  /** Unplug the device at `address`; later transfers to it are not ACKed. */
  detach(address: number): void {
    this.devices.delete(address);
  }

  device(address: number): I2CDevice | undefined {
    return this.devices.get(address);
  }

  writeTo(address: AddressArg, ...data: WriteData[]): void {
    const bytes = toBytes(data);
    if (bytes.length === 0) return;
    const target = this.route("write", addressOf(address), { kind: "write", address: addressOf(address), data: bytes });
    if (target?.write(bytes) === NACK) this.nack("write");
  }

  readFrom(address: AddressArg, quantity: number): Uint8Array {
    if (!(quantity > 0)) return undefined as unknown as Uint8Array;
    const addr = addressOf(address);
    const target = this.route("read", addr, { kind: "read", address: addr, quantity });
    const out = new this.realm.Uint8Array(quantity);
    if (this.held()) return out; // software bus: SDA low, zeros
    if (!target) return out.fill(0xff);
    const got = target.read(quantity);
    // A device that stops sending (or never acknowledged) leaves SDA released: the master clocks in 0xFF.
    out.fill(0xff);
    if (got === NACK) this.nack("read");
    else out.set(got.subarray(0, quantity));
    return out;
  }

  /** A device did not acknowledge: hardware I2C throws as for an absent device; software I2C does not notice. */
  private nack(kind: "write" | "read"): void {
    if (this.kind === "hardware") throw new this.realm.Error(`${kind === "write" ? "jshI2CWrite" : "jshI2CRead"}: slave doesn't ACK the transfer`);
  }

  /** SDA is held low on these wires. */
  private held(): boolean {
    return this.stuck || this.sharedWires()?.stuck === true;
  }

  /** The hardware bus on the same SDA and SCL pins as this software bus, if any. */
  private sharedWires(): EmulatedI2C | undefined {
    const mine = this.options;
    if (!mine) return undefined;
    return this.wires.find((bus) => bus.options && pinNumber(bus.options.sda) === pinNumber(mine.sda) && pinNumber(bus.options.scl) === pinNumber(mine.scl));
  }

  /** Find the device for a transfer, or fail it the way Espruino would. Undefined: no device, no error. */
  private route(kind: "write" | "read", address: number, transfer: I2CTransfer): I2CDevice | undefined {
    const where = kind === "write" ? "jshI2CWrite" : "jshI2CRead";
    if (this.kind === "hardware" && !this.options) {
      throw new this.realm.Error(`${where}:, unknown error code ${ESP_ERR_INVALID_STATE}`);
    }
    const injected = this.fault?.(transfer);
    if (injected) throw typeof injected === "string" ? new this.realm.Error(injected) : injected;
    // targets/esp32/jshardwareI2c.c: i2c_master_cmd_begin gives ESP_ERR_TIMEOUT (after its 1 s wait)
    if (this.held() && this.kind === "hardware") throw new this.realm.Error(`${where}:, Operation timeout because the bus is busy`);
    if (this.held()) return undefined;
    const device = this.devices.get(address & 0x7f) ?? this.sharedWires()?.device(address & 0x7f);
    if (!device && this.kind === "hardware") throw new this.realm.Error(`${where}: slave doesn't ACK the transfer`);
    return device;
  }
}

function pinNumber(pin: unknown): number {
  return typeof pin === "number" ? pin : parseInt(String(pin).replace(/^D/, ""), 10);
}

function addressOf(address: AddressArg): number {
  return typeof address === "object" ? address.address | 0 : address | 0;
}

function checkAddress(address: number): void {
  if (!(address >= 0 && address <= 0x7f && address === Math.floor(address))) {
    throw new RangeError(`I2C address must be 7-bit, got ${address}`);
  }
}

/** Flatten writeTo's arguments as Espruino's jsvIterateCallback does: numbers, strings, arrays, typed arrays, {data, count}. */
function toBytes(data: WriteData[]): Uint8Array {
  const out: number[] = [];
  const visit = (item: WriteData): void => {
    if (typeof item === "number") out.push(item & 0xff);
    else if (typeof item === "string") for (let i = 0; i < item.length; i++) out.push(item.charCodeAt(i) & 0xff);
    else if (Array.isArray(item)) item.forEach(visit);
    else if (ArrayBuffer.isView(item) || (typeof item === "object" && "length" in item)) {
      const list = item as ArrayLike<number>;
      for (let i = 0; i < list.length; i++) out.push(list[i] & 0xff);
    } else if (typeof item === "object" && "data" in item) {
      for (let n = item.count ?? 1; n > 0; n--) visit(item.data);
    }
  };
  data.forEach(visit);
  return Uint8Array.from(out);
}

function hex(n: number): string {
  return n.toString(16).padStart(2, "0");
}

/** The parts of a host-sim Runtime that installI2C needs. */
export interface I2CHost {
  realm: { Uint8Array: Uint8ArrayConstructor; Error: ErrorConstructor };
  defineGlobal(name: string, value: unknown): void;
}

/**
 * Give a simulated device ESP32's two hardware buses as the globals I2C1 and I2C2 (not set up,
 * as after boot). Attach device models to the returned buses. Usable as a runtime plugin:
 * `plugins: [(rt) => { buses = installI2C(rt) }]`.
 */
export function installI2C(host: I2CHost): { I2C1: EmulatedI2C; I2C2: EmulatedI2C } {
  const buses = { I2C1: new EmulatedI2C({ realm: host.realm }), I2C2: new EmulatedI2C({ realm: host.realm }) };
  host.defineGlobal("I2C1", buses.I2C1);
  host.defineGlobal("I2C2", buses.I2C2);
  // `new I2C()`: a software bus; set up on the pins of I2C1 or I2C2 it reaches their devices
  host.defineGlobal("I2C", function I2C() {
    return new EmulatedI2C({ kind: "software", realm: host.realm, wires: [buses.I2C1, buses.I2C2] });
  });
  return buses;
}
