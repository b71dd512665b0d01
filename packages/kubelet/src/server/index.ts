/**
 * kubelet's HTTP endpoints, its metrics, and reading container logs.
 *
 * @module
 */

export * from "./auth/index.js";
export * from "./container-logs.js";
export * from "./cri-log.js";
export * from "./kube-status.js";
export * from "./kubelet-metrics.js";
export * from "./kubelet-server.js";
export * from "./log-locator.js";
export * from "./node-stats.js";
export * from "./resource-metrics.js";
export * from "./runtime-locator.js";
export * from "./serving-cert.js";
export * from "./stats-summary.js";
export * from "./stats-types.js";
export * from "./streaming-backend.js";
export * from "./streaming-proxy.js";
export * from "./streaming-request.js";
export * from "./summary-provider.js";
