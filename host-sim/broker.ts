// The embedded MQTT 3.1.1 broker (aedes, in process) used by the simulator and by tests.
import net from "node:net";
import tls from "node:tls";
import { Aedes, type AedesOptions } from "aedes";

export interface BrokerOptions {
  /** Interface to listen on. Default 127.0.0.1: the simulator is a local tool, not a network service. */
  host?: string;
  /** Default 1883; 0 picks a random free port. */
  port?: number;
  /** When the port is taken, try the next ones (up to 100) instead of failing. */
  fallback?: boolean;
  /** Serve MQTT over TLS (mqtts://) with this PEM key and certificate. */
  tls?: { key: string; cert: string; ca?: string; requestCert?: boolean };
  authenticate?: AedesOptions["authenticate"];
  authorizeSubscribe?: AedesOptions["authorizeSubscribe"];
  authorizePublish?: AedesOptions["authorizePublish"];
}

export interface Broker {
  /** mqtt://host:port, or mqtts://host:port with the tls option. */
  url: string;
  host: string;
  port: number;
  aedes: Aedes;
  /**
   * The broker's side of the connection from a client's local port on this host: bytes it has received,
   * and bytes it has handed to the network; undefined when there is none (yet).
   */
  wire(clientPort: number): { received: number; sent: number } | undefined;
  /** Drops every connection without a goodbye, then closes the listener and the broker. Idempotent. */
  close(): Promise<void>;
}

const FALLBACK_TRIES = 100;

export async function startBroker(options: BrokerOptions = {}): Promise<Broker> {
  const host = options.host ?? "127.0.0.1";
  const wantedPort = options.port ?? 1883;
  const handlers: AedesOptions = {};
  if (options.authenticate) handlers.authenticate = options.authenticate;
  if (options.authorizeSubscribe) handlers.authorizeSubscribe = options.authorizeSubscribe;
  if (options.authorizePublish) handlers.authorizePublish = options.authorizePublish;
  const aedes = await Aedes.createBroker(handlers);

  const server = options.tls
    ? tls.createServer(
        { key: options.tls.key, cert: options.tls.cert, ca: options.tls.ca, requestCert: options.tls.requestCert },
        (socket) => aedes.handle(socket),
      )
    : net.createServer((socket) => aedes.handle(socket));
  // Raw sockets are tracked (for TLS too, before the handshake ends) so close() can destroy them:
  // server.close() alone waits for every client to leave, and aedes.close() only knows clients
  // that completed CONNECT.
  const sockets = new Set<net.Socket>();
  server.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    // Nagle's algorithm holds a small packet (a SUBACK after a PUBACK) until the peer's delayed ACK,
    // 40 ms on Linux: the simulation, which runs node time while socket IO is quiet, would move on
    // without it.
    socket.setNoDelay(true);
    socket.on("close", () => sockets.delete(socket));
    // A peer that resets the connection must not crash the process (aedes reports it as clientError).
    socket.on("error", () => {});
  });
  if (options.tls) {
    // Failed handshakes (a client that rejects our certificate) are normal in tests.
    server.on("tlsClientError", () => {});
  }

  let port: number;
  try {
    port = await listen(server, host, wantedPort, options.fallback === true && wantedPort !== 0);
  } catch (err) {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    throw err;
  }

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await Promise.all([serverClosed, new Promise<void>((resolve) => aedes.close(() => resolve()))]);
    })();
    return closing;
  };

  const scheme = options.tls ? "mqtts" : "mqtt";
  const urlHost = host.includes(":") ? `[${host}]` : host;
  const wire = (clientPort: number) => {
    for (const socket of sockets) {
      if (socket.remotePort !== clientPort) continue;
      return { received: socket.bytesRead, sent: socket.bytesWritten - socket.writableLength };
    }
    return undefined;
  };
  return { url: `${scheme}://${urlHost}:${port}`, host, port, aedes, wire, close };
}

async function listen(server: net.Server, host: string, port: number, fallback: boolean): Promise<number> {
  const last = fallback ? Math.min(port + FALLBACK_TRIES - 1, 65535) : port;
  for (let candidate = port; ; candidate++) {
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error) => {
          server.off("listening", onListening);
          reject(err);
        };
        const onListening = () => {
          server.off("error", onError);
          resolve();
        };
        server.once("error", onError);
        server.once("listening", onListening);
        server.listen(candidate, host);
      });
      return (server.address() as net.AddressInfo).port;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "EADDRINUSE" || candidate >= last) {
        const range = candidate === port ? `${port}` : `${port}-${candidate}`;
        throw new Error(`MQTT broker cannot listen on ${host}:${range}: ${(err as Error).message}`, { cause: err });
      }
    }
  }
}
