/**
 * One pod's worker: every sync of the pod runs here, one at a time (kubelet's
 * per-pod goroutine in `podWorkers`). A sync reads the pod's runtime state,
 * asks `computePodActions` what to do, does it over CRI (kill, create the
 * sandbox, pull, create and start containers), regenerates the pod's status and
 * schedules the next sync (CrashLoopBackOff end, errors, periodic resync).
 * Probes run on their own timers and wake the worker when a result changes.
 *
 * Every sync also sets up (or updates) the pod's volumes, including the
 * API-backed ones read through the {@link PodObjectProvider}; a volume that
 * cannot be set up holds the containers that still have to start in
 * `ContainerCreating` (retried) and is reported as a `FailedMount` event.
 * Environment references (ConfigMaps, Secrets, Services) and image pull
 * secrets are read through the same provider. Lifecycle events (Pulling,
 * Pulled, Created, Started, Killing, BackOff, Unhealthy, FailedMount, Failed,
 * FailedCreatePodSandBox …) go to the {@link EventRecorder}.
 *
 * @module
 */
import { mkdir, readdir } from "node:fs/promises";
import { posix } from "node:path";
import {
  type Clock,
  describeError,
  type KeyedBackoff,
  type Logger,
  type Pod,
  type TimerHandle,
} from "@worknode/core";
import { type CriClient, type DeepPartial, isCriStatus, type PodSandboxConfig } from "@worknode/cri";
import {
  keyringEntriesFromSecret,
  lookupCredentials,
  type RegistryAuth,
} from "../api-objects/credential-keyring.js";
import {
  isObjectNotFound,
  type PodObjectProvider,
  StandalonePodObjectProvider,
} from "../api-objects/provider.js";
import { serviceEnvironment } from "../api-objects/service-env.js";
import { buildContainerConfig } from "../container-config.js";
import { clusterDnsMissing, type DnsContext, missingClusterDnsMessage } from "../dns.js";
import {
  ContainerConfigError,
  type EnvEntry,
  type EnvironmentContext,
  type NodeAllocatable,
} from "../env.js";
import {
  EventReason,
  type EventRecorder,
  type EventType,
  LoggingEventRecorder,
  podReference,
} from "../events/event-recorder.js";
import { podLogDirectory, restartCountFromLogFiles } from "../log-paths.js";
import { type ContainerToStart, computePodActions } from "../pod-actions.js";
import {
  appContainers,
  type Container,
  formatPod,
  initContainers,
  isHostNetwork,
  isRestartableInitContainer,
  type PodStatus,
  sidecarContainers,
} from "../pod-spec.js";
import { type ContainerProbeStatus, generatePodStatus, type WaitingReason } from "../pod-status.js";
import { ContainerProbes, type ProbeKind } from "../probe-tracker.js";
import {
  containersNewestFirst,
  latestContainerByName,
  nextRestartCount,
  type RuntimePodStatus,
  sandboxesNewestFirst,
} from "../runtime-status.js";
import { buildSandboxConfig } from "../sandbox-config.js";
import { mergeStatus } from "../status-merge.js";
import { secretData } from "../volumes/projection.js";
import type { ContainerKiller } from "./container-killer.js";
import { toCriContainerConfig, toCriSandboxConfig } from "./cri-adapter.js";
import { ImagePullError, type ImagePuller } from "./image-puller.js";
import { killPodRuntime, killTargetOf } from "./pod-killer.js";
import type { ProbeRunner } from "./probe-runner.js";
import type { RuntimeInspector } from "./runtime-state.js";
import {
  cleanUpPodDirectory,
  makeTerminationMessageFile,
  setUpAllPodVolumes,
  writeEtcHosts,
} from "./volumes.js";

/** Everything a pod worker needs, shared by all workers of a kubelet. */
export interface PodWorkerDeps {
  readonly client: CriClient;
  readonly inspector: RuntimeInspector;
  readonly puller: ImagePuller;
  readonly killer: ContainerKiller;
  readonly probeRunner: ProbeRunner;
  /** CrashLoopBackOff state shared by all pods. */
  readonly crashLoopBackoff: KeyedBackoff;
  /** `resetAfterMs` the back-off was built with. */
  readonly crashLoopResetAfterMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Kubelet root directory (pod volumes, termination message files, /etc/hosts). */
  readonly rootDir: string;
  /** Pod log root (`/var/log/pods`). */
  readonly podLogsDir: string;
  /** Node IPs, primary first. */
  readonly nodeIPs: readonly string[];
  readonly nodeAllocatable: NodeAllocatable;
  readonly memoryCapacityBytes: number;
  readonly dns: DnsContext;
  /** Runtime name prefixed to container IDs in statuses. */
  readonly runtimeName: string;
  /** Periodic resync of a pod without events. */
  readonly resyncIntervalMs: number;
  /** Retry delay after a failed sync step (pull, sandbox, create). */
  readonly errorRetryMs: number;
  /** Called with every new status of the pod. */
  readonly onStatus: (pod: Pod, status: PodStatus) => void;
  /**
   * ConfigMaps, Secrets, tokens and Services pods reference; default
   * {@link StandalonePodObjectProvider} (every read fails: no API server).
   */
  readonly objects?: PodObjectProvider;
  /** Where pod lifecycle events go; default a {@link LoggingEventRecorder}. */
  readonly recorder?: EventRecorder;
}

type Phase = "running" | "terminating" | "terminated";

/** The serialized worker of one pod. */
export class PodWorker {
  private pod: Pod;
  private phase: Phase = "running";
  private dirty = false;
  private loop: Promise<void> | undefined;
  private stopped = false;
  private syncTimer: TimerHandle | undefined;
  private probeTimer: TimerHandle | undefined;
  private probes = new Map<string, ContainerProbes>();
  private readonly waiting = new Map<string, WaitingReason>();
  private lastStatus: PodStatus | undefined;
  private lastRuntime: RuntimePodStatus | undefined;
  private volumes: Map<string, string> | undefined;
  private terminal = false;
  private terminateGrace: number | undefined;
  private terminated: Promise<void> | undefined;
  private resolveTerminated: (() => void) | undefined;
  private readonly logger: Logger;
  private readonly objects: PodObjectProvider;
  private readonly recorder: EventRecorder;
  private syncCount = 0;

  constructor(
    pod: Pod,
    private readonly deps: PodWorkerDeps,
  ) {
    this.pod = pod;
    this.logger = deps.logger.child({ pod: formatPod(pod) });
    this.objects = deps.objects ?? new StandalonePodObjectProvider();
    this.recorder = deps.recorder ?? new LoggingEventRecorder(this.logger);
    this.resetProbes();
  }

  /** The pod's UID. */
  get uid(): string {
    return this.pod.metadata?.uid ?? "";
  }

  /** The pod spec the worker runs. */
  get currentPod(): Pod {
    return this.pod;
  }

  /** The latest status, once the first sync finished. */
  get status(): PodStatus | undefined {
    return this.lastStatus;
  }

  /** The runtime state seen by the latest sync. */
  get runtimeStatus(): RuntimePodStatus | undefined {
    return this.lastRuntime;
  }

  /** True once the pod is being (or was) terminated. */
  get terminating(): boolean {
    return this.phase !== "running";
  }

  /** True when the pod finished and will not run again (terminal phase). */
  get isTerminal(): boolean {
    return this.terminal;
  }

  /** How many syncs ran (tests, metrics). */
  get syncs(): number {
    return this.syncCount;
  }

  /** A new version of the pod (same UID). */
  update(pod: Pod): void {
    if (this.phase !== "running") return;
    const specChanged = JSON.stringify(pod.spec) !== JSON.stringify(this.pod.spec);
    this.pod = pod;
    if (specChanged) this.resetProbes();
    this.wake();
  }

  /** Schedules a sync (coalesced with one already pending). */
  wake(): void {
    if (this.stopped) return;
    this.dirty = true;
    this.loop ??= this.drive().finally(() => {
      this.loop = undefined;
    });
  }

  /**
   * Terminates the pod: kills every container with its grace period (or
   * `gracePeriodSeconds`), stops and removes its sandboxes, removes its directory.
   * Resolves once done.
   */
  terminate(gracePeriodSeconds?: number): Promise<void> {
    if (!this.terminated) {
      this.terminated = new Promise<void>((resolve) => {
        this.resolveTerminated = resolve;
      });
      this.terminateGrace = gracePeriodSeconds;
      this.phase = "terminating";
      for (const p of this.probes.values()) p.podTerminating();
      this.stopped = false;
      this.wake();
    }
    return this.terminated;
  }

  /** Stops timers and waits for a sync in flight; the pod's containers keep running. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.syncTimer?.cancel();
    this.probeTimer?.cancel();
    await this.loop;
  }

  private resetProbes(): void {
    this.probes = new Map();
    // Sidecars (restartable init containers) are probed like app containers.
    for (const c of [...sidecarContainers(this.pod), ...appContainers(this.pod)]) {
      const p = new ContainerProbes(c, this.deps.clock);
      if (p.trackers.size > 0) this.probes.set(c.name, p);
    }
  }

  private async drive(): Promise<void> {
    while (this.dirty && !this.stopped) {
      this.dirty = false;
      this.syncTimer?.cancel();
      this.syncCount++;
      if (this.phase === "terminated") return;
      try {
        if (this.phase === "terminating") {
          await this.doTerminate();
          return;
        }
        const next = await this.sync();
        this.scheduleSync(next);
      } catch (e) {
        this.logger.warn({ err: describeError(e) }, "pod sync failed");
        this.scheduleSync(this.deps.clock.now() + this.deps.errorRetryMs);
      }
    }
  }

  private scheduleSync(at: number): void {
    if (this.stopped || this.phase !== "running") return;
    this.syncTimer?.cancel();
    this.syncTimer = this.deps.clock.setTimeout(() => this.wake(), Math.max(0, at - this.deps.clock.now()));
  }

  private probeStates(): Map<string, ContainerProbeStatus> {
    const out = new Map<string, ContainerProbeStatus>();
    for (const [name, p] of this.probes) {
      const s = p.state();
      out.set(name, { started: s.started, ready: s.ready });
    }
    return out;
  }

  private observeProbes(rs: RuntimePodStatus): void {
    const latest = latestContainerByName(rs);
    for (const [name, p] of this.probes) {
      const c = latest.get(name);
      if (c && c.state === "running") p.observeContainer(c.id, c.startedAt ?? c.createdAt);
    }
    this.scheduleProbes();
  }

  /** Arms the probe timer at the earliest due tick of a running container. */
  private scheduleProbes(): void {
    this.probeTimer?.cancel();
    if (this.stopped || this.phase !== "running" || !this.lastRuntime) return;
    const latest = latestContainerByName(this.lastRuntime);
    let due = Number.POSITIVE_INFINITY;
    for (const [name, p] of this.probes) {
      if (latest.get(name)?.state !== "running") continue;
      for (const t of p.trackers.values()) due = Math.min(due, t.nextTickAt);
    }
    if (!Number.isFinite(due)) return;
    this.probeTimer = this.deps.clock.setTimeout(
      () => void this.runProbes(),
      Math.max(0, due - this.deps.clock.now()),
    );
  }

  private async runProbes(): Promise<void> {
    const rs = this.lastRuntime;
    if (!rs || this.stopped || this.phase !== "running") return;
    const latest = latestContainerByName(rs);
    const now = this.deps.clock.now();
    const runs: Promise<boolean>[] = [];
    for (const [name, p] of this.probes) {
      const c = latest.get(name);
      const running = c?.state === "running";
      const started = p.state().started;
      for (const [kind, t] of p.trackers) {
        if (t.nextTickAt > now) continue;
        if (t.tick(running, started) !== "probe" || !c) continue;
        runs.push(this.runOneProbe(kind, name, c.id, rs.ips[0] ?? "", t));
      }
    }
    const changed = await Promise.all(runs);
    if (changed.some(Boolean)) this.wake();
    this.scheduleProbes();
  }

  private async runOneProbe(
    kind: ProbeKind,
    name: string,
    containerId: string,
    podIP: string,
    tracker: { record(o: "success" | "failure" | "error"): boolean; settings: { timeoutMs: number } },
  ): Promise<boolean> {
    const spec = [...sidecarContainers(this.pod), ...appContainers(this.pod)].find((c) => c.name === name);
    const probe =
      kind === "liveness"
        ? spec?.livenessProbe
        : kind === "readiness"
          ? spec?.readinessProbe
          : spec?.startupProbe;
    if (!probe) return false;
    try {
      const r = await this.deps.probeRunner.run(
        kind,
        this.pod,
        name,
        containerId,
        podIP,
        probe,
        tracker.settings.timeoutMs,
      );
      if (r === "failure")
        this.record(name, "Warning", EventReason.ContainerUnhealthy, `${probeTitle(kind)} probe failed`);
      return tracker.record(r);
    } catch (e) {
      this.logger.debug({ container: name, kind, err: describeError(e) }, "probe could not run");
      this.record(
        name,
        "Warning",
        EventReason.ContainerUnhealthy,
        `${probeTitle(kind)} probe errored: ${describeError(e)}`,
      );
      return tracker.record("error");
    }
  }

  /** One sync; returns when the next one is due (epoch ms). */
  private async sync(): Promise<number> {
    const d = this.deps;
    const pod = this.pod;
    const { uid, name, namespace } = {
      uid: this.uid,
      name: pod.metadata?.name ?? "",
      namespace: pod.metadata?.namespace ?? "",
    };
    let rs = await d.inspector.podStatus(uid, name, namespace);
    this.lastRuntime = rs;
    this.observeProbes(rs);
    // A pod's first status goes out before its sandbox, pulls and containers (as kubelet's
    // syncPod does): Pending with containers waiting in ContainerCreating while they start.
    if (this.lastStatus === undefined && !this.terminal) this.publishStatus(rs);
    const livenessFailed = new Set<string>();
    const startupFailed = new Set<string>();
    const startupSucceeded = new Set<string>();
    for (const [n, p] of this.probes) {
      const s = p.state();
      if (s.livenessFailed) livenessFailed.add(n);
      if (s.startupFailed) startupFailed.add(n);
      if (s.started) startupSucceeded.add(n);
    }
    const now = d.clock.now();
    const actions = computePodActions(pod, rs, {
      now,
      backoff: d.crashLoopBackoff,
      backoffResetAfterMs: d.crashLoopResetAfterMs,
      livenessFailed,
      startupFailed,
      startupSucceeded,
    });
    let nextAt = now + d.resyncIntervalMs;
    let changed = false;

    for (const b of actions.backoff) {
      this.waiting.set(b.name, { reason: "CrashLoopBackOff", message: b.message });
      this.record(
        b.name,
        "Warning",
        EventReason.BackOffStartContainer,
        `Back-off restarting failed container ${b.name} in pod ${formatPod(pod)}`,
      );
      nextAt = Math.min(nextAt, b.untilMs + 50);
    }

    if (actions.killPod) {
      if (actions.createSandbox && rs.sandboxes.length > 0) {
        this.record(
          undefined,
          "Normal",
          EventReason.SandboxChanged,
          "Pod sandbox changed, it will be killed and re-created.",
        );
      }
      this.recordStopping(rs);
      await killPodRuntime(d.client, d.killer, rs, { pod });
      changed = true;
      if (!actions.createSandbox) this.terminal = true;
    } else {
      for (const k of actions.containersToKill) {
        const c = rs.containers.find((x) => x.id === k.id);
        this.logger.info({ container: k.name, reason: k.reason }, k.message);
        const restarts = actions.containersToStart.some((t) => t.name === k.name);
        this.record(
          k.name,
          "Normal",
          EventReason.KillingContainer,
          restarts ? `${k.message}, will be restarted` : `Stopping container ${k.name}`,
        );
        if (c) {
          await d.killer.kill(killTargetOf(c, pod, undefined, rs.ips[0]));
          changed = true;
        }
      }
    }

    let sandboxId = actions.sandboxId;
    let sandboxConfig: DeepPartial<PodSandboxConfig> | undefined;
    let podIPs: readonly string[] = rs.ips;
    const wantsStart =
      actions.createSandbox ||
      actions.initContainersToStart.length > 0 ||
      actions.containersToStart.length > 0;
    // Volumes are set up (and updated from their sources) on every sync of a live pod.
    const mountFailure = this.terminal ? undefined : await this.syncVolumes(rs.ips);
    if (wantsStart && mountFailure !== undefined) {
      for (const c of [...initContainers(pod), ...appContainers(pod)]) {
        if (!rs.containers.some((x) => x.name === c.name)) {
          this.waiting.set(c.name, { reason: "ContainerCreating", message: mountFailure });
        }
      }
      this.publishStatus(rs);
      return Math.min(nextAt, d.clock.now() + d.errorRetryMs);
    }
    if (wantsStart) {
      const spec = buildSandboxConfig(pod, {
        ...d.dns,
        attempt: actions.attempt,
        podLogsRoot: d.podLogsDir,
      });
      sandboxConfig = toCriSandboxConfig(spec);
      if (actions.createSandbox) {
        if (clusterDnsMissing(pod, d.dns)) {
          this.record(
            undefined,
            "Warning",
            EventReason.MissingClusterDNS,
            missingClusterDnsMessage(formatPod(pod)),
          );
        }
        await mkdir(podLogDirectory(pod, d.podLogsDir), { recursive: true, mode: 0o755 });
        try {
          sandboxId = (await d.client.runtime.runPodSandbox({ config: sandboxConfig })).podSandboxId;
        } catch (e) {
          this.logger.warn({ err: describeError(e) }, "failed to create pod sandbox");
          this.record(
            undefined,
            "Warning",
            EventReason.FailedCreatePodSandBox,
            `Failed to create pod sandbox: ${describeError(e)}`,
          );
          return Math.min(nextAt, d.clock.now() + d.errorRetryMs);
        }
        changed = true;
        const st = await d.client.runtime.podSandboxStatus({ podSandboxId: sandboxId });
        const ip = st.status?.network?.ip ?? "";
        podIPs = ip ? [ip, ...(st.status?.network?.additionalIps ?? []).map((p) => p.ip)] : [];
      }
      const etcHosts = isHostNetwork(pod)
        ? undefined
        : await writeEtcHosts(d.rootDir, uid, podIPs, spec.hostname);
      const start = async (c: Container): Promise<boolean> =>
        this.startContainer(
          c,
          rs,
          sandboxId ?? "",
          sandboxConfig as DeepPartial<PodSandboxConfig>,
          podIPs,
          etcHosts,
        );
      // kubelet's SyncPod steps 6 and 8: init containers (the next regular one and
      // sidecars) in order, then app containers. A regular init container that fails
      // to start stops this sync; a sidecar that fails does not.
      let aborted = false;
      for (const t of actions.initContainersToStart) {
        const c = initContainers(pod).find((x) => x.name === t.name);
        if (!c) continue;
        const ok = await start(c);
        changed = true;
        if (!ok) {
          nextAt = Math.min(nextAt, d.clock.now() + d.errorRetryMs);
          if (!isRestartableInitContainer(c)) {
            aborted = true;
            break;
          }
        }
      }
      for (const t of aborted ? [] : actions.containersToStart) {
        const c = this.specFor(t);
        if (!c) continue;
        const ok = await start(c);
        changed = true;
        if (!ok) nextAt = Math.min(nextAt, d.clock.now() + d.errorRetryMs);
      }
    }

    if (changed) {
      rs = await d.inspector.podStatus(uid, name, namespace);
      this.lastRuntime = rs;
      this.observeProbes(rs);
    }
    // An init container just started (a sidecar lets the next one start once it runs): check again soon.
    if (actions.initContainersToStart.length > 0) nextAt = Math.min(nextAt, d.clock.now() + 1000);
    this.publishStatus(rs);
    await this.collectGarbage(rs);
    return nextAt;
  }

  private specFor(t: ContainerToStart): Container | undefined {
    return appContainers(this.pod).find((c) => c.name === t.name);
  }

  /** Pulls, creates and starts one container instance; records a waiting reason on failure. */
  private async startContainer(
    c: Container,
    rs: RuntimePodStatus,
    sandboxId: string,
    sandboxConfig: DeepPartial<PodSandboxConfig>,
    podIPs: readonly string[],
    etcHostsPath: string | undefined,
  ): Promise<boolean> {
    const d = this.deps;
    const pod = this.pod;
    // Instances created but never started (a crash between Create and Start) are replaced, not kept.
    const stale = rs.containers.filter((x) => x.name === c.name && x.state === "created");
    for (const s of stale) {
      await d.client.runtime.removeContainer({ containerId: s.id }).catch((e: unknown) => {
        if (!isCriStatus(e, "NOT_FOUND")) throw e;
      });
    }
    const live = { ...rs, containers: rs.containers.filter((x) => !stale.includes(x)) };

    let imageRef: string;
    try {
      const credentials = await this.pullCredentials(c);
      imageRef = await d.puller.ensureImage(pod, c, sandboxConfig, { credentials, recorder: this.recorder });
    } catch (e) {
      if (e instanceof ImagePullError) {
        this.waiting.set(c.name, { reason: e.reason, message: e.message });
        return false;
      }
      throw e;
    }

    const logDir = posix.join(podLogDirectory(pod, d.podLogsDir), c.name);
    await mkdir(logDir, { recursive: true, mode: 0o755 });
    let fromLogDir = 0;
    if (!live.containers.some((x) => x.name === c.name)) {
      fromLogDir = restartCountFromLogFiles(await readdir(logDir).catch(() => []));
    }
    const restartCount = nextRestartCount(live, c.name, fromLogDir);
    const termFile = await makeTerminationMessageFile(d.rootDir, this.uid, c.name);
    let config: ReturnType<typeof buildContainerConfig>;
    try {
      const envObjects = await this.envObjects(c);
      config = buildContainerConfig(pod, c, {
        ...envObjects,
        podIPs,
        hostIPs: d.nodeIPs,
        nodeAllocatable: d.nodeAllocatable,
        restartCount,
        imageRef,
        memoryCapacityBytes: d.memoryCapacityBytes,
        volumeHostPaths: this.volumes ?? new Map(),
        terminationMessageHostPath: termFile,
        ...(etcHostsPath ? { etcHostsPath } : {}),
      });
    } catch (e) {
      if (e instanceof ContainerConfigError) {
        this.waiting.set(c.name, { reason: "CreateContainerConfigError", message: e.message });
        this.record(c.name, "Warning", EventReason.FailedToCreateContainer, `Error: ${e.message}`);
        return false;
      }
      throw e;
    }
    let containerId: string;
    try {
      containerId = (
        await d.client.runtime.createContainer({
          podSandboxId: sandboxId,
          config: toCriContainerConfig(config),
          sandboxConfig,
        })
      ).containerId;
    } catch (e) {
      this.waiting.set(c.name, { reason: "CreateContainerError", message: describeError(e) });
      this.record(c.name, "Warning", EventReason.FailedToCreateContainer, `Error: ${describeError(e)}`);
      return false;
    }
    this.record(c.name, "Normal", EventReason.CreatedContainer, `Created container: ${c.name}`);
    try {
      await d.client.runtime.startContainer({ containerId });
    } catch (e) {
      this.waiting.set(c.name, { reason: "RunContainerError", message: describeError(e) });
      this.record(c.name, "Warning", EventReason.FailedToStartContainer, `Error: ${describeError(e)}`);
      return false;
    }
    this.record(c.name, "Normal", EventReason.StartedContainer, `Started container ${c.name}`);
    this.waiting.delete(c.name);
    this.logger.info({ container: c.name, restartCount }, "container started");
    const postStart = c.lifecycle?.postStart;
    if (postStart) {
      try {
        await d.killer.runHook(
          {
            id: containerId,
            name: c.name,
            gracePeriodSeconds: 0,
            podIP: podIPs[0] ?? "",
            ports: c.ports ?? [],
          },
          postStart,
          30,
        );
      } catch (e) {
        this.logger.info(
          { container: c.name, err: describeError(e) },
          "postStart hook failed; killing container",
        );
        this.waiting.set(c.name, { reason: "PostStartHookError", message: describeError(e) });
        this.record(c.name, "Warning", EventReason.FailedPostStartHook, describeError(e));
        await d.killer.kill({ id: containerId, name: c.name, gracePeriodSeconds: 2 });
        return false;
      }
    }
    return true;
  }

  private publishStatus(rs: RuntimePodStatus): void {
    const d = this.deps;
    const next = generatePodStatus(this.pod, rs, {
      now: d.clock.now(),
      nodeIPs: d.nodeIPs,
      ...(this.lastStatus ? { previous: this.lastStatus } : {}),
      probeResults: this.probeStates(),
      waitingReasons: this.waiting,
      runtimeName: d.runtimeName,
      podIsTerminal: this.terminal,
    });
    this.lastStatus = mergeStatus(this.pod, this.lastStatus, next);
    d.onStatus(this.pod, this.lastStatus);
  }

  /** Removes dead container instances beyond the newest two of each name and old dead sandboxes. */
  private async collectGarbage(rs: RuntimePodStatus): Promise<void> {
    const client = this.deps.client;
    const seen = new Map<string, number>();
    const keepSandbox = new Set<string>();
    for (const c of containersNewestFirst(rs)) {
      const n = (seen.get(c.name) ?? 0) + 1;
      seen.set(c.name, n);
      if (n <= 2 || c.state !== "exited") {
        if (c.sandboxId) keepSandbox.add(c.sandboxId);
        continue;
      }
      await client.runtime.removeContainer({ containerId: c.id }).catch(() => {});
    }
    const sandboxes = sandboxesNewestFirst(rs);
    for (const s of sandboxes.slice(1)) {
      if (s.state === "ready" || keepSandbox.has(s.id)) continue;
      await client.runtime.removePodSandbox({ podSandboxId: s.id }).catch(() => {});
    }
  }

  /** Records an event on the pod, or on one of its containers. */
  private record(container: string | undefined, type: EventType, reason: string, message: string): void {
    this.recorder.event(podReference(this.pod, container), type, reason, message);
  }

  /** `Killing` events for the running containers of a pod about to be killed. */
  private recordStopping(rs: RuntimePodStatus): void {
    for (const c of rs.containers) {
      if (c.state === "running") {
        this.record(c.name, "Normal", EventReason.KillingContainer, `Stopping container ${c.name}`);
      }
    }
  }

  /**
   * Sets up or updates the pod's volumes; returns the first FailedMount message
   * when a volume cannot be set up (each failure is also recorded as an event).
   */
  private async syncVolumes(podIPs: readonly string[]): Promise<string | undefined> {
    const d = this.deps;
    const r = await setUpAllPodVolumes(this.pod, d.rootDir, {
      objects: this.objects,
      podIPs,
      hostIPs: d.nodeIPs,
      nodeAllocatable: d.nodeAllocatable,
    });
    this.volumes = r.paths;
    if (r.updated.length > 0) this.logger.debug({ volumes: r.updated }, "volumes updated");
    for (const f of r.failures) {
      this.record(undefined, "Warning", EventReason.FailedMountVolume, f.message);
    }
    return r.failures[0]?.message;
  }

  /** The ConfigMaps, Secrets and Services the container's environment references. */
  private async envObjects(
    c: Container,
  ): Promise<
    Pick<EnvironmentContext, "configMaps" | "secrets" | "objectErrors" | "serviceEnv" | "onInvalidKeys">
  > {
    const ns = this.pod.metadata?.namespace ?? "";
    const cmNames = new Set<string>();
    const secretNames = new Set<string>();
    for (const f of c.envFrom ?? []) {
      if (f.configMapRef) cmNames.add(f.configMapRef.name ?? "");
      if (f.secretRef) secretNames.add(f.secretRef.name ?? "");
    }
    for (const e of c.env ?? []) {
      if (e.valueFrom?.configMapKeyRef) cmNames.add(e.valueFrom.configMapKeyRef.name ?? "");
      if (e.valueFrom?.secretKeyRef) secretNames.add(e.valueFrom.secretKeyRef.name ?? "");
    }
    const configMaps = new Map<string, Readonly<Record<string, string>>>();
    const secrets = new Map<string, Readonly<Record<string, string>>>();
    const objectErrors = new Map<string, string>();
    for (const name of cmNames) {
      try {
        configMaps.set(name, (await this.objects.getConfigMap(ns, name)).data ?? {});
      } catch (e) {
        if (!isObjectNotFound(e)) objectErrors.set(`configmap/${name}`, describeError(e));
      }
    }
    for (const name of secretNames) {
      try {
        const decoded = secretData(await this.objects.getSecret(ns, name));
        secrets.set(
          name,
          Object.fromEntries(Object.entries(decoded).map(([k, v]) => [k, v.toString("utf8")])),
        );
      } catch (e) {
        if (!isObjectNotFound(e)) objectErrors.set(`secret/${name}`, describeError(e));
      }
    }
    let serviceEnv: EnvEntry[];
    try {
      serviceEnv = serviceEnvironment(this.pod, await this.objects.services());
    } catch (e) {
      throw new ContainerConfigError(`failed to list services when setting up env vars: ${describeError(e)}`);
    }
    return {
      configMaps,
      secrets,
      objectErrors,
      serviceEnv,
      onInvalidKeys: (kind, name, keys) =>
        this.record(
          c.name,
          "Warning",
          EventReason.InvalidEnvironmentVariableNames,
          `Keys [${keys.join(", ")}] from the EnvFrom ${kind} ${name} were skipped since they are considered invalid environment variable names.`,
        ),
    };
  }

  /** Credentials of the pod's `imagePullSecrets` matching the container's image. */
  private async pullCredentials(c: Container): Promise<RegistryAuth[]> {
    const refs = this.pod.spec?.imagePullSecrets ?? [];
    if (refs.length === 0) return [];
    const ns = this.pod.metadata?.namespace ?? "";
    const missing: string[] = [];
    const entries = [];
    for (const r of refs) {
      const name = r.name ?? "";
      try {
        entries.push(...keyringEntriesFromSecret(await this.objects.getSecret(ns, name)));
      } catch {
        missing.push(name);
      }
    }
    if (missing.length > 0) {
      this.record(
        undefined,
        "Warning",
        EventReason.FailedToRetrieveImagePullSecret,
        `Unable to retrieve some image pull secrets (${missing.join(", ")}); attempting to pull the image may not succeed.`,
      );
    }
    return lookupCredentials(c.image ?? "", entries);
  }

  private async doTerminate(): Promise<void> {
    const d = this.deps;
    this.probeTimer?.cancel();
    const pod = this.pod;
    const rs = await d.inspector.podStatus(this.uid, pod.metadata?.name ?? "", pod.metadata?.namespace ?? "");
    this.lastRuntime = rs;
    try {
      this.recordStopping(rs);
      await killPodRuntime(d.client, d.killer, rs, {
        pod,
        remove: true,
        ...(this.terminateGrace !== undefined ? { gracePeriodSeconds: this.terminateGrace } : {}),
      });
      await cleanUpPodDirectory(d.rootDir, this.uid);
      this.objects.forgetPod?.(this.uid);
      this.terminal = true;
      this.phase = "terminated";
      this.resolveTerminated?.();
    } catch (e) {
      this.logger.warn({ err: describeError(e) }, "pod termination failed; retrying");
      this.dirty = true;
      await d.clock.sleep(d.errorRetryMs);
    }
  }
}

function probeTitle(kind: ProbeKind): string {
  return kind === "liveness" ? "Liveness" : kind === "readiness" ? "Readiness" : "Startup";
}
