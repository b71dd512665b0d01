/**
 * A loopback TCP proxy for fault-injection in system tests: it forwards bytes
 * untouched (TLS passes through, so certificates are verified end to end) and
 * lets a test cut every open connection, refuse or hold new ones, and count them.
 *
 * @module
 */
import { createServer, connect as netConnect, type Server, type Socket } from "node:net";

/** Where a {@link TcpProxy} forwards to. */
export interface TcpProxyTarget {
  /** Upstream host, such as `127.0.0.1`. */
  readonly host: string;
  /** Upstream TCP port. */
  readonly port: number;
}

/** What a paused {@link TcpProxy} does with new connections. */
export type PauseMode = "refuse" | "hold";

interface Pipe {
  readonly client: Socket;
  upstream: Socket | undefined;
  /** Black-holed by stallAll(): no bytes flow, and the upstream closing is not passed on. */
  stalled: boolean;
  /** Bytes the client sent before the upstream connection was up. */
  readonly early: Buffer[];
  readonly onEarlyData: (chunk: Buffer) => void;
}

/**
 * Forwards connections from `127.0.0.1:<port>` to a target. Every client
 * connection gets its own upstream connection; when either side closes or
 * fails, both are destroyed.
 */
export class TcpProxy {
  /** The local port the proxy listens on. */
  readonly port: number;
  private readonly server: Server;
  private readonly target: TcpProxyTarget;
  private readonly pipes = new Set<Pipe>();
  private readonly held = new Set<Pipe>();
  private paused: PauseMode | undefined;
  private accepted = 0;
  private refused = 0;
  private cut = 0;

  private constructor(server: Server, port: number, target: TcpProxyTarget) {
    this.server = server;
    this.port = port;
    this.target = target;
  }

  /**
   * Starts a proxy on `127.0.0.1` (a free port) forwarding to `target`.
   * @returns the listening proxy
   */
  static async start(target: TcpProxyTarget): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined;
    const server = createServer({ pauseOnConnect: true }, (socket) => proxy?.onConnection(socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("proxy has no TCP address");
    proxy = new TcpProxy(server, address.port, target);
    return proxy;
  }

  /**
   * The proxy's URL for a scheme, such as `https://127.0.0.1:40123`.
   * @param protocol `https` (default) or `http`
   */
  url(protocol: "https" | "http" = "https"): string {
    return `${protocol}://127.0.0.1:${this.port}`;
  }

  /** Client connections currently open (forwarded or held). */
  get openConnections(): number {
    return this.pipes.size;
  }

  /** Client connections accepted and forwarded (or held) since the start. */
  get acceptedConnections(): number {
    return this.accepted;
  }

  /** Client connections refused while paused in `refuse` mode. */
  get refusedConnections(): number {
    return this.refused;
  }

  /** Connections destroyed by {@link TcpProxy.cutAll} so far. */
  get cutConnections(): number {
    return this.cut;
  }

  /** True while paused. */
  get isPaused(): boolean {
    return this.paused !== undefined;
  }

  /**
   * Destroys every open connection, client and upstream side (the client side with
   * a TCP reset, as a broken network path or a dying load balancer would).
   * @returns how many connections were cut
   */
  cutAll(): number {
    const pipes = [...this.pipes];
    for (const pipe of pipes) this.destroy(pipe, true);
    this.cut += pipes.length;
    return pipes.length;
  }

  /**
   * Black-holes every open connection, as a dead network path would: bytes stop
   * flowing both ways, and neither side learns that the other closed (the
   * client side stays open until the client gives up and closes it).
   * New connections are not affected.
   * @returns how many connections were stalled
   */
  stallAll(): number {
    let n = 0;
    for (const pipe of this.pipes) {
      if (pipe.stalled) continue;
      pipe.stalled = true;
      n++;
      pipe.client.unpipe();
      pipe.client.pause();
      pipe.upstream?.unpipe();
      pipe.upstream?.pause();
    }
    return n;
  }

  /** Connections currently stalled by {@link TcpProxy.stallAll}. */
  get stalledConnections(): number {
    let n = 0;
    for (const pipe of this.pipes) if (pipe.stalled) n++;
    return n;
  }

  /**
   * Stops forwarding new connections until {@link TcpProxy.resume}: `refuse`
   * resets them at once, `hold` accepts them and forwards them on resume.
   * Open connections are left alone (combine with {@link TcpProxy.cutAll}).
   */
  pause(mode: PauseMode = "refuse"): void {
    this.paused = mode;
  }

  /** Forwards new connections again, including those held while paused. */
  resume(): void {
    this.paused = undefined;
    const held = [...this.held];
    this.held.clear();
    for (const pipe of held) this.forward(pipe);
  }

  /** Cuts every connection and stops listening. */
  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onConnection(client: Socket): void {
    client.on("error", () => {}); // a reset client is expected; the close handler cleans up
    if (this.paused === "refuse") {
      this.refused++;
      client.resetAndDestroy();
      return;
    }
    this.accepted++;
    const early: Buffer[] = [];
    const pipe: Pipe = {
      client,
      upstream: undefined,
      stalled: false,
      early,
      onEarlyData: (c) => early.push(c),
    };
    this.pipes.add(pipe);
    client.once("close", () => this.destroy(pipe, false));
    // Read (and keep) what the client sends until the upstream is connected, so that a
    // client giving up on a held or slow connection is noticed at once.
    client.on("data", pipe.onEarlyData);
    client.resume();
    if (this.paused === "hold") this.held.add(pipe);
    else this.forward(pipe);
  }

  private forward(pipe: Pipe): void {
    const { client } = pipe;
    if (client.destroyed) return;
    const upstream = netConnect({ host: this.target.host, port: this.target.port });
    pipe.upstream = upstream;
    const onUpstreamGone = () => {
      if (!pipe.stalled) this.destroy(pipe, false);
    };
    upstream.on("error", onUpstreamGone);
    upstream.once("close", onUpstreamGone);
    upstream.once("connect", () => {
      if (pipe.stalled) return;
      client.off("data", pipe.onEarlyData);
      for (const chunk of pipe.early.splice(0)) upstream.write(chunk);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  private destroy(pipe: Pipe, reset: boolean): void {
    if (!this.pipes.delete(pipe)) return;
    this.held.delete(pipe);
    if (reset && !pipe.client.destroyed) pipe.client.resetAndDestroy();
    else pipe.client.destroy();
    pipe.upstream?.destroy();
  }
}
