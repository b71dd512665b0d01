/**
 * {@link RemoteCommandSession}: an exec or attach session, whatever the transport — stdin
 * pumped to the command, its stdout / stderr written to local streams with backpressure,
 * resize messages, and the outcome read from the error stream when the server closes.
 *
 * Two transports exist: WebSocket (`v4.channel.k8s.io`, see `./websocket-remote-command.ts`),
 * which cannot signal the end of stdin because the runtime's streaming server does not offer
 * `v5.channel.k8s.io`, and SPDY/3.1 (`./spdy-remote-command.ts`), which closes the command's
 * stdin when the local stdin ends.
 *
 * @module
 */
import type { Readable, Writable } from "node:stream";
import { CriStreamError, type CriStreamOperation } from "./errors.js";
import { encodeResize, parseRemoteCommandOutcome, type TerminalSize } from "./frames.js";

/** The transport a remote command runs over. */
export type RemoteCommandTransportName = "websocket" | "spdy";

/** The local ends of a remote command. */
export interface RemoteCommandStreams {
  /**
   * Sent to the command's stdin. With SPDY its end closes the command's stdin; with WebSocket
   * the command keeps its stdin open until it exits or the session is closed.
   */
  readonly stdin?: Readable | undefined;
  /** Receives the command's stdout (and, with a TTY, its stderr too). Never ended by the session. */
  readonly stdout?: Writable | undefined;
  /** Receives the command's stderr (unused with a TTY). Never ended by the session. */
  readonly stderr?: Writable | undefined;
  /** Terminal size to send as soon as the session is open (TTY sessions). */
  readonly terminalSize?: TerminalSize | undefined;
  /** Aborting closes the session; its result then rejects with the abort reason. */
  readonly signal?: AbortSignal | undefined;
  /** The transport (default `websocket`). */
  readonly transport?: RemoteCommandTransportName | undefined;
}

/** How a remote command ended. */
export interface RemoteCommandResult {
  /** The command's exit code (0 for an attach session whose container ended normally). */
  readonly exitCode: number;
}

/** What a session needs from its transport once connected (WebSocket or SPDY). */
export interface RemoteCommandTransport {
  /** The negotiated protocol, such as `v4.channel.k8s.io`. */
  readonly protocol: string;
  /** True while the connection can still carry frames. */
  readonly writable: boolean;
  sendStdin(data: Buffer): Promise<void>;
  /** Signals the end of stdin where the protocol can (a no-op otherwise). */
  endStdin(): Promise<void>;
  sendResize(message: Buffer): Promise<void>;
  pause(): void;
  resume(): void;
  close(): void;
}

/** A running exec or attach session. */
export class RemoteCommandSession {
  /** The negotiated subprotocol, such as `v4.channel.k8s.io`. */
  readonly protocol: string;
  /**
   * Settles when the server closes the session: resolves with the exit code, rejects with a
   * {@link CriStreamError} (carrying the server's status) when the command could not run or the
   * connection broke, or with the abort reason.
   */
  readonly result: Promise<RemoteCommandResult>;
  readonly #transport: RemoteCommandTransport;

  /** @internal */
  constructor(transport: RemoteCommandTransport, result: Promise<RemoteCommandResult>) {
    this.#transport = transport;
    this.protocol = transport.protocol;
    this.result = result;
  }

  /** Tells the command's terminal its new size (`{"Width","Height"}` on the resize stream). */
  async resize(width: number, height: number): Promise<void> {
    const message = encodeResize({ width, height });
    if (this.#transport.writable) await this.#transport.sendResize(message);
  }

  /** Closes the session: the command's stdin is closed and the result rejects if no status came yet. */
  close(): void {
    this.#transport.close();
  }
}

/**
 * The transport-independent side of a session: routes received bytes to the local streams
 * (pausing the transport while they are full) and turns the error stream into the result.
 */
export class RemoteCommandReceiver {
  /** Settles when {@link closed} is called. */
  readonly result: Promise<RemoteCommandResult>;
  /** Set by the transport once connected (for backpressure). */
  transport: RemoteCommandTransport | undefined;
  readonly #operation: CriStreamOperation;
  readonly #streams: RemoteCommandStreams;
  readonly #errorBytes: Buffer[] = [];
  readonly #full = new Set<Writable>();
  #settle!: { resolve: (r: RemoteCommandResult) => void; reject: (e: unknown) => void };

  /** Starts receiving for an `operation` session with these local `streams`. */
  constructor(operation: CriStreamOperation, streams: RemoteCommandStreams) {
    this.#operation = operation;
    this.#streams = streams;
    this.result = new Promise<RemoteCommandResult>((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    // Marked handled: the session may end while the caller is still awaiting the start.
    this.result.catch(() => {});
  }

  /** Bytes of the command's stdout. */
  stdout(data: Buffer): void {
    this.#write(this.#streams.stdout, data);
  }

  /** Bytes of the command's stderr. */
  stderr(data: Buffer): void {
    this.#write(this.#streams.stderr, data);
  }

  /** Bytes of the error stream. */
  error(data: Buffer): void {
    this.#errorBytes.push(data);
  }

  /** The connection is gone: settle from `failure` or the error stream's bytes. */
  closed(failure: Error | undefined, statusJson: boolean): void {
    if (failure) {
      this.#settle.reject(failure);
      return;
    }
    const bytes = Buffer.concat(this.#errorBytes);
    if (bytes.length === 0 && statusJson) {
      this.#settle.reject(
        new CriStreamError(this.#operation, "the connection closed before the command's status"),
      );
      return;
    }
    try {
      const outcome = parseRemoteCommandOutcome(bytes, statusJson);
      if (outcome.kind === "exited") this.#settle.resolve({ exitCode: outcome.exitCode });
      else
        this.#settle.reject(
          new CriStreamError(this.#operation, outcome.status.message ?? outcome.status.reason ?? "failed", {
            status: outcome.status,
          }),
        );
    } catch (err) {
      this.#settle.reject(err);
    }
  }

  #write(stream: Writable | undefined, data: Buffer): void {
    if (!stream || data.length === 0 || stream.destroyed) return;
    if (!stream.write(data) && !this.#full.has(stream)) {
      this.#full.add(stream);
      this.transport?.pause();
      stream.once("drain", () => {
        this.#full.delete(stream);
        if (this.#full.size === 0) this.transport?.resume();
      });
    }
  }
}

/** Pumps `stdin` into the transport until it ends (then signals the end) or the session closes. */
export function pumpStdin(
  stdin: Readable,
  transport: RemoteCommandTransport,
  closed: Promise<unknown>,
): void {
  let sending = Promise.resolve();
  const onData = (chunk: Buffer | string) => {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    stdin.pause();
    sending = sending
      .then(() => (transport.writable ? transport.sendStdin(bytes) : undefined))
      .then(
        () => {
          if (transport.writable) stdin.resume();
        },
        () => {},
      );
  };
  const onEnd = () => {
    sending = sending.then(() => (transport.writable ? transport.endStdin() : undefined)).catch(() => {});
  };
  stdin.on("data", onData);
  stdin.once("end", onEnd);
  stdin.resume();
  void closed.finally(() => {
    stdin.off("data", onData);
    stdin.off("end", onEnd);
    stdin.pause();
  });
}

/** Sends the initial size and starts the stdin pump of a connected session. */
export async function startSession(
  transport: RemoteCommandTransport,
  receiver: RemoteCommandReceiver,
  streams: RemoteCommandStreams,
): Promise<RemoteCommandSession> {
  receiver.transport = transport;
  const session = new RemoteCommandSession(transport, receiver.result);
  if (streams.terminalSize)
    await session.resize(streams.terminalSize.width, streams.terminalSize.height).catch(() => {});
  if (streams.stdin)
    pumpStdin(
      streams.stdin,
      transport,
      receiver.result.catch(() => {}),
    );
  return session;
}
