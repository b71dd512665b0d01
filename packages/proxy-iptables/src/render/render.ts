/**
 * The pure renderer: a service snapshot in, `iptables-restore --noflush` payloads
 * for the nat and filter tables out, laid out rule for rule like kube-proxy's
 * iptables mode (so that operators' knowledge and tools carry over).
 *
 * @module
 */
import {
  type CategorizedEndpoints,
  type ChangeSet,
  type Cidr,
  cidrContains,
  type Endpoint,
  endpointsOfFamily,
  type IPFamily,
  type NodeTopology,
  type ProxyNode,
  parseCidr,
  planServicePortTraffic,
  type ServicePort,
  type ServiceSnapshot,
} from "@worknode/core";
import { ChainSet } from "./active-chains.js";
import {
  endpointChain,
  isServiceChainName,
  KUBE_EXTERNAL_SERVICES,
  KUBE_FIREWALL,
  KUBE_FORWARD,
  KUBE_MARK_MASQ,
  KUBE_NODEPORTS,
  KUBE_POSTROUTING,
  KUBE_PROXY_FIREWALL,
  KUBE_SERVICES,
  lowerProtocol,
  type ServicePortChains,
  servicePortChains,
  servicePortNameString,
} from "./chain-names.js";
import { probability } from "./probability.js";

/** Above this many endpoints, per-endpoint comments are left out (kube-proxy's "large cluster mode"). */
export const LARGE_CLUSTER_ENDPOINTS_THRESHOLD = 1000;

/** kube-proxy's default `--iptables-masquerade-bit`. */
export const DEFAULT_MASQUERADE_BIT = 14;

/**
 * The node the rules are rendered for. Its `nodeIPs` are used for `--nodeport-addresses`
 * (node ports are only captured on those inside the given CIDRs) and to let the node
 * itself through a `loadBalancerSourceRanges` firewall that contains its address.
 */
export type RenderNode = ProxyNode;

/** Proxy options that shape the rules. */
export interface RenderOptions {
  /** The family rendered: IPv4 (iptables) or IPv6 (ip6tables). Other families' addresses are ignored. */
  readonly family: IPFamily;
  /**
   * `--cluster-cidr` (this family's pod CIDR). When set, traffic to cluster IPs from outside
   * it is masqueraded, and pod traffic to external destinations of an
   * `externalTrafficPolicy: Local` service is short-circuited to the cluster chain.
   */
  readonly clusterCIDR?: string;
  /** `--masquerade-all`: masquerade all traffic to cluster IPs. */
  readonly masqueradeAll: boolean;
  /** `--nodeport-addresses` CIDRs; unset or none of this family: node ports on every local address. */
  readonly nodePortAddresses?: readonly string[];
  /** `--iptables-masquerade-bit` (default 14: mark 0x4000). */
  readonly masqueradeBit?: number;
  /** Append `--random-fully` to the MASQUERADE rule (default false). */
  readonly randomFully?: boolean;
  /**
   * The kernel's `nf_conntrack_tcp_be_liberal` is set: leave out the rule dropping
   * INVALID forwarded packets (default false).
   */
  readonly conntrackTCPLiberal?: boolean;
  /**
   * `--iptables-localhost-nodeports` (kube-proxy's default is true; this renderer's default
   * is false because it needs `route_localnet=1`, which {@link IptablesProxier} sets):
   * node ports also answer on 127.0.0.1. IPv4 only, and only when `nodePortAddresses` is
   * unset or includes a loopback address. When in effect, the payload also carries
   * kube-proxy's copy of kubelet's `KUBE-FIREWALL` rule dropping martian packets to
   * 127.0.0.0/8 from non-loopback sources (the guard against issue 90259).
   */
  readonly localhostNodePorts?: boolean;
}

/** Input of {@link renderRules}. */
export interface RenderInput {
  /** The complete desired state. */
  readonly snapshot: ServiceSnapshot;
  /** What changed since the previous successful sync (used by partial renders). */
  readonly changes: ChangeSet;
  /** Rewrite every chain (true), or only the chains of changed service ports (false). */
  readonly full: boolean;
  /**
   * The nat chains present before this payload is applied (from `iptables-save` or the
   * previous render's {@link RenderResult.activeChains}). Per-service chains in it that are
   * no longer used are flushed and deleted. In a partial render, an unchanged service
   * port whose chains are missing from it is rewritten anyway. Unset: nothing is deleted
   * and unchanged service ports are trusted to be in place.
   */
  readonly previousChains?: ReadonlySet<string>;
  /** The node. */
  readonly node: RenderNode;
  /** Options. */
  readonly options: RenderOptions;
}

/** Counts of one render. */
export interface RenderStats {
  /** Service ports of this family rendered (including those whose chains were skipped). */
  readonly servicePorts: number;
  /** Endpoints of this family, over all rendered service ports. */
  readonly endpoints: number;
  /** Service ports whose per-service chains were written in this payload. */
  readonly servicePortsWritten: number;
  /** Service ports whose per-service chains were left untouched (partial render). */
  readonly servicePortsSkipped: number;
  /** `-A` lines in the nat payload. */
  readonly natRules: number;
  /** `-A` lines in the filter payload. */
  readonly filterRules: number;
  /** Chains declared in the nat payload (including those being deleted). */
  readonly natChains: number;
  /** Stale per-service chains deleted. */
  readonly deletedChains: number;
  /** Whether comments on endpoint rules were left out (more than 1000 endpoints). */
  readonly largeClusterMode: boolean;
}

/** Output of {@link renderRules}. */
export interface RenderResult {
  /** The nat table payload (`*nat` … `COMMIT`), for `iptables-restore --noflush`. */
  readonly nat: string;
  /** The filter table payload (`*filter` … `COMMIT`). */
  readonly filter: string;
  /** Per-service nat chains whose content this payload (re)writes. */
  readonly chainsWritten: readonly string[];
  /** Stale per-service nat chains this payload deletes. */
  readonly chainsDeleted: readonly string[];
  /** Every per-service nat chain in use once the payload is applied (pass it as the next `previousChains`). */
  readonly activeChains: ReadonlySet<string>;
  /** Counts. */
  readonly stats: RenderStats;
}

// ---------------------------------------------------------------------------------------------
// Caches of chain names: hashing dominates the render of large snapshots. Service ports and
// endpoints are immutable and shared between snapshots, so their names are cached by identity.

interface PortNames {
  readonly nameString: string;
  readonly protocol: "tcp" | "udp" | "sctp";
  /** `nameString + protocol`: what endpoint chain names are hashed with. */
  readonly owner: string;
  readonly chains: ServicePortChains;
}

const portNameCache = new WeakMap<ServicePort, PortNames>();
const endpointNameCache = new WeakMap<Endpoint, { readonly owner: string; readonly chain: string }>();

function namesOf(sp: ServicePort): PortNames {
  let n = portNameCache.get(sp);
  if (n === undefined) {
    const nameString = servicePortNameString(sp.name);
    const protocol = lowerProtocol(sp.protocol);
    n = {
      nameString,
      protocol,
      owner: nameString + protocol,
      chains: servicePortChains(nameString, protocol),
    };
    portNameCache.set(sp, n);
  }
  return n;
}

function endpointChainOf(names: PortNames, ep: Endpoint): string {
  const owner = names.owner;
  const cached = endpointNameCache.get(ep);
  if (cached !== undefined && cached.owner === owner) return cached.chain;
  const chain = endpointChain(names.nameString, names.protocol, ep.address);
  endpointNameCache.set(ep, { owner, chain });
  return chain;
}

// ---------------------------------------------------------------------------------------------

function familyOf(ip: string): IPFamily {
  return ip.includes(":") ? "IPv6" : "IPv4";
}

/** A comment argument: quoted when it contains a space, as kube-proxy writes it. */
function comment(text: string): string {
  return text.includes(" ") ? `-m comment --comment "${text}"` : `-m comment --comment ${text}`;
}

const NODEPORTS_COMMENT = comment(
  "kubernetes service nodeports; NOTE: this must be the last rule in this chain",
);

function nodePortCidrs(options: RenderOptions): Cidr[] {
  const cidrs: Cidr[] = [];
  for (const text of options.nodePortAddresses ?? []) {
    const c = parseCidr(text);
    if (c !== undefined && c.family === options.family) cidrs.push(c);
  }
  return cidrs;
}

/**
 * Whether localhost node ports are in effect for these options: asked for, IPv4, and
 * `nodePortAddresses` unset (every address) or containing a 127.0.0.0/8 address
 * (kube-proxy turns the option off otherwise).
 */
export function localhostNodePortsActive(options: RenderOptions): boolean {
  if (options.localhostNodePorts !== true || options.family !== "IPv4") return false;
  const cidrs = nodePortCidrs(options);
  return cidrs.length === 0 || cidrs.some((c) => cidrContains(c, "127.0.0.1"));
}

/** The node's addresses that receive node-port traffic, or `undefined` for every local address. */
function nodePortDestinations(options: RenderOptions, node: RenderNode): readonly string[] | undefined {
  const cidrs = nodePortCidrs(options);
  if (cidrs.length === 0) return undefined;
  const localhost = localhostNodePortsActive(options);
  const out: string[] = [];
  for (const ip of node.nodeIPs) {
    if (familyOf(ip) !== options.family) continue;
    // Localhost node ports never work on IPv6, and on IPv4 only with route_localnet.
    if (ip === "::1" || (ip.startsWith("127.") && !localhost)) continue;
    if (cidrs.some((c) => cidrContains(c, ip)) && !out.includes(ip)) out.push(ip);
  }
  return out;
}

/** The lines every payload carries whatever the services: they depend on the options only. */
interface FixedRules {
  /** nat KUBE-POSTROUTING and KUBE-MARK-MASQ rules (text, one rule per line). */
  readonly natHead: string;
  readonly natHeadCount: number;
  /** nat KUBE-SERVICES → KUBE-NODEPORTS rules (the last rules of KUBE-SERVICES). */
  readonly natTail: string;
  readonly natTailCount: number;
  /** The filter payload's head: `*filter` and the declared top-level chains. */
  readonly filterHeader: string;
  /** filter rules before the services' (the KUBE-FIREWALL rule). */
  readonly filterHead: string;
  readonly filterHeadCount: number;
  /** filter KUBE-FORWARD rules. */
  readonly filterTail: string;
  readonly filterTailCount: number;
}

const NAT_TOP_CHAINS = [KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ] as const;
const FILTER_TOP_CHAINS = [
  KUBE_SERVICES,
  KUBE_EXTERNAL_SERVICES,
  KUBE_FORWARD,
  KUBE_NODEPORTS,
  KUBE_PROXY_FIREWALL,
] as const;
const NAT_HEADER = `*nat\n${NAT_TOP_CHAINS.map((c) => `:${c} - [0:0]\n`).join("")}`;
const FILTER_HEADER = `*filter\n${FILTER_TOP_CHAINS.map((c) => `:${c} - [0:0]\n`).join("")}`;

function fixedRules(options: RenderOptions, node: RenderNode): FixedRules {
  const mark = `0x${(1 << (options.masqueradeBit ?? DEFAULT_MASQUERADE_BIT)).toString(16)}`;
  const natHead = [
    `-A ${KUBE_POSTROUTING} -m mark ! --mark ${mark}/${mark} -j RETURN`,
    `-A ${KUBE_POSTROUTING} -j MARK --xor-mark ${mark}`,
    `-A ${KUBE_POSTROUTING} ${comment("kubernetes service traffic requiring SNAT")} -j MASQUERADE${options.randomFully ? " --random-fully" : ""}`,
    `-A ${KUBE_MARK_MASQ} -j MARK --or-mark ${mark}`,
  ];
  // Node ports: the last rule of KUBE-SERVICES.
  const natTail: string[] = [];
  const destinations = nodePortDestinations(options, node);
  const localhost = localhostNodePortsActive(options);
  if (destinations === undefined) {
    // Localhost node ports never work on IPv6, and on IPv4 only with route_localnet.
    const notLocalhost = options.family === "IPv6" ? " ! -d ::1/128" : localhost ? "" : " ! -d 127.0.0.0/8";
    natTail.push(
      `-A ${KUBE_SERVICES} ${NODEPORTS_COMMENT} -m addrtype --dst-type LOCAL${notLocalhost} -j ${KUBE_NODEPORTS}`,
    );
  } else {
    for (const ip of destinations) {
      natTail.push(`-A ${KUBE_SERVICES} ${NODEPORTS_COMMENT} -d ${ip} -j ${KUBE_NODEPORTS}`);
    }
  }
  const filterHead: string[] = [];
  if (localhost) {
    filterHead.push(
      `-A ${KUBE_FIREWALL} ${comment("block incoming localnet connections")} -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`,
    );
  }
  const filterTail: string[] = [];
  if (!options.conntrackTCPLiberal)
    filterTail.push(`-A ${KUBE_FORWARD} -m conntrack --ctstate INVALID -j DROP`);
  filterTail.push(
    `-A ${KUBE_FORWARD} ${comment("kubernetes forwarding rules")} -m mark --mark ${mark}/${mark} -j ACCEPT`,
  );
  filterTail.push(
    `-A ${KUBE_FORWARD} ${comment("kubernetes forwarding conntrack rule")} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
  );
  return {
    natHead: joinLines(natHead),
    natHeadCount: natHead.length,
    natTail: joinLines(natTail),
    natTailCount: natTail.length,
    filterHeader: localhost ? `${FILTER_HEADER}:${KUBE_FIREWALL} - [0:0]\n` : FILTER_HEADER,
    filterHead: joinLines(filterHead),
    filterHeadCount: filterHead.length,
    filterTail: joinLines(filterTail),
    filterTailCount: filterTail.length,
  };
}

/**
 * What a render leaves for the next partial one: the family's service ports in key
 * order with their plans. Registered under the {@link RenderResult.activeChains} object
 * the render returned, so a later render given that object as `previousChains` knows
 * exactly what is in the kernel and only works on what changed since.
 */
interface RenderState {
  /** {@link PlanContext.config} the plans were made under. */
  readonly config: string;
  /** Keys of the service ports of the family, sorted. */
  readonly keys: readonly string[];
  /** Their plans, parallel to `keys`. */
  readonly plans: readonly PortPlan[];
  readonly activeChains: ChainSet;
  /** Sum of the plans' endpoint counts. */
  readonly totalEndpoints: number;
  /** Sum of the plans' top-level nat rules. */
  readonly natTopRules: number;
  /** Sum of the plans' filter rules. */
  readonly filterTopRules: number;
}

const renderStates = new WeakMap<ReadonlySet<string>, RenderState>();

/**
 * A partial render works incrementally while at most this share of the service ports
 * changed (and 64 more); above it, planning everything again is as fast.
 */
const INCREMENTAL_MAX_CHANGED_SHARE = 0.25;

/** First index of `keys` (sorted) whose key is not below `key`. */
function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Renders the nat and filter payloads for one IP family.
 *
 * Layout (as kube-proxy's iptables mode): the top-level chains (nat KUBE-SERVICES,
 * KUBE-NODEPORTS, KUBE-POSTROUTING, KUBE-MARK-MASQ; filter KUBE-SERVICES,
 * KUBE-EXTERNAL-SERVICES, KUBE-FORWARD, KUBE-NODEPORTS, KUBE-PROXY-FIREWALL) are declared,
 * and so flushed and rewritten, in every payload. Per service port: KUBE-SVC-* (Cluster
 * policy, statistic-mode load balancing over the endpoints with probabilities 1/n,
 * `recent`-based ClientIP affinity), KUBE-SVL-* (Local policy), KUBE-EXT-* (node ports,
 * external and load-balancer IPs), KUBE-FW-* (`loadBalancerSourceRanges`) and one
 * KUBE-SEP-* per endpoint (DNAT, hairpin masquerade). Service ports without usable
 * endpoints get REJECT rules in filter; external traffic to `externalTrafficPolicy: Local`
 * ports without a local endpoint is dropped.
 *
 * A partial render (`full: false`) declares and writes the per-service chains only of
 * service ports in `changes.changedServicePorts` (and of those whose chains are missing
 * from `previousChains`); the others stay as they are in the kernel. Chains of
 * `previousChains` no longer in use are flushed and deleted (`-X`). Service ports are
 * rendered in key order, so equal inputs give byte-identical payloads.
 *
 * **Incremental partial renders.** When `previousChains` is the `activeChains` of an
 * earlier result (same family and options), the render starts from that result's state
 * and only plans the service ports in `changes.changedServicePorts` /
 * `deletedServicePorts`, trusting them to list every service port that differs from the
 * snapshot of that earlier render (which is what a {@link ChangeSet} since the last
 * successful sync says). Its cost is then O(changed) plus concatenating the top-level
 * chains' cached lines. Any other `previousChains` (for example from `iptables-save`)
 * makes the render look at every service port. Both give the same payload.
 *
 * Pure apart from caching chain names, port plans and render states by object identity.
 */
export function renderRules(input: RenderInput): RenderResult {
  const { node, options } = input;
  const family = options.family;
  const topology: NodeTopology = {
    name: node.name,
    ...(node.zone !== undefined ? { zone: node.zone } : {}),
    ...(node.labels !== undefined ? { labels: node.labels } : {}),
  };
  const clusterCIDR = options.clusterCIDR;
  const ctx: PlanContext = {
    family,
    topology,
    clusterCIDR,
    masqueradeAll: options.masqueradeAll,
    nodeIP: node.nodeIPs.find((ip) => familyOf(ip) === family),
    config: `${family}|${node.name}|${topology.zone ?? ""}|${JSON.stringify(node.labels ?? {})}|${node.nodeIPs.join(",")}|${clusterCIDR ?? ""}|${options.masqueradeAll}`,
  };
  const fixed = fixedRules(options, node);
  if (!input.full && input.previousChains !== undefined) {
    const prev = renderStates.get(input.previousChains);
    if (prev !== undefined && prev.config === ctx.config) {
      const r = renderIncremental(prev, input, ctx, fixed);
      if (r !== undefined) return r;
    }
  }
  return renderEverything(input, ctx, fixed);
}

/** Plans every service port of the family (full renders, and partial ones without a known previous state). */
function renderEverything(input: RenderInput, ctx: PlanContext, fixed: FixedRules): RenderResult {
  const { snapshot, changes, full, previousChains } = input;
  const family = ctx.family;
  const keys: string[] = [];
  const plans: PortPlan[] = [];
  let totalEndpoints = 0;
  let natTopRules = 0;
  let filterTopRules = 0;
  for (const key of sortedKeys(snapshot.services)) {
    const sp = snapshot.services.get(key);
    if (sp === undefined) continue;
    const clusterIP = sp.clusterIPs.find((ip) => familyOf(ip) === family);
    if (clusterIP === undefined) continue;
    const raw = snapshot.endpoints.get(key);
    const plan = planPort(sp, clusterIP, raw, endpointsOfFamily(raw, family), ctx);
    keys.push(key);
    plans.push(plan);
    totalEndpoints += plan.endpointCount;
    natTopRules += plan.natTop.length;
    filterTopRules += plan.filterTop.length;
  }

  const active: string[] = [];
  const writtenIndexes: number[] = [];
  for (let i = 0; i < plans.length; i++) {
    const plan = plans[i]!;
    for (const c of plan.used) active.push(c);
    let write = full || changes.changedServicePorts.has(plan.sp.key);
    if (!write && previousChains !== undefined) {
      for (const c of plan.used) {
        if (!previousChains.has(c)) {
          write = true;
          break;
        }
      }
    }
    if (write) writtenIndexes.push(i);
  }
  const activeChains = ChainSet.from(active);

  // Stale per-service chains: flush (chain line) then delete.
  const chainsDeleted: string[] = [];
  if (previousChains !== undefined) {
    for (const c of previousChains) {
      if (!activeChains.has(c) && isServiceChainName(c)) chainsDeleted.push(c);
    }
    chainsDeleted.sort();
  }
  return finish(
    { config: ctx.config, keys, plans, activeChains, totalEndpoints, natTopRules, filterTopRules },
    writtenIndexes,
    chainsDeleted,
    ctx,
    fixed,
  );
}

/**
 * Starts from the state of the render that produced `input.previousChains` and re-plans
 * only the changed service ports. Returns undefined when too much changed to be worth it.
 */
function renderIncremental(
  prev: RenderState,
  input: RenderInput,
  ctx: PlanContext,
  fixed: FixedRules,
): RenderResult | undefined {
  const { snapshot, changes } = input;
  const family = ctx.family;
  const changed = new Set(changes.changedServicePorts);
  for (const k of changes.deletedServicePorts) changed.add(k);
  if (changed.size > prev.keys.length * INCREMENTAL_MAX_CHANGED_SHARE + 64) return undefined;

  const keys = prev.keys.slice();
  const plans = prev.plans.slice();
  let { totalEndpoints, natTopRules, filterTopRules } = prev;
  const removed: string[] = [];
  const added: string[] = [];
  const writtenKeys: string[] = [];
  for (const key of [...changed].sort()) {
    const pos = lowerBound(keys, key);
    const present = keys[pos] === key;
    const old = present ? plans[pos] : undefined;
    const sp = snapshot.services.get(key);
    const clusterIP = sp?.clusterIPs.find((ip) => familyOf(ip) === family);
    let plan: PortPlan | undefined;
    if (sp !== undefined && clusterIP !== undefined) {
      const raw = snapshot.endpoints.get(key);
      plan = planPort(sp, clusterIP, raw, endpointsOfFamily(raw, family), ctx);
    }
    if (old !== undefined) {
      totalEndpoints -= old.endpointCount;
      natTopRules -= old.natTop.length;
      filterTopRules -= old.filterTop.length;
      for (const c of old.used) removed.push(c);
    }
    if (plan !== undefined) {
      totalEndpoints += plan.endpointCount;
      natTopRules += plan.natTop.length;
      filterTopRules += plan.filterTop.length;
      for (const c of plan.used) added.push(c);
      writtenKeys.push(key);
      if (present) plans[pos] = plan;
      else {
        keys.splice(pos, 0, key);
        plans.splice(pos, 0, plan);
      }
    } else if (present) {
      keys.splice(pos, 1);
      plans.splice(pos, 1);
    }
  }
  const activeChains = prev.activeChains.withChanges(removed, added);
  const chainsDeleted = removed.filter((c) => !activeChains.has(c) && isServiceChainName(c)).sort();
  // Written keys are sorted, so are their final indexes.
  const writtenIndexes = writtenKeys.map((k) => lowerBound(keys, k));
  return finish(
    { config: ctx.config, keys, plans, activeChains, totalEndpoints, natTopRules, filterTopRules },
    writtenIndexes,
    chainsDeleted,
    ctx,
    fixed,
  );
}

/** Assembles the payloads from the plans (writing the chains of `writtenIndexes`) and registers the state. */
function finish(
  state: RenderState,
  writtenIndexes: readonly number[],
  chainsDeleted: readonly string[],
  ctx: PlanContext,
  fixed: FixedRules,
): RenderResult {
  const { plans } = state;
  const largeClusterMode = state.totalEndpoints > LARGE_CLUSTER_ENDPOINTS_THRESHOLD;
  const parts: string[] = [NAT_HEADER];
  const chainsWritten: string[] = [];
  for (const i of writtenIndexes) {
    for (const c of plans[i]!.used) {
      parts.push(`:${c} - [0:0]\n`);
      chainsWritten.push(c);
    }
  }
  for (const c of chainsDeleted) parts.push(`:${c} - [0:0]\n`);
  parts.push(fixed.natHead);
  let serviceRules = 0;
  let w = 0;
  let nextWritten = writtenIndexes.length > 0 ? writtenIndexes[0]! : -1;
  const chainRules: string[] = [];
  for (let i = 0; i < plans.length; i++) {
    const plan = plans[i]!;
    if (plan.natTopText !== "") parts.push(plan.natTopText);
    if (i === nextWritten) {
      chainRules.length = 0;
      writeServiceChains(chainRules, plan, ctx, largeClusterMode);
      serviceRules += chainRules.length;
      parts.push(joinLines(chainRules));
      w++;
      nextWritten = w < writtenIndexes.length ? writtenIndexes[w]! : -1;
    }
  }
  for (const c of chainsDeleted) parts.push(`-X ${c}\n`);
  parts.push(fixed.natTail, "COMMIT\n");
  const nat = parts.join("");

  const filterParts: string[] = [fixed.filterHeader, fixed.filterHead];
  for (const plan of plans) if (plan.filterTopText !== "") filterParts.push(plan.filterTopText);
  filterParts.push(fixed.filterTail, "COMMIT\n");
  const filter = filterParts.join("");

  renderStates.set(state.activeChains, state);
  return {
    nat,
    filter,
    chainsWritten,
    chainsDeleted,
    activeChains: state.activeChains,
    stats: {
      servicePorts: plans.length,
      endpoints: state.totalEndpoints,
      servicePortsWritten: writtenIndexes.length,
      servicePortsSkipped: plans.length - writtenIndexes.length,
      natRules: fixed.natHeadCount + state.natTopRules + serviceRules + fixed.natTailCount,
      filterRules: fixed.filterHeadCount + state.filterTopRules + fixed.filterTailCount,
      natChains: NAT_TOP_CHAINS.length + chainsWritten.length + chainsDeleted.length,
      deletedChains: chainsDeleted.length,
      largeClusterMode,
    },
  };
}

/** What every service port's rendering depends on besides the port and its endpoints. */
interface PlanContext {
  readonly family: IPFamily;
  readonly topology: NodeTopology;
  readonly clusterCIDR: string | undefined;
  readonly masqueradeAll: boolean;
  readonly nodeIP: string | undefined;
  /** All of the above as one string: a cached plan is reused only under an equal config. */
  readonly config: string;
}

/** One service port worked out: its top-level rules, the chains it uses, and what its chains need. */
interface PortPlan {
  readonly sp: ServicePort;
  readonly raw: readonly Endpoint[] | undefined;
  readonly config: string;
  readonly names: PortNames;
  readonly clusterIP: string;
  readonly match: string;
  /** Rules in nat KUBE-SERVICES / KUBE-NODEPORTS. */
  readonly natTop: readonly string[];
  /** Rules in the filter table. */
  readonly filterTop: readonly string[];
  /** `natTop` as payload text (one rule per line, each ending in a newline). */
  readonly natTopText: string;
  /** `filterTop` as payload text. */
  readonly filterTopText: string;
  /** Endpoints of the family the port has (usable or not). */
  readonly endpointCount: number;
  /** Per-service chains this port uses (EXT, FW, SVC, SVL, then SEPs). */
  readonly used: readonly string[];
  readonly cat: CategorizedEndpoints;
  readonly sepChains: readonly string[];
  readonly lbIPs: readonly string[];
  readonly sourceRanges: readonly string[];
  /** The node's address is in a source range: the LB IPs are allowed as sources too. */
  readonly firewallAllowsLoadBalancerIPs: boolean;
  readonly hasInternalEndpoints: boolean;
  readonly hasExternalEndpoints: boolean;
  readonly usesExternalChain: boolean;
  readonly usesFWChain: boolean;
}

/**
 * Plans are cached by service port identity: snapshots share unchanged ports and endpoint
 * lists, so a partial render of a large snapshot only plans what changed.
 */
const planCaches: Record<IPFamily, WeakMap<ServicePort, PortPlan>> = {
  IPv4: new WeakMap(),
  IPv6: new WeakMap(),
};

function planPort(
  sp: ServicePort,
  clusterIP: string,
  raw: readonly Endpoint[] | undefined,
  endpoints: readonly Endpoint[],
  ctx: PlanContext,
): PortPlan {
  const planCache = planCaches[ctx.family];
  const cached = planCache.get(sp);
  if (
    cached !== undefined &&
    cached.raw === raw &&
    cached.config === ctx.config &&
    cached.clusterIP === clusterIP
  ) {
    return cached;
  }
  const family = ctx.family;
  const names = namesOf(sp);
  const { nameString, protocol } = names;
  const { svc: clusterPolicyChain, svl: localPolicyChain, ext: externalChain, fw: fwChain } = names.chains;
  const traffic = planServicePortTraffic(sp, endpoints, ctx.topology, family, ctx.nodeIP);
  const { externalIPs, loadBalancerIPs: lbIPs, loadBalancerSourceRanges: sourceRanges } = traffic;
  const port = String(sp.port);
  const match = `-m ${protocol} -p ${protocol}`;

  const cat = traffic.endpoints;
  const localEndpoints = cat.localEndpoints ?? [];
  const { hasEndpoints, hasInternalEndpoints, hasExternalEndpoints } = traffic;
  const internalChain = sp.internalPolicyLocal ? localPolicyChain : clusterPolicyChain;
  const usesExternalChain = traffic.usesExternalPath;
  const usesFWChain = traffic.usesFirewall;
  const loadBalancerChain = usesFWChain ? fwChain : externalChain;

  // No endpoints at all: REJECT; endpoints, but none local for a Local policy: DROP.
  const target = hasEndpoints ? "DROP" : "REJECT";
  const filterComment = comment(
    hasEndpoints ? `${nameString} has no local endpoints` : `${nameString} has no endpoints`,
  );

  const natTop: string[] = [];
  const filterTop: string[] = [];
  if (hasInternalEndpoints) {
    natTop.push(
      `-A ${KUBE_SERVICES} ${comment(`${nameString} cluster IP`)} ${match} -d ${clusterIP} --dport ${port} -j ${internalChain}`,
    );
  } else {
    filterTop.push(
      `-A ${KUBE_SERVICES} ${filterComment} ${match} -d ${clusterIP} --dport ${port} -j ${target}`,
    );
  }
  for (const ip of externalIPs) {
    if (hasEndpoints) {
      natTop.push(
        `-A ${KUBE_SERVICES} ${comment(`${nameString} external IP`)} ${match} -d ${ip} --dport ${port} -j ${externalChain}`,
      );
    }
    if (!hasExternalEndpoints) {
      filterTop.push(
        `-A ${KUBE_EXTERNAL_SERVICES} ${filterComment} ${match} -d ${ip} --dport ${port} -j ${target}`,
      );
    }
  }
  for (const ip of lbIPs) {
    if (hasEndpoints) {
      natTop.push(
        `-A ${KUBE_SERVICES} ${comment(`${nameString} loadbalancer IP`)} ${match} -d ${ip} --dport ${port} -j ${loadBalancerChain}`,
      );
    }
    if (usesFWChain) {
      filterTop.push(
        `-A ${KUBE_PROXY_FIREWALL} ${comment(`${nameString} traffic not accepted by ${fwChain}`)} ${match} -d ${ip} --dport ${port} -j DROP`,
      );
    }
  }
  if (!hasExternalEndpoints) {
    for (const ip of lbIPs) {
      filterTop.push(
        `-A ${KUBE_EXTERNAL_SERVICES} ${filterComment} ${match} -d ${ip} --dport ${port} -j ${target}`,
      );
    }
  }
  if (sp.nodePort !== 0) {
    if (hasEndpoints) {
      natTop.push(
        `-A ${KUBE_NODEPORTS} ${comment(nameString)} ${match} --dport ${sp.nodePort} -j ${externalChain}`,
      );
    }
    if (!hasExternalEndpoints) {
      filterTop.push(
        `-A ${KUBE_EXTERNAL_SERVICES} ${filterComment} -m addrtype --dst-type LOCAL ${match} --dport ${sp.nodePort} -j ${target}`,
      );
    }
  }
  if (sp.healthCheckNodePort !== 0) {
    filterTop.push(
      `-A ${KUBE_NODEPORTS} ${comment(`${nameString} health check node port`)} -m tcp -p tcp --dport ${sp.healthCheckNodePort} -j ACCEPT`,
    );
  }

  const sepChains = cat.allReachableEndpoints.map((ep) => endpointChainOf(names, ep));
  const used: string[] = [];
  if (usesExternalChain) used.push(externalChain);
  if (usesFWChain) used.push(fwChain);
  if ((cat.clusterEndpoints ?? []).length > 0) used.push(clusterPolicyChain);
  if (localEndpoints.length > 0) used.push(localPolicyChain);
  for (const c of sepChains) used.push(c);

  const plan: PortPlan = {
    sp,
    raw,
    config: ctx.config,
    names,
    clusterIP,
    match,
    natTop,
    filterTop,
    natTopText: flatText(natTop),
    filterTopText: flatText(filterTop),
    endpointCount: endpoints.length,
    used,
    cat,
    sepChains,
    lbIPs,
    sourceRanges,
    firewallAllowsLoadBalancerIPs: traffic.firewallAllowsLoadBalancerIPs,
    hasInternalEndpoints,
    hasExternalEndpoints,
    usesExternalChain,
    usesFWChain,
  };
  planCache.set(sp, plan);
  return plan;
}

/** The rules of a service port's own chains (EXT, FW, SVC, SVL, SEPs). */
function writeServiceChains(
  out: string[],
  plan: PortPlan,
  ctx: PlanContext,
  largeClusterMode: boolean,
): void {
  const { sp, names, match, cat, clusterIP } = plan;
  const { nameString } = names;
  const { svc: clusterPolicyChain, svl: localPolicyChain, ext: externalChain, fw: fwChain } = names.chains;
  const internalChain = sp.internalPolicyLocal ? localPolicyChain : clusterPolicyChain;
  const externalPolicyChain = sp.externalPolicyLocal ? localPolicyChain : clusterPolicyChain;
  const clusterEndpoints = cat.clusterEndpoints ?? [];
  const localEndpoints = cat.localEndpoints ?? [];

  // Internal traffic: masquerade what comes from outside the cluster.
  if (plan.hasInternalEndpoints) {
    const args = `${comment(`${nameString} cluster IP`)} ${match} -d ${clusterIP} --dport ${sp.port}`;
    if (ctx.masqueradeAll) {
      out.push(`-A ${internalChain} ${args} -j ${KUBE_MARK_MASQ}`);
    } else if (ctx.clusterCIDR !== undefined) {
      out.push(`-A ${internalChain} ${args} ! -s ${ctx.clusterCIDR} -j ${KUBE_MARK_MASQ}`);
    }
  }

  // External traffic.
  if (plan.usesExternalChain) {
    if (!sp.externalPolicyLocal) {
      out.push(
        `-A ${externalChain} ${comment(`masquerade traffic for ${nameString} external destinations`)} -j ${KUBE_MARK_MASQ}`,
      );
    } else {
      if (ctx.clusterCIDR !== undefined) {
        out.push(
          `-A ${externalChain} ${comment(`pod traffic for ${nameString} external destinations`)} -s ${ctx.clusterCIDR} -j ${clusterPolicyChain}`,
        );
      }
      out.push(
        `-A ${externalChain} ${comment(`masquerade LOCAL traffic for ${nameString} external destinations`)} -m addrtype --src-type LOCAL -j ${KUBE_MARK_MASQ}`,
      );
      out.push(
        `-A ${externalChain} ${comment(`route LOCAL traffic for ${nameString} external destinations`)} -m addrtype --src-type LOCAL -j ${clusterPolicyChain}`,
      );
    }
    if (plan.hasExternalEndpoints) out.push(`-A ${externalChain} -j ${externalPolicyChain}`);
  }

  // Load-balancer source ranges.
  if (plan.usesFWChain) {
    const head = `-A ${fwChain} ${comment(`${nameString} loadbalancer IP`)}`;
    for (const text of plan.sourceRanges) out.push(`${head} -s ${text} -j ${externalChain}`);
    if (plan.firewallAllowsLoadBalancerIPs)
      for (const ip of plan.lbIPs) out.push(`${head} -s ${ip} -j ${externalChain}`);
    out.push(
      `-A ${fwChain} ${comment(`other traffic to ${nameString} will be dropped by KUBE-PROXY-FIREWALL`)}`,
    );
  }

  if (clusterEndpoints.length > 0) {
    writeEndpointDispatch(out, names, sp, clusterPolicyChain, clusterEndpoints, largeClusterMode);
  }
  if (localEndpoints.length > 0) {
    writeEndpointDispatch(out, names, sp, localPolicyChain, localEndpoints, largeClusterMode);
  }

  // Endpoint chains.
  const sepComment = largeClusterMode ? "" : ` ${comment(nameString)}`;
  const affinity = sp.sessionAffinity.type === "ClientIP";
  const reachable = cat.allReachableEndpoints;
  for (let i = 0; i < reachable.length; i++) {
    const ep = reachable[i]!;
    const chain = plan.sepChains[i]!;
    out.push(`-A ${chain}${sepComment} -s ${ep.ip} -j ${KUBE_MARK_MASQ}`);
    out.push(
      `-A ${chain}${sepComment}${affinity ? ` -m recent --name ${chain} --set` : ""} ${match} -j DNAT --to-destination ${ep.address}`,
    );
  }
}

/** Sorted service port keys, cached per (immutable) services map. */
const sortedKeyCache = new WeakMap<ReadonlyMap<string, ServicePort>, readonly string[]>();

function sortedKeys(services: ReadonlyMap<string, ServicePort>): readonly string[] {
  let keys = sortedKeyCache.get(services);
  if (keys === undefined) {
    keys = [...services.keys()].sort();
    sortedKeyCache.set(services, keys);
  }
  return keys;
}

/**
 * {@link joinLines}, flattened: V8 builds concatenated strings as trees, and copying the
 * cached lines of 10k service ports into each payload is several times faster when each
 * is one flat string. (Reading a character flattens a string in place.)
 */
function flatText(lines: readonly string[]): string {
  const text = joinLines(lines);
  if (text.length > 0) text.charCodeAt(0);
  return text;
}

function joinLines(lines: readonly string[]): string {
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}

/** Session-affinity and statistic-mode rules from a policy chain to its endpoints' chains. */
function writeEndpointDispatch(
  out: string[],
  names: PortNames,
  sp: ServicePort,
  chain: string,
  endpoints: readonly Endpoint[],
  largeClusterMode: boolean,
): void {
  const epComment = (ep: Endpoint) =>
    largeClusterMode ? "" : ` ${comment(`${names.nameString} -> ${ep.address}`)}`;
  if (sp.sessionAffinity.type === "ClientIP") {
    const seconds = sp.sessionAffinity.timeoutSeconds;
    for (const ep of endpoints) {
      const sep = endpointChainOf(names, ep);
      out.push(
        `-A ${chain}${epComment(ep)} -m recent --name ${sep} --rcheck --seconds ${seconds} --reap -j ${sep}`,
      );
    }
  }
  const n = endpoints.length;
  for (let i = 0; i < n; i++) {
    const ep = endpoints[i]!;
    const sep = endpointChainOf(names, ep);
    if (i < n - 1) {
      out.push(
        `-A ${chain}${epComment(ep)} -m statistic --mode random --probability ${probability(n - i)} -j ${sep}`,
      );
    } else {
      out.push(`-A ${chain}${epComment(ep)} -j ${sep}`);
    }
  }
}
