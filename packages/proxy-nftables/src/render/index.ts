/**
 * Pure rendering of kube-proxy-style nftables transactions.
 *
 * @module
 */
export * from "./element-index.js";
export * from "./names.js";
export * from "./plan.js";
export * from "./render.js";
