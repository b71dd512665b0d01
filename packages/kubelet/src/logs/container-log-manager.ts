/**
 * kubelet's container log manager: every `monitorIntervalMs` (10 s) it looks at
 * the log file of each running kubelet-labelled container and, when the file
 * reached `containerLogMaxSize`, carries out {@link planLogRotation}'s plan:
 * deletes unused and excess rotated files, gzips the older rotated files,
 * renames the current file to `<log>.<timestamp>` and calls CRI
 * `ReopenContainerLog` so the runtime writes a new file at the old path (the
 * rename is undone when the runtime refuses). A log file that is missing is
 * reopened. Containers without the kubelet's labels are never touched.
 *
 * @module
 */
import { createReadStream, createWriteStream } from "node:fs";
import { readdir, rename, rm, stat } from "node:fs/promises";
import { posix } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import {
  type Clock,
  describeError,
  type Logger,
  realClock,
  silentLogger,
  type TimerHandle,
  WorknodeError,
} from "@worknode/core";
import { ContainerState, type CriClient } from "@worknode/cri";
import { parseContainerLabels } from "../labels.js";
import {
  COMPRESSED_LOG_SUFFIX,
  DEFAULT_CONTAINER_LOG_MONITOR_INTERVAL_MS,
  type LogRotationPlan,
  type LogRotationPolicy,
  logRotationPolicy,
  NOTHING_TO_DO,
  planLogRotation,
  TMP_LOG_SUFFIX,
} from "./log-rotation-plan.js";

/** A container log could not be rotated. */
export class LogRotationError extends WorknodeError {
  /** The container's log file. */
  readonly logPath: string;

  constructor(logPath: string, message: string, options?: { cause?: unknown }) {
    super("LOG_ROTATION", message, options);
    this.logPath = logPath;
  }
}

/** Options of {@link ContainerLogManager}. */
export interface ContainerLogManagerOptions {
  readonly client: CriClient;
  /** Rotation policy; default kubelet's 10Mi and 5 files (see {@link logRotationPolicy}). */
  readonly policy?: LogRotationPolicy;
  /** Check period; default 10 s. */
  readonly monitorIntervalMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** What one container's check did. */
export interface ContainerLogCheck {
  readonly containerId: string;
  readonly logPath: string;
  /** The plan that was carried out (nothing for a small file). */
  readonly plan: LogRotationPlan;
  /** True when the file was rotated and the runtime reopened the log. */
  readonly rotated: boolean;
}

/** gzips `file` to `<file>.gz` through `<file>.gz.tmp`, then deletes `file` (kubelet's `compressLog`). */
export async function compressLogFile(file: string): Promise<string> {
  const gz = `${file}${COMPRESSED_LOG_SUFFIX}`;
  const tmp = `${gz}${TMP_LOG_SUFFIX}`;
  try {
    await pipeline(createReadStream(file), createGzip(), createWriteStream(tmp, { mode: 0o640 }));
    await rename(tmp, gz);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await rm(file, { force: true });
  return gz;
}

/** Rotates the logs of running containers (see the module notes). */
export class ContainerLogManager {
  /** The policy in force. */
  readonly policy: LogRotationPolicy;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly intervalMs: number;
  private timer: TimerHandle | undefined;
  private inFlight: Promise<unknown> | undefined;
  private running = false;
  /** Log path by container ID (fixed for a container's life): one ContainerStatus per container. */
  private readonly logPaths = new Map<string, string>();

  constructor(private readonly options: ContainerLogManagerOptions) {
    this.policy = options.policy ?? logRotationPolicy();
    this.clock = options.clock ?? realClock;
    this.logger = (options.logger ?? silentLogger()).child({ component: "container-log-manager" });
    this.intervalMs = options.monitorIntervalMs ?? DEFAULT_CONTAINER_LOG_MONITOR_INTERVAL_MS;
  }

  /** Starts the periodic checks (the first after one interval). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule();
  }

  /** Stops the checks and waits for one in flight. */
  async stop(): Promise<void> {
    this.running = false;
    this.timer?.cancel();
    this.timer = undefined;
    await this.inFlight;
  }

  /**
   * Checks every running kubelet-labelled container once (one at a time, as
   * kubelet's single log worker does); a container that fails is logged and
   * skipped. Returns what was done per container.
   */
  async rotateLogs(): Promise<ContainerLogCheck[]> {
    const { containers } = await this.options.client.runtime.listContainers({
      filter: { state: { state: ContainerState.CONTAINER_RUNNING } },
    });
    const live = new Set(containers.map((c) => c.id));
    for (const id of this.logPaths.keys()) if (!live.has(id)) this.logPaths.delete(id);
    const out: ContainerLogCheck[] = [];
    for (const c of containers) {
      if (!parseContainerLabels(c.labels)) continue;
      try {
        const r = await this.checkContainer(c.id, this.logPaths.get(c.id));
        if (r) out.push(r);
      } catch (e) {
        this.logger.warn({ containerId: c.id, err: describeError(e) }, "failed to rotate container log");
      }
    }
    return out;
  }

  /**
   * Checks one running container's log file and rotates it when it is too big;
   * `knownLogPath` saves the ContainerStatus call that finds it. Undefined when
   * the container has no log path or is not running.
   * @throws LogRotationError when the runtime refuses to reopen the log
   */
  async checkContainer(containerId: string, knownLogPath?: string): Promise<ContainerLogCheck | undefined> {
    let logPath = knownLogPath ?? "";
    if (!logPath) {
      const { status } = await this.options.client.runtime.containerStatus({ containerId });
      logPath = status?.logPath ?? "";
      if (!status || !logPath || status.state !== ContainerState.CONTAINER_RUNNING) return undefined;
      this.logPaths.set(containerId, logPath);
    }
    const info = await stat(logPath).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") return undefined;
      throw e;
    });
    if (!info) {
      // The file was removed from under the runtime: have it write a new one.
      await this.reopen(containerId, logPath);
      return { containerId, logPath, plan: NOTHING_TO_DO, rotated: false };
    }
    const plan = planLogRotation({
      logPath,
      sizeBytes: info.size,
      siblings: info.size >= this.policy.maxSizeBytes ? await readdir(posix.dirname(logPath)) : [],
      policy: this.policy,
      now: this.clock.now(),
    });
    for (const f of [...plan.removeUnused, ...plan.removeExcess]) await rm(f, { force: true });
    for (const f of plan.compress) await compressLogFile(f);
    if (!plan.rotateTo) return { containerId, logPath, plan, rotated: false };
    await rename(logPath, plan.rotateTo);
    try {
      await this.reopen(containerId, logPath);
    } catch (e) {
      await rename(plan.rotateTo, logPath).catch(() => {});
      throw e;
    }
    this.logger.info({ containerId, logPath, rotatedTo: plan.rotateTo }, "rotated container log");
    return { containerId, logPath, plan, rotated: true };
  }

  private async reopen(containerId: string, logPath: string): Promise<void> {
    try {
      await this.options.client.runtime.reopenContainerLog({ containerId });
    } catch (e) {
      throw new LogRotationError(logPath, `ReopenContainerLog ${containerId}: ${describeError(e)}`, {
        cause: e,
      });
    }
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = this.clock.setTimeout(() => {
      const run = this.rotateLogs().catch((e: unknown) =>
        this.logger.warn({ err: describeError(e) }, "container log rotation failed"),
      );
      this.inFlight = run;
      void run.finally(() => {
        this.inFlight = undefined;
        this.schedule();
      });
    }, this.intervalMs);
  }
}
