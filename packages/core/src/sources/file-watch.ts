/**
 * Watching a file or a directory for content changes, the way kubelet watches
 * its static-pod path: inotify (`fs.watch`) for quick reaction, plus a periodic
 * full rescan (kubelet's `--file-check-frequency`, 20 s) that catches whatever
 * the watch missed. Every scan reads the content and compares hashes, so a
 * touched-but-unchanged file, or an event about an unrelated file, produces
 * no notification.
 *
 * The watch is placed on a directory, never on the file itself, so that
 * editors' atomic rename-replace, files appearing later and deletions are all
 * seen: for a file, its parent directory; for a directory, the directory
 * itself (its parent while it does not exist). Each scan re-checks that
 * target, so a directory deleted and recreated (or a symbolic link retargeted)
 * is watched again. When no target exists or `fs.watch` fails (such as the
 * inotify watch limit), the periodic rescan alone detects changes.
 * Bursts of events are coalesced (debounced) into one scan.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { type FSWatcher, watch as fsWatch, type WatchListener } from "node:fs";
import { open, readdir, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { type Clock, realClock, type TimerHandle } from "../util/clock.js";
import { describeError } from "../util/errors.js";
import { type Logger, silentLogger } from "../util/logging.js";

/** Whether the watched path is a single file or a directory of files. */
export type WatchedPathKind = "file" | "directory";

/** One file read by a scan: its content, or why it could not be read. */
export type WatchedFile =
  | {
      /** Path of the file (the watched path, or the directory joined with the entry name). */
      readonly path: string;
      readonly ok: true;
      /** Content decoded as UTF-8. */
      readonly content: string;
      /** SHA-256 of the raw bytes, hex. */
      readonly hash: string;
    }
  | {
      readonly path: string;
      readonly ok: false;
      /** Why the file could not be read (permission, too large, not a regular file …). */
      readonly error: Error;
    };

/** The state of a watched path at one scan. */
export interface PathSnapshot {
  /** The watched path, as given. */
  readonly path: string;
  readonly kind: WatchedPathKind;
  /**
   * Whether the path exists. A missing path (or, for a directory, a missing
   * directory) is not an error: the snapshot is empty.
   */
  readonly exists: boolean;
  /**
   * Set when the path itself could not be read (for example permission denied,
   * or a directory was expected and a file found). Consumers should keep their
   * previous state: the snapshot says nothing about the content.
   */
  readonly error?: Error;
  /**
   * The files read: for a file path at most one; for a directory its matching
   * regular files (hidden ones excluded, subdirectories not entered), sorted by name.
   */
  readonly files: readonly WatchedFile[];
}

/** The subset of `fs.watch` the watcher uses; replaceable by tests. */
export type WatchFunction = (
  path: string,
  options: { persistent: boolean },
  listener: WatchListener<string>,
) => FSWatcher;

/** Options of {@link PathWatcher}. */
export interface PathWatcherOptions {
  /** The file or directory to watch. It need not exist yet. */
  readonly path: string;
  /** Whether `path` is a file or a directory of files. */
  readonly kind: WatchedPathKind;
  /**
   * Called with the new snapshot when the content changed (and once with the
   * initial snapshot). Calls never overlap; a returned promise is awaited.
   */
  readonly onChange: (snapshot: PathSnapshot) => void | Promise<void>;
  /** Clock for the periodic rescan and the debounce; default the real clock. */
  readonly clock?: Clock;
  /** Logger; default silent. */
  readonly logger?: Logger;
  /** Interval of the full rescan in milliseconds; default 20 000 (kubelet's file check frequency); 0 disables. */
  readonly rescanIntervalMs?: number;
  /** Delay between a filesystem event and the scan it triggers, coalescing bursts; default 100 ms. */
  readonly debounceMs?: number;
  /** Use `fs.watch` (inotify); default true. With false, only periodic rescans detect changes. */
  readonly fsWatch?: boolean;
  /** Replacement for `fs.watch` (tests). */
  readonly watchFn?: WatchFunction;
  /** For a directory: which entry names to read (hidden names are always skipped). Default: all. */
  readonly include?: (name: string) => boolean;
  /** Files larger than this are reported as unreadable instead of read; default 8 MiB. */
  readonly maxFileBytes?: number;
}

/** Default interval of the periodic rescan (kubelet's `--file-check-frequency`). */
export const DEFAULT_RESCAN_INTERVAL_MS = 20_000;
/** Default debounce between a filesystem event and the scan. */
export const DEFAULT_DEBOUNCE_MS = 100;
/** Default size limit of a watched file. */
export const DEFAULT_MAX_FILE_BYTES = 8 * 1024 * 1024;

/** Counters of a {@link PathWatcher}, for diagnostics and tests. */
export interface PathWatcherStats {
  /** Scans completed (initial, after events, periodic and requested). */
  readonly scans: number;
  /** Snapshots delivered to `onChange`. */
  readonly changes: number;
  /** Filesystem events received from `fs.watch`. */
  readonly fsEvents: number;
}

interface ActiveWatch {
  readonly handle: FSWatcher;
  readonly dir: string;
  readonly dev: number;
  readonly ino: number;
}

/**
 * Watches a file or a directory and reports content changes.
 *
 * ```ts
 * const w = new PathWatcher({ path: "/etc/worknode/services.yaml", kind: "file", onChange: (s) => load(s) });
 * await w.start();   // initial snapshot delivered
 * …
 * await w.stop();
 * ```
 */
export class PathWatcher {
  private readonly path: string;
  private readonly kind: WatchedPathKind;
  private readonly onChange: (snapshot: PathSnapshot) => void | Promise<void>;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly rescanIntervalMs: number;
  private readonly debounceMs: number;
  private readonly useFsWatch: boolean;
  private readonly watchFn: WatchFunction;
  private readonly include: (name: string) => boolean;
  private readonly maxFileBytes: number;

  private state: "new" | "running" | "stopped" = "new";
  private active: ActiveWatch | null = null;
  private watchFailureLogged = false;
  private debounceTimer: TimerHandle | null = null;
  private periodicTimer: TimerHandle | null = null;
  /** Tail of the scan queue: scans run one at a time. */
  private chain: Promise<void> = Promise.resolve();
  /** A scan queued and not yet started; further requests join it. */
  private queued: Promise<void> | null = null;
  private lastFingerprint: string | undefined;
  private last: PathSnapshot | undefined;
  private counters = { scans: 0, changes: 0, fsEvents: 0 };

  constructor(options: PathWatcherOptions) {
    this.path = options.path;
    this.kind = options.kind;
    this.onChange = options.onChange;
    this.clock = options.clock ?? realClock;
    this.logger = options.logger ?? silentLogger();
    this.rescanIntervalMs = options.rescanIntervalMs ?? DEFAULT_RESCAN_INTERVAL_MS;
    this.debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    this.useFsWatch = options.fsWatch ?? true;
    this.watchFn = options.watchFn ?? (fsWatch as WatchFunction);
    this.include = options.include ?? (() => true);
    this.maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
    if (!(this.rescanIntervalMs >= 0)) throw new RangeError("rescanIntervalMs must be >= 0");
    if (!(this.debounceMs >= 0)) throw new RangeError("debounceMs must be >= 0");
  }

  /** Reads the path, delivers the initial snapshot, then starts watching. Resolves once delivered. */
  async start(): Promise<void> {
    if (this.state !== "new") throw new Error("PathWatcher can be started only once");
    this.state = "running";
    await this.requestScan();
  }

  /** Scans now (after any scan in progress); resolves once done and any change delivered. No-op unless running. */
  rescan(): Promise<void> {
    if (this.state !== "running") return Promise.resolve();
    return this.requestScan();
  }

  /** The last snapshot delivered, if any. */
  snapshot(): PathSnapshot | undefined {
    return this.last;
  }

  /** Counters of scans, changes and filesystem events so far. */
  stats(): PathWatcherStats {
    return { ...this.counters };
  }

  /** The directory currently watched with `fs.watch`, if any. */
  watchedDirectory(): string | undefined {
    return this.active?.dir;
  }

  /** Closes the watch and cancels timers; waits for a scan in progress. Idempotent. */
  async stop(): Promise<void> {
    if (this.state === "stopped") return;
    this.state = "stopped";
    this.debounceTimer?.cancel();
    this.debounceTimer = null;
    this.periodicTimer?.cancel();
    this.periodicTimer = null;
    this.closeWatch();
    await this.chain;
  }

  private requestScan(): Promise<void> {
    if (this.queued) return this.queued;
    const next = this.chain.then(() => {
      this.queued = null;
      return this.scanOnce();
    });
    this.queued = next;
    this.chain = next.catch(() => {});
    return next;
  }

  private onFsEvent(): void {
    if (this.state !== "running") return;
    this.counters.fsEvents++;
    if (this.debounceTimer) return;
    this.debounceTimer = this.clock.setTimeout(() => {
      this.debounceTimer = null;
      void this.requestScan();
    }, this.debounceMs);
  }

  private schedulePeriodic(): void {
    this.periodicTimer?.cancel();
    this.periodicTimer = null;
    if (this.rescanIntervalMs === 0 || this.state !== "running") return;
    this.periodicTimer = this.clock.setTimeout(() => {
      this.periodicTimer = null;
      void this.requestScan();
    }, this.rescanIntervalMs);
  }

  private async scanOnce(): Promise<void> {
    if (this.state !== "running") return;
    // Watch before reading, so that a change made while reading triggers another scan.
    if (this.useFsWatch) await this.ensureWatch();
    if (this.state !== "running") return;
    const snap = await readPathSnapshot(this.path, this.kind, {
      include: this.include,
      maxFileBytes: this.maxFileBytes,
    });
    if (this.state !== "running") return;
    this.counters.scans++;
    this.schedulePeriodic();
    const fingerprint = snapshotFingerprint(snap);
    if (fingerprint === this.lastFingerprint) return;
    this.lastFingerprint = fingerprint;
    this.last = snap;
    this.counters.changes++;
    try {
      await this.onChange(snap);
    } catch (err) {
      this.logger.error({ err, path: this.path }, "handling a change of the watched path failed");
    }
  }

  /** The directory to watch: the file's parent, or the directory itself (its parent while it is missing). */
  private async watchTarget(): Promise<{ dir: string; dev: number; ino: number } | null> {
    const candidates =
      this.kind === "file"
        ? [dirname(resolve(this.path))]
        : [resolve(this.path), dirname(resolve(this.path))];
    for (const dir of candidates) {
      try {
        const st = await stat(dir);
        if (st.isDirectory()) return { dir, dev: st.dev, ino: st.ino };
      } catch {
        // missing: try the next candidate
      }
    }
    return null;
  }

  private async ensureWatch(): Promise<void> {
    const target = await this.watchTarget();
    if (this.state !== "running") return;
    const cur = this.active;
    if (cur && target && cur.dir === target.dir && cur.dev === target.dev && cur.ino === target.ino) return;
    this.closeWatch();
    if (!target) return;
    try {
      const handle = this.watchFn(target.dir, { persistent: false }, () => this.onFsEvent());
      handle.on("error", (err) => {
        this.logger.debug({ err, dir: target.dir }, "watch of directory failed; will re-establish");
        if (this.active?.handle === handle) this.closeWatch();
        this.onFsEvent();
      });
      this.active = { handle, ...target };
      this.watchFailureLogged = false;
      this.logger.debug({ dir: target.dir, path: this.path }, "watching directory");
    } catch (err) {
      if (!this.watchFailureLogged) {
        this.watchFailureLogged = true;
        this.logger.warn(
          { err: describeError(err), dir: target.dir },
          "cannot watch directory; relying on periodic rescans",
        );
      }
    }
  }

  private closeWatch(): void {
    const cur = this.active;
    this.active = null;
    if (!cur) return;
    try {
      cur.handle.close();
    } catch {
      // already closed
    }
  }
}

/** Options of {@link readPathSnapshot}. */
export interface ReadPathOptions {
  /** For a directory: which entry names to read (hidden names are always skipped). */
  readonly include?: (name: string) => boolean;
  /** Files larger than this are reported as unreadable; default 8 MiB. */
  readonly maxFileBytes?: number;
}

/**
 * Reads a file or a directory of files once (what {@link PathWatcher} does at each scan).
 * Never throws: problems are reported inside the snapshot.
 */
export async function readPathSnapshot(
  path: string,
  kind: WatchedPathKind,
  options: ReadPathOptions = {},
): Promise<PathSnapshot> {
  const max = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  if (kind === "file") {
    const file = await readFileLimited(path, max);
    if (!file.ok && errnoCode(file.error) === "ENOENT") return { path, kind, exists: false, files: [] };
    if (!file.ok && errnoCode(file.error) === "EISDIR") {
      return { path, kind, exists: true, error: file.error, files: [] };
    }
    return { path, kind, exists: true, files: [file] };
  }
  let entries: string[];
  try {
    entries = await readdir(path);
  } catch (err) {
    const e = asError(err);
    if (errnoCode(e) === "ENOENT") return { path, kind, exists: false, files: [] };
    return { path, kind, exists: true, error: e, files: [] };
  }
  const include = options.include ?? (() => true);
  const names = entries.filter((n) => !n.startsWith(".") && include(n)).sort();
  const files: WatchedFile[] = [];
  for (const name of names) {
    const full = join(path, name);
    let isFile: boolean;
    try {
      const st = await stat(full); // follows symbolic links, as kubelet does
      if (st.isDirectory()) continue; // subdirectories are not entered
      isFile = st.isFile();
    } catch (err) {
      if (errnoCode(err) === "ENOENT") continue; // vanished meanwhile, or a dangling link
      files.push({ path: full, ok: false, error: asError(err) });
      continue;
    }
    if (!isFile) {
      files.push({ path: full, ok: false, error: new Error(`${full} is not a regular file`) });
      continue;
    }
    const file = await readFileLimited(full, max);
    if (!file.ok && errnoCode(file.error) === "ENOENT") continue;
    files.push(file);
  }
  return { path, kind, exists: true, files };
}

async function readFileLimited(path: string, maxBytes: number): Promise<WatchedFile> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, "r");
    const st = await handle.stat();
    if (st.isDirectory()) {
      const err: NodeJS.ErrnoException = new Error(`${path} is a directory`);
      err.code = "EISDIR";
      return { path, ok: false, error: err };
    }
    if (!st.isFile()) return { path, ok: false, error: new Error(`${path} is not a regular file`) };
    if (st.size > maxBytes) {
      return { path, ok: false, error: new Error(`${path} is larger than ${maxBytes} bytes`) };
    }
    const data = await handle.readFile();
    if (data.length > maxBytes) {
      return { path, ok: false, error: new Error(`${path} is larger than ${maxBytes} bytes`) };
    }
    return {
      path,
      ok: true,
      content: data.toString("utf8"),
      hash: createHash("sha256").update(data).digest("hex"),
    };
  } catch (err) {
    return { path, ok: false, error: asError(err) };
  } finally {
    await handle?.close().catch(() => {});
  }
}

/** A string that changes exactly when a snapshot's observable content changes. */
export function snapshotFingerprint(snap: PathSnapshot): string {
  const parts = [snap.exists ? "exists" : "missing", snap.error ? `error:${errorKey(snap.error)}` : ""];
  for (const f of snap.files) {
    parts.push(f.ok ? `${f.path}\0${f.hash}` : `${f.path}\0!${errorKey(f.error)}`);
  }
  return parts.join("\n");
}

function errorKey(err: Error): string {
  return errnoCode(err) ?? err.message;
}

function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
