// The outbox: every reading kept in flash (Espruino Storage) from the moment it is taken until the
// broker has it, through broker and Wi-Fi outages, power cuts, reboots, a firmware update by
// `wisp flash` and deep sleep; and, in the same log, the MQTT client's session (its SessionStore),
// so that a reading handed to the client is resent as the same message after a reboot, never as a
// second one (QoS 2 stays exactly once).
//
// On flash it is a FIFO of segments: StorageFiles "wisp.o<n>" (n counting up), each kept within one
// StorageFile chunk (4,064 bytes on an ESP32), appended to, never rewritten, and erased whole once
// every reading in it is done (or, when the outbox is over maxBytes, dropped: the oldest first, the
// count kept). Flash is only ever appended to: a line per record, written with one StorageFile.write.
//
//   r<seq> <qos><time> <name> <json>  a reading, to <prefix>/<name>; <time> is ms since 1970, or
//                                     ~<boot>.<uptime> (ms since that boot) when the clock was not
//                                     set yet
//   d<seq>                            a QoS 0 reading was sent
//   p<key> <ref> <packet in base64>   the client's session: "o<id>" an outgoing flow (<ref>: the
//                                     reading it carries, or -), "i<id>" an incoming QoS 2 id
//   p<key> <ref>                      the PUBLISH of reading <ref> under packet id <id>: made again
//                                     from its "r" line when the outbox opens (a third of the bytes)
//   x<key>                            that flow is complete
//   t<boot> <epoch>                   the clock of boot <boot> started at <epoch> (ms since 1970)
//   z<count>                          readings dropped since the outbox began
// Numbers are base 36. Readings are handed to the client in order, so a reading whose seq is at most
// the highest one a "d" or "p" names is done or in the session.
//
// Nothing read from flash is trusted: a record is used only when it is whole and valid (its fields
// there, numbers base 36 of at most 10 digits, a packet that decodes as the PUBLISH or PUBREL its key
// names); any other line is skipped and counted (outboxState). A line cut short by a power cut has
// no "\n"; the next boot ends it with "#\n", which no valid record ends with, so that it stays
// skipped on every boot after.
//
// What it keeps in RAM: a few numbers per segment and the session's packets (at most the client's
// in-flight window): readings are read back from flash one at a time, when they go.

import { restorable } from "../mqtt/session";
import { storage } from "../platform/storage";

/** StorageFile chunk of an ESP32 (min(4096, page) - 32, src/jswrap_storage.c): one segment. */
const SEGMENT = 4064;
/** Storage a segment takes: its chunk and the chunk's header. */
const FOOTPRINT = 4096;
/** A time of day before this is a clock that was never set (1 January 2020). */
const SET = 1577836800000;

type StorageFile = any;

/** segment numbers, oldest first; per segment: first and last reading seq (-1: none), bytes */
let segs: number[] = [];
let firsts: number[] = [];
let lasts: number[] = [];
let lens: number[] = [];
let maxSegs = 2;
let appender: StorageFile;
/** the reader: its segment's index and file; a reading read and not yet taken */
let readAt = 0;
let reader: StorageFile;
let peeked: any[] | undefined;
/** the next reading's seq; the highest handed to the client; those handed and not done */
let nextSeq = 0;
let handed = -1;
let open: number[] = [];
/** the session: key -> [segment number of its line, packet, ref] */
let session: { [key: string]: any[] } = {};
let dropped = 0;
let droppedSeg = -1;
/** lines in flash that are not whole, valid records */
let skipped = 0;
/** boot id -> [epoch, segment number of its line]; this boot's id */
let boots: { [id: string]: number[] } = {};
let boot = "";
let bootEpoch = 0;
let report: (text: string) => void;
/** makes the PUBLISH of a reading again: (topic, payload, qos, packet id) */
let encode: ((topic: string, payload: string, qos: number, id: number) => string) | undefined;

/** Segment `n` as a StorageFile open for "r" or "a". */
function file(n: number, mode: "r" | "a"): any {
  return storage.open("wisp.o" + n, mode);
}

function b36(n: number): string {
  // whole numbers only: Espruino's Date.now() has a fraction (it counts RTC ticks), and "mx23i4st.i"
  // would be read back as no number at all, its reading skipped
  return Math.round(n).toString(36);
}

/** A base-36 number from flash: NaN unless it is 1 to 10 digits (under 2^53, so exact). */
function n36(s: string): number {
  return s && s.length < 11 && /^[0-9a-z]+$/.test(s) ? parseInt(s, 36) : NaN;
}

/** "o<id>" or "i<id>", <id> a packet id (1 to 65535) in decimal. */
function sessionKey(key: string): boolean {
  return /^[io][1-9][0-9]*$/.test(key) && +key.substr(1) < 65536;
}

/**
 * A record's fields (the line split at spaces, its "\n" off), or undefined when the line is not a
 * whole, valid record: cut short, ended with "#" by a boot after a power cut, or corrupted.
 */
function record(line: string): any[] | undefined {
  const k: any[] = line.slice(0, -1).split(" "),
    key = k[0].substr(1),
    n = k.length,
    c = line[0];
  let t = k[1];
  if (line[line.length - 1] != "\n") return;
  if (c == "r") {
    // r<seq> <qos><time> <name> <json object>
    if (n < 4 || !(n36(key) >= 0) || "012".indexOf(t[0]) < 0 || !k[2] || k[3][0] != "{" || line.substr(-2) != "}\n") return;
    t = t.substr(1);
    if (t[0] == "~") {
      t = t.substr(1).split(".");
      if (t.length != 2 || !(n36(t[0]) >= 0 && n36(t[1]) >= 0)) return;
    } else if (!(t.length < 9 && n36(t) > SET)) return;
  } else if (c == "p") {
    // p<key> <ref> [<packet in base64>]: the packet checked here; a reading's, made again, when it is
    if (n < 2 || n > 3 || !(t == "-" || n36(t) >= 0)) return;
    if (n == 3) {
      try {
        if (!/^[A-Za-z0-9+\/]*=*$/.test(k[2]) || k[2].length % 4 || !restorable(key, (k[2] = atob(k[2])))) return;
      } catch (e) {
        return;
      }
    } else if (t == "-" || key[0] != "o" || !sessionKey(key)) return;
  } else if (c == "x") {
    if (n != 1 || !sessionKey(key)) return;
  } else if (c == "t") {
    if (n != 2 || !(n36(key) >= 0 && n36(t) > SET)) return;
  } else if ((c != "d" && c != "z") || n != 1 || !(n36(key) >= 0)) return;
  return k;
}

/**
 * Opens the outbox at boot: reads what the segments hold, drops the oldest past `maxBytes`.
 * `problem` is told what goes wrong with Storage (the node reports it and keeps running);
 * `publish` makes a reading's PUBLISH packet, so that the session keeps a reading's by reference.
 */
export function openOutbox(maxBytes: number, problem: (text: string) => void, publish?: (topic: string, payload: string, qos: number, id: number) => string): void {
  report = problem;
  encode = publish;
  maxSegs = Math.max(2, (maxBytes / FOOTPRINT) | 0);
  let list: string[] = [],
    i,
    f,
    line,
    key,
    k,
    torn = 0;
  try {
    list = storage.list(/^wisp\.o\d+$/, { sf: true });
  } catch (e) {
    failed(e);
  }
  segs = list.map((n) => +n.substr(6)).sort((a, b) => a - b);
  for (i = 0; i < segs.length; i++) {
    firsts[i] = lasts[i] = -1;
    lens[i] = 0;
    f = file(segs[i], "r");
    torn = 0;
    while ((line = f.readLine()) !== undefined) {
      lens[i] += line.length;
      torn = line[line.length - 1] != "\n" ? 1 : 0;
      if (!(k = record(line))) {
        skipped++;
        continue;
      }
      key = k[0].substr(1);
      switch (line[0]) {
        case "r":
          k = n36(key);
          if (firsts[i] < 0) firsts[i] = k;
          lasts[i] = k;
          nextSeq = Math.max(nextSeq, k + 1);
          break;
        case "d":
          handed = Math.max(handed, n36(key));
          break;
        case "p":
          // without its packet: the PUBLISH of the reading it names, made again below
          session[key] = [segs[i], k[2], k[1] == "-" ? undefined : n36(k[1])];
          if (k[1] != "-") handed = Math.max(handed, n36(k[1]));
          break;
        case "x":
          delete session[key];
          break;
        case "t":
          boots[key] = [n36(k[1]), segs[i]];
          break;
        case "z":
          dropped = n36(key);
          droppedSeg = segs[i];
      }
    }
  }
  nextSeq = Math.max(nextSeq, handed + 1);
  for (key in session) {
    k = session[key];
    if (k[1] == null) {
      f = reading(k[2]);
      if (f && encode) k[1] = encode(f[2], f[3], f[1], +key.substr(1));
      else {
        // the reading it names is not in flash
        delete session[key];
        skipped++;
        continue;
      }
    }
    if (k[2] != null) open.push(k[2]);
  }
  if (!segs.length) addSegment();
  else appender = file(segs[segs.length - 1], "a");
  // a line cut short by a power cut: ended so that no boot takes it for a record, the next record on a line of its own
  if (torn) append("#\n");
  if (skipped) report("outbox: " + skipped + " lines in flash not whole records (cut short or corrupted), skipped");
  while (segs.length > maxSegs) dropHead();
  reader = file(segs[0], "r");
  readAt = 0;
}

/**
 * Readings not yet acknowledged, bytes of the outbox's segments, readings dropped so far, lines of
 * flash skipped at boot as not whole, valid records.
 */
export function outboxState(): number[] {
  let bytes = 0;
  for (const n of lens) bytes += n;
  return [nextSeq - 1 - handed + open.length, bytes, dropped, skipped];
}

/** This boot's clock started at `epoch` (ms since 1970): readings taken before it was set get their time. */
export function clockSet(epoch: number): void {
  bootEpoch = epoch;
  if (boot) {
    boots[boot] = [epoch, segs[segs.length - 1]];
    append("t" + boot + " " + b36(epoch) + "\n");
  }
}

/**
 * Keeps a reading (`json`, an object's JSON) for <prefix>/<topic>, taken at `uptime` (ms since boot),
 * `ago` ms ago (0 or omitted: now; more for one that waited in RAM while Storage refused it). False
 * when Storage would not take it (the problem was reported).
 */
export function outboxAdd(topic: string, qos: number, json: string, uptime: number, ago?: number): boolean {
  const now = Date.now() - (ago || 0);
  let time;
  if (now > SET) time = b36(now);
  else {
    if (!boot) boot = b36((Math.random() * 1679616) | 0); // 4 base-36 digits, new each boot
    time = "~" + boot + "." + b36(uptime);
  }
  const line = "r" + b36(nextSeq) + " " + qos + time + " " + topic + " " + json + "\n";
  if (!append(line)) return false;
  lasts[lasts.length - 1] = nextSeq;
  if (firsts[firsts.length - 1] < 0) firsts[firsts.length - 1] = nextSeq;
  nextSeq++;
  return true;
}

/**
 * The oldest reading not yet handed to the client: [seq, qos, topic, payload with "ts" (or, when its
 * time is unknown, "uptime" in s)], or undefined. It counts as handed once outboxHanded(seq) says so.
 */
export function outboxNext(): any[] | undefined {
  let line, t;
  while (!peeked) {
    try {
      line = reader.readLine();
    } catch (e) {
      return void failed(e);
    }
    if (line === undefined) {
      if (readAt >= segs.length - 1) return;
      reader = file(segs[++readAt], "r");
      continue;
    }
    t = compose(line);
    if (t && t[0] > handed) peeked = t;
  }
  return peeked;
}

/**
 * A whole "r" line (a line cut by a power cut has no JSON end) as [seq, qos, topic, payload with
 * "ts" in ms since 1970, or, when its time is unknown, "uptime" in s since that boot].
 */
function compose(line: string): any[] | undefined {
  const k = line[0] == "r" ? record(line) : undefined;
  let at, epoch;
  if (!k) return;
  k[3] = k.slice(3).join(" ") + "\n";
  at = k[1].substr(1);
  if (at[0] == "~") {
    at = at.substr(1).split(".");
    epoch = at[0] == boot && bootEpoch ? bootEpoch : boots[at[0]] ? boots[at[0]][0] : 0;
    at = epoch ? epoch + n36(at[1]) : -n36(at[1]);
  } else at = n36(at);
  return [n36(k[0].substr(1)), +k[1][0], k[2], k[3].slice(0, -2) + (k[3].length > 4 ? "," : "") + (at > 0 ? '"ts":' + Math.round(at) : '"uptime":' + -at / 1000) + "}"];
}

/** Reading `seq`, read back from its segment, composed as outboxNext() gives it. */
function reading(seq: number): any[] | undefined {
  let i = 0,
    f,
    line,
    r;
  while (i < segs.length && !(lasts[i] >= seq)) i++;
  if (i == segs.length || firsts[i] > seq) return;
  f = file(segs[i], "r");
  while ((line = f.readLine()) !== undefined) if ((r = compose(line)) && r[0] == seq) return r;
}

/** The reading outboxNext() gave is with the client now. */
export function outboxHanded(seq: number): void {
  peeked = undefined;
  handed = seq;
  open.push(seq);
}

/** A QoS 0 reading left (QoS 1 and 2 are done when their flow completes in the session). */
export function outboxSent(seq: number): void {
  append("d" + b36(seq) + "\n");
  done(seq);
}

/** Readings of the outbox (or handed by it) still waiting for their broker. */
export function outboxPending(): number {
  return outboxState()[0];
}

/** The client's SessionStore, in the outbox's log. */
export const sessionStore = {
  put: function (key: string, packet: string, ref?: number) {
    const old = session[key];
    if (ref == null && old) ref = old[2];
    session[key] = [segs[segs.length - 1], packet, ref];
    // a reading's PUBLISH is made again from its "r" line: only the reference goes to flash
    putLine(key, ref != null && encode && packet.charCodeAt(0) >> 4 == 3);
  },
  remove: function (key: string) {
    const e = session[key];
    if (!e) return;
    delete session[key];
    append("x" + key + "\n");
    if (e[2] != null) done(e[2]);
  },
  load: function (): string[][] {
    const out = [];
    for (const key in session) out.push([key, session[key][1]]);
    return out;
  },
};

function putLine(key: string, byRef?: any): void {
  const e = session[key];
  append("p" + key + " " + (e[2] == null ? "-" : b36(e[2])) + (byRef ? "" : " " + btoa(e[1])) + "\n");
}

/** A reading handed out is done: segments whose readings are all done go. */
function done(seq: number): void {
  const i = open.indexOf(seq);
  if (i >= 0) open.splice(i, 1);
  while (segs.length > 1 && lasts[0] <= handed && !open.some(before)) eraseHead();
}

function before(seq: number): boolean {
  return seq <= lasts[0];
}

/**
 * The oldest segment goes, its readings not handed yet counted as dropped (those with the client
 * stay in the session, whose lines move on).
 */
function dropHead(): void {
  const first = Math.max(firsts[0], handed + 1),
    n = lasts[0] >= first ? lasts[0] - first + 1 : 0;
  if (lasts[0] > handed) handed = lasts[0];
  if (peeked && peeked[0] <= handed) peeked = undefined;
  if (n) {
    dropped += n;
    report("outbox full: the oldest " + n + " readings dropped");
  }
  eraseHead(n);
}

/**
 * Erases the oldest segment; what of the session, the dropped count and the boot clocks had its
 * line there is written again in the newest (`z` also when `dropping`).
 */
function eraseHead(dropping?: number): void {
  const n = segs.shift() as number;
  let key;
  firsts.shift();
  lasts.shift();
  lens.shift();
  try {
    file(n, "r").erase();
  } catch (e) {
    failed(e);
  }
  if (readAt) readAt--;
  else reader = file(segs[0], "r");
  if (!segs.length) addSegment();
  for (key in session) if (session[key][0] == n) putLine(key);
  for (key in boots) if (boots[key][1] == n) append("t" + key + " " + b36(boots[key][0]) + "\n");
  if (dropping || droppedSeg == n) {
    droppedSeg = segs[segs.length - 1];
    append("z" + b36(dropped) + "\n");
  }
}

/** A new segment to append to; the oldest is dropped when the outbox is at maxBytes. */
function addSegment(): void {
  const n = segs.length ? segs[segs.length - 1] + 1 : 0;
  segs.push(n);
  firsts.push(-1);
  lasts.push(-1);
  lens.push(0);
  appender = file(n, "a");
  if (segs.length > maxSegs) dropHead();
}

/** Appends a line to the newest segment (a new one when it would not fit). False when Storage refused. */
function append(line: string): boolean {
  const i = segs.length - 1;
  try {
    if (lens[i] && lens[i] + line.length > SEGMENT) {
      addSegment();
      return append(line);
    }
    // a write that failed leaves its StorageFile unable to write: open it again
    if (!appender.mode) appender = file(segs[i], "a");
    appender.write(line);
    lens[i] += line.length;
    return true;
  } catch (e) {
    failed(e);
    return false;
  }
}

function failed(e: any): void {
  report("Storage: " + (e.message || e));
}
