/**
 * kubelet's own metrics (pkg/kubelet/metrics), with kubelet's names, labels,
 * help texts and buckets, as prom-client objects the pod workers update:
 *
 * | metric | type | labels |
 * | --- | --- | --- |
 * | `kubelet_node_name` | gauge (always 1) | `node` |
 * | `kubelet_running_pods` | gauge | |
 * | `kubelet_running_containers` | gauge | `container_state` (`created`, `running`, `exited`, `unknown`) |
 * | `kubelet_desired_pods` | gauge | `static` |
 * | `kubelet_pod_start_duration_seconds` | histogram | |
 * | `kubelet_pod_start_sli_duration_seconds` | histogram | |
 * | `kubelet_pod_worker_duration_seconds` | histogram | `operation_type` (`create`, `update`, `sync`) |
 * | `kubelet_pod_worker_start_duration_seconds` | histogram | |
 * | `kubelet_pleg_relist_duration_seconds` | histogram | |
 * | `kubelet_pleg_relist_interval_seconds` | histogram | |
 * | `kubelet_pleg_last_seen_seconds` | gauge | |
 * | `kubelet_started_pods_total` / `kubelet_started_pods_errors_total` | counter | |
 * | `kubelet_started_containers_total` | counter | `container_type` (`container`, `init_container`) |
 * | `kubelet_started_containers_errors_total` | counter | `container_type`, `code` |
 * | `kubelet_restarted_pods_total` | counter | `static` |
 * | `kubelet_runtime_operations_total` / `_errors_total` / `_duration_seconds` | counter / histogram | `operation_type` |
 *
 * When the running-pod and running-container counts are not maintained by the
 * workers, {@link KubeletMetrics.derivePodGaugesFrom} computes them at each
 * scrape from the pods' statuses instead.
 *
 * @module
 */
import { Counter, createMetricsRegistry, Gauge, Histogram, type Pod, type Registry } from "@worknode/core";

/** kubelet's pod startup buckets (seconds). */
export const POD_START_DURATION_BUCKETS: readonly number[] = [
  0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700,
  3600,
];

/** Prometheus' default buckets (kubelet's `metrics.DefBuckets`). */
export const DEFAULT_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** kubelet's runtime operation buckets: `ExponentialBuckets(0.005, 2.5, 14)`. */
export const RUNTIME_OPERATION_BUCKETS: readonly number[] = Array.from(
  { length: 14 },
  (_, i) => 0.005 * 2.5 ** i,
);

/** The `container_state` label values of `kubelet_running_containers`. */
export const CONTAINER_STATES = ["created", "running", "exited", "unknown"] as const;

/** Running pods and containers by state, as derived from pod statuses. */
export interface PodGaugeCounts {
  readonly runningPods: number;
  readonly containers: Readonly<Record<(typeof CONTAINER_STATES)[number], number>>;
}

/**
 * Counts from pod statuses: a pod runs when its `PodReadyToStartContainers`
 * condition is True (its sandbox is ready) or a container runs; each
 * container status adds its current instance (`running`, or `exited` when
 * terminated) and its last terminated instance (`exited`).
 */
export function countPodGauges(pods: readonly Pod[]): PodGaugeCounts {
  const containers = { created: 0, running: 0, exited: 0, unknown: 0 };
  let runningPods = 0;
  for (const pod of pods) {
    const st = pod.status;
    const all = [...(st?.initContainerStatuses ?? []), ...(st?.containerStatuses ?? [])];
    let anyRunning = false;
    for (const c of all) {
      if (c.state?.running) {
        containers.running++;
        anyRunning = true;
      } else if (c.state?.terminated?.containerID) containers.exited++;
      if (c.lastState?.terminated?.containerID) containers.exited++;
    }
    const sandboxReady = st?.conditions?.some(
      (c) => c.type === "PodReadyToStartContainers" && c.status === "True",
    );
    if (sandboxReady || anyRunning) runningPods++;
  }
  return { runningPods, containers };
}

/** Options of {@link KubeletMetrics}. */
export interface KubeletMetricsOptions {
  /** Registry to register in; default a new one. */
  readonly registry?: Registry;
  /** Node name for `kubelet_node_name`. */
  readonly nodeName?: string;
}

/** kubelet's metrics (see the module notes). */
export class KubeletMetrics {
  /** The registry holding every metric here. */
  readonly registry: Registry;
  /** `kubelet_node_name{node}` = 1. */
  readonly nodeName: Gauge<"node">;
  /** `kubelet_running_pods`: pods with a running sandbox. */
  readonly runningPods: Gauge;
  /** `kubelet_running_containers{container_state}`. */
  readonly runningContainers: Gauge<"container_state">;
  /** `kubelet_desired_pods{static}`: pods the kubelet is told to run. */
  readonly desiredPods: Gauge<"static">;
  /** `kubelet_pod_start_duration_seconds`: first seen → running. */
  readonly podStartDuration: Histogram;
  /** `kubelet_pod_start_sli_duration_seconds`: the same without the image pulls. */
  readonly podStartSliDuration: Histogram;
  /** `kubelet_pod_worker_duration_seconds{operation_type}`: one sync of a pod. */
  readonly podWorkerDuration: Histogram<"operation_type">;
  /** `kubelet_pod_worker_start_duration_seconds`: pod seen → worker started. */
  readonly podWorkerStartDuration: Histogram;
  /** `kubelet_pleg_relist_duration_seconds`. */
  readonly plegRelistDuration: Histogram;
  /** `kubelet_pleg_relist_interval_seconds`. */
  readonly plegRelistInterval: Histogram;
  /** `kubelet_pleg_last_seen_seconds`: Unix time of the last relist. */
  readonly plegLastSeen: Gauge;
  /** `kubelet_started_pods_total`: sandboxes created. */
  readonly startedPods: Counter;
  /** `kubelet_started_pods_errors_total`. */
  readonly startedPodsErrors: Counter;
  /** `kubelet_started_containers_total{container_type}`. */
  readonly startedContainers: Counter<"container_type">;
  /** `kubelet_started_containers_errors_total{container_type,code}`. */
  readonly startedContainersErrors: Counter<"container_type" | "code">;
  /** `kubelet_restarted_pods_total{static}`. */
  readonly restartedPods: Counter<"static">;
  /** `kubelet_runtime_operations_total{operation_type}`. */
  readonly runtimeOperations: Counter<"operation_type">;
  /** `kubelet_runtime_operations_errors_total{operation_type}`. */
  readonly runtimeOperationsErrors: Counter<"operation_type">;
  /** `kubelet_runtime_operations_duration_seconds{operation_type}`. */
  readonly runtimeOperationsDuration: Histogram<"operation_type">;
  private podSource: (() => readonly Pod[]) | undefined;

  constructor(options: KubeletMetricsOptions = {}) {
    const registry = options.registry ?? createMetricsRegistry();
    this.registry = registry;
    const registers = [registry];
    const self = this;
    this.nodeName = new Gauge({
      name: "kubelet_node_name",
      help: "The node's name. The count is always 1.",
      labelNames: ["node"],
      registers,
    });
    if (options.nodeName) this.nodeName.set({ node: options.nodeName }, 1);
    this.runningPods = new Gauge({
      name: "kubelet_running_pods",
      help: "Number of pods that have a running pod sandbox",
      registers,
      collect() {
        if (self.podSource) this.set(countPodGauges(self.podSource()).runningPods);
      },
    });
    this.runningContainers = new Gauge({
      name: "kubelet_running_containers",
      help: "Number of containers currently running",
      labelNames: ["container_state"],
      registers,
      collect() {
        if (!self.podSource) return;
        const counts = countPodGauges(self.podSource()).containers;
        for (const state of CONTAINER_STATES) this.set({ container_state: state }, counts[state]);
      },
    });
    this.desiredPods = new Gauge({
      name: "kubelet_desired_pods",
      help: "The number of pods the kubelet is being instructed to run. static is true if the pod is not from the apiserver.",
      labelNames: ["static"],
      registers,
    });
    this.podStartDuration = new Histogram({
      name: "kubelet_pod_start_duration_seconds",
      help: "Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
      buckets: [...POD_START_DURATION_BUCKETS],
      registers,
    });
    this.podStartSliDuration = new Histogram({
      name: "kubelet_pod_start_sli_duration_seconds",
      help: "Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run, excluding the time spent pulling images",
      buckets: [...POD_START_DURATION_BUCKETS],
      registers,
    });
    this.podWorkerDuration = new Histogram({
      name: "kubelet_pod_worker_duration_seconds",
      help: "Duration in seconds to sync a single pod. Broken down by operation type: create, update, or sync",
      labelNames: ["operation_type"],
      buckets: [...DEFAULT_BUCKETS],
      registers,
    });
    this.podWorkerStartDuration = new Histogram({
      name: "kubelet_pod_worker_start_duration_seconds",
      help: "Duration in seconds from kubelet seeing a pod to starting a worker.",
      buckets: [...DEFAULT_BUCKETS],
      registers,
    });
    this.plegRelistDuration = new Histogram({
      name: "kubelet_pleg_relist_duration_seconds",
      help: "Duration in seconds for relisting pods in PLEG.",
      buckets: [...DEFAULT_BUCKETS],
      registers,
    });
    this.plegRelistInterval = new Histogram({
      name: "kubelet_pleg_relist_interval_seconds",
      help: "Interval in seconds between relisting in PLEG.",
      buckets: [...DEFAULT_BUCKETS],
      registers,
    });
    this.plegLastSeen = new Gauge({
      name: "kubelet_pleg_last_seen_seconds",
      help: "Timestamp in seconds when PLEG was last seen active.",
      registers,
    });
    this.startedPods = new Counter({
      name: "kubelet_started_pods_total",
      help: "Cumulative number of pods started",
      registers,
    });
    this.startedPodsErrors = new Counter({
      name: "kubelet_started_pods_errors_total",
      help: "Cumulative number of errors when starting pods",
      registers,
    });
    this.startedContainers = new Counter({
      name: "kubelet_started_containers_total",
      help: "Cumulative number of containers started",
      labelNames: ["container_type"],
      registers,
    });
    this.startedContainersErrors = new Counter({
      name: "kubelet_started_containers_errors_total",
      help: "Cumulative number of errors when starting containers",
      labelNames: ["container_type", "code"],
      registers,
    });
    this.restartedPods = new Counter({
      name: "kubelet_restarted_pods_total",
      help: "Number of pods that have been restarted because they were deleted and recreated with the same UID while the kubelet was watching them (common for static pods, extremely uncommon for API pods)",
      labelNames: ["static"],
      registers,
    });
    this.runtimeOperations = new Counter({
      name: "kubelet_runtime_operations_total",
      help: "Cumulative number of runtime operations by operation type.",
      labelNames: ["operation_type"],
      registers,
    });
    this.runtimeOperationsErrors = new Counter({
      name: "kubelet_runtime_operations_errors_total",
      help: "Cumulative number of runtime operation errors by operation type.",
      labelNames: ["operation_type"],
      registers,
    });
    this.runtimeOperationsDuration = new Histogram({
      name: "kubelet_runtime_operations_duration_seconds",
      help: "Duration in seconds of runtime operations. Broken down by operation type.",
      labelNames: ["operation_type"],
      buckets: [...RUNTIME_OPERATION_BUCKETS],
      registers,
    });
  }

  /**
   * Computes `kubelet_running_pods` and `kubelet_running_containers` at each
   * scrape from `pods()` (with statuses) via {@link countPodGauges}, for when no
   * worker maintains them.
   */
  derivePodGaugesFrom(pods: () => readonly Pod[]): void {
    this.podSource = pods;
  }

  /**
   * Records one pod start in `kubelet_pod_start_duration_seconds` and, when given,
   * `kubelet_pod_start_sli_duration_seconds`; shaped for the `Kubelet`'s
   * `onPodStarted` option (`onPodStarted: metrics.observePodStart`).
   */
  readonly observePodStart = (
    _pod: Pod,
    startDurationSeconds: number,
    start?: { readonly sliDurationSeconds: number },
  ): void => {
    this.podStartDuration.observe(startDurationSeconds);
    if (start !== undefined) this.podStartSliDuration.observe(start.sliDurationSeconds);
  };
}
