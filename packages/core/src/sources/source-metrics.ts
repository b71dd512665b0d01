/**
 * Metrics shared by the object sources.
 *
 * @module
 */
import { Counter, type Registry } from "prom-client";

/** Name of the counter of rejected input objects. */
export const SOURCE_INVALID_OBJECTS_METRIC = "worknode_source_invalid_objects_total";

/**
 * Returns the counter `worknode_source_invalid_objects_total{source,kind}` of
 * `registry`, creating it on first use, so that several sources can share one registry.
 * `source` names the source (such as `services-file`), `kind` the object kind.
 */
export function sourceInvalidObjectsCounter(registry: Registry): Counter<"source" | "kind"> {
  const existing = registry.getSingleMetric(SOURCE_INVALID_OBJECTS_METRIC);
  if (existing instanceof Counter) return existing as Counter<"source" | "kind">;
  return new Counter({
    name: SOURCE_INVALID_OBJECTS_METRIC,
    help: "Input objects rejected by a source (invalid manifest, YAML error, duplicate name …).",
    labelNames: ["source", "kind"] as const,
    registers: [registry],
  });
}
