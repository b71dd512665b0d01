/**
 * Graceful pod deletion as kubelet does it: the grace period a deleted pod is
 * killed with, the final status reported once its containers stopped (the
 * pod turns terminal, `Succeeded` or `Failed`), and when the API object may be
 * removed (kubelet's status manager `canBeDeleted`). Pure functions.
 *
 * @module
 */
import type { Pod } from "@worknode/core";
import { DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS, formatTimestamp, type PodStatus } from "../pod-spec.js";
import { generatePodStatus } from "../pod-status.js";
import { emptyRuntimePodStatus } from "../runtime-status.js";
import { isMirrorPod } from "./mirror-pod.js";

/** How one container instance ended, read from the runtime after it was killed. */
export interface ContainerExit {
  readonly exitCode: number;
  /** Runtime reason (`Completed`, `Error`, `OOMKilled`); default from the exit code. */
  readonly reason?: string;
  /** Epoch ms. */
  readonly finishedAt?: number;
  /** Epoch ms. */
  readonly startedAt?: number;
}

/** Inputs of {@link finalPodStatus} besides the pod. */
export interface FinalStatusContext {
  /** Current time, epoch ms. */
  readonly now: number;
  /** Node IPs, primary first. */
  readonly nodeIPs: readonly string[];
  /** Runtime name prefixed to container IDs; default `containerd`. */
  readonly runtimeName?: string;
  /** How the killed containers ended, by runtime container ID (without the `runtime://` prefix). */
  readonly exits?: ReadonlyMap<string, ContainerExit>;
}

/**
 * The grace period a deleted pod is killed with (kubelet's `killPod` on a
 * deletion): `metadata.deletionGracePeriodSeconds`, else
 * `spec.terminationGracePeriodSeconds`, else 30 s.
 */
export function deletionGracePeriodSeconds(pod: Pod): number {
  return (
    pod.metadata?.deletionGracePeriodSeconds ??
    pod.spec?.terminationGracePeriodSeconds ??
    DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS
  );
}

function bareId(containerID: string | undefined): string {
  if (!containerID) return "";
  const i = containerID.indexOf("://");
  return i >= 0 ? containerID.slice(i + 3) : containerID;
}

/** `last` with every container that was not terminated shown terminated, as it ended. */
function withContainersStopped(last: PodStatus, ctx: FinalStatusContext): PodStatus {
  const stop = (list: PodStatus["containerStatuses"]) =>
    list?.map((c) => {
      if (c.state?.terminated) return c;
      const exit = ctx.exits?.get(bareId(c.containerID));
      const startedAt = exit?.startedAt ? formatTimestamp(exit.startedAt) : c.state?.running?.startedAt;
      const terminated: NonNullable<NonNullable<typeof c.state>["terminated"]> = exit
        ? {
            exitCode: exit.exitCode,
            reason: exit.reason || (exit.exitCode === 0 ? "Completed" : "Error"),
            finishedAt: formatTimestamp(exit.finishedAt ?? ctx.now),
            ...(startedAt ? { startedAt } : {}),
            ...(c.containerID ? { containerID: c.containerID } : {}),
          }
        : {
            exitCode: 137,
            reason: "ContainerStatusUnknown",
            message: "The container could not be located when the pod was terminated",
          };
      return { ...c, ready: false, started: false, state: { terminated } };
    });
  const out: PodStatus = { ...last };
  if (last.containerStatuses) out.containerStatuses = stop(last.containerStatuses);
  if (last.initContainerStatuses) out.initContainerStatuses = stop(last.initContainerStatuses);
  return out;
}

/**
 * The status kubelet reports once a deleted pod's containers all stopped: every
 * container terminated (with the exit code the runtime saw, when known), the
 * phase terminal (`Succeeded` when every container exited 0, else `Failed`),
 * `Ready` / `ContainersReady` false. Foreign conditions and IPs are kept.
 *
 * @param last the latest status the kubelet generated (or the API's), if any
 */
export function finalPodStatus(pod: Pod, last: PodStatus | undefined, ctx: FinalStatusContext): PodStatus {
  const base = withContainersStopped(last ?? pod.status ?? {}, ctx);
  const meta = pod.metadata ?? {};
  return generatePodStatus(
    pod,
    emptyRuntimePodStatus(meta.uid ?? "", meta.name ?? "", meta.namespace ?? ""),
    {
      now: ctx.now,
      nodeIPs: ctx.nodeIPs,
      previous: base,
      podIsTerminal: true,
      ...(ctx.runtimeName ? { runtimeName: ctx.runtimeName } : {}),
    },
  );
}

/** True when no container of the status is running or may still start. */
export function noContainersRunning(status: PodStatus | undefined): boolean {
  const all = [...(status?.initContainerStatuses ?? []), ...(status?.containerStatuses ?? [])];
  return all.every((c) => !c.state?.running && !(c.state?.waiting && c.containerID));
}

/** What {@link canDeletePod} looks at. */
export interface DeletionState {
  /** The pod as the API server has it (status included). */
  readonly apiPod: Pod;
  /** The kubelet finished terminating the pod (containers stopped, sandbox and volumes gone). */
  readonly terminated: boolean;
  /** The final status the kubelet wants is what the API shows (no patch pending). */
  readonly statusSynced: boolean;
}

/**
 * kubelet's `canBeDeleted`: an API pod may be removed from the API server once
 * it is being deleted (`deletionTimestamp`), is not a mirror pod, the kubelet
 * finished terminating it and its final status reached the API with no
 * container shown running.
 */
export function canDeletePod(s: DeletionState): boolean {
  if (!s.apiPod.metadata?.deletionTimestamp) return false;
  if (isMirrorPod(s.apiPod)) return false;
  if (!s.terminated || !s.statusSynced) return false;
  return noContainersRunning(s.apiPod.status);
}
