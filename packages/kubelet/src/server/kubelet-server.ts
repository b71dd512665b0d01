/**
 * {@link KubeletServer}: kubelet's HTTP endpoints in standalone mode.
 *
 * - **healthz** (plain HTTP, default 127.0.0.1:10248): `/healthz` (`ok`, or 500
 *   when the provider reports unhealthy), `/healthz/ping`, `/healthz/syncloop`.
 * - **kubelet port** (HTTPS, default 10250; a self-signed certificate is made in
 *   `certDir` when none is given): `/pods` (a v1 `PodList` of the pods with their
 *   statuses), `/containerLogs/<namespace>/<pod>/<container>` with `follow`,
 *   `tailLines`, `timestamps` and `previous`, `/metrics` (the provider's
 *   registries), `/metrics/probes` (the prober registries) and `/healthz`;
 *   with a {@link SummaryProvider}, `/stats/summary` (kubelet's Summary API)
 *   and `/metrics/resource` (kubelet's resource metrics); with a
 *   {@link StreamingBackend}, `/exec`, `/attach` and `/portForward` (the
 *   client's SPDY / WebSocket upgrade is proxied to the runtime's streaming
 *   server) and `/run`.
 *
 * With a {@link KubeletAuth} every request on the kubelet port is
 * authenticated (client certificates are requested, not required, at the TLS
 * level and verified against the client CA; bearer tokens through
 * TokenReview) and authorized (kubelet's node request attributes), and the
 * port listens on 0.0.0.0 unless told otherwise. Without one nothing is
 * checked, so the port must stay on loopback (its default then).
 *
 * @module
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import {
  type Clock,
  describeError,
  type Logger,
  type Pod,
  Registry,
  realClock,
  silentLogger,
  UnavailableError,
} from "@worknode/core";
import { type AuthCheckResult, type KubeletAuth, presentedClientCertificate } from "./auth/kubelet-auth.js";
import { streamContainerLog } from "./container-logs.js";
import { failureStatus } from "./kube-status.js";
import { RESOURCE_METRICS_CONTENT_TYPE, renderResourceMetrics } from "./resource-metrics.js";
import {
  ensureSelfSignedCertificate,
  loadServingCertificate,
  type ServingCertificate,
} from "./serving-cert.js";
import type { Summary } from "./stats-types.js";
import type { StreamingBackend } from "./streaming-backend.js";
import { proxyUpgrade } from "./streaming-proxy.js";
import { isStreamingPath, parseStreamingRequest, StreamingRequestError } from "./streaming-request.js";
import type { SummaryProvider } from "./summary-provider.js";

/** kubelet's default healthz port. */
export const DEFAULT_HEALTHZ_PORT = 10248;
/** kubelet's default port. */
export const DEFAULT_KUBELET_PORT = 10250;

/** What the server serves; the kubelet implements it. */
export interface KubeletServerProvider {
  /** The pods the kubelet runs, with their latest statuses. */
  pods(): Pod[];
  /**
   * The CRI log file of a container's current instance (or, with `previous`,
   * its last terminated one); undefined when there is none.
   */
  containerLogPath(namespace: string, pod: string, container: string, previous: boolean): string | undefined;
  /** The kubelet's health (sync loop and PLEG alive). */
  healthy(): boolean;
  /** Registries served on `/metrics`. */
  readonly registries: readonly Registry[];
  /** Registries served on `/metrics/probes` (prober metrics). */
  readonly probeRegistries?: readonly Registry[];
}

/** A host and port to listen on. */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** Options of {@link KubeletServer}. */
export interface KubeletServerOptions {
  readonly provider: KubeletServerProvider;
  /** Node name (self-signed certificate). */
  readonly nodeName: string;
  /** The healthz endpoint; undefined disables it. */
  readonly healthz?: ListenAddress;
  /**
   * The kubelet port; undefined disables it. `host` defaults to 0.0.0.0 with
   * `auth`, else 127.0.0.1; `port` to 10250.
   */
  readonly server?: Partial<ListenAddress> & {
    /** Serving certificate and key files; when absent a self-signed pair in `certDir` is used. */
    readonly tlsCertFile?: string;
    readonly tlsPrivateKeyFile?: string;
    /** Where the self-signed pair lives (kubelet: `<root-dir>/pki`). */
    readonly certDir?: string;
    /** Authentication and authorization of every request (see {@link buildKubeletAuth}). */
    readonly auth?: KubeletAuth;
  };
  /** Serves `/stats/summary` and `/metrics/resource`. */
  readonly stats?: SummaryProvider;
  /** Serves `/exec`, `/attach`, `/portForward` and `/run`. */
  readonly streaming?: StreamingBackend;
  /** How often followed logs look for new data besides the directory watch; default 1 s. */
  readonly logPollIntervalMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** A request the handlers refuse, with its HTTP status. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff" });
  res.end(text);
}

/** Go's `strconv.ParseBool`, as query parameters are parsed. */
function parseBool(name: string, value: string | null): boolean {
  if (value === null) return false;
  if (["1", "t", "T", "true", "TRUE", "True", ""].includes(value)) return true;
  if (["0", "f", "F", "false", "FALSE", "False"].includes(value)) return false;
  throw new HttpError(400, `invalid value for ${name}: ${JSON.stringify(value)} is not a boolean`);
}

/** The parsed query of a `/containerLogs` request. */
export interface ContainerLogsQuery {
  readonly follow: boolean;
  readonly previous: boolean;
  readonly timestamps: boolean;
  readonly tailLines: number | undefined;
}

/**
 * Parses the `/containerLogs` query parameters as kubelet does (booleans in Go
 * syntax, `tailLines` a non-negative integer).
 * @throws Error with `status` 400 for malformed values, 422 for a negative `tailLines`
 */
export function parseContainerLogsQuery(params: URLSearchParams): ContainerLogsQuery {
  const tail = params.get("tailLines");
  let tailLines: number | undefined;
  if (tail !== null) {
    if (!/^[+-]?\d+$/.test(tail))
      throw new HttpError(400, `invalid value for tailLines: ${JSON.stringify(tail)}`);
    tailLines = Number(tail);
    if (tailLines < 0) {
      throw new HttpError(
        422,
        "invalid request: tailLines: Invalid value: must be greater than or equal to 0",
      );
    }
  }
  return {
    follow: parseBool("follow", params.get("follow")),
    previous: parseBool("previous", params.get("previous")),
    timestamps: parseBool("timestamps", params.get("timestamps")),
    tailLines,
  };
}

function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, `malformed path segment ${JSON.stringify(segment)}`);
  }
}

function containerNames(pod: Pod): string[] {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((c) => c.name);
}

async function listen(server: Server, address: ListenAddress, what: string): Promise<ListenAddress> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) =>
      reject(
        new UnavailableError(
          `${address.host}:${address.port}`,
          `cannot serve ${what} on ${address.host}:${address.port}: ${err.message}`,
          { cause: err },
        ),
      );
    server.once("error", onError);
    server.listen(address.port, address.host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  return { host: a.address, port: a.port };
}

/** Where the kubelet port listens by default: everywhere when requests are checked, else loopback only. */
export function defaultKubeletServerHost(authConfigured: boolean): string {
  return authConfigured ? "0.0.0.0" : "127.0.0.1";
}

function sendStatus(res: ServerResponse, code: number, message: string): void {
  const body = JSON.stringify(failureStatus(code, message));
  res.writeHead(code, { "content-type": "application/json" });
  res.end(body);
}

/** Answers on a socket whose request the HTTP server handed over (an upgrade request). */
function rawResponse(socket: Duplex, code: number, contentType: string, body: string): void {
  if (socket.destroyed) return;
  const payload = Buffer.from(body, "utf8");
  socket.end(
    `HTTP/1.1 ${code} ${STATUS_CODES[code] ?? ""}\r\nContent-Type: ${contentType}\r\nContent-Length: ${payload.length}\r\nConnection: close\r\n\r\n${body}`,
  );
}

function rawStatus(socket: Duplex, code: number, message: string): void {
  rawResponse(socket, code, "application/json", JSON.stringify(failureStatus(code, message)));
}

/** A summary with only CPU and memory (`/stats/summary?only_cpu_and_memory=true`). */
function cpuAndMemoryOnly(s: Summary): Summary {
  return {
    node: {
      nodeName: s.node.nodeName,
      startTime: s.node.startTime,
      ...(s.node.cpu ? { cpu: s.node.cpu } : {}),
      ...(s.node.memory ? { memory: s.node.memory } : {}),
    },
    pods: s.pods.map((p) => ({
      podRef: p.podRef,
      startTime: p.startTime,
      containers: p.containers.map((c) => ({
        name: c.name,
        startTime: c.startTime,
        ...(c.cpu ? { cpu: c.cpu } : {}),
        ...(c.memory ? { memory: c.memory } : {}),
      })),
      ...(p.cpu ? { cpu: p.cpu } : {}),
      ...(p.memory ? { memory: p.memory } : {}),
    })),
  };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

/** kubelet's HTTP endpoints (see the module notes). */
export class KubeletServer {
  private readonly clock: Clock;
  private readonly logger: Logger;
  private healthzServer: Server | undefined;
  private mainServer: Server | undefined;
  private healthzAddr: ListenAddress | undefined;
  private serverAddr: ListenAddress | undefined;
  private cert: ServingCertificate | undefined;
  private readonly follows = new Set<AbortController>();
  /** Upgraded (streaming) connections, both sides. */
  private readonly streams = new Set<Duplex>();

  constructor(private readonly options: KubeletServerOptions) {
    this.clock = options.clock ?? realClock;
    this.logger = (options.logger ?? silentLogger()).child({ component: "kubelet-server" });
  }

  /** Where healthz listens (after {@link start}). */
  get healthzAddress(): ListenAddress | undefined {
    return this.healthzAddr;
  }

  /** Where the kubelet port listens (after {@link start}). */
  get serverAddress(): ListenAddress | undefined {
    return this.serverAddr;
  }

  /** The serving certificate in use (after {@link start}). */
  get certificate(): ServingCertificate | undefined {
    return this.cert;
  }

  /**
   * Loads or generates the certificate and starts listening.
   * @throws UnavailableError when an address cannot be bound or the certificate cannot be made
   * @throws ConfigError when given certificate files cannot be read
   */
  async start(): Promise<void> {
    try {
      const { healthz, server } = this.options;
      if (healthz) {
        this.healthzServer = createHttpServer((req, res) => this.handleHealthz(req, res));
        this.healthzAddr = await listen(this.healthzServer, healthz, "healthz");
      }
      if (server) {
        if (server.tlsCertFile || server.tlsPrivateKeyFile) {
          if (!server.tlsCertFile || !server.tlsPrivateKeyFile) {
            throw new UnavailableError(
              "tls",
              "give both --tls-cert-file and --tls-private-key-file, or neither",
            );
          }
          this.cert = await loadServingCertificate(server.tlsCertFile, server.tlsPrivateKeyFile);
        } else {
          if (!server.certDir)
            throw new UnavailableError("tls", "no certificate given and no certDir to make one in");
          this.cert = await ensureSelfSignedCertificate({
            certDir: server.certDir,
            nodeName: this.options.nodeName,
            ips: server.host && server.host !== "0.0.0.0" && server.host !== "::" ? [server.host] : [],
            clock: this.clock,
          });
          if (this.cert.generated)
            this.logger.info({ cert: this.cert.certFile }, "generated a self-signed certificate");
        }
        const clientCA = server.auth?.clientCA;
        this.mainServer = createHttpsServer(
          {
            cert: this.cert.cert,
            key: this.cert.key,
            // Ask for client certificates but let requests without one through to
            // token / anonymous authentication (kubelet's RequestClientCert).
            ...(clientCA ? { ca: clientCA, requestCert: true, rejectUnauthorized: false } : {}),
          },
          (req, res) => this.handleMain(req, res),
        ) as unknown as Server;
        this.mainServer.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) =>
          this.handleUpgrade(req, socket, head),
        );
        this.serverAddr = await listen(
          this.mainServer,
          {
            host: server.host ?? defaultKubeletServerHost(server.auth !== undefined),
            port: server.port ?? DEFAULT_KUBELET_PORT,
          },
          "the kubelet API",
        );
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Stops listening, ends followed logs and closes open connections. */
  async stop(): Promise<void> {
    for (const f of this.follows) f.abort();
    this.follows.clear();
    for (const s of this.streams) s.destroy();
    this.streams.clear();
    const servers = [this.healthzServer, this.mainServer].filter((s): s is Server => s !== undefined);
    this.healthzServer = undefined;
    this.mainServer = undefined;
    await Promise.all(servers.map(closeServer));
  }

  private healthText(): { ok: boolean; text: string } {
    let ok = false;
    try {
      ok = this.options.provider.healthy();
    } catch {
      ok = false;
    }
    return ok
      ? { ok, text: "ok" }
      : { ok, text: "[-]syncloop failed: reason withheld\nhealthz check failed\n" };
  }

  private handleHealthz(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (req.method !== "GET" && req.method !== "HEAD") {
      sendText(res, 405, "405: Method Not Allowed");
    } else if (path === "/healthz" || path === "/healthz/syncloop") {
      const h = this.healthText();
      sendText(res, h.ok ? 200 : 500, h.text);
    } else if (path === "/healthz/ping") {
      sendText(res, 200, "ok");
    } else {
      sendText(res, 404, "404 page not found\n");
    }
  }

  /** Authenticates and authorizes a request on the kubelet port (everything passes without `auth`). */
  private async checkRequest(req: IncomingMessage, path: string): Promise<AuthCheckResult> {
    const auth = this.options.server?.auth;
    if (!auth) return { allowed: true, user: { username: "", groups: [] } };
    const socket = req.socket as TLSSocket;
    const cert = auth.clientCA ? presentedClientCertificate(socket) : undefined;
    return auth.check({
      method: req.method ?? "GET",
      path,
      ...(cert ? { clientCertificate: cert } : {}),
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
    });
  }

  private handleMain(req: IncomingMessage, res: ServerResponse): void {
    this.checkedRoute(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) this.logger.warn({ err: describeError(err), url: req.url }, "request failed");
      if (!res.headersSent) sendText(res, status, `${describeError(err)}\n`);
      else res.destroy();
    });
  }

  private async checkedRoute(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "https://x");
    const check = await this.checkRequest(req, url.pathname);
    if (!check.allowed) {
      sendText(res, check.status, check.message);
      return;
    }
    await this.route(req, res, url);
  }

  private handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on("error", () => undefined);
    this.streams.add(socket);
    socket.once("close", () => this.streams.delete(socket));
    this.serveUpgrade(req, socket, head).catch((err: unknown) => {
      if (err instanceof StreamingRequestError) {
        rawStatus(socket, err.status, err.message);
      } else {
        this.logger.warn({ err: describeError(err), url: req.url }, "streaming request failed");
        rawStatus(socket, 500, describeError(err));
      }
    });
  }

  private async serveUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? "/", "https://x");
    const check = await this.checkRequest(req, url.pathname);
    if (!check.allowed) {
      rawResponse(socket, check.status, "text/plain; charset=utf-8", check.message);
      return;
    }
    if (!isStreamingPath(url.pathname)) throw new StreamingRequestError(404, "404 page not found");
    if (req.method !== "GET" && req.method !== "POST")
      throw new StreamingRequestError(405, "405: Method Not Allowed");
    const backend = this.options.streaming;
    if (!backend) throw new StreamingRequestError(404, "streaming is not enabled on this kubelet");
    const request = parseStreamingRequest(url.pathname, url.searchParams);
    const target = await backend.streamingUrl(request);
    if (socket.destroyed) return;
    const upstream: Socket = proxyUpgrade(req, socket, head, target, {
      onConnectError: (err) => {
        this.logger.warn(
          { err: describeError(err), target: target.origin },
          "cannot reach the runtime's streaming server",
        );
        rawStatus(socket, 500, `error dialing backend: ${err.message}`);
      },
    });
    this.streams.add(upstream);
    upstream.once("close", () => this.streams.delete(upstream));
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname;
    const { provider } = this.options;
    if (isStreamingPath(path) || path.startsWith("/run/")) {
      await this.serveStreamingWithoutUpgrade(req, res, url);
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") throw new HttpError(405, "405: Method Not Allowed");
    if (path === "/stats/summary" || path === "/stats/summary/") {
      await this.serveSummary(res, url.searchParams);
    } else if (path === "/metrics/resource") {
      await this.serveResourceMetrics(res);
    } else if (path === "/healthz") {
      const h = this.healthText();
      sendText(res, h.ok ? 200 : 500, h.text);
    } else if (path === "/pods" || path === "/pods/") {
      this.servePods(res);
    } else if (path === "/metrics") {
      await this.serveMetrics(res, provider.registries);
    } else if (path === "/metrics/probes") {
      await this.serveMetrics(res, provider.probeRegistries ?? []);
    } else if (path.startsWith("/containerLogs/")) {
      const parts = path.slice("/containerLogs/".length).split("/").map(decodePathSegment);
      if (parts.length !== 3 || parts.some((p) => p === "")) throw new HttpError(404, "404 page not found");
      await this.serveContainerLogs(req, res, parts[0]!, parts[1]!, parts[2]!, url.searchParams);
    } else {
      throw new HttpError(404, "404 page not found");
    }
  }

  private async summary(): Promise<Summary> {
    const stats = this.options.stats;
    if (!stats) throw new HttpError(404, "404 page not found");
    return stats.summary();
  }

  private async serveSummary(res: ServerResponse, params: URLSearchParams): Promise<void> {
    const only = parseBool("only_cpu_and_memory", params.get("only_cpu_and_memory"));
    let summary: Summary;
    try {
      summary = await this.summary();
    } catch (err) {
      if (err instanceof HttpError) throw err;
      throw new HttpError(500, `Internal Error: failed to get summary stats: ${describeError(err)}`);
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(only ? cpuAndMemoryOnly(summary) : summary));
  }

  private async serveResourceMetrics(res: ServerResponse): Promise<void> {
    let summary: Summary | undefined;
    try {
      summary = await this.summary();
    } catch (err) {
      if (err instanceof HttpError) throw err;
      this.logger.warn(
        { err: describeError(err) },
        "error getting summary for the resource metrics endpoint",
      );
      summary = undefined;
    }
    res.writeHead(200, { "content-type": RESOURCE_METRICS_CONTENT_TYPE });
    res.end(renderResourceMetrics(summary));
  }

  /** `/exec`, `/attach`, `/portForward` without an upgrade (refused), and `/run`. */
  private async serveStreamingWithoutUpgrade(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
  ): Promise<void> {
    const backend = this.options.streaming;
    try {
      if (req.method !== "GET" && req.method !== "POST")
        throw new StreamingRequestError(405, "405: Method Not Allowed");
      if (!backend) throw new StreamingRequestError(404, "404 page not found");
      if (isStreamingPath(url.pathname)) {
        parseStreamingRequest(url.pathname, url.searchParams);
        throw new StreamingRequestError(400, "Upgrade request required");
      }
      if (req.method !== "POST") throw new StreamingRequestError(405, "405: Method Not Allowed");
      const parts = url.pathname.slice("/run/".length).split("/").map(decodePathSegment);
      if ((parts.length !== 3 && parts.length !== 4) || parts.some((p) => p === "")) {
        throw new StreamingRequestError(404, "404 page not found");
      }
      const cmd = (url.searchParams.get("cmd") ?? "").split(" ");
      const output = await backend.run(
        parts[0]!,
        parts[1]!,
        parts.length === 4 ? parts[2] : undefined,
        parts[parts.length - 1]!,
        cmd,
      );
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(output);
    } catch (err) {
      if (err instanceof StreamingRequestError) sendStatus(res, err.status, err.message);
      else throw err;
    }
  }

  private servePods(res: ServerResponse): void {
    const body = JSON.stringify({
      kind: "PodList",
      apiVersion: "v1",
      metadata: {},
      items: this.options.provider.pods(),
    });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(body);
  }

  private async serveMetrics(res: ServerResponse, registries: readonly Registry[]): Promise<void> {
    const merged = registries.length === 1 ? registries[0]! : Registry.merge([...registries]);
    const body = await merged.metrics();
    res.writeHead(200, { "content-type": merged.contentType });
    res.end(body);
  }

  private async serveContainerLogs(
    req: IncomingMessage,
    res: ServerResponse,
    namespace: string,
    podName: string,
    containerName: string,
    params: URLSearchParams,
  ): Promise<void> {
    const query = parseContainerLogsQuery(params);
    const { provider } = this.options;
    const pod = provider
      .pods()
      .find((p) => p.metadata?.namespace === namespace && p.metadata?.name === podName);
    if (!pod) throw new HttpError(404, `pod "${podName}" does not exist`);
    if (!containerNames(pod).includes(containerName)) {
      throw new HttpError(404, `container "${containerName}" not found in pod "${podName}"`);
    }
    const path = provider.containerLogPath(namespace, podName, containerName, query.previous);
    if (path === undefined) {
      throw new HttpError(
        400,
        query.previous
          ? `previous terminated container "${containerName}" in pod "${podName}" not found`
          : `container "${containerName}" in pod "${podName}" is waiting to start - no logs yet`,
      );
    }
    const abort = new AbortController();
    this.follows.add(abort);
    const onClose = () => abort.abort();
    res.once("close", onClose);
    req.once("close", () => {
      if (!res.writableFinished) abort.abort();
    });
    let started = false;
    try {
      await streamContainerLog(
        path,
        { follow: query.follow, tailLines: query.tailLines, timestamps: query.timestamps },
        {
          signal: abort.signal,
          clock: this.clock,
          pollIntervalMs: this.options.logPollIntervalMs,
          stillCurrent:
            query.follow && !query.previous
              ? () => provider.containerLogPath(namespace, podName, containerName, false) === path
              : undefined,
          onOpen: () => {
            started = true;
            res.writeHead(200, { "content-type": "text/plain", "x-content-type-options": "nosniff" });
            if (query.follow) res.flushHeaders();
          },
          write: (chunk) => {
            if (res.write(chunk)) return Promise.resolve();
            return new Promise<void>((resolve) => {
              const done = () => {
                res.off("drain", done);
                abort.signal.removeEventListener("abort", done);
                resolve();
              };
              res.once("drain", done);
              abort.signal.addEventListener("abort", done, { once: true });
            });
          },
        },
      );
      if (!abort.signal.aborted) res.end();
    } catch (err) {
      if (!started) throw new HttpError(400, describeError(err));
      res.destroy();
    } finally {
      res.off("close", onClose);
      this.follows.delete(abort);
    }
  }
}
