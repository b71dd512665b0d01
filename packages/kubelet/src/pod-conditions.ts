/**
 * The pod conditions kubelet owns (pkg/kubelet/status/generate.go):
 * PodReadyToStartContainers, Initialized, ContainersReady, Ready (with readiness
 * gates) and PodScheduled. Messages use kubelet's wording, with Go's `[a b]`
 * rendering of name lists.
 *
 * @module
 */
import type { Pod } from "@worknode/core";
import {
  appContainers,
  type ContainerStatus,
  initContainers,
  isRestartableInitContainer,
  type PodCondition,
  type PodPhase,
} from "./pod-spec.js";

/** Condition types the kubelet owns (others, such as readiness gates, are preserved). */
export const KUBELET_CONDITION_TYPES: ReadonlySet<string> = new Set([
  "PodReadyToStartContainers",
  "Initialized",
  "ContainersReady",
  "Ready",
  "PodScheduled",
]);

function goList(names: readonly string[]): string {
  return `[${names.join(" ")}]`;
}

function byName(statuses: readonly ContainerStatus[]): Map<string, ContainerStatus> {
  return new Map(statuses.map((s) => [s.name, s]));
}

/** `PodReadyToStartContainers`: True once a usable sandbox exists. */
export function readyToStartContainersCondition(sandboxReady: boolean): PodCondition {
  return { type: "PodReadyToStartContainers", status: sandboxReady ? "True" : "False" };
}

/**
 * `ContainersReady` (kubelet's `GenerateContainersReadyCondition`): every sidecar
 * (restartable init container) and every app container ready.
 */
export function containersReadyCondition(
  pod: Pod,
  statuses: readonly ContainerStatus[],
  phase: PodPhase,
): PodCondition {
  const map = byName(statuses);
  const unknown: string[] = [];
  const unready: string[] = [];
  for (const c of [...initContainers(pod).filter(isRestartableInitContainer), ...appContainers(pod)]) {
    const s = map.get(c.name);
    if (!s) unknown.push(c.name);
    else if (!s.ready) unready.push(c.name);
  }
  if (phase === "Succeeded" && unknown.length === 0)
    return { type: "ContainersReady", status: "False", reason: "PodCompleted" };
  if (phase === "Failed") return { type: "ContainersReady", status: "False", reason: "PodFailed" };
  const msgs: string[] = [];
  if (unknown.length) msgs.push(`containers with unknown status: ${goList(unknown)}`);
  if (unready.length) msgs.push(`containers with unready status: ${goList(unready)}`);
  if (msgs.length)
    return {
      type: "ContainersReady",
      status: "False",
      reason: "ContainersNotReady",
      message: msgs.join(", "),
    };
  return { type: "ContainersReady", status: "True" };
}

/**
 * `Ready` (kubelet's `GeneratePodReadyCondition`): ContainersReady, then every
 * readiness gate's condition (looked up in `conditions`) must be True.
 */
export function podReadyCondition(
  pod: Pod,
  conditions: readonly PodCondition[],
  statuses: readonly ContainerStatus[],
  phase: PodPhase,
): PodCondition {
  const cr = containersReadyCondition(pod, statuses, phase);
  if (cr.status !== "True") {
    return {
      type: "Ready",
      status: cr.status,
      ...(cr.reason ? { reason: cr.reason } : {}),
      ...(cr.message ? { message: cr.message } : {}),
    };
  }
  const msgs: string[] = [];
  for (const gate of pod.spec?.readinessGates ?? []) {
    const c = conditions.find((x) => x.type === gate.conditionType);
    if (!c)
      msgs.push(`corresponding condition of pod readiness gate "${gate.conditionType}" does not exist.`);
    else if (c.status !== "True")
      msgs.push(`the status of pod readiness gate "${gate.conditionType}" is not "True", but ${c.status}`);
  }
  if (msgs.length)
    return { type: "Ready", status: "False", reason: "ReadinessGatesNotReady", message: msgs.join(", ") };
  return { type: "Ready", status: "True" };
}

/**
 * `Initialized` (kubelet's `GeneratePodInitializedCondition`): regular init
 * containers completed (ready) and sidecars (restartable init containers) started.
 */
export function initializedCondition(
  pod: Pod,
  statuses: readonly ContainerStatus[],
  phase: PodPhase,
): PodCondition {
  const map = byName(statuses);
  const unknown: string[] = [];
  const incomplete: string[] = [];
  for (const c of initContainers(pod)) {
    const s = map.get(c.name);
    if (!s) unknown.push(c.name);
    else if (isRestartableInitContainer(c) ? !s.started : !s.ready) incomplete.push(c.name);
  }
  if (phase === "Succeeded" && unknown.length === 0)
    return { type: "Initialized", status: "True", reason: "PodCompleted" };
  // A regular container that ran means the pod was initialized before.
  const appNames = new Set(appContainers(pod).map((c) => c.name));
  if (statuses.some((s) => appNames.has(s.name) && (s.state?.running || s.state?.terminated))) {
    return { type: "Initialized", status: "True" };
  }
  const msgs: string[] = [];
  if (unknown.length) msgs.push(`containers with unknown status: ${goList(unknown)}`);
  if (incomplete.length) msgs.push(`containers with incomplete status: ${goList(incomplete)}`);
  if (msgs.length)
    return {
      type: "Initialized",
      status: "False",
      reason: "ContainersNotInitialized",
      message: msgs.join(", "),
    };
  return { type: "Initialized", status: "True" };
}

/** `PodScheduled`: always True on the node. */
export function podScheduledCondition(): PodCondition {
  return { type: "PodScheduled", status: "True" };
}
