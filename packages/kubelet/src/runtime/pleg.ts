/**
 * The pod lifecycle event generator (kubelet's generic PLEG): relists the
 * runtime every `periodMs` and tells the kubelet which pods changed (a sandbox
 * or container appeared, disappeared or changed state), so their workers sync.
 *
 * @module
 */
import {
  type Clock,
  describeError,
  type Logger,
  realClock,
  silentLogger,
  type TimerHandle,
} from "@worknode/core";
import { listingFingerprint, type RuntimeInspector, type RuntimePodListing } from "./runtime-state.js";

/** kubelet's relist period (1 s). */
export const DEFAULT_RELIST_PERIOD_MS = 1000;

/** Options of {@link Pleg}. */
export interface PlegOptions {
  readonly inspector: RuntimeInspector;
  /** Called with the UIDs of pods whose runtime objects changed since the previous relist. */
  readonly onPodsChanged: (uids: readonly string[], listing: ReadonlyMap<string, RuntimePodListing>) => void;
  /** Relist period; default 1 s. */
  readonly periodMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** A relisting PLEG. */
export class Pleg {
  private readonly periodMs: number;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private fingerprints = new Map<string, string>();
  private timer: TimerHandle | undefined;
  private running = false;
  private inFlight: Promise<void> | undefined;
  private lastListing: ReadonlyMap<string, RuntimePodListing> = new Map();
  private lastRelistAt = 0;
  private lastRelistDurationMs = 0;

  constructor(private readonly options: PlegOptions) {
    this.periodMs = options.periodMs ?? DEFAULT_RELIST_PERIOD_MS;
    this.clock = options.clock ?? realClock;
    this.logger = (options.logger ?? silentLogger()).child({ component: "pleg" });
  }

  /** The pods found by the latest relist. */
  get listing(): ReadonlyMap<string, RuntimePodListing> {
    return this.lastListing;
  }

  /** When the latest successful relist finished (epoch ms; 0 = never) and how long it took. */
  get lastRelist(): { at: number; durationMs: number } {
    return { at: this.lastRelistAt, durationMs: this.lastRelistDurationMs };
  }

  /** Healthy while the latest relist finished less than `thresholdMs` ago (kubelet: 3 min). */
  healthy(thresholdMs = 180_000): boolean {
    return this.lastRelistAt > 0 && this.clock.now() - this.lastRelistAt < thresholdMs;
  }

  /** Starts relisting (the first relist at once). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  /** Stops relisting and waits for a relist in flight. */
  async stop(): Promise<void> {
    this.running = false;
    this.timer?.cancel();
    this.timer = undefined;
    await this.inFlight;
  }

  /** Relists now (also used by the kubelet at start) and reports changed pods. */
  relist(): Promise<void> {
    this.inFlight ??= this.doRelist().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    this.timer = this.clock.setTimeout(() => {
      void this.relist().finally(() => this.schedule(this.periodMs));
    }, ms);
  }

  private async doRelist(): Promise<void> {
    const t0 = this.clock.monotonic();
    let listing: Map<string, RuntimePodListing>;
    try {
      listing = await this.options.inspector.relist();
    } catch (e) {
      this.logger.warn({ err: describeError(e) }, "PLEG relist failed");
      return;
    }
    const next = new Map<string, string>();
    const changed: string[] = [];
    for (const [uid, p] of listing) {
      const fp = listingFingerprint(p);
      next.set(uid, fp);
      if (this.fingerprints.get(uid) !== fp) changed.push(uid);
    }
    for (const uid of this.fingerprints.keys()) if (!next.has(uid)) changed.push(uid);
    this.fingerprints = next;
    this.lastListing = listing;
    this.lastRelistAt = this.clock.now();
    this.lastRelistDurationMs = this.clock.monotonic() - t0;
    if (changed.length > 0) this.options.onPodsChanged(changed, listing);
  }
}
