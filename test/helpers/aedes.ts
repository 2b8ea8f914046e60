// aedes with the same accounts and refusals as the test Mosquitto (see ./users.ts).
import { startBroker, type Broker } from "../../host-sim/broker.ts";
import type { TestCerts } from "./certs.ts";
import { ACCOUNTS, isRefusedFor } from "./users.ts";

/** CONNACK return code 4. Mosquitto answers 5 for a wrong password, so the suite sees both codes. */
const BAD_USERNAME_OR_PASSWORD = 4;

export async function startTestAedes(options: { tls?: TestCerts } = {}): Promise<Broker> {
  // aedes keeps no username on its client objects; remember who authenticated as whom.
  const usernames = new WeakMap<object, string>();
  return startBroker({
    port: 0,
    tls: options.tls && { key: options.tls.serverKey, cert: options.tls.serverCert },
    authenticate(client, username, password, done) {
      const known = ACCOUNTS.some((account) => account.username === username && account.password === password?.toString());
      if (!known) {
        return done(Object.assign(new Error("bad username or password"), { returnCode: BAD_USERNAME_OR_PASSWORD }), false);
      }
      usernames.set(client, username!);
      done(null, true);
    },
    authorizeSubscribe(client, subscription, done) {
      // A null subscription makes aedes answer 0x80 for it in the SUBACK.
      done(null, isRefusedFor(usernames.get(client), subscription.topic) ? null : subscription);
    },
  });
}
