/**
 * The `worknode` command dispatcher, as a function so it can be tested and embedded.
 *
 * @module
 */
import { describeError, WorknodeError } from "@worknode/core";
import { criCommand } from "./commands/cri/command.js";
import { kubeletCommand } from "./commands/kubelet.js";
import { nodeCommand } from "./commands/node.js";
import { proxyCommand } from "./commands/proxy.js";
import { CliUsageError } from "./flags.js";
import { VERSION } from "./version.js";

/** Where a command writes, and how it is told to stop. */
export interface CliIO {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Aborted when the process receives SIGINT / SIGTERM. */
  readonly signal: AbortSignal;
}

/** One CLI command. */
export interface Command {
  readonly name: string;
  readonly summary: string;
  /** Runs the command; resolves to the exit status. */
  run(argv: readonly string[], io: CliIO): Promise<number>;
}

const COMMANDS: readonly Command[] = [nodeCommand, kubeletCommand, criCommand, proxyCommand];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 4;
  return [
    "worknode: a Kubernetes worker-node agent built from the worknode SDK",
    "",
    "Usage: worknode <command> [flags]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    `  ${"version".padEnd(width)}Print the version`,
    "",
    'Run "worknode <command> --help" for the flags of a command.',
    "",
  ].join("\n");
}

/**
 * Runs the CLI with `argv` (without the node and script names) and returns the exit status:
 * 0 success, 1 runtime failure, 2 usage error. Errors are printed as one line, without a stack trace.
 */
export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    io.stdout(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === "version" || name === "--version") {
    io.stdout(`worknode ${VERSION}\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.stderr(`worknode: unknown command "${name}" (run "worknode --help")\n`);
    return 2;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    io.stderr(`worknode ${name}: error: ${describeError(err)}\n`);
    if (err instanceof CliUsageError) return 2;
    if (!(err instanceof WorknodeError) && process.env.WORKNODE_DEBUG) io.stderr(`${(err as Error).stack}\n`);
    return 1;
  }
}
