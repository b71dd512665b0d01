/**
 * Helpers of `api-pod-start.bench.ts` that need no cluster: the benchmark's pod, the "started as
 * the API reports it" predicate, the kube-apiserver metric that counts pod status writes, the
 * reference kubelet's KubeletConfiguration, and a tracker of per-pod start latencies fed by a
 * watch.
 *
 * @module
 */
import type { Pod } from "@worknode/core";

/** Label every benchmark pod carries (the watch and the cleanup select on it). */
export const BENCH_LABEL = { key: "app", value: "api-pod-start-bench" } as const;

/**
 * A pod bound to `nodeName` directly (no scheduler in the measured path): one busybox container
 * sleeping for an hour, image already present (IfNotPresent). The default service account token
 * is mounted, as in any ordinary pod (both kubelets must request it through TokenRequest).
 */
export function benchPod(name: string, nodeName: string, image: string): Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "default", labels: { [BENCH_LABEL.key]: BENCH_LABEL.value } },
    spec: {
      nodeName,
      terminationGracePeriodSeconds: 1,
      containers: [{ name: "sleep", image, imagePullPolicy: "IfNotPresent", command: ["sleep", "3600"] }],
    },
  };
}

/**
 * True when the API reports the pod started: phase Running and every container of the spec
 * listed as running and ready.
 */
export function podStartedInApi(pod: Pod): boolean {
  if (pod.status?.phase !== "Running") return false;
  const expected = pod.spec?.containers?.length ?? 0;
  const cs = pod.status?.containerStatuses ?? [];
  return cs.length === expected && cs.every((c) => c.ready === true && c.state?.running !== undefined);
}

/**
 * Sums `apiserver_request_total` samples (Prometheus text format) of write requests to
 * `pods/status` (verbs PATCH, PUT/UPDATE, APPLY), over every response code and component.
 *
 * @returns the count by verb and their total
 */
export function podStatusWrites(metricsText: string): { total: number; byVerb: Record<string, number> } {
  const byVerb: Record<string, number> = {};
  let total = 0;
  for (const line of metricsText.split("\n")) {
    if (!line.startsWith("apiserver_request_total{")) continue;
    const close = line.lastIndexOf("}");
    if (close < 0) continue;
    const labels = parseLabels(line.slice("apiserver_request_total{".length, close));
    if (labels.resource !== "pods" || labels.subresource !== "status") continue;
    const verb = labels.verb ?? "";
    if (!["PATCH", "PUT", "UPDATE", "APPLY"].includes(verb)) continue;
    const value = Number(
      line
        .slice(close + 1)
        .trim()
        .split(/\s+/)[0],
    );
    if (!Number.isFinite(value)) continue;
    byVerb[verb] = (byVerb[verb] ?? 0) + value;
    total += value;
  }
  return { total, byVerb };
}

function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) out[m[1] as string] = m[2] as string;
  return out;
}

/** What the reference kubelet's configuration file needs to know. */
export interface ReferenceKubeletSettings {
  /** CRI endpoint (`unix:///…`). */
  readonly containerRuntimeEndpoint: string;
  /** Address the kubelet server listens on (the node IP). */
  readonly address: string;
  /** Kubelet server port. */
  readonly port: number;
  /** Healthz port (on 127.0.0.1). */
  readonly healthzPort: number;
  /** Cluster CA (client certificates of the API server's kubelet client are checked against it). */
  readonly clientCAFile: string;
  /** The lab containerd's cgroup driver (`cgroupfs`: the lab renders `SystemdCgroup = false`). */
  readonly cgroupDriver: "cgroupfs" | "systemd";
  /**
   * Parent cgroup of the kubelet's QoS hierarchy (`<cgroupRoot>/kubepods/…`), so that it does not
   * share `/kubepods` with another kubelet on the machine; it must exist before the kubelet starts.
   */
  readonly cgroupRoot: string;
}

/**
 * The reference kubelet's KubeletConfiguration (kubelet.config.k8s.io/v1beta1) for a shared test
 * machine: the lab's runtime and cgroup driver, swap tolerated, no read-only port, eviction and
 * image GC thresholds low enough that a busy disk neither evicts the benchmark pods nor removes the
 * pre-pulled images, and secure serving like a real node (webhook authentication/authorization).
 */
export function referenceKubeletConfig(s: ReferenceKubeletSettings): Record<string, unknown> {
  return {
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    containerRuntimeEndpoint: s.containerRuntimeEndpoint,
    cgroupDriver: s.cgroupDriver,
    cgroupRoot: s.cgroupRoot,
    failSwapOn: false,
    // Kubernetes 1.35+ refuses cgroup v1 hosts unless told otherwise; this machine has a v1 hierarchy.
    failCgroupV1: false,
    address: s.address,
    port: s.port,
    readOnlyPort: 0,
    healthzBindAddress: "127.0.0.1",
    healthzPort: s.healthzPort,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: s.clientCAFile },
    },
    authorization: { mode: "Webhook" },
    clusterDomain: "cluster.local",
    rotateCertificates: false,
    serverTLSBootstrap: false,
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: {
      "memory.available": "1Mi",
      "nodefs.available": "1%",
      "nodefs.inodesFree": "1%",
      "imagefs.available": "1%",
    },
    // The test machine's /proc/sys is shared; do not fail on kernel defaults that differ.
    protectKernelDefaults: false,
  };
}

interface Pending {
  readonly createdAt: number;
  startedAt?: number;
}

/**
 * Per-pod start latencies as the API reports them: {@link created} notes when the create
 * request for a pod returned, {@link observe} (fed by a watch) when the API first showed it
 * started ({@link podStartedInApi}); {@link waitAll} resolves once every expected pod got there.
 */
export class ApiPodStartTracker {
  private readonly pending = new Map<string, Pending>();
  private readonly earlyStarts = new Map<string, number>();
  private waiters: Array<() => void> = [];

  /**
   * @param now monotonic milliseconds (performance.now by default)
   */
  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Notes that the create request of pod `name` returned now. */
  created(name: string): void {
    const early = this.earlyStarts.get(name);
    this.earlyStarts.delete(name);
    const createdAt = this.now();
    this.pending.set(name, { createdAt, ...(early !== undefined ? { startedAt: createdAt } : {}) });
    this.notify();
  }

  /** Feeds a pod seen by the watch. */
  observe(pod: Pod): void {
    const name = pod.metadata?.name ?? "";
    if (!podStartedInApi(pod)) return;
    const p = this.pending.get(name);
    if (!p) {
      // Started before its create call returned (only possible on a very slow client).
      if (!this.earlyStarts.has(name)) this.earlyStarts.set(name, this.now());
      return;
    }
    if (p.startedAt !== undefined) return;
    p.startedAt = this.now();
    this.notify();
  }

  /** How many expected pods have not started yet. */
  remaining(): number {
    let n = 0;
    for (const p of this.pending.values()) if (p.startedAt === undefined) n++;
    return n;
  }

  /** Resolves when every expected pod started; rejects after `timeoutMs` naming the missing ones. */
  waitAll(timeoutMs: number): Promise<void> {
    if (this.remaining() === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        const missing = [...this.pending].filter(([, p]) => p.startedAt === undefined).map(([n]) => n);
        reject(
          new Error(
            `${missing.length} pod(s) not started in the API after ${timeoutMs} ms: ${missing.slice(0, 5).join(", ")}`,
          ),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.waiters.push(done);
    });
  }

  /** Latencies (ms) of the pods that started, and forgets every pod. */
  drain(): number[] {
    const out: number[] = [];
    for (const p of this.pending.values()) if (p.startedAt !== undefined) out.push(p.startedAt - p.createdAt);
    this.pending.clear();
    this.earlyStarts.clear();
    return out;
  }

  private notify(): void {
    if (this.remaining() !== 0) return;
    const w = this.waiters;
    this.waiters = [];
    for (const resolve of w) resolve();
  }
}
