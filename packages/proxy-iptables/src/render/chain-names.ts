/**
 * Chain names, exactly as kube-proxy's iptables mode computes them, so that a
 * node can move between kube-proxy and worknode without orphaned chains.
 *
 * @module
 */
import { type Protocol, type ServicePortName, sha256Base32 } from "@worknode/core";

/** nat and filter: the chain jumped to from PREROUTING / OUTPUT (nat) and FORWARD / OUTPUT (filter). */
export const KUBE_SERVICES = "KUBE-SERVICES";
/** filter: rejects / drops traffic to external IPs, load-balancer IPs and node ports without endpoints. */
export const KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES";
/** nat: node-port dispatch; filter: health-check node ports accepted. */
export const KUBE_NODEPORTS = "KUBE-NODEPORTS";
/** nat: masquerades packets carrying the masquerade mark. */
export const KUBE_POSTROUTING = "KUBE-POSTROUTING";
/** nat: sets the masquerade mark. */
export const KUBE_MARK_MASQ = "KUBE-MARK-MASQ";
/** filter: accepts forwarded service traffic. */
export const KUBE_FORWARD = "KUBE-FORWARD";
/** filter: drops load-balancer traffic not allowed by `loadBalancerSourceRanges`. */
export const KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL";
/** mangle, nat, filter: an empty chain whose disappearance shows that the tables were flushed. */
export const KUBE_PROXY_CANARY = "KUBE-PROXY-CANARY";
/**
 * filter: kubelet's firewall chain, which kube-proxy duplicates: drops martian packets to
 * 127.0.0.0/8 from non-loopback sources (the guard that makes `route_localnet` safe for
 * localhost node ports). Jumped to from INPUT and OUTPUT.
 */
export const KUBE_FIREWALL = "KUBE-FIREWALL";
/** mangle, nat, filter: the kubelet's canary chain (a kubelet that manages iptables runs here). */
export const KUBE_KUBELET_CANARY = "KUBE-KUBELET-CANARY";

/** Prefix of the per-service-port chain for Cluster traffic policy. */
export const SVC_PREFIX = "KUBE-SVC-";
/** Prefix of the per-service-port chain for Local traffic policy. */
export const SVL_PREFIX = "KUBE-SVL-";
/** Prefix of the per-service-port chain for external destinations. */
export const EXT_PREFIX = "KUBE-EXT-";
/** Prefix of the per-service-port `loadBalancerSourceRanges` firewall chain. */
export const FW_PREFIX = "KUBE-FW-";
/** Prefix of the per-endpoint DNAT chain. */
export const SEP_PREFIX = "KUBE-SEP-";

const SERVICE_CHAIN_PREFIXES = [SVC_PREFIX, SVL_PREFIX, EXT_PREFIX, FW_PREFIX, SEP_PREFIX] as const;

/** `base32(sha256(text))[:16]`, kube-proxy's chain-name hash. */
export function chainHash(text: string): string {
  return sha256Base32(text, 16);
}

/**
 * kube-proxy's `ServicePortName.String()`: `namespace/name:port`, or `namespace/name`
 * for an unnamed port.
 */
export function servicePortNameString(name: Pick<ServicePortName, "namespace" | "name" | "port">): string {
  return name.port === "" ? `${name.namespace}/${name.name}` : `${name.namespace}/${name.name}:${name.port}`;
}

/** Lowercase protocol as used in chain hashes and `-p` / `-m` arguments. */
export function lowerProtocol(protocol: Protocol): "tcp" | "udp" | "sctp" {
  return protocol === "TCP" ? "tcp" : protocol === "UDP" ? "udp" : "sctp";
}

/** The four per-service-port chain names of one service port. */
export interface ServicePortChains {
  /** `KUBE-SVC-…`: Cluster-policy endpoint dispatch. */
  readonly svc: string;
  /** `KUBE-SVL-…`: Local-policy endpoint dispatch. */
  readonly svl: string;
  /** `KUBE-EXT-…`: external destinations (node ports, external IPs, load-balancer IPs). */
  readonly ext: string;
  /** `KUBE-FW-…`: `loadBalancerSourceRanges` filter. */
  readonly fw: string;
}

/**
 * Chain names of a service port: each prefix plus `chainHash(nameString + protocol)`.
 *
 * @param nameString {@link servicePortNameString} of the port
 * @param protocol lowercase protocol
 */
export function servicePortChains(nameString: string, protocol: string): ServicePortChains {
  const h = chainHash(nameString + protocol);
  return { svc: SVC_PREFIX + h, svl: SVL_PREFIX + h, ext: EXT_PREFIX + h, fw: FW_PREFIX + h };
}

/**
 * `KUBE-SEP-…` chain of one endpoint of a service port.
 *
 * @param nameString {@link servicePortNameString} of the port
 * @param protocol lowercase protocol
 * @param address endpoint `ip:port` (`[ip]:port` for IPv6)
 */
export function endpointChain(nameString: string, protocol: string, address: string): string {
  return SEP_PREFIX + chainHash(nameString + protocol + address);
}

/** True for per-service chains (`KUBE-SVC-`, `KUBE-SVL-`, `KUBE-EXT-`, `KUBE-FW-`, `KUBE-SEP-`). */
export function isServiceChainName(chain: string): boolean {
  for (const p of SERVICE_CHAIN_PREFIXES) if (chain.startsWith(p)) return true;
  return false;
}
