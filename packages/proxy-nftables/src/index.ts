/**
 * `@worknode/proxy-nftables`: the nftables service-proxy backend, in kube-proxy's
 * nftables layout (`table ip kube-proxy` / `table ip6 kube-proxy`).
 *
 * @packageDocumentation
 */
export * from "./proxier.js";
export * from "./render/index.js";
