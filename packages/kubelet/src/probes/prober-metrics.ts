/**
 * kubelet's prober metrics (served on `/metrics/probes`):
 * `prober_probe_total{probe_type,result,container,pod,namespace,pod_uid}` and
 * `prober_probe_duration_seconds{probe_type,container,pod,namespace}`.
 *
 * @module
 */
import { Counter, createMetricsRegistry, Histogram, type Registry } from "@worknode/core";
import type { ProbeKind } from "../probe-tracker.js";

/** The prober metrics and the registry they live in. */
export class ProberMetrics {
  /** Registry holding the two metrics (serve it on `/metrics/probes`). */
  readonly registry: Registry;
  /** `prober_probe_total`: probe runs by type and result (`successful`, `failed`, `unknown`). */
  readonly probeTotal: Counter<"probe_type" | "result" | "container" | "pod" | "namespace" | "pod_uid">;
  /** `prober_probe_duration_seconds`: duration of probe runs. */
  readonly probeDuration: Histogram<"probe_type" | "container" | "pod" | "namespace">;

  constructor(registry: Registry = createMetricsRegistry()) {
    this.registry = registry;
    this.probeTotal = new Counter({
      name: "prober_probe_total",
      help: "Cumulative number of a liveness, readiness or startup probe for a container by result.",
      labelNames: ["probe_type", "result", "container", "pod", "namespace", "pod_uid"],
      registers: [registry],
    });
    this.probeDuration = new Histogram({
      name: "prober_probe_duration_seconds",
      help: "Duration in seconds for a probe response.",
      labelNames: ["probe_type", "container", "pod", "namespace"],
      registers: [registry],
    });
  }

  /** Records one probe run. */
  record(
    kind: ProbeKind,
    result: "successful" | "failed" | "unknown",
    target: { container: string; pod: string; namespace: string; podUid: string },
    seconds: number,
  ): void {
    const probeType = probeTypeLabel(kind);
    this.probeTotal.inc({
      probe_type: probeType,
      result,
      container: target.container,
      pod: target.pod,
      namespace: target.namespace,
      pod_uid: target.podUid,
    });
    this.probeDuration.observe(
      { probe_type: probeType, container: target.container, pod: target.pod, namespace: target.namespace },
      seconds,
    );
  }
}

/** kubelet's `probe_type` label value: `Liveness`, `Readiness` or `Startup`. */
export function probeTypeLabel(kind: ProbeKind): string {
  return kind === "liveness" ? "Liveness" : kind === "readiness" ? "Readiness" : "Startup";
}
