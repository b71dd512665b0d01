import { describe, expect, it } from "vitest";
import { KubeletMetrics } from "../src/index.js";
import type { PodStatus } from "../src/pod-spec.js";
import { allAppContainersRunning, PodStartLatencyTracker } from "../src/pod-start-latency.js";
import { container, pod } from "./helpers.js";

const twoApps = pod({ containers: [container("a"), container("b")], initContainers: [container("init")] });
const running = (name: string) => ({ name, state: { running: { startedAt: "x" } } });
const waiting = (name: string) => ({ name, state: { waiting: { reason: "ContainerCreating" } } });
type ContainerStatusLike = ReturnType<typeof running> | ReturnType<typeof waiting>;
const status = (...cs: ContainerStatusLike[]): PodStatus =>
  ({ phase: "Running", containerStatuses: cs }) as PodStatus;

describe("allAppContainersRunning", () => {
  it("needs every app container of the spec running (init containers do not count)", () => {
    expect(allAppContainersRunning(twoApps, status(running("a"), running("b")))).toBe(true);
    expect(allAppContainersRunning(twoApps, status(running("a"), waiting("b")))).toBe(false);
    expect(allAppContainersRunning(twoApps, status(running("a")))).toBe(false);
    expect(allAppContainersRunning(twoApps, undefined)).toBe(false);
  });
});

describe("PodStartLatencyTracker", () => {
  it("measures once, from the first time the pod was seen to all containers running", () => {
    const t = new PodStartLatencyTracker();
    t.podSeen("uid-1", 1000);
    t.podSeen("uid-1", 1500); // an update: the first sighting counts
    expect(t.observeStatus(twoApps, status(running("a"), waiting("b")), 2000)).toBeUndefined();
    expect(t.observeStatus(twoApps, status(running("a"), running("b")), 3250)).toBe(2.25);
    expect(t.observeStatus(twoApps, status(running("a"), running("b")), 4000)).toBeUndefined();
    t.podSeen("uid-1", 5000); // still the same pod: no new measurement
    expect(t.observeStatus(twoApps, status(running("a"), running("b")), 6000)).toBeUndefined();
    expect(t.pending).toBe(0);
  });

  it("ignores pods it never saw and starts over for a pod forgotten and seen again", () => {
    const t = new PodStartLatencyTracker();
    expect(t.observeStatus(twoApps, status(running("a"), running("b")), 1)).toBeUndefined();
    t.podSeen("uid-1", 0);
    expect(t.observeStatus(twoApps, status(running("a"), running("b")), 1000)).toBe(1);
    t.forget("uid-1");
    t.podSeen("uid-1", 10_000);
    expect(t.pending).toBe(1);
    expect(t.observeStatus(twoApps, status(running("a"), running("b")), 10_500)).toBe(0.5);
  });
});

describe("KubeletMetrics.observePodStart", () => {
  it("feeds kubelet_pod_start_duration_seconds with kubelet's buckets", async () => {
    const m = new KubeletMetrics();
    const observe = m.observePodStart;
    observe(twoApps, 2.5);
    observe(twoApps, 0.2);
    const text = await m.registry.metrics();
    expect(text).toContain("# TYPE kubelet_pod_start_duration_seconds histogram");
    expect(text).toContain('kubelet_pod_start_duration_seconds_bucket{le="0.5"} 1');
    expect(text).toContain('kubelet_pod_start_duration_seconds_bucket{le="3"} 2');
    expect(text).toContain('kubelet_pod_start_duration_seconds_bucket{le="3600"} 2');
    expect(text).toContain("kubelet_pod_start_duration_seconds_count 2");
    expect(text).toContain("kubelet_pod_start_duration_seconds_sum 2.7");
  });
});
