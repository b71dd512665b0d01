/**
 * Proxy health in the manner of kube-proxy's proxier health server
 * (pkg/proxy/healthcheck/proxier_health.go): the proxy is healthy unless a
 * change was queued and has not been programmed within the health timeout.
 *
 * @module
 */
import type { Node } from "../kube/objects.js";
import { type Clock, realClock } from "../util/clock.js";
import { ConfigError } from "../util/errors.js";

/**
 * The taint the Cluster Autoscaler puts on a node before deleting it; a node carrying
 * it is not eligible for load-balancer traffic (kube-proxy's `ToBeDeletedTaint`).
 */
export const TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler";

/** A point-in-time view of a {@link ProxierHealth}. */
export interface ProxierHealthStatus {
  /** Healthy as `/livez` reports it: no queued change older than the health timeout. */
  readonly healthy: boolean;
  /** Whether the node may receive load-balancer traffic (not deleted, not being scaled down). */
  readonly nodeEligible: boolean;
  /** Wall-clock time (ms since epoch) of the last successful sync, or undefined before the first. */
  readonly lastUpdated: number | undefined;
  /** Wall-clock time (ms since epoch) the oldest unsynced change was queued, or undefined. */
  readonly oldestPendingQueued: number | undefined;
  /** Wall-clock time (ms since epoch) of this status. */
  readonly currentTime: number;
}

/** Options of a {@link ProxierHealth}. */
export interface ProxierHealthOptions {
  /**
   * How long a queued change may wait for a successful sync before the proxy counts
   * as unhealthy. kube-proxy passes twice its sync period (2 × 30 s = 60 s).
   */
  readonly healthTimeoutMs: number;
  /** Time source; default the real clock. */
  readonly clock?: Clock;
}

/**
 * Tracks whether queued proxy updates get programmed in time.
 * The proxy controller calls {@link ProxierHealth.queuedUpdate} when a change
 * becomes pending and {@link ProxierHealth.updated} after every successful sync.
 */
export class ProxierHealth {
  private readonly clock: Clock;
  /** The health timeout in milliseconds. */
  readonly healthTimeoutMs: number;
  private lastUpdatedAt: number | undefined;
  private oldestPendingQueuedAt: number | undefined;
  private eligible = true;

  /** @throws ConfigError when `healthTimeoutMs` is not a positive number */
  constructor(options: ProxierHealthOptions) {
    if (!(options.healthTimeoutMs > 0)) throw new ConfigError("proxier health timeout must be > 0");
    this.healthTimeoutMs = options.healthTimeoutMs;
    this.clock = options.clock ?? realClock;
  }

  /** A change was received that needs programming; starts the timeout unless one is already running. */
  queuedUpdate(): void {
    if (this.oldestPendingQueuedAt === undefined) this.oldestPendingQueuedAt = this.clock.now();
  }

  /** The backend successfully programmed the current state: clears the pending change. */
  updated(): void {
    this.oldestPendingQueuedAt = undefined;
    this.lastUpdatedAt = this.clock.now();
  }

  /** Sets whether the node is eligible for load-balancer traffic (reported by `/healthz` only). */
  setNodeEligible(eligible: boolean): void {
    this.eligible = eligible;
  }

  /**
   * Derives node eligibility from the proxy's own Node object, as kube-proxy does:
   * not eligible when the node is being deleted or carries {@link TO_BE_DELETED_TAINT}.
   */
  syncNode(node: Node): void {
    const deleting =
      node.metadata?.deletionTimestamp !== undefined && node.metadata.deletionTimestamp !== null;
    const tainted = (node.spec?.taints ?? []).some((t) => t.key === TO_BE_DELETED_TAINT);
    this.eligible = !deleting && !tainted;
  }

  /** Whether the proxy is healthy, ignoring node eligibility (the `/livez` answer). */
  isHealthy(): boolean {
    return this.status().healthy;
  }

  /** The current state (the answer of `/livez`; `/healthz` also requires `nodeEligible`). */
  status(): ProxierHealthStatus {
    const currentTime = this.clock.now();
    const queued = this.oldestPendingQueuedAt;
    const healthy = queued === undefined || currentTime - queued < this.healthTimeoutMs;
    return {
      healthy,
      nodeEligible: this.eligible,
      lastUpdated: this.lastUpdatedAt,
      oldestPendingQueued: queued,
      currentTime,
    };
  }
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

/**
 * Formats a time the way Go prints a `time.Time` (`2006-01-02 15:04:05.999999999 -0700 MST`),
 * in UTC, which is what kube-proxy's health endpoints put in their JSON body.
 * `undefined` gives Go's zero time, `0001-01-01 00:00:00 +0000 UTC`.
 * @param ms milliseconds since the Unix epoch
 */
export function formatGoTime(ms: number | undefined): string {
  if (ms === undefined) return "0001-01-01 00:00:00 +0000 UTC";
  const d = new Date(ms);
  const date = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  const millis = d.getUTCMilliseconds();
  const frac = millis === 0 ? "" : `.${pad(millis, 3).replace(/0+$/, "")}`;
  return `${date} ${time}${frac} +0000 UTC`;
}
