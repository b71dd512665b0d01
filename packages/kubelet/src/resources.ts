/**
 * Container and pod resources as kubelet computes them: defaulted requests,
 * the pod's effective requests and limits (init and sidecar containers included,
 * as component-helpers' `PodRequests` / `PodLimits`), and the CRI Linux
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
import { appContainers, initContainers, isRestartableInitContainer } from "./pod-spec.js";
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

/** Per-resource amounts of a container, `undefined` when the container does not declare the resource. */
interface DeclaredAmounts {
  readonly cpuMilli: number | undefined;
  readonly memoryBytes: number | undefined;
}

/** A per-resource running value that remembers whether any container declared the resource. */
class Amount {
  value = 0;
  declared = false;
  add(v: number | undefined): void {
    if (v === undefined) return;
    this.value += v;
    this.declared = true;
  }
  max(other: Amount): void {
    if (!other.declared) return;
    this.value = this.declared ? Math.max(this.value, other.value) : other.value;
    this.declared = true;
  }
  copy(): Amount {
    const a = new Amount();
    a.value = this.value;
    a.declared = this.declared;
    return a;
  }
}

/**
 * component-helpers' `AggregateContainerRequests` / `AggregateContainerLimits`
 * (sidecars included, KEP-753), per resource:
 *
 * `max( Σ app containers + Σ sidecars, max over init containers i of InitUse(i) )`
 *
 * where `InitUse(i) = amount(i) + Σ sidecars declared before i`; for a sidecar `i`
 * it is the sum of the sidecars up to and including `i` (those running once it started).
 */
function aggregateContainers(pod: Pod, amountOf: (c: Container) => DeclaredAmounts): [Amount, Amount] {
  const cpu = new Amount();
  const mem = new Amount();
  for (const c of appContainers(pod)) {
    const a = amountOf(c);
    cpu.add(a.cpuMilli);
    mem.add(a.memoryBytes);
  }
  const sidecarCpu = new Amount();
  const sidecarMem = new Amount();
  const initCpu = new Amount();
  const initMem = new Amount();
  for (const c of initContainers(pod)) {
    const a = amountOf(c);
    let useCpu: Amount;
    let useMem: Amount;
    if (isRestartableInitContainer(c)) {
      // A sidecar keeps running beside the app containers: it adds to the pod's sum …
      cpu.add(a.cpuMilli);
      mem.add(a.memoryBytes);
      // … and to what every later init container runs next to.
      sidecarCpu.add(a.cpuMilli);
      sidecarMem.add(a.memoryBytes);
      useCpu = sidecarCpu;
      useMem = sidecarMem;
    } else {
      useCpu = sidecarCpu.copy();
      useMem = sidecarMem.copy();
      useCpu.add(a.cpuMilli);
      useMem.add(a.memoryBytes);
    }
    initCpu.max(useCpu);
    initMem.max(useMem);
  }
  cpu.max(initCpu);
  mem.max(initMem);
  return [cpu, mem];
}

/**
 * The pod's effective request as the scheduler and kubelet admission count it
 * (component-helpers `PodRequests`, sidecars included), per resource:
 *
 * `max( Σ app containers + Σ sidecars, max over init containers i of (request(i) + Σ sidecars before i) )`
 *
 * plus the pod overhead. A sidecar's own "init" term is the sum of the sidecars up to
 * and including it. Requests default to limits.
 */
export function podRequests(pod: Pod): CpuMemory {
  const [cpu, mem] = aggregateContainers(pod, (c) => containerRequests(c));
  const overhead = pod.spec?.overhead;
  return {
    cpuMilli: cpu.value + (quantityOf(overhead, "cpu")?.milliValue() ?? 0),
    memoryBytes: mem.value + (quantityOf(overhead, "memory")?.value() ?? 0),
  };
}

/**
 * The pod's limits as kubelet computes them (component-helpers `PodLimits`,
 * sidecars included), per resource:
 *
 * `max( Σ app containers + Σ sidecars, max over init containers i of (limit(i) + Σ sidecar limits before i) )`
 *
 * A container without a limit of a resource adds nothing to that resource's sums, so
 * the result is only a real bound when every container declares the limit; 0 means no
 * container declared one. The pod overhead is added to a resource only when some
 * container declared a limit of it.
 */
export function podLimits(pod: Pod): CpuMemory {
  const [cpu, mem] = aggregateContainers(pod, (c) => ({
    cpuMilli: containerLimit(c, "cpu")?.milliValue(),
    memoryBytes: containerLimit(c, "memory")?.value(),
  }));
  const overhead = pod.spec?.overhead;
  return {
    cpuMilli: cpu.value + (cpu.declared ? (quantityOf(overhead, "cpu")?.milliValue() ?? 0) : 0),
    memoryBytes: mem.value + (mem.declared ? (quantityOf(overhead, "memory")?.value() ?? 0) : 0),
  };
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
