// require("net") and require("tls") for a simulated device, over node:net and node:tls, behaving as
// Espruino's sockets do (libs/network/socketserver.c, jswrap_net.c, socketerrors.c, network.c; 2v29):
// - connect(options, callback) returns the socket at once; `callback` is the first "connect"
//   listener and gets the socket. After "connect", "drain" follows when nothing is waiting to be sent.
// - Data arrives as "data" events with strings whose chars are bytes. With no "data" listener it is
//   kept, and delivered when one is added (or taken with read()).
// - write(data) sends String(data) one byte per char (a char above 255 sends its low byte, as on the
//   8-bit-string ESP32 build) and returns false, as Espruino does "for node.js compatibility";
//   "drain" fires when everything written has been sent. Writing after end() or close throws
//   "This socket is closed". Like Espruino, write() never refuses data: what the network does not
//   take waits in the socket (on a board, in JsVars, until memory runs out; `SocketInfo.unsent` here),
//   and "drain" stops coming while the peer does not read (measured on 2v29: drains stop once the
//   kernel's buffers are full, about 2.7 MB on loopback, and resume when the peer reads).
// - end() closes the socket fully once pending data is sent (Espruino does not half-close).
// - Closing: "error" {code, message} (only for real errors, codes from socketerrors.h), then "end",
//   then "close" with hadError. All are queued events, so listeners never run inside Node's callbacks
//   and a throwing listener is reported on the device console.
// - tls: `ca`, `cert`, `key` are PEM or DER strings (the ESP32 build wants DER), names of Storage files (strings of at most 100 chars,
//   as Espruino's decode_certificate_var), or functions returning either. The server is verified
//   against `ca` when one is given (the name checked is `host`); without `ca` it is not verified,
//   like Espruino's mbedTLS setup.

import nodeNet from "node:net";
import nodeTls from "node:tls";
import { bufferToString, stringToBuffer } from "./runtime/bytes.ts";
import type { Runtime } from "./runtime.ts";

/** Espruino's socket error codes (libs/network/socketerrors.h). */
export const SocketError = {
  CLOSED: -1,
  MEM: -2,
  TIMEOUT: -3,
  NO_ROUTE: -4,
  BUSY: -5,
  NOT_FOUND: -6,
  MAX_SOCK: -7,
  UNSENT_DATA: -8,
  RESET: -9,
  UNKNOWN: -10,
  NO_CONN: -11,
  BAD_ARG: -12,
  SSL_HAND: -13,
  SSL_INVALID: -14,
  NO_RESP: -15,
} as const;

const MESSAGES = [
  "connection closed", "out of memory", "timeout", "no route", "busy", "not found", "max sockets",
  "unsent data", "connection reset", "unknown error", "no connection", "bad argument",
  "SSL handshake failed", "invalid SSL data", "no response",
];

/** socketErrorString: the message Espruino pairs with a code. */
export function socketErrorMessage(code: number): string {
  const index = -1 - (code < SocketError.NO_RESP ? SocketError.UNKNOWN : code);
  return MESSAGES[index] ?? MESSAGES[-1 - SocketError.UNKNOWN]!;
}

const NODE_CODES: Record<string, number> = {
  ECONNREFUSED: SocketError.RESET,
  ECONNRESET: SocketError.RESET,
  EPIPE: SocketError.RESET,
  ECONNABORTED: SocketError.RESET,
  ETIMEDOUT: SocketError.TIMEOUT,
  ENOTFOUND: SocketError.NOT_FOUND,
  EAI_AGAIN: SocketError.NOT_FOUND,
  EAI_FAIL: SocketError.NOT_FOUND,
  EHOSTUNREACH: SocketError.NO_ROUTE,
  ENETUNREACH: SocketError.NO_ROUTE,
  ENETDOWN: SocketError.NO_ROUTE,
};

function errorCode(err: NodeJS.ErrnoException, isTls: boolean, secured: boolean): number {
  const mapped = err.code ? NODE_CODES[err.code] : undefined;
  if (mapped !== undefined) return mapped;
  if (isTls) return secured ? SocketError.SSL_INVALID : SocketError.SSL_HAND;
  return SocketError.UNKNOWN;
}

/** What the device sees of one connection, for tests and device models. */
export interface SocketInfo {
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
  readonly connected: boolean;
  /** The TCP connect (and for TLS the handshake) is under way. */
  readonly connecting: boolean;
  /** The local port of the connection (undefined before it has one). */
  readonly localPort: number | undefined;
  /** Bytes the device wrote that the network has not taken yet (Espruino's send buffer). */
  readonly unsent: number;
  /** Bytes handed to the network so far, and bytes received from it (for TLS, the TLS records). */
  readonly sent: number;
  readonly received: number;
  /** Close the connection from the network side (as a dropped link would). */
  destroy(error?: Error): void;
}

/** Per-device network state: Wi-Fi models switch `online` and drop sockets with closeAll(). */
export interface NetState {
  /** When false, connect() throws "Not connected to the internet" (network.c) and write() returns false. */
  online: boolean;
  readonly sockets: ReadonlySet<SocketInfo>;
  /** Drop every open connection, as Espruino does when the network goes down. */
  closeAll(): void;
}

interface NetStateImpl extends NetState {
  sockets: Set<SocketInfo>;
}

const states = new WeakMap<Runtime, NetStateImpl>();

export function netState(runtime: Runtime): NetState {
  let state = states.get(runtime);
  if (!state) {
    const sockets = new Set<SocketInfo>();
    state = {
      online: true,
      sockets,
      closeAll: () => {
        for (const s of [...sockets]) s.destroy();
      },
    };
    states.set(runtime, state);
  }
  return state;
}

export interface TlsConnectOptions {
  host?: string;
  port?: number;
  ca?: unknown;
  cert?: unknown;
  key?: unknown;
}

type DeviceCallback = (...args: unknown[]) => unknown;

export function createNetModule(runtime: Runtime): object {
  return runtime.newObject({
    connect: (options: unknown, callback?: unknown) => connect(runtime, options, callback, false),
  });
}

export function createTlsModule(runtime: Runtime): object {
  return runtime.newObject({
    connect: (options: unknown, callback?: unknown) => connect(runtime, options, callback, true),
  });
}

const PEM_LABEL = { ca: "CERTIFICATE", cert: "CERTIFICATE", key: "PRIVATE KEY" } as const;
const MAX_CERT_FILENAME = 100;

/** decode_certificate_var: a function is called; a short string names a Storage file. */
function certificate(runtime: Runtime, value: unknown, kind: keyof typeof PEM_LABEL): string | undefined {
  if (value === undefined || value === null) return undefined;
  let v = typeof value === "function" ? (value as DeviceCallback)() : value;
  if (typeof v === "string" && v.length <= MAX_CERT_FILENAME && runtime.storage) {
    const file = runtime.storage.read(v);
    if (file !== undefined) {
      // Espruino keeps only the base64 body of a file; a bare body is wrapped back into PEM for Node.
      v = file.includes("-----BEGIN") ? file : `-----BEGIN ${PEM_LABEL[kind]}-----\n${file.trim()}\n-----END ${PEM_LABEL[kind]}-----\n`;
    }
  }
  const text = String(v);
  // DER, as Espruino's mbedTLS build takes it (`atob` of the PEM body): turned into PEM for Node.
  if (text.includes("-----BEGIN")) return text;
  return `-----BEGIN ${PEM_LABEL[kind]}-----\n${Buffer.from(text, "latin1").toString("base64")}\n-----END ${PEM_LABEL[kind]}-----\n`;
}

function connect(runtime: Runtime, options: unknown, callback: unknown, isTls: boolean): object {
  const { realm } = runtime;
  if (typeof options !== "object" || options === null) {
    throw new realm.Error(`Expecting Options to be an Object but it was ${typeof options}`);
  }
  if (callback !== undefined && typeof callback !== "function") {
    throw new realm.Error(`Expecting Callback Function but got ${typeof callback}`);
  }
  const state = netState(runtime) as NetStateImpl;
  if (!state.online) throw new realm.Error("Not connected to the internet");
  const opts = options as TlsConnectOptions;
  const host = opts.host === undefined ? "127.0.0.1" : String(opts.host);
  const port = Number(opts.port) || (isTls ? 443 : 0);

  let raw: nodeNet.Socket;
  if (isTls) {
    const ca = certificate(runtime, opts.ca, "ca");
    const tlsOptions: nodeTls.ConnectionOptions = {
      host,
      port,
      ca,
      cert: certificate(runtime, opts.cert, "cert"),
      key: certificate(runtime, opts.key, "key"),
      rejectUnauthorized: ca !== undefined,
    };
    // SNI must be a DNS name (RFC 6066 §3); the identity check still uses `host`.
    if (!nodeNet.isIP(host)) tlsOptions.servername = host;
    raw = nodeTls.connect(tlsOptions);
  } else {
    raw = nodeNet.connect({ host, port });
  }
  // no Nagle delay in real time (the simulation moves node time when socket IO is quiet)
  raw.setNoDelay(true);

  let connected = false;
  let closing = false;
  let closed = false;
  let pendingWrites = 0;
  let failure: NodeJS.ErrnoException | undefined;

  const socket = runtime.newObject({
    write(data: unknown): boolean {
      if (closing || closed) throw new realm.Error("This socket is closed");
      if (!state.online) return false;
      if (data === undefined) return false;
      pendingWrites++;
      raw.write(stringToBuffer(String(data)), () => {
        pendingWrites--;
        if (pendingWrites === 0 && !closing && !closed) runtime.emit(socket, "drain", socket);
      });
      return false;
    },
    end(data?: unknown): void {
      if (data !== undefined) socket.write(data);
      if (closing || closed) return;
      closing = true;
      if (!connected && pendingWrites === 0) raw.destroy();
      else raw.end(() => raw.destroy());
    },
    available(): number {
      return bufferedData().length;
    },
    read(chars?: unknown): string {
      const data = bufferedData();
      const n = chars === undefined ? data.length : Math.max(0, Number(chars) | 0);
      setBuffered(data.slice(n));
      return data.slice(0, n);
    },
  });

  // Data that arrived with nobody listening waits in the hidden "#buffer" property, which the
  // device's on("data") hands over (see runtime/events.ts).
  const bufferedData = (): string => {
    const b = (socket as Record<string, unknown>)["#buffer"];
    return typeof b === "string" ? b : "";
  };
  const setBuffered = (data: string): void => {
    if (data) Object.defineProperty(socket, "#buffer", { value: data, writable: true, configurable: true, enumerable: false });
    else delete (socket as Record<string, unknown>)["#buffer"];
  };

  if (callback !== undefined) (socket as unknown as { on(e: string, l: unknown): void }).on("connect", callback);

  const info: SocketInfo = {
    host,
    port,
    tls: isTls,
    get connected() {
      return connected && !closed;
    },
    get connecting() {
      return !connected && !closed;
    },
    get localPort() {
      return raw.localPort;
    },
    get unsent() {
      return raw.writableLength;
    },
    // Node counts what waits in the socket's queue as written: only what left it counts as sent
    get sent() {
      return (raw.bytesWritten ?? 0) - raw.writableLength;
    },
    get received() {
      return raw.bytesRead;
    },
    destroy: (error?: Error) => {
      if (error) failure = error as NodeJS.ErrnoException;
      raw.destroy();
    },
  };
  state.sockets.add(info);
  const unregister = runtime.onDispose(() => {
    closed = true;
    raw.destroy();
  });

  raw.on(isTls ? "secureConnect" : "connect", () => {
    connected = true;
    runtime.emit(socket, "connect", socket);
    if (pendingWrites === 0) runtime.emit(socket, "drain", socket);
  });
  raw.on("data", (chunk: Buffer) => {
    const data = bufferToString(chunk);
    if (runtime.listeners(socket, "data")) runtime.emit(socket, "data", data);
    else setBuffered(bufferedData() + data);
  });
  raw.on("error", (err: NodeJS.ErrnoException) => {
    failure ??= err;
  });
  raw.on("close", () => {
    if (closed) return;
    closed = true;
    state.sockets.delete(info);
    unregister();
    const code = failure ? errorCode(failure, isTls, connected) : 0;
    if (failure && isTls && code === SocketError.SSL_HAND) runtime.print(`TLS handshake failed: ${failure.message}`);
    if (code < 0 && code !== SocketError.CLOSED) {
      runtime.emit(socket, "error", runtime.newObject({ code, message: socketErrorMessage(code) }));
    }
    runtime.emit(socket, "end");
    runtime.emit(socket, "close", code < 0);
  });
  return socket;
}
