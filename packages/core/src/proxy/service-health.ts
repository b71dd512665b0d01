/**
 * Per-service health-check servers (kube-proxy's `ServiceHealthServer`,
 * pkg/proxy/healthcheck/service_health.go): for every Service of type LoadBalancer with
 * `externalTrafficPolicy: Local`, an HTTP server on its `healthCheckNodePort` tells the
 * cloud load balancer whether this node has a local ready endpoint (200) or not (503).
 *
 * The pure parts ({@link serviceHealthCheckPorts}, {@link localReadyEndpointCounts},
 * {@link planServiceHealthListeners}, {@link serviceHealthResponse}) are kept apart from
 * the listeners, which go through an injectable {@link ServiceHealthListen}.
 *
 * @module
 */
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from "node:http";
import { cidrContains, ipFamilyOf, parseCidr } from "../net/ip.js";
import { serviceKeyOfPortKey } from "../service/keys.js";
import type { ServiceSnapshot } from "../service/model.js";
import { describeError, UnavailableError } from "../util/errors.js";
import { type Logger, silentLogger } from "../util/logging.js";

/** A Service whose health-check node port this node serves. */
export interface ServiceHealthCheckPort {
  readonly namespace: string;
  readonly name: string;
  /** `spec.healthCheckNodePort`. */
  readonly port: number;
}

const portsCache = new WeakMap<ServiceSnapshot["services"], ReadonlyMap<string, ServiceHealthCheckPort>>();
/** For each result of {@link serviceHealthCheckPorts}: its Services' port keys, as [port key, Service key]. */
const portKeysCache = new WeakMap<ReadonlyMap<string, ServiceHealthCheckPort>, readonly [string, string][]>();
const EMPTY_PORTS: ReadonlyMap<string, ServiceHealthCheckPort> = new Map();

/**
 * The health-check node ports the node must serve, by Service key (`namespace/name`):
 * every Service with a non-zero `healthCheckNodePort` in the snapshot (core's model sets
 * it only for LoadBalancer Services with `externalTrafficPolicy: Local`, as kube-proxy's
 * `HealthCheckNodePorts` does). Cached per (immutable) services map.
 */
export function serviceHealthCheckPorts(
  snapshot: ServiceSnapshot,
): ReadonlyMap<string, ServiceHealthCheckPort> {
  const cached = portsCache.get(snapshot.services);
  if (cached !== undefined) return cached;
  let out: Map<string, ServiceHealthCheckPort> | undefined;
  const portKeys: [string, string][] = [];
  for (const sp of snapshot.services.values()) {
    if (sp.healthCheckNodePort === 0) continue;
    out ??= new Map();
    const key = `${sp.name.namespace}/${sp.name.name}`;
    portKeys.push([sp.key, key]);
    if (!out.has(key))
      out.set(key, { namespace: sp.name.namespace, name: sp.name.name, port: sp.healthCheckNodePort });
  }
  const result = out ?? EMPTY_PORTS;
  if (out !== undefined) portKeysCache.set(out, portKeys);
  portsCache.set(snapshot.services, result);
  return result;
}

/**
 * Number of local ready endpoints per Service key (kube-proxy's `LocalReadyEndpoints`):
 * endpoints that are `ready` and on this node (`isLocal`), counted once per IP over all
 * ports of the Service (10.0.0.1:80 and 10.0.0.1:443 are one endpoint). Serving but
 * terminating endpoints do not count: a node with only those must fail the check, so the
 * load balancer drains it. Services without local ready endpoints are absent.
 *
 * @param services only count these Service keys (default: every Service)
 */
export function localReadyEndpointCounts(
  snapshot: ServiceSnapshot,
  services?: ReadonlySet<string> | ReadonlyMap<string, unknown>,
): Map<string, number> {
  const ips = new Map<string, Set<string>>();
  const count = (portKey: string, serviceKey: string) => {
    const eps = snapshot.endpoints.get(portKey);
    if (eps === undefined) return;
    for (const ep of eps) {
      if (!ep.ready || !ep.isLocal) continue;
      let set = ips.get(serviceKey);
      if (set === undefined) {
        set = new Set();
        ips.set(serviceKey, set);
      }
      set.add(ep.ip);
    }
  };
  if (services === undefined) {
    for (const portKey of snapshot.endpoints.keys()) count(portKey, serviceKeyOfPortKey(portKey));
  } else if (services.size > 0) {
    // The Services of serviceHealthCheckPorts(snapshot): their port keys are known.
    const known = portKeysCache.get(services as ReadonlyMap<string, ServiceHealthCheckPort>);
    if (known !== undefined && portsCache.get(snapshot.services) === services) {
      for (const [portKey, serviceKey] of known) count(portKey, serviceKey);
    } else {
      for (const sp of snapshot.services.values()) {
        const serviceKey = `${sp.name.namespace}/${sp.name.name}`;
        if (services.has(serviceKey)) count(sp.key, serviceKey);
      }
    }
  }
  const out = new Map<string, number>();
  for (const [k, set] of ips) out.set(k, set.size);
  return out;
}

/** What {@link planServiceHealthListeners} decided. */
export interface ServiceHealthListenerPlan {
  /** Services whose listeners must be closed (gone, or their port changed). */
  readonly close: readonly string[];
  /** Services whose listeners must be opened (new, or their port changed). */
  readonly open: readonly ServiceHealthCheckPort[];
}

/**
 * The listeners to close and open to go from the `current` ports to the `desired` ones
 * (both by Service key): a Service whose port changed is closed then opened again;
 * unchanged ones are left alone. Output is sorted by Service key.
 */
export function planServiceHealthListeners(
  current: ReadonlyMap<string, number>,
  desired: ReadonlyMap<string, ServiceHealthCheckPort>,
): ServiceHealthListenerPlan {
  const close: string[] = [];
  const open: ServiceHealthCheckPort[] = [];
  for (const [key, port] of current) {
    if (desired.get(key)?.port !== port) close.push(key);
  }
  for (const [key, want] of desired) {
    if (current.get(key) !== want.port) open.push(want);
  }
  close.sort();
  open.sort((a, b) => {
    const ka = `${a.namespace}/${a.name}`;
    const kb = `${b.namespace}/${b.name}`;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
  return { close, open };
}

/** A health-check answer. */
export interface ServiceHealthResponse {
  /** 200 when the node has local endpoints and the proxy is healthy, else 503. */
  readonly status: 200 | 503;
  /** Response headers, as kube-proxy sets them. */
  readonly headers: Readonly<Record<string, string>>;
  /** kube-proxy's JSON body (tab-indented, no trailing newline). */
  readonly body: string;
}

/**
 * kube-proxy's health-check answer for one Service: status 200 when `localEndpoints > 0`
 * and the proxy is healthy, 503 otherwise; headers `Content-Type: application/json`,
 * `X-Content-Type-Options: nosniff` and `X-Load-Balancing-Endpoint-Weight: <localEndpoints>`;
 * body
 *
 * ```json
 * {
 * 	"service": {
 * 		"namespace": "ns",
 * 		"name": "svc"
 * 	},
 * 	"localEndpoints": 1,
 * 	"serviceProxyHealthy": true
 * }
 * ```
 */
export function serviceHealthResponse(
  service: Pick<ServiceHealthCheckPort, "namespace" | "name">,
  localEndpoints: number,
  proxyHealthy: boolean,
): ServiceHealthResponse {
  const body = [
    "{",
    '\t"service": {',
    `\t\t"namespace": ${JSON.stringify(service.namespace)},`,
    `\t\t"name": ${JSON.stringify(service.name)}`,
    "\t},",
    `\t"localEndpoints": ${localEndpoints},`,
    `\t"serviceProxyHealthy": ${proxyHealthy}`,
    "}",
  ].join("\n");
  return {
    status: localEndpoints !== 0 && proxyHealthy ? 200 : 503,
    headers: {
      "Content-Type": "application/json",
      "X-Content-Type-Options": "nosniff",
      "X-Load-Balancing-Endpoint-Weight": String(localEndpoints),
    },
    body,
  };
}

/** An open health-check listener. */
export interface ServiceHealthListener {
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

/**
 * Opens an HTTP listener on `host:port` serving `handler`; `host` undefined means every
 * address of the node (IPv6 and IPv4 when the node has IPv6, like Go's `:port`).
 * Rejects when the address cannot be bound.
 */
export type ServiceHealthListen = (
  host: string | undefined,
  port: number,
  handler: RequestListener,
) => Promise<ServiceHealthListener>;

/** The default {@link ServiceHealthListen}: `node:http` in this process's network namespace. */
export const listenServiceHealth: ServiceHealthListen = async (host, port, handler) => {
  const server = createServer(handler);
  const where = `${host === undefined ? "*" : host.includes(":") ? `[${host}]` : host}:${port}`;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) =>
      reject(
        new UnavailableError(where, `cannot serve a health check on ${where}: ${err.message}`, {
          cause: err,
        }),
      );
    server.once("error", onError);
    server.listen(host === undefined ? { port } : { port, host }, () => {
      server.off("error", onError);
      resolve();
    });
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
};

/**
 * Where kube-proxy binds health-check node ports: the node IPs inside
 * `--nodeport-addresses`, or undefined (every address) when no CIDR is set or none of
 * the node's IPs is inside one.
 */
export function nodePortHealthBindAddresses(
  nodePortAddresses: readonly string[] | undefined,
  nodeIPs: readonly string[] | undefined,
): string[] | undefined {
  const cidrs = (nodePortAddresses ?? []).map((t) => parseCidr(t)).filter((c) => c !== undefined);
  if (cidrs.length === 0) return undefined;
  const ips = (nodeIPs ?? []).filter((ip) =>
    cidrs.some((c) => c.family === ipFamilyOf(ip) && cidrContains(c, ip)),
  );
  return ips.length > 0 ? ips : undefined;
}

/** Options of a {@link ServiceHealthServer}. */
export interface ServiceHealthServerOptions {
  /**
   * Addresses each health check listens on (kube-proxy: the node IPs matching
   * `--nodeport-addresses`). Unset or empty: every address of the node, one listener.
   */
  readonly bindAddresses?: readonly string[];
  /**
   * Whether the proxy is healthy (for example `() => controller.health.isHealthy()`);
   * an unhealthy proxy answers 503 everywhere, with `"serviceProxyHealthy": false`.
   * Default: always healthy.
   */
  readonly proxyHealthy?: () => boolean;
  /** How listeners are opened; default {@link listenServiceHealth}. */
  readonly listen?: ServiceHealthListen;
  /** Logger; default silent. */
  readonly logger?: Logger;
}

/** A health-check listener that could not be opened (retried on the next sync). */
export interface ServiceHealthFailure {
  /** Service key `namespace/name`. */
  readonly service: string;
  readonly port: number;
  readonly error: unknown;
}

/** Result of {@link ServiceHealthServer.syncServices}. */
export interface ServiceHealthSyncResult {
  /** Services whose listeners were opened. */
  readonly opened: readonly string[];
  /** Services whose listeners were closed. */
  readonly closed: readonly string[];
  /** Services whose listeners could not be opened (for example, the port is taken). */
  readonly failed: readonly ServiceHealthFailure[];
}

/** The state of one served health check, as {@link ServiceHealthServer.status} reports it. */
export interface ServiceHealthStatus extends ServiceHealthCheckPort {
  /** Local ready endpoints last reported by {@link ServiceHealthServer.syncEndpoints}. */
  readonly localEndpoints: number;
}

function isSnapshot(x: ServiceSnapshot | ReadonlyMap<string, unknown>): x is ServiceSnapshot {
  return "services" in x && "endpoints" in x && "generation" in x;
}

interface Instance {
  readonly service: ServiceHealthCheckPort;
  readonly listeners: readonly ServiceHealthListener[];
  localEndpoints: number;
}

/**
 * Serves the health-check node ports of `externalTrafficPolicy: Local` Services.
 *
 * After each successful proxy sync, call {@link ServiceHealthServer.sync} with the
 * snapshot (or {@link syncServices} and {@link syncEndpoints} separately, as kube-proxy
 * does): listeners of Services that went away or changed port are closed, new ones are
 * opened on every bind address, and each answers with its Service's current local ready
 * endpoint count ({@link serviceHealthResponse}), whatever the request path. A port that
 * cannot be bound is logged and reported, and tried again on the next sync.
 * Calls are serialised; {@link close} closes everything.
 */
export class ServiceHealthServer {
  private readonly instances = new Map<string, Instance>();
  private readonly listen: ServiceHealthListen;
  private readonly hosts: readonly (string | undefined)[];
  private readonly logger: Logger;
  private readonly proxyHealthy: () => boolean;
  private queue: Promise<unknown> = Promise.resolve();
  private counts: ReadonlyMap<string, number> = new Map();

  constructor(options: ServiceHealthServerOptions = {}) {
    this.listen = options.listen ?? listenServiceHealth;
    const addrs = options.bindAddresses ?? [];
    this.hosts = addrs.length > 0 ? [...new Set(addrs)] : [undefined];
    this.logger = options.logger ?? silentLogger();
    this.proxyHealthy = options.proxyHealthy ?? (() => true);
  }

  /**
   * Opens and closes listeners so that exactly the health-check ports of `desired` (a
   * snapshot, or the result of {@link serviceHealthCheckPorts}) are served.
   */
  syncServices(
    desired: ServiceSnapshot | ReadonlyMap<string, ServiceHealthCheckPort>,
  ): Promise<ServiceHealthSyncResult> {
    const ports = isSnapshot(desired) ? serviceHealthCheckPorts(desired) : desired;
    return this.serialised(() => this.applyServices(ports));
  }

  /**
   * Sets the local ready endpoint counts (a snapshot, or the result of
   * {@link localReadyEndpointCounts}); Services not in it count 0. Synchronous: the next
   * request sees the new counts.
   */
  syncEndpoints(counts: ServiceSnapshot | ReadonlyMap<string, number>): void {
    const map = isSnapshot(counts)
      ? localReadyEndpointCounts(counts, serviceHealthCheckPorts(counts))
      : counts;
    // Kept for listeners opened later, which start with their Service's count.
    this.counts = map;
    for (const [key, inst] of this.instances) inst.localEndpoints = map.get(key) ?? 0;
  }

  /**
   * {@link syncEndpoints} then {@link syncServices} for one snapshot (the counts first, so
   * that a listener answers with the snapshot's count from its first request).
   */
  sync(snapshot: ServiceSnapshot): Promise<ServiceHealthSyncResult> {
    const ports = serviceHealthCheckPorts(snapshot);
    this.syncEndpoints(localReadyEndpointCounts(snapshot, ports));
    return this.serialised(() => this.applyServices(ports));
  }

  /** The health checks being served, by Service key, sorted. */
  status(): ServiceHealthStatus[] {
    return [...this.instances.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, i]) => ({ ...i.service, localEndpoints: i.localEndpoints }));
  }

  /** Closes every listener; the server can be synced again afterwards. */
  close(): Promise<void> {
    return this.serialised(async () => {
      const all = [...this.instances.values()];
      this.instances.clear();
      await Promise.all(all.map((i) => this.closeInstance(i)));
    });
  }

  private serialised<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => {});
    return run;
  }

  private async applyServices(
    desired: ReadonlyMap<string, ServiceHealthCheckPort>,
  ): Promise<ServiceHealthSyncResult> {
    const current = new Map<string, number>();
    for (const [key, inst] of this.instances) current.set(key, inst.service.port);
    const plan = planServiceHealthListeners(current, desired);
    const closed: string[] = [];
    for (const key of plan.close) {
      const inst = this.instances.get(key);
      if (inst === undefined) continue;
      this.instances.delete(key);
      this.logger.info({ service: key, port: inst.service.port }, "closing health check");
      await this.closeInstance(inst);
      closed.push(key);
    }
    const opened: string[] = [];
    const failed: ServiceHealthFailure[] = [];
    for (const service of plan.open) {
      const key = `${service.namespace}/${service.name}`;
      const listeners: ServiceHealthListener[] = [];
      try {
        const handler = (_req: IncomingMessage, res: ServerResponse) => this.answer(key, service, res);
        for (const host of this.hosts) listeners.push(await this.listen(host, service.port, handler));
      } catch (error) {
        await Promise.all(listeners.map((l) => l.close().catch(() => {})));
        this.logger.error(
          { service: key, port: service.port, error: describeError(error) },
          "failed to start health check",
        );
        failed.push({ service: key, port: service.port, error });
        continue;
      }
      this.logger.info({ service: key, port: service.port }, "opened health check");
      this.instances.set(key, { service, listeners, localEndpoints: this.counts.get(key) ?? 0 });
      opened.push(key);
    }
    return { opened, closed, failed };
  }

  private answer(key: string, service: ServiceHealthCheckPort, res: ServerResponse): void {
    // A request racing the listener's close answers as a service without endpoints.
    const count = this.instances.get(key)?.localEndpoints ?? 0;
    const answer = serviceHealthResponse(service, count, this.proxyHealthy());
    res.writeHead(answer.status, {
      ...answer.headers,
      "Content-Length": String(Buffer.byteLength(answer.body)),
    });
    res.end(answer.body);
  }

  private async closeInstance(inst: Instance): Promise<void> {
    await Promise.all(
      inst.listeners.map((l) =>
        l.close().catch((error: unknown) => {
          this.logger.warn(
            { service: `${inst.service.namespace}/${inst.service.name}`, error: describeError(error) },
            "closing a health check failed",
          );
        }),
      ),
    );
  }
}
