/**
 * Pod start latency as `kubelet_pod_start_duration_seconds` measures it: from
 * the moment the kubelet first saw a pod to the first status in which every
 * app container of the pod runs. Each pod is observed once; a pod seen again
 * after it was forgotten (deleted and re-added) starts a new measurement.
 *
 * @module
 */
import type { Pod } from "@worknode/core";
import { appContainers, type PodStatus } from "./pod-spec.js";

/** True when the status has a running state for every app container of the pod. */
export function allAppContainersRunning(pod: Pod, status: PodStatus | undefined): boolean {
  const names = appContainers(pod).map((c) => c.name);
  if (names.length === 0) return false;
  const statuses = status?.containerStatuses ?? [];
  return names.every((n) => statuses.some((s) => s.name === n && s.state?.running !== undefined));
}

/** Per-pod start latency bookkeeping (pure: times are passed in, in milliseconds). */
export class PodStartLatencyTracker {
  /** First-seen time by pod UID, while the pod has not started yet. */
  private readonly firstSeen = new Map<string, number>();
  /** UIDs of pods already observed. */
  private readonly started = new Set<string>();

  /** Notes the first time the kubelet sees a pod (later calls for the same UID are ignored). */
  podSeen(uid: string, at: number): void {
    if (!uid || this.firstSeen.has(uid) || this.started.has(uid)) return;
    this.firstSeen.set(uid, at);
  }

  /**
   * Feeds a status of the pod. Returns the start duration in seconds the first
   * time every app container runs, otherwise undefined.
   */
  observeStatus(pod: Pod, status: PodStatus | undefined, at: number): number | undefined {
    const uid = pod.metadata?.uid ?? "";
    const seen = this.firstSeen.get(uid);
    if (seen === undefined || !allAppContainersRunning(pod, status)) return undefined;
    this.firstSeen.delete(uid);
    this.started.add(uid);
    return Math.max(0, at - seen) / 1000;
  }

  /** Forgets a pod (deleted). */
  forget(uid: string): void {
    this.firstSeen.delete(uid);
    this.started.delete(uid);
  }

  /** Pods seen and not started yet. */
  get pending(): number {
    return this.firstSeen.size;
  }
}
