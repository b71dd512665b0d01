/**
 * The normalised service model every proxy backend consumes.
 *
 * A Kubernetes Service with N ports becomes N {@link ServicePort}s, each
 * identified by a {@link ServicePortName}. Endpoints come from the Service's
 * EndpointSlices, merged and deduplicated per service port. All values are
 * immutable snapshots: a backend may keep references across syncs and compare
 * them by identity to skip unchanged work.
 *
 * @module
 */
import type { EndpointSlice, Service } from "../kube/objects.js";
import type { IPFamily } from "../net/ip.js";
import type { ObjectEventHandler } from "../sources/types.js";

/** Transport protocol of a service port. */
export type Protocol = "TCP" | "UDP" | "SCTP";

/** Identity of one port of one Service: kube-proxy's `ServicePortName`. */
export interface ServicePortName {
  readonly namespace: string;
  readonly name: string;
  /** The port's `name` field (empty string for a single unnamed port). */
  readonly port: string;
  readonly protocol: Protocol;
}

/**
 * The string key of a {@link ServicePortName}, `namespace/name:port/protocol`
 * (for example `default/web:http/TCP`); used as map key everywhere.
 */
export type ServicePortKey = string;

/** `Service.spec.sessionAffinity` normalised. */
export type SessionAffinity =
  | { readonly type: "None" }
  | { readonly type: "ClientIP" /** Default 10800 (3 h). */; readonly timeoutSeconds: number };

/** `Service.spec.type`. */
export type ServiceType = "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName";

/** One port of one Service, with everything a backend needs to program it. */
export interface ServicePort {
  readonly name: ServicePortName;
  /** {@link servicePortKey} of `name`, precomputed. */
  readonly key: ServicePortKey;
  readonly type: ServiceType;
  /** Cluster IPs, normalised, in `spec.ipFamilies` order (empty for headless services). */
  readonly clusterIPs: readonly string[];
  /** The service port number (`spec.ports[].port`). */
  readonly port: number;
  readonly protocol: Protocol;
  /** Allocated node port, or 0 when none. */
  readonly nodePort: number;
  /** `spec.externalIPs`, normalised. */
  readonly externalIPs: readonly string[];
  /** `status.loadBalancer.ingress[].ip`, normalised (hostname-only and `ipMode: Proxy` ingresses are skipped). */
  readonly loadBalancerIPs: readonly string[];
  /** `spec.loadBalancerSourceRanges`, normalised CIDRs. */
  readonly loadBalancerSourceRanges: readonly string[];
  readonly sessionAffinity: SessionAffinity;
  /** `spec.externalTrafficPolicy == Local` (only meaningful for NodePort / LoadBalancer / external IPs). */
  readonly externalPolicyLocal: boolean;
  /** `spec.internalTrafficPolicy == Local`. */
  readonly internalPolicyLocal: boolean;
  /** `spec.healthCheckNodePort`, or 0. */
  readonly healthCheckNodePort: number;
  /** `spec.ipFamilies` (the families of `clusterIPs`). */
  readonly ipFamilies: readonly IPFamily[];
  /** `spec.trafficDistribution` (for example `PreferClose`), when set. */
  readonly trafficDistribution?: string;
  /**
   * Whether traffic from outside the cluster can reach the port
   * (NodePort, external IPs or load-balancer IPs are present).
   */
  readonly externallyAccessible: boolean;
}

/** One backend address of a service port, from an EndpointSlice. */
export interface Endpoint {
  /** Normalised IP address. */
  readonly ip: string;
  readonly family: IPFamily;
  /** Target port number. */
  readonly port: number;
  /** `ip:port` (IPv6 as `[ip]:port`), precomputed. */
  readonly address: string;
  /** `conditions.ready` (unset counts as true, as the API specifies). */
  readonly ready: boolean;
  /** `conditions.serving` (unset: same as `ready`). */
  readonly serving: boolean;
  /** `conditions.terminating` (unset counts as false). */
  readonly terminating: boolean;
  /** `nodeName` of the endpoint, if set. */
  readonly nodeName?: string;
  /** `zone` of the endpoint, if set. */
  readonly zone?: string;
  /** `hints.forZones[].name`. */
  readonly zoneHints: readonly string[];
  /** `hints.forNodes[].name`. */
  readonly nodeHints: readonly string[];
  /** True when `nodeName` is the proxy's own node. */
  readonly isLocal: boolean;
}

/**
 * The complete desired state at one instant: every service port and its endpoints.
 * Immutable; a new snapshot shares unchanged entries with the previous one.
 */
export interface ServiceSnapshot {
  /** Service ports by {@link ServicePortKey}. */
  readonly services: ReadonlyMap<ServicePortKey, ServicePort>;
  /** Endpoints by {@link ServicePortKey} (absent or empty: no endpoints). */
  readonly endpoints: ReadonlyMap<ServicePortKey, readonly Endpoint[]>;
  /** Monotonic generation number, incremented by every commit that changed something. */
  readonly generation: number;
}

/** A UDP/SCTP conntrack entry family that must be flushed after a change. */
export interface StaleConntrack {
  /** Service IP (cluster, external or load-balancer IP), or "" for a node-port entry. */
  readonly serviceIP: string;
  /** Service port (or node port when `serviceIP` is ""). */
  readonly port: number;
  readonly protocol: Protocol;
  /** Backend `ip:port` whose entries must go; undefined: every entry for the service IP and port. */
  readonly endpoint?: string;
}

/** What changed between the previous committed snapshot and this one. */
export interface ChangeSet {
  /** Service ports whose service or endpoints changed (including added and deleted ones). */
  readonly changedServicePorts: ReadonlySet<ServicePortKey>;
  /** Service ports that no longer exist. */
  readonly deletedServicePorts: ReadonlySet<ServicePortKey>;
  /**
   * Conntrack entries of UDP / SCTP traffic that must be deleted so that clients
   * move on: deleted cluster IPs, and endpoints that went away or stopped serving.
   */
  readonly staleConntrack: readonly StaleConntrack[];
  /**
   * For network-programming latency: the earliest time (ms since epoch) a
   * change in this set was made upstream, per service port, when known
   * (from the `endpoints.kubernetes.io/last-change-trigger-time` annotation).
   */
  readonly triggerTimes: ReadonlyMap<ServicePortKey, number>;
}

/** The result of {@link ServiceStateTracker.commit}. */
export interface Commit {
  /** The complete state after applying every pending change. */
  readonly snapshot: ServiceSnapshot;
  /** What changed since the previous commit. */
  readonly changes: ChangeSet;
}

/**
 * Turns Service and EndpointSlice events into snapshots and change sets
 * (kube-proxy's ServiceChangeTracker + EndpointsChangeTracker in one).
 * Events only record pending changes; {@link ServiceStateTracker.commit} applies them.
 */
export interface ServiceStateTracker {
  /** Attach to a Service source. */
  readonly serviceHandler: ObjectEventHandler<Service>;
  /** Attach to an EndpointSlice source. */
  readonly endpointSliceHandler: ObjectEventHandler<EndpointSlice>;
  /** True when events arrived since the last commit that may change the snapshot. */
  hasPendingChanges(): boolean;
  /** Applies pending changes and returns the new snapshot with what changed. */
  commit(): Commit;
  /** The last committed snapshot. */
  snapshot(): ServiceSnapshot;
  /**
   * Registers a callback run (synchronously) whenever a change becomes pending;
   * the proxy controller uses it to wake its runner.
   * @returns a function that unregisters the callback
   */
  onPendingChange(callback: () => void): () => void;
}
