/**
 * The kubelet's status manager (`pkg/kubelet/status`): keeps the latest status
 * the kubelet generated for each pod and writes it to the API server.
 *
 * - One `PATCH pods/<name>/status` (strategic merge, `metadata.uid` as a
 *   precondition) only when the status differs from what the API shows; the
 *   patch is computed by the pure {@link computeStatusPatch}.
 * - Bursts coalesce: a pod changing several times while a patch is pending or
 *   in flight gets one more patch, with the latest status.
 * - Failed writes are retried with per-pod exponential backoff; a pod that is
 *   gone (404, or another UID) is dropped.
 * - Static pods have their status written to their mirror pod, once it exists.
 * - A deleted API pod whose termination finished gets its final status, then is
 *   removed with `DELETE` (grace 0, UID precondition) — kubelet's `canBeDeleted`.
 * - Every pod is re-checked periodically (kubelet's `syncBatch`), which repairs
 *   a status someone else overwrote.
 *
 * @module
 */
import {
  ApiStatusError,
  type Clock,
  describeError,
  type KubeApiClient,
  type Logger,
  type ObjectSource,
  objectKey,
  type Pod,
  realClock,
  silentLogger,
  type TimerHandle,
} from "@worknode/core";
import { type PodStatus, restartPolicyOf } from "../pod-spec.js";
import { KeyedWorkQueue } from "./keyed-queue.js";
import { deleteOptionsFor, isMirrorPod, isMirrorPodOf, isStaticPod, podPath } from "./mirror-pod.js";
import { canDeletePod } from "./pod-deletion.js";
import { computeStatusPatch } from "./status-patch.js";

/** Options of {@link StatusManager}. */
export interface StatusManagerOptions {
  /** API client with the node's credentials. */
  readonly api: KubeApiClient;
  /** Every API pod bound to the node, mirror pods included (`ApiPodSource.allPods`). */
  readonly apiPods: ObjectSource<Pod>;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Delay before a changed status is written, so that bursts coalesce; default 20 ms. */
  readonly batchDelayMs?: number;
  /** First retry delay after a failed write; default 500 ms (doubling). */
  readonly retryInitialMs?: number;
  /** Longest retry delay; default 30 s. */
  readonly retryMaxMs?: number;
  /** Period of the full re-check of every pod; default 10 s (kubelet's `syncPeriod`). */
  readonly resyncIntervalMs?: number;
}

/** Counters of the writes a {@link StatusManager} made. */
export interface StatusManagerStats {
  /** Successful status patches. */
  readonly patches: number;
  /** Pods deleted from the API server after their termination. */
  readonly deletes: number;
  /** Failed writes (retried). */
  readonly failures: number;
}

interface Entry {
  pod: Pod;
  status: PodStatus;
  /** The kubelet finished terminating the pod (deletion or removal). */
  terminated: boolean;
  /** The API status as our last patch left it (newer than the informer's until its event arrives). */
  patched?: { resourceVersion: string; uid: string; status: PodStatus };
  patches: number;
}

/** Which API object a pod's status goes to, and what it shows. */
interface Target {
  readonly apiPod: Pod;
  readonly uid: string;
  readonly status: PodStatus | undefined;
}

function isNewerVersion(a: string | undefined, b: string | undefined): boolean {
  if (!a) return false;
  if (!b) return true;
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) return BigInt(a) > BigInt(b);
  return a !== b;
}

/** Writes the kubelet's pod statuses to the API server (see the module notes). */
export class StatusManager {
  private readonly api: KubeApiClient;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly queue: KeyedWorkQueue;
  private readonly batchDelayMs: number;
  private readonly entries = new Map<string, Entry>();
  /** Static pod UID by `namespace/name`, to find a static pod from its mirror. */
  private readonly staticByKey = new Map<string, string>();
  private detach: (() => void) | undefined;
  private resyncTimer: TimerHandle | undefined;
  private stopped = false;
  private counters = { patches: 0, deletes: 0, failures: 0 };

  constructor(private readonly options: StatusManagerOptions) {
    this.api = options.api;
    this.clock = options.clock ?? realClock;
    this.logger = (options.logger ?? silentLogger()).child({ component: "status-manager" });
    this.batchDelayMs = options.batchDelayMs ?? 20;
    this.queue = new KeyedWorkQueue({
      work: (uid) => this.sync(uid),
      clock: this.clock,
      retryInitialMs: options.retryInitialMs ?? 500,
      retryMaxMs: options.retryMaxMs ?? 30_000,
      onError: (uid, err, retryInMs) => {
        this.counters.failures++;
        const pod = this.entries.get(uid)?.pod;
        this.logger.warn(
          { pod: pod ? objectKey(pod) : uid, err: describeError(err), retryInMs },
          "status write failed",
        );
      },
    });
  }

  /** Starts following the API pods and the periodic re-check. */
  start(): void {
    if (this.detach || this.stopped) return;
    this.detach = this.options.apiPods.addHandler({
      onAdd: (p) => this.apiPodChanged(p),
      onUpdate: (_o, p) => this.apiPodChanged(p),
      onDelete: (p) => this.apiPodDeleted(p),
    });
    this.scheduleResync();
  }

  /** Stops timers and waits for writes in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.detach?.();
    this.resyncTimer?.cancel();
    await this.queue.stop();
  }

  /** A new status of a pod, as the kubelet generated it (wire it to the kubelet's `onStatus`). */
  setPodStatus(pod: Pod, status: PodStatus): void {
    const uid = pod.metadata?.uid;
    if (!uid || this.stopped) return;
    const e = this.entries.get(uid);
    if (e?.terminated) return;
    if (e) {
      e.pod = pod;
      e.status = status;
    } else {
      this.entries.set(uid, { pod, status, terminated: false, patches: 0 });
      if (isStaticPod(pod)) this.staticByKey.set(objectKey(pod), uid);
    }
    this.schedule(uid, this.batchDelayMs);
  }

  /**
   * The kubelet finished terminating a pod (wire it to the kubelet's
   * `onPodTerminated`). A deleted API pod gets `finalStatus` written and is then
   * removed from the API server; a static pod is forgotten (its mirror goes
   * with it).
   */
  podTerminated(pod: Pod, finalStatus: PodStatus): void {
    const uid = pod.metadata?.uid;
    if (!uid || this.stopped) return;
    if (isStaticPod(pod)) {
      this.forget(uid);
      return;
    }
    const e = this.entries.get(uid);
    if (e) {
      e.pod = pod;
      e.status = finalStatus;
      e.terminated = true;
    } else {
      this.entries.set(uid, { pod, status: finalStatus, terminated: true, patches: 0 });
    }
    this.schedule(uid, 0);
  }

  /** The latest status the kubelet reported for a pod UID. */
  getPodStatus(uid: string): PodStatus | undefined {
    return this.entries.get(uid)?.status;
  }

  /** How many status patches were sent for a pod UID (the kubelet's UID: the static pod's for a mirror). */
  patchCount(uid: string): number {
    return this.entries.get(uid)?.patches ?? 0;
  }

  /** Writes made so far. */
  stats(): StatusManagerStats {
    return { ...this.counters };
  }

  // ---------------------------------------------------------------------------

  private forget(uid: string): void {
    const e = this.entries.get(uid);
    if (!e) return;
    this.queue.forget(uid);
    this.entries.delete(uid);
    const key = objectKey(e.pod);
    if (this.staticByKey.get(key) === uid) this.staticByKey.delete(key);
  }

  private apiPodChanged(apiPod: Pod): void {
    const uid = isMirrorPod(apiPod)
      ? this.staticByKey.get(objectKey(apiPod))
      : (apiPod.metadata?.uid ?? undefined);
    if (uid && this.entries.has(uid)) this.schedule(uid, this.batchDelayMs);
  }

  private apiPodDeleted(apiPod: Pod): void {
    if (isMirrorPod(apiPod)) return;
    const uid = apiPod.metadata?.uid;
    if (uid) this.forget(uid);
  }

  private scheduleResync(): void {
    if (this.stopped) return;
    this.resyncTimer = this.clock.setTimeout(() => {
      for (const uid of this.entries.keys()) this.schedule(uid, 0);
      this.scheduleResync();
    }, this.options.resyncIntervalMs ?? 10_000);
  }

  private schedule(uid: string, delayMs: number): void {
    if (!this.entries.has(uid) || this.stopped) return;
    this.queue.schedule(uid, delayMs);
  }

  /** The API object the pod's status goes to, or undefined when there is none (yet). */
  private target(e: Entry): Target | undefined {
    const key = objectKey(e.pod);
    const apiPod = this.options.apiPods.get(key);
    if (!apiPod) return undefined;
    if (isStaticPod(e.pod)) {
      if (!isMirrorPodOf(apiPod, e.pod) || apiPod.metadata?.deletionTimestamp) return undefined;
    } else if (isMirrorPod(apiPod) || apiPod.metadata?.uid !== e.pod.metadata?.uid) {
      return undefined;
    }
    const uid = apiPod.metadata?.uid ?? "";
    const p = e.patched;
    if (p && p.uid === uid && isNewerVersion(p.resourceVersion, apiPod.metadata?.resourceVersion)) {
      return { apiPod: { ...apiPod, status: p.status }, uid, status: p.status };
    }
    return { apiPod, uid, status: apiPod.status };
  }

  private async sync(uid: string): Promise<void> {
    const e = this.entries.get(uid);
    if (!e || this.stopped) return;
    const target = this.target(e);
    if (!target) {
      // A static pod waits for its mirror; an API pod that is gone is dropped.
      if (!isStaticPod(e.pod)) this.forget(uid);
      return;
    }
    const meta = target.apiPod.metadata ?? {};
    const ns = meta.namespace ?? "default";
    const name = meta.name ?? "";
    let apiPod = target.apiPod;
    const patch = computeStatusPatch(target.status, e.status, {
      uid: target.uid,
      restartPolicy: restartPolicyOf(e.pod),
    });
    if (patch) {
      try {
        const res = await this.api.requestJson<Pod>("PATCH", podPath(ns, name, "status"), {
          body: patch,
          contentType: "application/strategic-merge-patch+json",
        });
        this.counters.patches++;
        e.patches++;
        apiPod = res;
        e.patched = {
          resourceVersion: res.metadata?.resourceVersion ?? "",
          uid: res.metadata?.uid ?? target.uid,
          status: res.status ?? {},
        };
        this.logger.debug({ pod: `${ns}/${name}`, patch: patch.status }, "status patched");
      } catch (err) {
        if (this.isGone(err, e)) return;
        throw err;
      }
    }
    if (e.terminated && canDeletePod({ apiPod, terminated: true, statusSynced: true })) {
      try {
        await this.api.requestJson("DELETE", podPath(ns, name), { body: deleteOptionsFor(target.uid) });
        this.counters.deletes++;
        this.logger.info({ pod: `${ns}/${name}` }, "pod deleted from the API server after termination");
      } catch (err) {
        if (!this.isGone(err, e)) throw err;
      }
      this.forget(uid);
    }
  }

  /** True (and the pod dropped, unless static) when a write failed because the object is gone or replaced. */
  private isGone(err: unknown, e: Entry): boolean {
    if (!(err instanceof ApiStatusError) || (err.status !== 404 && err.status !== 409)) return false;
    if (isStaticPod(e.pod)) return true; // the mirror is being replaced: its events bring us back
    this.forget(e.pod.metadata?.uid ?? "");
    return true;
  }
}
