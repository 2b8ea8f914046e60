// The client contract against aedes in process (the simulator's broker). TLS runs against a second
// aedes behind node:tls with the same openssl-made certificates Mosquitto uses.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe } from "vitest";
import { startTestAedes } from "../helpers/aedes.ts";
import { makeCerts } from "../helpers/certs.ts";
import { withTimeout } from "../helpers/wisp.ts";
import { clientContract } from "./contract.ts";

describe("Wisp client contract: aedes", () => {
  clientContract(async () => {
    const certDir = mkdtempSync(join(tmpdir(), "wisp-aedes-certs-"));
    const certs = makeCerts(certDir);
    const broker = await startTestAedes();
    const tlsBroker = await startTestAedes({ tls: certs });

    const log: string[] = [];
    const note = (line: string) => log.push(`${new Date().toISOString().slice(11, 23)} ${line}`);
    broker.aedes.on("client", (client) => note(`client ${client.id} connecting`));
    broker.aedes.on("clientReady", (client) => note(`client ${client.id} ready`));
    broker.aedes.on("clientDisconnect", (client) => note(`client ${client.id} disconnected`));
    broker.aedes.on("clientError", (client, err) => note(`client ${client.id} error: ${err.message}`));
    broker.aedes.on("connectionError", (client, err) => note(`connection ${client.id} error: ${err.message}`));
    broker.aedes.on("subscribe", (subs, client) => note(`client ${client.id} subscribed ${JSON.stringify(subs)}`));
    broker.aedes.on("unsubscribe", (subs, client) => note(`client ${client.id} unsubscribed ${JSON.stringify(subs)}`));
    broker.aedes.on("publish", (packet, client) => {
      if (!packet.topic.startsWith("$SYS")) note(`publish by ${client?.id ?? "broker"} qos ${packet.qos} retain ${packet.retain} ${packet.topic}`);
    });

    return {
      name: "aedes",
      url: broker.url,
      host: broker.host,
      port: broker.port,
      tls: { url: tlsBroker.url, ca: certs.ca, wrongCa: certs.wrongCa },
      refusesSubscriptions: true,
      overlappingDeliveries: 1,
      expectClientGone(clientId) {
        return withTimeout(
          new Promise<void>((resolve) => {
            const onDisconnect = (client: { id: string }) => {
              if (client.id !== clientId) return;
              broker.aedes.off("clientDisconnect", onDisconnect);
              resolve();
            };
            broker.aedes.on("clientDisconnect", onDisconnect);
          }),
          5_000,
          `aedes never saw ${clientId} disconnect`,
        );
      },
      diagnostics: () => log.join("\n"),
      async close() {
        await Promise.all([broker.close(), tlsBroker.close()]);
        rmSync(certDir, { recursive: true, force: true });
      },
    };
  });
});
