/**
 * Pure rendering of kube-proxy-style iptables payloads.
 *
 * @module
 */
export * from "./active-chains.js";
export * from "./chain-names.js";
export * from "./probability.js";
export * from "./render.js";
