// Fitting a screen of text into a terminal: the rows that matter most are kept, the rest dropped,
// and no line is wider than the terminal. A frame taller or wider than the terminal cannot be
// redrawn in place: the terminal scrolls or wraps it, and each redraw leaves a copy behind.
//
// A screen is a list of sections in display order (a header, the node table, the traffic, ...).
// Each row has a priority; rows are taken from the highest priority down while they fit, a
// section's title and the blank line before it count once the section shows any row, and a
// section with `overflow` gets one line saying what was left out. Rows keep their display order.

import cliTruncate from "cli-truncate";
import stringWidth from "string-width";

export interface Row {
  text: string;
  /** Higher is kept first. Equal priorities keep display order. -Infinity: never shown (an overflow line counts it). */
  priority: number;
}

export interface Section {
  rows: Row[];
  /** A line above the rows, shown while any row is. */
  title?: string;
  /** A blank line before the section while it shows. */
  gap?: boolean;
  /** One line in place of the rows left out (it costs a line only while some are); `kept` says which rows show. */
  overflow?: (hidden: number, kept: boolean[]) => string;
}

export interface Size {
  columns: number;
  rows: number;
}

/**
 * The lines to draw: at most `size.rows - 1` of them (log-update ends the frame with a newline,
 * which takes the last line), each at most `size.columns - 1` wide (a character in the last
 * column makes some terminals wrap).
 */
export function fit(sections: Section[], size: Size): string[] {
  const height = Math.max(1, size.rows - 1);
  const width = Math.max(10, size.columns - 1);
  const chosen = sections.map(() => 0);
  const keep = sections.map((s) => s.rows.map(() => false));
  const cost = (i: number, n: number): number => {
    const s = sections[i]!;
    if (n === 0) return 0;
    return (s.gap ? 1 : 0) + (s.title !== undefined ? 1 : 0) + n + (s.overflow && n < s.rows.length ? 1 : 0);
  };
  const order = sections
    .flatMap((s, i) => s.rows.map((row, j) => ({ i, j, priority: row.priority, seq: 0 })))
    .map((r, seq) => ({ ...r, seq }))
    .sort((a, b) => b.priority - a.priority || a.seq - b.seq);
  let used = 0;
  for (const r of order) {
    if (r.priority === -Infinity) continue;
    const delta = cost(r.i, chosen[r.i]! + 1) - cost(r.i, chosen[r.i]!);
    if (used + delta > height) continue;
    used += delta;
    chosen[r.i]!++;
    keep[r.i]![r.j] = true;
  }
  const lines: string[] = [];
  sections.forEach((s, i) => {
    if (!chosen[i]) return;
    if (s.gap && lines.length) lines.push("");
    if (s.title !== undefined) lines.push(s.title);
    s.rows.forEach((row, j) => {
      if (keep[i]![j]) lines.push(row.text);
    });
    if (s.overflow && chosen[i]! < s.rows.length) lines.push(s.overflow(s.rows.length - chosen[i]!, keep[i]!));
  });
  return lines.map((l) => truncate(l, width));
}

/** Cuts a line (with colours) to `width` columns, ending in "…" when it was longer. */
export function truncate(line: string, width: number): string {
  return stringWidth(line) <= width ? line : cliTruncate(line, width, { position: "end" });
}

/** Visible width of a line with colours. */
export function visibleWidth(text: string): number {
  return stringWidth(text);
}

/** Pads to `width` visible columns (colours do not count). */
export function padEnd(text: string, width: number): string {
  return text + " ".repeat(Math.max(0, width - stringWidth(text)));
}

export function padStart(text: string, width: number): string {
  return " ".repeat(Math.max(0, width - stringWidth(text))) + text;
}

export interface Part {
  text: string;
  /** Higher is kept first. */
  priority: number;
  /** Text (an error message) that may be cut to the room left, rather than dropped whole. */
  shrink?: boolean;
}

/**
 * Joins the parts that fit in `width` (by priority, whole parts only, in their order), so a row
 * never ends in half a number: `21.47 °C  48.3 %RH` rather than `21.47 °C  48.`.
 */
export function fitParts(parts: Part[], width: number, separator = "  "): string {
  const sep = stringWidth(separator);
  const keep = parts.map(() => false);
  let used = 0;
  const order = parts.map((p, i) => ({ ...p, i })).sort((a, b) => b.priority - a.priority || a.i - b.i);
  const texts = parts.map((p) => p.text);
  for (const p of order) {
    const w = stringWidth(p.text) + (used > 0 ? sep : 0);
    if (used + w > width) {
      // what is left of the row for a message cut short, when that is enough to read its start
      const room = width - used - (used > 0 ? sep : 0);
      if (!p.shrink || room < 12) continue;
      texts[p.i] = truncate(p.text, room);
      used = width;
    } else used += w;
    keep[p.i] = true;
  }
  return texts.filter((_, i) => keep[i]).join(separator);
}
