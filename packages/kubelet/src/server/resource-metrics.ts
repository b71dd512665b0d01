/**
 * kubelet's `/metrics/resource` (the resource metrics collector, read by
 * metrics-server) rendered from a Summary (pure): node, pod and container CPU
 * (cumulative core-seconds) and working-set memory, container start times,
 * swap when reported, and the scrape-error gauges. Samples carry the time of
 * the reading they come from, as kubelet's do.
 *
 * @module
 */
import type { PodStats, Summary, SummaryContainerStats } from "./stats-types.js";

/** Content type of the Prometheus text format. */
export const RESOURCE_METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: "counter" | "gauge";
  readonly samples: string[];
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function labels(l: Readonly<Record<string, string>>): string {
  const keys = Object.keys(l).sort();
  if (keys.length === 0) return "";
  return `{${keys.map((k) => `${k}="${escapeLabel(l[k] ?? "")}"`).join(",")}}`;
}

function sample(name: string, l: Readonly<Record<string, string>>, value: number, time?: string): string {
  const ts = time ? Date.parse(time) : Number.NaN;
  return `${name}${labels(l)} ${formatValue(value)}${Number.isFinite(ts) ? ` ${ts}` : ""}`;
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "+Inf" : "-Inf";
  return String(v);
}

function families(): Record<string, Family> {
  const f = (name: string, type: Family["type"], help: string): Family => ({ name, type, help, samples: [] });
  return {
    containerCpu: f(
      "container_cpu_usage_seconds_total",
      "counter",
      "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
    ),
    containerMemory: f(
      "container_memory_working_set_bytes",
      "gauge",
      "[STABLE] Current working set of the container in bytes",
    ),
    containerStart: f(
      "container_start_time_seconds",
      "gauge",
      "[STABLE] Start time of the container since unix epoch in seconds",
    ),
    containerSwap: f(
      "container_swap_usage_bytes",
      "gauge",
      "[ALPHA] Current amount of the container swap usage in bytes. Reported only on non-windows systems",
    ),
    nodeCpu: f(
      "node_cpu_usage_seconds_total",
      "counter",
      "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
    ),
    nodeMemory: f(
      "node_memory_working_set_bytes",
      "gauge",
      "[STABLE] Current working set of the node in bytes",
    ),
    nodeSwap: f(
      "node_swap_usage_bytes",
      "gauge",
      "[ALPHA] Current swap usage of the node in bytes. Reported only on non-windows systems",
    ),
    podCpu: f(
      "pod_cpu_usage_seconds_total",
      "counter",
      "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
    ),
    podMemory: f("pod_memory_working_set_bytes", "gauge", "[STABLE] Current working set of the pod in bytes"),
    podSwap: f(
      "pod_swap_usage_bytes",
      "gauge",
      "[ALPHA] Current amount of the pod swap usage in bytes. Reported only on non-windows systems",
    ),
    resourceScrapeError: f(
      "resource_scrape_error",
      "gauge",
      "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
    ),
    scrapeError: f(
      "scrape_error",
      "gauge",
      "[ALPHA] (Deprecated since 1.29.0) 1 if there was an error while getting container metrics, 0 otherwise",
    ),
  };
}

function addContainer(fam: Record<string, Family>, pod: PodStats, c: SummaryContainerStats): void {
  const l = { container: c.name, pod: pod.podRef.name, namespace: pod.podRef.namespace };
  const start = Date.parse(c.startTime);
  if (Number.isFinite(start) && start > 0)
    fam.containerStart!.samples.push(sample(fam.containerStart!.name, l, start / 1000));
  if (c.cpu?.usageCoreNanoSeconds !== undefined) {
    fam.containerCpu!.samples.push(
      sample(fam.containerCpu!.name, l, c.cpu.usageCoreNanoSeconds / 1e9, c.cpu.time),
    );
  }
  if (c.memory?.workingSetBytes !== undefined) {
    fam.containerMemory!.samples.push(
      sample(fam.containerMemory!.name, l, c.memory.workingSetBytes, c.memory.time),
    );
  }
  if (c.swap?.swapUsageBytes !== undefined) {
    fam.containerSwap!.samples.push(sample(fam.containerSwap!.name, l, c.swap.swapUsageBytes, c.swap.time));
  }
}

/**
 * Renders `/metrics/resource` from a summary; with `summary` undefined (it
 * could not be built) only the scrape-error gauges, set to 1.
 */
export function renderResourceMetrics(summary: Summary | undefined): string {
  const fam = families();
  const error = summary ? 0 : 1;
  fam.resourceScrapeError!.samples.push(sample(fam.resourceScrapeError!.name, {}, error));
  fam.scrapeError!.samples.push(sample(fam.scrapeError!.name, {}, error));
  if (summary) {
    const { node } = summary;
    if (node.cpu?.usageCoreNanoSeconds !== undefined) {
      fam.nodeCpu!.samples.push(
        sample(fam.nodeCpu!.name, {}, node.cpu.usageCoreNanoSeconds / 1e9, node.cpu.time),
      );
    }
    if (node.memory?.workingSetBytes !== undefined) {
      fam.nodeMemory!.samples.push(
        sample(fam.nodeMemory!.name, {}, node.memory.workingSetBytes, node.memory.time),
      );
    }
    if (node.swap?.swapUsageBytes !== undefined) {
      fam.nodeSwap!.samples.push(sample(fam.nodeSwap!.name, {}, node.swap.swapUsageBytes, node.swap.time));
    }
    for (const pod of summary.pods) {
      for (const c of pod.containers) addContainer(fam, pod, c);
      const l = { pod: pod.podRef.name, namespace: pod.podRef.namespace };
      if (pod.cpu?.usageCoreNanoSeconds !== undefined) {
        fam.podCpu!.samples.push(
          sample(fam.podCpu!.name, l, pod.cpu.usageCoreNanoSeconds / 1e9, pod.cpu.time),
        );
      }
      if (pod.memory?.workingSetBytes !== undefined) {
        fam.podMemory!.samples.push(
          sample(fam.podMemory!.name, l, pod.memory.workingSetBytes, pod.memory.time),
        );
      }
      if (pod.swap?.swapUsageBytes !== undefined) {
        fam.podSwap!.samples.push(sample(fam.podSwap!.name, l, pod.swap.swapUsageBytes, pod.swap.time));
      }
    }
  }
  const out: string[] = [];
  for (const f of Object.values(fam).sort((a, b) => a.name.localeCompare(b.name))) {
    if (f.samples.length === 0) continue;
    out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`, ...f.samples);
  }
  return `${out.join("\n")}\n`;
}
