/**
 * `@worknode/kubelet`: a kubelet as a library. The pure decision layer decides
 * what to run, kill and restart, how containers and sandboxes are configured,
 * what status to report, whether a pod is admitted, and when to probe; the
 * runtime layer (`Kubelet`, pod workers, PLEG, image puller, volumes) executes
 * those decisions over CRI for static / standalone pods.
 *
 * @packageDocumentation
 */

export * from "./admission.js";
export * from "./api/index.js";
export * from "./api-objects/index.js";
export * from "./container-config.js";
export * from "./container-hash.js";
export * from "./crash-loop.js";
export * from "./credentials/index.js";
export * from "./dns.js";
export * from "./env.js";
export * from "./events/index.js";
export * from "./expansion.js";
export * from "./labels.js";
export * from "./log-paths.js";
export * from "./logs/index.js";
export * from "./node/index.js";
export * from "./pod-actions.js";
export * from "./pod-conditions.js";
export * from "./pod-spec.js";
export * from "./pod-start-latency.js";
export * from "./pod-status.js";
export * from "./probe-tracker.js";
export * from "./probes/index.js";
export * from "./qos.js";
export * from "./quantity.js";
export * from "./resources.js";
export * from "./runtime/index.js";
export * from "./runtime-status.js";
export * from "./sandbox-config.js";
export * from "./server/index.js";
export * from "./status-merge.js";
export * from "./termination-message.js";
export * from "./termination-order.js";
export * from "./volumes/index.js";
