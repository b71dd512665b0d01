/**
 * The node's own numbers for the Summary API, read from `/proc` and
 * `statfs`: pure parsers of the proc files, {@link readNodeSample} doing the
 * reading, and {@link nodeStatsFromSample} turning a sample into `NodeStats`
 * the way cAdvisor's root container does (CPU from `/proc/stat`, memory
 * usage = total − free and working set = usage − inactive file pages from
 * `/proc/meminfo`, page faults from `/proc/vmstat`, interfaces from
 * `/proc/net/dev`, the default-route interface from `/proc/net/route`).
 *
 * @module
 */
import { readdir, readFile, statfs } from "node:fs/promises";
import type { FsStats, InterfaceStats, NodeStats } from "./stats-types.js";

/** Clock ticks per second of `/proc/stat` (`USER_HZ`, 100 on Linux). */
export const USER_HZ = 100;

/** Busy CPU time (user + nice + system + irq + softirq + steal) and boot time from `/proc/stat`. */
export function parseProcStat(text: string): { busyTicks: number; bootTimeSec: number | undefined } {
  let busyTicks = 0;
  let bootTimeSec: number | undefined;
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[0] === "cpu") {
      const n = f.slice(1).map(Number);
      // user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user)
      busyTicks = (n[0] ?? 0) + (n[1] ?? 0) + (n[2] ?? 0) + (n[5] ?? 0) + (n[6] ?? 0) + (n[7] ?? 0);
    } else if (f[0] === "btime") {
      bootTimeSec = Number(f[1]);
    }
  }
  return { busyTicks, bootTimeSec };
}

/** `/proc/meminfo` as bytes by field name. */
export function parseMeminfo(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([\w()]+):\s+(\d+)(?:\s+kB)?/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]) * (line.includes("kB") ? 1024 : 1));
  }
  return out;
}

/** `/proc/vmstat` (or any `name value` file) as numbers by name. */
export function parseKeyValues(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out.set(k, Number(v));
  }
  return out;
}

/** Interfaces of `/proc/net/dev` (loopback left out). */
export function parseNetDev(text: string): InterfaceStats[] {
  const out: InterfaceStats[] = [];
  for (const line of text.split("\n").slice(2)) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!m || m[1] === "lo") continue;
    const n = m[2]!.trim().split(/\s+/).map(Number);
    // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets errs …
    out.push({
      name: m[1]!,
      rxBytes: n[0] ?? 0,
      rxErrors: n[2] ?? 0,
      txBytes: n[8] ?? 0,
      txErrors: n[10] ?? 0,
    });
  }
  return out;
}

/** The interface of the IPv4 default route in `/proc/net/route`. */
export function parseDefaultRouteInterface(text: string): string | undefined {
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 2 && f[1] === "00000000") return f[0];
  }
  return undefined;
}

/** One reading of the node's numbers. */
export interface NodeSample {
  /** When it was read (ms since the epoch). */
  readonly timestampMs: number;
  /** Boot time (ms since the epoch). */
  readonly bootTimeMs: number;
  /** Cumulative busy CPU time of all cores, in nanoseconds. */
  readonly cpuUsageCoreNanoSeconds: number;
  /** `/proc/meminfo` fields in bytes. */
  readonly meminfo: ReadonlyMap<string, number>;
  /** `/proc/vmstat` counters. */
  readonly vmstat: ReadonlyMap<string, number>;
  readonly interfaces: readonly InterfaceStats[];
  readonly defaultInterface?: string;
  /** The filesystem holding the kubelet's root directory. */
  readonly rootFs?: Omit<FsStats, "time">;
  /** `kernel.pid_max`. */
  readonly maxPid?: number;
  /** Number of processes. */
  readonly processes?: number;
}

/** The previous CPU reading, for the usage rate. */
export interface CpuReading {
  readonly timestampMs: number;
  readonly usageCoreNanoSeconds: number;
}

/** Average nanocores between two cumulative readings (undefined without a usable previous one). */
export function usageNanoCores(prev: CpuReading | undefined, cur: CpuReading): number | undefined {
  if (!prev) return undefined;
  const dtNs = (cur.timestampMs - prev.timestampMs) * 1e6;
  const du = cur.usageCoreNanoSeconds - prev.usageCoreNanoSeconds;
  if (dtNs <= 0 || du < 0) return undefined;
  return Math.round((du / dtNs) * 1e9);
}

/** `NodeStats` from a sample (pure). `prevCpu` gives `usageNanoCores`. */
export function nodeStatsFromSample(nodeName: string, s: NodeSample, prevCpu?: CpuReading): NodeStats {
  const time = new Date(s.timestampMs).toISOString();
  const mem = s.meminfo;
  const total = mem.get("MemTotal") ?? 0;
  const usage = Math.max(0, total - (mem.get("MemFree") ?? 0));
  const workingSet = Math.max(0, usage - (mem.get("Inactive(file)") ?? 0));
  const nanoCores = usageNanoCores(prevCpu, {
    timestampMs: s.timestampMs,
    usageCoreNanoSeconds: s.cpuUsageCoreNanoSeconds,
  });
  const def = s.interfaces.find((i) => i.name === s.defaultInterface) ?? s.interfaces[0];
  const swapTotal = mem.get("SwapTotal");
  const swapFree = mem.get("SwapFree");
  return {
    nodeName,
    startTime: new Date(s.bootTimeMs).toISOString(),
    cpu: {
      time,
      ...(nanoCores !== undefined ? { usageNanoCores: nanoCores } : {}),
      usageCoreNanoSeconds: s.cpuUsageCoreNanoSeconds,
    },
    memory: {
      time,
      availableBytes: Math.max(0, total - workingSet),
      usageBytes: usage,
      workingSetBytes: workingSet,
      rssBytes: mem.get("AnonPages") ?? 0,
      pageFaults: s.vmstat.get("pgfault") ?? 0,
      majorPageFaults: s.vmstat.get("pgmajfault") ?? 0,
    },
    ...(def ? { network: { time, ...def, interfaces: s.interfaces.map((i) => ({ ...i })) } } : {}),
    ...(s.rootFs ? { fs: { time, ...s.rootFs } } : {}),
    ...(s.maxPid !== undefined || s.processes !== undefined
      ? {
          rlimit: {
            time,
            ...(s.maxPid !== undefined ? { maxpid: s.maxPid } : {}),
            ...(s.processes !== undefined ? { curproc: s.processes } : {}),
          },
        }
      : {}),
    ...(swapTotal !== undefined && swapFree !== undefined
      ? { swap: { time, swapAvailableBytes: swapFree, swapUsageBytes: Math.max(0, swapTotal - swapFree) } }
      : {}),
  };
}

/** Capacity and usage of the filesystem holding `path` (undefined when it cannot be read). */
export async function filesystemUsage(path: string): Promise<Omit<FsStats, "time"> | undefined> {
  try {
    const s = await statfs(path);
    const capacity = s.blocks * s.bsize;
    const available = s.bavail * s.bsize;
    return {
      availableBytes: available,
      capacityBytes: capacity,
      usedBytes: Math.max(0, (s.blocks - s.bfree) * s.bsize),
      inodesFree: s.ffree,
      inodes: s.files,
      inodesUsed: Math.max(0, s.files - s.ffree),
    };
  } catch {
    return undefined;
  }
}

async function readText(path: string): Promise<string> {
  return readFile(path, "utf8").catch(() => "");
}

/** Reads a {@link NodeSample} from `/proc` (under `procDir`) and `statfs(rootDir)`. */
export async function readNodeSample(
  rootDir: string,
  procDir = "/proc",
  now = Date.now(),
): Promise<NodeSample> {
  const [stat, meminfo, vmstat, netDev, route, pidMax, rootFs, entries] = await Promise.all([
    readText(`${procDir}/stat`),
    readText(`${procDir}/meminfo`),
    readText(`${procDir}/vmstat`),
    readText(`${procDir}/net/dev`),
    readText(`${procDir}/net/route`),
    readText(`${procDir}/sys/kernel/pid_max`),
    filesystemUsage(rootDir),
    readdir(procDir).catch(() => [] as string[]),
  ]);
  const { busyTicks, bootTimeSec } = parseProcStat(stat);
  const maxPid = Number(pidMax.trim());
  const defaultInterface = parseDefaultRouteInterface(route);
  return {
    timestampMs: now,
    bootTimeMs: (bootTimeSec ?? 0) * 1000,
    cpuUsageCoreNanoSeconds: Math.round((busyTicks * 1e9) / USER_HZ),
    meminfo: parseMeminfo(meminfo),
    vmstat: parseKeyValues(vmstat),
    interfaces: parseNetDev(netDev),
    ...(defaultInterface ? { defaultInterface } : {}),
    ...(rootFs ? { rootFs } : {}),
    ...(Number.isFinite(maxPid) && maxPid > 0 ? { maxPid } : {}),
    processes: entries.filter((e) => /^\d+$/.test(e)).length,
  };
}
