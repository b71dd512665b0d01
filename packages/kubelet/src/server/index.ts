/**
 * kubelet's HTTP endpoints, its metrics, and reading container logs.
 *
 * @module
 */
export * from "./container-logs.js";
export * from "./cri-log.js";
export * from "./kubelet-metrics.js";
export * from "./kubelet-server.js";
export * from "./log-locator.js";
export * from "./serving-cert.js";
