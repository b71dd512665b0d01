/**
 * Exponential backoff with jitter, single and keyed.
 *
 * @module
 */

/** Options of an exponential backoff. */
export interface BackoffOptions {
  /** First delay in milliseconds. */
  readonly initialMs: number;
  /** Upper bound of any delay in milliseconds (before jitter). */
  readonly maxMs: number;
  /** Multiplier applied after each step; default 2. */
  readonly factor?: number;
  /**
   * Jitter fraction in [0, 1]: each delay is drawn uniformly from
   * `[d * (1 - jitter), d * (1 + jitter)]`, clamped to `maxMs * (1 + jitter)`. Default 0.
   */
  readonly jitter?: number;
  /** Random source in [0, 1); default `Math.random`. Injected by tests. */
  readonly random?: () => number;
}

/**
 * One exponential backoff sequence: `initialMs, initialMs*factor, …` capped at `maxMs`,
 * each randomised by `jitter`.
 */
export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly jitter: number;
  private readonly random: () => number;
  private base: number;
  private steps = 0;

  constructor(options: BackoffOptions) {
    if (!(options.initialMs > 0)) throw new RangeError("backoff initialMs must be > 0");
    if (!(options.maxMs >= options.initialMs)) throw new RangeError("backoff maxMs must be >= initialMs");
    const jitter = options.jitter ?? 0;
    if (jitter < 0 || jitter > 1) throw new RangeError("backoff jitter must be within [0, 1]");
    this.initialMs = options.initialMs;
    this.maxMs = options.maxMs;
    this.factor = options.factor ?? 2;
    this.jitter = jitter;
    this.random = options.random ?? Math.random;
    this.base = this.initialMs;
  }

  /** How many delays were handed out since the last reset. */
  get attempts(): number {
    return this.steps;
  }

  /** Returns the next delay in milliseconds and advances the sequence. */
  next(): number {
    const d = this.base;
    this.base = Math.min(this.maxMs, this.base * this.factor);
    this.steps++;
    if (this.jitter === 0) return d;
    return Math.round(d * (1 - this.jitter + 2 * this.jitter * this.random()));
  }

  /** Starts the sequence over at `initialMs`. */
  reset(): void {
    this.base = this.initialMs;
    this.steps = 0;
  }
}

/** Options of a {@link KeyedBackoff}. */
export interface KeyedBackoffOptions {
  /** First delay in milliseconds (kubelet's CrashLoopBackOff: 10 s). */
  readonly initialMs: number;
  /** Cap in milliseconds (kubelet's CrashLoopBackOff: 300 s). */
  readonly maxMs: number;
  /**
   * An entry not touched for this long starts over at `initialMs`
   * (kubelet resets a container's backoff after it ran for 10 min; default `2 * maxMs`).
   */
  readonly resetAfterMs?: number;
}

interface KeyedEntry {
  delayMs: number;
  lastUpdate: number;
}

/**
 * Per-key backoff in the manner of client-go's `flowcontrol.Backoff`, which the kubelet
 * uses for CrashLoopBackOff and image pull backoff: each {@link KeyedBackoff.next} doubles
 * the key's delay up to the cap; a key left alone for `resetAfterMs` starts over.
 * Times are passed in explicitly so callers use their own {@link Clock}.
 */
export class KeyedBackoff {
  private readonly entries = new Map<string, KeyedEntry>();
  private readonly resetAfterMs: number;

  constructor(private readonly options: KeyedBackoffOptions) {
    if (!(options.initialMs > 0) || !(options.maxMs >= options.initialMs)) {
      throw new RangeError("keyed backoff needs 0 < initialMs <= maxMs");
    }
    this.resetAfterMs = options.resetAfterMs ?? 2 * options.maxMs;
  }

  /** Records one more failure of `key` at time `nowMs` and returns the delay now in force. */
  next(key: string, nowMs: number): number {
    const e = this.entries.get(key);
    if (!e || nowMs - e.lastUpdate > this.resetAfterMs) {
      this.entries.set(key, { delayMs: this.options.initialMs, lastUpdate: nowMs });
      return this.options.initialMs;
    }
    e.delayMs = Math.min(this.options.maxMs, e.delayMs * 2);
    e.lastUpdate = nowMs;
    return e.delayMs;
  }

  /** The delay in force for `key`, or 0 when it has none. */
  get(key: string): number {
    return this.entries.get(key)?.delayMs ?? 0;
  }

  /** True while `key` is inside its backoff window at time `nowMs`. */
  isInBackoff(key: string, nowMs: number): boolean {
    const e = this.entries.get(key);
    return e !== undefined && nowMs - e.lastUpdate < e.delayMs;
  }

  /** Forgets `key`. */
  reset(key: string): void {
    this.entries.delete(key);
  }

  /** Drops entries idle longer than `resetAfterMs` (call periodically to bound memory). */
  gc(nowMs: number): void {
    for (const [k, e] of this.entries) if (nowMs - e.lastUpdate > this.resetAfterMs) this.entries.delete(k);
  }
}
