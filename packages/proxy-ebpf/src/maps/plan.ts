/**
 * What the socket load balancer programs for one service port in one family: its
 * frontends (cluster IPs, external and load-balancer IPs, node ports on the node's
 * addresses) and the backend group each frontend picks from. Pure.
 *
 * @module
 */
import {
  cidrContains,
  type Endpoint,
  endpointsOfFamily,
  type IPFamily,
  ipFamilyOf,
  type ProxyNode,
  parseCidr,
  planServicePortTraffic,
  type ServicePort,
  type ServiceSnapshot,
} from "@worknode/core";
import { type BackendAddress, backendsSignature, type Frontend, frontendId } from "./layout.js";

/** A set of backends that frontends pick from, with the affinity they pick with. */
export interface BackendGroup {
  /** The backends, in the order they get slots. Empty: connections are refused. */
  readonly backends: readonly BackendAddress[];
  /** ClientIP affinity timeout in seconds, 0 for none. */
  readonly affinityTimeout: number;
  /** Identity of the backend list (addresses in slot order), to tell whether it changed. */
  readonly signature: string;
}

/** One frontend of a service port and the group it uses. */
export interface PlannedFrontend {
  /** {@link frontendId} of `frontend`. */
  readonly id: string;
  readonly frontend: Frontend;
  /** Index into {@link PortPlan.groups}. */
  readonly group: number;
}

/** Everything one service port programs (all families). */
export interface PortPlan {
  readonly frontends: readonly PlannedFrontend[];
  readonly groups: readonly BackendGroup[];
}

/** Node-level settings of the plan. */
export interface PlanOptions {
  /** The families programmed. */
  readonly families: readonly IPFamily[];
  /** `--nodeport-addresses` CIDRs; unset or empty: every node IP. */
  readonly nodePortAddresses?: readonly string[];
  /** Node ports also answer on 127.0.0.1 (kube-proxy's `--iptables-localhost-nodeports`); default true. */
  readonly localhostNodePorts?: boolean;
}

function groupOf(endpoints: readonly Endpoint[], affinityTimeout: number): BackendGroup {
  const backends = endpoints.map((ep) => ({ ip: ep.ip, port: ep.port }));
  return { backends, affinityTimeout, signature: backendsSignature(backends) };
}

/**
 * The node's addresses of `family` that serve node ports to local clients: the node IPs
 * inside `nodePortAddresses` (all node IPs when it is unset), plus 127.0.0.1 for IPv4 when
 * localhost node ports are on and `nodePortAddresses` is unset or contains it.
 */
export function nodePortFrontendIPs(node: ProxyNode, options: PlanOptions, family: IPFamily): string[] {
  const cidrs = (options.nodePortAddresses ?? [])
    .map((t) => parseCidr(t))
    .filter((c) => c !== undefined && c.family === family);
  const anyCidrs = (options.nodePortAddresses ?? []).length > 0;
  const out: string[] = [];
  for (const ip of node.nodeIPs) {
    if (ipFamilyOf(ip) !== family || out.includes(ip)) continue;
    if (!anyCidrs || cidrs.some((c) => c !== undefined && cidrContains(c, ip))) out.push(ip);
  }
  const localhost =
    family === "IPv4" &&
    (options.localhostNodePorts ?? true) &&
    (!anyCidrs || cidrs.some((c) => c !== undefined && cidrContains(c, "127.0.0.1")));
  if (localhost && !out.includes("127.0.0.1")) out.push("127.0.0.1");
  return out;
}

/**
 * Plans one service port. Socket clients are always on this node (its processes and its
 * pods), so, as kube-proxy does for traffic from the node and its pods:
 * - cluster IPs use the internal endpoints (`internalTrafficPolicy: Local`: local ones);
 * - external IPs, load-balancer IPs and node ports short-circuit to the cluster endpoints,
 *   whatever `externalTrafficPolicy` says;
 * - a frontend without usable endpoints refuses connections.
 *
 * @param nodePortIPs per family, from {@link nodePortFrontendIPs}
 */
export function planPort(
  sp: ServicePort,
  endpoints: readonly Endpoint[] | undefined,
  node: ProxyNode,
  families: readonly IPFamily[],
  nodePortIPs: ReadonlyMap<IPFamily, readonly string[]>,
): PortPlan {
  const frontends: PlannedFrontend[] = [];
  const groups: BackendGroup[] = [];
  const affinity = sp.sessionAffinity.type === "ClientIP" ? sp.sessionAffinity.timeoutSeconds : 0;
  const add = (ip: string, port: number, group: number): void => {
    const frontend: Frontend = { ip, port, protocol: sp.protocol };
    const id = frontendId(frontend);
    if (frontends.some((f) => f.id === id)) return;
    frontends.push({ id, frontend, group });
  };
  for (const family of families) {
    const clusterIPs = sp.clusterIPs.filter((ip) => ipFamilyOf(ip) === family);
    const eps = endpointsOfFamily(endpoints, family);
    const traffic = planServicePortTraffic(sp, eps, node, family);
    const cat = traffic.endpoints;
    if (clusterIPs.length > 0) {
      const internal = sp.internalPolicyLocal ? (cat.localEndpoints ?? []) : (cat.clusterEndpoints ?? []);
      const g = groups.push(groupOf(internal, affinity)) - 1;
      for (const ip of clusterIPs) add(ip, sp.port, g);
    }
    const nodePorts = sp.nodePort !== 0 ? (nodePortIPs.get(family) ?? []) : [];
    const external = [...traffic.externalIPs, ...traffic.loadBalancerIPs];
    if (external.length > 0 || nodePorts.length > 0) {
      const g = groups.push(groupOf(cat.clusterEndpoints ?? cat.allReachableEndpoints, affinity)) - 1;
      for (const ip of external) add(ip, sp.port, g);
      for (const ip of nodePorts) add(ip, sp.nodePort, g);
    }
  }
  return { frontends, groups };
}

/**
 * Plans the service ports `keys` of `snapshot` (every one when `keys` is undefined); a key
 * without a service port in the snapshot plans its deletion (`undefined`).
 */
export function planServicePorts(
  snapshot: ServiceSnapshot,
  node: ProxyNode,
  options: PlanOptions,
  keys?: Iterable<string>,
): Map<string, PortPlan | undefined> {
  const nodePortIPs = new Map<IPFamily, readonly string[]>(
    options.families.map((f) => [f, nodePortFrontendIPs(node, options, f)]),
  );
  const plans = new Map<string, PortPlan | undefined>();
  for (const key of keys ?? snapshot.services.keys()) {
    const sp = snapshot.services.get(key);
    plans.set(
      key,
      sp === undefined
        ? undefined
        : planPort(sp, snapshot.endpoints.get(key), node, options.families, nodePortIPs),
    );
  }
  return plans;
}
