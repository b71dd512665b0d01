/**
 * What every service-proxy backend decides the same way for one service port of one IP
 * family, before it writes anything of its own: which endpoints serve internal and
 * external traffic, whether there are any, and which of the external paths (node port,
 * external IPs, load-balancer IPs with source ranges) are in use. Pure.
 *
 * @module
 */
import { cidrContains, type IPFamily, parseCidr } from "../net/ip.js";
import type { Endpoint, ServicePort } from "./model.js";
import { type CategorizedEndpoints, categorizeEndpoints, type NodeTopology } from "./topology.js";

/** The traffic decisions of one service port in one family; see {@link planServicePortTraffic}. */
export interface ServicePortTraffic {
  /** The endpoints by use (cluster / local / reachable), from {@link categorizeEndpoints}. */
  readonly endpoints: CategorizedEndpoints;
  /** `externalIPs` of the family. */
  readonly externalIPs: readonly string[];
  /** Load-balancer ingress IPs of the family. */
  readonly loadBalancerIPs: readonly string[];
  /** `loadBalancerSourceRanges` of the family. */
  readonly loadBalancerSourceRanges: readonly string[];
  /** Some endpoint is usable (ready, or serving and terminating) anywhere. */
  readonly hasEndpoints: boolean;
  /** Cluster-IP traffic has endpoints (with `internalTrafficPolicy: Local`, local ones). */
  readonly hasInternalEndpoints: boolean;
  /** External traffic has endpoints (with `externalTrafficPolicy: Local`, local ones). */
  readonly hasExternalEndpoints: boolean;
  /** A node port, external IP or load-balancer IP exists. */
  readonly externallyAccessible: boolean;
  /**
   * The external-traffic path is programmed: there are endpoints and external
   * destinations. (It is needed even without externally usable endpoints, to short-circuit
   * traffic from the node and its pods to the cluster path.)
   */
  readonly usesExternalPath: boolean;
  /** Load-balancer source ranges are enforced (endpoints, LB IPs and ranges exist). */
  readonly usesFirewall: boolean;
  /**
   * The node's own address is inside a source range: the load-balancer IPs are allowed as
   * sources too (a VIP-style load balancer's IP is local, so node traffic to it loops back
   * with the VIP as source).
   */
  readonly firewallAllowsLoadBalancerIPs: boolean;
}

function familyOf(ip: string): IPFamily {
  return ip.includes(":") ? "IPv6" : "IPv4";
}

/** The addresses of `list` in `family` (the list itself when all are). */
export function addressesOfFamily(list: readonly string[], family: IPFamily): readonly string[] {
  return list.every((ip) => familyOf(ip) === family) ? list : list.filter((ip) => familyOf(ip) === family);
}

/** The endpoints of `list` in `family` (the list itself when all are; none for undefined). */
export function endpointsOfFamily(
  list: readonly Endpoint[] | undefined,
  family: IPFamily,
): readonly Endpoint[] {
  if (list === undefined || list.length === 0) return [];
  return list.every((ep) => ep.family === family) ? list : list.filter((ep) => ep.family === family);
}

/**
 * Decides a service port's traffic handling in one family, as kube-proxy's backends do.
 *
 * @param sp the service port
 * @param endpoints its endpoints of `family`
 * @param topology this node (name, zone, labels) for traffic policies and topology hints
 * @param family the family programmed
 * @param nodeIP this node's address of `family`, if any (for source ranges)
 */
export function planServicePortTraffic(
  sp: ServicePort,
  endpoints: readonly Endpoint[],
  topology: NodeTopology,
  family: IPFamily,
  nodeIP?: string,
): ServicePortTraffic {
  const externalIPs = addressesOfFamily(sp.externalIPs, family);
  const loadBalancerIPs = addressesOfFamily(sp.loadBalancerIPs, family);
  const loadBalancerSourceRanges = addressesOfFamily(sp.loadBalancerSourceRanges, family);
  const externallyAccessible = sp.nodePort !== 0 || externalIPs.length > 0 || loadBalancerIPs.length > 0;
  const cat = categorizeEndpoints(sp, endpoints, topology);
  const localCount = cat.localEndpoints?.length ?? 0;
  const hasEndpoints = cat.hasAnyEndpoints;
  const usesFirewall = hasEndpoints && loadBalancerIPs.length > 0 && loadBalancerSourceRanges.length > 0;
  let firewallAllowsLoadBalancerIPs = false;
  if (usesFirewall && nodeIP !== undefined) {
    firewallAllowsLoadBalancerIPs = loadBalancerSourceRanges.some((text) => {
      const cidr = parseCidr(text);
      return cidr !== undefined && cidrContains(cidr, nodeIP);
    });
  }
  return {
    endpoints: cat,
    externalIPs,
    loadBalancerIPs,
    loadBalancerSourceRanges,
    hasEndpoints,
    hasInternalEndpoints: hasEndpoints && (!sp.internalPolicyLocal || localCount > 0),
    hasExternalEndpoints: hasEndpoints && (!sp.externalPolicyLocal || localCount > 0),
    externallyAccessible,
    usesExternalPath: hasEndpoints && externallyAccessible,
    usesFirewall,
    firewallAllowsLoadBalancerIPs,
  };
}
