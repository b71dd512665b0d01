/**
 * Stopping and removing everything the runtime runs for one pod: all its
 * containers killed in parallel with the grace period and preStop hooks (sidecars
 * last, in reverse order of declaration), then
 * its sandboxes stopped and, when asked, everything removed. Works from the
 * pod spec when the pod is known, and from the labels and annotations the
 * kubelet stored when it is not (orphans found after a restart).
 *
 * @module
 */
import type { Pod } from "@worknode/core";
import { type CriClient, isCriStatus } from "@worknode/cri";
import { parseContainerAnnotations } from "../labels.js";
import { appContainers, type Container, initContainers, terminationGracePeriodSeconds } from "../pod-spec.js";
import type { ContainerRuntimeStatus, RuntimePodStatus } from "../runtime-status.js";
import { terminationPrerequisites } from "../termination-order.js";
import type { ContainerKiller, KillTarget, LifecycleHandler } from "./container-killer.js";

/** kubelet's default grace period when nothing else is known (30 s). */
export const DEFAULT_GRACE_PERIOD_SECONDS = 30;

async function ignoreNotFound(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (!isCriStatus(e, "NOT_FOUND")) throw e;
  }
}

function specOf(pod: Pod | undefined, name: string): Container | undefined {
  if (!pod) return undefined;
  return [...appContainers(pod), ...initContainers(pod)].find((c) => c.name === name);
}

/** The kill target of one container instance, from the spec when known, else its stored annotations. */
export function killTargetOf(
  c: ContainerRuntimeStatus,
  pod: Pod | undefined,
  annotations: Readonly<Record<string, string>> | undefined,
  podIP: string | undefined,
  gracePeriodOverride?: number,
): KillTarget {
  const spec = specOf(pod, c.name);
  const ann = parseContainerAnnotations(annotations);
  const grace =
    gracePeriodOverride ??
    pod?.metadata?.deletionGracePeriodSeconds ??
    (pod ? terminationGracePeriodSeconds(pod) : undefined) ??
    ann.podDeletionGracePeriodSeconds ??
    ann.podTerminationGracePeriodSeconds ??
    DEFAULT_GRACE_PERIOD_SECONDS;
  const preStop = (spec?.lifecycle?.preStop ?? ann.preStopHandler) as LifecycleHandler | undefined;
  const ports = (spec?.ports ?? (Array.isArray(ann.ports) ? ann.ports : undefined)) as
    | { name?: string; containerPort: number }[]
    | undefined;
  return {
    id: c.id,
    name: c.name,
    gracePeriodSeconds: grace,
    ...(preStop && c.state === "running" ? { preStop } : {}),
    ...(podIP ? { podIP } : {}),
    ...(ports ? { ports } : {}),
  };
}

/** Options of {@link killPodRuntime}. */
export interface KillPodOptions {
  /** The pod, when known (spec preStop hooks and grace period). */
  readonly pod?: Pod;
  /** Container annotations by container ID (for orphans: stored grace period and preStop). */
  readonly annotations?: ReadonlyMap<string, Readonly<Record<string, string>>>;
  /** Grace period to use instead of the pod's. */
  readonly gracePeriodSeconds?: number;
  /** Also remove the containers and sandboxes. */
  readonly remove?: boolean;
}

/**
 * Kills every live container of the pod, stops its sandboxes and optionally removes
 * it all. Containers are killed in parallel (preStop hooks included), except that,
 * with the pod known, each sidecar (restartable init container) is stopped only
 * after the app containers and the sidecars declared after it stopped
 * ({@link terminationPrerequisites}), within its grace period.
 */
export async function killPodRuntime(
  client: CriClient,
  killer: ContainerKiller,
  status: RuntimePodStatus,
  opts: KillPodOptions = {},
): Promise<void> {
  const podIP = status.ips[0];
  const live = status.containers.filter((c) => c.state !== "exited");
  const prereqs = opts.pod
    ? terminationPrerequisites(opts.pod, new Set(live.map((c) => c.name)))
    : new Map<string, string[]>();
  const stopped = new Map<string, Promise<void>[]>();
  const kills = live.map((c) => {
    let resolve: () => void = () => {};
    const done = new Promise<void>((r) => {
      resolve = r;
    });
    stopped.set(c.name, [...(stopped.get(c.name) ?? []), done]);
    return { c, resolve };
  });
  await Promise.all(
    kills.map(async ({ c, resolve }) => {
      const waitFor = (prereqs.get(c.name) ?? []).flatMap((n) => stopped.get(n) ?? []);
      try {
        await killer.kill(
          killTargetOf(c, opts.pod, opts.annotations?.get(c.id), podIP, opts.gracePeriodSeconds),
          waitFor.length > 0 ? { after: Promise.all(waitFor) } : {},
        );
      } finally {
        resolve();
      }
    }),
  );
  for (const s of status.sandboxes) {
    if (s.state === "ready") await ignoreNotFound(client.runtime.stopPodSandbox({ podSandboxId: s.id }));
  }
  if (!opts.remove) return;
  for (const c of status.containers)
    await ignoreNotFound(client.runtime.removeContainer({ containerId: c.id }));
  for (const s of status.sandboxes) {
    await ignoreNotFound(client.runtime.stopPodSandbox({ podSandboxId: s.id }));
    await ignoreNotFound(client.runtime.removePodSandbox({ podSandboxId: s.id }));
  }
}
