/**
 * A pod's QoS class (pkg/apis/core/v1/helper/qos `ComputePodQOS`) and the
 * oom_score_adj kubelet derives from it (pkg/kubelet/qos/policy.go).
 *
 * @module
 */
import type { Pod } from "@worknode/core";
import type { Container } from "./pod-spec.js";
import { appContainers, initContainers, isRestartableInitContainer } from "./pod-spec.js";
import { parseQuantity, Quantity } from "./quantity.js";
import { BEST_EFFORT_OOM_SCORE_ADJ, containerRequest, GUARANTEED_OOM_SCORE_ADJ } from "./resources.js";

/** `status.qosClass` values. */
export type QosClass = "Guaranteed" | "Burstable" | "BestEffort";

const QOS_RESOURCES = ["cpu", "memory"] as const;

/**
 * The pod's QoS class: `BestEffort` when no container (init, sidecar or app) requests or
 * limits cpu or memory; `Guaranteed` when every container has cpu and memory
 * limits and the summed requests equal the summed limits; else `Burstable`.
 * Requests are defaulted from limits first, as the API server does. An existing
 * `status.qosClass` is not consulted: the class is computed from the spec.
 */
export function podQosClass(pod: Pod): QosClass {
  const requests = new Map<string, Quantity>();
  const limits = new Map<string, Quantity>();
  let guaranteed = true;
  for (const c of [...appContainers(pod), ...initContainers(pod)]) {
    for (const r of QOS_RESOURCES) {
      const req = containerRequest(c, r);
      if (req && req.cmp(Quantity.ZERO) > 0) requests.set(r, (requests.get(r) ?? Quantity.ZERO).add(req));
    }
    let limitsFound = 0;
    for (const r of QOS_RESOURCES) {
      const v = c.resources?.limits?.[r];
      const lim = v === undefined ? undefined : parseQuantity(v);
      if (lim && lim.cmp(Quantity.ZERO) > 0) {
        limitsFound++;
        limits.set(r, (limits.get(r) ?? Quantity.ZERO).add(lim));
      }
    }
    if (limitsFound !== QOS_RESOURCES.length) guaranteed = false;
  }
  if (requests.size === 0 && limits.size === 0) return "BestEffort";
  if (guaranteed) {
    for (const [r, req] of requests) {
      const lim = limits.get(r);
      if (lim?.cmp(req) !== 0) {
        guaranteed = false;
        break;
      }
    }
  }
  return guaranteed && requests.size === limits.size ? "Guaranteed" : "Burstable";
}

/** kubelet's `isSidecarContainer`: `restartPolicy: Always` and named among the pod's init containers. */
function isSidecarOf(pod: Pod, container: Container): boolean {
  return isRestartableInitContainer(container) && initContainers(pod).some((c) => c.name === container.name);
}

/**
 * kubelet's `GetContainerOOMScoreAdjust`: -997 for Guaranteed and
 * `system-node-critical` pods, 1000 for BestEffort, and for Burstable
 * `1000 - 1000 * memoryRequest / memoryCapacity`, kept within [3, 999]. A sidecar
 * (restartable init container) gets at most the value of the app container with the
 * smallest memory request, so it is not OOM-killed before the apps it serves.
 *
 * @param memoryCapacityBytes the node's memory capacity
 */
export function containerOomScoreAdj(
  pod: Pod,
  container: Container,
  memoryCapacityBytes: number,
  qos = podQosClass(pod),
): number {
  if (pod.spec?.priorityClassName === "system-node-critical") return GUARANTEED_OOM_SCORE_ADJ;
  if (qos === "Guaranteed") return GUARANTEED_OOM_SCORE_ADJ;
  if (qos === "BestEffort") return BEST_EFFORT_OOM_SCORE_ADJ;
  const adjFor = (memRequest: number) =>
    memoryCapacityBytes > 0 ? 1000 - Math.trunc((1000 * memRequest) / memoryCapacityBytes) : 1000;
  let adj = adjFor(containerRequest(container, "memory")?.value() ?? 0);
  if (isSidecarOf(pod, container)) {
    // A sidecar is killed no earlier than the app container with the smallest memory request.
    const apps = appContainers(pod);
    if (apps.length > 0) {
      const minAppRequest = Math.min(...apps.map((c) => containerRequest(c, "memory")?.value() ?? 0));
      adj = Math.min(adj, adjFor(minAppRequest));
    }
  }
  if (adj < 1000 + GUARANTEED_OOM_SCORE_ADJ) return 1000 + GUARANTEED_OOM_SCORE_ADJ;
  if (adj === BEST_EFFORT_OOM_SCORE_ADJ) return adj - 1;
  return adj;
}
