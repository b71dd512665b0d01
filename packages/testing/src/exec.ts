/**
 * Running external programs for the harnesses: argument arrays only (never a
 * shell string), captured output, typed failures that carry the command and
 * the tail of its standard error.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { WorknodeError } from "@worknode/core";

/** An external program exited unsuccessfully (or could not be started). */
export class CommandFailedError extends WorknodeError {
  /** The program that was run. */
  readonly command: string;
  /** Its arguments. */
  readonly args: readonly string[];
  /** Exit code, or `null` when it was killed by a signal or never started. */
  readonly exitCode: number | null;
  /** Captured standard output (may be truncated). */
  readonly stdout: string;
  /** Captured standard error (may be truncated). */
  readonly stderr: string;

  constructor(
    command: string,
    args: readonly string[],
    exitCode: number | null,
    stdout: string,
    stderr: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    const tail = stderr.trim().split("\n").slice(-8).join("\n");
    super("COMMAND_FAILED", `${formatCommand(command, args)} ${detail}${tail ? `:\n${tail}` : ""}`, options);
    this.command = command;
    this.args = args;
    this.exitCode = exitCode;
    this.stdout = stdout;
    this.stderr = stderr;
  }
}

/** Formats a command line for messages (arguments with spaces are quoted). */
export function formatCommand(command: string, args: readonly string[]): string {
  return [command, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(" ");
}

/** Options of {@link runCommand}. */
export interface RunCommandOptions {
  /** Data written to the program's standard input (then closed). */
  readonly input?: string | Buffer;
  /** Working directory. */
  readonly cwd?: string;
  /** Extra environment variables, merged over `process.env`. */
  readonly env?: Readonly<Record<string, string>>;
  /** Kill the program (SIGKILL) and fail after this many milliseconds; default 120 000. */
  readonly timeoutMs?: number;
  /** Resolve instead of throwing when the exit code is not 0. */
  readonly allowFailure?: boolean;
  /** Aborts the program (SIGKILL). */
  readonly signal?: AbortSignal;
}

/** What {@link runCommand} returns. */
export interface CommandResult {
  /** Exit code (`null` when killed by a signal). */
  readonly exitCode: number | null;
  /** Standard output, UTF-8. */
  readonly stdout: string;
  /** Standard error, UTF-8. */
  readonly stderr: string;
}

const MAX_CAPTURE = 8 * 1024 * 1024;

/**
 * Runs `command` with `args` (no shell) and collects its output.
 *
 * @throws CommandFailedError when it cannot start, times out, or exits non-zero
 *   (unless `allowFailure`).
 */
export function runCommand(
  command: string,
  args: readonly string[],
  options: RunCommandOptions = {},
): Promise<CommandResult> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  return new Promise<CommandResult>((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ? { ...process.env, ...options.env } : process.env,
      stdio: ["pipe", "pipe", "pipe"],
      signal: options.signal,
      killSignal: "SIGKILL",
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    let timedOut = false;
    let settled = false;
    child.stdout.on("data", (b: Buffer) => {
      if (outLen < MAX_CAPTURE) out.push(b);
      outLen += b.length;
    });
    child.stderr.on("data", (b: Buffer) => {
      if (errLen < MAX_CAPTURE) err.push(b);
      errLen += b.length;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    child.on("error", (e) => {
      finish(() =>
        reject(
          new CommandFailedError(
            command,
            args,
            null,
            Buffer.concat(out).toString("utf8"),
            Buffer.concat(err).toString("utf8"),
            `could not run: ${e.message}`,
            { cause: e },
          ),
        ),
      );
    });
    child.on("close", (code, sig) => {
      finish(() => {
        const stdout = Buffer.concat(out).toString("utf8");
        const stderr = Buffer.concat(err).toString("utf8");
        if (timedOut) {
          reject(
            new CommandFailedError(command, args, code, stdout, stderr, `timed out after ${timeoutMs} ms`),
          );
        } else if (code !== 0 && !options.allowFailure) {
          const detail = code === null ? `was killed by ${sig}` : `exited with code ${code}`;
          reject(new CommandFailedError(command, args, code, stdout, stderr, detail));
        } else {
          resolve({ exitCode: code, stdout, stderr });
        }
      });
    });
    child.stdin.on("error", () => {
      /* the program may exit without reading its input; the exit code tells */
    });
    child.stdin.end(options.input ?? "");
  });
}

/** True when a process with this id exists (zombies count as gone). */
export async function isProcessAlive(pid: number): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    return parseProcStat(stat)?.state !== "Z";
  } catch {
    return false;
  }
}

/** One process as seen in `/proc`. */
export interface ProcessInfo {
  /** Process id. */
  readonly pid: number;
  /** Parent process id. */
  readonly ppid: number;
  /** Single-letter state (`R`, `S`, `Z` …). */
  readonly state: string;
  /** Command line, split on NUL. */
  readonly argv: readonly string[];
}

/** Parses the fields of `/proc/<pid>/stat` that the harness needs. */
export function parseProcStat(text: string): { pid: number; state: string; ppid: number } | undefined {
  // "pid (comm) state ppid ..." where comm may contain spaces and parentheses.
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  const rest = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const state = rest[0];
  const ppid = Number(rest[1]);
  if (!Number.isInteger(pid) || state === undefined || !Number.isInteger(ppid)) return undefined;
  return { pid, state, ppid };
}

/** Lists every live (non-zombie) process from `/proc`. */
export async function listProcesses(): Promise<ProcessInfo[]> {
  const entries = await readdir("/proc");
  const result: ProcessInfo[] = [];
  await Promise.all(
    entries
      .filter((e) => /^\d+$/.test(e))
      .map(async (e) => {
        try {
          const [stat, cmdline] = await Promise.all([
            readFile(`/proc/${e}/stat`, "utf8"),
            readFile(`/proc/${e}/cmdline`),
          ]);
          const parsed = parseProcStat(stat);
          if (!parsed || parsed.state === "Z") return;
          const argv = cmdline.toString("utf8").split("\0");
          if (argv.at(-1) === "") argv.pop();
          result.push({ ...parsed, argv });
        } catch {
          /* the process exited while we looked */
        }
      }),
  );
  return result.sort((a, b) => a.pid - b.pid);
}

/** The ids of every descendant of `roots` (not the roots themselves), children before grandchildren. */
export function descendantsOf(processes: readonly ProcessInfo[], roots: readonly number[]): number[] {
  const children = new Map<number, number[]>();
  for (const p of processes) {
    const list = children.get(p.ppid) ?? [];
    list.push(p.pid);
    children.set(p.ppid, list);
  }
  const seen = new Set<number>(roots);
  const out: number[] = [];
  const queue = [...roots];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    for (const c of children.get(pid) ?? []) {
      if (seen.has(c)) continue;
      seen.add(c);
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

/** Sends `signal` to `pid`, ignoring a process that is already gone. */
export function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
  }
}

/**
 * Sends SIGTERM to each process, waits up to `graceMs` for them to exit, then SIGKILLs the
 * survivors and waits for them too.
 *
 * @returns the ids that were still alive after SIGKILL (normally none)
 */
export async function terminateProcesses(pids: readonly number[], graceMs = 5_000): Promise<number[]> {
  for (const pid of pids) signalProcess(pid, "SIGTERM");
  let alive = await waitForExit(pids, graceMs);
  if (alive.length === 0) return [];
  for (const pid of alive) signalProcess(pid, "SIGKILL");
  alive = await waitForExit(alive, 5_000);
  return alive;
}

async function waitForExit(pids: readonly number[], ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  let alive = [...pids];
  for (;;) {
    const states = await Promise.all(alive.map(isProcessAlive));
    alive = alive.filter((_, i) => states[i]);
    if (alive.length === 0 || Date.now() >= deadline) return alive;
    await sleep(50);
  }
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Thrown by a {@link pollUntil} probe to stop polling at once (the awaited thing cannot happen any more). */
export class GiveUpError extends WorknodeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("GIVE_UP", message, options);
  }
}

/**
 * Polls `probe` until it returns a value other than `undefined`, or fails with the last error
 * after `timeoutMs`. A probe throwing {@link GiveUpError} ends the wait at once.
 *
 * @param what describes what is awaited, for the error message
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      if (e instanceof GiveUpError) throw e;
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? `: ${lastError.message}` : "";
      throw new WorknodeError("TIMEOUT", `timed out after ${timeoutMs} ms waiting for ${what}${why}`, {
        cause: lastError,
      });
    }
    await sleep(intervalMs);
  }
}

/** Reads a pid file; `undefined` when it is missing or does not hold a positive integer. */
export async function readPidFile(file: string): Promise<number | undefined> {
  try {
    const n = Number((await readFile(file, "utf8")).trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** The command line of a live process, or `undefined` when it is gone or unreadable. */
export async function readProcessArgv(pid: number): Promise<string[] | undefined> {
  if (!(await isProcessAlive(pid))) return undefined;
  try {
    return (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
  } catch {
    return undefined;
  }
}
