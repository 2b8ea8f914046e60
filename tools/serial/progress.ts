// Upload progress: a bar with bytes and rate on a terminal (cli-progress), plain lines otherwise.

import cliProgress from "cli-progress";

export interface Progress {
  /** `value` bytes of the total are done; `file` is the one being written. */
  update(value: number, file: string): void;
  /** A line above the bar (or a plain line). */
  log(line: string): void;
  stop(): void;
}

export function startProgress(total: number, enabled = true, stream: NodeJS.WriteStream = process.stderr, say: (line: string) => void = (line) => console.log(line)): Progress {
  if (!enabled || !stream.isTTY) {
    return { update: () => undefined, log: say, stop: () => undefined };
  }
  const started = performance.now();
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: " {file} |{bar}| {kb}/{totalKb} KB  {rate} KB/s",
      hideCursor: true,
      clearOnComplete: true,
      barsize: 30,
    },
    cliProgress.Presets.shades_classic,
  );
  const kb = (n: number) => (n / 1024).toFixed(1);
  let value = 0;
  let payload = { file: "", kb: kb(0), totalKb: kb(total), rate: "0.0" };
  bar.start(total, 0, payload);
  return {
    update(v, file) {
      value = v;
      const s = (performance.now() - started) / 1000;
      payload = { ...payload, file: file.padEnd(10), kb: kb(v), rate: s > 0 ? kb(v / s) : "0.0" };
      bar.update(v, payload);
    },
    log(line) {
      bar.stop();
      say(line);
      bar.start(total, value, payload);
    },
    stop() {
      bar.stop();
    },
  };
}
