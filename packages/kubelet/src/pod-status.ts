/**
 * The v1 PodStatus kubelet reports for a pod (`generateAPIPodStatus`,
 * `convertToAPIContainerStatuses`, `getPhase` in pkg/kubelet/kubelet_pods.go, plus
 * the prober manager's `started` / `ready`), in wire form.
 *
 * @module
 */
import type { Pod } from "@worknode/core";
import { podSandboxChanged, shouldContainerBeRestarted } from "./pod-actions.js";
import {
  containersReadyCondition,
  initializedCondition,
  KUBELET_CONDITION_TYPES,
  podReadyCondition,
  podScheduledCondition,
  readyToStartContainersCondition,
} from "./pod-conditions.js";
import {
  appContainers,
  type Container,
  type ContainerState,
  type ContainerStatus,
  formatTimestamp,
  initContainers,
  isHostNetwork,
  isPodDeleted,
  isRestartableInitContainer,
  type PodCondition,
  type PodPhase,
  type PodStatus,
  restartPolicyOf,
} from "./pod-spec.js";
import { podQosClass } from "./qos.js";
import {
  type ContainerRuntimeStatus,
  containersNewestFirst,
  latestContainerByName,
  type RuntimePodStatus,
} from "./runtime-status.js";

/** Probe-derived state of one container's current instance. */
export interface ContainerProbeStatus {
  /** The startup probe succeeded (ignored when the container has none). */
  readonly started?: boolean;
  /** The readiness probe succeeded (ignored when the container has none). */
  readonly ready?: boolean;
}

/** The last start failure of a container (kubelet's reason cache), shown as its waiting state. */
export interface WaitingReason {
  /** `ErrImagePull`, `ImagePullBackOff`, `CrashLoopBackOff`, `CreateContainerConfigError`, … */
  readonly reason: string;
  readonly message: string;
}

/** Inputs of {@link generatePodStatus} besides the pod and its runtime state. */
export interface PodStatusContext {
  /** Current time, epoch ms (start time of a new pod, condition transition times). */
  readonly now: number;
  /** Node IPs, primary first (hostIP / hostIPs; pod IPs of host-network pods). */
  readonly nodeIPs: readonly string[];
  /** The status last generated for this pod (the status manager's copy), if any. */
  readonly previous?: PodStatus;
  /** Probe results by container name; a probe configured but absent here has not succeeded yet. */
  readonly probeResults?: ReadonlyMap<string, ContainerProbeStatus>;
  /** Last start failure by container name (cleared by the worker when a start succeeds). */
  readonly waitingReasons?: ReadonlyMap<string, WaitingReason>;
  /** Runtime name prefixed to container IDs; default `containerd`. */
  readonly runtimeName?: string;
  /** True once the pod worker decided the pod is terminal (it will not run again). */
  readonly podIsTerminal?: boolean;
}

/** Waiting reason of containers not created yet. */
export const REASON_CONTAINER_CREATING = "ContainerCreating";
/** Waiting reason of containers not created yet while init containers run. */
export const REASON_POD_INITIALIZING = "PodInitializing";

function toRuntimeId(runtimeName: string, id: string): string {
  return `${runtimeName}://${id}`;
}

function terminatedReason(s: ContainerRuntimeStatus): string {
  if (s.reason) return s.reason;
  return (s.exitCode ?? 0) === 0 ? "Completed" : "Error";
}

function convertState(
  s: ContainerRuntimeStatus,
  old: ContainerStatus | undefined,
  runtimeName: string,
): { state: ContainerState; restartCount: number } {
  const cid = toRuntimeId(runtimeName, s.id);
  switch (s.state) {
    case "running":
      return {
        state: { running: { startedAt: formatTimestamp(s.startedAt ?? s.createdAt) } },
        restartCount: s.restartCount,
      };
    case "created":
      return { state: { waiting: {} }, restartCount: s.restartCount };
    case "exited": {
      const terminated: NonNullable<ContainerState["terminated"]> = {
        exitCode: s.exitCode ?? 0,
        reason: terminatedReason(s),
        containerID: cid,
      };
      if (s.message) terminated.message = s.message;
      if (s.startedAt) terminated.startedAt = formatTimestamp(s.startedAt);
      if (s.finishedAt) terminated.finishedAt = formatTimestamp(s.finishedAt);
      return { state: { terminated }, restartCount: s.restartCount };
    }
    default:
      if (old?.state?.running) {
        return {
          state: {
            terminated: {
              reason: "ContainerStatusUnknown",
              message: "The container could not be located when the pod was terminated",
              exitCode: 137,
            },
          },
          restartCount: (old.restartCount ?? 0) + 1,
        };
      }
      return { state: { waiting: {} }, restartCount: s.restartCount };
  }
}

/**
 * kubelet's `convertToAPIContainerStatuses` for either the app or the init
 * containers, without `ready` / `started` (see {@link generatePodStatus}).
 */
export function convertContainerStatuses(
  pod: Pod,
  runtime: RuntimePodStatus,
  containers: readonly Container[],
  previous: readonly ContainerStatus[],
  isInit: boolean,
  ctx: Pick<PodStatusContext, "waitingReasons" | "runtimeName">,
): ContainerStatus[] {
  const runtimeName = ctx.runtimeName ?? "containerd";
  const hasInit = initContainers(pod).length > 0;
  const defaultReason = hasInit ? REASON_POD_INITIALIZING : REASON_CONTAINER_CREATING;
  const old = new Map(previous.map((s) => [s.name, s]));
  const statuses = new Map<string, ContainerStatus>();
  for (const c of containers) {
    const o = old.get(c.name);
    if (o?.state?.terminated) {
      statuses.set(c.name, structuredClone(o));
      continue;
    }
    const s: ContainerStatus = {
      name: c.name,
      image: c.image ?? "",
      imageID: "",
      ready: false,
      restartCount: o?.restartCount ?? 0,
      state: { waiting: { reason: defaultReason } },
    };
    if (o?.lastState && Object.keys(o.lastState).length > 0) s.lastState = structuredClone(o.lastState);
    statuses.set(c.name, s);
  }

  // Containers the runtime no longer reports but that were running: they terminated, outcome unknown.
  const inRuntime = new Set(runtime.containers.map((c) => c.name));
  for (const c of containers) {
    if (inRuntime.has(c.name)) continue;
    const o = old.get(c.name);
    if (!o || o.state?.terminated || !o.state?.running) continue;
    const s = statuses.get(c.name) as ContainerStatus;
    if (s.state?.waiting?.reason !== defaultReason || s.lastState?.terminated) continue;
    s.lastState = {
      terminated: {
        reason: "ContainerStatusUnknown",
        message:
          "The container could not be located when the pod was deleted.  The container used to be Running",
        exitCode: 137,
      },
    };
    if (!isPodDeleted(pod)) s.restartCount = (s.restartCount ?? 0) + 1;
  }

  // The newest instance gives the state, the one before it the last state.
  const seen = new Map<string, number>();
  for (const cs of containersNewestFirst(runtime)) {
    const current = statuses.get(cs.name);
    if (!current) continue;
    const n = seen.get(cs.name) ?? 0;
    if (n >= 2) continue;
    const { state, restartCount } = convertState(cs, old.get(cs.name), runtimeName);
    if (n === 0) {
      const next: ContainerStatus = {
        name: cs.name,
        image: cs.image || current.image,
        imageID: cs.imageRef,
        containerID: toRuntimeId(runtimeName, cs.id),
        ready: false,
        restartCount,
        state,
      };
      statuses.set(cs.name, next);
    } else {
      current.lastState = state;
    }
    seen.set(cs.name, n + 1);
  }

  // Containers that will be (re)started show their last start failure as waiting state.
  const latest = latestContainerByName(runtime);
  for (const c of containers) {
    if (isInit && !isRestartableInitContainer(c)) {
      const s = latest.get(c.name);
      if (s && s.state === "exited" && (s.exitCode ?? 0) === 0) continue;
    }
    if (!shouldContainerBeRestarted(pod, c.name, latest)) continue;
    const why = ctx.waitingReasons?.get(c.name);
    if (!why) continue;
    const s = statuses.get(c.name) as ContainerStatus;
    if (s.state?.terminated) s.lastState = s.state;
    s.state = { waiting: { reason: why.reason, message: why.message } };
  }

  const out = containers.map((c) => statuses.get(c.name) as ContainerStatus);
  if (!isInit) out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return out;
}

/**
 * kubelet's `getPhase` from the spec and the generated container statuses
 * (init and app). Sidecars (restartable init containers) keep the pod Pending
 * until they started (unless an app container was created); running ones count
 * as running containers; terminated ones are ignored, so a finished pod's phase
 * comes from its app containers only.
 *
 * @param podIsTerminal the worker decided the pod will not run again
 */
export function podPhase(pod: Pod, statuses: readonly ContainerStatus[], podIsTerminal = false): PodPhase {
  const byName = new Map(statuses.map((s) => [s.name, s]));
  let pendingInit = 0;
  let pendingSidecars = 0;
  let failedInit = 0;
  let unknown = 0;
  let running = 0;
  let waiting = 0;
  let stopped = 0;
  let succeeded = 0;
  for (const c of initContainers(pod)) {
    const s = byName.get(c.name);
    if (isRestartableInitContainer(c)) {
      if (!s?.state) unknown++;
      else if (s.state.running) {
        if (!s.started) pendingSidecars++;
        running++;
      } else if (s.state.terminated) {
        // A terminated sidecar does not count.
      } else if (s.state.waiting) {
        if (!s.lastState?.terminated) pendingSidecars++;
      } else {
        pendingSidecars++;
      }
      continue;
    }
    if (!s?.state) {
      pendingInit++;
    } else if (s.state.running) {
      pendingInit++;
    } else if (s.state.terminated) {
      if (s.state.terminated.exitCode !== 0) failedInit++;
    } else if (s.state.waiting) {
      if (s.lastState?.terminated) {
        if (s.lastState.terminated.exitCode !== 0) failedInit++;
      } else {
        pendingInit++;
      }
    } else {
      pendingInit++;
    }
  }
  for (const c of appContainers(pod)) {
    const s = byName.get(c.name);
    if (!s?.state) {
      unknown++;
    } else if (s.state.running) {
      running++;
    } else if (s.state.terminated) {
      stopped++;
      if (s.state.terminated.exitCode === 0) succeeded++;
    } else if (s.state.waiting) {
      if (s.lastState?.terminated) stopped++;
      else waiting++;
    } else {
      unknown++;
    }
  }
  const policy = restartPolicyOf(pod);
  if (failedInit > 0 && policy === "Never") return "Failed";
  if (pendingInit > 0) return "Pending";
  if (pendingSidecars > 0 && !anyAppContainerCreated(pod, byName)) return "Pending";
  if (waiting > 0) return "Pending";
  if (running > 0 && unknown === 0) return "Running";
  if (running === 0 && stopped > 0 && unknown === 0) {
    if (podIsTerminal) return stopped === succeeded ? "Succeeded" : "Failed";
    if (policy === "Always") return "Running";
    if (stopped === succeeded) return "Succeeded";
    if (policy === "Never") return "Failed";
    return "Running";
  }
  return "Pending";
}

/** kubelet's `HasAnyRegularContainerStarted`: an app container runs or terminated. */
function anyAppContainerCreated(pod: Pod, byName: ReadonlyMap<string, ContainerStatus>): boolean {
  return appContainers(pod).some((c) => {
    const st = byName.get(c.name)?.state;
    return Boolean(st?.running || st?.terminated);
  });
}

function isTerminalPhase(p: string | undefined): p is "Succeeded" | "Failed" {
  return p === "Succeeded" || p === "Failed";
}

function applyProbes(
  specList: readonly Container[],
  statuses: ContainerStatus[],
  probes: ReadonlyMap<string, ContainerProbeStatus> | undefined,
): void {
  const specs = new Map(specList.map((c) => [c.name, c]));
  for (const s of statuses) {
    const spec = specs.get(s.name);
    const running = Boolean(s.state?.running);
    const p = probes?.get(s.name);
    const started = running && (!spec?.startupProbe || p?.started === true);
    s.started = started;
    s.ready = started && (!spec?.readinessProbe || p?.ready === true);
  }
}

/**
 * Generates the pod's status as kubelet reports it:
 *
 * - container statuses: newest instance → `state`, the previous → `lastState`;
 *   `restartCount`, `imageID` (the runtime's image ref), `containerID`
 *   (`<runtime>://<id>`); containers not created yet wait with `ContainerCreating`
 *   (`PodInitializing` when the pod has init containers); containers about to be
 *   restarted show their last start failure from `waitingReasons`
 *   (`CrashLoopBackOff`, `ErrImagePull`, …); terminated reasons from the runtime, or
 *   `Completed` / `Error` by exit code when it gave none;
 * - `started` / `ready`: running, startup probe (if any) succeeded, readiness probe
 *   (if any) succeeded — for app containers and sidecars (restartable init
 *   containers); regular init containers are ready once they exited 0;
 * - phase by kubelet's `getPhase`; a terminal phase already reported (in `previous`
 *   or `pod.status`) is kept; reason and message survive while the phase stays;
 * - conditions PodReadyToStartContainers, Initialized, Ready, ContainersReady,
 *   PodScheduled, plus conditions the kubelet does not own (readiness gates) carried
 *   over from `pod.status` / `previous`; `lastTransitionTime` is `now` here — run
 *   the result through {@link mergeStatus} to keep earlier transition times;
 * - hostIP(s) from the node, podIP(s) from the sandbox (the node's for host-network
 *   pods; the previous ones when the sandbox is gone), qosClass, startTime.
 */
export function generatePodStatus(pod: Pod, runtime: RuntimePodStatus, ctx: PodStatusContext): PodStatus {
  const prev = ctx.previous;
  const initStatuses = convertContainerStatuses(
    pod,
    runtime,
    initContainers(pod),
    prev?.initContainerStatuses ?? [],
    true,
    ctx,
  );
  const appStatuses = convertContainerStatuses(
    pod,
    runtime,
    appContainers(pod),
    prev?.containerStatuses ?? [],
    false,
    ctx,
  );
  applyProbes(appContainers(pod), appStatuses, ctx.probeResults);
  const inits = initContainers(pod);
  applyProbes(
    inits.filter(isRestartableInitContainer),
    initStatuses.filter((_, i) => isRestartableInitContainer(inits[i] as Container)),
    ctx.probeResults,
  );
  initStatuses.forEach((s, i) => {
    if (isRestartableInitContainer(inits[i] as Container)) return;
    s.ready = s.state?.terminated?.exitCode === 0;
    s.started = Boolean(s.state?.running);
  });
  const all = [...initStatuses, ...appStatuses];

  let phase = podPhase(pod, all, ctx.podIsTerminal);
  if (!isTerminalPhase(phase)) {
    if (isTerminalPhase(prev?.phase)) phase = prev.phase;
    else if (isTerminalPhase(pod.status?.phase)) phase = pod.status.phase;
  }

  const status: PodStatus = { phase };
  if (prev?.phase === phase) {
    const reason = prev.reason || pod.status?.reason;
    const message = prev.message || pod.status?.message;
    if (reason) status.reason = reason;
    if (message) status.message = message;
  }

  const transition = formatTimestamp(ctx.now);
  const foreign = new Map<string, PodCondition>();
  for (const c of [...(prev?.conditions ?? []), ...(pod.status?.conditions ?? [])]) {
    if (!KUBELET_CONDITION_TYPES.has(c.type)) foreign.set(c.type, c);
  }
  const conditions: PodCondition[] = [...foreign.values()];
  conditions.push(readyToStartContainersCondition(!podSandboxChanged(pod, runtime).changed));
  conditions.push(initializedCondition(pod, all, phase));
  conditions.push(podReadyCondition(pod, conditions, all, phase));
  conditions.push(containersReadyCondition(pod, all, phase));
  conditions.push(podScheduledCondition());
  status.conditions = conditions.map((c) =>
    KUBELET_CONDITION_TYPES.has(c.type)
      ? { ...c, lastTransitionTime: c.lastTransitionTime ?? transition }
      : c,
  );

  if (ctx.nodeIPs[0]) {
    status.hostIP = ctx.nodeIPs[0];
    status.hostIPs = ctx.nodeIPs.map((ip) => ({ ip }));
  }
  let podIPs: readonly string[] = runtime.ips;
  if (podIPs.length === 0 && isHostNetwork(pod)) podIPs = ctx.nodeIPs;
  if (podIPs.length === 0 && prev?.podIPs?.length) podIPs = prev.podIPs.map((p) => p.ip);
  if (podIPs[0]) {
    status.podIP = podIPs[0];
    status.podIPs = podIPs.map((ip) => ({ ip }));
  }
  status.startTime = prev?.startTime ?? pod.status?.startTime ?? formatTimestamp(ctx.now);
  status.qosClass = podQosClass(pod);
  if (initStatuses.length) status.initContainerStatuses = initStatuses;
  status.containerStatuses = appStatuses;
  return status;
}
