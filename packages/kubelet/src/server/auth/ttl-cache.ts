/**
 * A small map whose entries expire after a per-entry time to live, for the
 * authenticator's and authorizer's webhook caches. Expired entries are
 * dropped on access and by a sweep once the map grows past its soft limit.
 *
 * @module
 */
import { type Clock, realClock } from "@worknode/core";

/** A map with expiring entries. */
export class TtlCache<K, V> {
  private readonly entries = new Map<K, { value: V; expiresAt: number }>();

  /**
   * @param clock time source
   * @param maxEntries soft limit: past it, expired entries are swept, then the oldest dropped
   */
  constructor(
    private readonly clock: Clock = realClock,
    private readonly maxEntries = 4096,
  ) {}

  /** The value of a live entry. */
  get(key: K): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= this.clock.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  /** Stores a value for `ttlMs` (nothing when `ttlMs` ≤ 0). */
  set(key: K, value: V, ttlMs: number): void {
    if (ttlMs <= 0) return;
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAt: this.clock.now() + ttlMs });
    if (this.entries.size > this.maxEntries) this.sweep();
  }

  /** Number of stored entries (live or not yet swept). */
  get size(): number {
    return this.entries.size;
  }

  private sweep(): void {
    const now = this.clock.now();
    for (const [k, e] of this.entries) if (e.expiresAt <= now) this.entries.delete(k);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
  }
}
