/**
 * `@worknode/proxy-iptables`: the iptables service-proxy backend, laid out rule for
 * rule like kube-proxy's iptables mode.
 *
 * @packageDocumentation
 */

export * from "./command.js";
export * from "./conntrack.js";
export * from "./iptables.js";
export * from "./proxier.js";
export * from "./render/index.js";
