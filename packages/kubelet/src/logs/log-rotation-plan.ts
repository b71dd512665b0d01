/**
 * What kubelet's container log manager (pkg/kubelet/logs) does to one
 * container's log file when it has grown past `containerLogMaxSize`, as a pure
 * plan over the file names next to it:
 *
 * 1. remove unused files: leftovers of an interrupted compression (`*.tmp`) and
 *    uncompressed rotated files whose `.gz` already exists;
 * 2. remove the oldest rotated files so that, with the file being rotated now and
 *    the new file the runtime reopens, at most `containerLogMaxFiles` remain
 *    (oldest first, so a `kubectl logs` reading newer files is not disturbed);
 * 3. gzip every rotated file still uncompressed (the one rotated last time):
 *    only the most recent rotated file stays plain;
 * 4. rename the current file to `<log>.<YYYYMMDD-hhmmss>` (UTC) and ask the
 *    runtime to reopen the container's log (CRI `ReopenContainerLog`).
 *
 * @module
 */
import { posix } from "node:path";
import { ConfigError } from "@worknode/core";
import { parseQuantity } from "../quantity.js";

/** kubelet's default `containerLogMaxSize` (10Mi). */
export const DEFAULT_CONTAINER_LOG_MAX_SIZE = "10Mi";

/** kubelet's default `containerLogMaxFiles` (5). */
export const DEFAULT_CONTAINER_LOG_MAX_FILES = 5;

/** kubelet's `containerLogMonitorInterval` (10 s). */
export const DEFAULT_CONTAINER_LOG_MONITOR_INTERVAL_MS = 10_000;

/** Suffix of compressed rotated logs. */
export const COMPRESSED_LOG_SUFFIX = ".gz";

/** Suffix of files being written (compression in progress). */
export const TMP_LOG_SUFFIX = ".tmp";

/** A container log rotation policy. */
export interface LogRotationPolicy {
  /** Rotate when the current file has at least this many bytes. */
  readonly maxSizeBytes: number;
  /** Maximum files per container, the current one included (at least 2). */
  readonly maxFiles: number;
}

/**
 * A validated policy from kubelet's settings: `containerLogMaxSize` as a
 * quantity (`"10Mi"`) or bytes, `containerLogMaxFiles` at least 2.
 * @throws ConfigError for a size that is not a positive quantity or fewer than 2 files
 */
export function logRotationPolicy(
  maxSize: string | number = DEFAULT_CONTAINER_LOG_MAX_SIZE,
  maxFiles: number = DEFAULT_CONTAINER_LOG_MAX_FILES,
): LogRotationPolicy {
  let bytes: number;
  try {
    bytes = parseQuantity(maxSize).value();
  } catch (e) {
    throw new ConfigError(`containerLogMaxSize: ${String(maxSize)} is not a quantity`, { cause: e });
  }
  if (!Number.isFinite(bytes) || bytes <= 0)
    throw new ConfigError(`containerLogMaxSize: ${String(maxSize)} must be positive`);
  if (!Number.isInteger(maxFiles) || maxFiles < 2)
    throw new ConfigError(`containerLogMaxFiles: ${maxFiles} must be an integer greater than 1`);
  return { maxSizeBytes: Math.floor(bytes), maxFiles };
}

/** The UTC timestamp suffix of a rotated file (Go layout `20060102-150405`). */
export function rotationTimestamp(epochMs: number): string {
  const d = new Date(epochMs);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return (
    `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-` +
    `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`
  );
}

/** Input of {@link planLogRotation}. */
export interface LogRotationInput {
  /** Absolute path of the container's current log file. */
  readonly logPath: string;
  /** Its size in bytes. */
  readonly sizeBytes: number;
  /** Names (not paths) of the files in the log file's directory. */
  readonly siblings: readonly string[];
  readonly policy: LogRotationPolicy;
  /** Now (epoch ms), for the rotated file's name. */
  readonly now: number;
}

/** What to do, in order; every entry is an absolute path. */
export interface LogRotationPlan {
  /** Unused files to delete (interrupted compressions, plain copies of compressed files). */
  readonly removeUnused: readonly string[];
  /** Oldest rotated files to delete beyond the file budget. */
  readonly removeExcess: readonly string[];
  /** Rotated files to gzip (to `<file>.gz`, then delete the plain file). */
  readonly compress: readonly string[];
  /** Rename the current file to this path, then reopen the container log; undefined: do not rotate. */
  readonly rotateTo: string | undefined;
}

/** The plan when nothing is to be done. */
export const NOTHING_TO_DO: LogRotationPlan = {
  removeUnused: [],
  removeExcess: [],
  compress: [],
  rotateTo: undefined,
};

/**
 * Plans one rotation step for a container log (see the module notes).
 * Nothing is done while the file is smaller than `maxSizeBytes`. When a file
 * of the target name already exists (two rotations within one second), the
 * clean-up is still done (the newest rotated file is left plain) but the
 * rotation waits for the next check.
 */
export function planLogRotation(input: LogRotationInput): LogRotationPlan {
  const { logPath, policy } = input;
  if (input.sizeBytes < policy.maxSizeBytes) return NOTHING_TO_DO;
  const dir = posix.dirname(logPath);
  const prefix = `${posix.basename(logPath)}.`;
  const rotated = input.siblings.filter((n) => n.startsWith(prefix) && n.length > prefix.length);
  const names = new Set(rotated);

  const unused = new Set<string>();
  for (const n of rotated) {
    if (n.endsWith(TMP_LOG_SUFFIX)) unused.add(n);
    else if (!n.endsWith(COMPRESSED_LOG_SUFFIX) && names.has(`${n}${COMPRESSED_LOG_SUFFIX}`)) unused.add(n);
  }
  // Oldest first: the timestamp suffix sorts by time (".gz" does not change the order).
  const kept = rotated.filter((n) => !unused.has(n)).sort();
  const maxRotated = Math.max(0, policy.maxFiles - 2);
  const excessCount = Math.max(0, kept.length - maxRotated);
  const excess = kept.slice(0, excessCount);
  const remaining = kept.slice(excessCount);
  const target = `${prefix}${rotationTimestamp(input.now)}`;
  const taken = names.has(target) || names.has(`${target}${COMPRESSED_LOG_SUFFIX}`);
  // Without a rotation now, the newest rotated file stays the most recent one: keep it plain.
  const toCompress = taken ? remaining.slice(0, -1) : remaining;
  const compress = toCompress.filter((n) => !n.endsWith(COMPRESSED_LOG_SUFFIX));
  const abs = (n: string) => posix.join(dir, n);
  return {
    removeUnused: [...unused].sort().map(abs),
    removeExcess: excess.map(abs),
    compress: compress.map(abs),
    rotateTo: taken ? undefined : abs(target),
  };
}
