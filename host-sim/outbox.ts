// What a node's outbox holds, read from its flash as a debugger would read a board's: the StorageFile
// segments "wisp.o<n>" in the record format firmware/store/outbox.ts documents (and the README). The
// simulator shows it in the live view; nothing here runs on the device.

import { type FlashStorage, STORAGEFILE } from "./storage.ts";

export interface OutboxSummary {
  /** Readings kept and not yet acknowledged by the broker. */
  readings: number;
  /** Bytes of the outbox's records in flash. */
  bytes: number;
  /** Segments (StorageFiles of one 4 KB chunk each). */
  segments: number;
  /** When the oldest waiting reading was taken (ms since 1970), if known. */
  oldest: number | undefined;
  /** Readings dropped since the outbox began, because it was full. */
  dropped: number;
}

/** Reads the outbox as the firmware does when it boots (openOutbox). */
export function readOutbox(flash: FlashStorage): OutboxSummary {
  const segments = flash
    .list()
    .filter((n) => /^wisp\.o\d+\x01$/.test(n) && flash.fileFlags(n) === STORAGEFILE)
    .map((n) => Number(n.slice(6, -1)))
    .sort((a, b) => a - b);
  let handed = -1;
  let dropped = 0;
  let bytes = 0;
  const readings: { seq: number; time: string }[] = [];
  const session = new Map<string, number | undefined>();
  const boots = new Map<string, number>();
  for (const n of segments) {
    let text = "";
    for (let chunk = 1; chunk < 256; chunk++) {
      const data = flash.bytes(`wisp.o${n}${String.fromCharCode(chunk)}`);
      if (!data) break;
      const end = data.indexOf(0xff);
      text += Buffer.from(end < 0 ? data : data.subarray(0, end)).toString("latin1");
      if (end >= 0) break;
    }
    bytes += text.length;
    for (const line of text.split("\n")) {
      const k = line.split(" ");
      const key = k[0]!.slice(1);
      switch (line[0]) {
        case "r":
          if (k.length >= 4) readings.push({ seq: parseInt(key, 36), time: k[1]!.slice(1) });
          break;
        case "d":
          handed = Math.max(handed, parseInt(key, 36));
          break;
        case "p": {
          const ref = k[1] === "-" ? undefined : parseInt(k[1]!, 36);
          session.set(key, ref);
          if (ref !== undefined) handed = Math.max(handed, ref);
          break;
        }
        case "x":
          session.delete(key);
          break;
        case "t":
          boots.set(key, parseInt(k[1]!, 36));
          break;
        case "z":
          dropped = parseInt(key, 36);
      }
    }
  }
  const open = new Set([...session.values()].filter((v): v is number => v !== undefined));
  const waiting = readings.filter((r) => r.seq > handed || open.has(r.seq));
  const first = waiting[0];
  let oldest: number | undefined;
  if (first) {
    if (first.time.startsWith("~")) {
      const [boot, up] = first.time.slice(1).split(".");
      const epoch = boots.get(boot!);
      oldest = epoch === undefined ? undefined : epoch + parseInt(up!, 36);
    } else oldest = parseInt(first.time, 36);
  }
  return { readings: waiting.length, bytes, segments: segments.length, oldest, dropped };
}
