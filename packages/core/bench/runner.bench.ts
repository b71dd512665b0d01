import { bench, describe } from "vitest";
import { BoundedFrequencyRunner } from "../src/proxy/bounded-frequency-runner.js";
import { mergeChangeSets } from "../src/proxy/change-set-merge.js";
import type { ChangeSet, StaleConntrack } from "../src/service/model.js";
import { FakeClock } from "../src/util/clock.js";

/** A change set of `n` changed ports (every 10th deleted), n/10 stale conntrack entries, n trigger times. */
function bigChangeSet(n: number, offset: number, time: number): ChangeSet {
  const changed = new Set<string>();
  const deleted = new Set<string>();
  const triggerTimes = new Map<string, number>();
  const staleConntrack: StaleConntrack[] = [];
  for (let i = offset; i < offset + n; i++) {
    const key = `ns${i % 100}/svc${i}:http/TCP`;
    changed.add(key);
    if (i % 10 === 0) {
      deleted.add(key);
      staleConntrack.push({ serviceIP: `10.96.${(i >> 8) & 255}.${i & 255}`, port: 53, protocol: "UDP" });
    }
    triggerTimes.set(key, time + i);
  }
  return { changedServicePorts: changed, deletedServicePorts: deleted, staleConntrack, triggerTimes };
}

describe("mergeChangeSets (controller carry-over after a failed sync)", () => {
  // 10k changed ports on each side, half of them overlapping
  const older = bigChangeSet(10_000, 0, 1_000);
  const newer = bigChangeSet(10_000, 5_000, 500);
  const small = bigChangeSet(10, 20_000, 0);
  bench("10k ∪ 10k changed ports (5k overlap)", () => {
    mergeChangeSets(older, newer);
  });
  bench("10k ∪ 10 changed ports", () => {
    mergeChangeSets(older, small);
  });
});

describe("BoundedFrequencyRunner request coalescing", () => {
  const clock = new FakeClock();
  let runs = 0;
  const runner = new BoundedFrequencyRunner({
    fn: () => {
      runs++;
    },
    minIntervalMs: 1_000,
    maxIntervalMs: 30_000,
    clock,
  });
  runner.start();
  // one run so that further requests fall inside the minimum interval and coalesce
  void runner.runNow();
  bench("1000 run() requests inside the min interval", () => {
    for (let i = 0; i < 1_000; i++) runner.run();
    if (runs !== 1) throw new Error(`requests were not coalesced: ${runs} runs`);
  });
  bench("1000 retryAfter() requests inside the min interval", () => {
    for (let i = 0; i < 1_000; i++) runner.retryAfter(i);
    if (runs !== 1) throw new Error(`retries were not coalesced: ${runs} runs`);
  });
});
