// The simulated network link between an edge broker and a central one: a TCP relay on loopback that
// the edge's bridge connects through. down() cuts it as a failed uplink does (every connection
// through it closes; new ones are closed as soon as they open, before any byte passes); up() lets
// connections through again. The bridge's TLS runs end to end through it.
import net from "node:net";

export class Link {
  private server: net.Server | undefined;
  private readonly open = new Set<net.Socket>();
  private target: { host: string; port: number } | undefined;
  /** False while the link is cut. */
  isUp = true;
  port = 0;

  /** Starts listening on 127.0.0.1 (a free port); connections go to `target` once it is set. */
  async listen(): Promise<this> {
    const server = net.createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    this.server = server;
    this.port = (server.address() as net.AddressInfo).port;
    return this;
  }

  /** host:port of the link's near end, for the bridge's `address` line. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  connectTo(target: { host: string; port: number }): void {
    this.target = target;
  }

  down(): void {
    this.isUp = false;
    for (const socket of this.open) socket.destroy();
    this.open.clear();
  }

  up(): void {
    this.isUp = true;
  }

  async close(): Promise<void> {
    this.down();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(near: net.Socket): void {
    near.on("error", () => {});
    if (!this.isUp || !this.target) {
      near.destroy();
      return;
    }
    const far = net.connect(this.target.port, this.target.host);
    far.on("error", () => {});
    const pair = [near, far];
    for (const s of pair) {
      this.open.add(s);
      s.on("close", () => {
        this.open.delete(s);
        for (const other of pair) other.destroy();
      });
    }
    near.pipe(far);
    far.pipe(near);
  }
}
