/**
 * Node-aware proxying: the labels of this node's own `Node` object (its
 * `topology.kubernetes.io/zone` for topology hints and `trafficDistribution`),
 * watched through an {@link Informer} restricted to `metadata.name=<node>`, as
 * kube-proxy's node informer does.
 *
 * @module
 */
import type { KubeConfig } from "@kubernetes/client-node";
import type { Registry } from "prom-client";
import type { KubeObject } from "../kube/objects.js";
import { Informer } from "../sources/informer.js";
import { KUBE_RESOURCES } from "../sources/kube-client.js";
import { type Logger, silentLogger } from "../util/logging.js";

/** The part of a Node this watcher reads. */
interface NodeObject extends KubeObject {
  readonly metadata?: { name?: string; labels?: Record<string, string> } & KubeObject["metadata"];
}

/** Options of {@link NodeLabelsWatcher}. */
export interface NodeLabelsWatcherOptions {
  /** Where the API server is and how to authenticate. */
  readonly kubeConfig: KubeConfig;
  /** This node's name (`--hostname-override`). */
  readonly nodeName: string;
  /**
   * Called with the Node's labels whenever they change (`undefined` once the Node is
   * deleted), and once with the first state after the initial list.
   */
  readonly onLabels: (labels: Readonly<Record<string, string>> | undefined) => void;
  readonly logger?: Logger;
  /** Registry for the informer's metrics. */
  readonly metrics?: Registry;
  /** Give up the first list after this long; default the informer's. */
  readonly syncTimeoutMs?: number;
}

/** True when two label maps are equal (as kube-proxy's `reflect.DeepEqual` check). */
export function sameLabels(
  a: Readonly<Record<string, string>> | undefined,
  b: Readonly<Record<string, string>> | undefined,
): boolean {
  const ka = Object.keys(a ?? {});
  const kb = Object.keys(b ?? {});
  if (ka.length !== kb.length) return false;
  return ka.every((k) => a?.[k] === b?.[k]);
}

/**
 * Watches this node's `Node` object and reports its labels when they change. Start it
 * with {@link NodeLabelsWatcher.start} (resolves after the first list) and stop it with
 * {@link NodeLabelsWatcher.stop}.
 */
export class NodeLabelsWatcher {
  private readonly informer: Informer<NodeObject>;
  private labels: Readonly<Record<string, string>> | undefined;
  private reported = false;

  constructor(private readonly options: NodeLabelsWatcherOptions) {
    const logger = options.logger ?? silentLogger();
    this.informer = new Informer<NodeObject>({
      resource: KUBE_RESOURCES.nodes,
      kubeConfig: options.kubeConfig,
      fieldSelector: `metadata.name=${options.nodeName}`,
      logger,
      ...(options.metrics !== undefined ? { metrics: options.metrics } : {}),
      ...(options.syncTimeoutMs !== undefined ? { syncTimeoutMs: options.syncTimeoutMs } : {}),
      userAgent: "worknode-proxy",
    });
    const seen = (node: NodeObject) => {
      if (node.metadata?.name === options.nodeName) this.update(node.metadata?.labels ?? {});
    };
    this.informer.addHandler({
      onAdd: seen,
      onUpdate: (_old, node) => seen(node),
      onDelete: (node) => {
        if (node.metadata?.name === options.nodeName) this.update(undefined);
      },
      onSynced: () => {
        if (!this.reported) this.update(this.labels, true);
      },
    });
  }

  /** The labels last reported (undefined: no Node seen). */
  get current(): Readonly<Record<string, string>> | undefined {
    return this.labels;
  }

  /** Lists and starts watching; resolves once the first list was delivered. */
  start(): Promise<void> {
    return this.informer.start();
  }

  /** Stops watching. Idempotent. */
  stop(): Promise<void> {
    return this.informer.stop();
  }

  private update(labels: Readonly<Record<string, string>> | undefined, force = false): void {
    if (
      !force &&
      this.reported &&
      sameLabels(this.labels, labels) &&
      (labels === undefined) === (this.labels === undefined)
    ) {
      return;
    }
    this.labels = labels;
    if (!this.informer.hasSynced() && !force) return;
    this.reported = true;
    this.options.onLabels(labels);
  }
}
