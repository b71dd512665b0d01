/**
 * API-backed volumes (`configMap`, `secret`, `downwardAPI`, `projected`): pure
 * projections, kubelet's atomic writer, and their set-up on the host; volume
 * ownership for a pod's `fsGroup` (pure decisions and the walk).
 *
 * @module
 */
export * from "./api-volumes.js";
export * from "./atomic-writer.js";
export * from "./ownership.js";
export * from "./projection.js";
export * from "./set-volume-ownership.js";
