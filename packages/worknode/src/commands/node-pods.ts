/**
 * The node's own pods as an {@link ObjectSource}, for the local endpoint-slice
 * controller of `worknode node`: the kubelet's pods with their latest status,
 * read through the kubelet's public API (`Kubelet.pods()`), refreshed on a short
 * period (the kubelet's PLEG relists every second, so status changes show up at
 * that pace) and at once whenever {@link KubeletPodSource.refresh} is called — for
 * example from the kubelet's `onStatus` hook where the caller builds the kubelet.
 *
 * @module
 */
import {
  type Logger,
  type ObjectEventHandler,
  type ObjectSource,
  type Pod,
  SnapshotObjectSource,
  silentLogger,
} from "@worknode/core";

/** Default period of {@link KubeletPodSource}: 1 s, the kubelet's PLEG relist period. */
export const DEFAULT_POD_REFRESH_MS = 1_000;

/** Options of a {@link KubeletPodSource}. */
export interface KubeletPodSourceOptions {
  /** Lists the node's pods with their latest status (such as `() => kubelet.pods()`). */
  readonly listPods: () => readonly Pod[];
  /** Refresh period in milliseconds; default {@link DEFAULT_POD_REFRESH_MS}. */
  readonly refreshMs?: number;
  /** Logger; default silent. */
  readonly logger?: Logger;
}

/**
 * An {@link ObjectSource} of the node's pods: every refresh replaces its content with
 * what `listPods` returns and emits exactly the adds, updates (a status change is an
 * update) and deletes. Synced after the first refresh ({@link KubeletPodSource.start}).
 */
export class KubeletPodSource implements ObjectSource<Pod> {
  /** Object kind delivered. */
  readonly kind = "Pod";
  private readonly inner: SnapshotObjectSource<Pod>;
  private readonly options: KubeletPodSourceOptions;
  private readonly logger: Logger;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: KubeletPodSourceOptions) {
    this.options = options;
    this.logger = options.logger ?? silentLogger();
    this.inner = new SnapshotObjectSource<Pod>({ kind: "Pod", logger: this.logger });
  }

  /** Takes the first listing (the source is then synced) and starts the periodic refresh. Idempotent. */
  start(): Promise<void> {
    if (this.timer === undefined) {
      this.refresh();
      this.timer = setInterval(() => this.refresh(), this.options.refreshMs ?? DEFAULT_POD_REFRESH_MS);
      this.timer.unref();
    }
    return Promise.resolve();
  }

  /** Stops the periodic refresh; the last state stays. Idempotent. */
  stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    return Promise.resolve();
  }

  /** Lists the pods now and emits what changed since the last listing. */
  refresh(): void {
    let pods: readonly Pod[];
    try {
      pods = this.options.listPods();
    } catch (err) {
      this.logger.error({ err }, "listing the node's pods failed");
      return;
    }
    this.inner.replace(pods);
  }

  /** {@inheritDoc ObjectSource.addHandler} */
  addHandler(handler: ObjectEventHandler<Pod>): () => void {
    return this.inner.addHandler(handler);
  }

  /** {@inheritDoc ObjectSource.hasSynced} */
  hasSynced(): boolean {
    return this.inner.hasSynced();
  }

  /** {@inheritDoc ObjectSource.list} */
  list(): readonly Pod[] {
    return this.inner.list();
  }

  /** {@inheritDoc ObjectSource.get} */
  get(key: string): Pod | undefined {
    return this.inner.get(key);
  }
}
