/**
 * The proxy's HTTP servers, as kube-proxy runs them: `/healthz` and `/livez`
 * (kube-proxy's JSON, from the controller's health) and `/metrics` (the shared
 * registry merged with the backend's own). Used by `worknode proxy` and
 * `worknode node`.
 *
 * @module
 */
import {
  describeError,
  type Logger,
  type ProxyController,
  type Registry,
  startMetricsServer,
  startProxyHealthServer,
} from "@worknode/core";
import type { CliProxier } from "./proxy-backend.js";
import type { HostPort } from "./proxy-config.js";

/** The started servers. */
export interface ProxyServers {
  /** Bound address of `/healthz` and `/livez`, when served. */
  readonly healthz: HostPort | undefined;
  /** Bound address of `/metrics`, when served. */
  readonly metrics: HostPort | undefined;
  /** Closes both; idempotent. */
  close(): Promise<void>;
}

/**
 * Starts the servers whose address is given. Every metric must exist before:
 * the metrics server serves a merge of the registries as they are now.
 * @throws UnavailableError when an address cannot be bound (what was started is closed)
 */
export async function startProxyServers(options: {
  readonly healthzBindAddress: HostPort | undefined;
  readonly metricsBindAddress: HostPort | undefined;
  readonly controller: ProxyController;
  readonly proxier: CliProxier;
  readonly registry: Registry;
  readonly logger: Logger;
}): Promise<ProxyServers> {
  const { controller, registry, logger } = options;
  const closers: Array<() => Promise<void>> = [];
  const close = async (): Promise<void> => {
    for (const c of closers.splice(0).reverse()) {
      await c().catch((err: unknown) => logger.warn({ err: describeError(err) }, "closing a server failed"));
    }
  };
  try {
    let healthz: HostPort | undefined;
    let metrics: HostPort | undefined;
    if (options.healthzBindAddress) {
      const server = await startProxyHealthServer({
        ...options.healthzBindAddress,
        health: controller.health,
        registry,
      });
      closers.push(() => server.close());
      healthz = server.address;
      logger.info({ address: server.address }, "serving the proxy's /healthz and /livez");
    }
    if (options.metricsBindAddress) {
      const metricsRegistry = options.proxier.metrics;
      const server = await startMetricsServer({
        ...options.metricsBindAddress,
        registries: metricsRegistry ? [registry, metricsRegistry] : [registry],
        health: () => ({ ok: controller.health.isHealthy() }),
      });
      closers.push(() => server.close());
      metrics = server.address;
      logger.info({ address: server.address }, "serving the proxy's /metrics");
    }
    return { healthz, metrics, close };
  } catch (err) {
    await close();
    throw err;
  }
}
