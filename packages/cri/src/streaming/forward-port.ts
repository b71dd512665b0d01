/**
 * {@link PortForwardListener}: a local TCP listener that forwards every accepted connection to
 * a port in a pod, one port-forward stream per connection (what `kubectl port-forward` and
 * `crictl port-forward` do).
 *
 * @module
 */
import net from "node:net";
import type { PortForwardStream } from "./port-forward.js";

/** Opens one forwarded stream (a new streaming URL per connection). */
export type PortForwardDialer = (signal: AbortSignal) => Promise<PortForwardStream>;

/** Where to listen and what to forward to. */
export interface ForwardPortOptions {
  /** The pod sandbox whose network namespace holds the port. */
  readonly podSandboxId: string;
  /** The port in the pod. */
  readonly remotePort: number;
  /** The local port; 0 (default) picks a free one. */
  readonly localPort?: number;
  /** The local address to listen on (default `127.0.0.1`). */
  readonly host?: string;
  /** Told about each connection that could not be forwarded or broke (the listener goes on). */
  readonly onError?: (error: Error) => void;
  /** Told about each accepted local connection before it is forwarded. */
  readonly onConnection?: (socket: net.Socket) => void;
}

/** A running local listener; see {@link PortForwardListener.close}. */
export class PortForwardListener {
  /** The address listened on. */
  readonly host: string;
  /** The local port (the one picked when 0 was asked for). */
  readonly localPort: number;
  /** The pod port connections go to. */
  readonly remotePort: number;
  readonly #server: net.Server;
  readonly #sockets: Set<net.Socket>;
  readonly #abort: AbortController;

  /** @internal */
  constructor(
    server: net.Server,
    sockets: Set<net.Socket>,
    abort: AbortController,
    host: string,
    remotePort: number,
  ) {
    this.#server = server;
    this.#sockets = sockets;
    this.#abort = abort;
    this.host = host;
    this.remotePort = remotePort;
    this.localPort = (server.address() as net.AddressInfo).port;
  }

  /** Connections being forwarded now. */
  get activeConnections(): number {
    return this.#sockets.size;
  }

  /** Stops listening and drops every forwarded connection. Idempotent. */
  async close(): Promise<void> {
    this.#abort.abort(new Error("port-forward listener closed"));
    for (const s of this.#sockets) s.destroy();
    if (!this.#server.listening) return;
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Wires one accepted connection to a new forwarded stream. */
function forwardConnection(
  conn: net.Socket,
  dial: PortForwardDialer,
  signal: AbortSignal,
  onError: (error: Error) => void,
): void {
  conn.pause();
  dial(signal).then(
    (stream) => {
      const fail = (err: Error) => {
        onError(err);
        conn.destroy();
        stream.destroy();
      };
      stream.on("error", fail);
      conn.on("error", () => stream.destroy());
      conn.on("close", () => stream.destroy());
      stream.pipe(conn);
      conn.pipe(stream);
      conn.resume();
    },
    (err: Error) => {
      onError(err);
      conn.destroy();
    },
  );
}

/**
 * Listens on `host:localPort` and forwards each accepted connection through `dial`.
 *
 * @throws Error when the local address cannot be bound (e.g. `EADDRINUSE`).
 */
export async function listenForward(
  options: ForwardPortOptions,
  dial: PortForwardDialer,
): Promise<PortForwardListener> {
  const host = options.host ?? "127.0.0.1";
  const onError = options.onError ?? (() => {});
  const sockets = new Set<net.Socket>();
  const abort = new AbortController();
  const server = net.createServer({ allowHalfOpen: true }, (conn) => {
    sockets.add(conn);
    conn.on("close", () => sockets.delete(conn));
    options.onConnection?.(conn);
    forwardConnection(conn, dial, abort.signal, onError);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.localPort ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return new PortForwardListener(server, sockets, abort, host, options.remotePort);
}
