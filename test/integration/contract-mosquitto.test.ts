// The client contract against a private Mosquitto 2 (password file, ACL, TLS listener).
import { startMosquitto } from "../helpers/mosquitto.ts";
import { describeWithMosquitto } from "../helpers/suites.ts";
import { clientContract } from "./contract.ts";

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

describeWithMosquitto("Wisp client contract: Mosquitto", () => {
  clientContract(async () => {
    const mosquitto = await startMosquitto();
    return {
      name: "Mosquitto",
      url: mosquitto.url,
      host: mosquitto.host,
      port: mosquitto.port,
      tls: { url: mosquitto.tlsUrl, ca: mosquitto.certs.ca, wrongCa: mosquitto.certs.wrongCa },
      refusesSubscriptions: mosquitto.refusesSubscriptions,
      overlappingDeliveries: 1,
      expectClientGone(clientId) {
        const id = escape(clientId);
        // The lines Mosquitto 2.0 logs when it is done with a client, whatever the reason.
        const gone = new RegExp(`Client ${id} (disconnected|closed its connection|has exceeded timeout)|Socket error on client ${id}`);
        return mosquitto.waitForLog(gone, 5_000, mosquitto.log().length).then(() => undefined);
      },
      diagnostics: () => mosquitto.log(),
      close: () => mosquitto.stop(),
    };
  });
});
