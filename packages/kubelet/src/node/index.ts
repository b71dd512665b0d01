/**
 * The kubelet's Node lifecycle: the Node object (pure builder and reconcile), its
 * registration, its Lease and its status.
 *
 * @module
 */
export * from "./conditions.js";
export * from "./constants.js";
export * from "./labels.js";
export * from "./lease-controller.js";
export * from "./machine-info.js";
export * from "./node-builder.js";
export * from "./node-controller.js";
export * from "./node-reconcile.js";
export * from "./registrar.js";
export * from "./resources.js";
export * from "./runtime.js";
export * from "./status-updater.js";
export * from "./taints.js";
