/**
 * Node status updates (kubelet's `syncNodeStatus`): every `nodeStatusUpdateFrequency`
 * (10 s) compute the status (conditions, addresses, capacity, allocatable, node info)
 * and PATCH `nodes/<name>/status` with a strategic merge patch only when something
 * changed or `nodeStatusReportFrequency` (5 min) has passed since the last post.
 * {@link NodeStatusUpdater.requestUpdate} asks for an immediate computation.
 *
 * @module
 */
import {
  AbortedError,
  type Clock,
  describeError,
  type KubeApiClient,
  type Logger,
  type Node,
  realClock,
  silentLogger,
} from "@worknode/core";
import {
  computeNodeConditions,
  type NodeHealth,
  type PostDecision,
  shouldPostNodeStatus,
} from "./conditions.js";
import {
  DEFAULT_NODE_STATUS_REPORT_FREQUENCY_MS,
  DEFAULT_NODE_STATUS_UPDATE_FREQUENCY_MS,
} from "./constants.js";
import type { NodeStatus } from "./node-builder.js";
import { nodePath } from "./registrar.js";

/** Options of a {@link NodeStatusUpdater}. */
export interface NodeStatusUpdaterOptions {
  /** API client authenticated as the node. */
  readonly api: KubeApiClient;
  /** The node name. */
  readonly nodeName: string;
  /** The node's health now (runtime, PLEG, pressure). */
  readonly health: () => Promise<NodeHealth>;
  /** The status fields besides conditions (addresses, capacity, allocatable, nodeInfo, daemonEndpoints). */
  readonly status: () => Promise<NodeStatus>;
  /** `nodeStatusUpdateFrequency`; default 10 s. */
  readonly updateFrequencyMs?: number;
  /** `nodeStatusReportFrequency`; default 5 min. */
  readonly reportFrequencyMs?: number;
  /** Clock; default the real clock. */
  readonly clock?: Clock;
  /** Logger; default silent. */
  readonly logger?: Logger;
}

/** The status fields the kubelet owns, taken from a full status. */
export function kubeletOwnedStatus(status: NodeStatus | undefined): NodeStatus | undefined {
  if (!status) return undefined;
  const { addresses, capacity, allocatable, nodeInfo, daemonEndpoints, conditions } = status;
  return { addresses, capacity, allocatable, nodeInfo, daemonEndpoints, conditions };
}

/**
 * The strategic merge patch of `nodes/<name>/status` that posts `status`: conditions
 * merge by type; the address list is replaced as a whole (its merge key `type` is not
 * unique when a node has several InternalIPs).
 */
export function nodeStatusPatch(status: NodeStatus): { status: Record<string, unknown> } {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(status)) {
    if (value === undefined) continue;
    out[key] = key === "addresses" ? [{ $patch: "replace" }, ...(value as unknown[])] : value;
  }
  return { status: out };
}

/** Posts the node's status; see the module notes. */
export class NodeStatusUpdater {
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly updateFrequencyMs: number;
  private readonly reportFrequencyMs: number;
  private lastPosted: NodeStatus | undefined;
  private lastPostMs: number | undefined;
  private controller: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private wakeRequested = false;

  constructor(private readonly options: NodeStatusUpdaterOptions) {
    this.clock = options.clock ?? realClock;
    this.logger = options.logger ?? silentLogger();
    this.updateFrequencyMs = options.updateFrequencyMs ?? DEFAULT_NODE_STATUS_UPDATE_FREQUENCY_MS;
    this.reportFrequencyMs = options.reportFrequencyMs ?? DEFAULT_NODE_STATUS_REPORT_FREQUENCY_MS;
  }

  /** The status as last posted (or as read from the Node given to {@link start}). */
  get status(): NodeStatus | undefined {
    return this.lastPosted;
  }

  /**
   * Computes the status once and posts it when needed.
   *
   * @returns why it was (or was not) posted
   * @throws ApiStatusError / UnavailableError when posting fails
   */
  async sync(signal?: AbortSignal): Promise<PostDecision> {
    const nowMs = this.clock.now();
    const [health, base] = await Promise.all([this.options.health(), this.options.status()]);
    const desired: NodeStatus = {
      ...base,
      conditions: computeNodeConditions(this.lastPosted?.conditions, health, nowMs),
    };
    const decision = shouldPostNodeStatus({
      lastPosted: this.lastPosted,
      desired,
      lastPostMs: this.lastPostMs,
      nowMs,
      reportFrequencyMs: this.reportFrequencyMs,
    });
    if (decision === "unchanged") return decision;
    const updated = await this.options.api.requestJson<Node>(
      "PATCH",
      `${nodePath(this.options.nodeName)}/status`,
      {
        body: nodeStatusPatch(desired),
        contentType: "application/strategic-merge-patch+json",
        signal,
      },
    );
    this.lastPosted = desired;
    this.lastPostMs = nowMs;
    const ready = desired.conditions?.find((c) => c.type === "Ready");
    this.logger.debug(
      {
        node: this.options.nodeName,
        decision,
        ready: ready?.status,
        resourceVersion: updated?.metadata?.resourceVersion,
      },
      "posted node status",
    );
    return decision;
  }

  /**
   * Starts the periodic updates; `initial` is the Node as registered, whose conditions'
   * transition times are carried on. Idempotent.
   */
  start(initial?: Node): void {
    if (this.loop) return;
    if (initial && !this.lastPosted) {
      // Posted by someone (a previous kubelet, the node lifecycle controller): compare
      // against it, but post at least once now.
      this.lastPosted = kubeletOwnedStatus(initial.status);
      this.lastPostMs = undefined;
    }
    const controller = new AbortController();
    this.controller = controller;
    this.loop = this.run(controller.signal);
  }

  /** Asks for an immediate status computation (and post, when something changed). */
  requestUpdate(): void {
    this.wakeRequested = true;
    this.wake?.();
  }

  /** Stops the updates (nothing is removed from the API server). */
  async stop(): Promise<void> {
    this.controller?.abort(new AbortedError("node status updater stopped"));
    this.wake?.();
    await this.loop;
    this.loop = undefined;
    this.controller = undefined;
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      this.wakeRequested = false;
      try {
        await this.sync(signal);
      } catch (err) {
        if (signal.aborted) return;
        this.logger.warn(
          { node: this.options.nodeName, error: describeError(err) },
          "error updating node status, will retry",
        );
      }
      if (this.wakeRequested) continue;
      await new Promise<void>((resolve) => {
        const timer = this.clock.setTimeout(() => resolve(), this.updateFrequencyMs);
        this.wake = () => {
          timer.cancel();
          resolve();
        };
      });
      this.wake = undefined;
    }
  }
}
