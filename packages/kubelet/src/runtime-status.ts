/**
 * The kubelet's own view of what the container runtime runs for one pod
 * (kubelet's `kubecontainer.PodStatus`), filled by the pod workers from CRI
 * `PodSandboxStatus` / `ContainerStatus` answers and the labels and annotations
 * the kubelet put on them (see `labels.ts`). Every decision function reads this.
 *
 * Times are epoch milliseconds; `0` or `undefined` means "not set".
 *
 * @module
 */

/** State of a container as the runtime reports it (CRI `ContainerState`). */
export type ContainerRuntimeState = "created" | "running" | "exited" | "unknown";

/** State of a sandbox as the runtime reports it (CRI `PodSandboxState`). */
export type SandboxState = "ready" | "notready";

/** One pod sandbox of the pod (current or old). */
export interface SandboxStatus {
  /** Runtime sandbox ID. */
  readonly id: string;
  /** `metadata.attempt` of the sandbox: 0 for the first, +1 for each re-creation. */
  readonly attempt: number;
  /** Ready (running, network set up) or not. */
  readonly state: SandboxState;
  /** Creation time, epoch ms: the newest sandbox is the current one. */
  readonly createdAt: number;
  /** Primary pod IP, empty or undefined when the sandbox has none (or uses the host network). */
  readonly ip?: string;
  /** Additional pod IPs (dual-stack). */
  readonly additionalIps?: readonly string[];
  /** True when the sandbox uses the node's network namespace (CRI `NamespaceMode.NODE`). */
  readonly hostNetwork?: boolean;
}

/** One container of the pod (current or a previous instance) as the runtime reports it. */
export interface ContainerRuntimeStatus {
  /** Runtime container ID (without the `containerd://` prefix). */
  readonly id: string;
  /** Container name from the pod spec (label `io.kubernetes.container.name`). */
  readonly name: string;
  /** Runtime state. */
  readonly state: ContainerRuntimeState;
  /** Creation time, epoch ms (orders instances of the same container). */
  readonly createdAt: number;
  /** Start time, epoch ms. */
  readonly startedAt?: number;
  /** Exit time, epoch ms (exited containers). */
  readonly finishedAt?: number;
  /** Exit code (exited containers). */
  readonly exitCode?: number;
  /** Runtime's reason (`Completed`, `Error`, `OOMKilled`, …). */
  readonly reason?: string;
  /** Runtime's message, or the termination message read by the worker. */
  readonly message?: string;
  /** Restart count stored in the `io.kubernetes.container.restartCount` annotation. */
  readonly restartCount: number;
  /** Spec hash stored in the `io.kubernetes.container.hash` annotation (hex). */
  readonly containerSpecHash: string;
  /** Image as requested (the spec's image). */
  readonly image: string;
  /** Image reference the runtime resolved (digest), reported as `imageID`. */
  readonly imageRef: string;
  /** The sandbox this container was created in, when known. */
  readonly sandboxId?: string;
}

/** Everything the runtime runs for one pod (kubelet's `kubecontainer.PodStatus`). */
export interface RuntimePodStatus {
  /** Pod UID. */
  readonly uid: string;
  /** Pod name. */
  readonly name: string;
  /** Pod namespace. */
  readonly namespace: string;
  /** All sandboxes of the pod, any order. */
  readonly sandboxes: readonly SandboxStatus[];
  /** All containers of the pod (every instance kept by the runtime), any order. */
  readonly containers: readonly ContainerRuntimeStatus[];
  /** Pod IPs of the current sandbox, primary first. */
  readonly ips: readonly string[];
}

/** An empty runtime status for a pod the runtime knows nothing about. */
export function emptyRuntimePodStatus(uid: string, name: string, namespace: string): RuntimePodStatus {
  return { uid, name, namespace, sandboxes: [], containers: [], ips: [] };
}

/** Sandboxes newest first (kubelet sorts them by creation time, descending). */
export function sandboxesNewestFirst(status: RuntimePodStatus): SandboxStatus[] {
  return [...status.sandboxes].sort((a, b) => b.createdAt - a.createdAt || b.attempt - a.attempt);
}

/** Container instances newest first, ties broken by restart count. */
export function containersNewestFirst(status: RuntimePodStatus): ContainerRuntimeStatus[] {
  return [...status.containers].sort((a, b) => b.createdAt - a.createdAt || b.restartCount - a.restartCount);
}

/**
 * Index of the newest instance of each container name (kubelet's
 * `FindContainerStatusByName`, which returns the latest instance).
 */
export function latestContainerByName(status: RuntimePodStatus): Map<string, ContainerRuntimeStatus> {
  const out = new Map<string, ContainerRuntimeStatus>();
  for (const c of status.containers) {
    const cur = out.get(c.name);
    if (
      !cur ||
      c.createdAt > cur.createdAt ||
      (c.createdAt === cur.createdAt && c.restartCount > cur.restartCount)
    ) {
      out.set(c.name, c);
    }
  }
  return out;
}

/** The latest exited instance of a container, if any (kubelet uses its finish time for back-off). */
export function latestExited(status: RuntimePodStatus, name: string): ContainerRuntimeStatus | undefined {
  let best: ContainerRuntimeStatus | undefined;
  for (const c of status.containers) {
    if (c.name !== name || c.state !== "exited") continue;
    if (!best || c.createdAt > best.createdAt) best = c;
  }
  return best;
}

/**
 * The restart count the next instance of a container gets (kubelet: latest
 * instance's count + 1, or 0 for a first start). `fromLogDir` is kubelet's fallback
 * when the runtime lost all instances: the highest `<n>.log` in the container's log
 * directory + 1, computed by the caller.
 */
export function nextRestartCount(status: RuntimePodStatus, name: string, fromLogDir = 0): number {
  const latest = latestContainerByName(status).get(name);
  return latest ? latest.restartCount + 1 : fromLogDir;
}
