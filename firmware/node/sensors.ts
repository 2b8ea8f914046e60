// The node's sensors: each gets its driver at its first sample; a failing one is reported once per
// new error, its driver dropped and made again at the next sample, while the others go on.
// Top-level functions over module state, as in app.ts (Espruino copies a function literal's source
// into RAM each time the code around it runs); per-sensor state in arrays by index.

import type { SensorConfig } from "./config";
import { createDriver, Driver } from "./drivers";

declare const WISP_DRIVER: { scd4x: boolean; ds18b20: boolean };
/** The deep-sleep duty cycle is built in: it needs to know when the wake's samples are done. */
declare const WISP_SLEEP: boolean;

/**
 * What a sensor reports: a `reading` (an object of numbers), or, with `reading` null, a `status`:
 * its error when it starts failing (or fails differently), "ok" when it works again.
 */
export type SensorReport = (name: string, reading: object | null, status?: string) => void;

let configs: SensorConfig[] = [];
let report: SensorReport;
const drivers: (Driver | 0)[] = [];
/** per sensor: the last failure reported; "" or undefined while it works */
const errors: string[] = [];
/**
 * per sensor: a sample is under way, so none is started. Only the SCD4x (up to 11 s waiting for
 * data) and parasite-powered DS18B20s (750 ms each, one after another) can outlast the shortest
 * interval; the flag is only built in with them.
 */
const busy: boolean[] = [];
/** samples started and not finished (built in with the duty cycle only) */
let running = 0;

/** Start with these sensors, reporting to `onReport` (once per boot). */
export function initSensors(list: SensorConfig[], onReport: SensorReport): void {
  configs = list;
  report = onReport;
}

/** Samples under way: a sleeping node waits for them before it sleeps. */
export function samplesRunning(): number {
  return running;
}

/** Sample every sensor once (each reports when its driver calls back). */
export function sampleSensors(): void {
  configs.forEach(sample);
}

function sample(c: SensorConfig, i: number): void {
  if ((WISP_DRIVER.scd4x || WISP_DRIVER.ds18b20) && busy[i]) return;
  if (!drivers[i]) {
    try {
      drivers[i] = createDriver(c);
    } catch (e) {
      return failed(i, e as Error);
    }
  }
  if (WISP_DRIVER.scd4x || WISP_DRIVER.ds18b20) busy[i] = true;
  if (WISP_SLEEP) running++;
  (drivers[i] as Driver).sample(function (err, r) {
    if (WISP_DRIVER.scd4x || WISP_DRIVER.ds18b20) busy[i] = false;
    if (WISP_SLEEP) running--;
    if (err) return failed(i, err);
    if (errors[i]) {
      errors[i] = "";
      report(c.name, null, "ok");
    }
    report(c.name, r as object);
  });
}

function failed(i: number, err: Error): void {
  drivers[i] = 0;
  if (err.message == errors[i]) return;
  errors[i] = err.message;
  report(configs[i].name, null, err.message);
}
