/**
 * Accepting a newly generated status over the previous one, as kubelet's status
 * manager does (`updateStatusInternal`, `checkContainerStateTransition`): some
 * transitions never happen, and timestamps that did not change keep their value.
 *
 * @module
 */
import type { Pod } from "@worknode/core";
import {
  type ContainerStatus,
  initContainers,
  isRestartableInitContainer,
  type PodStatus,
  restartPolicyOf,
} from "./pod-spec.js";

/** Result of {@link mergeStatusChecked}. */
export interface MergeResult {
  /** The status to keep. */
  readonly status: PodStatus;
  /** Why the new status was refused (the old one is kept), when it was. */
  readonly rejected?: string;
}

function illegalTransition(
  olds: readonly ContainerStatus[] | undefined,
  news: readonly ContainerStatus[] | undefined,
  policy: string,
  restartable: ReadonlySet<string> = new Set(),
): string | undefined {
  for (const o of olds ?? []) {
    if (restartable.has(o.name)) continue;
    const t = o.state?.terminated;
    if (!t) continue;
    if (t.exitCode !== 0 && policy === "OnFailure") continue;
    const n = news?.find((x) => x.name === o.name);
    if (n && !n.state?.terminated)
      return `terminated container ${o.name} attempted illegal transition to non-terminated state`;
  }
  return undefined;
}

/**
 * Merges `next` over `old` for `pod`, reporting a refusal:
 *
 * - unless the restart policy is `Always`, a container (app or init) that terminated
 *   may not leave the terminated state — except after a failure under `OnFailure`,
 *   and sidecars (restartable init containers), which always restart;
 *   such an update is refused and `old` is kept, as kubelet does;
 * - a terminal phase (`Succeeded`, `Failed`) never changes back, and keeps its reason
 *   and message;
 * - `startTime` never changes once set;
 * - a condition whose status did not change keeps its `lastTransitionTime`.
 */
export function mergeStatusChecked(pod: Pod, old: PodStatus | undefined, next: PodStatus): MergeResult {
  if (!old) return { status: next };
  const policy = restartPolicyOf(pod);
  if (policy !== "Always") {
    const why =
      illegalTransition(old.containerStatuses, next.containerStatuses, policy) ??
      illegalTransition(
        old.initContainerStatuses,
        next.initContainerStatuses,
        policy,
        new Set(
          initContainers(pod)
            .filter(isRestartableInitContainer)
            .map((c) => c.name),
        ),
      );
    if (why) return { status: old, rejected: why };
  }
  const out: PodStatus = { ...next };
  if ((old.phase === "Succeeded" || old.phase === "Failed") && out.phase !== old.phase) {
    out.phase = old.phase;
    if (old.reason) out.reason = old.reason;
    else delete out.reason;
    if (old.message) out.message = old.message;
    else delete out.message;
  }
  if (old.startTime) out.startTime = old.startTime;
  if (out.conditions) {
    out.conditions = out.conditions.map((c) => {
      const o = old.conditions?.find((x) => x.type === c.type);
      if (o && o.status === c.status && o.lastTransitionTime)
        return { ...c, lastTransitionTime: o.lastTransitionTime };
      return c;
    });
  }
  return { status: out };
}

/** {@link mergeStatusChecked} without the refusal reason: the status to keep. */
export function mergeStatus(pod: Pod, old: PodStatus | undefined, next: PodStatus): PodStatus {
  return mergeStatusChecked(pod, old, next).status;
}
