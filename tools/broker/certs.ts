// Certificates for the broker's TLS listener, made with openssl: a CA, and leaf certificates it signs
// (the broker's, and in tests a client's). P-256 keys: made in milliseconds, and within what mbedTLS on
// the ESP32 handles. The nodes get the CA as DER (Espruino's TLS parses DER only, not PEM: see
// docs/espruino-notes.md), base64 in wisp.json, which the node decodes with atob().

import { execFileSync } from "node:child_process";
import { randomBytes, X509Certificate } from "node:crypto";
import { accessSync, chmodSync, constants, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";

export const OPENSSL = "/usr/bin/openssl";

const KEY_ARGS = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

export function opensslAvailable(): boolean {
  try {
    accessSync(OPENSSL, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function openssl(dir: string, args: string[]): void {
  if (!opensslAvailable()) throw new Error(`${OPENSSL} not found: install openssl (apt-get install openssl) to make TLS certificates`);
  try {
    execFileSync(OPENSSL, args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? "";
    throw new Error(`openssl ${args.join(" ")} failed: ${stderr || (err as Error).message}`);
  }
}

/** `<dir>/<name>.crt` and `<name>.key` (mode 0600): a self-signed CA. */
export function makeCa(dir: string, name: string, commonName: string, days: number): void {
  mkdirSync(dir, { recursive: true });
  openssl(dir, ["req", "-x509", ...KEY_ARGS, "-keyout", `${name}.key`, "-out", `${name}.crt`, "-days", String(days),
    "-subj", `/CN=${commonName}`, "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
  chmodSync(join(dir, `${name}.key`), 0o600);
}

export interface LeafOptions {
  commonName: string;
  /** The CA's file name in `dir` without extension (default "ca"). */
  ca?: string;
  days: number;
  /** Host names and IP addresses the certificate is for (a server's subjectAltName). */
  hosts?: string[];
  usage: "server" | "client";
}

/** `<dir>/<name>.crt` and `<name>.key` (mode 0600), signed by the CA in `dir`. */
export function makeLeaf(dir: string, name: string, options: LeafOptions): void {
  const ca = options.ca ?? "ca";
  const extensions = ["basicConstraints=CA:FALSE", "keyUsage=digitalSignature", `extendedKeyUsage=${options.usage === "server" ? "serverAuth" : "clientAuth"}`];
  if (options.hosts?.length) extensions.unshift(`subjectAltName=${options.hosts.map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(",")}`);
  writeFileSync(join(dir, `${name}.ext`), extensions.join("\n") + "\n");
  openssl(dir, ["req", ...KEY_ARGS, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${options.commonName}`]);
  // a random serial instead of a ca.srl file beside the CA [RFC 5280 4.1.2.2: unique per CA, at most 20 bytes]
  openssl(dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`, "-set_serial", `0x${randomBytes(16).toString("hex")}`,
    "-out", `${name}.crt`, "-days", String(options.days), "-extfile", `${name}.ext`]);
  chmodSync(join(dir, `${name}.key`), 0o600);
  rmSync(join(dir, `${name}.csr`), { force: true });
  rmSync(join(dir, `${name}.ext`), { force: true });
}

/** The DER bytes of a PEM certificate, base64 (what wisp.json's `mqtt.ca` holds; the node runs atob() on it). */
export function pemToDerBase64(pem: string): string {
  const body = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(pem);
  if (!body) throw new Error("not a PEM certificate (no BEGIN CERTIFICATE line)");
  return body[1]!.replace(/\s+/g, "");
}

export interface CertificateFacts {
  subject: string;
  /** subjectAltName entries without their `DNS:`/`IP Address:` labels. */
  hosts: string[];
  validTo: Date;
  /** True when `issuer` signed it. */
  signedBy(issuer: string): boolean;
}

export function certificateFacts(pem: string): CertificateFacts {
  const cert = new X509Certificate(pem);
  const hosts = (cert.subjectAltName ?? "")
    .split(",")
    .map((s) => s.trim().replace(/^(DNS|IP Address):/, ""))
    .filter(Boolean);
  return {
    subject: cert.subject,
    hosts,
    validTo: new Date(cert.validTo),
    signedBy: (issuer: string) => {
      try {
        const ca = new X509Certificate(issuer);
        return cert.checkIssued(ca) && cert.verify(ca.publicKey);
      } catch {
        return false;
      }
    },
  };
}

export function readPem(file: string): string {
  return readFileSync(file, "utf8");
}
