/**
 * The CRI container log format: one line per record,
 * `<RFC3339Nano time> <stdout|stderr> <P|F> <content>` — `P` marks a partial
 * line continued by the next record, `F` a full one.
 *
 * @module
 */

/** One reassembled log line. */
export interface CriLogLine {
  /** Time of the line's first record, as written. */
  readonly time: string;
  readonly stream: "stdout" | "stderr";
  /** The content, without the trailing newline. */
  readonly content: string;
}

/**
 * Parses CRI log text into lines, joining partial records. Malformed records are skipped
 * (a log can be cut mid-line by rotation).
 */
export function parseCriLog(text: string): CriLogLine[] {
  const out: CriLogLine[] = [];
  const pending = new Map<string, { time: string; parts: string[] }>();
  for (const record of text.split("\n")) {
    const m = /^(\S+) (stdout|stderr) ([PF]) ?(.*)$/.exec(record);
    if (!m) continue;
    const [, time, stream, tag, content] = m as unknown as [
      string,
      string,
      "stdout" | "stderr",
      "P" | "F",
      string,
    ];
    const p = pending.get(stream) ?? { time, parts: [] };
    p.parts.push(content);
    if (tag === "P") {
      pending.set(stream, p);
      continue;
    }
    pending.delete(stream);
    out.push({ time: p.time, stream, content: p.parts.join("") });
  }
  for (const [stream, p] of pending)
    out.push({ time: p.time, stream: stream as "stdout" | "stderr", content: p.parts.join("") });
  return out;
}

/** Keeps the last `n` lines (all when `n` is negative, as `--tail -1` means in crictl). */
export function tailLines<T>(lines: readonly T[], n: number): readonly T[] {
  return n < 0 ? lines : lines.slice(Math.max(0, lines.length - n));
}
