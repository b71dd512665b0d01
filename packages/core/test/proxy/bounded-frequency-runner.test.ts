import { describe, expect, it } from "vitest";
import { BoundedFrequencyRunner, type RunTrigger } from "../../src/proxy/bounded-frequency-runner.js";
import { FakeClock, flushMicrotasks } from "../../src/util/clock.js";
import { ConfigError } from "../../src/util/errors.js";

const MIN = 1_000;
const MAX = 30_000;

/** A runner whose fn records when it ran (ms since the fake clock's start) and why. */
function setup(options: { fnMs?: number; min?: number; max?: number } = {}) {
  const clock = new FakeClock();
  const t0 = clock.now();
  const runs: { at: number; trigger: RunTrigger }[] = [];
  let active = 0;
  let maxActive = 0;
  const runner = new BoundedFrequencyRunner({
    fn: async (trigger) => {
      active++;
      maxActive = Math.max(maxActive, active);
      runs.push({ at: clock.now() - t0, trigger });
      if (options.fnMs) await clock.sleep(options.fnMs);
      active--;
      return runs.length;
    },
    minIntervalMs: options.min ?? MIN,
    maxIntervalMs: options.max ?? MAX,
    clock,
    name: "test",
  });
  return {
    clock,
    runner,
    runs,
    at: () => runs.map((r) => r.at),
    maxActive: () => maxActive,
    elapsed: () => clock.now() - t0,
  };
}

describe("BoundedFrequencyRunner", () => {
  it("rejects maxInterval < minInterval and negative intervals", () => {
    expect(() => new BoundedFrequencyRunner({ fn: () => {}, minIntervalMs: 10, maxIntervalMs: 5 })).toThrow(
      ConfigError,
    );
    expect(() => new BoundedFrequencyRunner({ fn: () => {}, minIntervalMs: -1, maxIntervalMs: 5 })).toThrow(
      ConfigError,
    );
  });

  it("does not run before start, and serves a request made before start once started", async () => {
    const s = setup();
    s.runner.run();
    await s.clock.advance(5_000);
    expect(s.runs).toHaveLength(0);
    s.runner.start();
    await flushMicrotasks();
    expect(s.at()).toEqual([5_000]);
    expect(s.runs[0]!.trigger.requested).toBe(true);
  });

  it("runs a request immediately when the runner is idle", async () => {
    const s = setup();
    s.runner.start();
    await s.clock.advance(5_000);
    s.runner.run();
    await flushMicrotasks();
    expect(s.at()).toEqual([5_000]);
  });

  it("coalesces 10 requests within 100 ms into one run after minInterval", async () => {
    const s = setup();
    s.runner.start();
    s.runner.run();
    await flushMicrotasks();
    expect(s.at()).toEqual([0]);

    for (let i = 0; i < 10; i++) {
      s.runner.run();
      await s.clock.advance(10);
    }
    expect(s.runs).toHaveLength(1);
    await s.clock.advance(MIN - 101);
    expect(s.runs).toHaveLength(1);
    await s.clock.advance(1);
    expect(s.at()).toEqual([0, MIN]);
    // nothing else is queued: the next run is the periodic one
    await s.clock.advance(MAX - 1);
    expect(s.runs).toHaveLength(2);
  });

  it("keeps minInterval between the end of one run and the start of the next", async () => {
    const s = setup({ fnMs: 300 });
    s.runner.start();
    for (let i = 0; i < 40; i++) {
      s.runner.run();
      await s.clock.advance(50);
    }
    await s.clock.advance(5_000);
    const starts = s.at();
    expect(starts.length).toBeGreaterThan(1);
    for (let i = 1; i < starts.length; i++) {
      // previous run took 300 ms; the next may start MIN after it ended
      expect(starts[i]! - starts[i - 1]!).toBeGreaterThanOrEqual(300 + MIN);
    }
    // requests kept arriving until 2000 ms: runs at 0 and 1300; the one queued meanwhile at 2600
    expect(starts).toEqual([0, 1_300, 2_600]);
  });

  it("runs periodically every maxInterval without requests", async () => {
    const s = setup();
    s.runner.start();
    await s.clock.advance(MAX - 1);
    expect(s.runs).toHaveLength(0);
    await s.clock.advance(1);
    expect(s.at()).toEqual([MAX]);
    expect(s.runs[0]!.trigger).toEqual({ requested: false, retry: false, periodic: true, manual: false });
    await s.clock.advance(MAX * 2);
    expect(s.at()).toEqual([MAX, 2 * MAX, 3 * MAX]);
  });

  it("measures maxInterval from the last run", async () => {
    const s = setup();
    s.runner.start();
    await s.clock.advance(10_000);
    s.runner.run();
    await flushMicrotasks();
    await s.clock.advance(MAX - 1);
    expect(s.at()).toEqual([10_000]);
    await s.clock.advance(1);
    expect(s.at()).toEqual([10_000, 10_000 + MAX]);
  });

  it("retryAfter runs again no later than asked, the soonest of several retries winning", async () => {
    const s = setup();
    s.runner.start();
    s.runner.run();
    await flushMicrotasks();
    s.runner.retryAfter(8_000);
    s.runner.retryAfter(5_000);
    s.runner.retryAfter(9_000);
    await s.clock.advance(4_999);
    expect(s.runs).toHaveLength(1);
    await s.clock.advance(1);
    expect(s.at()).toEqual([0, 5_000]);
    expect(s.runs[1]!.trigger.retry).toBe(true);
    expect(s.runs[1]!.trigger.requested).toBe(false);
    // the retry was consumed: nothing until the periodic run
    await s.clock.advance(MAX - 1);
    expect(s.runs).toHaveLength(2);
  });

  it("a retry still respects minInterval", async () => {
    const s = setup();
    s.runner.start();
    s.runner.run();
    await flushMicrotasks();
    s.runner.retryAfter(100);
    await s.clock.advance(MIN - 1);
    expect(s.runs).toHaveLength(1);
    await s.clock.advance(1);
    expect(s.at()).toEqual([0, MIN]);
  });

  it("a run clears an earlier retry, but keeps one requested from inside fn", async () => {
    const clock = new FakeClock();
    const t0 = clock.now();
    const starts: number[] = [];
    let retryFromInside = false;
    const runner = new BoundedFrequencyRunner({
      fn: () => {
        starts.push(clock.now() - t0);
        if (retryFromInside) {
          retryFromInside = false;
          runner.retryAfter(4_000);
        }
      },
      minIntervalMs: MIN,
      maxIntervalMs: MAX,
      clock,
    });
    runner.start();
    runner.retryAfter(5_000);
    await clock.advance(2_000);
    runner.run(); // runs at 2000 and clears the retry at 5000
    await flushMicrotasks();
    await clock.advance(10_000);
    expect(starts).toEqual([2_000]);

    retryFromInside = true;
    runner.run(); // at 12000; fn asks for a retry in 4 s
    await flushMicrotasks();
    await clock.advance(4_000);
    expect(starts).toEqual([2_000, 12_000, 16_000]);
    await runner.stop();
  });

  it("never runs fn concurrently when fn is slow", async () => {
    const s = setup({ fnMs: 3_000 });
    s.runner.start();
    s.runner.run();
    await s.clock.advance(100);
    expect(s.runner.isRunning).toBe(true);
    for (let i = 0; i < 5; i++) {
      s.runner.run();
      s.runner.retryAfter(0);
      await s.clock.advance(100);
    }
    // a manual run waits for the slow run as well
    const manual = s.runner.runNow();
    await s.clock.advance(20_000);
    await manual;
    expect(s.maxActive()).toBe(1);
    // slow run 0–3000, then the manual one at once (3000–6000), then the coalesced
    // request/retry — served by the manual run, which cleared them
    expect(s.at()).toEqual([0, 3_000]);
    expect(s.runs[1]!.trigger.manual).toBe(true);
  });

  it("runNow bypasses minInterval, returns fn's value and resets the periodic timer", async () => {
    const s = setup();
    s.runner.start();
    s.runner.run();
    await flushMicrotasks();
    await s.clock.advance(100);
    await expect(s.runner.runNow()).resolves.toBe(2);
    expect(s.at()).toEqual([0, 100]);
    await s.clock.advance(MAX - 1);
    expect(s.runs).toHaveLength(2);
    await s.clock.advance(1);
    expect(s.at()).toEqual([0, 100, 100 + MAX]);
  });

  it("runNow rejects with fn's error; a timer-driven failure does not stop the runner", async () => {
    const clock = new FakeClock();
    let calls = 0;
    const runner = new BoundedFrequencyRunner({
      fn: () => {
        calls++;
        throw new Error(`boom ${calls}`);
      },
      minIntervalMs: MIN,
      maxIntervalMs: 5_000,
      clock,
    });
    await expect(runner.runNow()).rejects.toThrow("boom 1");
    runner.start();
    await clock.advance(5_000);
    expect(calls).toBe(2);
    await clock.advance(5_000);
    expect(calls).toBe(3);
    await runner.stop();
  });

  it("stop() waits for a run in progress and ends all scheduling", async () => {
    const s = setup({ fnMs: 2_000 });
    s.runner.start();
    s.runner.run();
    await s.clock.advance(500);
    s.runner.run();
    s.runner.retryAfter(1_000);
    let stopped = false;
    const stopping = s.runner.stop().then(() => {
      stopped = true;
    });
    await s.clock.advance(1_000);
    expect(stopped).toBe(false);
    await s.clock.advance(500);
    await stopping;
    expect(stopped).toBe(true);
    expect(s.clock.pendingTimers()).toBe(0);
    await s.clock.advance(10 * MAX);
    expect(s.at()).toEqual([0]);
    expect(s.runner.isStarted).toBe(false);
  });
});
