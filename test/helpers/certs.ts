// Certificates for the TLS tests, made with openssl at test time (nothing secret is committed):
// a CA, a server certificate for 127.0.0.1/localhost signed by it, a client certificate, and an
// unrelated CA that must NOT validate the server.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { makeCa, makeLeaf, OPENSSL } from "../../tools/broker/certs.ts";

export { OPENSSL };

export interface TestCerts {
  dir: string;
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  /** PEM strings, as the Wisp client takes them. */
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A CA that did not sign the server certificate. */
  wrongCa: string;
}

export function makeCerts(dir: string): TestCerts {
  const file = (name: string) => join(dir, name);
  makeCa(dir, "ca", "Wisp Test CA", 2);
  makeCa(dir, "wrong-ca", "Wisp Unrelated CA", 2);
  makeLeaf(dir, "server", { commonName: "localhost", hosts: ["127.0.0.1", "localhost"], days: 2, usage: "server" });
  makeLeaf(dir, "client", { commonName: "wisp-node", days: 2, usage: "client" });

  const read = (name: string) => readFileSync(file(name), "utf8");
  return {
    dir,
    caFile: file("ca.crt"),
    serverCertFile: file("server.crt"),
    serverKeyFile: file("server.key"),
    ca: read("ca.crt"),
    serverCert: read("server.crt"),
    serverKey: read("server.key"),
    clientCert: read("client.crt"),
    clientKey: read("client.key"),
    wrongCa: read("wrong-ca.crt"),
  };
}
