/**
 * A small per-key work queue for the API writers (status manager, mirror-pod
 * manager): work for a key runs one at a time; scheduling a key that is already
 * pending or running coalesces into one more run; a failed run is retried with
 * per-key exponential backoff.
 *
 * @module
 */
import { type Clock, KeyedBackoff, type TimerHandle } from "@worknode/core";

/** Options of {@link KeyedWorkQueue}. */
export interface KeyedWorkQueueOptions {
  /** The work for one key; a rejection schedules a retry with backoff. */
  readonly work: (key: string) => Promise<void>;
  readonly clock: Clock;
  /** First retry delay; doubles up to `retryMaxMs`. */
  readonly retryInitialMs: number;
  /** Longest retry delay. */
  readonly retryMaxMs: number;
  /** Told about each failure and the retry delay chosen. */
  readonly onError?: (key: string, error: unknown, retryInMs: number) => void;
}

interface KeyState {
  timer?: TimerHandle;
  running: boolean;
  dirty: boolean;
}

/** Serialized, coalescing, retrying work per key (see the module notes). */
export class KeyedWorkQueue {
  private readonly states = new Map<string, KeyState>();
  private readonly backoff: KeyedBackoff;
  private readonly inflight = new Set<Promise<void>>();
  private stopped = false;

  constructor(private readonly options: KeyedWorkQueueOptions) {
    this.backoff = new KeyedBackoff({
      initialMs: options.retryInitialMs,
      maxMs: Math.max(options.retryInitialMs, options.retryMaxMs),
    });
  }

  /** Runs the work for `key` after `delayMs`, or once more after the run in flight. */
  schedule(key: string, delayMs = 0): void {
    if (this.stopped) return;
    let st = this.states.get(key);
    if (!st) {
      st = { running: false, dirty: false };
      this.states.set(key, st);
    }
    if (st.running) {
      st.dirty = true;
      return;
    }
    if (st.timer) return;
    const s = st;
    s.timer = this.options.clock.setTimeout(
      () => {
        s.timer = undefined;
        this.run(key, s);
      },
      Math.max(0, delayMs),
    );
  }

  /** Cancels what is pending for `key` and forgets its backoff (a run in flight finishes). */
  forget(key: string): void {
    this.states.get(key)?.timer?.cancel();
    this.states.delete(key);
    this.backoff.reset(key);
  }

  /** Keys with pending or running work. */
  keys(): string[] {
    return [...this.states.keys()];
  }

  /** Cancels pending work and waits for runs in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const st of this.states.values()) st.timer?.cancel();
    await Promise.all([...this.inflight]);
  }

  private run(key: string, st: KeyState): void {
    if (this.stopped || this.states.get(key) !== st) return;
    st.running = true;
    st.dirty = false;
    let retryIn: number | undefined;
    const p = this.options
      .work(key)
      .then(
        () => this.backoff.reset(key),
        (err: unknown) => {
          retryIn = this.backoff.next(key, this.options.clock.now());
          this.options.onError?.(key, err, retryIn);
        },
      )
      .finally(() => {
        this.inflight.delete(p);
        st.running = false;
        if (this.states.get(key) !== st) return;
        if (retryIn !== undefined) this.schedule(key, retryIn);
        else if (st.dirty) this.schedule(key, 0);
        else this.states.delete(key);
      });
    this.inflight.add(p);
  }
}
