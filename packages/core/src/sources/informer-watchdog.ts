/**
 * An idle timer for streaming requests: fires when no activity was seen for a
 * given time. One timer is outstanding at a time, however often activity is
 * recorded, so it costs nothing per received chunk.
 *
 * @module
 */
import type { Clock, TimerHandle } from "../util/clock.js";
import { UnavailableError } from "../util/errors.js";

/** A request or watch stream saw no data for longer than allowed and was aborted. */
export class RequestStalledError extends UnavailableError {
  /** How long the stream had been silent, in milliseconds. */
  readonly idleMs: number;

  constructor(target: string, message: string, idleMs: number) {
    super(target, message);
    this.idleMs = idleMs;
  }
}

/** Calls `onIdle` once when {@link IdleWatchdog.touch} was not called for `limitMs`. */
export class IdleWatchdog {
  private last: number;
  private limitMs: number;
  private timer: TimerHandle | undefined;
  private done = false;
  private firedFlag = false;

  /**
   * Arms the watchdog at once.
   * @param clock time source
   * @param limitMs allowed silence in milliseconds
   * @param onIdle called once, with the measured silence, when the limit is exceeded
   */
  constructor(
    private readonly clock: Clock,
    limitMs: number,
    private readonly onIdle: (idleMs: number) => void,
  ) {
    this.last = clock.monotonic();
    this.limitMs = limitMs;
    this.schedule(limitMs);
  }

  /** True once the watchdog fired. */
  get fired(): boolean {
    return this.firedFlag;
  }

  /** Records activity: the silence starts over. */
  touch(): void {
    this.last = this.clock.monotonic();
  }

  /** Changes the allowed silence (and records activity). */
  setLimit(limitMs: number): void {
    if (this.done) return;
    this.limitMs = limitMs;
    this.last = this.clock.monotonic();
    this.timer?.cancel();
    this.schedule(limitMs);
  }

  /** Disarms the watchdog; idempotent. */
  cancel(): void {
    this.done = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    this.timer = this.clock.setTimeout(() => this.check(), ms);
  }

  private check(): void {
    this.timer = undefined;
    if (this.done) return;
    const idle = this.clock.monotonic() - this.last;
    if (idle >= this.limitMs) {
      this.done = true;
      this.firedFlag = true;
      this.onIdle(idle);
    } else {
      this.schedule(this.limitMs - idle);
    }
  }
}
