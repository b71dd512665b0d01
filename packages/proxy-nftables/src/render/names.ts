/**
 * Names in kube-proxy's nftables layout: the table, its fixed chains, sets and maps,
 * and the per-service-port chain and affinity-set names (`<prefix><HASH8>-ns/name/proto/port`).
 *
 * @module
 */
import { type IPFamily, type Protocol, type ServicePortName, sha256Base32 } from "@worknode/core";

/** The table of both families (`ip kube-proxy`, `ip6 kube-proxy`), as kube-proxy names it. */
export const NFTABLES_TABLE = "kube-proxy";

/** nft's family keyword for an IP family. */
export function nftFamily(family: IPFamily): "ip" | "ip6" {
  return family === "IPv4" ? "ip" : "ip6";
}

/** Fixed regular chains. */
export const SERVICES_CHAIN = "services";
export const MASQUERADING_CHAIN = "masquerading";
export const MARK_MASQ_CHAIN = "mark-for-masquerade";
export const FIREWALL_CHECK_CHAIN = "firewall-check";
export const SERVICE_ENDPOINTS_CHECK_CHAIN = "service-endpoints-check";
export const NODEPORT_ENDPOINTS_CHECK_CHAIN = "nodeport-endpoints-check";
export const CLUSTER_IPS_CHECK_CHAIN = "cluster-ips-check";
export const REJECT_CHAIN = "reject-chain";

/** Sets and maps. */
export const CLUSTER_IPS_SET = "cluster-ips";
export const NODEPORT_IPS_SET = "nodeport-ips";
/** `endpoint ip . endpoint ip` of every endpoint: DNATed connections from an endpoint to itself are masqueraded. */
export const HAIRPIN_SET = "hairpin-endpoints";
export const SERVICE_IPS_MAP = "service-ips";
export const SERVICE_NODEPORTS_MAP = "service-nodeports";
export const NO_ENDPOINT_SERVICES_MAP = "no-endpoint-services";
export const NO_ENDPOINT_NODEPORTS_MAP = "no-endpoint-nodeports";
export const FIREWALL_IPS_MAP = "firewall-ips";

/** Per-service-port chain and set name prefixes (kube-proxy's). */
export const SERVICE_CHAIN_PREFIX = "service-";
export const LOCAL_CHAIN_PREFIX = "local-";
export const EXTERNAL_CHAIN_PREFIX = "external-";
export const FIREWALL_CHAIN_PREFIX = "firewall-";
export const AFFINITY_SET_PREFIX = "affinity-";

/** nft's limit on object names, less the longest prefix (kube-proxy's arithmetic). */
const NAME_BASE_MAX = 256 - 16;

/** The first 8 characters of the RFC 4648 base32 encoding of sha256(`text`). */
export function nameHash(text: string): string {
  return sha256Base32(text, 8);
}

/** `HASH8-name`, truncated with `...` past nft's name limit (kube-proxy's `hashAndTruncate`). */
export function hashAndTruncate(name: string): string {
  const out = `${nameHash(name)}-${name}`;
  return out.length > NAME_BASE_MAX ? `${out.slice(0, NAME_BASE_MAX - 3)}...` : out;
}

/** Lowercase protocol keyword (`tcp`, `udp`, `sctp`). */
export function nftProtocol(protocol: Protocol): "tcp" | "udp" | "sctp" {
  return protocol === "TCP" ? "tcp" : protocol === "UDP" ? "udp" : "sctp";
}

/** `HASH8-namespace/name/protocol/portName`: the base of a service port's chain names. */
export function servicePortNameBase(
  name: Pick<ServicePortName, "namespace" | "name" | "port">,
  protocol: Protocol,
): string {
  return hashAndTruncate(`${name.namespace}/${name.name}/${nftProtocol(protocol)}/${name.port}`);
}

/** The per-service-port chains of one service port. */
export interface ServicePortChainNames {
  /** `service-…`: Cluster-policy endpoint selection. */
  readonly cluster: string;
  /** `local-…`: Local-policy endpoint selection. */
  readonly local: string;
  /** `external-…`: node ports, external IPs and load-balancer IPs. */
  readonly external: string;
  /** `firewall-…`: `loadBalancerSourceRanges`. */
  readonly firewall: string;
}

/** The chain names of a service port. */
export function servicePortChainNames(
  name: Pick<ServicePortName, "namespace" | "name" | "port">,
  protocol: Protocol,
): ServicePortChainNames {
  const base = servicePortNameBase(name, protocol);
  return {
    cluster: SERVICE_CHAIN_PREFIX + base,
    local: LOCAL_CHAIN_PREFIX + base,
    external: EXTERNAL_CHAIN_PREFIX + base,
    firewall: FIREWALL_CHAIN_PREFIX + base,
  };
}

/**
 * `affinity-HASH8-namespace/name/protocol/portName__ip/port`: the ClientIP affinity set of
 * one endpoint (IPv6 colons become dots, as kube-proxy writes them).
 */
export function affinitySetName(
  name: Pick<ServicePortName, "namespace" | "name" | "port">,
  protocol: Protocol,
  endpointIP: string,
  endpointPort: number,
): string {
  const ip = endpointIP.replaceAll(":", ".");
  return (
    AFFINITY_SET_PREFIX +
    hashAndTruncate(
      `${name.namespace}/${name.name}/${nftProtocol(protocol)}/${name.port}__${ip}/${endpointPort}`,
    )
  );
}

/** Per-service-port chains have a `/` in their name; the fixed chains never do (kube-proxy's rule). */
export function isServicePortChain(name: string): boolean {
  return name.includes("/");
}
