/**
 * Pod start latency as `kubelet_pod_start_duration_seconds` measures it: from
 * the moment the kubelet first saw a pod to the first status in which every
 * app container of the pod runs. Each pod is observed once; a pod seen again
 * after it was forgotten (deleted and re-added) starts a new measurement.
 *
 * The same start without its image pulls is `kubelet_pod_start_sli_duration_seconds`:
 * as kubelet's pod startup latency tracker, the time from the first pull's start
 * to the last pull's end is subtracted.
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

/** One pod start, as {@link PodStartLatencyTracker.observeStatus} reports it. */
export interface PodStartObservation {
  /** Seconds from first seen to every app container running. */
  readonly durationSeconds: number;
  /** The same without the image pulls (first pull started → last pull finished). */
  readonly sliDurationSeconds: number;
}

/** Per-pod start latency bookkeeping (pure: times are passed in, in milliseconds). */
export class PodStartLatencyTracker {
  /** First-seen time by pod UID, while the pod has not started yet. */
  private readonly firstSeen = new Map<string, number>();
  /** Image pulls of pods not started yet: the first start and the last end. */
  private readonly pulls = new Map<string, { firstStarted: number; lastFinished: number | undefined }>();
  /** UIDs of pods already observed. */
  private readonly started = new Set<string>();

  /** Notes the first time the kubelet sees a pod (later calls for the same UID are ignored). */
  podSeen(uid: string, at: number): void {
    if (!uid || this.firstSeen.has(uid) || this.started.has(uid)) return;
    this.firstSeen.set(uid, at);
  }

  /** An image pull for the pod started (only the first one of a pod counts). */
  pullStarted(uid: string, at: number): void {
    if (!this.firstSeen.has(uid) || this.pulls.has(uid)) return;
    this.pulls.set(uid, { firstStarted: at, lastFinished: undefined });
  }

  /** An image pull for the pod finished (the last one counts). */
  pullFinished(uid: string, at: number): void {
    const pull = this.pulls.get(uid);
    if (pull !== undefined) pull.lastFinished = at;
  }

  /**
   * Feeds a status of the pod. Returns the start durations the first time every
   * app container runs, otherwise undefined.
   */
  observeStatus(pod: Pod, status: PodStatus | undefined, at: number): PodStartObservation | undefined {
    const uid = pod.metadata?.uid ?? "";
    const seen = this.firstSeen.get(uid);
    if (seen === undefined || !allAppContainersRunning(pod, status)) return undefined;
    const pull = this.pulls.get(uid);
    const pulling = pull?.lastFinished !== undefined ? Math.max(0, pull.lastFinished - pull.firstStarted) : 0;
    this.firstSeen.delete(uid);
    this.pulls.delete(uid);
    this.started.add(uid);
    const duration = Math.max(0, at - seen);
    return { durationSeconds: duration / 1000, sliDurationSeconds: Math.max(0, duration - pulling) / 1000 };
  }

  /** Forgets a pod (deleted). */
  forget(uid: string): void {
    this.firstSeen.delete(uid);
    this.pulls.delete(uid);
    this.started.delete(uid);
  }

  /** Pods seen and not started yet. */
  get pending(): number {
    return this.firstSeen.size;
  }
}
