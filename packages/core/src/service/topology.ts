/**
 * Which endpoints of a service port this node uses, by traffic policy and
 * topology (kube-proxy's `CategorizeEndpoints`).
 *
 * @module
 */
import { LABEL_TOPOLOGY_ZONE } from "../kube/objects.js";
import type { Endpoint, ServicePort } from "./model.js";
import { usesClusterEndpoints, usesLocalEndpoints } from "./ports.js";

/** The node a proxy runs on, as topology sees it. */
export interface NodeTopology {
  /** Node name (matched against endpoint node hints and `nodeName`). */
  readonly name: string;
  /** The node's zone; when unset, taken from `labels["topology.kubernetes.io/zone"]`. */
  readonly zone?: string;
  /** The node's labels. */
  readonly labels?: Readonly<Record<string, string>>;
}

/** Options of {@link categorizeEndpoints}. */
export interface CategorizeOptions {
  /**
   * Honour per-node hints (`hints.forNodes`, set for `trafficDistribution: PreferSameNode`);
   * default true, as kube-proxy does with the PreferSameTrafficDistribution feature (on by
   * default since Kubernetes 1.34).
   */
  readonly nodeHints?: boolean;
}

/** Topology mode chosen for a service port's cluster endpoints. */
export type TopologyMode = "" | "PreferSameZone" | "PreferSameNode";

/** Result of {@link categorizeEndpoints}. */
export interface CategorizedEndpoints {
  /**
   * Usable endpoints for Cluster-policy traffic (topology applied), or `undefined` when
   * the port never uses the Cluster policy (internal policy Local, not externally accessible).
   */
  readonly clusterEndpoints: readonly Endpoint[] | undefined;
  /**
   * Usable endpoints on this node for Local-policy traffic, or `undefined` when the port
   * never uses the Local policy.
   */
  readonly localEndpoints: readonly Endpoint[] | undefined;
  /** Union of the two lists (one of them when it contains the other), in input order. */
  readonly allReachableEndpoints: readonly Endpoint[];
  /**
   * Whether the service has usable endpoints anywhere in the cluster, even when none is
   * reachable from this node (so a backend drops rather than rejects the traffic).
   */
  readonly hasAnyEndpoints: boolean;
  /** The topology mode applied to `clusterEndpoints`. */
  readonly topologyMode: TopologyMode;
}

const NONE: readonly Endpoint[] = Object.freeze([]);

/**
 * Picks the topology mode from the endpoints' hints (kube-proxy's `topologyModeFromHints`):
 * same-node when every ready endpoint has node hints and one names this node; otherwise
 * same-zone when every ready endpoint has zone hints and one names this node's zone;
 * otherwise none. Only ready endpoints are considered.
 */
export function topologyModeFromHints(
  endpoints: readonly Endpoint[],
  nodeName: string,
  zone: string,
  useNodeHints = true,
): TopologyMode {
  let hasReady = false;
  let allNodeHints = true;
  let forNode = false;
  let allZoneHints = true;
  let forZone = false;
  for (const ep of endpoints) {
    if (!ep.ready) continue;
    hasReady = true;
    if (ep.nodeHints.length === 0) allNodeHints = false;
    else if (ep.nodeHints.includes(nodeName)) forNode = true;
    if (ep.zoneHints.length === 0) allZoneHints = false;
    else if (zone !== "" && ep.zoneHints.includes(zone)) forZone = true;
  }
  if (!hasReady) return "";
  if (useNodeHints && allNodeHints && forNode) return "PreferSameNode";
  if (allZoneHints && forZone) return "PreferSameZone";
  return "";
}

function availableForTopology(ep: Endpoint, mode: TopologyMode, nodeName: string, zone: string): boolean {
  if (mode === "") return true;
  if (mode === "PreferSameNode") return ep.nodeHints.includes(nodeName);
  return ep.zoneHints.includes(zone);
}

/**
 * Splits a service port's endpoints into what this node uses, exactly as kube-proxy's
 * `CategorizeEndpoints` does:
 *
 * - Cluster endpoints (when the port uses the Cluster policy, see {@link usesClusterEndpoints}):
 *   ready endpoints, narrowed by topology hints when {@link topologyModeFromHints} picks a
 *   mode; when none is ready anywhere, the serving-and-terminating ones.
 * - Local endpoints (when the port uses the Local policy, see {@link usesLocalEndpoints}):
 *   this node's ready endpoints, or else its serving-and-terminating ones; topology does
 *   not apply.
 * - `hasAnyEndpoints`: some endpoint is ready, or serving and terminating, anywhere.
 *
 * Pure; the output lists keep the input order.
 */
export function categorizeEndpoints(
  servicePort: ServicePort,
  endpoints: readonly Endpoint[] | undefined,
  node: NodeTopology,
  opts: CategorizeOptions = {},
): CategorizedEndpoints {
  const usesCluster = usesClusterEndpoints(servicePort);
  const usesLocal = usesLocalEndpoints(servicePort);
  if (!endpoints || endpoints.length === 0) {
    return {
      clusterEndpoints: usesCluster ? NONE : undefined,
      localEndpoints: usesLocal ? NONE : undefined,
      allReachableEndpoints: NONE,
      hasAnyEndpoints: false,
      topologyMode: "",
    };
  }
  const nodeName = node.name;
  const zone = node.zone ?? node.labels?.[LABEL_TOPOLOGY_ZONE] ?? "";

  let clusterEndpoints: readonly Endpoint[] | undefined;
  let topologyMode: TopologyMode = "";
  let hasAnyEndpoints = false;
  if (usesCluster) {
    topologyMode = topologyModeFromHints(endpoints, nodeName, zone, opts.nodeHints ?? true);
    let list = endpoints.filter((ep) => ep.ready && availableForTopology(ep, topologyMode, nodeName, zone));
    // No ready endpoint for the chosen topology means none is ready anywhere
    // (topology is only chosen when a ready endpoint matches): fall back to terminating ones.
    if (list.length === 0) list = endpoints.filter((ep) => ep.serving && ep.terminating);
    if (list.length > 0) hasAnyEndpoints = true;
    clusterEndpoints = list;
  }
  if (!usesLocal) {
    return {
      clusterEndpoints,
      localEndpoints: undefined,
      allReachableEndpoints: clusterEndpoints ?? NONE,
      hasAnyEndpoints,
      topologyMode,
    };
  }

  let hasLocalReady = false;
  let hasLocalServingTerminating = false;
  for (const ep of endpoints) {
    if (ep.ready) {
      hasAnyEndpoints = true;
      if (ep.isLocal) hasLocalReady = true;
    } else if (ep.serving && ep.terminating) {
      hasAnyEndpoints = true;
      if (ep.isLocal) hasLocalServingTerminating = true;
    }
  }
  let localEndpoints: readonly Endpoint[] = NONE;
  let localUsesTerminating = false;
  if (hasLocalReady) {
    localEndpoints = endpoints.filter((ep) => ep.isLocal && ep.ready);
  } else if (hasLocalServingTerminating) {
    localUsesTerminating = true;
    localEndpoints = endpoints.filter((ep) => ep.isLocal && ep.serving && ep.terminating);
  }

  if (!clusterEndpoints) {
    return {
      clusterEndpoints: undefined,
      localEndpoints,
      allReachableEndpoints: localEndpoints,
      hasAnyEndpoints,
      topologyMode,
    };
  }
  if (topologyMode === "" && !localUsesTerminating) {
    // Cluster endpoints are then every ready endpoint: a superset of the local ready ones.
    return {
      clusterEndpoints,
      localEndpoints,
      allReachableEndpoints: clusterEndpoints,
      hasAnyEndpoints,
      topologyMode,
    };
  }
  const members = new Set<Endpoint>(clusterEndpoints);
  for (const ep of localEndpoints) members.add(ep);
  const allReachableEndpoints = endpoints.filter((ep) => members.has(ep));
  return { clusterEndpoints, localEndpoints, allReachableEndpoints, hasAnyEndpoints, topologyMode };
}
