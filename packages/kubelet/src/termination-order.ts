/**
 * The order in which a pod's containers stop when the pod is killed, as kubelet's
 * `terminationOrdering` (pkg/kubelet/kuberuntime/kuberuntime_termination_order.go,
 * KEP-753): app containers stop at once (in parallel); each sidecar (restartable
 * init container) waits for every app container and every sidecar declared after
 * it, so sidecars stop in reverse order of their declaration after the apps.
 *
 * Pure: the runtime layer (`killPodRuntime`) waits on these prerequisites, each
 * wait bounded by what is left of the container's grace period.
 *
 * @module
 */
import type { Pod } from "@worknode/core";
import { appContainers, initContainers, isRestartableInitContainer } from "./pod-spec.js";

/**
 * For each live sidecar of `pod` (a name in `live`), the live containers it must
 * wait for before it is stopped: the live app containers, then the live sidecars
 * declared after it (nearest first). Containers not in the result stop at once.
 *
 * @param live names of the containers being stopped (running or in an unknown state)
 */
export function terminationPrerequisites(pod: Pod, live: ReadonlySet<string>): Map<string, string[]> {
  const apps = appContainers(pod)
    .map((c) => c.name)
    .filter((n) => live.has(n));
  const out = new Map<string, string[]>();
  const laterSidecars: string[] = [];
  const inits = initContainers(pod);
  for (let i = inits.length - 1; i >= 0; i--) {
    const c = inits[i];
    if (!c || !isRestartableInitContainer(c)) continue;
    if (live.has(c.name)) out.set(c.name, [...apps, ...laterSidecars]);
    if (live.has(c.name)) laterSidecars.unshift(c.name);
  }
  return out;
}
