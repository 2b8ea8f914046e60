// Mosquitto password files, read and written the way Mosquitto 2.0 does, with node:crypto.
//
// A line is `username:$7$<iterations>$<salt>$<hash>`: PBKDF2-HMAC-SHA512 over the password with a
// 12-byte random salt, 101 iterations, a 64-byte result, salt and hash in standard base64 with
// padding (mosquitto 2.0.11 apps/mosquitto_passwd/mosquitto_passwd.c output_new_password,
// src/password_mosq.h SALT_LEN and PW_DEFAULT_ITERATIONS). Mosquitto 1.x wrote `$6$<salt>$<hash>`:
// one SHA-512 of password then salt; the broker still reads it (src/security_default.c
// unpwd__decode_passwords), and so does verifyPassword. Lines starting with `#` are comments; a line
// without `:` is skipped, as the broker does.

import { createHash, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

export const SALT_BYTES = 12;
export const HASH_BYTES = 64;
export const DEFAULT_ITERATIONS = 101;

export interface PasswdEntry {
  username: string;
  /** Everything after the first `:`, e.g. `$7$101$<salt>$<hash>`. */
  hash: string;
  /** 1-based line in the file. */
  line: number;
}

/** Hashes `password` as `mosquitto_passwd` 2.0 does; returns the part after `username:`. */
export function hashPassword(password: string, options: { iterations?: number; salt?: Buffer } = {}): string {
  const iterations = options.iterations ?? DEFAULT_ITERATIONS;
  const salt = options.salt ?? randomBytes(SALT_BYTES);
  if (salt.length !== SALT_BYTES) throw new Error(`the salt must be ${SALT_BYTES} bytes, got ${salt.length}`);
  if (!(Number.isInteger(iterations) && iterations >= 1)) throw new Error(`iterations must be a whole number >= 1, got ${iterations}`);
  const hash = pbkdf2Sync(Buffer.from(password, "utf8"), salt, iterations, HASH_BYTES, "sha512");
  return `$7$${iterations}$${salt.toString("base64")}$${hash.toString("base64")}`;
}

export type ParsedHash =
  | { kind: "pbkdf2-sha512"; iterations: number; salt: Buffer; hash: Buffer }
  | { kind: "sha512"; salt: Buffer; hash: Buffer };

/** Decodes `$7$...` or `$6$...`; returns why not when it is neither (Mosquitto drops such a line). */
export function parseHash(text: string): ParsedHash | string {
  const parts = text.split("$");
  // "$7$101$salt$hash" splits into ["", "7", "101", "salt", "hash"]
  if (parts[0] !== "") return "does not start with $6$ or $7$ (a plain-text password? run mosquitto_passwd -U on the file)";
  const b64 = (s: string | undefined) => (s !== undefined && /^[A-Za-z0-9+/]+={0,2}$/.test(s) ? Buffer.from(s, "base64") : undefined);
  if (parts[1] === "7" && parts.length === 5) {
    const iterations = Number(parts[2]);
    if (!(Number.isInteger(iterations) && iterations >= 1)) return `iterations "${parts[2]}" is not a whole number >= 1`;
    const salt = b64(parts[3]),
      hash = b64(parts[4]);
    if (salt?.length !== SALT_BYTES) return `the salt is not ${SALT_BYTES} bytes of base64`;
    if (hash?.length !== HASH_BYTES) return `the hash is not ${HASH_BYTES} bytes of base64`;
    return { kind: "pbkdf2-sha512", iterations, salt, hash };
  }
  if (parts[1] === "6" && parts.length === 4) {
    const salt = b64(parts[2]),
      hash = b64(parts[3]);
    if (salt?.length !== SALT_BYTES) return `the salt is not ${SALT_BYTES} bytes of base64`;
    if (hash?.length !== HASH_BYTES) return `the hash is not ${HASH_BYTES} bytes of base64`;
    return { kind: "sha512", salt, hash };
  }
  return `unknown hash format "$${parts[1] ?? ""}$" (Mosquitto 2 reads $6$ and $7$)`;
}

/** True when `password` matches the `$7$`/`$6$` hash text, compared in constant time. */
export function verifyPassword(password: string, hashText: string): boolean {
  const parsed = parseHash(hashText);
  if (typeof parsed === "string") return false;
  const input = Buffer.from(password, "utf8");
  const actual =
    parsed.kind === "pbkdf2-sha512"
      ? pbkdf2Sync(input, parsed.salt, parsed.iterations, HASH_BYTES, "sha512")
      : createHash("sha512").update(input).update(parsed.salt).digest();
  return timingSafeEqual(actual, parsed.hash);
}

/** The entries of a password file, in file order. */
export function parsePasswd(text: string): PasswdEntry[] {
  const entries: PasswdEntry[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/\r$/, "");
    if (line.startsWith("#") || !line.includes(":")) return;
    const colon = line.indexOf(":");
    // the broker trims blanks around both fields (misc__trimblanks)
    entries.push({ username: line.slice(0, colon).trim(), hash: line.slice(colon + 1).split(":")[0]!.trim(), line: i + 1 });
  });
  return entries;
}

/**
 * A password file for these logins, each hashed with a fresh salt. No comment lines: the broker skips
 * them, but mosquitto_passwd 2.0.11 calls such a file corrupt and, asked to change one login, writes
 * the file back with that login alone (measured).
 */
export function formatPasswd(logins: readonly { username: string; password: string }[]): string {
  const lines: string[] = [];
  for (const login of logins) {
    checkUsername(login.username);
    lines.push(`${login.username}:${hashPassword(login.password)}`);
  }
  return lines.join("\n") + "\n";
}

/** Throws when Mosquitto could not read or use `username` in a password file and ACL patterns. */
export function checkUsername(username: string): void {
  // ":" ends the field in the file; "+" and "#" make the broker deny every pattern ACL for the
  // client (security_default.c); whitespace is trimmed away; "/" would let %u reach other topics.
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(username)) {
    throw new Error(`login name ${JSON.stringify(username)} must be 1 to 64 letters, digits, ".", "_" or "-"`);
  }
}
