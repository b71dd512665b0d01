/**
 * Hand-written Services and EndpointSlices for proxy tests, following kube-proxy's test
 * conventions (pod IPs 10.0.0.0/8, cluster IPs 172.30.0.0/16, node IP 192.168.0.2,
 * external IPs 192.168.99.0/24, load-balancer IPs 1.2.3.4 …), and a helper that commits
 * them through a {@link ServiceChangeTracker}: the input of every `Proxier` backend's tests.
 *
 * @module
 */
import {
  type ChangeSet,
  type EndpointSlice,
  type Service,
  ServiceChangeTracker,
  type ServiceSnapshot,
} from "@worknode/core";

/** One service / slice port. */
export interface PortSpec {
  readonly name?: string;
  readonly port: number;
  readonly protocol?: "TCP" | "UDP" | "SCTP";
  readonly nodePort?: number;
  readonly targetPort?: number;
}

/** A Service in short form. */
export interface SvcSpec {
  readonly ns: string;
  readonly name: string;
  readonly clusterIP: string | readonly string[];
  readonly ports: readonly PortSpec[];
  readonly type?: "ClusterIP" | "NodePort" | "LoadBalancer";
  readonly externalIPs?: readonly string[];
  readonly lbIPs?: readonly string[];
  readonly sourceRanges?: readonly string[];
  readonly etp?: "Cluster" | "Local";
  readonly itp?: "Cluster" | "Local";
  readonly affinity?: number;
  readonly healthCheckNodePort?: number;
}

/** Builds a Service from its short form. */
export function svc(s: SvcSpec): Service {
  const ips = typeof s.clusterIP === "string" ? [s.clusterIP] : [...s.clusterIP];
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { namespace: s.ns, name: s.name },
    spec: {
      type: s.type ?? "ClusterIP",
      clusterIP: ips[0]!,
      clusterIPs: ips,
      ipFamilies: ips.map((ip) => (ip.includes(":") ? "IPv6" : "IPv4")),
      ports: s.ports.map((p) => ({
        ...(p.name !== undefined ? { name: p.name } : {}),
        port: p.port,
        protocol: p.protocol ?? "TCP",
        targetPort: p.targetPort ?? p.port,
        ...(p.nodePort !== undefined ? { nodePort: p.nodePort } : {}),
      })),
      ...(s.externalIPs ? { externalIPs: [...s.externalIPs] } : {}),
      ...(s.sourceRanges ? { loadBalancerSourceRanges: [...s.sourceRanges] } : {}),
      ...(s.etp ? { externalTrafficPolicy: s.etp } : {}),
      ...(s.itp ? { internalTrafficPolicy: s.itp } : {}),
      ...(s.healthCheckNodePort ? { healthCheckNodePort: s.healthCheckNodePort } : {}),
      ...(s.affinity !== undefined
        ? { sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: { timeoutSeconds: s.affinity } } }
        : {}),
    },
    ...(s.lbIPs ? { status: { loadBalancer: { ingress: s.lbIPs.map((ip) => ({ ip })) } } } : {}),
  };
}

/** One endpoint of a slice in short form (ready by default). */
export interface EpSpec {
  readonly ip: string;
  readonly node?: string;
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
}

/** An EndpointSlice in short form. */
export interface SliceSpec {
  readonly ns: string;
  readonly service: string;
  readonly name?: string;
  readonly ports: readonly PortSpec[];
  readonly endpoints: readonly EpSpec[];
  readonly ipv6?: boolean;
}

/** Builds an EndpointSlice from its short form. */
export function slice(s: SliceSpec): EndpointSlice {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    addressType: s.ipv6 ? "IPv6" : "IPv4",
    metadata: {
      namespace: s.ns,
      name: s.name ?? `${s.service}-abc`,
      labels: { "kubernetes.io/service-name": s.service },
    },
    ports: s.ports.map((p) => ({
      name: p.name ?? "",
      port: p.targetPort ?? p.port,
      protocol: p.protocol ?? "TCP",
    })),
    endpoints: s.endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: {
        ready: e.ready ?? true,
        serving: e.serving ?? e.ready ?? true,
        terminating: e.terminating ?? false,
      },
      ...(e.node ? { nodeName: e.node } : {}),
    })),
  };
}

/** Feeds objects into a fresh tracker for node `nodeName` and commits. */
export function commitAll(
  services: readonly Service[],
  slices: readonly EndpointSlice[],
  nodeName = "test-node",
): { tracker: ServiceChangeTracker; snapshot: ServiceSnapshot; changes: ChangeSet } {
  const tracker = new ServiceChangeTracker({ nodeName });
  for (const s of services) tracker.serviceHandler.onAdd!(s);
  for (const s of slices) tracker.endpointSliceHandler.onAdd!(s);
  const { snapshot, changes } = tracker.commit();
  return { tracker, snapshot, changes };
}
