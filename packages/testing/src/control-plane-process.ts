/**
 * Supervised child processes of the control-plane harness: output goes to a
 * log file, exit is observable, stopping escalates from SIGTERM to SIGKILL,
 * and anything still running when the test process exits is killed.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { open } from "node:fs/promises";
import { type Clock, realClock, UnavailableError } from "@worknode/core";

/** How a process ended. */
export interface ProcessExit {
  /** Exit code, or `null` when killed by a signal. */
  readonly code: number | null;
  /** Signal that killed it, or `null`. */
  readonly signal: NodeJS.Signals | null;
}

/** Options of {@link startProcess}. */
export interface StartProcessOptions {
  /** Component name, for messages. */
  readonly name: string;
  /** Executable path. */
  readonly command: string;
  /** Arguments (never a shell string). */
  readonly args: readonly string[];
  /** File receiving standard output and standard error (appended). */
  readonly logPath: string;
  /** Working directory. */
  readonly cwd?: string;
  /** Environment; default the current one. */
  readonly env?: NodeJS.ProcessEnv;
  /** Clock for the stop grace period; default the real clock. */
  readonly clock?: Clock;
}

/** A started process; see {@link startProcess}. */
export interface ManagedProcess {
  /** Component name. */
  readonly name: string;
  /** Process id. */
  readonly pid: number;
  /** Log file. */
  readonly logPath: string;
  /** Resolves when the process has exited, for whatever reason. */
  readonly exited: Promise<ProcessExit>;
  /** Whether the process is still running. */
  running(): boolean;
  /** `true` when it exited without being asked to stop. */
  crashed(): boolean;
  /**
   * Sends SIGTERM, then SIGKILL after `graceMs` (default 10 s), and resolves
   * once the process is gone. Harmless on an exited process.
   */
  stop(graceMs?: number): Promise<ProcessExit>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Kills (SIGKILL) every still-running process started here; runs on process exit. */
export function killAllManagedProcesses(): void {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  live.clear();
}

/**
 * Starts a process with its output redirected to `logPath`.
 *
 * @throws UnavailableError when the executable cannot be started
 */
export async function startProcess(options: StartProcessOptions): Promise<ManagedProcess> {
  if (!exitHookInstalled) {
    process.once("exit", killAllManagedProcesses);
    exitHookInstalled = true;
  }
  const clock = options.clock ?? realClock;
  const fd = openSync(options.logPath, "a");
  let child: ChildProcess;
  try {
    child = spawn(options.command, options.args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ["ignore", fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  const pid = await new Promise<number>((resolve, reject) => {
    child.once("spawn", () => resolve(child.pid ?? -1));
    child.once("error", (error) =>
      reject(
        new UnavailableError(options.command, `cannot start ${options.name}: ${error.message}`, {
          cause: error,
        }),
      ),
    );
  });
  live.add(child);
  let exit: ProcessExit | undefined;
  let stopping = false;
  const exited = new Promise<ProcessExit>((resolve) => {
    child.once("exit", (code, signal) => {
      exit = { code, signal };
      live.delete(child);
      resolve(exit);
    });
  });

  return {
    name: options.name,
    pid,
    logPath: options.logPath,
    exited,
    running: () => exit === undefined,
    crashed: () => exit !== undefined && !stopping,
    async stop(graceMs = 10_000) {
      if (exit) return exit;
      stopping = true;
      child.kill("SIGTERM");
      const timer = clock.setTimeout(() => {
        if (!exit) child.kill("SIGKILL");
      }, graceMs);
      const result = await exited;
      timer.cancel();
      return result;
    },
  };
}

/** The last `maxBytes` of a log file, for error messages; empty when unreadable. */
export async function logTail(path: string, maxBytes = 3_000): Promise<string> {
  try {
    const handle = await open(path, "r");
    try {
      const { size } = await handle.stat();
      const length = Math.min(size, maxBytes);
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, size - length);
      return buffer.toString("utf8");
    } finally {
      await handle.close();
    }
  } catch {
    return "";
  }
}
