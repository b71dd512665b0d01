/**
 * The pure renderer: a service snapshot in, one `nft -f -` transaction for one family
 * out, in kube-proxy's nftables layout. Full renders replace the whole table atomically;
 * partial renders touch only the chains, sets and elements of changed service ports.
 *
 * @module
 */
import {
  type ChangeSet,
  cidrContains,
  endpointsOfFamily,
  type IPFamily,
  type NodeTopology,
  type ProxyNode,
  parseCidr,
  type ServicePort,
  type ServiceSnapshot,
  WorknodeError,
} from "@worknode/core";
import { type ElementChange, ElementIndex } from "./element-index.js";
import {
  CLUSTER_IPS_CHECK_CHAIN,
  CLUSTER_IPS_SET,
  FIREWALL_CHECK_CHAIN,
  FIREWALL_IPS_MAP,
  HAIRPIN_SET,
  MARK_MASQ_CHAIN,
  MASQUERADING_CHAIN,
  NFTABLES_TABLE,
  NO_ENDPOINT_NODEPORTS_MAP,
  NO_ENDPOINT_SERVICES_MAP,
  NODEPORT_ENDPOINTS_CHECK_CHAIN,
  NODEPORT_IPS_SET,
  nftFamily,
  REJECT_CHAIN,
  SERVICE_ENDPOINTS_CHECK_CHAIN,
  SERVICE_IPS_MAP,
  SERVICE_NODEPORTS_MAP,
  SERVICES_CHAIN,
} from "./names.js";
import { type PlanContext, type PlannedAffinitySet, type PortPlan, planPort } from "./plan.js";

/** kube-proxy's default masquerade bit (mark 0x4000). */
export const DEFAULT_MASQUERADE_BIT = 14;

/** The node the rules are rendered for (name, zone, labels, addresses). */
export type NftRenderNode = ProxyNode;

/** Proxy options that shape the rules. */
export interface NftRenderOptions {
  /** The family rendered (`ip` or `ip6` table); other families' addresses are ignored. */
  readonly family: IPFamily;
  /** `--cluster-cidr` of this family: off-cluster traffic to cluster IPs is masqueraded. */
  readonly clusterCIDR?: string;
  /** `--masquerade-all`. */
  readonly masqueradeAll: boolean;
  /** `--nodeport-addresses`; unset or none of this family: node ports on every local address but loopback. */
  readonly nodePortAddresses?: readonly string[];
  /** Masquerade mark bit (default 14). */
  readonly masqueradeBit?: number;
  /** Table name (default `kube-proxy`). */
  readonly table?: string;
}

/** Input of {@link renderNftables}. */
export interface NftRenderInput {
  readonly snapshot: ServiceSnapshot;
  /** What changed since the render whose state is `previous`. */
  readonly changes: ChangeSet;
  /** Replace the whole table (true) or change only what `changes` names (false; needs `previous`). */
  readonly full: boolean;
  /**
   * The state of the last render that was applied successfully. A partial render takes
   * it over (it must not be used again); without it the render is full.
   */
  readonly previous?: NftRenderState;
  readonly node: NftRenderNode;
  readonly options: NftRenderOptions;
}

/** Counts of one render. */
export interface NftRenderStats {
  /** Whether the table was replaced. */
  readonly full: boolean;
  /** Service ports of this family. */
  readonly servicePorts: number;
  /** Endpoints of this family, over all service ports. */
  readonly endpoints: number;
  /** Service ports whose chains and elements this transaction writes. */
  readonly servicePortsWritten: number;
  /** Rules written (fixed chains included on full renders). */
  readonly rulesWritten: number;
  /** Element additions and deletions in the transaction. */
  readonly elementsWritten: number;
  /** Per-service-port chains in the table once applied. */
  readonly chains: number;
}

/** Output of {@link renderNftables}. */
export interface NftRenderResult {
  /** The `nft -f -` input. */
  readonly payload: string;
  /** Per-service-port chains written (created or rewritten). */
  readonly chainsWritten: readonly string[];
  /** Per-service-port chains emptied because no service port uses them any more (deleted by the next partial render). */
  readonly chainsFlushedStale: readonly string[];
  /** Chains deleted by this transaction (emptied by an earlier one). */
  readonly chainsDeleted: readonly string[];
  /** The state to give the next partial render once this payload is applied. */
  readonly state: NftRenderState;
  readonly stats: NftRenderStats;
}

/**
 * What the kernel holds after a render is applied: the plans of every service port, the
 * owners of every element, and the chains emptied and waiting to be deleted. Opaque; a
 * partial render takes it over and returns its successor.
 */
export class NftRenderState {
  /** @internal */
  consumed = false;
  /** @internal */
  constructor(
    /** @internal */ readonly config: string,
    /** @internal */ readonly plans: Map<string, PortPlan>,
    /** @internal */ readonly elements: ElementIndex,
    /** @internal */ readonly staleChains: ReadonlySet<string>,
    /** @internal */ readonly totals: { endpoints: number; chains: number },
  ) {}

  /** Service ports of the family programmed. */
  get servicePorts(): number {
    return this.plans.size;
  }

  /** Elements of a set or map (for tests and metrics). */
  elementCount(set: string): number {
    return this.elements.size(set);
  }
}

/** Thrown when a render state is given to a second partial render. */
export class NftRenderStateReusedError extends WorknodeError {
  constructor() {
    super("NFT_RENDER_STATE_REUSED", "this nftables render state was already taken over by a later render");
  }
}

function familyOf(ip: string): IPFamily {
  return ip.includes(":") ? "IPv6" : "IPv4";
}

interface Layout {
  readonly prefix: string;
  readonly ipX: "ip" | "ip6";
  readonly addr: "ipv4_addr" | "ipv6_addr";
  readonly mark: string;
  /** The node IPs of `nodePortAddresses`, or undefined for every local address. */
  readonly nodePortIPs: readonly string[] | undefined;
}

function layoutOf(options: NftRenderOptions, node: NftRenderNode): Layout {
  const family = options.family;
  const ipX = nftFamily(family);
  const cidrs = (options.nodePortAddresses ?? [])
    .map((t) => parseCidr(t))
    .filter((c) => c !== undefined && c.family === family);
  let nodePortIPs: string[] | undefined;
  if (cidrs.length > 0) {
    nodePortIPs = [];
    for (const ip of node.nodeIPs) {
      if (familyOf(ip) !== family || ip === "::1" || ip.startsWith("127.")) continue;
      if (cidrs.some((c) => c !== undefined && cidrContains(c, ip)) && !nodePortIPs.includes(ip))
        nodePortIPs.push(ip);
    }
  }
  return {
    prefix: `${ipX} ${options.table ?? NFTABLES_TABLE}`,
    ipX,
    addr: family === "IPv4" ? "ipv4_addr" : "ipv6_addr",
    mark: `0x${(1 << (options.masqueradeBit ?? DEFAULT_MASQUERADE_BIT)).toString(16)}`,
    nodePortIPs,
  };
}

const BASE_CHAINS: readonly (readonly [string, string, string, string])[] = [
  // dstnat is -100 and srcnat 100 (nft 1.0.6 takes those keywords on few hooks, hence
  // numbers): filtering sees destinations before DNAT (-110), the post-DNAT check after it.
  ["filter-prerouting", "filter", "prerouting", "-110"],
  ["filter-input", "filter", "input", "-110"],
  ["filter-forward", "filter", "forward", "-110"],
  ["filter-output", "filter", "output", "-110"],
  ["filter-output-post-dnat", "filter", "output", "-90"],
  ["nat-prerouting", "nat", "prerouting", "-100"],
  ["nat-output", "nat", "output", "-100"],
  ["nat-postrouting", "nat", "postrouting", "100"],
];

const FIXED_CHAINS = [
  SERVICES_CHAIN,
  MASQUERADING_CHAIN,
  MARK_MASQ_CHAIN,
  FIREWALL_CHECK_CHAIN,
  SERVICE_ENDPOINTS_CHECK_CHAIN,
  NODEPORT_ENDPOINTS_CHECK_CHAIN,
  CLUSTER_IPS_CHECK_CHAIN,
  REJECT_CHAIN,
] as const;

/** The table's fixed part: chains, sets, maps and their rules (what every full render starts with). */
function fixedPart(l: Layout): { lines: string[]; rules: string[] } {
  const { prefix, ipX, addr, mark } = l;
  const lines: string[] = [];
  for (const [name, type, hook, priority] of BASE_CHAINS)
    lines.push(`add chain ${prefix} ${name} { type ${type} hook ${hook} priority ${priority} ; }`);
  for (const c of FIXED_CHAINS) lines.push(`add chain ${prefix} ${c}`);
  const svc = `${addr} . inet_proto . inet_service : verdict`;
  const np = "inet_proto . inet_service : verdict";
  lines.push(
    `add set ${prefix} ${CLUSTER_IPS_SET} { type ${addr} ; comment "Active ClusterIPs" ; }`,
    `add set ${prefix} ${HAIRPIN_SET} { type ${addr} . ${addr} ; comment "endpoint IP . endpoint IP: connections from an endpoint to itself through a service are masqueraded" ; }`,
    `add map ${prefix} ${SERVICE_IPS_MAP} { type ${svc} ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }`,
    `add map ${prefix} ${SERVICE_NODEPORTS_MAP} { type ${np} ; comment "NodePort traffic" ; }`,
    `add map ${prefix} ${NO_ENDPOINT_SERVICES_MAP} { type ${svc} ; comment "vmap to drop or reject packets to services with no endpoints" ; }`,
    `add map ${prefix} ${NO_ENDPOINT_NODEPORTS_MAP} { type ${np} ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }`,
    `add map ${prefix} ${FIREWALL_IPS_MAP} { type ${svc} ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }`,
  );
  let nodePortMatch: string;
  if (l.nodePortIPs === undefined) {
    nodePortMatch = `fib daddr type local ${ipX === "ip" ? "ip daddr != 127.0.0.0/8" : "ip6 daddr != ::1"}`;
  } else {
    lines.push(
      `add set ${prefix} ${NODEPORT_IPS_SET} { type ${addr} ; comment "IPs that accept NodePort traffic" ; }`,
    );
    if (l.nodePortIPs.length > 0)
      lines.push(`add element ${prefix} ${NODEPORT_IPS_SET} { ${l.nodePortIPs.join(", ")} }`);
    nodePortMatch = `${ipX} daddr @${NODEPORT_IPS_SET}`;
  }
  const r = (chain: string, rule: string) => `add rule ${prefix} ${chain} ${rule}`;
  const rules = [
    r("filter-prerouting", `ct state new jump ${FIREWALL_CHECK_CHAIN}`),
    r("filter-input", `ct state new jump ${NODEPORT_ENDPOINTS_CHECK_CHAIN}`),
    r("filter-input", `ct state new jump ${SERVICE_ENDPOINTS_CHECK_CHAIN}`),
    r("filter-forward", `ct state new jump ${SERVICE_ENDPOINTS_CHECK_CHAIN}`),
    r("filter-forward", `ct state new jump ${CLUSTER_IPS_CHECK_CHAIN}`),
    r("filter-output", `ct state new jump ${SERVICE_ENDPOINTS_CHECK_CHAIN}`),
    r("filter-output", `ct state new jump ${FIREWALL_CHECK_CHAIN}`),
    r("filter-output-post-dnat", `ct state new jump ${CLUSTER_IPS_CHECK_CHAIN}`),
    r("nat-prerouting", `jump ${SERVICES_CHAIN}`),
    r("nat-output", `jump ${SERVICES_CHAIN}`),
    r("nat-postrouting", `jump ${MASQUERADING_CHAIN}`),
    r(MARK_MASQ_CHAIN, `mark set mark or ${mark}`),
    r(
      MASQUERADING_CHAIN,
      `ct status dnat ${ipX} saddr . ${ipX} daddr @${HAIRPIN_SET} jump ${MARK_MASQ_CHAIN}`,
    ),
    r(MASQUERADING_CHAIN, `mark and ${mark} == 0 return`),
    r(MASQUERADING_CHAIN, `mark set mark xor ${mark}`),
    r(MASQUERADING_CHAIN, "masquerade fully-random"),
    r(SERVICES_CHAIN, `${ipX} daddr . meta l4proto . th dport vmap @${SERVICE_IPS_MAP}`),
    r(SERVICES_CHAIN, `${nodePortMatch} meta l4proto . th dport vmap @${SERVICE_NODEPORTS_MAP}`),
    r(
      SERVICE_ENDPOINTS_CHECK_CHAIN,
      `${ipX} daddr . meta l4proto . th dport vmap @${NO_ENDPOINT_SERVICES_MAP}`,
    ),
    r(
      NODEPORT_ENDPOINTS_CHECK_CHAIN,
      `${nodePortMatch} meta l4proto . th dport vmap @${NO_ENDPOINT_NODEPORTS_MAP}`,
    ),
    r(FIREWALL_CHECK_CHAIN, `${ipX} daddr . meta l4proto . th dport vmap @${FIREWALL_IPS_MAP}`),
    r(
      CLUSTER_IPS_CHECK_CHAIN,
      `${ipX} daddr @${CLUSTER_IPS_SET} reject comment "Reject traffic to invalid ports of ClusterIPs"`,
    ),
    r(REJECT_CHAIN, "reject"),
  ];
  return { lines, rules };
}

const ELEMENT_SETS = [
  CLUSTER_IPS_SET,
  HAIRPIN_SET,
  SERVICE_IPS_MAP,
  SERVICE_NODEPORTS_MAP,
  NO_ENDPOINT_SERVICES_MAP,
  NO_ENDPOINT_NODEPORTS_MAP,
  FIREWALL_IPS_MAP,
] as const;

/** Elements per `add element` line of a full render. */
const ELEMENTS_PER_LINE = 1000;

function affinitySetLine(prefix: string, addr: string, s: PlannedAffinitySet): string {
  return `add set ${prefix} ${s.name} { type ${addr} ; flags dynamic,timeout ; timeout ${s.timeoutSeconds}s ; }`;
}

function contextOf(input: NftRenderInput): PlanContext {
  const { node, options } = input;
  const family = options.family;
  const topology: NodeTopology = {
    name: node.name,
    ...(node.zone !== undefined ? { zone: node.zone } : {}),
    ...(node.labels !== undefined ? { labels: node.labels } : {}),
  };
  return {
    family,
    topology,
    clusterCIDR: options.clusterCIDR,
    masqueradeAll: options.masqueradeAll,
    nodeIP: node.nodeIPs.find((ip) => familyOf(ip) === family),
    config: [
      family,
      node.name,
      node.zone ?? "",
      JSON.stringify(node.labels ?? {}),
      node.nodeIPs.join(","),
      options.clusterCIDR ?? "",
      options.masqueradeAll,
      (options.nodePortAddresses ?? []).join(","),
      options.masqueradeBit ?? DEFAULT_MASQUERADE_BIT,
      options.table ?? NFTABLES_TABLE,
    ].join("|"),
  };
}

function planOf(
  sp: ServicePort | undefined,
  snapshot: ServiceSnapshot,
  ctx: PlanContext,
): PortPlan | undefined {
  if (sp === undefined) return undefined;
  const clusterIP = sp.clusterIPs.find((ip) => familyOf(ip) === ctx.family);
  if (clusterIP === undefined) return undefined;
  const raw = snapshot.endpoints.get(sp.key);
  return planPort(sp, clusterIP, raw, endpointsOfFamily(raw, ctx.family), ctx);
}

/**
 * Renders one family's nftables transaction.
 *
 * - **Full** (`full`, no usable `previous`, or other options than `previous` was made
 *   with): `add table` + `delete table` + the whole table again, in one transaction, so
 *   the kernel swaps the old table for the new one atomically and nothing stale survives.
 *   (ClientIP affinity sets start empty again.)
 * - **Partial**: for each service port in `changes` (changed or deleted), its chains are
 *   created or flushed and rewritten, the set and map elements it adds, drops or changes
 *   are added / deleted, its new affinity sets created and its old ones deleted. Chains
 *   no longer used are flushed and deleted by the next partial render (kernels before 6.2
 *   may still count a reference from a map element deleted in the same transaction).
 *   The cost is O(changed service ports).
 *
 * Equal inputs give byte-identical payloads (service ports in key order).
 */
export function renderNftables(input: NftRenderInput): NftRenderResult {
  const ctx = contextOf(input);
  const layout = layoutOf(input.options, input.node);
  const prev = input.previous;
  if (prev?.consumed) throw new NftRenderStateReusedError();
  if (!input.full && prev !== undefined && prev.config === ctx.config) {
    prev.consumed = true;
    return renderPartial(input, prev, ctx, layout);
  }
  if (prev !== undefined) prev.consumed = true;
  return renderFull(input, ctx, layout);
}

function renderFull(input: NftRenderInput, ctx: PlanContext, l: Layout): NftRenderResult {
  const { snapshot } = input;
  const { prefix, addr } = l;
  const plans = new Map<string, PortPlan>();
  const index = new ElementIndex();
  let endpoints = 0;
  let chainCount = 0;
  const keys = [...snapshot.services.keys()].sort();
  const ordered: PortPlan[] = [];
  for (const key of keys) {
    const plan = planOf(snapshot.services.get(key), snapshot, ctx);
    if (plan === undefined) continue;
    plans.set(key, plan);
    ordered.push(plan);
    index.load(key, plan.elements);
    endpoints += plan.endpointCount;
    chainCount += plan.chains.length;
  }
  const tableLine = `add table ${prefix} { comment "rules for kube-proxy" ; }`;
  const parts: string[] = [tableLine, `delete table ${prefix}`, tableLine];
  const fixed = fixedPart(l);
  parts.push(...fixed.lines);
  const chainsWritten: string[] = [];
  for (const plan of ordered) {
    for (const c of plan.chains) {
      parts.push(`add chain ${prefix} ${c.name}`);
      chainsWritten.push(c.name);
    }
    for (const s of plan.affinitySets) parts.push(affinitySetLine(prefix, addr, s));
  }
  let elementsWritten = 0;
  for (const set of ELEMENT_SETS) {
    let batch: string[] = [];
    const flush = () => {
      if (batch.length > 0) parts.push(`add element ${prefix} ${set} { ${batch.join(", ")} }`);
      elementsWritten += batch.length;
      batch = [];
    };
    for (const [key, value] of index.entries(set)) {
      batch.push(value === undefined ? key : `${key} : ${value}`);
      if (batch.length >= ELEMENTS_PER_LINE) flush();
    }
    flush();
  }
  parts.push(...fixed.rules);
  let rulesWritten = fixed.rules.length;
  for (const plan of ordered) {
    for (const c of plan.chains) {
      const head = `add rule ${prefix} ${c.name} `;
      for (const rule of c.rules) parts.push(head + rule);
    }
    rulesWritten += plan.ruleCount;
  }
  parts.push("");
  const state = new NftRenderState(ctx.config, plans, index, new Set(), { endpoints, chains: chainCount });
  return {
    payload: parts.join("\n"),
    chainsWritten,
    chainsFlushedStale: [],
    chainsDeleted: [],
    state,
    stats: {
      full: true,
      servicePorts: plans.size,
      endpoints,
      servicePortsWritten: plans.size,
      rulesWritten,
      elementsWritten,
      chains: chainCount,
    },
  };
}

function renderPartial(
  input: NftRenderInput,
  prev: NftRenderState,
  ctx: PlanContext,
  l: Layout,
): NftRenderResult {
  const { snapshot, changes } = input;
  const { prefix, addr } = l;
  const plans = prev.plans;
  const index = prev.elements;
  let { endpoints, chains: chainCount } = prev.totals;
  const changed = new Set<string>(changes.changedServicePorts);
  for (const k of changes.deletedServicePorts) changed.add(k);
  const keys = [...changed].sort();

  const written: PortPlan[] = [];
  const elementChanges = new Map<string, ElementChange>();
  const newAffinity: PlannedAffinitySet[] = [];
  /** Same endpoint, new `timeoutSeconds`: recreated (its chain was flushed above, so nothing uses it). */
  const changedAffinity: PlannedAffinitySet[] = [];
  const goneAffinity: string[] = [];
  const goneChains: string[] = [];
  for (const key of keys) {
    const old = plans.get(key);
    const plan = planOf(snapshot.services.get(key), snapshot, ctx);
    if (old === plan) continue;
    for (const c of index.apply(key, old?.elements ?? [], plan?.elements ?? [])) {
      // Several service ports may change one element in a render: keep its first
      // "before" and its last "after".
      const id = `${c.set}\u0000${c.key}`;
      const seen = elementChanges.get(id);
      elementChanges.set(id, seen === undefined ? c : { ...c, before: seen.before, existed: seen.existed });
    }
    const newChains = new Set(plan?.chains.map((c) => c.name) ?? []);
    const newSets = new Set(plan?.affinitySets.map((s) => s.name) ?? []);
    if (old !== undefined) {
      endpoints -= old.endpointCount;
      chainCount -= old.chains.length;
      for (const c of old.chains) if (!newChains.has(c.name)) goneChains.push(c.name);
      for (const s of old.affinitySets) if (!newSets.has(s.name)) goneAffinity.push(s.name);
    }
    if (plan !== undefined) {
      endpoints += plan.endpointCount;
      chainCount += plan.chains.length;
      const oldTimeouts = new Map(old?.affinitySets.map((s) => [s.name, s.timeoutSeconds]) ?? []);
      for (const s of plan.affinitySets) {
        const before = oldTimeouts.get(s.name);
        if (before === undefined) newAffinity.push(s);
        else if (before !== s.timeoutSeconds) changedAffinity.push(s);
      }
      plans.set(key, plan);
      written.push(plan);
    } else {
      plans.delete(key);
    }
  }

  const parts: string[] = [];
  // 1. Chains emptied by the previous transaction, unless a service port took them back.
  const active = new Set<string>();
  for (const plan of written) for (const c of plan.chains) active.add(c.name);
  const chainsDeleted: string[] = [];
  for (const c of prev.staleChains) {
    if (active.has(c)) continue;
    parts.push(`delete chain ${prefix} ${c}`);
    chainsDeleted.push(c);
  }
  // 2. Chains written: created (a no-op when they exist) and emptied.
  const chainsWritten: string[] = [];
  for (const plan of written) {
    for (const c of plan.chains) {
      parts.push(`add chain ${prefix} ${c.name}`, `flush chain ${prefix} ${c.name}`);
      chainsWritten.push(c.name);
    }
  }
  // 2b. Chains no longer used: emptied now (a map element may still point at them until
  // step 4; emptying is allowed, deleting is not), deleted by the next partial render.
  const stale = new Set<string>();
  for (const c of goneChains) {
    if (active.has(c)) continue;
    parts.push(`flush chain ${prefix} ${c}`);
    stale.add(c);
  }
  // 3. New affinity sets, and those whose timeout changed (recreated: kernels differ in
  // whether `add set` updates the timeout of an existing set).
  for (const s of changedAffinity)
    parts.push(`delete set ${prefix} ${s.name}`, affinitySetLine(prefix, addr, s));
  for (const s of newAffinity) parts.push(affinitySetLine(prefix, addr, s));
  // 4. Elements: deletions before additions (a changed value is both).
  for (const c of elementChanges.values()) {
    if (c.existed && (!c.exists || c.before !== c.after))
      parts.push(`delete element ${prefix} ${c.set} { ${c.key} }`);
  }
  for (const c of elementChanges.values()) {
    if (c.exists && (!c.existed || c.before !== c.after))
      parts.push(
        `add element ${prefix} ${c.set} { ${c.after === undefined ? c.key : `${c.key} : ${c.after}`} }`,
      );
  }
  // 5. Rules of the written chains.
  let rulesWritten = 0;
  for (const plan of written) {
    for (const c of plan.chains) {
      const head = `add rule ${prefix} ${c.name} `;
      for (const rule of c.rules) parts.push(head + rule);
    }
    rulesWritten += plan.ruleCount;
  }
  // 6. Affinity sets no longer used (no rule refers to them any more).
  for (const s of goneAffinity) parts.push(`delete set ${prefix} ${s}`);
  parts.push("");

  let elementsWritten = 0;
  for (const c of elementChanges.values()) elementsWritten += (c.existed ? 1 : 0) + (c.exists ? 1 : 0);
  const state = new NftRenderState(ctx.config, plans, index, stale, { endpoints, chains: chainCount });
  return {
    payload: parts.length === 1 ? "" : parts.join("\n"),
    chainsWritten,
    chainsFlushedStale: [...stale],
    chainsDeleted,
    state,
    stats: {
      full: false,
      servicePorts: plans.size,
      endpoints,
      servicePortsWritten: written.length,
      rulesWritten,
      elementsWritten,
      chains: chainCount,
    },
  };
}
