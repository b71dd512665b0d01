/**
 * Container log rotation (kubelet's container log manager): a pure plan of
 * which files to delete, compress and rotate, and the manager carrying it out
 * over CRI `ReopenContainerLog`.
 *
 * @module
 */
export * from "./container-log-manager.js";
export * from "./log-rotation-plan.js";
