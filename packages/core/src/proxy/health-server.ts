/**
 * The proxy's health endpoint (`/healthz` and `/livez`), answering like kube-proxy's
 * proxier health server (default `0.0.0.0:10256`, chosen by the CLI).
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { Counter, type Registry } from "prom-client";
import { type HttpEndpoint, listenHttp } from "../util/http-server.js";
import { formatGoTime, type ProxierHealth, type ProxierHealthStatus } from "./proxier-health.js";

/** Options of {@link startProxyHealthServer}. */
export interface ProxyHealthServerOptions {
  /** Address to bind, such as `0.0.0.0` (kube-proxy's default) or `127.0.0.1`. */
  readonly host: string;
  /** Port; 0 picks a free one (kube-proxy's default is 10256). */
  readonly port: number;
  /** The health state to report. */
  readonly health: ProxierHealth;
  /**
   * Registry for `kubeproxy_proxy_healthz_total{code}` and `kubeproxy_proxy_livez_total{code}`;
   * when omitted the answers are not counted.
   */
  readonly registry?: Registry;
}

/** A running proxy health endpoint. */
export type ProxyHealthServer = HttpEndpoint;

/** A health answer: HTTP status and JSON body. */
export interface ProxyHealthResponse {
  readonly status: 200 | 503;
  readonly body: string;
}

/**
 * The `/healthz` answer for a status: 200 when healthy and the node is eligible, else 503.
 * The body is kube-proxy's, `{"lastUpdated": "…","currentTime": "…", "nodeEligible": true}`;
 * when healthy, `lastUpdated` is the current time (kube-proxy keeps that for compatibility).
 */
export function healthzResponse(s: ProxierHealthStatus): ProxyHealthResponse {
  const healthy = s.healthy && s.nodeEligible;
  const lastUpdated = formatGoTime(healthy ? s.currentTime : s.lastUpdated);
  const body = `{"lastUpdated": ${JSON.stringify(lastUpdated)},"currentTime": ${JSON.stringify(formatGoTime(s.currentTime))}, "nodeEligible": ${s.nodeEligible}}`;
  return { status: healthy ? 200 : 503, body };
}

/**
 * The `/livez` answer for a status: like {@link healthzResponse} but ignoring node
 * eligibility, with body `{"lastUpdated": "…","currentTime": "…"}`.
 */
export function livezResponse(s: ProxierHealthStatus): ProxyHealthResponse {
  const lastUpdated = formatGoTime(s.healthy ? s.currentTime : s.lastUpdated);
  const body = `{"lastUpdated": ${JSON.stringify(lastUpdated)},"currentTime": ${JSON.stringify(formatGoTime(s.currentTime))}}`;
  return { status: s.healthy ? 200 : 503, body };
}

function probeCounter(registry: Registry, name: string, help: string): Counter<"code"> {
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Counter) return existing as Counter<"code">;
  return new Counter({ name, help, labelNames: ["code"], registers: [registry] });
}

/**
 * Serves `/healthz` and `/livez` for `options.health`; any other path answers 404.
 * Fails with {@link UnavailableError} when the address cannot be bound.
 */
export async function startProxyHealthServer(options: ProxyHealthServerOptions): Promise<ProxyHealthServer> {
  const healthzTotal = options.registry
    ? probeCounter(options.registry, "kubeproxy_proxy_healthz_total", "Cumulative proxy healthz HTTP status")
    : undefined;
  const livezTotal = options.registry
    ? probeCounter(options.registry, "kubeproxy_proxy_livez_total", "Cumulative proxy livez HTTP status")
    : undefined;

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0];
    let answer: ProxyHealthResponse;
    if (path === "/healthz") {
      answer = healthzResponse(options.health.status());
      healthzTotal?.inc({ code: String(answer.status) });
    } else if (path === "/livez") {
      answer = livezResponse(options.health.status());
      livezTotal?.inc({ code: String(answer.status) });
    } else {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("404 page not found\n");
      return;
    }
    res.writeHead(answer.status, { "content-type": "application/json", "x-content-type-options": "nosniff" });
    res.end(answer.body);
  };

  return listenHttp(options.host, options.port, "proxy health", handler);
}
