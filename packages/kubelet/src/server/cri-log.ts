/**
 * The CRI container log format and how kubelet turns it back into a
 * container's output (pkg/kubelet/kuberuntime/logs), without I/O.
 *
 * Each line of a CRI log file is `<RFC3339Nano time> <stdout|stderr> <tag> <content>`,
 * where the tag is `F` (the content ends a line) or `P` (a partial line, the next
 * entry continues it; more tags may follow after `:`). The output is the content:
 * partial entries are written back to back, so a split line comes out whole, and
 * with `timestamps` each output line starts with the time of its first entry in
 * kubelet's fixed format (`2006-01-02T15:04:05.000000000Z07:00`) and a space.
 * Malformed lines are skipped.
 *
 * `tailLines` counts output lines (a run of partial entries and the entry ending
 * it is one line). kubelet counts raw file lines instead, which can cut a long
 * split line in the middle; the results differ only for lines of more than
 * 16 KiB.
 *
 * @module
 */

const SPACE = 0x20;
const NEWLINE = 0x0a;

/** One parsed CRI log entry. */
export interface CriLogEntry {
  /** The time as written (RFC 3339 with up to nanoseconds). */
  readonly timestamp: string;
  /** Which stream the content came from. */
  readonly stream: "stdout" | "stderr";
  /** True for a `P` (partial) entry. */
  readonly partial: boolean;
  /** The content, without the line's newline. */
  readonly content: Buffer;
}

/**
 * Parses one line of a CRI log file (without its trailing newline).
 * Returns undefined for a malformed line.
 */
export function parseCriLogLine(line: Buffer): CriLogEntry | undefined {
  const s1 = line.indexOf(SPACE);
  if (s1 <= 0) return undefined;
  const s2 = line.indexOf(SPACE, s1 + 1);
  if (s2 < 0) return undefined;
  const stream = line.toString("latin1", s1 + 1, s2);
  if (stream !== "stdout" && stream !== "stderr") return undefined;
  const s3 = line.indexOf(SPACE, s2 + 1);
  if (s3 < 0) return undefined;
  const tags = line.toString("latin1", s2 + 1, s3);
  return {
    timestamp: line.toString("latin1", 0, s1),
    stream,
    partial: tags.split(":")[0] === "P",
    content: line.subarray(s3 + 1),
  };
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Rewrites an RFC 3339 time in kubelet's output format: always nine fractional
 * digits, `Z` for a zero offset. Returns the input unchanged when it is not RFC 3339.
 */
export function formatLogTimestamp(timestamp: string): string {
  const m = RFC3339.exec(timestamp);
  if (!m) return timestamp;
  const zone = m[3] === "+00:00" || m[3] === "-00:00" ? "Z" : m[3];
  return `${m[1]}.${(m[2] ?? "").padEnd(9, "0")}${zone}`;
}

/** Turns CRI log lines into output bytes, keeping track of line starts across partial entries. */
export class CriLogFormatter {
  private atLineStart = true;

  /** @param timestamps prefix each output line with its time */
  constructor(private readonly timestamps: boolean) {}

  /**
   * The output for one raw line of the file, without its newline; undefined when
   * the line is malformed. `complete` is false only for a last line that has no
   * newline yet: its content is written without a newline.
   */
  format(line: Buffer, complete = true): Buffer | undefined {
    const entry = parseCriLogLine(line);
    if (!entry) return undefined;
    const parts: Buffer[] = [];
    if (this.timestamps && this.atLineStart) {
      parts.push(Buffer.from(`${formatLogTimestamp(entry.timestamp)} `, "latin1"));
    }
    parts.push(entry.content);
    if (!entry.partial && complete) parts.push(Buffer.from("\n"));
    this.atLineStart = !entry.partial;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }
}

/**
 * Splits a buffer into its complete lines (without the newlines) and the
 * incomplete rest after the last newline.
 */
export function splitLines(buf: Buffer): { lines: Buffer[]; rest: Buffer } {
  const lines: Buffer[] = [];
  let start = 0;
  for (;;) {
    const nl = buf.indexOf(NEWLINE, start);
    if (nl < 0) break;
    lines.push(buf.subarray(start, nl));
    start = nl + 1;
  }
  return { lines, rest: buf.subarray(start) };
}

/**
 * The byte offset in a CRI log file's content where its last `lines` output lines
 * start (0 when the file has fewer; `buf.length` when `lines` is 0). A run of
 * partial entries ended by a full one is one line; an unfinished run at the end
 * counts as a line too; a malformed line counts as a line of its own.
 */
export function tailStartOffset(buf: Buffer, lines: number): number {
  if (lines <= 0) return buf.length;
  // Start offsets of output lines, in file order.
  const starts: number[] = [];
  let pos = 0;
  let inRun = false;
  while (pos < buf.length) {
    const nl = buf.indexOf(NEWLINE, pos);
    const end = nl < 0 ? buf.length : nl;
    const entry = parseCriLogLine(buf.subarray(pos, end));
    if (!inRun) starts.push(pos);
    inRun = entry?.partial === true;
    pos = end + 1;
  }
  return starts.length <= lines ? 0 : starts[starts.length - lines]!;
}
