// Declarations for the Espruino globals and built-in modules the firmware uses.
// Reference: https://www.espruino.com/Reference (2v29). Only what Wisp touches is declared,
// so using anything else fails the type check before it fails on the device.

/** Espruino gives every object these EventEmitter methods (listeners live in hidden `#on<event>` properties). */
interface Object {
  on(event: string, listener: (...args: any[]) => void): void;
  emit(event: string, ...args: any[]): void;
  removeListener(event: string, listener: (...args: any[]) => void): void;
  removeAllListeners(event?: string): void;
}

declare namespace Espruino {
  /** A socket from require("net") or require("tls"): data in and out as strings whose chars are bytes. */
  interface Socket {
    write(data: string): boolean;
    end(): void;
    on(event: "data", listener: (data: string) => void): void;
    on(event: "close", listener: (hadError?: boolean) => void): void;
    on(event: "error", listener: (err: { code?: number; message: string } | string) => void): void;
    on(event: "connect" | "drain" | "end", listener: () => void): void;
  }
  interface NetConnectOptions {
    host: string;
    port: number;
  }
  interface TlsConnectOptions extends NetConnectOptions {
    ca?: string;
    cert?: string;
    key?: string;
  }
  interface Net {
    connect(options: NetConnectOptions, callback?: () => void): Socket;
  }
  interface Tls {
    connect(options: TlsConnectOptions, callback?: () => void): Socket;
  }
  interface Storage {
    read(name: string, offset?: number, length?: number): string | undefined;
    readJSON(name: string, noExceptions?: boolean): any;
    write(name: string, data: string, offset?: number, size?: number): boolean;
    writeJSON(name: string, data: any): boolean;
    erase(name: string): void;
    list(pattern?: RegExp | string, filter?: { sf: boolean }): string[];
    /** A StorageFile: appended to in chunks, read line by line (src/jswrap_storage.c). */
    open(name: string, mode: "r" | "w" | "a"): any;
    getFree(): number;
  }
  interface Wifi {
    connect(ssid: string, options: { password?: string }, callback: (err: string | null) => void): void;
    disconnect(callback?: () => void): void;
    getStatus(): { station: string };
    getIP(): { ip: string; mac?: string };
    on(event: "connected" | "disconnected", listener: (details: any) => void): void;
  }
  interface I2C {
    setup(options: { scl: Pin | number; sda: Pin | number; bitrate?: number }): void;
    writeTo(address: number, data: number | number[] | Uint8Array | string): void;
    readFrom(address: number, quantity: number): Uint8Array;
  }
  /** https://www.espruino.com/Reference#OneWire; drivers/bus.ts OneWireBus is its shape. */
  interface OneWire {
    reset(): boolean;
    select(rom: string): void;
    skip(): void;
    write(data: number | number[], power?: boolean): void;
    read(): number;
    read(count: number): Uint8Array;
    search(command?: number): string[];
  }
  interface ESP32 {
    deepSleep(us: number): void;
  }
  interface Modules {
    addCached(name: string, source: string | Function): void;
    removeCached(name: string): void;
    getCached(): string[];
  }
}

interface Pin {
  read(): boolean;
  write(value: boolean): void;
}

declare function require(name: "net"): Espruino.Net;
declare function require(name: "tls"): Espruino.Tls;
declare function require(name: "Storage"): Espruino.Storage;
declare function require(name: "Wifi"): Espruino.Wifi;
declare function require(name: "ESP32"): Espruino.ESP32;
declare function require(name: string): any;

declare var exports: any;
declare var module: { exports: any };
declare var Modules: Espruino.Modules;
declare var I2C1: Espruino.I2C;
declare var I2C: { new (): Espruino.I2C };
declare var OneWire: { new (pin: Pin | number): Espruino.OneWire };
/** 0..1 of the ADC's full scale (ESP32: raw / 4096, ADC1 pins only, NaN elsewhere). */
declare function analogRead(pin: Pin | number): number;

declare var E: {
  toString(...args: any[]): string;
  toUint8Array(...args: any[]): Uint8Array;
  CRC32(data: string | Uint8Array | number[]): number;
  getSizeOf(v: any, depth?: number): number;
  on(event: "init" | "kill", listener: () => void): void;
};

declare function getSerial(): string;
declare function getTime(): number;
/** Sets the time of day, in seconds since 1970; Espruino moves its timers with it. */
declare function setTime(seconds: number): void;
declare function reset(clearFlash?: boolean): void;
declare function load(file?: string): void;
/** Base64 to a string whose chars are bytes (Espruino builtin; used for DER certificates). */
declare function atob(base64: string): string;
/** A string whose chars are bytes to base64 (Espruino builtin). */
declare function btoa(bytes: string): string;
declare function setTimeout(callback: (...args: any[]) => void, ms?: number, ...args: any[]): number;
declare function setInterval(callback: (...args: any[]) => void, ms?: number, ...args: any[]): number;
declare function clearTimeout(id?: number): void;
declare function clearInterval(id?: number): void;
declare var console: { log(...args: any[]): void };
