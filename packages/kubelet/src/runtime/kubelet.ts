/**
 * The standalone kubelet: pod sources → admission → one serialized
 * {@link PodWorker} per pod → CRI, with a relisting {@link Pleg} waking the
 * workers whose pods changed and a housekeeping loop removing what runs on the
 * runtime for pods that no longer exist. Statuses are kept locally (no API
 * server); {@link Kubelet.pods} and {@link Kubelet.podStatus} serve them.
 *
 * Restart safety: the kubelet keeps no state of its own. On start it waits for
 * its sources' initial state, lets each pod's worker adopt what the runtime runs
 * for it (found through the labels on sandboxes and containers), and kills and
 * removes the kubelet-labelled sandboxes and containers of pods it does not
 * know. Objects without the kubelet's labels are never touched.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { cpus, networkInterfaces, totalmem } from "node:os";
import {
  type Clock,
  describeError,
  KeyedBackoff,
  type Logger,
  type ObjectSource,
  objectKey,
  type Pod,
  realClock,
  silentLogger,
  type TimerHandle,
} from "@worknode/core";
import type { CriClient } from "@worknode/cri";
import { type AdmissionNode, admitPod, DEFAULT_MAX_PODS, rejectedPodStatus } from "../admission.js";
import { ExitRecordingKiller } from "../api/exit-recorder.js";
import { deletionGracePeriodSeconds, finalPodStatus } from "../api/pod-deletion.js";
import type { PodObjectProvider } from "../api-objects/provider.js";
import { CRASH_LOOP_INITIAL_MS, CRASH_LOOP_MAX_MS, CRASH_LOOP_RESET_MS } from "../crash-loop.js";
import { parseResolvConf, type ResolvConf } from "../dns.js";
import type { NodeAllocatable } from "../env.js";
import type { EventRecorder } from "../events/event-recorder.js";
import { DEFAULT_POD_LOGS_ROOT } from "../log-paths.js";
import { ContainerLogManager } from "../logs/container-log-manager.js";
import { type LogRotationPolicy, logRotationPolicy } from "../logs/log-rotation-plan.js";
import { isPodDeleted, type PodStatus } from "../pod-spec.js";
import { PodStartLatencyTracker, type PodStartObservation } from "../pod-start-latency.js";
import { ProbeHandlers } from "../probes/probe-handlers.js";
import { ImagePuller, newImagePullBackoff } from "./image-puller.js";
import { DEFAULT_RELIST_PERIOD_MS, Pleg } from "./pleg.js";
import { killPodRuntime } from "./pod-killer.js";
import { PodWorker, type PodWorkerDeps } from "./pod-worker.js";
import type { ProbeRunner } from "./probe-runner.js";
import {
  listingFingerprint,
  RuntimeInspector,
  type RuntimePodListing,
  runtimeStatusFingerprint,
} from "./runtime-state.js";
import { cleanUpPodDirectory } from "./volumes.js";

/** The kubelet's default root directory. */
export const DEFAULT_KUBELET_ROOT_DIR = "/var/lib/worknode/kubelet";

/** Options of {@link Kubelet}. */
export interface KubeletOptions {
  /** CRI client of the container runtime. */
  readonly client: CriClient;
  /** Node name (static pod names end with it). */
  readonly nodeName: string;
  /** Pod sources, such as a `ManifestDirSource`; the caller starts and stops them. */
  readonly sources: readonly ObjectSource<Pod>[];
  /** Root directory for pod volumes and files; default `/var/lib/worknode/kubelet`. */
  readonly rootDir?: string;
  /** Pod log root; default `/var/log/pods`. */
  readonly podLogsDir?: string;
  /** Node IPs, primary first; default the first non-internal IPv4 address of the host. */
  readonly nodeIPs?: readonly string[];
  /** Maximum pods (admission); default 110. */
  readonly maxPods?: number;
  /** Allocatable CPU (millicores) and memory (bytes); default the machine's. */
  readonly allocatable?: NodeAllocatable;
  /** Node labels for nodeSelector / affinity admission. */
  readonly nodeLabels?: Readonly<Record<string, string>>;
  /** Node memory capacity in bytes (oom_score_adj); default the machine's. */
  readonly memoryCapacityBytes?: number;
  /** `clusterDNS` server IPs; default none (pods get the host's DNS). */
  readonly clusterDNS?: readonly string[];
  /** `clusterDomain`; default empty. */
  readonly clusterDomain?: string;
  /** Host resolv.conf for pods; default `/etc/resolv.conf`; `""` for none. */
  readonly resolvConf?: string;
  /** PLEG relist period; default 1 s. */
  readonly relistPeriodMs?: number;
  /** Periodic resync of each pod; default 10 s. */
  readonly resyncIntervalMs?: number;
  /** Retry delay after a failed step (pull, sandbox, create); default 2 s. */
  readonly errorRetryMs?: number;
  /** Orphan clean-up period; default 2 s. */
  readonly housekeepingIntervalMs?: number;
  /** CrashLoopBackOff state; default kubelet's 10 s → ×2 → 300 s (see {@link newCrashLoopBackoffWith}). */
  readonly crashLoopBackoff?: KeyedBackoff;
  /** `resetAfterMs` `crashLoopBackoff` was built with; default 600 s. */
  readonly crashLoopResetAfterMs?: number;
  /** Image pull back-off; default 10 s → ×2 → 300 s. */
  readonly imagePullBackoff?: KeyedBackoff;
  /** Probe handlers; default {@link ProbeHandlers} (exec, httpGet, tcpSocket and grpc). */
  readonly probeRunner?: ProbeRunner;
  /** Runtime name in container IDs; default the runtime's `Version` name, else `containerd`. */
  readonly runtimeName?: string;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /**
   * ConfigMaps, Secrets, service-account tokens and Services for pods (an
   * `ApiPodObjectProvider` with the node's credentials); default none: such reads
   * fail with the standalone kubelet's reason.
   */
  readonly objects?: PodObjectProvider;
  /** Pod lifecycle events (an `ApiEventRecorder`); default logged only. */
  readonly recorder?: EventRecorder;
  /** Called with each new status of a pod (for an API-server status manager later). */
  readonly onStatus?: (pod: Pod, status: PodStatus) => void;
  /**
   * Called once a pod's termination finished (its containers stopped and removed),
   * with its final status (terminal phase, containers terminated with their exit
   * codes): the status manager writes it and deletes a deleted API pod.
   */
  readonly onPodTerminated?: (pod: Pod, finalStatus: PodStatus) => void;
  /**
   * Called once per pod when every app container first runs, with the seconds
   * since the kubelet first saw the pod (`kubelet_pod_start_duration_seconds`)
   * and the same without its image pulls (`kubelet_pod_start_sli_duration_seconds`):
   * e.g. `KubeletMetrics.observePodStart`.
   */
  readonly onPodStarted?: (pod: Pod, startDurationSeconds: number, start: PodStartObservation) => void;
  /**
   * Container log rotation (`containerLogMaxSize` / `containerLogMaxFiles`); default
   * kubelet's 10Mi and 5 files; `false` turns rotation off.
   */
  readonly containerLogRotation?: LogRotationPolicy | false;
  /** How often container logs are checked for rotation; default 10 s. */
  readonly containerLogMonitorIntervalMs?: number;
}

/** A CrashLoopBackOff with kubelet's cap and reset but another initial delay (tests). */
export function newCrashLoopBackoffWith(initialMs = CRASH_LOOP_INITIAL_MS): KeyedBackoff {
  return new KeyedBackoff({
    initialMs,
    maxMs: Math.max(initialMs, CRASH_LOOP_MAX_MS),
    resetAfterMs: CRASH_LOOP_RESET_MS,
  });
}

/** The first non-internal IPv4 address of the host (then IPv6), for `nodeIPs`. */
export function defaultNodeIPs(): string[] {
  const all = Object.values(networkInterfaces()).flatMap((l) => l ?? []);
  const v4 = all.find((a) => !a.internal && a.family === "IPv4");
  if (v4) return [v4.address];
  const v6 = all.find((a) => !a.internal && a.family === "IPv6" && !a.address.startsWith("fe80"));
  return v6 ? [v6.address] : [];
}

function readResolvConf(path: string): ResolvConf | undefined {
  if (!path) return undefined;
  try {
    return parseResolvConf(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
}

/** A pod the kubelet knows, admitted or rejected. */
interface PodEntry {
  pod: Pod;
  worker?: PodWorker;
  /** Status of a rejected pod. */
  rejected?: PodStatus;
}

/** The standalone kubelet (see the module notes). */
export class Kubelet {
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly inspector: RuntimeInspector;
  private readonly pleg: Pleg;
  private readonly deps: PodWorkerDeps;
  private readonly node: AdmissionNode;
  private readonly entries = new Map<string, PodEntry>();
  /** Workers being terminated, by UID. */
  private readonly terminating = new Map<string, PodWorker>();
  /** Termination in progress by pod full name (`namespace/name`): a new pod of that name waits for it. */
  private readonly nameTermination = new Map<string, Promise<void>>();
  private readonly statuses = new Map<string, PodStatus>();
  /** UIDs of deleted pods (`deletionTimestamp`) terminated or terminating: never run again. */
  private readonly deletedUids = new Set<string>();
  private readonly killer: ExitRecordingKiller;
  private readonly detach: Array<() => void> = [];
  private housekeepingTimer: TimerHandle | undefined;
  private readonly podStartLatency = new PodStartLatencyTracker();
  private readonly logManager: ContainerLogManager | undefined;
  private started = false;
  private stopped = false;
  private synced = false;

  constructor(private readonly options: KubeletOptions) {
    this.clock = options.clock ?? realClock;
    this.logger = (options.logger ?? silentLogger()).child({ component: "kubelet" });
    const client = options.client;
    this.inspector = new RuntimeInspector(client);
    this.killer = new ExitRecordingKiller({ client, clock: this.clock, logger: this.logger });
    const nodeIPs = options.nodeIPs ?? defaultNodeIPs();
    const allocatable = options.allocatable ?? {
      cpuMilli: cpus().length * 1000,
      memoryBytes: totalmem(),
    };
    this.node = {
      maxPods: options.maxPods ?? DEFAULT_MAX_PODS,
      allocatable,
      name: options.nodeName,
      ...(options.nodeLabels ? { labels: options.nodeLabels } : {}),
    };
    this.deps = {
      client,
      inspector: this.inspector,
      puller: new ImagePuller({
        client,
        backoff: options.imagePullBackoff ?? newImagePullBackoff(),
        clock: this.clock,
        logger: this.logger,
        onPullStarted: (uid, at) => this.podStartLatency.pullStarted(uid, at),
        onPullFinished: (uid, at) => this.podStartLatency.pullFinished(uid, at),
      }),
      killer: this.killer,
      probeRunner: options.probeRunner ?? new ProbeHandlers({ runtime: client.runtime, logger: this.logger }),
      crashLoopBackoff: options.crashLoopBackoff ?? newCrashLoopBackoffWith(),
      crashLoopResetAfterMs: options.crashLoopResetAfterMs ?? CRASH_LOOP_RESET_MS,
      clock: this.clock,
      logger: this.logger,
      rootDir: options.rootDir ?? DEFAULT_KUBELET_ROOT_DIR,
      podLogsDir: options.podLogsDir ?? DEFAULT_POD_LOGS_ROOT,
      nodeIPs,
      nodeAllocatable: allocatable,
      memoryCapacityBytes: options.memoryCapacityBytes ?? totalmem(),
      dns: {
        clusterDNS: options.clusterDNS ?? [],
        clusterDomain: options.clusterDomain ?? "",
        hostResolvConf: readResolvConf(options.resolvConf ?? "/etc/resolv.conf"),
        nodeIPs,
      },
      runtimeName: options.runtimeName ?? "containerd",
      resyncIntervalMs: options.resyncIntervalMs ?? 10_000,
      errorRetryMs: options.errorRetryMs ?? 2000,
      ...(options.objects ? { objects: options.objects } : {}),
      ...(options.recorder ? { recorder: options.recorder } : {}),
      onStatus: (pod, status) => {
        const uid = pod.metadata?.uid ?? "";
        if (this.entries.get(uid)?.worker || this.terminating.has(uid)) this.statuses.set(uid, status);
        const started = this.podStartLatency.observeStatus(pod, status, this.clock.monotonic());
        if (started !== undefined) options.onPodStarted?.(pod, started.durationSeconds, started);
        options.onStatus?.(pod, status);
      },
    };
    this.pleg = new Pleg({
      inspector: this.inspector,
      periodMs: options.relistPeriodMs ?? DEFAULT_RELIST_PERIOD_MS,
      clock: this.clock,
      logger: this.logger,
      onPodsChanged: (uids, listing) => {
        for (const uid of uids) {
          const worker = this.entries.get(uid)?.worker;
          // A worker whose latest sync already saw exactly what the relist saw has nothing to do.
          const seen = runtimeStatusFingerprint(worker?.runtimeStatus);
          if (worker && seen !== listingFingerprint(listing.get(uid))) worker.wake();
        }
      },
    });
    if (options.containerLogRotation !== false) {
      this.logManager = new ContainerLogManager({
        client,
        policy: options.containerLogRotation ?? logRotationPolicy(),
        clock: this.clock,
        logger: this.logger,
        ...(options.containerLogMonitorIntervalMs !== undefined
          ? { monitorIntervalMs: options.containerLogMonitorIntervalMs }
          : {}),
      });
    }
  }

  /**
   * Starts the kubelet: checks the runtime, attaches to the sources, waits for
   * their initial state, cleans up pods the runtime runs that no source has,
   * then starts the PLEG and housekeeping. Resolves once that is done (pods
   * start in the background).
   */
  async start(): Promise<void> {
    if (this.started) throw new Error("Kubelet.start() called twice");
    this.started = true;
    const v = await this.options.client.connect();
    if (!this.options.runtimeName && v.runtimeName) {
      (this.deps as { runtimeName: string }).runtimeName = v.runtimeName;
    }
    for (const source of this.options.sources) {
      this.detach.push(
        source.addHandler({
          onAdd: (pod) => this.handleAdd(pod),
          onUpdate: (oldPod, newPod) => this.handleUpdate(oldPod, newPod),
          onDelete: (pod) => this.handleDelete(pod),
        }),
      );
    }
    await this.waitForSources();
    this.synced = true;
    await this.pleg.relist();
    await this.housekeeping();
    this.pleg.start();
    this.scheduleHousekeeping();
    this.logManager?.start();
  }

  /**
   * Stops the kubelet the way SIGTERM stops kubelet: the PLEG, housekeeping and
   * workers stop; the pods' containers keep running (a new kubelet adopts them).
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const d of this.detach.splice(0)) d();
    this.housekeepingTimer?.cancel();
    await this.logManager?.stop();
    await this.pleg.stop();
    const workers = [...this.entries.values()].flatMap((e) => (e.worker ? [e.worker] : []));
    await Promise.all([...workers, ...this.terminating.values()].map((w) => w.stop()));
  }

  /** The pods the kubelet knows (admitted, rejected and terminating), each with its latest status. */
  pods(): Pod[] {
    const out: Pod[] = [];
    const add = (pod: Pod, status: PodStatus | undefined) => out.push(status ? { ...pod, status } : pod);
    for (const [uid, e] of this.entries) add(e.pod, e.rejected ?? this.statuses.get(uid));
    for (const [uid, w] of this.terminating)
      if (!this.entries.has(uid)) add(w.currentPod, this.statuses.get(uid));
    return out;
  }

  /** The latest status of a pod by UID. */
  podStatus(uid: string): PodStatus | undefined {
    const e = this.entries.get(uid);
    return e?.rejected ?? this.statuses.get(uid);
  }

  /** The PLEG's latest relist: when and how long (health and metrics). */
  plegHealth(): { healthy: boolean; lastRelistAt: number; lastRelistDurationMs: number } {
    const r = this.pleg.lastRelist;
    return { healthy: this.pleg.healthy(), lastRelistAt: r.at, lastRelistDurationMs: r.durationMs };
  }

  /** Resolves once no pod is being terminated (tests, shutdown). */
  async waitForTerminations(): Promise<void> {
    while (this.nameTermination.size > 0) await Promise.all([...this.nameTermination.values()]);
  }

  private waitForSources(): Promise<void> {
    const pending = this.options.sources.filter((s) => !s.hasSynced());
    if (pending.length === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let left = pending.length;
      for (const s of pending) {
        let done = false;
        this.detach.push(
          s.addHandler({
            onSynced: () => {
              if (done) return;
              done = true;
              if (--left === 0) resolve();
            },
          }),
        );
      }
    });
  }

  private activePods(): Pod[] {
    const out: Pod[] = [];
    for (const e of this.entries.values()) if (e.worker && !e.worker.isTerminal) out.push(e.pod);
    return out;
  }

  private handleAdd(pod: Pod): void {
    if (this.stopped) return;
    const uid = pod.metadata?.uid ?? "";
    if (!uid) return;
    this.podStartLatency.podSeen(uid, this.clock.monotonic());
    if (this.deletedUids.has(uid)) return;
    const existing = this.entries.get(uid);
    if (existing) {
      existing.pod = pod;
      existing.worker?.update(pod);
      if (isPodDeleted(pod)) this.terminatePod(uid, pod, true);
      return;
    }
    if (isPodDeleted(pod)) {
      // Deleted before it ran here (or while the kubelet was down): stop what may run, then report.
      this.entries.set(uid, { pod, worker: new PodWorker(pod, this.deps) });
      this.terminatePod(uid, pod, true);
      return;
    }
    const verdict = admitPod(pod, this.activePods(), this.node);
    if (!verdict.admit) {
      this.logger.warn({ pod: objectKey(pod), reason: verdict.reason }, verdict.message);
      const rejected = rejectedPodStatus(pod, verdict, this.clock.now());
      this.entries.set(uid, { pod, rejected });
      this.options.onStatus?.(pod, rejected);
      return;
    }
    const worker = new PodWorker(pod, this.deps);
    this.entries.set(uid, { pod, worker });
    const pendingName = this.nameTermination.get(objectKey(pod));
    if (pendingName) {
      void pendingName.then(() => {
        if (this.entries.get(uid)?.worker === worker) worker.wake();
      });
    } else {
      worker.wake();
    }
  }

  private handleUpdate(oldPod: Pod, newPod: Pod): void {
    if ((oldPod.metadata?.uid ?? "") === (newPod.metadata?.uid ?? "")) {
      this.handleAdd(newPod);
      return;
    }
    this.handleDelete(oldPod);
    this.handleAdd(newPod);
  }

  private handleDelete(pod: Pod): void {
    const uid = pod.metadata?.uid ?? "";
    this.deletedUids.delete(uid);
    this.terminatePod(uid, pod, false);
  }

  /**
   * Terminates a known pod: removed from its source, or `deleted` (its API object
   * got a `deletionTimestamp`: killed with the deletion's grace period, never run
   * again). Once done, reports the final status through `onPodTerminated`.
   */
  private terminatePod(uid: string, pod: Pod, deleted: boolean): void {
    const e = this.entries.get(uid);
    if (!e) return;
    this.entries.delete(uid);
    this.podStartLatency.forget(uid);
    if (deleted) this.deletedUids.add(uid);
    if (!e.worker) {
      if (e.rejected) this.options.onPodTerminated?.(pod, e.rejected);
      return;
    }
    const worker = e.worker;
    this.terminating.set(uid, worker);
    const key = objectKey(pod);
    const done = worker
      .terminate(deleted ? deletionGracePeriodSeconds(pod) : undefined)
      .then(() => this.reportTerminated(uid, worker.currentPod, this.statuses.get(uid) ?? worker.status))
      .finally(() => {
        this.terminating.delete(uid);
        this.statuses.delete(uid);
        if (this.nameTermination.get(key) === done) this.nameTermination.delete(key);
      });
    this.nameTermination.set(key, done);
  }

  private reportTerminated(uid: string, pod: Pod, last: PodStatus | undefined): void {
    const ids = [...(last?.initContainerStatuses ?? []), ...(last?.containerStatuses ?? [])].map((c) =>
      (c.containerID ?? "").replace(/^[^:]*:\/\//, ""),
    );
    const exits = this.killer.take(ids);
    if (!this.options.onPodTerminated) return;
    try {
      const final = finalPodStatus(pod, last, {
        now: this.clock.now(),
        nodeIPs: this.deps.nodeIPs,
        runtimeName: this.deps.runtimeName,
        exits,
      });
      this.options.onPodTerminated(pod, final);
    } catch (err) {
      this.logger.warn({ pod: objectKey(pod), uid, err: describeError(err) }, "onPodTerminated failed");
    }
  }

  private scheduleHousekeeping(): void {
    if (this.stopped) return;
    this.housekeepingTimer = this.clock.setTimeout(() => {
      void this.housekeeping().finally(() => this.scheduleHousekeeping());
    }, this.options.housekeepingIntervalMs ?? 2000);
  }

  /** Kills and removes what the runtime runs for pods no source has (kubelet's `HandlePodCleanups`). */
  private async housekeeping(): Promise<void> {
    if (!this.synced || this.stopped) return;
    const now = this.clock.now();
    this.deps.crashLoopBackoff.gc(now);
    const listing = this.pleg.listing;
    for (const [uid, p] of listing) {
      if (this.entries.get(uid)?.worker || this.terminating.has(uid)) continue;
      await this.removeOrphan(p).catch((e: unknown) =>
        this.logger.warn({ uid, err: describeError(e) }, "failed to remove orphaned pod"),
      );
    }
  }

  private async removeOrphan(p: RuntimePodListing): Promise<void> {
    this.logger.info({ pod: `${p.namespace}/${p.name}`, uid: p.uid }, "removing pod that no source has");
    const status = await this.inspector.podStatus(p.uid, p.name, p.namespace);
    const annotations = new Map(p.containers.map((c) => [c.id, c.annotations]));
    await killPodRuntime(this.deps.client, this.deps.killer, status, { annotations, remove: true });
    await cleanUpPodDirectory(this.deps.rootDir, p.uid);
  }
}
