// A simulated Wi-Fi access point shared by the nodes of a simulation, and each node's station
// (its ESP32 radio), exposed to the firmware as Espruino's `require("Wifi")`.
//
// Behaviour follows Espruino's ESP32 port (libs/network/esp32/jswrap_esp32_network.c, 2v29):
// - connect(ssid, {password}, cb): the callback gets null once the station has an IP (GOT_IP),
//   or the ESP-IDF reason text on failure ("NO_AP_FOUND", "AUTH_FAIL"), after the driver's retries.
//   Events: "associated" then "connected" ({ip, netmask, gw}) on success; "disconnected"
//   ({ssid, mac, reason, msg}) on failure, on disconnect() and when the access point drops.
// - ESP32 networking stays "online" for Espruino's socket layer (networkState is set once at
//   init), so require("net").connect never throws for lack of Wi-Fi: without a link the socket
//   fails with an "error" ("no route") then "close". Open sockets close when the link drops.
// - The radio is hardware: reset()/load() keep the station connected; power-off resets it.
// getStatus().station is "connected", "connecting" or "off" (the contract in /tmp/node-contract.md).

import { EventEmitter } from "node:events";
import { createNetModule, createTlsModule, netState } from "./net.ts";
import type { Clock, Runtime } from "./runtime.ts";
import { createDgramModule, UdpServices } from "./udp.ts";

/** ESP-IDF wifi_err_reason_t values the simulation produces. */
export const WifiReason = {
  ASSOC_LEAVE: 8,
  BEACON_TIMEOUT: 200,
  NO_AP_FOUND: 201,
  AUTH_FAIL: 202,
} as const;
type ReasonName = keyof typeof WifiReason;

export interface AccessPointOptions {
  ssid?: string;
  password?: string;
}

/** The network every node joins. Emits "down" and "up". */
export class AccessPoint extends EventEmitter {
  ssid: string;
  password: string;
  private isUp = true;
  readonly bssid = "02:00:5e:00:53:01";
  /** What answers datagrams on this network (the simulation's SNTP server), by port. */
  readonly udp = new UdpServices();

  constructor(options: AccessPointOptions = {}) {
    super();
    this.setMaxListeners(0);
    this.ssid = options.ssid ?? "wisp-sim";
    this.password = options.password ?? "wisp-sim-password";
  }

  get up(): boolean {
    return this.isUp;
  }

  /** Switch the access point off: every associated station loses its link at once. */
  down(): void {
    if (!this.isUp) return;
    this.isUp = false;
    this.emit("down");
  }

  restore(): void {
    if (this.isUp) return;
    this.isUp = true;
    this.emit("up");
  }

  /** Addresses ("host:port") the network has no route to (fault "broker-unreachable"), each with its count of cuts. */
  readonly unreachable = new Map<string, number>();

  /** Cut the route to `host:port`: its connections drop, new ones fail, until as many reach() calls. */
  cut(host: string, port: number): void {
    const key = `${host}:${port}`;
    this.unreachable.set(key, (this.unreachable.get(key) ?? 0) + 1);
    this.emit("cut", host, port);
  }

  reach(host: string, port: number): void {
    const key = `${host}:${port}`;
    const n = (this.unreachable.get(key) ?? 0) - 1;
    if (n > 0) this.unreachable.set(key, n);
    else this.unreachable.delete(key);
  }
}

export type StationState = "off" | "connecting" | "connected";

export interface StationOptions {
  ap: AccessPoint;
  clock: Clock;
  /** "24:0a:c4:12:34:56". */
  mac: string;
  ip: string;
  /** Association + DHCP time, ms (default 1500). */
  joinMs?: number;
  /** Time until the driver gives up after its retries, ms (default 4000). */
  failMs?: number;
  /** Receives state changes, for the view. */
  onChange?: (state: StationState) => void;
}

const NETMASK = "255.255.0.0";
const GATEWAY = "10.0.0.1";

/** One node's radio. Outlives soft resets; powerOff() returns it to "off". */
export class WifiStation {
  readonly mac: string;
  readonly ip: string;
  state: StationState = "off";
  /** Reason of the last failure or drop ("NO_AP_FOUND", ...), if any. */
  lastReason: ReasonName | undefined;
  private readonly options: StationOptions;
  private ssid = "";
  private pending: { timer: unknown; callback: unknown; runtime: Runtime | undefined } | undefined;
  private runtime: Runtime | undefined;
  private module: object | undefined;
  private readonly onApDown = () => this.lose("BEACON_TIMEOUT");
  private readonly onCut = (host: string, port: number) => {
    if (!this.runtime) return;
    for (const s of [...netState(this.runtime).sockets]) {
      if (s.host === host && s.port === port) s.destroy(Object.assign(new Error("no route to host"), { code: "EHOSTUNREACH" }));
    }
  };

  constructor(options: StationOptions) {
    this.options = options;
    this.mac = options.mac;
    this.ip = options.ip;
    options.ap.on("down", this.onApDown);
    options.ap.on("cut", this.onCut);
  }

  get connected(): boolean {
    return this.state === "connected";
  }

  /** Runtime plugin: Wifi, and net/tls that fail without a link. */
  plugin(): (runtime: Runtime) => void {
    return (runtime) => {
      runtime.defineModule("Wifi", (rt) => this.bind(rt));
      runtime.defineModule("net", (rt) => this.guard(rt, createNetModule(rt)));
      runtime.defineModule("tls", (rt) => this.guard(rt, createTlsModule(rt)));
      runtime.defineModule("dgram", (rt) => createDgramModule(rt, { services: this.options.ap.udp, clock: this.options.clock, linked: () => this.connected }));
    };
  }

  /** Power cut or deep sleep: the radio stops without telling anyone. */
  powerOff(): void {
    this.cancelPending();
    this.setState("off");
    this.runtime = undefined;
    this.module = undefined;
  }

  /** Stop listening to the access point (end of simulation). */
  dispose(): void {
    this.powerOff();
    this.options.ap.off("down", this.onApDown);
    this.options.ap.off("cut", this.onCut);
  }

  private bind(runtime: Runtime): object {
    this.runtime = runtime;
    runtime.onDispose(() => {
      if (this.runtime === runtime) {
        this.runtime = undefined;
        this.module = undefined;
      }
    });
    const { realm } = runtime;
    const wifi = runtime.newObject({
      connect: (ssid: unknown, options?: unknown, callback?: unknown) => {
        if (typeof ssid !== "string") throw new realm.Error("No SSID provided");
        if (options !== undefined && options !== null && typeof options !== "object") {
          throw new realm.Error(`Expecting options to be an Object but it was ${typeof options}`);
        }
        if (callback !== undefined && typeof callback !== "function") {
          throw new realm.Error(`Expecting callback Function but got ${typeof callback}`);
        }
        const password = (options as { password?: unknown } | undefined)?.password;
        if (password !== undefined && typeof password !== "string") {
          throw new realm.Error(`Expecting options.password to be a string but got ${typeof password}`);
        }
        this.connect(runtime, ssid.slice(0, 32), password ?? "", callback);
      },
      disconnect: (callback?: unknown) => {
        this.cancelPending();
        const was = this.state;
        this.setState("off");
        if (was === "connected") netState(runtime).closeAll();
        if (typeof callback === "function") runtime.queue(wifi, callback, []);
        this.emitDisconnected("ASSOC_LEAVE");
      },
      getStatus: (callback?: unknown) => {
        const status = runtime.newObject({
          station: this.state,
          ssid: this.state === "connected" ? this.ssid : undefined,
          mode: this.state === "off" ? "NULL" : "STA",
          powersave: "none",
        });
        if (this.state === "connected") Object.assign(status, { bssid: this.options.ap.bssid, channel: 6, rssi: -52 });
        if (typeof callback === "function") runtime.queue(wifi, callback, [status]);
        return status;
      },
      getIP: (callback?: unknown) => {
        const up = this.state === "connected";
        const info = runtime.newObject({ ip: up ? this.ip : "0.0.0.0", netmask: up ? NETMASK : "0.0.0.0", gw: up ? GATEWAY : "0.0.0.0", mac: this.mac });
        if (typeof callback === "function") runtime.queue(wifi, callback, [info]);
        return info;
      },
      getDetails: (callback?: unknown) => {
        const details = runtime.newObject({ status: this.state, ssid: this.ssid || undefined });
        if (typeof callback === "function") runtime.queue(wifi, callback, [details]);
        return details;
      },
      scan: (callback: unknown) => {
        const ap = this.options.ap;
        const found = ap.up ? [runtime.newObject({ ssid: ap.ssid, mac: ap.bssid, authMode: "wpa2", channel: 6, rssi: -52 })] : [];
        this.options.clock.setTimeout(() => runtime.queue(wifi, callback, [runtime.newArray(found)]), 1000);
      },
      save: () => undefined,
      restore: () => undefined,
      setHostname: () => undefined,
      getHostname: () => `espressif`,
      setSNTP: () => undefined,
      setConfig: () => undefined,
    });
    this.module = wifi;
    return wifi;
  }

  private connect(runtime: Runtime, ssid: string, password: string, callback: unknown): void {
    const { ap, clock } = this.options;
    // ESP-IDF drops a current association silently (s_retry_num) before joining again.
    if (this.state === "connected") netState(runtime).closeAll();
    this.cancelPending();
    this.ssid = ssid;
    this.setState("connecting");
    const succeeds = ap.up && ssid === ap.ssid && password === ap.password;
    const delay = succeeds ? (this.options.joinMs ?? 1500) : (this.options.failMs ?? 4000);
    const timer = clock.setTimeout(() => {
      this.pending = undefined;
      // The access point may have gone while the driver was associating.
      const reason: ReasonName | undefined = !ap.up || ssid !== ap.ssid ? "NO_AP_FOUND" : password !== ap.password ? "AUTH_FAIL" : undefined;
      const target = this.runtime;
      if (reason) {
        this.lastReason = reason;
        this.setState("off");
        this.emitDisconnected(reason);
        if (target === runtime && typeof callback === "function") runtime.queue(this.module!, callback, [reason]);
        return;
      }
      this.setState("connected");
      if (!target || !this.module) return;
      target.emit(this.module, "associated", target.newObject({ ssid, mac: ap.bssid, channel: "6" }));
      if (target === runtime && typeof callback === "function") runtime.queue(this.module, callback, [null]);
      target.emit(this.module, "connected", target.newObject({ ip: this.ip, netmask: NETMASK, gw: GATEWAY }));
    }, delay);
    this.pending = { timer, callback, runtime };
  }

  /** The link is gone (access point down): sockets close, "disconnected" fires. */
  private lose(reason: ReasonName): void {
    if (this.state === "off") return;
    const wasConnecting = this.state === "connecting";
    if (wasConnecting) return; // the pending join sees the access point missing when it completes
    this.lastReason = reason;
    this.setState("off");
    if (this.runtime) netState(this.runtime).closeAll();
    this.emitDisconnected(reason);
  }

  private emitDisconnected(reason: ReasonName): void {
    const rt = this.runtime;
    if (!rt || !this.module) return;
    rt.emit(this.module, "disconnected", rt.newObject({ ssid: this.ssid, mac: this.options.ap.bssid, reason: String(WifiReason[reason]), msg: reason }));
  }

  private cancelPending(): void {
    if (this.pending) this.options.clock.clearTimeout(this.pending.timer);
    this.pending = undefined;
  }

  private setState(state: StationState): void {
    if (this.state === state) return;
    this.state = state;
    this.options.onChange?.(state);
  }

  /** net/tls whose connect fails like lwIP without a route while the station has no link. */
  private guard(runtime: Runtime, module: object): object {
    const base = module as { connect(options: unknown, callback?: unknown): object };
    return runtime.newObject({
      connect: (options: unknown, callback?: unknown) => {
        const socket = base.connect(options, callback);
        const o = (options ?? {}) as { host?: unknown; port?: unknown };
        if (!this.connected || this.options.ap.unreachable.has(`${String(o.host)}:${Number(o.port)}`)) {
          const sockets = [...netState(runtime).sockets];
          const info = sockets[sockets.length - 1];
          info?.destroy(Object.assign(new Error("no route to host"), { code: "EHOSTUNREACH" }));
        }
        return socket;
      },
    });
  }
}

/** ESP32 Espruino's getSerial(): the 6-byte base MAC as hex, a dash after the fourth byte. */
export function serialFromMac(mac: string): string {
  const hex = mac.replace(/:/g, "").toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8)}`;
}

/** Espressif OUI 24:0a:c4 plus three bytes from the seed and index: unique for 2^24 nodes. */
export function macFor(index: number, seed = 0): string {
  const base = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) >>> 8) & 0xffffff;
  const low = (base + index) & 0xffffff;
  const bytes = [0x24, 0x0a, 0xc4, (low >> 16) & 0xff, (low >> 8) & 0xff, low & 0xff];
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/** 10.0.0.2 onwards (gateway 10.0.0.1, /16). */
export function ipFor(index: number): string {
  const n = index + 2;
  return `10.0.${(n >> 8) & 0xff}.${n & 0xff}`;
}
