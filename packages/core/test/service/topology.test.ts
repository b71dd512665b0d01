import { describe, expect, it } from "vitest";
import {
  categorizeEndpoints,
  type Endpoint,
  type ServicePort,
  topologyModeFromHints,
} from "../../src/service/index.js";

function sp(opts: { itpLocal?: boolean; etpLocal?: boolean; nodePort?: number } = {}): ServicePort {
  const nodePort = opts.nodePort ?? 0;
  return {
    name: { namespace: "ns", name: "svc", port: "", protocol: "TCP" },
    key: "ns/svc:/TCP",
    type: nodePort ? "NodePort" : "ClusterIP",
    clusterIPs: ["10.96.0.1"],
    port: 80,
    protocol: "TCP",
    nodePort,
    externalIPs: [],
    loadBalancerIPs: [],
    loadBalancerSourceRanges: [],
    sessionAffinity: { type: "None" },
    externalPolicyLocal: opts.etpLocal ?? false,
    internalPolicyLocal: opts.itpLocal ?? false,
    healthCheckNodePort: 0,
    ipFamilies: ["IPv4"],
    externallyAccessible: nodePort !== 0,
  };
}

interface EpOpts {
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
  local?: boolean;
  zones?: string[];
  nodes?: string[];
}

function ep(ip: string, o: EpOpts = {}): Endpoint {
  const ready = o.ready ?? true;
  return {
    ip,
    family: "IPv4",
    port: 80,
    address: `${ip}:80`,
    ready,
    serving: o.serving ?? ready,
    terminating: o.terminating ?? false,
    zoneHints: o.zones ?? [],
    nodeHints: o.nodes ?? [],
    isLocal: o.local ?? false,
    ...(o.local ? { nodeName: "node-a" } : {}),
  };
}

const addrs = (eps: readonly Endpoint[] | undefined) =>
  eps === undefined ? undefined : eps.map((e) => e.ip).sort();
const zoneA = { name: "node-a", zone: "zone-a" };

interface Case {
  name: string;
  port: ServicePort;
  node?: { name: string; zone?: string; labels?: Record<string, string> };
  endpoints: Endpoint[];
  cluster: string[] | undefined;
  local: string[] | undefined;
  all?: string[];
  /** hasAnyEndpoints although nothing is reachable from this node. */
  onlyRemote?: boolean;
}

// Behaviour of kube-proxy's CategorizeEndpoints (pkg/proxy/topology.go), case by case.
const cases: Case[] = [
  {
    name: "zone hints narrow cluster endpoints to the node's zone",
    port: sp(),
    endpoints: [
      ep("10.1.2.3", { zones: ["zone-a"] }),
      ep("10.1.2.4", { zones: ["zone-b"] }),
      ep("10.1.2.5", { zones: ["zone-c"] }),
      ep("10.1.2.6", { zones: ["zone-a"] }),
    ],
    cluster: ["10.1.2.3", "10.1.2.6"],
    local: undefined,
  },
  {
    name: "zone label read from node labels",
    port: sp(),
    node: { name: "node-a", labels: { "topology.kubernetes.io/zone": "zone-b" } },
    endpoints: [ep("10.1.2.3", { zones: ["zone-a"] }), ep("10.1.2.4", { zones: ["zone-b"] })],
    cluster: ["10.1.2.4"],
    local: undefined,
  },
  {
    name: "no filtering when the node has no zone",
    port: sp(),
    node: { name: "node-a" },
    endpoints: [ep("10.1.2.3", { zones: ["zone-a"] }), ep("10.1.2.4", { zones: ["zone-b"] })],
    cluster: ["10.1.2.3", "10.1.2.4"],
    local: undefined,
  },
  {
    name: "no filtering when no hint names the node's zone",
    port: sp(),
    node: { name: "node-a", zone: "zone-z" },
    endpoints: [ep("10.1.2.3", { zones: ["zone-a"] })],
    cluster: ["10.1.2.3"],
    local: undefined,
  },
  {
    name: "no filtering when one ready endpoint lacks hints",
    port: sp(),
    endpoints: [
      ep("10.1.2.3", { zones: ["zone-a"] }),
      ep("10.1.2.4", { zones: ["zone-b"] }),
      ep("10.1.2.5"),
      ep("10.1.2.6", { zones: ["zone-a"] }),
    ],
    cluster: ["10.1.2.3", "10.1.2.4", "10.1.2.5", "10.1.2.6"],
    local: undefined,
  },
  {
    name: "unready endpoints do not count for hints or selection",
    port: sp(),
    endpoints: [
      ep("10.1.2.3", { zones: ["zone-a"] }),
      ep("10.1.2.4", { zones: ["zone-b"] }),
      ep("10.1.2.5", { ready: false }),
      ep("10.1.2.6", { zones: ["zone-a"], ready: false }),
    ],
    cluster: ["10.1.2.3"],
    local: undefined,
  },
  {
    name: "only unready endpoints in the same zone: no filtering",
    port: sp(),
    endpoints: [
      ep("10.1.2.3", { zones: ["zone-a"], ready: false }),
      ep("10.1.2.4", { zones: ["zone-b"] }),
      ep("10.1.2.5", { zones: ["zone-c"] }),
      ep("10.1.2.6", { zones: ["zone-a"], ready: false }),
    ],
    cluster: ["10.1.2.4", "10.1.2.5"],
    local: undefined,
  },
  {
    name: "an endpoint hinted for several zones is used in each",
    port: sp(),
    node: { name: "node-a", zone: "zone-c" },
    endpoints: [
      ep("10.1.2.3", { zones: ["zone-a", "zone-b", "zone-c"] }),
      ep("10.1.2.4", { zones: ["zone-b", "zone-c"] }),
      ep("10.1.2.5", { zones: ["zone-b", "zone-d"] }),
      ep("10.1.2.6", { zones: ["zone-c"] }),
    ],
    cluster: ["10.1.2.3", "10.1.2.4", "10.1.2.6"],
    local: undefined,
  },
  {
    name: "externalTrafficPolicy Local: topology ignored for local endpoints",
    port: sp({ etpLocal: true, nodePort: 30080 }),
    endpoints: [
      ep("10.1.2.3", { zones: ["zone-a"], local: true }),
      ep("10.1.2.4", { zones: ["zone-b"], local: true }),
      ep("10.1.2.5", { zones: ["zone-c"] }),
      ep("10.1.2.6", { zones: ["zone-a"] }),
    ],
    cluster: ["10.1.2.3", "10.1.2.6"],
    local: ["10.1.2.3", "10.1.2.4"],
    all: ["10.1.2.3", "10.1.2.4", "10.1.2.6"],
  },
  {
    name: "internalTrafficPolicy Local on an externally accessible port: both lists",
    port: sp({ itpLocal: true, nodePort: 30080 }),
    endpoints: [
      ep("10.1.2.3", { zones: ["zone-a"], local: true }),
      ep("10.1.2.4", { zones: ["zone-b"], local: true }),
      ep("10.1.2.5", { zones: ["zone-c"] }),
      ep("10.1.2.6", { zones: ["zone-a"] }),
    ],
    cluster: ["10.1.2.3", "10.1.2.6"],
    local: ["10.1.2.3", "10.1.2.4"],
    all: ["10.1.2.3", "10.1.2.4", "10.1.2.6"],
  },
  {
    name: "internalTrafficPolicy Local with no endpoints",
    port: sp({ itpLocal: true }),
    endpoints: [],
    cluster: undefined,
    local: [],
  },
  {
    name: "internalTrafficPolicy Local, all endpoints remote",
    port: sp({ itpLocal: true }),
    endpoints: [ep("10.0.0.0"), ep("10.0.0.1")],
    cluster: undefined,
    local: [],
    onlyRemote: true,
  },
  {
    name: "internalTrafficPolicy Local, some endpoints local",
    port: sp({ itpLocal: true }),
    endpoints: [ep("10.0.0.0", { local: true }), ep("10.0.0.1")],
    cluster: undefined,
    local: ["10.0.0.0"],
  },
  {
    name: "Cluster policy, no endpoint ready",
    port: sp(),
    endpoints: [ep("10.0.0.0", { ready: false }), ep("10.0.0.1", { ready: false })],
    cluster: [],
    local: undefined,
  },
  {
    name: "Cluster policy, some endpoints ready",
    port: sp(),
    endpoints: [ep("10.0.0.0", { ready: false }), ep("10.0.0.1")],
    cluster: ["10.0.0.1"],
    local: undefined,
  },
  {
    name: "Cluster policy, all endpoints terminating: fall back to serving terminating ones",
    port: sp(),
    endpoints: [
      ep("10.0.0.0", { ready: false, serving: true, terminating: true, local: true }),
      ep("10.0.0.1", { ready: false, serving: true, terminating: true }),
      ep("10.0.0.2", { ready: false, serving: false, terminating: true }),
    ],
    cluster: ["10.0.0.0", "10.0.0.1"],
    local: undefined,
  },
  {
    name: "iTP Local, eTP Cluster, some endpoints local",
    port: sp({ itpLocal: true, nodePort: 30080 }),
    endpoints: [ep("10.0.0.0", { local: true }), ep("10.0.0.1")],
    cluster: ["10.0.0.0", "10.0.0.1"],
    local: ["10.0.0.0"],
    all: ["10.0.0.0", "10.0.0.1"],
  },
  {
    name: "iTP Cluster, eTP Local, some endpoints local",
    port: sp({ etpLocal: true, nodePort: 30080 }),
    endpoints: [ep("10.0.0.0", { local: true }), ep("10.0.0.1")],
    cluster: ["10.0.0.0", "10.0.0.1"],
    local: ["10.0.0.0"],
    all: ["10.0.0.0", "10.0.0.1"],
  },
  {
    name: "iTP Local, eTP Local, all endpoints remote",
    port: sp({ itpLocal: true, etpLocal: true, nodePort: 30080 }),
    endpoints: [ep("10.0.0.0"), ep("10.0.0.1")],
    cluster: ["10.0.0.0", "10.0.0.1"],
    local: [],
    all: ["10.0.0.0", "10.0.0.1"],
  },
  {
    name: "iTP Local, eTP Local, all endpoints remote and terminating",
    port: sp({ itpLocal: true, etpLocal: true, nodePort: 30080 }),
    endpoints: [
      ep("10.0.0.0", { ready: false, serving: true, terminating: true }),
      ep("10.0.0.1", { ready: false, serving: true, terminating: true }),
    ],
    cluster: ["10.0.0.0", "10.0.0.1"],
    local: [],
    all: ["10.0.0.0", "10.0.0.1"],
  },
  {
    name: "iTP Cluster, eTP Local, terminating endpoints: local falls back to serving terminating",
    port: sp({ etpLocal: true, nodePort: 30080 }),
    endpoints: [
      ep("10.0.0.0"),
      ep("10.0.0.1", { ready: false, serving: false, local: true }),
      ep("10.0.0.2", { ready: false, serving: true, terminating: true, local: true }),
      ep("10.0.0.3", { ready: false, serving: true, terminating: true }),
    ],
    cluster: ["10.0.0.0"],
    local: ["10.0.0.2"],
    all: ["10.0.0.0", "10.0.0.2"],
  },
  {
    name: "externalTrafficPolicy ignored when not externally accessible",
    port: sp({ etpLocal: true }),
    endpoints: [ep("10.0.0.0"), ep("10.0.0.1", { local: true })],
    cluster: ["10.0.0.0", "10.0.0.1"],
    local: undefined,
  },
  {
    name: "no cluster endpoints for an internal-only iTP Local service",
    port: sp({ itpLocal: true }),
    endpoints: [ep("10.0.0.0"), ep("10.0.0.1", { local: true })],
    cluster: undefined,
    local: ["10.0.0.1"],
  },
  {
    name: "conflicting topology and locality: merged reachable list",
    port: sp({ etpLocal: true, nodePort: 30080 }),
    endpoints: [
      ep("10.0.0.0", { zones: ["zone-a"], local: true }),
      ep("10.0.0.1", { zones: ["zone-b"], local: true }),
      ep("10.0.0.2", { zones: ["zone-a"] }),
      ep("10.0.0.3", { zones: ["zone-b"] }),
    ],
    cluster: ["10.0.0.0", "10.0.0.2"],
    local: ["10.0.0.0", "10.0.0.1"],
    all: ["10.0.0.0", "10.0.0.1", "10.0.0.2"],
  },
  {
    name: "node hints win over zone hints when every ready endpoint has one naming this node",
    port: sp(),
    endpoints: [
      ep("10.0.0.0", { zones: ["zone-a"], nodes: ["node-a"] }),
      ep("10.0.0.1", { zones: ["zone-a"], nodes: ["node-b"] }),
      ep("10.0.0.2", { zones: ["zone-b"], nodes: ["node-c"] }),
    ],
    cluster: ["10.0.0.0"],
    local: undefined,
  },
  {
    name: "node hints not naming this node: fall back to zone hints",
    port: sp(),
    endpoints: [
      ep("10.0.0.0", { zones: ["zone-a"], nodes: ["node-x"] }),
      ep("10.0.0.1", { zones: ["zone-a"], nodes: ["node-b"] }),
      ep("10.0.0.2", { zones: ["zone-b"], nodes: ["node-c"] }),
    ],
    cluster: ["10.0.0.0", "10.0.0.1"],
    local: undefined,
  },
];

describe("categorizeEndpoints", () => {
  for (const c of cases) {
    it(c.name, () => {
      const r = categorizeEndpoints(c.port, c.endpoints, c.node ?? zoneA);
      expect(addrs(r.clusterEndpoints)).toEqual(c.cluster);
      expect(addrs(r.localEndpoints)).toEqual(c.local);
      const all = c.all ?? c.cluster ?? c.local ?? [];
      expect(addrs(r.allReachableEndpoints)).toEqual(all);
      expect(r.hasAnyEndpoints).toBe(all.length > 0 || (c.onlyRemote ?? false));
    });
  }

  it("returns nothing usable for a port without endpoints", () => {
    const r = categorizeEndpoints(sp(), undefined, zoneA);
    expect(r).toMatchObject({
      clusterEndpoints: [],
      localEndpoints: undefined,
      allReachableEndpoints: [],
      hasAnyEndpoints: false,
    });
  });

  it("keeps input order in the merged list and can ignore node hints", () => {
    const eps = [
      ep("10.0.0.3", { zones: ["zone-b"], local: true, nodes: ["node-b"] }),
      ep("10.0.0.1", { zones: ["zone-a"], nodes: ["node-b"] }),
      ep("10.0.0.2", { zones: ["zone-a"], nodes: ["node-a"] }),
    ];
    const withNodeHints = categorizeEndpoints(sp({ etpLocal: true, nodePort: 30080 }), eps, zoneA);
    expect(withNodeHints.topologyMode).toBe("PreferSameNode");
    expect(withNodeHints.allReachableEndpoints.map((e) => e.ip)).toEqual(["10.0.0.3", "10.0.0.2"]);
    const zoneOnly = categorizeEndpoints(sp({ etpLocal: true, nodePort: 30080 }), eps, zoneA, {
      nodeHints: false,
    });
    expect(zoneOnly.topologyMode).toBe("PreferSameZone");
    expect(zoneOnly.allReachableEndpoints.map((e) => e.ip)).toEqual(["10.0.0.3", "10.0.0.1", "10.0.0.2"]);
  });

  it("topologyModeFromHints ignores hints when there is no ready endpoint", () => {
    expect(
      topologyModeFromHints([ep("10.0.0.1", { ready: false, zones: ["zone-a"] })], "node-a", "zone-a"),
    ).toBe("");
  });
});
