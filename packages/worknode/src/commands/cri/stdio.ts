/**
 * The byte streams of an interactive `worknode cri exec` / `attach`: the process's stdin,
 * stdout and stderr, with the TTY controls (raw mode, size, SIGWINCH) the session needs.
 *
 * The container's bytes go to these streams unchanged (binary-safe), not through the CLI's
 * text `CliIO`.
 *
 * @module
 */
import type { Readable, Writable } from "node:stream";

/** The terminal side of a session: what `process.stdin` / `process.stdout` provide. */
export interface CriStdio {
  readonly stdin: Readable & { readonly isTTY?: boolean; setRawMode?(raw: boolean): unknown };
  readonly stdout: Writable & {
    readonly isTTY?: boolean;
    readonly columns?: number;
    readonly rows?: number;
    on(event: "resize", listener: () => void): unknown;
    off(event: "resize", listener: () => void): unknown;
  };
  readonly stderr: Writable;
}

/** The process's own streams. */
export function processStdio(): CriStdio {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };
}

/** The current terminal size of `stdout`, when it is a terminal. */
export function terminalSize(stdio: CriStdio): { width: number; height: number } | undefined {
  const { columns, rows } = stdio.stdout;
  return stdio.stdout.isTTY && columns && rows ? { width: columns, height: rows } : undefined;
}
