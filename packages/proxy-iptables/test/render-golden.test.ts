import {
  commitAll,
  dualStackNodePort,
  fixtureLoadBalancer,
  fixtureNodePort,
  fixtureService,
  fixtureSlice,
  goldenFiles,
  ipv6MasqueradeAllOptions,
  localLoadBalancer,
  slice,
  svc,
} from "@worknode/testing";
import { describe, expect, it } from "vitest";
import { type RenderOptions, renderRules } from "../src/render/render.js";

const expectGolden = goldenFiles(new URL("./golden/", import.meta.url), expect);

const node = { name: "test-node", nodeIPs: ["192.168.0.2", "2001:db8::1"] };
const v4: RenderOptions = { family: "IPv4", clusterCIDR: "10.0.0.0/8", masqueradeAll: false };

function payload(r: { filter: string; nat: string }): string {
  return r.filter + r.nat;
}

describe("golden payloads", () => {
  it("ClusterIP: one endpoint, two endpoints, session affinity, no endpoints, UDP and SCTP", () => {
    const { snapshot, changes } = commitAll(
      [
        fixtureService(1),
        fixtureService(4),
        fixtureService(3, { affinity: 10800 }),
        fixtureService(6),
        svc({
          ns: "kube-system",
          name: "dns",
          clusterIP: "172.30.0.10",
          ports: [{ name: "dns", port: 53, protocol: "UDP" }],
        }),
        svc({ ns: "ns7", name: "sctp", clusterIP: "172.30.0.47", ports: [{ port: 9999, protocol: "SCTP" }] }),
      ],
      [
        fixtureSlice(1, ["10.180.0.1"]),
        fixtureSlice(4, ["10.180.0.4", "10.180.0.5"]),
        fixtureSlice(3, ["10.180.0.1", "10.180.0.2", "10.180.0.3"]),
        slice({
          ns: "kube-system",
          service: "dns",
          ports: [{ name: "dns", port: 53, protocol: "UDP" }],
          endpoints: [{ ip: "10.180.0.53" }, { ip: "10.180.0.54", ready: false }],
        }),
        slice({
          ns: "ns7",
          service: "sctp",
          ports: [{ port: 9999, protocol: "SCTP" }],
          endpoints: [{ ip: "10.180.0.7" }],
        }),
      ],
    );
    expectGolden("clusterip.txt", payload(renderRules({ snapshot, changes, full: true, node, options: v4 })));
  });

  it("NodePort, LoadBalancer with source ranges, externalIPs and the Local traffic policies", () => {
    const { snapshot, changes } = commitAll(
      [
        // externalTrafficPolicy Local without a local endpoint: external traffic dropped.
        localLoadBalancer({ externalIPs: ["192.168.99.22"], healthCheckNodePort: 30000 }),
        // Plain NodePort.
        fixtureNodePort(3, 3003),
        // LoadBalancer with source ranges (the node's IP inside one) and Local policy with a local endpoint.
        fixtureLoadBalancer(5, 3002, {
          lbIPs: ["5.6.7.8"],
          sourceRanges: ["203.0.113.0/25", "192.168.0.0/24"],
          etp: "Local",
          healthCheckNodePort: 30001,
        }),
        // internalTrafficPolicy Local without a local endpoint: cluster IP traffic dropped.
        fixtureService(8, { itp: "Local" }),
        // External IP, no endpoints at all: REJECT everywhere.
        fixtureNodePort(9, 3009, { externalIPs: ["192.168.99.33"] }),
      ],
      [
        fixtureSlice(2, [{ ip: "10.180.0.2", node: "other-node" }]),
        fixtureSlice(3, [{ ip: "10.180.0.3", node: "other-node" }]),
        fixtureSlice(5, [
          { ip: "10.180.0.5", node: "test-node" },
          { ip: "10.180.1.5", node: "other-node" },
        ]),
        fixtureSlice(8, [{ ip: "10.180.0.8", node: "other-node" }]),
      ],
    );
    expectGolden("external.txt", payload(renderRules({ snapshot, changes, full: true, node, options: v4 })));
  });

  it("IPv6 family of a dual-stack service, masquerade-all and node-port addresses", () => {
    const { services, slices } = dualStackNodePort();
    const { snapshot, changes } = commitAll(services, slices);
    const r = renderRules({
      snapshot,
      changes,
      full: true,
      node,
      options: ipv6MasqueradeAllOptions(),
    });
    expectGolden("ipv6.txt", payload(r));
  });
  it("localhost node ports (kube-proxy's default): KUBE-FIREWALL rule, node ports on 127.0.0.1", () => {
    const { snapshot, changes } = commitAll([fixtureNodePort(1, 3001)], [fixtureSlice(1, ["10.180.0.1"])]);
    const every = renderRules({
      snapshot,
      changes,
      full: true,
      node,
      options: { ...v4, localhostNodePorts: true },
    });
    const listed = renderRules({
      snapshot,
      changes,
      full: true,
      node: { ...node, nodeIPs: [...node.nodeIPs, "127.0.0.1"] },
      options: { ...v4, localhostNodePorts: true, nodePortAddresses: ["127.0.0.0/8", "192.168.0.0/24"] },
    });
    expectGolden(
      "localhost-nodeports.txt",
      `# every local address\n${payload(every)}# --nodeport-addresses 127.0.0.0/8,192.168.0.0/24\n${payload(listed)}`,
    );
  });
});
