/**
 * `worknode cri exec` (streaming), `attach` and `port-forward`: crictl's command shapes over
 * `@worknode/cri`'s streaming client.
 *
 * @module
 */

import { PassThrough } from "node:stream";
import { ConfigError } from "@worknode/core";
import type {
  CriClient,
  CriStreamingClient,
  RemoteCommandSession,
  RemoteCommandStreams,
} from "@worknode/cri";
import type { CliIO } from "../../main.js";
import { DetachKeyFilter } from "./detach-keys.js";
import type { PortSpec } from "./port-spec.js";
import { type CriStdio, terminalSize } from "./stdio.js";

/** The exit status after SIGINT / SIGTERM closed a session (128 + SIGINT, as shells report it). */
export const INTERRUPTED_EXIT_CODE = 130;

/** What a remote-command session needs from the command line. */
export interface SessionFlags {
  /** `-i`: pass stdin to the command. */
  readonly interactive: boolean;
  /** `-t`: run on a terminal. */
  readonly tty: boolean;
}

/**
 * Checks crictl's rules for `-t`: it needs `-i` and a terminal on stdin.
 *
 * @throws ConfigError when they are not met.
 */
export function checkTtyFlags(flags: SessionFlags, stdinIsTty: boolean): void {
  if (!flags.tty) return;
  if (!flags.interactive) throw new ConfigError("tty=true must be specified with interactive=true (use -it)");
  if (!stdinIsTty) throw new ConfigError("input is not a terminal (-t needs a terminal on stdin)");
}

/**
 * Runs a session started by `start` on the process's streams: raw terminal, SIGWINCH resizes
 * and crictl's detach keys (ctrl-p, ctrl-q) with `-t`, stdin with `-i`; `io.signal` (SIGINT /
 * SIGTERM) closes it.
 *
 * @returns the command's exit code (0 after a detach, {@link INTERRUPTED_EXIT_CODE} when interrupted).
 */
export async function runSession(
  start: (streams: RemoteCommandStreams) => Promise<RemoteCommandSession>,
  flags: SessionFlags,
  stdio: CriStdio,
  io: CliIO,
): Promise<number> {
  checkTtyFlags(flags, stdio.stdin.isTTY === true);
  const size = flags.tty ? terminalSize(stdio) : undefined;
  // On a terminal, typed bytes go through the detach-key filter first.
  const typed = flags.tty ? new PassThrough() : undefined;
  const session = await start({
    stdin: flags.interactive ? (typed ?? stdio.stdin) : undefined,
    stdout: stdio.stdout,
    stderr: stdio.stderr,
    terminalSize: size,
    signal: io.signal,
  });
  let detached = false;
  const filter = new DetachKeyFilter();
  const onTyped = (chunk: Buffer) => {
    const { data, detached: detach } = filter.push(chunk);
    if (data.length > 0) typed?.write(data);
    if (detach) {
      detached = true;
      session.close();
    }
  };
  const onResize = () => {
    const s = terminalSize(stdio);
    if (s) void session.resize(s.width, s.height).catch(() => {});
  };
  if (flags.tty) {
    stdio.stdin.setRawMode?.(true);
    stdio.stdout.on("resize", onResize);
    stdio.stdin.on("data", onTyped);
  }
  try {
    return (await session.result).exitCode;
  } catch (err) {
    if (detached) return 0;
    // Interrupted (SIGINT / SIGTERM): the session is closed; exit like a shell's interrupted job.
    if (io.signal.aborted) return INTERRUPTED_EXIT_CODE;
    throw err;
  } finally {
    if (flags.tty) {
      stdio.stdin.off("data", onTyped);
      stdio.stdout.off("resize", onResize);
      stdio.stdin.setRawMode?.(false);
    }
    if (flags.interactive) stdio.stdin.pause();
  }
}

/**
 * Listens for every port spec and forwards until `io.signal` aborts, printing kubectl's
 * "Forwarding from" and "Handling connection for" lines.
 */
export async function runPortForward(
  streaming: CriStreamingClient,
  podSandboxId: string,
  specs: readonly PortSpec[],
  io: CliIO,
): Promise<number> {
  const listeners = [];
  try {
    for (const spec of specs) {
      let local = spec.localPort;
      const listener = await streaming
        .forwardPort({
          podSandboxId,
          remotePort: spec.remotePort,
          localPort: spec.localPort,
          host: "127.0.0.1",
          onConnection: () => io.stdout(`Handling connection for ${local}\n`),
          onError: (err) => io.stderr(`error forwarding port ${spec.remotePort}: ${err.message}\n`),
        })
        .catch((err: NodeJS.ErrnoException) => {
          throw new ConfigError(`cannot listen on 127.0.0.1:${spec.localPort}: ${err.code ?? err.message}`);
        });
      listeners.push(listener);
      local = listener.localPort;
      io.stdout(`Forwarding from ${listener.host}:${listener.localPort} -> ${listener.remotePort}\n`);
    }
    await new Promise<void>((resolve) => {
      if (io.signal.aborted) resolve();
      else io.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    return 0;
  } finally {
    await Promise.all(listeners.map((l) => l.close()));
  }
}

/** Resolves a pod sandbox by full id or unique id prefix, as crictl does. */
export async function resolvePodSandbox(client: CriClient, idOrPrefix: string): Promise<string> {
  const { items } = await client.runtime.listPodSandbox({});
  const matches = items.filter((s) => s.id.startsWith(idOrPrefix));
  if (matches.length === 1) return matches[0]!.id;
  if (matches.length === 0) throw new ConfigError(`no pod sandbox with id (or id prefix) "${idOrPrefix}"`);
  throw new ConfigError(`pod sandbox id prefix "${idOrPrefix}" is ambiguous (${matches.length} sandboxes)`);
}
