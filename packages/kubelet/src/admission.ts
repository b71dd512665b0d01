/**
 * Pod admission as kubelet does it before running a pod
 * (pkg/kubelet/lifecycle/predicate.go, scheduler `AdmissionCheck`): the node's
 * pod count and allocatable CPU and memory, node name, node selector / required
 * node affinity, and host port conflicts. Only the first failure is reported,
 * with kubelet's reason (`OutOfpods`, `OutOfcpu`, `OutOfmemory`, `NodeName`,
 * `NodeAffinity`, `NodePorts`) and message.
 *
 * A rejected pod gets status {@link rejectedPodStatus}; the other pods keep running.
 *
 * @module
 */
import type { Pod } from "@worknode/core";
import { appContainers, formatTimestamp, initContainers, type PodStatus } from "./pod-spec.js";
import { podQosClass } from "./qos.js";
import { podRequests } from "./resources.js";

/** kubelet's default `maxPods`. */
export const DEFAULT_MAX_PODS = 110;

/** The node as admission sees it. */
export interface AdmissionNode {
  /** Maximum pods on the node (default 110). */
  readonly maxPods?: number;
  /** Allocatable CPU (millicores) and memory (bytes). */
  readonly allocatable: { readonly cpuMilli: number; readonly memoryBytes: number };
  /** Node name; checked against `spec.nodeName` and node affinity `matchFields` when set. */
  readonly name?: string;
  /** Node labels, for `nodeSelector` and node affinity. */
  readonly labels?: Readonly<Record<string, string>>;
}

/** Result of {@link admitPod}. */
export type AdmitResult =
  | { readonly admit: true }
  | { readonly admit: false; readonly reason: string; readonly message: string };

type Requirement = { key: string; operator: string; values?: string[] };

function matchRequirement(r: Requirement, value: string | undefined): boolean {
  const values = r.values ?? [];
  switch (r.operator) {
    case "In":
      return value !== undefined && values.includes(value);
    case "NotIn":
      return value === undefined || !values.includes(value);
    case "Exists":
      return value !== undefined;
    case "DoesNotExist":
      return value === undefined;
    case "Gt":
    case "Lt": {
      if (
        value === undefined ||
        values.length !== 1 ||
        !/^-?\d+$/.test(value) ||
        !/^-?\d+$/.test(values[0] ?? "")
      )
        return false;
      const a = Number(value);
      const b = Number(values[0]);
      return r.operator === "Gt" ? a > b : a < b;
    }
    default:
      return false;
  }
}

/** Whether the node satisfies the pod's `nodeSelector` and required node affinity. */
export function matchesNodeSelectorAndAffinity(pod: Pod, node: AdmissionNode): boolean {
  const labels = node.labels ?? {};
  for (const [k, v] of Object.entries(pod.spec?.nodeSelector ?? {})) if (labels[k] !== v) return false;
  const terms =
    pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  if (!terms) return true;
  // Terms are ORed; an empty term matches nothing; requirements inside a term are ANDed.
  return terms.some((t) => {
    const exprs = t.matchExpressions ?? [];
    const fields = t.matchFields ?? [];
    if (exprs.length === 0 && fields.length === 0) return false;
    return (
      exprs.every((e) => matchRequirement(e, labels[e.key])) &&
      fields.every((f) => matchRequirement(f, f.key === "metadata.name" ? node.name : undefined))
    );
  });
}

interface HostPortUse {
  protocol: string;
  port: number;
  ip: string;
}

function hostPorts(pod: Pod): HostPortUse[] {
  const out: HostPortUse[] = [];
  for (const c of [...initContainers(pod), ...appContainers(pod)]) {
    for (const p of c.ports ?? []) {
      if (!p.hostPort) continue;
      out.push({ protocol: p.protocol ?? "TCP", port: p.hostPort, ip: p.hostIP || "0.0.0.0" });
    }
  }
  return out;
}

function portsConflict(a: HostPortUse, b: HostPortUse): boolean {
  if (a.protocol !== b.protocol || a.port !== b.port) return false;
  return a.ip === b.ip || a.ip === "0.0.0.0" || b.ip === "0.0.0.0";
}

/** kubelet's message for an insufficient resource. */
function insufficient(resource: string, requested: number, used: number, capacity: number): AdmitResult {
  return {
    admit: false,
    reason: `OutOf${resource}`,
    message: `Node didn't have enough resource: ${resource}, requested: ${requested}, used: ${used}, capacity: ${capacity}`,
  };
}

function predicateFailed(name: string, desc: string): AdmitResult {
  return { admit: false, reason: name, message: `Predicate ${name} failed: ${desc}` };
}

/**
 * Decides whether `pod` may run next to `runningPods` (the admitted, non-terminal
 * pods) on `node`. A pod's request is {@link podRequests} per resource:
 * `max(Σ app containers + Σ sidecars, max over init containers i of (request(i) + Σ sidecars
 * before i))` + overhead, for the pod and for each running pod alike; requests default to limits.
 */
export function admitPod(pod: Pod, runningPods: readonly Pod[], node: AdmissionNode): AdmitResult {
  const maxPods = node.maxPods ?? DEFAULT_MAX_PODS;
  if (runningPods.length + 1 > maxPods) return insufficient("pods", 1, runningPods.length, maxPods);
  const req = podRequests(pod);
  if (req.cpuMilli > 0 || req.memoryBytes > 0) {
    let usedCpu = 0;
    let usedMem = 0;
    for (const p of runningPods) {
      const r = podRequests(p);
      usedCpu += r.cpuMilli;
      usedMem += r.memoryBytes;
    }
    if (req.cpuMilli > 0 && req.cpuMilli > node.allocatable.cpuMilli - usedCpu) {
      return insufficient("cpu", req.cpuMilli, usedCpu, node.allocatable.cpuMilli);
    }
    if (req.memoryBytes > 0 && req.memoryBytes > node.allocatable.memoryBytes - usedMem) {
      return insufficient("memory", req.memoryBytes, usedMem, node.allocatable.memoryBytes);
    }
  }
  if (!matchesNodeSelectorAndAffinity(pod, node)) {
    return predicateFailed("NodeAffinity", "node(s) didn't match Pod's node affinity/selector");
  }
  const wantNode = pod.spec?.nodeName;
  if (wantNode && node.name !== undefined && wantNode !== node.name) {
    return predicateFailed("NodeName", "node(s) didn't match the requested node name");
  }
  const mine = hostPorts(pod);
  if (mine.length > 0) {
    const used = runningPods.flatMap(hostPorts);
    if (mine.some((a) => used.some((b) => portsConflict(a, b)))) {
      return predicateFailed("NodePorts", "node(s) didn't have free ports for the requested pod ports");
    }
  }
  return { admit: true };
}

/** The status kubelet gives a rejected pod (`rejectPod`): phase Failed, the reason, "Pod was rejected: <message>". */
export function rejectedPodStatus(
  pod: Pod,
  result: { reason: string; message: string },
  now?: number,
): PodStatus {
  return {
    phase: "Failed",
    reason: result.reason,
    message: `Pod was rejected: ${result.message}`,
    qosClass: podQosClass(pod),
    ...(now !== undefined ? { startTime: formatTimestamp(now) } : {}),
  };
}
