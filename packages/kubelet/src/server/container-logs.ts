/**
 * Reading (and following) a container's CRI log file the way
 * `kubectl logs` sees it through kubelet's `/containerLogs` endpoint.
 *
 * Without `follow` the file is read to its end (an unfinished last line
 * included) and the stream ends. With `follow` it keeps waiting for appended
 * lines — woken by a watch on the log directory and by a poll timer — until the
 * signal aborts (the client went away) or `stillCurrent` says the container
 * instance was replaced. A rotated file (the path now names another file) is
 * read to its end, then the new file is followed from its start; a truncated
 * file is read again from its start.
 *
 * @module
 */
import { type FSWatcher, watch } from "node:fs";
import { type FileHandle, open, stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { type Clock, realClock, WorknodeError } from "@worknode/core";
import { CriLogFormatter, splitLines, tailStartOffset } from "./cri-log.js";

/** What to read from a container log. */
export interface ContainerLogOptions {
  /** Keep streaming appended lines. */
  readonly follow?: boolean;
  /** Only the last N lines (before following); undefined for all. */
  readonly tailLines?: number;
  /** Prefix each line with its time. */
  readonly timestamps?: boolean;
}

/** Context of {@link streamContainerLog}. */
export interface ContainerLogStreamContext {
  /** Aborted when the reader goes away; the stream then ends quietly. */
  readonly signal: AbortSignal;
  /** Writes output; resolve when ready for more (backpressure). */
  readonly write: (chunk: Buffer) => Promise<void>;
  /** While following: false once the followed container instance is no longer the current one. */
  readonly stillCurrent?: () => boolean;
  /** Called once the file is open (before any output): a server sends its headers here. */
  readonly onOpen?: () => void;
  /** How often to look for new data while following, besides the directory watch; default 1 s. */
  readonly pollIntervalMs?: number;
  readonly clock?: Clock;
}

/** A container log file could not be read. */
export class ContainerLogError extends WorknodeError {
  /** The log file. */
  readonly path: string;

  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super("CONTAINER_LOG", message, options);
    this.path = path;
  }
}

const CHUNK = 64 * 1024;

async function openLog(path: string): Promise<FileHandle> {
  try {
    return await open(path, "r");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ContainerLogError(
      path,
      code === "ENOENT" ? `log file ${path} does not exist` : `failed to open log file ${path}: ${code}`,
      { cause: err },
    );
  }
}

/** Waits for a change in the log directory, a poll tick or the abort, whichever comes first. */
class ChangeWaiter {
  private watcher: FSWatcher | undefined;
  private wake: (() => void) | undefined;
  private dirty = false;

  constructor(
    path: string,
    private readonly clock: Clock,
    private readonly pollMs: number,
    private readonly signal: AbortSignal,
  ) {
    try {
      const name = basename(path);
      this.watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
        if (file === null || file === name || String(file).startsWith(name)) this.notify();
      });
      this.watcher.on("error", () => this.close());
    } catch {
      this.watcher = undefined;
    }
  }

  private notify(): void {
    this.dirty = true;
    this.wake?.();
  }

  async wait(): Promise<void> {
    if (this.dirty) {
      this.dirty = false;
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = this.clock.setTimeout(() => done(), this.pollMs);
      const done = () => {
        timer.cancel();
        this.signal.removeEventListener("abort", done);
        this.wake = undefined;
        resolve();
      };
      this.wake = done;
      this.signal.addEventListener("abort", done, { once: true });
    });
    this.dirty = false;
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }
}

/**
 * Streams a container's CRI log file to `ctx.write` (see the module notes).
 * @throws ContainerLogError when the file cannot be opened or read
 */
export async function streamContainerLog(
  path: string,
  options: ContainerLogOptions,
  ctx: ContainerLogStreamContext,
): Promise<void> {
  const clock = ctx.clock ?? realClock;
  const formatter = new CriLogFormatter(options.timestamps === true);
  let fh = await openLog(path);
  ctx.onOpen?.();
  let offset = 0;
  if (options.tailLines !== undefined) {
    const content = await fh.readFile();
    offset = tailStartOffset(content, options.tailLines);
  }
  let pending: Buffer = Buffer.alloc(0);
  const waiter = options.follow
    ? new ChangeWaiter(path, clock, ctx.pollIntervalMs ?? 1000, ctx.signal)
    : undefined;
  const buffer = Buffer.allocUnsafe(CHUNK);

  const emit = async (lines: Buffer[], last?: Buffer) => {
    const out: Buffer[] = [];
    for (const l of lines) {
      const b = formatter.format(l);
      if (b) out.push(b);
    }
    if (last && last.length > 0) {
      const b = formatter.format(last, false);
      if (b) out.push(b);
    }
    if (out.length > 0 && !ctx.signal.aborted) await ctx.write(Buffer.concat(out));
  };

  /** Reads from `offset` to the current end of the open file, writing complete lines. */
  const drain = async () => {
    for (;;) {
      if (ctx.signal.aborted) return;
      const { bytesRead } = await fh.read(buffer, 0, CHUNK, offset);
      if (bytesRead === 0) return;
      offset += bytesRead;
      const { lines, rest } = splitLines(Buffer.concat([pending, buffer.subarray(0, bytesRead)]));
      pending = Buffer.from(rest);
      await emit(lines);
    }
  };

  try {
    for (;;) {
      await drain();
      if (!waiter || ctx.signal.aborted) break;
      const current = await fh.stat();
      const named = await stat(path).catch(() => undefined);
      if (named && (named.ino !== current.ino || named.dev !== current.dev)) {
        // Rotated: finish the old file, continue with the new one from its start.
        await drain();
        await emit([], pending);
        pending = Buffer.alloc(0);
        await fh.close();
        fh = await openLog(path);
        offset = 0;
        continue;
      }
      if (current.size < offset) {
        offset = 0;
        pending = Buffer.alloc(0);
        continue;
      }
      if (ctx.stillCurrent && !ctx.stillCurrent()) {
        await drain();
        break;
      }
      await waiter.wait();
    }
    if (!ctx.signal.aborted) await emit([], pending);
  } finally {
    waiter?.close();
    await fh.close().catch(() => undefined);
  }
}

/** Reads a whole container log without following (convenience for tests and tools). */
export async function readContainerLog(
  path: string,
  options: Omit<ContainerLogOptions, "follow"> = {},
): Promise<string> {
  const chunks: Buffer[] = [];
  await streamContainerLog(path, options, {
    signal: new AbortController().signal,
    write: async (c) => {
      chunks.push(c);
    },
  });
  return Buffer.concat(chunks).toString("utf8");
}
