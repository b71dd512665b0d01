import { describe, expect, it } from "vitest";
import type { Service } from "../../src/kube/objects.js";
import {
  buildServicePorts,
  parseServicePortKey,
  serviceIPs,
  servicePortKey,
  servicePortsEqual,
  usesClusterEndpoints,
  usesLocalEndpoints,
} from "../../src/service/index.js";
import { InvalidObjectError } from "../../src/util/errors.js";
import { makeService } from "../fixtures/services.js";

function svc(spec: Record<string, unknown>, extra: Partial<Service> = {}): Service {
  return {
    metadata: { namespace: "default", name: "web" },
    spec: { clusterIP: "10.96.0.10", ports: [{ port: 80 }], ...spec } as Service["spec"],
    ...extra,
  };
}

function reasonsOf(s: Service, opts = {}): readonly string[] {
  const r = buildServicePorts(s, opts);
  expect(r.ports).toEqual([]);
  expect(r.error).toBeInstanceOf(InvalidObjectError);
  return r.error!.reasons;
}

describe("servicePortKey", () => {
  it("formats and parses namespace/name:port/protocol", () => {
    const name = { namespace: "default", name: "web", port: "http", protocol: "TCP" as const };
    expect(servicePortKey(name)).toBe("default/web:http/TCP");
    expect(parseServicePortKey("default/web:http/TCP")).toEqual(name);
    expect(parseServicePortKey("default/dns:/UDP")).toEqual({
      namespace: "default",
      name: "dns",
      port: "",
      protocol: "UDP",
    });
    expect(parseServicePortKey("garbage")).toBeUndefined();
    expect(parseServicePortKey("a/b:c/ICMP")).toBeUndefined();
  });
});

describe("buildServicePorts", () => {
  it("builds a single unnamed ClusterIP port with defaults", () => {
    const { ports, error, skipped } = buildServicePorts(svc({}));
    expect(error).toBeUndefined();
    expect(skipped).toBeUndefined();
    expect(ports).toEqual([
      {
        name: { namespace: "default", name: "web", port: "", protocol: "TCP" },
        key: "default/web:/TCP",
        type: "ClusterIP",
        clusterIPs: ["10.96.0.10"],
        port: 80,
        protocol: "TCP",
        nodePort: 0,
        externalIPs: [],
        loadBalancerIPs: [],
        loadBalancerSourceRanges: [],
        sessionAffinity: { type: "None" },
        externalPolicyLocal: false,
        internalPolicyLocal: false,
        healthCheckNodePort: 0,
        ipFamilies: ["IPv4"],
        externallyAccessible: false,
      },
    ]);
  });

  it("builds one port per spec.ports entry of a dual-stack NodePort service, IPs normalised", () => {
    const { ports, error } = buildServicePorts(
      svc({
        type: "NodePort",
        clusterIP: "10.96.0.10",
        clusterIPs: ["10.96.0.10", "FD00:0:0::0A"],
        ipFamilies: ["IPv4", "IPv6"],
        ports: [
          { name: "dns", port: 53, protocol: "UDP", nodePort: 30053 },
          { name: "dns-tcp", port: 53, protocol: "TCP", nodePort: 30054 },
        ],
      }),
    );
    expect(error).toBeUndefined();
    expect(ports.map((p) => p.key)).toEqual(["default/web:dns/UDP", "default/web:dns-tcp/TCP"]);
    expect(ports[0]!.clusterIPs).toEqual(["10.96.0.10", "fd00::a"]);
    expect(ports[0]!.ipFamilies).toEqual(["IPv4", "IPv6"]);
    expect(ports.map((p) => p.nodePort)).toEqual([30053, 30054]);
    expect(ports.every((p) => p.externallyAccessible)).toBe(true);
  });

  it("takes VIP-mode load-balancer ingress IPs, skipping hostnames and Proxy mode", () => {
    const { ports, error } = buildServicePorts(
      svc(
        {
          type: "LoadBalancer",
          ports: [{ port: 443, nodePort: 31443 }],
          externalTrafficPolicy: "Local",
          healthCheckNodePort: 32000,
          loadBalancerSourceRanges: [" 192.168.1.77/24 ", "2001:db8::/32"],
        },
        {
          status: {
            loadBalancer: {
              ingress: [
                { ip: "203.0.113.7" },
                { hostname: "lb.example.com" },
                { ip: "203.0.113.8", ipMode: "Proxy" },
                { ip: "2001:DB8::7", ipMode: "VIP" },
              ],
            },
          },
        },
      ),
    );
    expect(error).toBeUndefined();
    const p = ports[0]!;
    expect(p.loadBalancerIPs).toEqual(["203.0.113.7", "2001:db8::7"]);
    expect(p.loadBalancerSourceRanges).toEqual(["192.168.1.0/24", "2001:db8::/32"]);
    expect(p.externalPolicyLocal).toBe(true);
    expect(p.healthCheckNodePort).toBe(32000);
    expect(p.externallyAccessible).toBe(true);
    expect(serviceIPs(p)).toEqual(["10.96.0.10", "203.0.113.7", "2001:db8::7"]);
  });

  it("ignores the health-check node port unless LoadBalancer with externalTrafficPolicy Local", () => {
    const nodePort = buildServicePorts(
      svc({
        type: "NodePort",
        externalTrafficPolicy: "Local",
        healthCheckNodePort: 32000,
        ports: [{ port: 80 }],
      }),
    );
    expect(nodePort.ports[0]!.healthCheckNodePort).toBe(0);
    expect(nodePort.ports[0]!.externalPolicyLocal).toBe(true);
    const cluster = buildServicePorts(
      svc({ type: "LoadBalancer", externalTrafficPolicy: "Cluster", healthCheckNodePort: 32000 }),
    );
    expect(cluster.ports[0]!.healthCheckNodePort).toBe(0);
  });

  it("treats externalTrafficPolicy Local as meaningless for an internal-only ClusterIP service", () => {
    const internal = buildServicePorts(svc({ externalTrafficPolicy: "Local" })).ports[0]!;
    expect(internal.externalPolicyLocal).toBe(false);
    const withExternal = buildServicePorts(
      svc({ externalTrafficPolicy: "Local", externalIPs: ["192.0.2.10", "192.0.2.10"] }),
    ).ports[0]!;
    expect(withExternal.externalPolicyLocal).toBe(true);
    expect(withExternal.externalIPs).toEqual(["192.0.2.10"]);
    expect(withExternal.externallyAccessible).toBe(true);
  });

  it("normalises session affinity, defaulting the timeout to 10800 s", () => {
    const dflt = buildServicePorts(svc({ sessionAffinity: "ClientIP" })).ports[0]!;
    expect(dflt.sessionAffinity).toEqual({ type: "ClientIP", timeoutSeconds: 10800 });
    const set = buildServicePorts(
      svc({ sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }),
    ).ports[0]!;
    expect(set.sessionAffinity).toEqual({ type: "ClientIP", timeoutSeconds: 60 });
  });

  it("reads traffic policies and distribution", () => {
    const p = buildServicePorts(svc({ internalTrafficPolicy: "Local", trafficDistribution: "PreferClose" }))
      .ports[0]!;
    expect(p.internalPolicyLocal).toBe(true);
    expect(p.trafficDistribution).toBe("PreferClose");
    expect(usesClusterEndpoints(p)).toBe(false);
    expect(usesLocalEndpoints(p)).toBe(true);
  });

  it("produces no ports, without error, for ExternalName and headless services", () => {
    for (const s of [
      svc({ type: "ExternalName", externalName: "db.example.com", clusterIP: undefined }),
      svc({ clusterIP: "None" }),
      svc({ clusterIP: "" }),
      svc({ clusterIP: undefined }),
      makeService(1, { clusterIP: "None" }),
    ]) {
      const r = buildServicePorts(s);
      expect(r.ports).toEqual([]);
      expect(r.error).toBeUndefined();
      expect(r.skipped).toMatch(/ExternalName|headless/);
    }
  });

  it("skips services labelled for another proxy or headless, and serves its own", () => {
    const other = svc(
      {},
      {
        metadata: {
          namespace: "default",
          name: "web",
          labels: { "service.kubernetes.io/service-proxy-name": "cilium" },
        },
      },
    );
    expect(buildServicePorts(other).skipped).toMatch(/cilium/);
    expect(buildServicePorts(other, { proxyName: "other" }).skipped).toMatch(/another proxy/);
    expect(buildServicePorts(other, { proxyName: "cilium" }).ports).toHaveLength(1);
    // A named proxy leaves unlabelled services to the default proxy.
    expect(buildServicePorts(svc({}), { proxyName: "cilium" }).skipped).toMatch(/default proxy/);
    const headless = svc(
      {},
      { metadata: { namespace: "default", name: "web", labels: { "service.kubernetes.io/headless": "" } } },
    );
    expect(buildServicePorts(headless).skipped).toMatch(/headless/);
  });

  it("rejects missing name and namespace, naming what is missing", () => {
    const r = buildServicePorts({ metadata: {}, spec: { clusterIP: "10.0.0.1", ports: [{ port: 80 }] } });
    expect(r.error?.reasons).toEqual(["metadata.name is missing", "metadata.namespace is missing"]);
    expect(r.error?.message).toMatch(/^invalid Service/);
  });

  it("rejects bad cluster IPs", () => {
    expect(reasonsOf(svc({ clusterIP: "10.96.0.300" }))[0]).toMatch(
      /spec\.clusterIPs\[0\]: "10\.96\.0\.300" is not a valid IP/,
    );
    expect(reasonsOf(svc({ clusterIP: "010.96.0.1" }))[0]).toMatch(/not a valid IP/);
    expect(reasonsOf(svc({ clusterIP: "10.0.0.1", clusterIPs: ["10.0.0.2"] }))[0]).toMatch(/must equal/);
    expect(reasonsOf(svc({ clusterIP: "10.0.0.1", clusterIPs: ["10.0.0.1", "10.0.0.2"] }))[0]).toMatch(
      /different IP families/,
    );
    expect(
      reasonsOf(svc({ clusterIP: "10.0.0.1", clusterIPs: ["10.0.0.1"], ipFamilies: ["IPv6"] }))[0],
    ).toMatch(/ipFamilies/);
    expect(reasonsOf(svc({ clusterIP: "None", clusterIPs: ["None", "fd00::1"] }))[0]).toMatch(/only entry/);
  });

  it("rejects bad ports with reasons naming the field and the Service", () => {
    const r = buildServicePorts(
      svc({
        ports: [
          { name: "http", port: 70000 },
          { name: "http", port: 81 },
          { name: "Bad_Name", port: 82 },
          { name: "x", port: 83, protocol: "ICMP" },
          { port: 84 },
          { name: "y", port: 81 },
        ],
      }),
    );
    expect(r.ports).toEqual([]);
    expect(r.error!.message).toContain("invalid Service default/web");
    expect(r.error!.reasons).toEqual([
      "spec.ports[0].port: 70000 is not a valid port number (1-65535)",
      'spec.ports[1].name: duplicate port name "http"',
      'spec.ports[2].name: "Bad_Name" is not a valid port name (lowercase DNS label)',
      'spec.ports[3].protocol: unknown protocol "ICMP" (TCP, UDP or SCTP)',
      "spec.ports[4].name: required when the Service has more than one port",
      "spec.ports[5]: duplicate port 81/TCP",
    ]);
    expect(reasonsOf(svc({ ports: [] }))[0]).toMatch(/at least one port/);
    expect(reasonsOf(svc({ ports: [{ port: "80" }] }))[0]).toMatch(/"80" is not a valid port number/);
  });

  it("rejects node ports out of range, or on a ClusterIP service", () => {
    expect(reasonsOf(svc({ type: "NodePort", ports: [{ port: 80, nodePort: 70000 }] }))[0]).toMatch(
      /nodePort: 70000 is outside the node port range 1-65535/,
    );
    expect(
      reasonsOf(svc({ type: "NodePort", ports: [{ port: 80, nodePort: 8080 }] }), {
        nodePortRange: { min: 30000, max: 32767 },
      })[0],
    ).toMatch(/outside the node port range 30000-32767/);
    expect(reasonsOf(svc({ ports: [{ port: 80, nodePort: 30080 }] }))[0]).toMatch(/type ClusterIP/);
  });

  it("rejects invalid external IPs, ingress IPs and source ranges", () => {
    const reasons = reasonsOf(
      svc(
        {
          type: "LoadBalancer",
          externalIPs: ["192.0.2.1", "nope"],
          loadBalancerSourceRanges: ["10.0.0.0/33", "1.2.3.4"],
        },
        { status: { loadBalancer: { ingress: [{ ip: "300.1.1.1" }] } } },
      ),
    );
    expect(reasons).toEqual([
      'spec.externalIPs[1]: "nope" is not a valid IP address',
      'status.loadBalancer.ingress[0].ip: "300.1.1.1" is not a valid IP address',
      'spec.loadBalancerSourceRanges[0]: "10.0.0.0/33" is not a valid CIDR',
      'spec.loadBalancerSourceRanges[1]: "1.2.3.4" is not a valid CIDR',
    ]);
  });

  it("rejects out-of-range affinity timeouts and unknown policies and types", () => {
    for (const t of [0, 86401, 1.5]) {
      expect(
        reasonsOf(
          svc({ sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: { timeoutSeconds: t } } }),
        )[0],
      ).toMatch(/timeoutSeconds: .* is outside 1\.\.86400/);
    }
    expect(
      buildServicePorts(
        svc({ sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: { timeoutSeconds: 86400 } } }),
      ).error,
    ).toBeUndefined();
    expect(reasonsOf(svc({ sessionAffinity: "Cookie" }))[0]).toMatch(/unknown affinity "Cookie"/);
    expect(reasonsOf(svc({ externalTrafficPolicy: "Nearest" }))[0]).toMatch(/externalTrafficPolicy/);
    expect(reasonsOf(svc({ internalTrafficPolicy: "Node" }))[0]).toMatch(/internalTrafficPolicy/);
    expect(reasonsOf(svc({ type: "Magic" }))[0]).toMatch(/unknown service type "Magic"/);
  });

  it("is pure: equal input gives equal ports, and servicePortsEqual sees differences", () => {
    const a = buildServicePorts(makeService(3, { type: "NodePort", ports: 2 })).ports;
    const b = buildServicePorts(makeService(3, { type: "NodePort", ports: 2 })).ports;
    expect(a).toEqual(b);
    expect(servicePortsEqual(a[0]!, b[0]!)).toBe(true);
    const c = buildServicePorts(makeService(3, { type: "NodePort", ports: 2, affinityTimeout: 5 })).ports;
    expect(servicePortsEqual(a[0]!, c[0]!)).toBe(false);
    const d = buildServicePorts(
      makeService(3, { type: "NodePort", ports: 2, externalIPs: ["192.0.2.1"] }),
    ).ports;
    expect(servicePortsEqual(a[1]!, d[1]!)).toBe(false);
  });
});
