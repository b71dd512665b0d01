/**
 * The proxy controller: drives one {@link Proxier} backend from a
 * {@link ServiceStateTracker} through a {@link BoundedFrequencyRunner}, with
 * kube-proxy's sync discipline (full sync at start, periodically and after any
 * failure; partial syncs otherwise), retry with backoff, health and metrics.
 *
 * @module
 */
import type { EndpointSlice, Service } from "../kube/objects.js";
import type { ChangeSet, ServiceStateTracker } from "../service/model.js";
import type { ObjectSource } from "../sources/types.js";
import { Backoff, type BackoffOptions } from "../util/backoff.js";
import { type Clock, realClock } from "../util/clock.js";
import { describeError } from "../util/errors.js";
import { type Logger, silentLogger } from "../util/logging.js";
import { Registry } from "../util/metrics.js";
import { BoundedFrequencyRunner, type RunTrigger } from "./bounded-frequency-runner.js";
import { mergeChangeSets } from "./change-set-merge.js";
import { createProxyMetrics, type ProxyMetrics } from "./metrics.js";
import { type Proxier, ProxySyncError, type SyncStats } from "./proxier.js";
import { ProxierHealth } from "./proxier-health.js";

/** Default `--iptables-min-sync-period`: 1 s. */
export const DEFAULT_MIN_SYNC_PERIOD_MS = 1_000;
/** Default `--iptables-sync-period`: 30 s. */
export const DEFAULT_SYNC_PERIOD_MS = 30_000;
/** kube-proxy's `FullSyncPeriod`: a full sync happens at least once an hour even under constant churn. */
export const DEFAULT_FULL_SYNC_PERIOD_MS = 3_600_000;
/** Default retry backoff after a failed sync: 1 s doubling to 30 s, ±10 % jitter. */
export const DEFAULT_SYNC_RETRY_BACKOFF: BackoffOptions = { initialMs: 1_000, maxMs: 30_000, jitter: 0.1 };

/** Options of a {@link ProxyController}. */
export interface ProxyControllerOptions {
  /** Source of snapshots and change sets. */
  readonly tracker: ServiceStateTracker;
  /** The backend to program. */
  readonly proxier: Proxier;
  /** Minimum time between syncs (end to start); default {@link DEFAULT_MIN_SYNC_PERIOD_MS}. */
  readonly minSyncPeriodMs?: number;
  /** Maximum time between syncs; default {@link DEFAULT_SYNC_PERIOD_MS}. */
  readonly syncPeriodMs?: number;
  /**
   * Whether the periodic sync (a sync-period expiry without any change) is a full
   * sync; default true. With false only start, failures and `fullSyncPeriodMs` force
   * full syncs (as current kube-proxy iptables/nftables do).
   */
  readonly periodicFullSync?: boolean;
  /** Longest time between full syncs, whatever triggers syncs; default {@link DEFAULT_FULL_SYNC_PERIOD_MS}. */
  readonly fullSyncPeriodMs?: number;
  /** Backoff of retries after a failed sync; default {@link DEFAULT_SYNC_RETRY_BACKOFF}. */
  readonly retryBackoff?: BackoffOptions;
  /**
   * Health state to update; default a new {@link ProxierHealth} with kube-proxy's
   * health timeout of twice the sync period.
   */
  readonly health?: ProxierHealth;
  /** Registry the controller's metrics are created in; default a new registry. */
  readonly registry?: Registry;
  /** Time source and timers; default the real clock. */
  readonly clock?: Clock;
  /** Logger; default silent. */
  readonly logger?: Logger;
}

/** The outcome of one sync attempt. */
export type SyncResult =
  | {
      /** Nothing was done: the sources have not delivered their initial state yet. */
      readonly status: "skipped";
      readonly reason: string;
    }
  | {
      readonly status: "synced";
      /** Whether it was a full sync. */
      readonly full: boolean;
      /** What the backend reported. */
      readonly stats: SyncStats;
      /** The change set handed to the backend (including changes carried over from failed syncs). */
      readonly changes: ChangeSet;
      /** Duration in milliseconds. */
      readonly durationMs: number;
    }
  | {
      readonly status: "failed";
      readonly full: boolean;
      /** What the backend (or the tracker) threw. */
      readonly error: unknown;
      /** Delay before the retry, in milliseconds. */
      readonly retryInMs: number;
      readonly durationMs: number;
    };

/**
 * Drives a {@link Proxier} from a {@link ServiceStateTracker}.
 *
 * - Does nothing until both the Service and the EndpointSlice sources reported their
 *   initial state ({@link markServicesSynced} / {@link markEndpointSlicesSynced}, or
 *   {@link trackSourcesSynced}).
 * - Each pending change requests a sync; requests are coalesced and rate-limited by
 *   `minSyncPeriodMs`; a sync also runs every `syncPeriodMs`.
 * - Each sync commits the tracker and calls `proxier.sync` (never concurrently). It is
 *   full on the first sync, after a failure, on a periodic sync (see
 *   {@link ProxyControllerOptions.periodicFullSync}) and when `fullSyncPeriodMs` passed.
 * - A failed sync is logged, counted, retried with backoff as a full sync, and its
 *   change set is merged into the next sync's, so stale-conntrack flushes and partial
 *   rewrites are not lost.
 */
export class ProxyController {
  /** Health state (serve it with `startProxyHealthServer`). */
  readonly health: ProxierHealth;
  /** Registry holding the controller's metrics. */
  readonly registry: Registry;
  /** The controller's metric objects. */
  readonly metrics: ProxyMetrics;

  private readonly tracker: ServiceStateTracker;
  private readonly proxier: Proxier;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly runner: BoundedFrequencyRunner<SyncResult>;
  private readonly backoff: Backoff;
  private readonly periodicFullSync: boolean;
  private readonly fullSyncPeriodMs: number;

  private servicesSynced = false;
  private endpointSlicesSynced = false;
  private needFullSync = true;
  private lastFullSyncAt: number | undefined;
  private carried: ChangeSet | undefined;
  private unsubscribe: (() => void) | undefined;
  private errorCount = 0;
  private consecutive = 0;
  private lastResultValue: SyncResult | undefined;

  constructor(options: ProxyControllerOptions) {
    this.tracker = options.tracker;
    this.proxier = options.proxier;
    this.clock = options.clock ?? realClock;
    this.logger = options.logger ?? silentLogger();
    const syncPeriodMs = options.syncPeriodMs ?? DEFAULT_SYNC_PERIOD_MS;
    this.periodicFullSync = options.periodicFullSync ?? true;
    this.fullSyncPeriodMs = options.fullSyncPeriodMs ?? DEFAULT_FULL_SYNC_PERIOD_MS;
    this.backoff = new Backoff(options.retryBackoff ?? DEFAULT_SYNC_RETRY_BACKOFF);
    this.health =
      options.health ?? new ProxierHealth({ healthTimeoutMs: 2 * syncPeriodMs, clock: this.clock });
    this.registry = options.registry ?? new Registry();
    this.metrics = createProxyMetrics(this.registry);
    this.runner = new BoundedFrequencyRunner<SyncResult>({
      fn: (trigger) => this.syncOnce(trigger),
      name: `proxy-sync-${this.proxier.mode}`,
      minIntervalMs: options.minSyncPeriodMs ?? DEFAULT_MIN_SYNC_PERIOD_MS,
      maxIntervalMs: syncPeriodMs,
      clock: this.clock,
      logger: this.logger,
    });
  }

  /** True once both sources delivered their initial state. */
  get initialized(): boolean {
    return this.servicesSynced && this.endpointSlicesSynced;
  }

  /** Failed syncs since construction. */
  get syncErrors(): number {
    return this.errorCount;
  }

  /** Failed syncs since the last successful one. */
  get consecutiveFailures(): number {
    return this.consecutive;
  }

  /** The outcome of the most recent sync attempt, if any. */
  get lastResult(): SyncResult | undefined {
    return this.lastResultValue;
  }

  /** The Service source delivered its initial state. */
  markServicesSynced(): void {
    if (this.servicesSynced) return;
    this.servicesSynced = true;
    this.onMaybeInitialized();
  }

  /** The EndpointSlice source delivered its initial state. */
  markEndpointSlicesSynced(): void {
    if (this.endpointSlicesSynced) return;
    this.endpointSlicesSynced = true;
    this.onMaybeInitialized();
  }

  /**
   * Marks the sources synced when they report it (through `onSynced`). The tracker's
   * own handlers must be attached separately.
   * @returns a function that detaches the handlers
   */
  trackSourcesSynced(
    services: ObjectSource<Service>,
    endpointSlices: ObjectSource<EndpointSlice>,
  ): () => void {
    const offServices = services.addHandler({ onSynced: () => this.markServicesSynced() });
    const offSlices = endpointSlices.addHandler({ onSynced: () => this.markEndpointSlicesSynced() });
    return () => {
      offServices();
      offSlices();
    };
  }

  /** Starts listening to the tracker and syncing (once the sources are synced). Idempotent. */
  start(): void {
    if (this.unsubscribe) return;
    this.unsubscribe = this.tracker.onPendingChange(() => this.onPendingChange());
    this.runner.start();
    this.logger.info({ mode: this.proxier.mode, initialized: this.initialized }, "proxy controller started");
  }

  /** Stops syncing and waits for a sync in progress to finish. */
  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    await this.runner.stop();
    this.logger.info({ mode: this.proxier.mode }, "proxy controller stopped");
  }

  /**
   * Syncs now (after any sync in progress), ignoring the minimum sync period.
   * For tests and one-shot CLI use; still skipped until the sources are synced.
   */
  syncNow(): Promise<SyncResult> {
    return this.runner.runNow();
  }

  private onMaybeInitialized(): void {
    if (!this.initialized) return;
    this.logger.info(
      { mode: this.proxier.mode },
      "services and endpoint slices synced; starting proxy syncs",
    );
    this.health.queuedUpdate();
    this.metrics.lastQueuedTimestamp.set(this.clock.now() / 1000);
    // Like kube-proxy, the first sync runs at once rather than waiting out the minimum period;
    // before start() it is only requested, and runs when the controller starts.
    if (this.unsubscribe) {
      this.runner.runNow().catch((err: unknown) => {
        this.logger.error({ err, mode: this.proxier.mode }, "initial proxy sync failed");
      });
    } else {
      this.runner.run();
    }
  }

  private onPendingChange(): void {
    // kube-proxy only queues syncs once initialized; the first sync commits everything anyway.
    if (this.initialized) this.queue();
  }

  private queue(): void {
    this.health.queuedUpdate();
    this.metrics.lastQueuedTimestamp.set(this.clock.now() / 1000);
    this.runner.run();
  }

  private async syncOnce(trigger: RunTrigger): Promise<SyncResult> {
    if (!this.initialized) {
      const result: SyncResult = { status: "skipped", reason: "services and endpoint slices not synced yet" };
      this.logger.debug(
        { mode: this.proxier.mode },
        "not syncing until services and endpoint slices are synced",
      );
      this.lastResultValue = result;
      return result;
    }
    const full =
      this.needFullSync ||
      (this.periodicFullSync && trigger.periodic) ||
      this.lastFullSyncAt === undefined ||
      this.clock.monotonic() - this.lastFullSyncAt >= this.fullSyncPeriodMs;
    const start = this.clock.monotonic();
    let changes: ChangeSet | undefined;
    try {
      const commit = this.tracker.commit();
      changes = this.carried ? mergeChangeSets(this.carried, commit.changes) : commit.changes;
      this.carried = undefined;
      const stats = await this.proxier.sync({ snapshot: commit.snapshot, changes, full });
      const durationMs = this.observeDuration(start, full);
      this.onSuccess(full, changes, start);
      const result: SyncResult = { status: "synced", full, stats, changes, durationMs };
      this.logger.debug(
        {
          mode: this.proxier.mode,
          full,
          generation: commit.snapshot.generation,
          changed: changes.changedServicePorts.size,
          ...stats,
          durationMs,
        },
        "proxy sync complete",
      );
      this.lastResultValue = result;
      return result;
    } catch (error) {
      const durationMs = this.observeDuration(start, full);
      if (changes) this.carried = changes;
      const result = this.onFailure(error, full, durationMs);
      this.lastResultValue = result;
      return result;
    }
  }

  private observeDuration(start: number, full: boolean): number {
    const durationMs = this.clock.monotonic() - start;
    const seconds = durationMs / 1000;
    this.metrics.syncDuration.observe(seconds);
    (full ? this.metrics.syncFullDuration : this.metrics.syncPartialDuration).observe(seconds);
    return durationMs;
  }

  private onSuccess(full: boolean, changes: ChangeSet, start: number): void {
    this.needFullSync = false;
    if (full) this.lastFullSyncAt = start;
    this.consecutive = 0;
    this.backoff.reset();
    const now = this.clock.now();
    this.metrics.lastSyncTimestamp.set(now / 1000);
    for (const t of changes.triggerTimes.values()) {
      if (t > 0 && now >= t) this.metrics.networkProgrammingDuration.observe((now - t) / 1000);
    }
    this.health.updated();
    // Changes that arrived during the sync (after the commit) are still unsynced.
    if (this.tracker.hasPendingChanges()) this.health.queuedUpdate();
  }

  private onFailure(error: unknown, full: boolean, durationMs: number): SyncResult {
    this.needFullSync = true;
    this.errorCount++;
    this.consecutive++;
    this.metrics.syncErrors.inc({ mode: this.proxier.mode });
    const retryInMs = this.backoff.next();
    this.runner.retryAfter(retryInMs);
    const failingLine = error instanceof ProxySyncError ? error.failingLine : undefined;
    this.logger.error(
      {
        err: error,
        mode: this.proxier.mode,
        full,
        consecutiveFailures: this.consecutive,
        retryInMs,
        ...(failingLine !== undefined ? { failingLine } : {}),
      },
      `proxy sync failed: ${describeError(error)}`,
    );
    return { status: "failed", full, error, retryInMs, durationMs };
  }
}
