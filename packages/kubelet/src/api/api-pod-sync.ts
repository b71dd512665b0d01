/**
 * Connects a {@link Kubelet} to an API server for its pods: the
 * {@link ApiPodSource} (pods bound to the node), the {@link StatusManager}
 * (status patches, deletion of terminated pods) and the
 * {@link MirrorPodManager} (mirror pods of the static pods), wired through
 * the kubelet's options.
 *
 * @example
 * ```ts
 * const sync = new ApiPodSync({ kubeConfig, nodeName, nodeUid: () => node.uid, staticPods: [manifests] });
 * const kubelet = new Kubelet({ client, nodeName, ...sync.kubeletOptions([manifests]) });
 * await manifests.start();
 * await sync.start();
 * await kubelet.start();
 * ```
 *
 * @module
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { type Clock, KubeApiClient, type Logger, type ObjectSource, type Pod } from "@worknode/core";
import type { PodStatus } from "../pod-spec.js";
import { ApiPodSource } from "./api-pod-source.js";
import { MirrorPodManager } from "./mirror-pod-manager.js";
import { StatusManager } from "./status-manager.js";

/** Options of {@link ApiPodSync}. */
export interface ApiPodSyncOptions {
  /** The node's credentials (a `system:node:<name>` client certificate under NodeRestriction). */
  readonly kubeConfig: KubeConfig;
  /** API client for writes; default one built from `kubeConfig`. */
  readonly api?: KubeApiClient;
  /** The node's name. */
  readonly nodeName: string;
  /** The Node object's UID once registered (mirror pods' owner reference). */
  readonly nodeUid: () => string | undefined;
  /** Sources of static pods that get mirror pods. */
  readonly staticPods?: readonly ObjectSource<Pod>[];
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Status manager: delay letting bursts coalesce; default 20 ms. */
  readonly statusBatchDelayMs?: number;
  /** Retry backoff of failed writes (first delay; doubles up to 30 s); default 500 ms. */
  readonly retryInitialMs?: number;
  /** Period of the status and mirror re-checks; default 10 s. */
  readonly resyncIntervalMs?: number;
  /** Fail `start()` when the first pod list does not succeed within this time; default wait forever. */
  readonly syncTimeoutMs?: number;
}

/** The kubelet options {@link ApiPodSync.kubeletOptions} fills in. */
export interface ApiPodSyncKubeletOptions {
  readonly sources: readonly ObjectSource<Pod>[];
  readonly onStatus: (pod: Pod, status: PodStatus) => void;
  readonly onPodTerminated: (pod: Pod, finalStatus: PodStatus) => void;
}

/** API-server pods, statuses and mirror pods for a kubelet (see the module notes). */
export class ApiPodSync {
  /** The node's pods to run, from the API server. */
  readonly podSource: ApiPodSource;
  /** Writes statuses and deletes terminated pods. */
  readonly statusManager: StatusManager;
  /** Keeps the static pods' mirror pods. */
  readonly mirrorPods: MirrorPodManager;
  private started = false;

  constructor(options: ApiPodSyncOptions) {
    const api = options.api ?? new KubeApiClient(options.kubeConfig, { userAgent: "worknode-kubelet" });
    const common = {
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.retryInitialMs !== undefined ? { retryInitialMs: options.retryInitialMs } : {}),
      ...(options.resyncIntervalMs !== undefined ? { resyncIntervalMs: options.resyncIntervalMs } : {}),
    };
    this.podSource = new ApiPodSource({
      kubeConfig: options.kubeConfig,
      nodeName: options.nodeName,
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.syncTimeoutMs !== undefined ? { syncTimeoutMs: options.syncTimeoutMs } : {}),
    });
    this.statusManager = new StatusManager({
      api,
      apiPods: this.podSource.allPods,
      ...common,
      ...(options.statusBatchDelayMs !== undefined ? { batchDelayMs: options.statusBatchDelayMs } : {}),
    });
    this.mirrorPods = new MirrorPodManager({
      api,
      nodeName: options.nodeName,
      nodeUid: options.nodeUid,
      staticPods: options.staticPods ?? [],
      apiPods: this.podSource.allPods,
      ...common,
    });
  }

  /**
   * The kubelet options that connect it: `sources` (the given static sources plus
   * the API pod source), `onStatus` and `onPodTerminated`.
   */
  kubeletOptions(staticSources: readonly ObjectSource<Pod>[] = []): ApiPodSyncKubeletOptions {
    return {
      sources: [...staticSources, this.podSource],
      onStatus: (pod, status) => this.statusManager.setPodStatus(pod, status),
      onPodTerminated: (pod, status) => this.statusManager.podTerminated(pod, status),
    };
  }

  /** Starts the status and mirror managers and the pod informer; resolves once the first list arrived. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.statusManager.start();
    this.mirrorPods.start();
    await this.podSource.start();
  }

  /** Stops everything; idempotent. API objects stay as they are. */
  async stop(): Promise<void> {
    await Promise.all([this.mirrorPods.stop(), this.statusManager.stop()]);
    await this.podSource.stop();
  }
}
