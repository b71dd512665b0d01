/**
 * {@link CriStreamingClient}: exec, attach and port-forward through the runtime's streaming
 * server — the CRI `Exec` / `Attach` / `PortForward` RPC for a one-time URL, then the
 * WebSocket channel protocol on it.
 *
 * @module
 */
import type { CriClient } from "../client.js";
import type { CriStreamOperation } from "./errors.js";
import { type ForwardPortOptions, listenForward, type PortForwardListener } from "./forward-port.js";
import { openPortForwardStream, type PortForwardStream } from "./port-forward.js";
import type { RemoteCommandResult, RemoteCommandSession, RemoteCommandStreams } from "./remote-command.js";
import { type SpdyStreamFlags, startSpdyRemoteCommand } from "./spdy-remote-command.js";
import { startWebSocketRemoteCommand } from "./websocket-remote-command.js";

/** An exec: the command, its container and its streams. */
export interface ExecStreamOptions extends RemoteCommandStreams {
  /** The container to run in. */
  readonly containerId: string;
  /** The command and its arguments. */
  readonly cmd: readonly string[];
  /** Run the command on a terminal: its stderr is merged into stdout, resizes apply. */
  readonly tty?: boolean | undefined;
}

/** An attach: the container and the streams to connect to its main process. */
export interface AttachStreamOptions extends RemoteCommandStreams {
  /** The container to attach to. */
  readonly containerId: string;
  /** The container was created with a TTY (`tty: true` in its config); must match it. */
  readonly tty?: boolean | undefined;
}

/** A port-forward connection request. */
export interface PortForwardOptions {
  /** The pod sandbox whose network namespace holds the port. */
  readonly podSandboxId: string;
  /** The port in the pod. */
  readonly port: number;
  /** Cancels the RPC and the upgrade. */
  readonly signal?: AbortSignal | undefined;
}

/** Dials the session over the transport the options ask for. */
function startRemoteCommand(
  url: string,
  operation: CriStreamOperation,
  options: RemoteCommandStreams,
  flags: SpdyStreamFlags,
): Promise<RemoteCommandSession> {
  return options.transport === "spdy"
    ? startSpdyRemoteCommand(url, operation, options, flags)
    : startWebSocketRemoteCommand(url, operation, options);
}

function streamFlags(options: RemoteCommandStreams & { tty?: boolean | undefined }): SpdyStreamFlags {
  const tty = options.tty ?? false;
  return {
    tty,
    stdin: options.stdin !== undefined,
    stdout: options.stdout !== undefined,
    stderr: !tty && options.stderr !== undefined,
  };
}

/**
 * Streaming operations of a {@link CriClient}.
 *
 * ```ts
 * const streaming = new CriStreamingClient(client);
 * const { exitCode } = await streaming.exec({
 *   containerId, cmd: ["sh", "-c", "echo hi"], stdout: process.stdout, stderr: process.stderr,
 * });
 * ```
 */
export class CriStreamingClient {
  readonly #client: CriClient;

  /** Wraps a (connected or not) CRI client. */
  constructor(client: CriClient) {
    this.#client = client;
  }

  /**
   * Starts a command in a container and returns the session (for `resize` and `close`).
   *
   * @throws CriError when the `Exec` RPC fails; CriStreamError when the upgrade fails.
   */
  async startExec(options: ExecStreamOptions): Promise<RemoteCommandSession> {
    const flags = streamFlags(options);
    const { url } = await this.#client.runtime.exec(
      { containerId: options.containerId, cmd: [...options.cmd], ...flags },
      options.signal ? { signal: options.signal } : undefined,
    );
    return startRemoteCommand(url, "exec", options, flags);
  }

  /**
   * Runs a command in a container and resolves with its exit code (non-zero is not an error).
   *
   * @throws CriError when the `Exec` RPC fails; CriStreamError (with the server's `status`) when
   *   the command cannot run or the connection breaks.
   */
  async exec(options: ExecStreamOptions): Promise<RemoteCommandResult> {
    return (await this.startExec(options)).result;
  }

  /**
   * Attaches to a container's main process and returns the session.
   *
   * @throws CriError when the `Attach` RPC fails; CriStreamError when the upgrade fails.
   */
  async startAttach(options: AttachStreamOptions): Promise<RemoteCommandSession> {
    const flags = streamFlags(options);
    const { url } = await this.#client.runtime.attach(
      { containerId: options.containerId, ...flags },
      options.signal ? { signal: options.signal } : undefined,
    );
    return startRemoteCommand(url, "attach", options, flags);
  }

  /**
   * Attaches to a container's main process; resolves when the container's process ends (or
   * the session is aborted, which rejects with the abort reason).
   */
  async attach(options: AttachStreamOptions): Promise<RemoteCommandResult> {
    return (await this.startAttach(options)).result;
  }

  /**
   * Opens one connection to a port in a pod's network namespace.
   *
   * @throws CriError when the `PortForward` RPC fails; CriStreamError when the upgrade fails.
   */
  async portForward(options: PortForwardOptions): Promise<PortForwardStream> {
    const { url } = await this.#client.runtime.portForward(
      { podSandboxId: options.podSandboxId, port: [options.port] },
      options.signal ? { signal: options.signal } : undefined,
    );
    return openPortForwardStream(url, options.port, options.signal);
  }

  /**
   * Listens locally (default `127.0.0.1`, a free port unless `localPort` is given) and forwards
   * each accepted connection to `remotePort` in the pod through its own stream.
   */
  forwardPort(options: ForwardPortOptions): Promise<PortForwardListener> {
    return listenForward(options, (signal) =>
      this.portForward({ podSandboxId: options.podSandboxId, port: options.remotePort, signal }),
    );
  }
}
