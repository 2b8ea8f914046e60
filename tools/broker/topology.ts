// The brokers a simulation runs on when it uses a broker folder: one Mosquitto with the folder
// (`wisp sim --broker-config DIR`), or an edge and a central Mosquitto bridged through a simulated
// link (`--topology edge-cloud`), each node with its own login. Shared by `wisp sim` and the tests.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Link } from "../../host-sim/link.ts";
import type { NodeLogin } from "../../host-sim/sim.ts";
import type { FlashConfig } from "../config.ts";
import { displayPath } from "../files.ts";
import { BrokerFolderError, checkBrokerFolder, initBrokerFolder, nodeLogin, readManifest, readPasswords, simulatedIds, type Manifest } from "./folder.ts";
import { startBrokerFolder, type RunningBroker } from "./run.ts";

export type Topology = "single" | "edge-cloud";

export interface FleetBrokersOptions {
  /** A folder from `wisp broker init`; without one, edge-cloud makes a scratch folder from `config`. */
  dir?: string;
  topology?: Topology;
  /** The flash config the nodes run (a given folder must be made for it); for a scratch folder, what it is made from. */
  config?: FlashConfig;
  /** How to name `config` in messages (default flash.config.json). */
  configFile?: string;
  nodes?: number;
  seed?: number;
  /** Wanted port of the (edge) broker's plain listener. */
  port?: number;
  /** Mosquitto log types (tests: ["all"]). */
  logTypes?: string[];
}

export interface FleetBrokers {
  dir: string;
  manifest: Manifest;
  /** Where the nodes connect (TLS when the config's mqtt.url is mqtts://). */
  nodeUrl: string;
  /** Each node's login from the folder; undefined for a node the folder has none for. */
  nodeLogin(serial: string): NodeLogin | undefined;
  /** The operator's view: the only broker, or the central one in edge-cloud. */
  observer: { url: string; username: string; password: string; ca?: string };
  edge: RunningBroker;
  central?: RunningBroker;
  link?: Link;
  /** Stops every broker and the link; removes a scratch folder. */
  stop(): Promise<void>;
}

/** Ids in `ids` that have no login in the folder (the simulation cannot start them). */
export function missingLogins(dir: string, ids: string[]): string[] {
  return ids.filter((id) => nodeLogin(dir, id) === undefined);
}

export async function startFleetBrokers(options: FleetBrokersOptions): Promise<FleetBrokers> {
  const topology = options.topology ?? "single";
  let dir = options.dir;
  let scratch: string | undefined;
  const started: { stop(): Promise<void> }[] = [];
  const stopAll = async () => {
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  };
  try {
    const link = topology === "edge-cloud" ? await new Link().listen() : undefined;
    if (link) started.push({ stop: () => link.close() });
    if (!dir) {
      if (!options.config) throw new BrokerFolderError("a broker folder or a flash config is needed");
      scratch = dir = mkdtempSync(path.join(tmpdir(), "wisp-"));
      initBrokerFolder({
        dir,
        config: options.config,
        nodes: simulatedIds(options.nodes ?? 1, options.seed ?? 0),
        // the bridge goes through the link, with TLS as a central broker on the internet would have it
        bridge: link ? `mqtts://127.0.0.1:${link.port}` : undefined,
        name: "sim-edge",
      });
    }
    // a given folder must be made for the config the nodes run: another prefix or client id and the
    // broker refuses them ("not authorized"), which the nodes can only log
    const shown = displayPath(dir);
    const checked = checkBrokerFolder(shown, scratch ? {} : { config: options.config, configFile: options.configFile });
    if (checked.problems.length) throw new BrokerFolderError(`${shown} is not ready (npx wisp broker check ${shown} says):\n${checked.problems.map((p) => `  ${p}`).join("\n")}`);
    const manifest = readManifest(dir)!;
    const passwords = readPasswords(dir)!;
    if (link && !manifest.bridge) throw new BrokerFolderError(`${dir} has no bridge: make one with npx wisp broker init --out ${dir} --bridge mqtts://HOST:8883 (or run --topology edge-cloud without --broker-config)`);
    const ca = manifest.tls || manifest.bridge?.tls ? readFileSync(path.join(dir, "ca.crt"), "utf8") : undefined;

    let central: RunningBroker | undefined;
    if (link) {
      central = await startBrokerFolder(dir, { config: path.join(dir, "central", "mosquitto.conf"), logTypes: options.logTypes });
      started.push(central);
      link.connectTo({ host: "127.0.0.1", port: central.tlsPort ?? central.port! });
    }
    const edge = await startBrokerFolder(dir, { port: options.port, logTypes: options.logTypes, bridgeAddress: link?.address, noBridge: !link });
    started.push(edge);

    const tlsNodes = options.config ? options.config.mqtt.url.startsWith("mqtts:") : manifest.listeners.mqttLocal;
    const nodeUrl = tlsNodes ? edge.tlsUrl : edge.url;
    if (!nodeUrl) throw new BrokerFolderError(`${dir}/mosquitto.conf has no ${tlsNodes ? "TLS" : "plain"} listener for the nodes`);
    const view = central ?? edge;
    const observerUrl = view.url ?? view.tlsUrl!;
    const folder = dir;
    return {
      dir,
      manifest,
      nodeUrl,
      nodeLogin: (serial) => nodeLogin(folder, serial),
      observer: { url: observerUrl, username: passwords.operator.username, password: passwords.operator.password, ca: observerUrl.startsWith("mqtts:") ? ca : undefined },
      edge,
      central,
      link,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
