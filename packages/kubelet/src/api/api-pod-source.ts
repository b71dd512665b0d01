/**
 * The kubelet's API-server pod source (kubelet's `config.NewSourceApiserver`):
 * an {@link Informer} on pods with `spec.nodeName=<node>` across namespaces.
 * What it delivers as an `ObjectSource<Pod>` are the pods to run; mirror pods
 * (the API copies of this node's static pods) are filtered out of it but stay
 * visible through {@link ApiPodSource.allPods} for the mirror-pod manager and
 * the status manager.
 *
 * @module
 */
import type { KubeConfig } from "@kubernetes/client-node";
import {
  type Clock,
  Informer,
  type InformerOptions,
  KUBE_RESOURCES,
  type Logger,
  type ObjectEventHandler,
  type ObjectSource,
  type Pod,
  type RunnableSource,
} from "@worknode/core";
import { isMirrorPod } from "./mirror-pod.js";

/**
 * The objects of `inner` that satisfy `keep`, as an {@link ObjectSource}. An
 * update that moves an object in or out of the filter is delivered as an add or
 * a delete.
 */
export class FilteredObjectSource<T> implements ObjectSource<T> {
  /** Object kind delivered. */
  readonly kind: string;

  constructor(
    private readonly inner: ObjectSource<T>,
    private readonly keep: (obj: T) => boolean,
  ) {
    this.kind = inner.kind;
  }

  addHandler(handler: ObjectEventHandler<T>): () => void {
    return this.inner.addHandler({
      onAdd: (o) => {
        if (this.keep(o)) handler.onAdd?.(o);
      },
      onUpdate: (a, b) => {
        const ka = this.keep(a);
        const kb = this.keep(b);
        if (ka && kb) handler.onUpdate?.(a, b);
        else if (ka) handler.onDelete?.(a);
        else if (kb) handler.onAdd?.(b);
      },
      onDelete: (o) => {
        if (this.keep(o)) handler.onDelete?.(o);
      },
      onSynced: () => handler.onSynced?.(),
      onInvalid: (e) => handler.onInvalid?.(e),
    });
  }

  hasSynced(): boolean {
    return this.inner.hasSynced();
  }

  list(): readonly T[] {
    return this.inner.list().filter(this.keep);
  }

  get(key: string): T | undefined {
    const o = this.inner.get(key);
    return o !== undefined && this.keep(o) ? o : undefined;
  }
}

/** Options of {@link ApiPodSource}. */
export interface ApiPodSourceOptions {
  /** Credentials of the node (a `system:node:<name>` client certificate under NodeRestriction). */
  readonly kubeConfig: KubeConfig;
  /** The node whose pods are watched (`spec.nodeName`). */
  readonly nodeName: string;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Registry for the informer metrics; default none. */
  readonly metrics?: InformerOptions<Pod>["metrics"];
  /** Fail `start()` when the first list does not succeed within this time; default wait forever. */
  readonly syncTimeoutMs?: number;
  /** `User-Agent`; default `worknode-kubelet`. */
  readonly userAgent?: string;
}

/**
 * The pods bound to this node in the API server. As an `ObjectSource<Pod>` it
 * delivers the pods to run (no mirror pods); {@link ApiPodSource.allPods} has
 * every pod of the node, mirrors included.
 */
export class ApiPodSource extends FilteredObjectSource<Pod> implements RunnableSource {
  /** Every pod bound to the node, mirror pods included (the informer). */
  readonly allPods: Informer<Pod>;

  constructor(options: ApiPodSourceOptions) {
    const informer = new Informer<Pod>({
      resource: KUBE_RESOURCES.pods,
      kubeConfig: options.kubeConfig,
      fieldSelector: `spec.nodeName=${options.nodeName}`,
      userAgent: options.userAgent ?? "worknode-kubelet",
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.metrics ? { metrics: options.metrics } : {}),
      ...(options.syncTimeoutMs !== undefined ? { syncTimeoutMs: options.syncTimeoutMs } : {}),
    });
    super(informer, (p) => !isMirrorPod(p));
    this.allPods = informer;
  }

  /** Starts the informer; resolves after the first list was delivered. */
  start(): Promise<void> {
    return this.allPods.start();
  }

  /** Stops the informer; idempotent. */
  stop(): Promise<void> {
    return this.allPods.stop();
  }
}
