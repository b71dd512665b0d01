import { describe, expect, it } from "vitest";
import { Backoff, KeyedBackoff } from "../../src/util/backoff.js";

describe("Backoff", () => {
  it("doubles from initial up to the cap and starts over on reset", () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000 });
    expect([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
    expect(b.attempts).toBe(6);
    b.reset();
    expect(b.next()).toBe(100);
  });

  it("spreads delays by the jitter fraction around the base", () => {
    const low = new Backoff({ initialMs: 1000, maxMs: 8000, jitter: 0.5, random: () => 0 });
    const high = new Backoff({ initialMs: 1000, maxMs: 8000, jitter: 0.5, random: () => 0.999999 });
    expect(low.next()).toBe(500);
    expect(high.next()).toBe(1500);
    expect(low.next()).toBe(1000);
    expect(high.next()).toBe(3000);
  });

  it("rejects nonsensical options", () => {
    expect(() => new Backoff({ initialMs: 0, maxMs: 10 })).toThrow(RangeError);
    expect(() => new Backoff({ initialMs: 10, maxMs: 5 })).toThrow(RangeError);
    expect(() => new Backoff({ initialMs: 10, maxMs: 50, jitter: 2 })).toThrow(RangeError);
  });
});

describe("KeyedBackoff (kubelet CrashLoopBackOff numbers)", () => {
  const s = 1000;
  it("grows 10s, 20s, 40s … capped at 300s per key", () => {
    const kb = new KeyedBackoff({ initialMs: 10 * s, maxMs: 300 * s });
    const delays: number[] = [];
    let now = 0;
    for (let i = 0; i < 7; i++) {
      delays.push(kb.next("pod/c", now) / s);
      now += 1 * s;
    }
    expect(delays).toEqual([10, 20, 40, 80, 160, 300, 300]);
    expect(kb.next("other/c", now)).toBe(10 * s);
  });

  it("reports the backoff window and starts over after the idle reset period", () => {
    const kb = new KeyedBackoff({ initialMs: 10 * s, maxMs: 300 * s, resetAfterMs: 600 * s });
    kb.next("k", 0);
    expect(kb.isInBackoff("k", 5 * s)).toBe(true);
    expect(kb.isInBackoff("k", 11 * s)).toBe(false);
    kb.next("k", 11 * s);
    expect(kb.get("k")).toBe(20 * s);
    expect(kb.next("k", 11 * s + 601 * s)).toBe(10 * s);
    kb.gc(10_000 * s);
    expect(kb.get("k")).toBe(0);
  });
});
