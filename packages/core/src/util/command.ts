/**
 * Running external programs (iptables, iptables-restore, conntrack) through an
 * injectable runner, optionally inside a network namespace.
 *
 * @module
 */
import { spawn } from "node:child_process";

/** What a finished command returned. */
export interface CommandOutput {
  /** Exit code (-1 when killed by a signal or not started). */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs one program with an argument array, feeding `stdin` when given. Never throws for a non-zero exit. */
export interface CommandRunner {
  exec(command: string, args: readonly string[], stdin?: string): Promise<CommandOutput>;
}

/** Options of {@link createCommandRunner}. */
export interface CommandRunnerOptions {
  /** Run every command inside this network namespace (`ip netns exec <netns> …`). */
  readonly netns?: string;
}

/**
 * The default runner: `child_process.spawn` without a shell. A program that cannot be
 * started resolves with code -1 and the error in `stderr`.
 */
export function createCommandRunner(options: CommandRunnerOptions = {}): CommandRunner {
  const netns = options.netns;
  return {
    exec(command, args, stdin) {
      const [cmd, argv] =
        netns === undefined ? [command, [...args]] : ["ip", ["netns", "exec", netns, command, ...args]];
      return new Promise((resolve) => {
        const child = spawn(cmd, argv, { stdio: ["pipe", "pipe", "pipe"] });
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        let settled = false;
        const done = (code: number, extra = "") => {
          if (settled) return;
          settled = true;
          resolve({
            code,
            stdout: Buffer.concat(out).toString("utf8"),
            stderr: Buffer.concat(err).toString("utf8") + extra,
          });
        };
        child.stdout.on("data", (d: Buffer) => out.push(d));
        child.stderr.on("data", (d: Buffer) => err.push(d));
        child.on("error", (e) => done(-1, `${cmd}: ${e.message}`));
        child.on("close", (code) => done(code ?? -1));
        child.stdin.on("error", () => {
          // The program may exit before reading all of its input; its exit code tells.
        });
        child.stdin.end(stdin ?? "");
      });
    },
  };
}
