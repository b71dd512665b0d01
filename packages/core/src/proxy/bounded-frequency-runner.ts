/**
 * A runner that calls an async function no more often than a minimum interval
 * and no less often than a maximum interval, in the manner of kube-proxy's
 * `BoundedFrequencyRunner` (`--iptables-min-sync-period` / `--iptables-sync-period`).
 *
 * @module
 */
import { type Clock, realClock, type TimerHandle } from "../util/clock.js";
import { ConfigError } from "../util/errors.js";
import { type Logger, silentLogger } from "../util/logging.js";

/** Why a run of a {@link BoundedFrequencyRunner} happens; several reasons can coincide. */
export interface RunTrigger {
  /** {@link BoundedFrequencyRunner.run} was called since the previous run. */
  readonly requested: boolean;
  /** A retry requested through {@link BoundedFrequencyRunner.retryAfter} fell due. */
  readonly retry: boolean;
  /** `maxIntervalMs` elapsed since the previous run (or since start) without any run. */
  readonly periodic: boolean;
  /** The run was forced through {@link BoundedFrequencyRunner.runNow}. */
  readonly manual: boolean;
}

/** Options of a {@link BoundedFrequencyRunner}. */
export interface BoundedFrequencyRunnerOptions<T = void> {
  /** The function to run; it receives why it runs. */
  readonly fn: (trigger: RunTrigger) => Promise<T> | T;
  /** Name used in log lines; default `bounded-frequency-runner`. */
  readonly name?: string;
  /**
   * Minimum time between the end of one run and the start of the next
   * (kube-proxy `--iptables-min-sync-period`, default 1 s). Requests made
   * inside this window are coalesced into one run at its end. May be 0.
   */
  readonly minIntervalMs: number;
  /**
   * The function runs at least once per this interval, measured from the end of
   * the previous run (kube-proxy `--iptables-sync-period`, default 30 s).
   * Must be `>= minIntervalMs`.
   */
  readonly maxIntervalMs: number;
  /** Time source and timers; default the real clock. */
  readonly clock?: Clock;
  /** Where failures of `fn` are logged; default silent. */
  readonly logger?: Logger;
}

/**
 * Runs an async function with bounded frequency:
 *
 * - never concurrently with itself;
 * - at least `minIntervalMs` from the end of one run to the start of the next
 *   (many {@link run} requests inside that window become one run at its end);
 * - at least once per `maxIntervalMs` (periodic run) while started;
 * - a {@link retryAfter} request runs the function again no later than asked
 *   (but still no sooner than `minIntervalMs` after the previous run).
 *
 * A run clears every request and retry made before it started; a request or retry
 * made while it is running is kept and served after it. Rejections of `fn` are
 * logged and otherwise ignored: `fn` owns its error handling and calls
 * {@link retryAfter} when it wants one.
 *
 * @typeParam T - what `fn` resolves to (returned by {@link runNow})
 */
export class BoundedFrequencyRunner<T = void> {
  private readonly name: string;
  private readonly minIntervalMs: number;
  private readonly maxIntervalMs: number;
  private readonly clock: Clock;
  private readonly logger: Logger;

  private started = false;
  private requested = false;
  private retryAt: number | undefined;
  private periodicAt = Number.POSITIVE_INFINITY;
  private lastRunEnd: number | undefined;
  private inFlight: Promise<void> | undefined;
  private timer: TimerHandle | undefined;
  private timerAt: number | undefined;
  private kickQueued = false;
  private runCount = 0;

  private readonly fn: (trigger: RunTrigger) => Promise<T> | T;

  /**
   * @param options the function, intervals, clock and logger
   * @throws ConfigError when an interval is negative or `maxIntervalMs < minIntervalMs`
   */
  constructor(options: BoundedFrequencyRunnerOptions<T>) {
    this.fn = options.fn;
    this.name = options.name ?? "bounded-frequency-runner";
    if (!(options.minIntervalMs >= 0) || !Number.isFinite(options.minIntervalMs)) {
      throw new ConfigError(`${this.name}: minIntervalMs must be a finite number >= 0`);
    }
    if (!(options.maxIntervalMs >= options.minIntervalMs) || !Number.isFinite(options.maxIntervalMs)) {
      throw new ConfigError(
        `${this.name}: maxIntervalMs (${options.maxIntervalMs}) must be finite and >= minIntervalMs (${options.minIntervalMs})`,
      );
    }
    this.minIntervalMs = options.minIntervalMs;
    this.maxIntervalMs = options.maxIntervalMs;
    this.clock = options.clock ?? realClock;
    this.logger = options.logger ?? silentLogger();
  }

  /** True between {@link start} and {@link stop}. */
  get isStarted(): boolean {
    return this.started;
  }

  /** True while `fn` is running. */
  get isRunning(): boolean {
    return this.inFlight !== undefined;
  }

  /** How many times `fn` was called so far. */
  get runs(): number {
    return this.runCount;
  }

  /**
   * Starts scheduling: periodic runs every `maxIntervalMs`, and any request made
   * before start. Does not run `fn` by itself. Idempotent.
   */
  start(): void {
    if (this.started) return;
    this.started = true;
    const base = this.lastRunEnd ?? this.clock.monotonic();
    this.periodicAt = base + this.maxIntervalMs;
    this.reschedule();
  }

  /**
   * Requests a run as soon as the minimum interval allows. Requests are coalesced:
   * any number of calls before the run starts produce one run. Before {@link start}
   * the request is kept until start.
   */
  run(): void {
    this.requested = true;
    this.reschedule();
  }

  /**
   * Ensures `fn` runs again no later than `ms` from now (still respecting the
   * minimum interval). Of several pending retries the soonest wins. May be
   * called from inside `fn`.
   */
  retryAfter(ms: number): void {
    const at = this.clock.monotonic() + Math.max(0, ms);
    if (this.retryAt === undefined || at < this.retryAt) this.retryAt = at;
    this.reschedule();
  }

  /**
   * Runs `fn` now, bypassing the minimum interval but never concurrently: waits for
   * a run in progress first. Works whether or not the runner is started.
   * @returns what `fn` resolved to
   * @throws whatever `fn` threw
   */
  async runNow(): Promise<T> {
    while (this.inFlight) await this.inFlight;
    return this.execute({ requested: this.requested, retry: false, periodic: false, manual: true });
  }

  /** Stops scheduling and waits for a run in progress to finish. Pending requests are kept. */
  async stop(): Promise<void> {
    this.started = false;
    this.cancelTimer();
    while (this.inFlight) await this.inFlight;
  }

  /** Arms the single timer (or a microtask) for the next due run. */
  private reschedule(): void {
    if (!this.started || this.inFlight) {
      this.cancelTimer();
      return;
    }
    const now = this.clock.monotonic();
    let want = this.periodicAt;
    if (this.requested) want = now;
    if (this.retryAt !== undefined && this.retryAt < want) want = this.retryAt;
    const earliest = this.lastRunEnd === undefined ? want : this.lastRunEnd + this.minIntervalMs;
    const due = Math.max(want, earliest);
    if (due <= now) {
      this.cancelTimer();
      if (!this.kickQueued) {
        this.kickQueued = true;
        queueMicrotask(() => {
          this.kickQueued = false;
          this.fire();
        });
      }
      return;
    }
    if (this.timer && this.timerAt === due) return;
    this.cancelTimer();
    this.timerAt = due;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.timerAt = undefined;
      this.fire();
    }, due - now);
  }

  /** Timer or microtask callback: runs `fn` if something is due, otherwise re-arms. */
  private fire(): void {
    if (!this.started || this.inFlight) return;
    const now = this.clock.monotonic();
    const earliest = this.lastRunEnd === undefined ? now : this.lastRunEnd + this.minIntervalMs;
    const retry = this.retryAt !== undefined && this.retryAt <= now;
    const periodic = now >= this.periodicAt;
    if (now < earliest || !(this.requested || retry || periodic)) {
      this.reschedule();
      return;
    }
    this.execute({ requested: this.requested, retry, periodic, manual: false }).catch((err: unknown) => {
      this.logger.error({ err, runner: this.name }, "runner function failed");
    });
  }

  /** Runs `fn` once, serialised through `inFlight`, then re-arms. */
  private execute(trigger: RunTrigger): Promise<T> {
    this.requested = false;
    this.retryAt = undefined;
    this.cancelTimer();
    this.runCount++;
    let settle!: () => void;
    this.inFlight = new Promise<void>((resolve) => {
      settle = resolve;
    });
    const done = (async () => {
      try {
        return await this.fn(trigger);
      } finally {
        const end = this.clock.monotonic();
        this.lastRunEnd = end;
        this.periodicAt = end + this.maxIntervalMs;
        this.inFlight = undefined;
        this.reschedule();
        settle();
      }
    })();
    return done;
  }

  private cancelTimer(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.timerAt = undefined;
  }
}
