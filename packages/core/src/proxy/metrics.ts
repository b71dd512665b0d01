/**
 * The backend-independent proxy metrics, named as kube-proxy names them
 * (pkg/proxy/metrics), plus `worknode_proxy_sync_errors_total`.
 *
 * @module
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** kube-proxy's sync latency buckets: 1 ms doubling 15 times (up to ~16 s). */
export const SYNC_DURATION_BUCKETS: readonly number[] = Array.from({ length: 15 }, (_, i) => 0.001 * 2 ** i);

/** kube-proxy's network-programming latency buckets: 0.25 s, 0.5 s, 1–59 s, 60–115 s by 5, 2–5 min by 30 s. */
export const NETWORK_PROGRAMMING_BUCKETS: readonly number[] = [
  0.25,
  0.5,
  ...Array.from({ length: 59 }, (_, i) => i + 1),
  ...Array.from({ length: 12 }, (_, i) => 60 + 5 * i),
  ...Array.from({ length: 7 }, (_, i) => 120 + 30 * i),
];

/** Metric names used by {@link ProxyMetrics}. */
export const PROXY_METRIC_NAMES = {
  syncDuration: "kubeproxy_sync_proxy_rules_duration_seconds",
  syncFullDuration: "kubeproxy_sync_full_proxy_rules_duration_seconds",
  syncPartialDuration: "kubeproxy_sync_partial_proxy_rules_duration_seconds",
  lastSyncTimestamp: "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
  lastQueuedTimestamp: "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
  networkProgrammingDuration: "kubeproxy_network_programming_duration_seconds",
  syncErrors: "worknode_proxy_sync_errors_total",
} as const;

/** The metric objects a proxy controller updates. */
export interface ProxyMetrics {
  /** Every sync attempt's duration (full and partial, successful or not). */
  readonly syncDuration: Histogram;
  /** Duration of full syncs. */
  readonly syncFullDuration: Histogram;
  /** Duration of partial syncs. */
  readonly syncPartialDuration: Histogram;
  /** Time (seconds since epoch) of the last successful sync. */
  readonly lastSyncTimestamp: Gauge;
  /** Time (seconds since epoch) a sync was last queued. */
  readonly lastQueuedTimestamp: Gauge;
  /** Time from an upstream change (EndpointSlice trigger time) to its programming. */
  readonly networkProgrammingDuration: Histogram;
  /** Failed syncs, labelled by backend `mode`. */
  readonly syncErrors: Counter<"mode">;
}

/**
 * Creates the proxy metrics in `registry`. Call once per registry
 * (prom-client refuses to register a name twice).
 */
export function createProxyMetrics(registry: Registry): ProxyMetrics {
  const registers = [registry];
  const n = PROXY_METRIC_NAMES;
  return {
    syncDuration: new Histogram({
      name: n.syncDuration,
      help: "SyncProxyRules latency in seconds",
      buckets: [...SYNC_DURATION_BUCKETS],
      registers,
    }),
    syncFullDuration: new Histogram({
      name: n.syncFullDuration,
      help: "SyncProxyRules latency in seconds for full resyncs",
      buckets: [...SYNC_DURATION_BUCKETS],
      registers,
    }),
    syncPartialDuration: new Histogram({
      name: n.syncPartialDuration,
      help: "SyncProxyRules latency in seconds for partial resyncs",
      buckets: [...SYNC_DURATION_BUCKETS],
      registers,
    }),
    lastSyncTimestamp: new Gauge({
      name: n.lastSyncTimestamp,
      help: "The last time proxy rules were successfully synced",
      registers,
    }),
    lastQueuedTimestamp: new Gauge({
      name: n.lastQueuedTimestamp,
      help: "The last time a sync of proxy rules was queued",
      registers,
    }),
    networkProgrammingDuration: new Histogram({
      name: n.networkProgrammingDuration,
      help: "In Cluster Network Programming Latency in seconds",
      buckets: [...NETWORK_PROGRAMMING_BUCKETS],
      registers,
    }),
    syncErrors: new Counter({
      name: n.syncErrors,
      help: "Proxy syncs that failed (the backend threw), by proxy mode",
      labelNames: ["mode"],
      registers,
    }),
  };
}
