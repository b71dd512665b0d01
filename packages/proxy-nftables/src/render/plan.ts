/**
 * One service port worked out for nftables: the per-service-port chains with their rules,
 * the set and map elements it contributes, and its affinity sets. Pure; plans are cached
 * by service-port identity (snapshots share unchanged ports and endpoint lists).
 *
 * @module
 */
import {
  type Endpoint,
  type IPFamily,
  type NodeTopology,
  planServicePortTraffic,
  type ServicePort,
} from "@worknode/core";
import {
  affinitySetName,
  CLUSTER_IPS_SET,
  FIREWALL_IPS_MAP,
  HAIRPIN_SET,
  MARK_MASQ_CHAIN,
  NO_ENDPOINT_NODEPORTS_MAP,
  NO_ENDPOINT_SERVICES_MAP,
  nftProtocol,
  REJECT_CHAIN,
  SERVICE_IPS_MAP,
  SERVICE_NODEPORTS_MAP,
  type ServicePortChainNames,
  servicePortChainNames,
} from "./names.js";

/** One element of a set or map: `key` (and `value` for maps) in nft syntax. */
export interface PlannedElement {
  readonly set: string;
  readonly key: string;
  /** The map value (`goto chain`, `drop`); undefined for sets. */
  readonly value?: string;
}

/** A per-service-port chain and its rules (nft rule text, without `add rule <table> <chain>`). */
export interface PlannedChain {
  readonly name: string;
  readonly rules: readonly string[];
}

/** A dynamic set holding the clients of one endpoint (ClientIP affinity). */
export interface PlannedAffinitySet {
  readonly name: string;
  readonly timeoutSeconds: number;
}

/** What every plan depends on besides the port and its endpoints. */
export interface PlanContext {
  readonly family: IPFamily;
  readonly topology: NodeTopology;
  readonly clusterCIDR: string | undefined;
  readonly masqueradeAll: boolean;
  /** The node's address of this family (load-balancer source ranges containing it let the node in). */
  readonly nodeIP: string | undefined;
  /** All of the above as one string: a cached plan is reused only under an equal config. */
  readonly config: string;
}

/** One service port of one family, worked out. */
export interface PortPlan {
  readonly sp: ServicePort;
  readonly raw: readonly Endpoint[] | undefined;
  readonly config: string;
  readonly clusterIP: string;
  /** Per-service-port chains in the order they are written (external, firewall, cluster, local). */
  readonly chains: readonly PlannedChain[];
  readonly elements: readonly PlannedElement[];
  readonly affinitySets: readonly PlannedAffinitySet[];
  /** Endpoints of the family the port has (usable or not). */
  readonly endpointCount: number;
  /** Rules in `chains`. */
  readonly ruleCount: number;
}

const planCaches: Record<IPFamily, WeakMap<ServicePort, PortPlan>> = {
  IPv4: new WeakMap(),
  IPv6: new WeakMap(),
};
const chainNameCache = new WeakMap<ServicePort, ServicePortChainNames>();

function chainNamesOf(sp: ServicePort): ServicePortChainNames {
  let n = chainNameCache.get(sp);
  if (n === undefined) {
    n = servicePortChainNames(sp.name, sp.protocol);
    chainNameCache.set(sp, n);
  }
  return n;
}

/** `ip:port` / `[ip]:port`, as `dnat to` takes it. */
function dnatTarget(ep: Endpoint): string {
  return ep.family === "IPv6" ? `[${ep.ip}]:${ep.port}` : `${ep.ip}:${ep.port}`;
}

/**
 * Plans one service port (cached by identity of the port and its endpoint list).
 *
 * Chains, as kube-proxy's nftables mode writes them, except that endpoints are picked
 * inline instead of through one `endpoint-…` chain each: the policy chain has one rule
 * per endpoint, `numgen random mod (n-i) 0 … dnat to ip:port` (rule i wins with
 * probability 1/(n-i), so each endpoint gets 1/n), preceded for ClientIP affinity by one
 * rule per endpoint that sends clients in its `affinity-…` set back to it. Keeping the
 * number of chains at the number of service ports keeps every nft transaction cheap: nft
 * reads all chains of the table before it applies a rule change.
 */
export function planPort(
  sp: ServicePort,
  clusterIP: string,
  raw: readonly Endpoint[] | undefined,
  endpoints: readonly Endpoint[],
  ctx: PlanContext,
): PortPlan {
  const cache = planCaches[ctx.family];
  const cached = cache.get(sp);
  if (
    cached !== undefined &&
    cached.raw === raw &&
    cached.config === ctx.config &&
    cached.clusterIP === clusterIP
  )
    return cached;

  const family = ctx.family;
  const ipX = family === "IPv4" ? "ip" : "ip6";
  const proto = nftProtocol(sp.protocol);
  const names = chainNamesOf(sp);
  const traffic = planServicePortTraffic(sp, endpoints, ctx.topology, family, ctx.nodeIP);
  const {
    externalIPs,
    loadBalancerIPs: lbIPs,
    hasEndpoints,
    hasInternalEndpoints,
    hasExternalEndpoints,
  } = traffic;
  const cat = traffic.endpoints;
  const clusterEndpoints = cat.clusterEndpoints ?? [];
  const localEndpoints = cat.localEndpoints ?? [];
  const internalChain = sp.internalPolicyLocal ? names.local : names.cluster;
  const externalPolicyChain = sp.externalPolicyLocal ? names.local : names.cluster;
  const usesExternalChain = traffic.usesExternalPath;
  const usesFirewallChain = traffic.usesFirewall;
  // No endpoints at all: reject; endpoints, but none for this traffic (Local policy): drop.
  const noEndpointVerdict = (has: boolean) =>
    hasEndpoints ? (has ? undefined : "drop") : `goto ${REJECT_CHAIN}`;
  const internalVerdict = noEndpointVerdict(hasInternalEndpoints);
  const externalVerdict = noEndpointVerdict(hasExternalEndpoints);

  const elements: PlannedElement[] = [{ set: CLUSTER_IPS_SET, key: clusterIP }];
  const target = (ip: string) => `${ip} . ${proto} . ${sp.port}`;
  if (internalVerdict === undefined) {
    elements.push({ set: SERVICE_IPS_MAP, key: target(clusterIP), value: `goto ${internalChain}` });
  } else {
    elements.push({ set: NO_ENDPOINT_SERVICES_MAP, key: target(clusterIP), value: internalVerdict });
  }
  for (const ip of [...externalIPs, ...lbIPs]) {
    if (hasEndpoints)
      elements.push({ set: SERVICE_IPS_MAP, key: target(ip), value: `goto ${names.external}` });
    if (externalVerdict !== undefined)
      elements.push({ set: NO_ENDPOINT_SERVICES_MAP, key: target(ip), value: externalVerdict });
  }
  if (usesFirewallChain) {
    for (const ip of lbIPs)
      elements.push({ set: FIREWALL_IPS_MAP, key: target(ip), value: `goto ${names.firewall}` });
  }
  if (sp.nodePort !== 0) {
    const key = `${proto} . ${sp.nodePort}`;
    if (hasEndpoints) elements.push({ set: SERVICE_NODEPORTS_MAP, key, value: `goto ${names.external}` });
    if (externalVerdict !== undefined)
      elements.push({ set: NO_ENDPOINT_NODEPORTS_MAP, key, value: externalVerdict });
  }
  for (const ep of cat.allReachableEndpoints) elements.push({ set: HAIRPIN_SET, key: `${ep.ip} . ${ep.ip}` });

  const chains: PlannedChain[] = [];
  if (usesExternalChain) {
    const rules: string[] = [];
    if (!sp.externalPolicyLocal) {
      rules.push(`jump ${MARK_MASQ_CHAIN}`);
    } else {
      if (ctx.clusterCIDR !== undefined)
        rules.push(
          `${ipX} saddr ${ctx.clusterCIDR} goto ${names.cluster} comment "short-circuit pod traffic"`,
        );
      rules.push(`fib saddr type local jump ${MARK_MASQ_CHAIN} comment "masquerade local traffic"`);
      rules.push(`fib saddr type local goto ${names.cluster} comment "short-circuit local traffic"`);
    }
    if (hasExternalEndpoints) rules.push(`goto ${externalPolicyChain}`);
    chains.push({ name: names.external, rules });
  }
  if (usesFirewallChain) {
    const sources = [...traffic.loadBalancerSourceRanges];
    if (traffic.firewallAllowsLoadBalancerIPs) sources.push(...lbIPs);
    chains.push({ name: names.firewall, rules: [`${ipX} saddr != { ${sources.join(", ")} } drop`] });
  }

  const affinity = sp.sessionAffinity.type === "ClientIP";
  const affinitySets: PlannedAffinitySet[] = [];
  const affinityOf = new Map<Endpoint, string>();
  if (affinity) {
    for (const ep of cat.allReachableEndpoints) {
      const name = affinitySetName(sp.name, sp.protocol, ep.ip, ep.port);
      affinityOf.set(ep, name);
      affinitySets.push({ name, timeoutSeconds: sp.sessionAffinity.timeoutSeconds });
    }
  }
  const masqueradeRule = (chain: string): string | undefined => {
    if (!hasInternalEndpoints || chain !== internalChain) return undefined;
    const match = `${ipX} daddr ${clusterIP} ${proto} dport ${sp.port}`;
    if (ctx.masqueradeAll) return `${match} jump ${MARK_MASQ_CHAIN}`;
    if (ctx.clusterCIDR !== undefined)
      return `${match} ${ipX} saddr != ${ctx.clusterCIDR} jump ${MARK_MASQ_CHAIN}`;
    return undefined;
  };
  const policyChain = (name: string, list: readonly Endpoint[]) => {
    const rules: string[] = [];
    const masq = masqueradeRule(name);
    if (masq !== undefined) rules.push(masq);
    if (affinity) {
      for (const ep of list) {
        const set = affinityOf.get(ep)!;
        rules.push(
          `${ipX} saddr @${set} update @${set} { ${ipX} saddr } meta l4proto ${proto} dnat to ${dnatTarget(ep)}`,
        );
      }
    }
    const n = list.length;
    for (let i = 0; i < n; i++) {
      const ep = list[i]!;
      const pick = i < n - 1 ? `numgen random mod ${n - i} 0 ` : "";
      const remember = affinity ? `update @${affinityOf.get(ep)!} { ${ipX} saddr } ` : "";
      rules.push(`meta l4proto ${proto} ${pick}${remember}dnat to ${dnatTarget(ep)}`);
    }
    chains.push({ name, rules });
  };
  if (clusterEndpoints.length > 0) policyChain(names.cluster, clusterEndpoints);
  if (localEndpoints.length > 0) policyChain(names.local, localEndpoints);

  let ruleCount = 0;
  for (const c of chains) ruleCount += c.rules.length;
  const plan: PortPlan = {
    sp,
    raw,
    config: ctx.config,
    clusterIP,
    chains,
    elements,
    affinitySets,
    endpointCount: endpoints.length,
    ruleCount,
  };
  cache.set(sp, plan);
  return plan;
}
