/**
 * Prometheus metrics (prom-client) and the HTTP endpoint that serves them.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { collectDefaultMetrics, Registry } from "prom-client";
import { type HttpEndpoint, listenHttp } from "./http-server.js";

export { Counter, Gauge, Histogram, Registry, Summary } from "prom-client";

/** Creates a metrics registry, optionally with Node.js process metrics (`process_*`, `nodejs_*`). */
export function createMetricsRegistry(options: { processMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry });
  return registry;
}

/** A probe answering `/healthz`; returns `ok: false` with a message when unhealthy. */
export type HealthCheck = () => { ok: boolean; message?: string };

/** Options of {@link startMetricsServer}. */
export interface MetricsServerOptions {
  /** Address to bind, such as `127.0.0.1`. */
  readonly host: string;
  /** Port; 0 picks a free one. */
  readonly port: number;
  /** Registries whose metrics are served together on `/metrics`. */
  readonly registries: readonly Registry[];
  /** Optional health check served on `/healthz` (200 or 503). */
  readonly health?: HealthCheck;
}

/** A running metrics endpoint. */
export type MetricsServer = HttpEndpoint;

/**
 * Serves `/metrics` in the Prometheus text format (and `/healthz` when a check is given).
 * Fails with {@link UnavailableError} when the address cannot be bound.
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  // Merged per request: metrics registered after the server started are served too.
  const merged = () =>
    options.registries.length === 1 ? options.registries[0]! : Registry.merge([...options.registries]);
  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0];
    try {
      if (path === "/metrics") {
        const registry = merged();
        const body = await registry.metrics();
        res.writeHead(200, { "content-type": registry.contentType });
        res.end(body);
      } else if (path === "/healthz" && options.health) {
        const h = options.health();
        res.writeHead(h.ok ? 200 : 503, { "content-type": "text/plain" });
        res.end(h.message ?? (h.ok ? "ok" : "unhealthy"));
      } else {
        res.writeHead(404, { "content-type": "text/plain" });
        res.end("not found\n");
      }
    } catch (err) {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(String(err));
    }
  };
  return listenHttp(options.host, options.port, "metrics", (req, res) => void handler(req, res));
}
