// A TCP proxy between a client and a broker that splits the byte streams into MQTT packets, records
// them, and can hold back one direction from a given packet type on. Tests use it to see the packet
// exchange (and print it on failure) and to prove ordering, e.g. "no callback before PUBACK".
import net from "node:net";
import { withTimeout } from "./wisp.ts";

export const PACKET_NAMES = ["reserved", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
  "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "reserved"] as const;
export type PacketName = (typeof PACKET_NAMES)[number];

/** "up": client to broker; "down": broker to client. */
export type Direction = "up" | "down";

export interface SeenPacket {
  direction: Direction;
  name: PacketName;
  /** For PUBLISH with QoS > 0 and all acks, subscribe and unsubscribe packets. */
  messageId?: number;
  qos?: number;
  topic?: string;
  bytes: Buffer;
}

export interface Proxy {
  url: string;
  port: number;
  packets: SeenPacket[];
  /** Stops forwarding `direction` from the next packet named `name` on (that packet included). */
  holdFrom(direction: Direction, name: PacketName): void;
  /** Forwards everything held and stops holding. */
  release(): void;
  /** Resolves with the first packet (seen so far or later) that matches. */
  seen(match: (packet: SeenPacket) => boolean, timeoutMs?: number): Promise<SeenPacket>;
  /** Cuts every proxied connection at once, as a network failure would (the client sees its socket close). */
  dropConnections(): void;
  /** The exchange so far, one packet a line, for failure messages and bug reports. */
  transcript(): string;
  close(): Promise<void>;
}

export interface ProxyOptions {
  /**
   * Deliver broker-to-client bytes in pieces of this size, one piece per timer tick, so the client
   * receives packets split across many reads (as on a device, where TCP segments are small).
   */
  fragment?: number;
}

export async function startProxy(target: { host: string; port: number }, options: ProxyOptions = {}): Promise<Proxy> {
  const packets: SeenPacket[] = [];
  const waiters: { match: (p: SeenPacket) => boolean; resolve: (p: SeenPacket) => void }[] = [];
  const holds: Record<Direction, { name?: PacketName; active: boolean; held: Buffer[] }> = {
    up: { active: false, held: [] },
    down: { active: false, held: [] },
  };
  // Held packets go out through the forwarder of the latest connection in their direction.
  const heldForwarders: Partial<Record<Direction, (bytes: Buffer) => void>> = {};
  const sockets = new Set<net.Socket>();

  const record = (packet: SeenPacket) => {
    packets.push(packet);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i].match(packet)) waiters.splice(i, 1)[0].resolve(packet);
    }
  };

  const pipe = (from: net.Socket, to: net.Socket, direction: Direction) => {
    let pending = Buffer.alloc(0);
    const pieces: Buffer[] = [];
    let pumping = false;
    const pump = () => {
      const piece = pieces.shift();
      if (!piece || to.destroyed) {
        pumping = false;
        return;
      }
      to.write(piece);
      setTimeout(pump, 1);
    };
    const forward = (bytes: Buffer) => {
      if (to.destroyed) return;
      const size = direction === "down" ? options.fragment : undefined;
      if (!size) return void to.write(bytes);
      for (let at = 0; at < bytes.length; at += size) pieces.push(bytes.subarray(at, at + size));
      if (!pumping) {
        pumping = true;
        pump();
      }
    };
    heldForwarders[direction] = forward;
    from.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        const size = packetSize(pending);
        if (size === undefined || pending.length < size) return;
        const bytes = pending.subarray(0, size);
        pending = pending.subarray(size);
        const packet = describe(direction, bytes);
        const hold = holds[direction];
        if (hold.name === packet.name) hold.active = true;
        record(packet);
        if (hold.active) hold.held.push(bytes);
        else forward(bytes);
      }
    });
  };

  const server = net.createServer((client) => {
    const broker = net.connect(target.port, target.host);
    client.setNoDelay(true);
    broker.setNoDelay(true);
    for (const socket of [client, broker]) {
      sockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => {
        sockets.delete(socket);
        client.destroy();
        broker.destroy();
      });
    }
    pipe(client, broker, "up");
    pipe(broker, client, "down");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as net.AddressInfo).port;

  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    packets,
    holdFrom(direction, name) {
      holds[direction].name = name;
    },
    release() {
      for (const direction of ["up", "down"] as const) {
        const hold = holds[direction];
        for (const bytes of hold.held) heldForwarders[direction]?.(bytes);
        hold.held = [];
        hold.active = false;
        hold.name = undefined;
      }
    },
    seen(match, timeoutMs = 5_000) {
      const found = packets.find(match);
      if (found) return Promise.resolve(found);
      return withTimeout(new Promise((resolve) => waiters.push({ match, resolve })), timeoutMs, "the proxy saw no such packet");
    },
    dropConnections() {
      for (const socket of sockets) socket.destroy();
    },
    transcript() {
      return packets.map(format).join("\n");
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

/** Bytes of the whole packet at the start of `buffer`, or undefined while its header is incomplete. */
function packetSize(buffer: Buffer): number | undefined {
  let length = 0;
  // Remaining Length: up to four 7-bit groups, least significant first [MQTT-2.2.3]
  for (let i = 1; i <= 4; i++) {
    if (buffer.length <= i) return undefined;
    length += (buffer[i] & 0x7f) * 128 ** (i - 1);
    if ((buffer[i] & 0x80) === 0) return 1 + i + length;
  }
  throw new Error(`malformed Remaining Length in ${buffer.subarray(0, 5).toString("hex")}`);
}

function describe(direction: Direction, bytes: Buffer): SeenPacket {
  const type = bytes[0] >> 4;
  const name = PACKET_NAMES[type];
  let offset = 1;
  while (bytes[offset] & 0x80) offset++;
  offset++;
  const packet: SeenPacket = { direction, name, bytes };
  if (name === "PUBLISH") {
    packet.qos = (bytes[0] >> 1) & 3;
    const topicLength = bytes.readUInt16BE(offset);
    packet.topic = bytes.subarray(offset + 2, offset + 2 + topicLength).toString("utf8");
    if (packet.qos > 0) packet.messageId = bytes.readUInt16BE(offset + 2 + topicLength);
  } else if (type >= 4 && type <= 11) {
    packet.messageId = bytes.readUInt16BE(offset);
  }
  return packet;
}

function format(packet: SeenPacket): string {
  const arrow = packet.direction === "up" ? "client -> broker" : "broker -> client";
  const details = [
    packet.messageId !== undefined ? `id ${packet.messageId}` : "",
    packet.qos !== undefined ? `qos ${packet.qos}` : "",
    packet.topic !== undefined ? `topic ${JSON.stringify(packet.topic)}` : "",
  ].filter(Boolean).join(", ");
  const hex = packet.bytes.subarray(0, 48).toString("hex") + (packet.bytes.length > 48 ? "…" : "");
  return `${arrow} ${packet.name}${details ? ` (${details})` : ""} [${packet.bytes.length} B] ${hex}`;
}
