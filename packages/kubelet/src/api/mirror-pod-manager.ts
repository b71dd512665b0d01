/**
 * The kubelet's mirror-pod handling (`mirror_client.go` and the mirror part of
 * `syncPod` / `HandlePodCleanups`): every static pod gets a mirror pod in the
 * API server, built by {@link buildMirrorPod}; a mirror that was deleted is
 * created again, one of an older manifest (other hash) or not owned by the node
 * is replaced, and the mirror of a static pod that went away is deleted.
 * Writes are serialized per pod name and retried with backoff.
 *
 * @module
 */
import {
  ApiStatusError,
  type Clock,
  describeError,
  type KubeApiClient,
  type Logger,
  type ObjectSource,
  objectKey,
  type Pod,
  realClock,
  silentLogger,
  type TimerHandle,
  UnavailableError,
} from "@worknode/core";
import { KeyedWorkQueue } from "./keyed-queue.js";
import {
  buildMirrorPod,
  deleteOptionsFor,
  isMirrorPod,
  isStaticPod,
  type MirrorPodOwner,
  mirrorPodAction,
  podPath,
} from "./mirror-pod.js";

/** Options of {@link MirrorPodManager}. */
export interface MirrorPodManagerOptions {
  /** API client with the node's credentials. */
  readonly api: KubeApiClient;
  /** The node's name. */
  readonly nodeName: string;
  /** The Node object's UID, once the node is registered (the owner reference needs it). */
  readonly nodeUid: () => string | undefined;
  /** Sources of static pods (such as a `ManifestDirSource`); pods from the API are ignored. */
  readonly staticPods: readonly ObjectSource<Pod>[];
  /** Every API pod bound to the node, mirror pods included (`ApiPodSource.allPods`). */
  readonly apiPods: ObjectSource<Pod>;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** First retry delay after a failed write; default 500 ms (doubling). */
  readonly retryInitialMs?: number;
  /** Longest retry delay; default 30 s. */
  readonly retryMaxMs?: number;
  /** Period of the full re-check; default 10 s. */
  readonly resyncIntervalMs?: number;
}

/** Counters of the writes a {@link MirrorPodManager} made. */
export interface MirrorPodStats {
  readonly created: number;
  readonly deleted: number;
  readonly failures: number;
}

/** Keeps a mirror pod in the API server for every static pod (see the module notes). */
export class MirrorPodManager {
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly queue: KeyedWorkQueue;
  private readonly detach: Array<() => void> = [];
  private resyncTimer: TimerHandle | undefined;
  private started = false;
  private stopped = false;
  private counters = { created: 0, deleted: 0, failures: 0 };

  constructor(private readonly options: MirrorPodManagerOptions) {
    this.clock = options.clock ?? realClock;
    this.logger = (options.logger ?? silentLogger()).child({ component: "mirror-pods" });
    this.queue = new KeyedWorkQueue({
      work: (key) => this.sync(key),
      clock: this.clock,
      retryInitialMs: options.retryInitialMs ?? 500,
      retryMaxMs: options.retryMaxMs ?? 30_000,
      onError: (key, err, retryInMs) => {
        this.counters.failures++;
        this.logger.warn({ pod: key, err: describeError(err), retryInMs }, "mirror pod write failed");
      },
    });
  }

  /** Starts following the static pods and the API's mirror pods. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    const onPod = (p: Pod) => this.queue.schedule(objectKey(p));
    const handler = {
      onAdd: onPod,
      onUpdate: (_o: Pod, p: Pod) => onPod(p),
      onDelete: onPod,
      onSynced: () => this.resyncAll(),
    };
    for (const s of this.options.staticPods) this.detach.push(s.addHandler(handler));
    this.detach.push(this.options.apiPods.addHandler(handler));
    this.scheduleResync();
  }

  /** Stops; waits for writes in flight. Mirror pods stay (a restarted kubelet adopts them). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const d of this.detach.splice(0)) d();
    this.resyncTimer?.cancel();
    await this.queue.stop();
  }

  /** Writes made so far. */
  stats(): MirrorPodStats {
    return { ...this.counters };
  }

  private scheduleResync(): void {
    if (this.stopped) return;
    this.resyncTimer = this.clock.setTimeout(() => {
      this.resyncAll();
      this.scheduleResync();
    }, this.options.resyncIntervalMs ?? 10_000);
  }

  private resyncAll(): void {
    const keys = new Set<string>();
    for (const s of this.options.staticPods) for (const p of s.list()) keys.add(objectKey(p));
    for (const p of this.options.apiPods.list()) if (isMirrorPod(p)) keys.add(objectKey(p));
    for (const k of keys) this.queue.schedule(k);
  }

  private allSynced(): boolean {
    return this.options.apiPods.hasSynced() && this.options.staticPods.every((s) => s.hasSynced());
  }

  private staticPod(key: string): Pod | undefined {
    for (const s of this.options.staticPods) {
      const p = s.get(key);
      if (p && isStaticPod(p)) return p;
    }
    return undefined;
  }

  private async sync(key: string): Promise<void> {
    if (this.stopped || !this.allSynced()) return;
    const wanted = this.staticPod(key);
    const existing = this.options.apiPods.get(key);
    const node = this.owner();
    if (!wanted) {
      // An orphaned mirror (kubelet's GetOrphanedMirrorPodNames): its static pod is gone.
      if (existing && isMirrorPod(existing)) await this.deleteMirror(existing);
      return;
    }
    if (!node) throw new UnavailableError("node", `node ${this.options.nodeName} is not registered yet`);
    switch (mirrorPodAction(wanted, existing, node)) {
      case "create":
        await this.createMirror(wanted, node);
        return;
      case "recreate":
        if (existing) await this.deleteMirror(existing);
        await this.createMirror(wanted, node);
        return;
      default:
        return;
    }
  }

  private owner(): MirrorPodOwner | undefined {
    const uid = this.options.nodeUid();
    return uid ? { name: this.options.nodeName, uid } : undefined;
  }

  private async createMirror(staticPod: Pod, node: MirrorPodOwner): Promise<void> {
    const mirror = buildMirrorPod(staticPod, node);
    const ns = mirror.metadata?.namespace ?? "default";
    try {
      await this.options.api.requestJson<Pod>("POST", `/api/v1/namespaces/${encodeURIComponent(ns)}/pods`, {
        body: mirror,
      });
      this.counters.created++;
      this.logger.info({ pod: objectKey(mirror) }, "mirror pod created");
    } catch (err) {
      // Already there (an old one still being deleted, or our own): the informer's events bring us back.
      if (err instanceof ApiStatusError && err.status === 409) return;
      throw err;
    }
  }

  private async deleteMirror(mirror: Pod): Promise<void> {
    const meta = mirror.metadata ?? {};
    try {
      await this.options.api.requestJson("DELETE", podPath(meta.namespace ?? "default", meta.name ?? ""), {
        body: deleteOptionsFor(meta.uid ?? ""),
      });
      this.counters.deleted++;
      this.logger.info({ pod: objectKey(mirror) }, "mirror pod deleted");
    } catch (err) {
      if (err instanceof ApiStatusError && (err.status === 404 || err.status === 409)) return;
      throw err;
    }
  }
}
