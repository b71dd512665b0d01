/**
 * The CRI container log format: one line per record,
 * `<RFC3339Nano time> <stdout|stderr> <P|F> <content>` — `P` marks a partial
 * line continued by the next record, `F` a full one. Records are parsed by the
 * kubelet's own parser (`parseCriLogLine`); this module joins them per stream.
 *
 * @module
 */
import { parseCriLogLine } from "@worknode/kubelet";

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
    const entry = parseCriLogLine(Buffer.from(record));
    if (!entry) continue;
    const p = pending.get(entry.stream) ?? { time: entry.timestamp, parts: [] };
    p.parts.push(entry.content.toString());
    if (entry.partial) {
      pending.set(entry.stream, p);
      continue;
    }
    pending.delete(entry.stream);
    out.push({ time: p.time, stream: entry.stream, content: p.parts.join("") });
  }
  for (const [stream, p] of pending)
    out.push({ time: p.time, stream: stream as "stdout" | "stderr", content: p.parts.join("") });
  return out;
}

/** Keeps the last `n` lines (all when `n` is negative, as `--tail -1` means in crictl). */
export function tailLines<T>(lines: readonly T[], n: number): readonly T[] {
  return n < 0 ? lines : lines.slice(Math.max(0, lines.length - n));
}
