// The deep-sleep duty cycle of a battery node (config `sleep`): each wake samples once, sends what the
// outbox holds, answers the commands that waited, then the node says "asleep", disconnects cleanly
// and sleeps out the rest of its period (ESP32.deepSleep); a wake never lasts longer than `awake`
// seconds. Built in only when the config has a sleep section (WISP_SLEEP, tools/build.ts).

import type { Client } from "../mqtt/client";
import { samplesRunning } from "./sensors";
import { uptime } from "./time";

let period = 0;
let timer = 0;
let sleeping = false;
let busy: () => boolean;
let client: () => Client | undefined;
let statusTopic = "";

/**
 * Starts a wake: at most `awake` s, then sleep until `seconds` after it began. `working` says whether
 * the node still has something to do, `current` gives its MQTT client.
 */
export function startCycle(seconds: number, awake: number, working: () => boolean, current: () => Client | undefined, topic: string): void {
  period = seconds * 1000;
  busy = working;
  client = current;
  statusTopic = topic;
  timer = setTimeout(sleep, awake * 1000);
}

/** The period is `seconds` from now on (the `interval` command), this wake's sleep included. */
export function setPeriod(seconds: number): void {
  period = seconds * 1000;
}

/** Something finished: if nothing is left to do, sleep in a moment (a command that waited may still come). */
export function idle(): void {
  if (!period || sleeping || samplesRunning() || busy()) return;
  if (timer) clearTimeout(timer);
  timer = setTimeout(sleep, 300);
}

/** Says "asleep" (retained), disconnects cleanly (no will) and sleeps out the rest of the period. */
function sleep(): void {
  const c = client();
  timer = 0;
  if (sleeping) return;
  sleeping = true;
  if (c && c.connected) {
    c.publish(statusTopic, "asleep", { qos: 1, retain: true });
    c.end(false, deepSleep);
    // an acknowledgement that does not come must not keep the node awake
    setTimeout(deepSleep, 3000);
  } else deepSleep();
}

function deepSleep(): void {
  console.log("wisp: sleeping");
  // the period counts from the wake; ESP32.deepSleep takes a 32-bit count of µs (at most 2147 s)
  require("ESP32").deepSleep(Math.max(1000, period - uptime()) * 1000);
}
