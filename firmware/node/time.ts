// The time of day, from an SNTP server (RFC 4330) over Espruino's dgram, set with setTime().
//
// Not Wifi.setSNTP: on the ESP32, 2v29's setSNTP starts ESP-IDF's own SNTP client, which sets the
// system time behind the interpreter's back (libs/network/esp32/jswrap_esp32_network.c). Espruino
// keeps its timers as times relative to its last idle pass (src/jsinteractive.c), so the jump of
// about 55 years at the first sync makes every pending timer due at once and every setInterval run
// on each idle pass until it has caught up with the jump (Espruino issue #1612). setTime() moves
// the timers with the clock (jswrap_interactive_setTime, jstSystemTimeChanged).
//
// An ESP32 keeps the time through resets and deep sleep (its RTC timer); a power cut starts it at
// 0 (1970) again. The node asks when Wi-Fi comes up and then every hour; without an answer (3 tries,
// 2 s apart) again a minute later.

/** A time of day before this is a clock that was never set (1 January 2020). */
const SET = 1577836800000;
/** NTP's era 0 began in 1900: seconds from then to 1970. */
const UNIX_FROM_NTP = 2208988800;

let server = "";
let socket: any;
let sentAt = 0;
let tries = 0;
let timer = 0;
/** the first round of questions in this boot went unanswered */
let gaveUp = false;
let onSet: (epoch: number) => void;
let log: (text: string) => void;
/** Date.now() at boot; moves with setTime, so Date.now() - bootAt stays the uptime */
let bootAt = Date.now();

/** ms since boot. */
export function uptime(): number {
  return Date.now() - bootAt;
}

/**
 * The clock is not set and the first answer may still come (or Wi-Fi is not up yet): readings wait
 * for it rather than go without their time.
 */
export function timeUnsettled(): boolean {
  return !!server && !gaveUp && !clockKnown();
}

/** The clock has been set (in this boot, or before a reset or deep sleep). */
export function clockKnown(): boolean {
  return Date.now() > SET;
}

/**
 * Keeps the clock set from `host` (an NTP server's name or address); `set` gets the boot's epoch
 * (ms since 1970 at boot) each time the clock is set, and 0 when the first tries went unanswered.
 */
export function initTime(host: string, set: (epoch: number) => void, say: (text: string) => void): void {
  server = host;
  onSet = set;
  log = say;
}

/** Asks the server now (Wi-Fi just came up), unless a question is out. */
export function syncTime(): void {
  if (!server || tries) return;
  if (timer) clearTimeout(timer);
  timer = 0;
  ask();
}

function ask(): void {
  tries++;
  try {
    if (!socket) {
      socket = require("dgram").createSocket("udp4");
      socket.on("message", answered);
      socket.on("close", closed);
    }
    sentAt = Date.now();
    // LI 0, version 4, mode 3 (client); the rest may be zero (RFC 4330 section 5)
    socket.send("\x23" + "\0".repeat(47), 123, server);
  } catch (e) {
    closed();
  }
  timer = setTimeout(noAnswer, 2000);
}

/** Espruino closes a UDP socket whose send failed (no route while Wi-Fi is down). */
function closed(): void {
  socket = undefined;
}

function noAnswer(): void {
  timer = 0;
  if (tries < 3) return ask();
  tries = 0;
  timer = setTimeout(syncTime, 60000);
  if (gaveUp) return;
  log("time: no answer from " + server + "; readings go with their uptime until it answers (asked each minute)");
  gaveUp = true;
  // the readings that waited for it go now
  onSet(0);
}

/**
 * A reply: a server's (mode 4), not a kiss-o'-death (stratum 0), with a transmit time. The time it
 * took to come is split evenly between the two ways.
 */
function answered(msg: string): void {
  const now = Date.now();
  let s = ((byte(msg, 40) << 24) | (byte(msg, 41) << 16) | (byte(msg, 42) << 8) | byte(msg, 43)) >>> 0;
  if (msg.length < 48 || (byte(msg, 0) & 7) != 4 || !byte(msg, 1) || !s || !tries) return;
  // from 2036, era 1: the seconds start again from 0 (RFC 4330 section 3)
  if (s < 0x80000000) s += 4294967296;
  const t = (s - UNIX_FROM_NTP) * 1000 + Math.round((byte(msg, 44) * 1000) / 256 + (now - sentAt) / 2),
    first = !clockKnown();
  clearTimeout(timer);
  timer = setTimeout(syncTime, 3600000);
  tries = 0;
  setTime(t / 1000);
  bootAt += Date.now() - now;
  if (first) log("time: " + new Date(t).toISOString() + " from " + server);
  onSet(bootAt);
}

function byte(msg: string, i: number): number {
  return msg.charCodeAt(i);
}
