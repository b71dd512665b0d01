/**
 * Building kubelet's Summary (`/stats/summary`) from CRI listings and stats
 * (pure), the way kubelet's CRI stats provider does:
 *
 * - one entry per pod (by the `io.kubernetes.pod.uid` label): its newest
 *   ready sandbox, else its newest sandbox; `startTime` is the sandbox's
 *   creation time;
 * - its running containers in that sandbox (terminated ones are left out),
 *   each with `startTime` = creation time, CPU, memory, swap and `rootfs`
 *   (writable layer usage, capacity from the image filesystem);
 * - pod CPU / memory / network / process count from `ListPodSandboxStats`
 *   when the runtime serves it, else CPU and memory summed over the
 *   containers;
 * - `usageNanoCores` from the runtime, else computed from the previous
 *   cumulative reading of the same container or sandbox.
 *
 * @module
 */
import type {
  Container,
  ContainerStats,
  CpuUsage,
  MemoryUsage,
  NetworkInterfaceUsage,
  NetworkUsage,
  PodSandbox,
  PodSandboxStats,
  SwapUsage,
  UInt64Value,
} from "@worknode/cri";
import { ContainerState, PodSandboxState } from "@worknode/cri";
import { LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID } from "../labels.js";
import { type CpuReading, usageNanoCores } from "./node-stats.js";
import type {
  CpuStats,
  FsStats,
  InterfaceStats,
  MemoryStats,
  NetworkStats,
  NodeStats,
  PodStats,
  Summary,
  SummaryContainerStats,
  SwapStats,
} from "./stats-types.js";

/** What {@link buildSummary} builds from. */
export interface SummaryInput {
  /** The node's own stats (see `nodeStatsFromSample`). */
  readonly node: NodeStats;
  /** The runtime's image filesystem (capacity of containers' `rootfs`). */
  readonly imageFs?: FsStats;
  /** `ListPodSandbox`. */
  readonly sandboxes: readonly PodSandbox[];
  /** `ListContainers`. */
  readonly containers: readonly Container[];
  /** `ListContainerStats`. */
  readonly containerStats: readonly ContainerStats[];
  /** `ListPodSandboxStats`, when the runtime serves it. */
  readonly sandboxStats?: readonly PodSandboxStats[];
  /** Previous cumulative CPU readings by container / sandbox ID (for `usageNanoCores`). */
  readonly previousCpu?: ReadonlyMap<string, CpuReading>;
}

/** The summary and the CPU readings to pass as `previousCpu` next time. */
export interface SummaryResult {
  readonly summary: Summary;
  readonly cpuReadings: Map<string, CpuReading>;
}

function num(v: UInt64Value | undefined): number | undefined {
  return v === undefined ? undefined : Number(v.value);
}

function nsToIso(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toISOString();
}

function defined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

function cpuStats(
  id: string,
  cpu: CpuUsage | undefined,
  prev: ReadonlyMap<string, CpuReading> | undefined,
  readings: Map<string, CpuReading>,
): CpuStats | undefined {
  if (!cpu || cpu.timestamp <= 0n) return undefined;
  const total = num(cpu.usageCoreNanoSeconds);
  let nano = num(cpu.usageNanoCores);
  const timestampMs = Number(cpu.timestamp) / 1e6;
  if (total !== undefined) {
    const cur = { timestampMs, usageCoreNanoSeconds: total };
    if (nano === undefined || nano === 0) nano = usageNanoCores(prev?.get(id), cur) ?? nano;
    readings.set(id, cur);
  }
  return defined({ time: nsToIso(cpu.timestamp), usageNanoCores: nano, usageCoreNanoSeconds: total });
}

function memoryStats(mem: MemoryUsage | undefined): MemoryStats | undefined {
  if (!mem || mem.timestamp <= 0n) return undefined;
  return defined({
    time: nsToIso(mem.timestamp),
    availableBytes: num(mem.availableBytes),
    usageBytes: num(mem.usageBytes),
    workingSetBytes: num(mem.workingSetBytes),
    rssBytes: num(mem.rssBytes),
    pageFaults: num(mem.pageFaults),
    majorPageFaults: num(mem.majorPageFaults),
  });
}

function swapStats(swap: SwapUsage | undefined): SwapStats | undefined {
  if (!swap || swap.timestamp <= 0n) return undefined;
  return defined({
    time: nsToIso(swap.timestamp),
    swapAvailableBytes: num(swap.swapAvailableBytes),
    swapUsageBytes: num(swap.swapUsageBytes),
  });
}

function interfaceStats(i: NetworkInterfaceUsage): InterfaceStats {
  return defined({
    name: i.name,
    rxBytes: num(i.rxBytes),
    rxErrors: num(i.rxErrors),
    txBytes: num(i.txBytes),
    txErrors: num(i.txErrors),
  });
}

function networkStats(net: NetworkUsage | undefined): NetworkStats | undefined {
  if (!net || net.timestamp <= 0n) return undefined;
  const def = net.defaultInterface ? interfaceStats(net.defaultInterface) : undefined;
  const all = [...(def ? [def] : []), ...net.interfaces.map(interfaceStats)];
  return { time: nsToIso(net.timestamp), ...(def ?? { name: "" }), interfaces: all };
}

function sum(values: readonly (number | undefined)[]): number | undefined {
  const present = values.filter((v): v is number => v !== undefined);
  return present.length === 0 ? undefined : present.reduce((a, b) => a + b, 0);
}

function latest(times: readonly string[]): string | undefined {
  return [...times].sort().at(-1);
}

/** Pod CPU and memory summed over its containers (when the runtime has no sandbox stats). */
function summedPodStats(containers: readonly SummaryContainerStats[]): Pick<PodStats, "cpu" | "memory"> {
  const cpus = containers.flatMap((c) => (c.cpu ? [c.cpu] : []));
  const mems = containers.flatMap((c) => (c.memory ? [c.memory] : []));
  const out: Pick<PodStats, "cpu" | "memory"> = {};
  const cpuTime = latest(cpus.map((c) => c.time));
  if (cpuTime) {
    out.cpu = defined({
      time: cpuTime,
      usageNanoCores: sum(cpus.map((c) => c.usageNanoCores)),
      usageCoreNanoSeconds: sum(cpus.map((c) => c.usageCoreNanoSeconds)),
    });
  }
  const memTime = latest(mems.map((m) => m.time));
  if (memTime) {
    out.memory = defined({
      time: memTime,
      usageBytes: sum(mems.map((m) => m.usageBytes)),
      workingSetBytes: sum(mems.map((m) => m.workingSetBytes)),
      rssBytes: sum(mems.map((m) => m.rssBytes)),
      pageFaults: sum(mems.map((m) => m.pageFaults)),
      majorPageFaults: sum(mems.map((m) => m.majorPageFaults)),
    });
  }
  return out;
}

function podUidOf(s: PodSandbox): string {
  return s.labels[LABEL_POD_UID] ?? s.metadata?.uid ?? "";
}

/** Each pod's sandbox to report: its newest ready one, else its newest. */
export function sandboxesToReport(sandboxes: readonly PodSandbox[]): PodSandbox[] {
  const byPod = new Map<string, PodSandbox>();
  for (const s of sandboxes) {
    const uid = podUidOf(s);
    if (!uid) continue;
    const cur = byPod.get(uid);
    const ready = s.state === PodSandboxState.SANDBOX_READY;
    const curReady = cur?.state === PodSandboxState.SANDBOX_READY;
    if (!cur || (ready && !curReady) || (ready === curReady && s.createdAt > cur.createdAt))
      byPod.set(uid, s);
  }
  return [...byPod.values()].sort((a, b) => podKey(a).localeCompare(podKey(b)));
}

function podKey(s: PodSandbox): string {
  return `${s.labels[LABEL_POD_NAMESPACE] ?? s.metadata?.namespace ?? ""}/${s.labels[LABEL_POD_NAME] ?? s.metadata?.name ?? ""}`;
}

/** Builds the Summary (see the module notes). */
export function buildSummary(input: SummaryInput): SummaryResult {
  const readings = new Map<string, CpuReading>();
  const statsById = new Map(input.containerStats.map((s) => [s.attributes?.id ?? "", s]));
  const sandboxStatsById = new Map((input.sandboxStats ?? []).map((s) => [s.attributes?.id ?? "", s]));
  const pods: PodStats[] = [];
  for (const sb of sandboxesToReport(input.sandboxes)) {
    const containers: SummaryContainerStats[] = input.containers
      .filter((c) => c.podSandboxId === sb.id && c.state === ContainerState.CONTAINER_RUNNING)
      .sort((a, b) => containerName(a).localeCompare(containerName(b)))
      .map((c) => {
        const st = statsById.get(c.id);
        const rootfs =
          st?.writableLayer && st.writableLayer.timestamp > 0n
            ? defined<FsStats>({
                time: nsToIso(st.writableLayer.timestamp),
                availableBytes: input.imageFs?.availableBytes,
                capacityBytes: input.imageFs?.capacityBytes,
                usedBytes: num(st.writableLayer.usedBytes),
                inodesFree: input.imageFs?.inodesFree,
                inodes: input.imageFs?.inodes,
                inodesUsed: num(st.writableLayer.inodesUsed),
              })
            : undefined;
        return defined<SummaryContainerStats>({
          name: containerName(c),
          startTime: nsToIso(c.createdAt),
          cpu: cpuStats(c.id, st?.cpu, input.previousCpu, readings),
          memory: memoryStats(st?.memory),
          rootfs,
          swap: swapStats(st?.swap),
        });
      });
    const linux = sandboxStatsById.get(sb.id)?.linux;
    const fromSandbox = linux
      ? defined<Pick<PodStats, "cpu" | "memory">>({
          cpu: cpuStats(sb.id, linux.cpu, input.previousCpu, readings),
          memory: memoryStats(linux.memory),
        })
      : {};
    const summed = summedPodStats(containers);
    const processCount = num(linux?.process?.processCount);
    pods.push(
      defined<PodStats>({
        podRef: {
          name: sb.labels[LABEL_POD_NAME] ?? sb.metadata?.name ?? "",
          namespace: sb.labels[LABEL_POD_NAMESPACE] ?? sb.metadata?.namespace ?? "",
          uid: podUidOf(sb),
        },
        startTime: nsToIso(sb.createdAt),
        containers,
        cpu: fromSandbox.cpu ?? summed.cpu,
        memory: fromSandbox.memory ?? summed.memory,
        network: networkStats(linux?.network),
        process_stats: processCount !== undefined ? { process_count: processCount } : undefined,
      }),
    );
  }
  return { summary: { node: input.node, pods }, cpuReadings: readings };
}

function containerName(c: Container): string {
  return c.labels[LABEL_CONTAINER_NAME] ?? c.metadata?.name ?? "";
}
