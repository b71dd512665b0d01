/**
 * {@link CriSummaryProvider}: gathers what the Summary API needs — `/proc`
 * and `statfs` for the node, and the CRI's `ListPodSandbox`,
 * `ListContainers`, `ListContainerStats`, `ListPodSandboxStats` (when the
 * runtime can answer it; pod CPU and memory are otherwise summed over the
 * containers) and `ImageFsInfo` — and builds the Summary with
 * {@link buildSummary}, keeping the previous CPU readings for usage rates.
 *
 * @module
 */
import { type Clock, realClock } from "@worknode/core";
import { type CriClient, CriUnimplementedError, type PodSandboxStats } from "@worknode/cri";
import { type CpuReading, filesystemUsage, nodeStatsFromSample, readNodeSample } from "./node-stats.js";
import { buildSummary } from "./stats-summary.js";
import type { FsStats, Summary } from "./stats-types.js";

/** Serves the Summary API. */
export interface SummaryProvider {
  /** The current summary. */
  summary(): Promise<Summary>;
}

/** Options of {@link CriSummaryProvider}. */
export interface CriSummaryProviderOptions {
  readonly client: CriClient;
  readonly nodeName: string;
  /** The kubelet's root directory (the node `fs` is its filesystem). */
  readonly rootDir: string;
  /** Where proc is mounted; default `/proc`. */
  readonly procDir?: string;
  readonly clock?: Clock;
}

/** {@link SummaryProvider} over CRI stats and `/proc` (see the module notes). */
export class CriSummaryProvider implements SummaryProvider {
  private readonly clock: Clock;
  private previousCpu = new Map<string, CpuReading>();
  private previousNodeCpu: CpuReading | undefined;
  private sandboxStatsUnsupported = false;

  constructor(private readonly options: CriSummaryProviderOptions) {
    this.clock = options.clock ?? realClock;
  }

  async summary(): Promise<Summary> {
    const { client } = this.options;
    const [sample, sandboxes, containers, containerStats, sandboxStats, imageFs] = await Promise.all([
      readNodeSample(this.options.rootDir, this.options.procDir, this.clock.now()),
      client.runtime.listPodSandbox({}),
      client.runtime.listContainers({}),
      client.runtime.listContainerStats({}),
      this.listSandboxStats(),
      this.imageFs(),
    ]);
    const node = nodeStatsFromSample(this.options.nodeName, sample, this.previousNodeCpu);
    this.previousNodeCpu = {
      timestampMs: sample.timestampMs,
      usageCoreNanoSeconds: sample.cpuUsageCoreNanoSeconds,
    };
    if (imageFs) node.runtime = { imageFs };
    const { summary, cpuReadings } = buildSummary({
      node,
      ...(imageFs ? { imageFs } : {}),
      sandboxes: sandboxes.items,
      containers: containers.containers,
      containerStats: containerStats.stats,
      ...(sandboxStats ? { sandboxStats } : {}),
      previousCpu: this.previousCpu,
    });
    this.previousCpu = cpuReadings;
    return summary;
  }

  private async listSandboxStats(): Promise<PodSandboxStats[] | undefined> {
    if (this.sandboxStatsUnsupported) return undefined;
    try {
      return (await this.options.client.runtime.listPodSandboxStats({})).stats;
    } catch (err) {
      // Unimplemented: never ask again. Other failures (containerd cannot measure a sandbox
      // without a cgroup parent, for instance): this scrape sums the containers instead.
      if (err instanceof CriUnimplementedError) this.sandboxStatsUnsupported = true;
      return undefined;
    }
  }

  private async imageFs(): Promise<FsStats | undefined> {
    const info = await this.options.client.image
      .imageFsInfo({})
      .then((r) => r.imageFilesystems[0])
      .catch(() => undefined);
    if (!info) return undefined;
    const fs = info.fsId?.mountpoint ? await filesystemUsage(info.fsId.mountpoint) : undefined;
    return {
      time: new Date(Number(info.timestamp / 1_000_000n) || this.clock.now()).toISOString(),
      ...(fs?.availableBytes !== undefined ? { availableBytes: fs.availableBytes } : {}),
      ...(fs?.capacityBytes !== undefined ? { capacityBytes: fs.capacityBytes } : {}),
      ...(info.usedBytes ? { usedBytes: Number(info.usedBytes.value) } : {}),
      ...(fs?.inodesFree !== undefined ? { inodesFree: fs.inodesFree } : {}),
      ...(fs?.inodes !== undefined ? { inodes: fs.inodes } : {}),
      ...(info.inodesUsed ? { inodesUsed: Number(info.inodesUsed.value) } : {}),
    };
  }
}
