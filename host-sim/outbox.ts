// What a node's outbox holds, read from its flash as a debugger would read a board's: the StorageFile
// segments "wisp.o<n>" in the record format firmware/store/outbox.ts documents (and the README). The
// simulator shows it in the live view; nothing here runs on the device.

import { restorable } from "../firmware/mqtt/session.ts";
import { type FlashStorage, STORAGEFILE } from "./storage.ts";

/** 1 January 2020: a time before it is a clock that was never set. */
const SET = 1577836800000;

/** A base-36 number as the firmware takes it from flash: 1 to 10 digits, else NaN. */
function n36(s: string | undefined): number {
  return s !== undefined && /^[0-9a-z]{1,10}$/.test(s) ? parseInt(s, 36) : NaN;
}

/**
 * A line's fields when it is a whole, valid record, as firmware/store/outbox.ts's record() decides
 * (so the view counts what the node will send); undefined for a line cut short or corrupted.
 */
export function outboxRecord(line: string): string[] | undefined {
  if (!line.endsWith("\n")) return;
  const k = line.slice(0, -1).split(" ");
  const key = k[0]!.slice(1);
  const n = k.length;
  const t = k[1] ?? "";
  const sessionKey = /^[io][1-9][0-9]*$/.test(key) && Number(key.slice(1)) < 65536;
  switch (line[0]) {
    case "r": {
      if (n < 4 || !(n36(key) >= 0) || !"012".includes(t[0] ?? "x") || !k[2] || k[3]![0] !== "{" || !line.endsWith("}\n")) return;
      const time = t.slice(1);
      if (time[0] === "~") {
        const parts = time.slice(1).split(".");
        if (parts.length !== 2 || !(n36(parts[0]) >= 0 && n36(parts[1]) >= 0)) return;
      } else if (!(time.length < 9 && n36(time) > SET)) return;
      return k;
    }
    case "p":
      if (n < 2 || n > 3 || !(t === "-" || n36(t) >= 0)) return;
      if (n === 3) return /^[A-Za-z0-9+/]*=*$/.test(k[2]!) && k[2]!.length % 4 === 0 && restorable(key, Buffer.from(k[2]!, "base64").toString("latin1")) ? k : undefined;
      return t !== "-" && key[0] === "o" && sessionKey ? k : undefined;
    case "x":
      return n === 1 && sessionKey ? k : undefined;
    case "t":
      return n === 2 && n36(key) >= 0 && n36(t) > SET ? k : undefined;
    case "d":
    case "z":
      return n === 1 && n36(key) >= 0 ? k : undefined;
  }
}

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

/** Reads the outbox as the firmware does when it boots (openOutbox): lines that are not valid records skipped. */
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
    // whole lines only: the last one, if cut short, has no "\n"
    for (const line of text.match(/[^\n]*\n?/g)!) {
      const k = outboxRecord(line);
      if (!k) continue;
      const key = k[0]!.slice(1);
      switch (line[0]) {
        case "r":
          readings.push({ seq: parseInt(key, 36), time: k[1]!.slice(1) });
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
