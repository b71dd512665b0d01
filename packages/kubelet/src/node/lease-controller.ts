/**
 * The node Lease (kubelet's `nodelease` controller): `kube-node-lease/<node>` in
 * `coordination.k8s.io/v1`, held by the node, renewed every quarter of its duration
 * (10 s for 40 s), owned by the Node object; created when missing, updated with its
 * resourceVersion (re-read on 409 Conflict); failures are logged and retried with
 * backoff (200 ms doubling up to 7 s).
 *
 * @module
 */
import {
  AbortedError,
  ApiStatusError,
  Backoff,
  type Clock,
  describeError,
  type KubeApiClient,
  type Lease,
  type Logger,
  realClock,
  silentLogger,
} from "@worknode/core";
import { formatKubeMicroTime } from "./conditions.js";
import {
  DEFAULT_NODE_LEASE_DURATION_SECONDS,
  NODE_LEASE_NAMESPACE,
  NODE_LEASE_RENEW_INTERVAL_FRACTION,
} from "./constants.js";

/** The Node a lease belongs to. */
export interface LeaseOwner {
  /** Node name. */
  readonly name: string;
  /** Node UID. */
  readonly uid: string;
}

/** Options of a {@link NodeLeaseController}. */
export interface NodeLeaseControllerOptions {
  /** API client authenticated as the node. */
  readonly api: KubeApiClient;
  /** The node name: the lease name and its holder identity. */
  readonly nodeName: string;
  /** The Node's identity for the owner reference, once known. */
  readonly owner?: () => LeaseOwner | undefined;
  /** `--node-lease-duration-seconds`; default 40. */
  readonly leaseDurationSeconds?: number;
  /** Renew interval; default a quarter of the lease duration. */
  readonly renewIntervalMs?: number;
  /** Clock; default the real clock. */
  readonly clock?: Clock;
  /** Logger; default silent. */
  readonly logger?: Logger;
}

/** The path of a node's Lease. */
export function nodeLeasePath(nodeName: string): string {
  return `/apis/coordination.k8s.io/v1/namespaces/${NODE_LEASE_NAMESPACE}/leases/${encodeURIComponent(nodeName)}`;
}

/**
 * The lease as the kubelet writes it: `base` (the stored lease, if any) with holder,
 * duration, renew time and the Node owner reference set.
 */
export function renewedLease(
  base: Lease | undefined,
  nodeName: string,
  leaseDurationSeconds: number,
  nowMs: number,
  owner: LeaseOwner | undefined,
): Lease {
  const meta = base?.metadata ?? {};
  const owners = meta.ownerReferences ?? [];
  const hasOwner = owner !== undefined && owners.some((o) => o.kind === "Node" && o.uid === owner.uid);
  return {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    ...base,
    metadata: {
      ...meta,
      name: nodeName,
      namespace: NODE_LEASE_NAMESPACE,
      ...(owner && !hasOwner
        ? { ownerReferences: [{ apiVersion: "v1", kind: "Node", name: owner.name, uid: owner.uid }] }
        : {}),
    },
    spec: {
      ...base?.spec,
      holderIdentity: nodeName,
      leaseDurationSeconds,
      renewTime: formatKubeMicroTime(nowMs),
    },
  };
}

/** Keeps the node's Lease renewed; see the module notes. */
export class NodeLeaseController {
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly durationSeconds: number;
  private readonly renewIntervalMs: number;
  private controller: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private latest: Lease | undefined;

  constructor(private readonly options: NodeLeaseControllerOptions) {
    this.clock = options.clock ?? realClock;
    this.logger = options.logger ?? silentLogger();
    this.durationSeconds = options.leaseDurationSeconds ?? DEFAULT_NODE_LEASE_DURATION_SECONDS;
    this.renewIntervalMs =
      options.renewIntervalMs ?? this.durationSeconds * 1000 * NODE_LEASE_RENEW_INTERVAL_FRACTION;
  }

  /** The lease as last written. */
  get lease(): Lease | undefined {
    return this.latest;
  }

  /**
   * Ensures the lease exists and renews it once (re-reading it on a conflict).
   *
   * @returns the stored lease
   * @throws ApiStatusError / UnavailableError when it fails
   */
  async renew(signal?: AbortSignal): Promise<Lease> {
    const { api, nodeName } = this.options;
    const path = nodeLeasePath(nodeName);
    let current = this.latest;
    for (let attempt = 0; ; attempt++) {
      if (!current) current = await this.getOrCreate(signal);
      const body = renewedLease(
        current,
        nodeName,
        this.durationSeconds,
        this.clock.now(),
        this.options.owner?.(),
      );
      try {
        this.latest = await api.requestJson<Lease>("PUT", path, { body, signal });
        return this.latest;
      } catch (err) {
        const stale = err instanceof ApiStatusError && (err.status === 409 || err.status === 404);
        if (!stale || attempt >= 4) throw err;
        current = undefined; // conflict: someone else wrote it; read it again
        this.latest = undefined;
      }
    }
  }

  private async getOrCreate(signal?: AbortSignal): Promise<Lease> {
    const { api, nodeName } = this.options;
    try {
      return await api.requestJson<Lease>("GET", nodeLeasePath(nodeName), { signal });
    } catch (err) {
      if (!(err instanceof ApiStatusError && err.status === 404)) throw err;
    }
    const body = renewedLease(
      undefined,
      nodeName,
      this.durationSeconds,
      this.clock.now(),
      this.options.owner?.(),
    );
    const path = `/apis/coordination.k8s.io/v1/namespaces/${NODE_LEASE_NAMESPACE}/leases`;
    const created = await api.requestJson<Lease>("POST", path, { body, signal });
    this.logger.info({ lease: `${NODE_LEASE_NAMESPACE}/${nodeName}` }, "created node lease");
    return created;
  }

  /** Starts renewing in the background; idempotent. */
  start(): void {
    if (this.loop) return;
    const controller = new AbortController();
    this.controller = controller;
    this.loop = this.run(controller.signal);
  }

  /** Stops renewing (the lease is left to expire, as the kubelet does on shutdown). */
  async stop(): Promise<void> {
    this.controller?.abort(new AbortedError("node lease controller stopped"));
    await this.loop;
    this.loop = undefined;
    this.controller = undefined;
  }

  private async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff({ initialMs: 200, maxMs: 7_000 });
    while (!signal.aborted) {
      let delay: number;
      try {
        await this.renew(signal);
        backoff.reset();
        delay = this.renewIntervalMs;
      } catch (err) {
        if (signal.aborted) return;
        delay = backoff.next();
        this.logger.warn({ error: describeError(err), retryInMs: delay }, "failed to renew node lease");
      }
      try {
        await this.clock.sleep(delay, signal);
      } catch {
        return;
      }
    }
  }
}
