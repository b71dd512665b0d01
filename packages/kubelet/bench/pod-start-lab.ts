/**
 * Helpers of `pod-start.bench.ts` that need no runtime: the benchmark's static pod
 * manifests, a tracker of per-pod start latencies (manifest written → every app
 * container running) fed by the kubelet's `onStatus`, and percentiles.
 *
 * @module
 */
import type { PodStatus } from "../src/index.js";

/** A static pod manifest: one busybox container sleeping for an hour, image already present. */
export function sleeperPod(name: string, image: string): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, labels: { app: "pod-start-bench" } },
    spec: {
      terminationGracePeriodSeconds: 0,
      containers: [{ name: "sleep", image, imagePullPolicy: "IfNotPresent", command: ["sleep", "3600"] }],
    },
  };
}

/** True when the status lists `expected` app containers and every one of them is running. */
export function allContainersRunning(status: PodStatus | undefined, expected: number): boolean {
  const cs = status?.containerStatuses ?? [];
  return cs.length === expected && cs.every((c) => c.state?.running !== undefined);
}

/**
 * The value at percentile `p` (0–100) of `values` by the nearest-rank method
 * (the smallest value with at least p % of the values at or below it).
 * @returns NaN for an empty list.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] as number;
}

interface Pending {
  readonly writtenAt: number;
  readonly containers: number;
  runningAt?: number;
}

/**
 * Per-pod start latencies: {@link expect} records when a pod's manifest was
 * written, {@link observe} (wired to the kubelet's `onStatus`) when its status
 * first shows all containers running; {@link waitAll} resolves once every
 * expected pod got there.
 */
export class PodStartTracker {
  private readonly pending = new Map<string, Pending>();
  private waiters: Array<() => void> = [];

  /**
   * @param now monotonic milliseconds (performance.now by default)
   */
  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Notes that the manifest of pod `podName` (its static-pod name) is written now. */
  expect(podName: string, containers = 1): void {
    this.pending.set(podName, { writtenAt: this.now(), containers });
  }

  /** Feeds a pod status (from `onStatus` or a poll of `kubelet.pods()`). */
  observe(podName: string, status: PodStatus | undefined): void {
    const p = this.pending.get(podName);
    if (!p || p.runningAt !== undefined) return;
    if (!allContainersRunning(status, p.containers)) return;
    p.runningAt = this.now();
    if (this.remaining() === 0) {
      const w = this.waiters;
      this.waiters = [];
      for (const resolve of w) resolve();
    }
  }

  /** How many expected pods are not running yet. */
  remaining(): number {
    let n = 0;
    for (const p of this.pending.values()) if (p.runningAt === undefined) n++;
    return n;
  }

  /** Resolves when every expected pod runs; rejects after `timeoutMs` naming how many are missing. */
  waitAll(timeoutMs: number): Promise<void> {
    if (this.remaining() === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        const missing = [...this.pending].filter(([, p]) => p.runningAt === undefined).map(([n]) => n);
        reject(
          new Error(
            `${missing.length} pod(s) not running after ${timeoutMs} ms: ${missing.slice(0, 5).join(", ")}`,
          ),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.waiters.push(done);
    });
  }

  /** Latencies (ms) of the pods that got running, and forgets every pod. */
  drain(): number[] {
    const out: number[] = [];
    for (const p of this.pending.values()) if (p.runningAt !== undefined) out.push(p.runningAt - p.writtenAt);
    this.pending.clear();
    return out;
  }
}
