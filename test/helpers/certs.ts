// Certificates for the TLS tests, made with openssl at test time (nothing secret is committed):
// a CA, a server certificate for 127.0.0.1/localhost signed by it, a client certificate, and an
// unrelated CA that must NOT validate the server.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

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

export const OPENSSL = "/usr/bin/openssl";

// P-256 keys: generated in milliseconds, and within what mbedTLS on the ESP32 handles.
const KEY_ARGS = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

export function makeCerts(dir: string): TestCerts {
  mkdirSync(dir, { recursive: true });
  const file = (name: string) => join(dir, name);
  const run = (args: string[]) => {
    try {
      execFileSync(OPENSSL, args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    } catch (err) {
      const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? "";
      throw new Error(`openssl ${args.join(" ")} failed: ${stderr || (err as Error).message}`);
    }
  };
  const makeCa = (name: string, cn: string) =>
    run(["req", "-x509", ...KEY_ARGS, "-keyout", file(`${name}.key`), "-out", file(`${name}.crt`), "-days", "2",
      "-subj", `/CN=${cn}`, "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
  const makeLeaf = (name: string, cn: string, extensions: string) => {
    writeFileSync(file(`${name}.ext`), extensions);
    run(["req", ...KEY_ARGS, "-keyout", file(`${name}.key`), "-out", file(`${name}.csr`), "-subj", `/CN=${cn}`]);
    run(["x509", "-req", "-in", file(`${name}.csr`), "-CA", file("ca.crt"), "-CAkey", file("ca.key"), "-CAcreateserial",
      "-out", file(`${name}.crt`), "-days", "2", "-extfile", file(`${name}.ext`)]);
  };

  makeCa("ca", "Wisp Test CA");
  makeCa("wrong-ca", "Wisp Unrelated CA");
  makeLeaf("server", "localhost",
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n");
  makeLeaf("client", "wisp-node",
    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n");

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
