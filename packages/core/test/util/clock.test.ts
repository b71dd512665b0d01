import { describe, expect, it } from "vitest";
import { FakeClock, realClock } from "../../src/util/clock.js";

describe("FakeClock", () => {
  it("fires timers in due order only when advanced", async () => {
    const clock = new FakeClock(0);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push("b@200"), 200);
    clock.setTimeout(() => fired.push("a@100"), 100);
    const cancelled = clock.setTimeout(() => fired.push("never"), 150);
    cancelled.cancel();
    await clock.advance(99);
    expect(fired).toEqual([]);
    await clock.advance(101);
    expect(fired).toEqual(["a@100", "b@200"]);
    expect(clock.now()).toBe(200);
    expect(clock.pendingTimers()).toBe(0);
  });

  it("fires timers scheduled by timers within the same advance", async () => {
    const clock = new FakeClock(0);
    const at: number[] = [];
    const tick = () => {
      at.push(clock.now());
      if (at.length < 3) clock.setTimeout(tick, 10);
    };
    clock.setTimeout(tick, 10);
    await clock.advance(100);
    expect(at).toEqual([10, 20, 30]);
  });

  it("sleep resolves on advance and rejects on abort", async () => {
    const clock = new FakeClock(0);
    let done = false;
    const p = clock.sleep(50).then(() => {
      done = true;
    });
    await clock.advance(49);
    expect(done).toBe(false);
    await clock.advance(1);
    await p;
    expect(done).toBe(true);
    const ac = new AbortController();
    const q = clock.sleep(1000, ac.signal);
    ac.abort(new Error("stop"));
    await expect(q).rejects.toThrow("stop");
    expect(clock.pendingTimers()).toBe(0);
  });
});

describe("realClock", () => {
  it("sleeps for real and honours an already-aborted signal", async () => {
    const t0 = realClock.monotonic();
    await realClock.sleep(20);
    expect(realClock.monotonic() - t0).toBeGreaterThanOrEqual(15);
    await expect(realClock.sleep(10, AbortSignal.abort(new Error("gone")))).rejects.toThrow("gone");
  });
});
