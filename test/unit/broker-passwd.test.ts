// Mosquitto password file hashes ($7$ PBKDF2-SHA512 and the older $6$). The fixtures were computed
// with Python's hashlib, independently of node:crypto; test/integration/broker-mosquitto.test.ts
// checks the same code against mosquitto_passwd and the broker itself.
import { describe, expect, it } from "vitest";
import { checkUsername, formatPasswd, hashPassword, parseHash, parsePasswd, verifyPassword } from "../../tools/broker/passwd.ts";

const SALT = Buffer.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
// hashlib.pbkdf2_hmac("sha512", b"n0de-pass", bytes(range(12)), 101, 64)
const PBKDF2 = "$7$101$AAECAwQFBgcICQoL$viDLc4VSH48Af+IzIwGGmLSPXMd6C9MW/grIaRpgD0wcdNyeXjRUxl5Jstaer+qjN0E/BfOT0QtCo+iwpif7ew==";
// hashlib.sha512(b"n0de-pass" + bytes(range(12))), as mosquitto_passwd 1.x wrote it
const SHA512 = "$6$AAECAwQFBgcICQoL$uL/K0PhzscbUNry4fy/kaT9SIwoDwYdQDheBS1iAAVBq6AFghmgiufvawXoohTjytZtWzSIGvhKy095i+ZgkCw==";

describe("Mosquitto password hashes", () => {
  it("hash as mosquitto_passwd 2.0 does: $7$, 101 iterations, 12-byte salt, 64-byte PBKDF2-SHA512, base64", () => {
    expect(hashPassword("n0de-pass", { salt: SALT })).toBe(PBKDF2);
    const fresh = hashPassword("n0de-pass");
    expect(fresh).toMatch(/^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/);
    expect(fresh).not.toBe(hashPassword("n0de-pass")); // a new salt every time
  });

  it("verify $7$ and $6$ hashes, and reject a wrong password", () => {
    expect(verifyPassword("n0de-pass", PBKDF2)).toBe(true);
    expect(verifyPassword("n0de-pasS", PBKDF2)).toBe(false);
    expect(verifyPassword("n0de-pass", SHA512)).toBe(true);
    expect(verifyPassword("", SHA512)).toBe(false);
    expect(verifyPassword("p", hashPassword("p", { iterations: 5 }))).toBe(true);
  });

  it("say what is wrong with a line Mosquitto would drop", () => {
    expect(parseHash("secret")).toMatch(/plain-text password\? run mosquitto_passwd -U/);
    expect(parseHash("$7$0$AAECAwQFBgcICQoL$x")).toMatch(/iterations "0"/);
    expect(parseHash("$7$101$AAEC$" + PBKDF2.split("$")[4])).toMatch(/salt is not 12 bytes/);
    expect(parseHash("$7$101$AAECAwQFBgcICQoL$AAAA")).toMatch(/hash is not 64 bytes/);
    expect(parseHash("$5$a$b")).toMatch(/unknown hash format "\$5\$"/);
    expect(verifyPassword("x", "$7$101$AAECAwQFBgcICQoL$AAAA")).toBe(false);
  });

  it("read and write password files: comments and lines without ':' skipped, fields trimmed", () => {
    const file = `# a comment\nalice:${PBKDF2}\n\nnot a login\n  bob :${SHA512}\n`;
    expect(parsePasswd(file)).toEqual([
      { username: "alice", hash: PBKDF2, line: 2 },
      { username: "bob", hash: SHA512, line: 5 },
    ]);
    const written = formatPasswd([{ username: "n1", password: "a" }, { username: "n2", password: "b" }]);
    const entries = parsePasswd(written);
    expect(written).not.toContain("#"); // mosquitto_passwd 2.0 takes a comment line for a corrupt file
    expect(entries.map((e) => e.username)).toEqual(["n1", "n2"]);
    expect(verifyPassword("a", entries[0]!.hash) && verifyPassword("b", entries[1]!.hash)).toBe(true);
  });

  it("refuse login names Mosquitto cannot store or would deny in ACL patterns", () => {
    for (const bad of ["a:b", "a+b", "a#", "a/b", "a b", "", "x".repeat(65)]) expect(() => checkUsername(bad)).toThrow(/must be 1 to 64 letters/);
    expect(() => checkUsername("240ac4c1-0eda")).not.toThrow();
  });
});
