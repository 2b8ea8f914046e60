// UDP on the simulated network: Espruino's `require("dgram")` for a node, and the services that
// answer datagrams there (an SNTP server, from the simulation's clock).
//
// dgram follows libs/network/jswrap_net.c and socketserver.c (2v29): createSocket(type, callback)
// gives a dgramSocket; send(msg, port, address) or send(msg, offset, length, port, address) appends
// the datagram to the socket's send buffer, sent from the idle loop; a datagram that arrives is a
// "message" event (msg, { address, port, size }). A send that fails (no route: the station has no
// link) closes the socket: "error" ({ code, message }) then "close". UDP loses what nobody answers.

import { SocketError, socketErrorMessage } from "./net.ts";
import type { Clock, Runtime } from "./runtime.ts";

/** One datagram arriving at a service: answer with `reply` (or not: UDP). */
export type UdpService = (data: Buffer, reply: (data: Buffer) => void) => void;

/** The UDP services of a network, by port (any host name reaches them: the simulation has one of each). */
export class UdpServices {
  readonly byPort = new Map<number, UdpService>();
}

/** Address the services answer from (the simulated network's NTP server, say). */
const SERVICE_ADDRESS = "10.0.0.1";
/** One way through the simulated network, ms. */
const LATENCY_MS = 15;

export interface DgramOptions {
  services: UdpServices;
  clock: Clock;
  /** The station has a link now. */
  linked(): boolean;
}

/** require("dgram") for `runtime`. */
export function createDgramModule(runtime: Runtime, options: DgramOptions): object {
  const { realm } = runtime;
  return runtime.newObject({
    createSocket: (type: unknown, callback?: unknown) => {
      let open = true;
      const socket = runtime.newObject({}) as Record<string, unknown>;
      const closeWith = (code?: number) => {
        if (!open) return;
        open = false;
        if (code !== undefined) runtime.emit(socket, "error", runtime.newObject({ code, message: socketErrorMessage(code) }));
        runtime.emit(socket, "close", code !== undefined);
      };
      Object.assign(socket, {
        send: (buffer: unknown, offset: unknown, length: unknown, port?: unknown, address?: unknown) => {
          if (!open) throw new realm.Error("This socket is closed");
          let data = Buffer.from(String(buffer), "latin1");
          let toPort = offset;
          if (typeof port === "number" || (typeof port === "string" && port !== "" && !Number.isNaN(Number(port)))) {
            data = data.subarray(Number(offset) | 0, (Number(offset) | 0) + (Number(length) | 0));
            toPort = port;
          } else address = length;
          void address; // every host name reaches the simulated network's services
          if (!options.linked()) {
            // lwIP has no route: the idle loop's send fails and the connection closes with the error
            options.clock.setTimeout(() => closeWith(SocketError.NO_ROUTE), 0);
            return;
          }
          const service = options.services.byPort.get(Number(toPort) & 0xffff);
          if (!service) return;
          options.clock.setTimeout(() => {
            service(data, (answer) => {
              options.clock.setTimeout(() => {
                if (!open || runtime.disposed || !options.linked()) return;
                const msg = answer.toString("latin1");
                runtime.emit(socket, "message", msg, runtime.newObject({ address: SERVICE_ADDRESS, port: Number(toPort), size: answer.length }));
              }, LATENCY_MS);
            });
          }, LATENCY_MS);
        },
        bind: (_port: unknown, cb?: unknown) => {
          if (typeof cb === "function") runtime.queue(socket, cb, [socket]);
          return socket;
        },
        close: () => closeWith(),
        addMembership: () => undefined,
      });
      void type;
      void callback;
      runtime.onDispose(() => {
        open = false;
      });
      return socket;
    },
  });
}

/** Seconds from 1900 (NTP's era 0) to 1970. */
const NTP_UNIX_OFFSET = 2208988800;

export interface SntpServerOptions {
  /** The true time, ms since 1970. */
  now(): number;
}

/**
 * An SNTPv4 server (RFC 4330 section 5): answers a client request (mode 3) with mode 4, stratum 1,
 * and the receive and transmit timestamps of `now()`; the client's transmit timestamp comes back as
 * the originate timestamp. `reachable = false` drops every request (scenario fault "sntp-down").
 */
export class SntpServer {
  reachable = true;
  requests = 0;

  constructor(private readonly options: SntpServerOptions) {}

  readonly service: UdpService = (data, reply) => {
    this.requests++;
    if (!this.reachable || data.length < 48 || (data[0]! & 7) !== 3) return;
    const out = Buffer.alloc(48);
    const version = (data[0]! >> 3) & 7;
    out[0] = (version << 3) | 4; // LI 0, the client's version, mode 4 (server)
    out[1] = 1; // stratum 1: a primary reference
    out[2] = data[2]!; // poll
    out[3] = 0xec; // precision about 2^-20 s
    out.write("GPS\0", 12, "latin1"); // reference id of a stratum 1 server
    data.copy(out, 24, 40, 48); // originate = the client's transmit
    const t = this.options.now();
    writeTimestamp(out, 16, t);
    writeTimestamp(out, 32, t);
    writeTimestamp(out, 40, t);
    reply(out);
  };
}

function writeTimestamp(out: Buffer, at: number, ms: number): void {
  const seconds = Math.floor(ms / 1000) + NTP_UNIX_OFFSET;
  out.writeUInt32BE(seconds % 2 ** 32, at); // era 1 from 2036 wraps as RFC 4330 section 3 says
  out.writeUInt32BE(Math.floor(((ms % 1000) / 1000) * 2 ** 32), at + 4);
}
