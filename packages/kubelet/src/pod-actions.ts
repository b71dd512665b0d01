/**
 * What a pod worker must do to bring a pod's runtime state to its spec — kubelet's
 * `computePodActions` (pkg/kubelet/kuberuntime/kuberuntime_manager.go) together
 * with the CrashLoopBackOff check kubelet makes just before each start (`doBackOff`).
 *
 * The worker executes the returned {@link PodActions} in kubelet's order: kill the
 * pod if asked (all containers, then the sandbox); else kill `containersToKill`;
 * create the sandbox if asked; start `initContainersToStart` in order, then
 * `containersToStart` in order.
 *
 * Restartable (sidecar) init containers — init containers with `restartPolicy:
 * Always` (KEP-753) — follow kubelet's `computeInitContainerActions`: they start in
 * the init sequence, count as done for the ordering once running (and past their
 * startup probe, if any), and are restarted after every exit whatever the pod's
 * restart policy, until the app containers are done.
 *
 * @module
 */
import type { KeyedBackoff, Pod } from "@worknode/core";
import { hashContainer } from "./container-hash.js";
import { crashLoopKey, isInBackoffSince } from "./crash-loop.js";
import {
  appContainers,
  type Container,
  formatGoDuration,
  formatPod,
  initContainers,
  isHostNetwork,
  isPodDeleted,
  isRestartableInitContainer,
  restartPolicyOf,
  shouldRestartOnFailure,
} from "./pod-spec.js";
import {
  type ContainerRuntimeStatus,
  latestContainerByName,
  latestExited,
  type RuntimePodStatus,
  sandboxesNewestFirst,
} from "./runtime-status.js";

/** Why a container is (re)started. */
export type StartReason =
  /** never ran (or all instances were garbage-collected) */
  | "NotStarted"
  /** exited and the restart policy restarts it */
  | "Restart"
  /** created but never started, or in unknown state */
  | "NotRunning"
  /** killed because its spec changed */
  | "SpecChanged"
  /** killed after a failed liveness probe */
  | "LivenessProbe"
  /** killed after a failed startup probe */
  | "StartupProbe"
  /** the sandbox is (re)created, so every container starts */
  | "SandboxChanged";

/** Why a container is killed (kubelet's `containerKillReason`, plus `SpecChanged`). */
export type KillReason = "SpecChanged" | "LivenessProbe" | "StartupProbe" | "Unknown";

/** A container to start. */
export interface ContainerToStart {
  readonly name: string;
  readonly reason: StartReason;
}

/** A running (or unknown-state) container instance to kill. */
export interface ContainerToKill {
  /** Runtime container ID. */
  readonly id: string;
  readonly name: string;
  readonly reason: KillReason;
  /** Human-readable message, kubelet's wording. */
  readonly message: string;
}

/** A container that should start but is held back by CrashLoopBackOff. */
export interface BackoffEntry {
  readonly name: string;
  /** When the back-off ends (epoch ms): the latest exit + `delayMs`. */
  readonly untilMs: number;
  /** The delay in force. */
  readonly delayMs: number;
  /** kubelet's waiting message: `back-off 20s restarting failed container=<c> pod=<pod>`. */
  readonly message: string;
}

/** The actions for one pod (kubelet's `podActions`). */
export interface PodActions {
  /** Stop every container and the sandbox. */
  readonly killPod: boolean;
  /** Create a new sandbox (after killing the pod when `killPod`). */
  readonly createSandbox: boolean;
  /** The current sandbox (to reuse, or the old one to remove when recreating). */
  readonly sandboxId?: string;
  /** `metadata.attempt` of the sandbox to create (or of the current one). */
  readonly attempt: number;
  /**
   * Init containers to start now, in spec order: the next regular init container
   * (app containers wait until initialization is done) and sidecars to (re)start.
   */
  readonly initContainersToStart: readonly ContainerToStart[];
  /** The first of `initContainersToStart`, when there is one. */
  readonly nextInitContainerToStart?: string;
  /** App containers to start, in spec order. */
  readonly containersToStart: readonly ContainerToStart[];
  /** Container instances to kill first. */
  readonly containersToKill: readonly ContainerToKill[];
  /** Containers (init or app) held back by CrashLoopBackOff; they are not in the lists above. */
  readonly backoff: readonly BackoffEntry[];
  /** True when an init container failed and the pod's restart policy is `Never`: the pod failed. */
  readonly initFailed: boolean;
}

/** Inputs of {@link computePodActions} besides the pod and its runtime state. */
export interface PodActionsContext {
  /** Current time, epoch ms. */
  readonly now: number;
  /**
   * CrashLoopBackOff state shared by all pods (see {@link newCrashLoopBackoff}).
   * {@link computePodActions} records a failure in it for every container it
   * restarts after an exit, as kubelet does just before the start.
   */
  readonly backoff: KeyedBackoff;
  /** `resetAfterMs` the back-off was built with; default kubelet's 600 s. */
  readonly backoffResetAfterMs?: number;
  /** Names of containers whose *current* instance failed its liveness probe. */
  readonly livenessFailed?: ReadonlySet<string>;
  /** Names of containers whose *current* instance failed its startup probe. */
  readonly startupFailed?: ReadonlySet<string>;
  /**
   * Names of containers whose *current* instance passed its startup probe. A sidecar
   * with a startup probe that is not in here holds back the next init container.
   */
  readonly startupSucceeded?: ReadonlySet<string>;
}

/** kubelet's `PodSandboxChanged`: whether a new sandbox is needed, its attempt, and the current sandbox. */
export function podSandboxChanged(
  pod: Pod,
  status: RuntimePodStatus,
): { changed: boolean; attempt: number; sandboxId?: string } {
  const sandboxes = sandboxesNewestFirst(status);
  const newest = sandboxes[0];
  if (!newest) return { changed: true, attempt: 0 };
  const ready = sandboxes.filter((s) => s.state === "ready").length;
  if (ready > 1 || newest.state !== "ready")
    return { changed: true, attempt: newest.attempt + 1, sandboxId: newest.id };
  if ((newest.hostNetwork ?? false) !== isHostNetwork(pod))
    return { changed: true, attempt: newest.attempt + 1 };
  if (!isHostNetwork(pod) && !newest.ip)
    return { changed: true, attempt: newest.attempt + 1, sandboxId: newest.id };
  return { changed: false, attempt: newest.attempt, sandboxId: newest.id };
}

/**
 * kubelet's `ShouldContainerBeRestarted`: start when never run, or created / unknown;
 * never when running or the pod is being deleted; an exited sidecar (restartable
 * init container) always; another exited one per restart policy (`Never`: no;
 * `OnFailure`: only after a non-zero exit; `Always`: yes).
 */
export function shouldContainerBeRestarted(
  pod: Pod,
  name: string,
  latest: ReadonlyMap<string, ContainerRuntimeStatus>,
): boolean {
  if (isPodDeleted(pod)) return false;
  const s = latest.get(name);
  if (!s) return true;
  if (s.state === "running") return false;
  if (s.state === "unknown" || s.state === "created") return true;
  const spec = initContainers(pod).find((c) => c.name === name);
  if (spec && isRestartableInitContainer(spec)) return true;
  const policy = restartPolicyOf(pod);
  if (policy === "Never") return false;
  if (policy === "OnFailure" && (s.exitCode ?? 0) === 0) return false;
  return true;
}

/** kubelet's `isInitContainerFailed`: OOM-killed, exited non-zero, or unknown state. */
export function isInitContainerFailed(s: ContainerRuntimeStatus): boolean {
  if (s.reason === "OOMKilled") return true;
  if (s.state === "exited" && (s.exitCode ?? 0) !== 0) return true;
  return s.state === "unknown";
}

/** Result of {@link findNextInitContainerToRun}. */
export interface InitProgress {
  /** All init containers completed (or an app container already runs). */
  readonly done: boolean;
  /** The init container to run next, when not done. */
  readonly next?: Container;
  /** Status of the latest failed init container, when one failed. */
  readonly lastFailed?: ContainerRuntimeStatus;
}

/** kubelet's `findNextInitContainerToRun`. */
export function findNextInitContainerToRun(
  pod: Pod,
  latest: ReadonlyMap<string, ContainerRuntimeStatus>,
): InitProgress {
  const inits = initContainers(pod);
  if (inits.length === 0) return { done: true };
  // An app container running means initialization happened before (init containers may be GC'd).
  for (const c of appContainers(pod)) if (latest.get(c.name)?.state === "running") return { done: true };
  for (let i = inits.length - 1; i >= 0; i--) {
    const c = inits[i] as Container;
    const s = latest.get(c.name);
    if (s && isInitContainerFailed(s)) return { done: false, next: c, lastFailed: s };
  }
  for (let i = inits.length - 1; i >= 0; i--) {
    const s = latest.get((inits[i] as Container).name);
    if (!s) continue;
    if (s.state === "running") return { done: false };
    if (s.state === "exited") {
      if (i === inits.length - 1) return { done: true };
      return { done: false, next: inits[i + 1] as Container };
    }
  }
  return { done: false, next: inits[0] as Container };
}

/** Result of {@link computeInitContainerActions}. */
export interface InitContainerActions {
  /**
   * Initialization is done: the last init container completed (regular) or started
   * (sidecar), or an app container was created or runs (init ran before).
   */
  readonly initialized: boolean;
  /** Init containers to start now, in spec order. */
  readonly toStart: readonly ContainerToStart[];
  /** Init container instances to kill before they restart. */
  readonly toKill: readonly ContainerToKill[];
  /** A regular init container failed and the pod's restart policy is `Never`: the pod failed. */
  readonly failed: boolean;
}

/** kubelet's `hasAnyRegularContainerCreated`: an app container was created, runs or exited. */
export function hasAnyRegularContainerCreated(
  pod: Pod,
  latest: ReadonlyMap<string, ContainerRuntimeStatus>,
): boolean {
  return appContainers(pod).some((c) => {
    const st = latest.get(c.name)?.state;
    return st === "created" || st === "running" || st === "exited";
  });
}

/**
 * kubelet's `computeInitContainerActions` (with sidecar containers): walks the init
 * containers from the last one that has a runtime status backwards, so init
 * containers garbage-collected after they completed are not run again.
 *
 * - a regular init container runs to completion; once it exited 0 the next one starts;
 *   a failed one restarts, or fails the pod under `Never`;
 * - a sidecar counts as done once running and, with a startup probe, once that probe
 *   succeeded; the next init container then starts while it keeps running; it is
 *   restarted after every exit (any code, any restart policy), killed and restarted
 *   when its spec changed or its liveness / startup probe failed;
 * - after initialization (an app container was created) only sidecars are looked at:
 *   missing or exited ones are started again;
 * - a created or unknown-state init container is (killed and) started again.
 */
export function computeInitContainerActions(
  pod: Pod,
  latest: ReadonlyMap<string, ContainerRuntimeStatus>,
  ctx: Pick<PodActionsContext, "livenessFailed" | "startupFailed" | "startupSucceeded"> = {},
): InitContainerActions {
  const inits = initContainers(pod);
  if (inits.length === 0) return { initialized: true, toStart: [], toKill: [], failed: false };
  let initialized = appContainers(pod).some((c) => {
    const st = latest.get(c.name)?.state;
    return st === "created" || st === "running";
  });
  let previouslyInitialized = initialized;
  const restartOnFailure = shouldRestartOnFailure(pod);
  const failed: InitContainerActions = { initialized: false, toStart: [], toKill: [], failed: true };
  const toStart: ContainerToStart[] = [];
  const toKill: ContainerToKill[] = [];
  const restart = (c: Container, id: string, reason: KillReason, message: string): void => {
    toKill.push({ id, name: c.name, reason, message });
    toStart.push({ name: c.name, reason: reason === "Unknown" ? "NotRunning" : reason });
  };
  for (let i = inits.length - 1; i >= 0; i--) {
    const c = inits[i] as Container;
    const sidecar = isRestartableInitContainer(c);
    const s = latest.get(c.name);
    if (!s) {
      if (previouslyInitialized && sidecar) toStart.push({ name: c.name, reason: "NotStarted" });
      continue;
    }
    if (previouslyInitialized && !sidecar) continue;
    const next = inits[i + 1];
    switch (s.state) {
      case "created":
        toStart.push({ name: c.name, reason: "NotRunning" });
        break;
      case "running": {
        if (!sidecar) break;
        if (c.startupProbe) {
          if (ctx.startupFailed?.has(c.name)) {
            restart(c, s.id, "StartupProbe", `Init container ${c.name} failed startup probe`);
            break;
          }
          if (!ctx.startupSucceeded?.has(c.name)) break;
        }
        if (!next) initialized = true;
        else if (!previouslyInitialized) toStart.push({ name: next.name, reason: "NotStarted" });
        if (s.containerSpecHash !== hashContainer(c)) {
          restart(c, s.id, "SpecChanged", `Init container ${c.name} definition changed`);
        } else if (ctx.livenessFailed?.has(c.name)) {
          restart(c, s.id, "LivenessProbe", `Init container ${c.name} failed liveness probe`);
        }
        break;
      }
      case "exited":
        if (sidecar) {
          toStart.push({ name: c.name, reason: "Restart" });
        } else if (isInitContainerFailed(s)) {
          if (!restartOnFailure) return failed;
          toStart.push({ name: c.name, reason: "Restart" });
        } else if (!next) {
          initialized = true;
        } else {
          toStart.push({ name: next.name, reason: "NotStarted" });
        }
        break;
      default:
        if (!sidecar && !restartOnFailure) return failed;
        restart(c, s.id, "Unknown", `Init container is in "unknown" state, try killing it before restart`);
        break;
    }
    previouslyInitialized = true;
  }
  if (!previouslyInitialized) toStart.push({ name: (inits[0] as Container).name, reason: "NotStarted" });
  toStart.reverse();
  return { initialized, toStart, toKill, failed: false };
}

function containerSucceeded(latest: ReadonlyMap<string, ContainerRuntimeStatus>, name: string): boolean {
  const s = latest.get(name);
  return s !== undefined && s.state === "exited" && (s.exitCode ?? 0) === 0;
}

/**
 * Computes what to do for one pod, as kubelet's `computePodActions` followed by its
 * pre-start CrashLoopBackOff check:
 *
 * - no usable sandbox (missing, not ready, several ready, network mode changed, no IP)
 *   → kill everything and create a sandbox with attempt + 1; start the first init
 *   container, or all app containers (under `OnFailure` those that already succeeded
 *   are skipped); nothing at all when the pod is done and will not restart;
 * - init containers run one at a time in order, each to completion; a failed one is
 *   restarted unless the restart policy is `Never`, which fails (and kills) the pod;
 *   sidecars (restartable init containers) only need to run, and are restarted
 *   whenever they exit (see {@link computeInitContainerActions});
 * - app containers that are not running start according to the restart policy;
 *   running ones whose spec hash changed are killed and restarted (whatever the
 *   policy); failed liveness or startup probes kill them, restarting unless `Never`;
 * - no app container left running and none to start → kill the pod (stop the
 *   sandbox and the sidecars, which are not restarted then);
 * - a pod with a deletion timestamp is only killed.
 *
 * Every container to start whose latest instance exited is checked against the
 * back-off: still inside its window → moved to `backoff`; otherwise the failure is
 * recorded in `ctx.backoff` (the delay doubles) and the container starts.
 */
export function computePodActions(pod: Pod, status: RuntimePodStatus, ctx: PodActionsContext): PodActions {
  const latest = latestContainerByName(status);
  const sandbox = podSandboxChanged(pod, status);
  const base = {
    sandboxId: sandbox.sandboxId,
    attempt: sandbox.attempt,
  };
  if (isPodDeleted(pod)) {
    return {
      ...base,
      killPod: true,
      createSandbox: false,
      initContainersToStart: [],
      containersToStart: [],
      containersToKill: [],
      backoff: [],
      initFailed: false,
    };
  }

  const toStart: ContainerToStart[] = [];
  const toKill: ContainerToKill[] = [];
  let initToStart: ContainerToStart[] = [];
  let killPod = sandbox.changed;
  const createSandbox = sandbox.changed;
  let initFailed = false;

  if (sandbox.changed) {
    if (!shouldRestartOnFailure(pod) && sandbox.attempt !== 0 && status.containers.length !== 0) {
      // A finished pod that will not restart gets no new sandbox.
      return finish(pod, status, ctx, {
        ...base,
        killPod,
        createSandbox: false,
        toStart,
        toKill,
        initToStart,
        initFailed,
      });
    }
    for (const c of appContainers(pod)) {
      if (restartPolicyOf(pod) === "OnFailure" && containerSucceeded(latest, c.name)) continue;
      toStart.push({ name: c.name, reason: "SandboxChanged" });
    }
    // kubelet: with nothing to start, a pod whose app containers were created before is done.
    if (toStart.length === 0 && hasAnyRegularContainerCreated(pod, latest)) {
      return finish(pod, status, ctx, {
        ...base,
        killPod,
        createSandbox: false,
        toStart,
        toKill,
        initToStart,
        initFailed,
      });
    }
    const firstInit = initContainers(pod)[0];
    if (firstInit) {
      toStart.length = 0;
      initToStart = [{ name: firstInit.name, reason: "SandboxChanged" }];
    }
    return finish(pod, status, ctx, {
      ...base,
      killPod,
      createSandbox,
      toStart,
      toKill,
      initToStart,
      initFailed,
    });
  }

  const init = computeInitContainerActions(pod, latest, ctx);
  if (init.failed) {
    killPod = true;
    initFailed = true;
  } else {
    initToStart = [...init.toStart];
    toKill.push(...init.toKill);
  }
  if (init.failed || !init.initialized) {
    return finish(pod, status, ctx, {
      ...base,
      killPod,
      createSandbox,
      toStart,
      toKill,
      initToStart,
      initFailed,
    });
  }

  let keep = 0;
  for (const c of appContainers(pod)) {
    const s = latest.get(c.name);
    if (s?.state !== "running") {
      if (shouldContainerBeRestarted(pod, c.name, latest)) {
        toStart.push({
          name: c.name,
          reason: !s ? "NotStarted" : s.state === "exited" ? "Restart" : "NotRunning",
        });
        if (s?.state === "unknown") {
          toKill.push({
            id: s.id,
            name: c.name,
            reason: "Unknown",
            message: `Container is in "unknown" state, try killing it before restart`,
          });
        }
      }
      continue;
    }
    let restart = shouldRestartOnFailure(pod);
    let reason: KillReason;
    let message: string;
    if (s.containerSpecHash !== hashContainer(c)) {
      reason = "SpecChanged";
      message = `Container ${c.name} definition changed`;
      restart = true;
    } else if (ctx.livenessFailed?.has(c.name)) {
      reason = "LivenessProbe";
      message = `Container ${c.name} failed liveness probe`;
    } else if (ctx.startupFailed?.has(c.name)) {
      reason = "StartupProbe";
      message = `Container ${c.name} failed startup probe`;
    } else {
      keep++;
      continue;
    }
    if (restart) {
      message = `${message}, will be restarted`;
      toStart.push({ name: c.name, reason });
    }
    toKill.push({ id: s.id, name: c.name, reason, message });
  }
  if (keep === 0 && toStart.length === 0) {
    killPod = true;
    // Sidecars do not keep a pod alive whose app containers are done.
    initToStart = [];
  }
  return finish(pod, status, ctx, {
    ...base,
    killPod,
    createSandbox,
    toStart,
    toKill,
    initToStart,
    initFailed,
  });
}

interface Draft {
  sandboxId: string | undefined;
  attempt: number;
  killPod: boolean;
  createSandbox: boolean;
  toStart: ContainerToStart[];
  toKill: ContainerToKill[];
  initToStart: ContainerToStart[];
  initFailed: boolean;
}

/** Applies the CrashLoopBackOff check to every start and shapes the result. */
function finish(pod: Pod, status: RuntimePodStatus, ctx: PodActionsContext, d: Draft): PodActions {
  const backoff: BackoffEntry[] = [];
  const specs = new Map<string, Container>();
  for (const c of initContainers(pod)) specs.set(c.name, c);
  for (const c of appContainers(pod)) specs.set(c.name, c);

  // Returns true when the container may start now.
  const admit = (name: string): boolean => {
    const spec = specs.get(name);
    const exited = latestExited(status, name);
    if (!spec || !exited) return true;
    const finishedAt = exited.finishedAt || exited.createdAt;
    const key = crashLoopKey(pod, spec, hashContainer(spec));
    if (isInBackoffSince(ctx.backoff, key, finishedAt, ctx.now, ctx.backoffResetAfterMs)) {
      const delayMs = ctx.backoff.get(key);
      backoff.push({
        name,
        delayMs,
        untilMs: finishedAt + delayMs,
        message: `back-off ${formatGoDuration(delayMs)} restarting failed container=${name} pod=${formatPod(pod)}`,
      });
      return false;
    }
    ctx.backoff.next(key, finishedAt);
    return true;
  };

  const initContainersToStart = d.initToStart.filter((c) => admit(c.name));
  const nextInitContainerToStart = initContainersToStart[0]?.name;
  // A container killed for a changed spec restarts at once: its new spec has a fresh back-off key.
  const containersToStart = d.toStart.filter((c) => admit(c.name));
  const out: PodActions = {
    killPod: d.killPod,
    createSandbox: d.createSandbox,
    attempt: d.attempt,
    initContainersToStart,
    containersToStart,
    containersToKill: d.toKill,
    backoff,
    initFailed: d.initFailed,
    ...(d.sandboxId !== undefined ? { sandboxId: d.sandboxId } : {}),
    ...(nextInitContainerToStart !== undefined ? { nextInitContainerToStart } : {}),
  };
  return out;
}
