/**
 * Node-aware proxying, shared by `worknode proxy --kubeconfig` and `worknode node
 * --kubeconfig`: this node's `Node` object is watched on the API server and its labels
 * (the `topology.kubernetes.io/zone`, for topology hints and `trafficDistribution`) go
 * to the backend; each change makes the next sync full and requests it at once, as
 * kube-proxy's node informer does. While the Node does not exist (not registered yet,
 * or deleted), the proxy keeps running without node labels and says so in the log.
 *
 * @module
 */
import type { KubeConfig } from "@kubernetes/client-node";
import {
  describeError,
  type Logger,
  NodeLabelsWatcher,
  type Registry,
  UnavailableError,
} from "@worknode/core";
import type { CliProxier } from "./proxy-backend.js";

/** A backend that renders with the node's labels (the iptables and nftables proxiers). */
export interface NodeLabelsAware {
  /**
   * Takes the Node's labels (`undefined`: no Node object); returns whether they changed
   * (then the next sync is full).
   */
  setNodeLabels(labels: Readonly<Record<string, string>> | undefined): boolean;
}

/** True when the proxier reads node labels ({@link NodeLabelsAware}). */
export function isNodeLabelsAware(p: object): p is NodeLabelsAware {
  return typeof (p as Partial<NodeLabelsAware>).setNodeLabels === "function";
}

/** The part of the {@link ProxyController} a label change drives. */
export interface SyncRequester {
  /** True once the first sync ran (before it, the first sync picks the labels up). */
  readonly initialized: boolean;
  /** Requests a sync now. */
  syncNow(): Promise<unknown>;
}

/** Options of {@link followNodeLabels}. */
export interface FollowNodeLabelsOptions {
  /** Where the API server is and how to authenticate. */
  readonly kubeConfig: KubeConfig;
  /** This node's name (`--hostname-override` or the host name). */
  readonly nodeName: string;
  /** The backend; must be {@link NodeLabelsAware}. */
  readonly proxier: CliProxier;
  /** Asked for a sync when the labels change after the first sync. */
  readonly controller: SyncRequester;
  /** For this module's messages (Node missing, appeared, gone). */
  readonly logger: Logger;
  /** For the watcher's informer (retries); default `logger.child({component: "node-informer"})`. */
  readonly informerLogger?: Logger;
  /** Registry for the informer's metrics. */
  readonly registry?: Registry;
  /** Give up the first list of Nodes after this long; default the informer's. */
  readonly syncTimeoutMs?: number;
  /** Aborting it while the first list is pending stops the watcher (the start then rejects). */
  readonly signal?: AbortSignal;
}

/**
 * Starts watching this node's Node object and feeding its labels to the proxier;
 * resolves after the first list (so the labels, when the Node exists, are in place
 * before the first sync). Stop the returned watcher with `stop()`.
 * @throws UnavailableError when the proxier does not read node labels, or the first
 *   list of Nodes fails
 */
export async function followNodeLabels(o: FollowNodeLabelsOptions): Promise<NodeLabelsWatcher> {
  const { proxier, logger, nodeName } = o;
  if (!isNodeLabelsAware(proxier)) {
    throw new UnavailableError(proxier.mode, `proxy mode ${proxier.mode} does not read node labels`);
  }
  let seen = false;
  const watcher = new NodeLabelsWatcher({
    kubeConfig: o.kubeConfig,
    nodeName,
    logger: o.informerLogger ?? logger.child({ component: "node-informer" }),
    ...(o.registry !== undefined ? { metrics: o.registry } : {}),
    ...(o.syncTimeoutMs !== undefined ? { syncTimeoutMs: o.syncTimeoutMs } : {}),
    onLabels: (labels) => {
      if (labels === undefined) {
        if (seen) {
          logger.warn({ node: nodeName }, "this node's Node object is gone; proxying without node labels");
        } else {
          logger.info(
            { node: nodeName },
            "this node's Node object does not exist (yet); proxying without node labels (no topology-aware routing) until it does",
          );
        }
      } else if (!seen) {
        logger.info({ node: nodeName, labels }, "read this node's labels from its Node object");
      }
      seen = labels !== undefined;
      if (proxier.setNodeLabels(labels) && o.controller.initialized) void o.controller.syncNow();
    },
  });
  const stopOnAbort = () => void watcher.stop().catch(() => {});
  o.signal?.addEventListener("abort", stopOnAbort, { once: true });
  try {
    if (o.signal?.aborted) throw new UnavailableError("kube-apiserver", "stopped before the first list");
    await watcher.start();
  } catch (err) {
    await watcher.stop().catch(() => {});
    throw new UnavailableError("kube-apiserver", `cannot read the Node ${nodeName}: ${describeError(err)}`, {
      cause: err,
    });
  } finally {
    o.signal?.removeEventListener("abort", stopOnAbort);
  }
  return watcher;
}
