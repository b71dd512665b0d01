/**
 * Container and pod resources as kubelet computes them: defaulted requests,
 * the pod's effective request (init containers included), and the CRI Linux
 * resources of a container (cpu shares, CFS quota/period, memory limit,
 * oom_score_adj).
 *
 * Numbers follow pkg/kubelet/cm/helpers_linux.go and
 * pkg/kubelet/kuberuntime/kuberuntime_container_linux.go.
 *
 * @module
 */
import type { Pod } from "@worknode/core";
import type { Container } from "./pod-spec.js";
import { appContainers, initContainers } from "./pod-spec.js";
import { parseQuantity, type Quantity } from "./quantity.js";

/** Smallest cpu.shares value (the kernel's minimum), used for zero requests. */
export const MIN_CPU_SHARES = 2;
/** Largest cpu.shares value. */
export const MAX_CPU_SHARES = 262_144;
/** cpu.shares per whole CPU. */
export const SHARES_PER_CPU = 1024;
/** CFS period kubelet uses: 100 ms, in microseconds. */
export const CFS_QUOTA_PERIOD_US = 100_000;
/** Smallest CFS quota: 1 ms, in microseconds. */
export const MIN_CFS_QUOTA_US = 1_000;

/** oom_score_adj of Guaranteed pods and node-critical pods. */
export const GUARANTEED_OOM_SCORE_ADJ = -997;
/** oom_score_adj of BestEffort pods. */
export const BEST_EFFORT_OOM_SCORE_ADJ = 1000;

/** kubelet's `MilliCPUToShares`: `milli * 1024 / 1000`, clamped to [2, 262144]; 0 → 2. */
export function milliCpuToShares(milliCpu: number): number {
  if (milliCpu <= 0) return MIN_CPU_SHARES;
  const shares = Math.floor((milliCpu * SHARES_PER_CPU) / 1000);
  return Math.min(MAX_CPU_SHARES, Math.max(MIN_CPU_SHARES, shares));
}

/** kubelet's `milliCPUToQuota`: `milli * period / 1000`, at least 1000 µs; 0 (no limit) → 0. */
export function milliCpuToQuota(milliCpu: number, periodUs = CFS_QUOTA_PERIOD_US): number {
  if (milliCpu <= 0) return 0;
  return Math.max(MIN_CFS_QUOTA_US, Math.floor((milliCpu * periodUs) / 1000));
}

type ResourceMap = Readonly<Record<string, string>> | undefined;

function quantityOf(map: ResourceMap, name: string): Quantity | undefined {
  const v = map?.[name];
  return v === undefined ? undefined : parseQuantity(v);
}

/** A container's limit of `resource` (`cpu`, `memory`, …), when set. */
export function containerLimit(c: Container, resource: string): Quantity | undefined {
  return quantityOf(c.resources?.limits, resource);
}

/**
 * A container's request of `resource`, defaulted as the API server does:
 * a missing request takes the limit's value.
 */
export function containerRequest(c: Container, resource: string): Quantity | undefined {
  return quantityOf(c.resources?.requests, resource) ?? containerLimit(c, resource);
}

/** CPU (millicores) and memory (bytes) amounts. */
export interface CpuMemory {
  readonly cpuMilli: number;
  readonly memoryBytes: number;
}

/** A container's defaulted requests in millicores and bytes (0 when unset). */
export function containerRequests(c: Container): CpuMemory {
  return {
    cpuMilli: containerRequest(c, "cpu")?.milliValue() ?? 0,
    memoryBytes: containerRequest(c, "memory")?.value() ?? 0,
  };
}

/**
 * The pod's effective request as the scheduler and kubelet admission count it:
 * per resource, `max(sum of app containers, max of any init container)`, plus the
 * pod overhead.
 */
export function podRequests(pod: Pod): CpuMemory {
  let cpu = 0;
  let mem = 0;
  for (const c of appContainers(pod)) {
    const r = containerRequests(c);
    cpu += r.cpuMilli;
    mem += r.memoryBytes;
  }
  for (const c of initContainers(pod)) {
    const r = containerRequests(c);
    cpu = Math.max(cpu, r.cpuMilli);
    mem = Math.max(mem, r.memoryBytes);
  }
  const overhead = pod.spec?.overhead;
  cpu += quantityOf(overhead, "cpu")?.milliValue() ?? 0;
  mem += quantityOf(overhead, "memory")?.value() ?? 0;
  return { cpuMilli: cpu, memoryBytes: mem };
}

/** CRI `LinuxContainerResources` as plain numbers (the CRI client converts to int64). */
export interface LinuxContainerResourcesConfig {
  /** CFS period in µs (always 100000). */
  readonly cpuPeriod: number;
  /** CFS quota in µs; 0 = unlimited. */
  readonly cpuQuota: number;
  /** cpu.shares (relative weight). */
  readonly cpuShares: number;
  /** Memory limit in bytes; 0 = unlimited. */
  readonly memoryLimitInBytes: number;
  /** oom_score_adj of the container's processes. */
  readonly oomScoreAdj: number;
}

/**
 * The Linux resources kubelet gives a container (`calculateLinuxResources`):
 * shares from the cpu request (or the limit when only a limit is set), quota from
 * the cpu limit over a 100 ms period, memory limit from the memory limit.
 *
 * @param oomScoreAdj from {@link containerOomScoreAdj}
 */
export function linuxContainerResources(c: Container, oomScoreAdj: number): LinuxContainerResourcesConfig {
  const cpuLimit = containerLimit(c, "cpu")?.milliValue() ?? 0;
  const cpuRequest = quantityOf(c.resources?.requests, "cpu")?.milliValue() ?? 0;
  const sharesFrom = cpuRequest === 0 && cpuLimit !== 0 ? cpuLimit : cpuRequest;
  return {
    cpuPeriod: CFS_QUOTA_PERIOD_US,
    cpuQuota: milliCpuToQuota(cpuLimit),
    cpuShares: milliCpuToShares(sharesFrom),
    memoryLimitInBytes: Math.max(0, containerLimit(c, "memory")?.value() ?? 0),
    oomScoreAdj,
  };
}
