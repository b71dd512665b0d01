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
    expect(t.observeStatus(twoApps, status(running("a"), running("b")), 3250)).toEqual({
      durationSeconds: 2.25,
      sliDurationSeconds: 2.25,
    });
    expect(t.observeStatus(twoApps, status(running("a"), running("b")), 4000)).toBeUndefined();
    t.podSeen("uid-1", 5000); // still the same pod: no new measurement
    expect(t.observeStatus(twoApps, status(running("a"), running("b")), 6000)).toBeUndefined();
    expect(t.pending).toBe(0);
  });

  it("ignores pods it never saw and starts over for a pod forgotten and seen again", () => {
    const t = new PodStartLatencyTracker();
    expect(t.observeStatus(twoApps, status(running("a"), running("b")), 1)).toBeUndefined();
    t.podSeen("uid-1", 0);
    expect(t.observeStatus(twoApps, status(running("a"), running("b")), 1000)?.durationSeconds).toBe(1);
    t.forget("uid-1");
    t.podSeen("uid-1", 10_000);
    expect(t.pending).toBe(1);
    expect(t.observeStatus(twoApps, status(running("a"), running("b")), 10_500)?.durationSeconds).toBe(0.5);
  });

  it("leaves the image pulls out of the SLI duration: first pull start to last pull end", () => {
    const t = new PodStartLatencyTracker();
    t.pullStarted("uid-1", 500); // before the pod was seen: not this pod's start
    t.podSeen("uid-1", 1000);
    t.pullStarted("uid-1", 1200);
    t.pullStarted("uid-1", 1300); // a second image: the first start counts
    t.pullFinished("uid-1", 1800);
    t.pullFinished("uid-1", 2700); // the last end counts
    expect(t.observeStatus(twoApps, status(running("a"), running("b")), 4000)).toEqual({
      durationSeconds: 3,
      sliDurationSeconds: 1.5,
    });
    // A pull that never finished subtracts nothing.
    t.podSeen("uid-2", 0);
    t.pullStarted("uid-2", 100);
    const other = pod({ containers: [container("a")] });
    other.metadata = { ...other.metadata, uid: "uid-2" };
    expect(t.observeStatus(other, status(running("a")), 1000)).toEqual({
      durationSeconds: 1,
      sliDurationSeconds: 1,
    });
  });
});

describe("KubeletMetrics.observePodStart", () => {
  it("feeds kubelet_pod_start_duration_seconds with kubelet's buckets", async () => {
    const m = new KubeletMetrics();
    const observe = m.observePodStart;
    observe(twoApps, 2.5, { sliDurationSeconds: 0.4 });
    observe(twoApps, 0.2, { sliDurationSeconds: 0.2 });
    const text = await m.registry.metrics();
    expect(text).toContain("# TYPE kubelet_pod_start_duration_seconds histogram");
    expect(text).toContain('kubelet_pod_start_duration_seconds_bucket{le="0.5"} 1');
    expect(text).toContain('kubelet_pod_start_duration_seconds_bucket{le="3"} 2');
    expect(text).toContain('kubelet_pod_start_duration_seconds_bucket{le="3600"} 2');
    expect(text).toContain("kubelet_pod_start_duration_seconds_count 2");
    expect(text).toContain("kubelet_pod_start_duration_seconds_sum 2.7");
    expect(text).toContain("# TYPE kubelet_pod_start_sli_duration_seconds histogram");
    expect(text).toContain('kubelet_pod_start_sli_duration_seconds_bucket{le="0.5"} 2');
    expect(text).toContain("kubelet_pod_start_sli_duration_seconds_count 2");
  });
});
