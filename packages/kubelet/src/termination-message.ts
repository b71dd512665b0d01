/**
 * Termination messages (kubelet's `getTerminationMessage` and
 * `readLastStringFromContainerLogs` in `kuberuntime_container.go`): the message of
 * an exited container is the tail of its termination message file (at most
 * {@link MAX_TERMINATION_MESSAGE_BYTES}); with `terminationMessagePolicy:
 * FallbackToLogsOnError`, a container that failed (non-zero exit code, and it did
 * start) and left that file empty or missing gets the tail of its CRI log instead:
 * the content of the last {@link MAX_TERMINATION_MESSAGE_LOG_LINES} log lines, at
 * most the last {@link MAX_TERMINATION_MESSAGE_LOG_BYTES} bytes of it.
 *
 * Pure functions; the runtime layer reads the files.
 *
 * @module
 */
import { parseCriLogLine, splitLines } from "./server/cri-log.js";

/** kubelet's limit on a termination message read from the file (`MaxContainerTerminationMessageLength`). */
export const MAX_TERMINATION_MESSAGE_BYTES = 4096;
/** Log lines read for a message from the logs (`MaxContainerTerminationMessageLogLines`). */
export const MAX_TERMINATION_MESSAGE_LOG_LINES = 80;
/** Bytes kept of a message from the logs (`MaxContainerTerminationMessageLogLength`). */
export const MAX_TERMINATION_MESSAGE_LOG_BYTES = 2048;

const NEWLINE = Buffer.from("\n");

/** The runtime reason of a container that could not even be started (it has no logs). */
const REASON_CONTAINER_CANNOT_RUN = "ContainerCannotRun";

/** What decides whether an exited container's termination message comes from its log. */
export interface TerminationMessageFallbackInput {
  /** `terminationMessagePolicy` (`File` when empty). */
  readonly policy: string;
  /** The container's exit code. */
  readonly exitCode: number | undefined;
  /** The runtime's reason for the exit, if any. */
  readonly reason?: string;
  /** What the termination message file held; `""` when it was empty, missing or not mounted. */
  readonly fileMessage: string;
}

/**
 * Whether an exited container's termination message is read from its log: the
 * policy is `FallbackToLogsOnError`, the container exited with a non-zero code
 * (not `ContainerCannotRun`: it never ran, so it has no logs) and its termination
 * message file gave nothing. A non-empty file always wins.
 */
export function terminationMessageFromLogsNeeded(input: TerminationMessageFallbackInput): boolean {
  return (
    input.policy === "FallbackToLogsOnError" &&
    input.exitCode !== undefined &&
    input.exitCode !== 0 &&
    input.reason !== REASON_CONTAINER_CANNOT_RUN &&
    input.fileMessage === ""
  );
}

/** Limits for {@link criLogContent} / {@link terminationMessageFromCriLog}. */
export interface CriLogTailOptions {
  /** Log lines (raw CRI lines, partial ones included, as kubelet's `tailLines`) to read; default 80. */
  readonly maxLines?: number;
  /** Bytes of content kept from the end; default 2048. */
  readonly maxBytes?: number;
  /**
   * Whether `log` starts at the beginning of the file (default `true`). When it is
   * a suffix, its first line may be cut and is dropped.
   */
  readonly fromStart?: boolean;
}

/**
 * The content of the last `maxLines` lines of a CRI-format container log
 * (`<RFC3339Nano time> <stdout|stderr> <P|F>[:<tags>] <content>`), in order,
 * stdout and stderr alike: a full line (`F`) keeps its newline, a partial one
 * (`P`) does not, so it joins the line after it — as `kubectl logs` prints them.
 * Lines count as kubelet's `tailLines` count them here: raw file lines, partial
 * ones included. Malformed lines are skipped (kubelet's `ReadLogs`).
 */
export function criLogContent(log: Uint8Array | string, options: CriLogTailOptions = {}): Buffer {
  const maxLines = options.maxLines ?? MAX_TERMINATION_MESSAGE_LOG_LINES;
  if (maxLines <= 0) return Buffer.alloc(0);
  const buf =
    typeof log === "string"
      ? Buffer.from(log, "utf8")
      : Buffer.from(log.buffer, log.byteOffset, log.byteLength);
  const { lines, rest } = splitLines(buf);
  const raw = lines.map((l) => ({ l, ended: true }));
  // The text after the last newline (a line still being written) is a line too.
  if (rest.length > 0) raw.push({ l: rest, ended: false });
  // As a suffix of the file, the first line may have lost its beginning.
  if (options.fromStart === false) raw.shift();
  const parts: Buffer[] = [];
  for (const { l, ended } of raw.slice(-maxLines)) {
    const entry = parseCriLogLine(l);
    if (!entry) continue;
    parts.push(entry.content);
    if (!entry.partial && ended) parts.push(NEWLINE);
  }
  return Buffer.concat(parts);
}

/**
 * A termination message from a CRI-format container log: the last `maxBytes`
 * (2048) bytes of the content of its last `maxLines` (80) lines
 * ({@link criLogContent}). When the cut falls inside a UTF-8 character, its
 * leftover continuation bytes are dropped (kubelet keeps them; the API server
 * would turn them into U+FFFD).
 */
export function terminationMessageFromCriLog(
  log: Uint8Array | string,
  options: CriLogTailOptions = {},
): string {
  const maxBytes = options.maxBytes ?? MAX_TERMINATION_MESSAGE_LOG_BYTES;
  const content = criLogContent(log, options);
  let tail = content.subarray(Math.max(0, content.length - maxBytes));
  if (tail.length < content.length) {
    let i = 0;
    while (i < tail.length && i < 3 && (tail[i]! & 0xc0) === 0x80) i++;
    tail = tail.subarray(i);
  }
  return tail.toString("utf8");
}
