/**
 * kubelet's Summary API (`stats/v1alpha1`), served on `/stats/summary`, in
 * wire form: times are RFC 3339 strings, counters and sizes are numbers.
 *
 * @module
 */

/** `CPUStats`. */
export interface CpuStats {
  time: string;
  /** Average usage over the last sample window, in nanocores. */
  usageNanoCores?: number;
  /** Cumulative usage in core-nanoseconds. */
  usageCoreNanoSeconds?: number;
}

/** `MemoryStats`. */
export interface MemoryStats {
  time: string;
  availableBytes?: number;
  usageBytes?: number;
  workingSetBytes?: number;
  rssBytes?: number;
  pageFaults?: number;
  majorPageFaults?: number;
}

/** `InterfaceStats`. */
export interface InterfaceStats {
  name: string;
  rxBytes?: number;
  rxErrors?: number;
  txBytes?: number;
  txErrors?: number;
}

/** `NetworkStats`: the default interface inline, plus all interfaces. */
export interface NetworkStats extends InterfaceStats {
  time: string;
  interfaces?: InterfaceStats[];
}

/** `FsStats`. */
export interface FsStats {
  time: string;
  availableBytes?: number;
  capacityBytes?: number;
  usedBytes?: number;
  inodesFree?: number;
  inodes?: number;
  inodesUsed?: number;
}

/** `SwapStats`. */
export interface SwapStats {
  time: string;
  swapAvailableBytes?: number;
  swapUsageBytes?: number;
}

/** `ContainerStats`. */
export interface SummaryContainerStats {
  name: string;
  startTime: string;
  cpu?: CpuStats;
  memory?: MemoryStats;
  rootfs?: FsStats;
  logs?: FsStats;
  swap?: SwapStats;
}

/** `PodReference`. */
export interface PodReference {
  name: string;
  namespace: string;
  uid: string;
}

/** `PodStats`. */
export interface PodStats {
  podRef: PodReference;
  startTime: string;
  containers: SummaryContainerStats[];
  cpu?: CpuStats;
  memory?: MemoryStats;
  network?: NetworkStats;
  process_stats?: { process_count?: number };
  swap?: SwapStats;
}

/** `RlimitStats`. */
export interface RlimitStats {
  time: string;
  maxpid?: number;
  curproc?: number;
}

/** `NodeStats`. */
export interface NodeStats {
  nodeName: string;
  startTime: string;
  cpu?: CpuStats;
  memory?: MemoryStats;
  network?: NetworkStats;
  fs?: FsStats;
  runtime?: { imageFs?: FsStats; containerFs?: FsStats };
  rlimit?: RlimitStats;
  swap?: SwapStats;
}

/** `Summary`. */
export interface Summary {
  node: NodeStats;
  pods: PodStats[];
}
