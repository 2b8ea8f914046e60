// The simulator's reading of a node's outbox (the live view's "outbox" row) takes from flash what the
// firmware takes and nothing else: a line cut short by a power cut, or corrupted, is not a record.
import { describe, expect, it } from "vitest";
import { outboxRecord, readOutbox } from "../../host-sim/outbox.ts";
import { FlashStorage, STORAGEFILE } from "../../host-sim/storage.ts";

const taken = Date.UTC(2025, 4, 31, 23, 0, 0);
const T = taken.toString(36);
const publish = Buffer.from("\x32\x0d\x00\x07climate\x00\x01{}", "latin1").toString("base64");

function flashWith(text: string): FlashStorage {
  const flash = new FlashStorage();
  flash.write("wisp.o0\x01", Buffer.from(text, "latin1"), 0, 4064, STORAGEFILE);
  return flash;
}

describe("the simulator's view of the outbox", () => {
  it("counts the readings waiting and the dropped count from valid records", () => {
    const text = `r0 1${T} climate {"a":1}\nd0\nr1 1${T} climate {"a":2}\npo1 1\nr2 1${T} climate {"a":3}\nz5\n`;
    expect(readOutbox(flashWith(text))).toMatchObject({ readings: 2, dropped: 5, segments: 1, oldest: taken });
  });

  it("skips what the firmware skips: a torn last line, a line a boot ended with '#', junk and numbers that are not numbers", () => {
    const text = `r0 1${T} climate {"a":1}\nd#\nzNaN\nz\nrubbish\nr1 1zz climate {"a":2}\nr2 1${T} climate {"a":3}\nd`;
    expect(readOutbox(flashWith(text))).toMatchObject({ readings: 2, dropped: 0, oldest: taken });
  });

  it("takes a session line only with a packet that decodes as the PUBLISH or PUBREL of its key's id", () => {
    expect(outboxRecord(`po1 - ${publish}\n`)).toBeDefined();
    expect(outboxRecord(`po2 - ${publish}\n`)).toBeUndefined();
    expect(outboxRecord(`po1 - ${publish.slice(0, 8)}\n`)).toBeUndefined();
    expect(outboxRecord("po1 - %%%\n")).toBeUndefined();
    expect(outboxRecord("po1 7\n")).toBeDefined();
    expect(outboxRecord("pi1 7\n")).toBeUndefined();
    expect(outboxRecord("pq1 - AAAA\n")).toBeUndefined();
  });
});
