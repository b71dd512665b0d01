/**
 * API-backed volumes (`configMap`, `secret`, `downwardAPI`, `projected`): pure
 * projections, kubelet's atomic writer, and their set-up on the host.
 *
 * @module
 */
export * from "./api-volumes.js";
export * from "./atomic-writer.js";
export * from "./projection.js";
