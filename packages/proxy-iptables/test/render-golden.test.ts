import { describe, it } from "vitest";
import { type RenderOptions, renderRules } from "../src/render/render.js";
import { expectGolden } from "./helpers/golden.js";
import { commitAll, slice, svc } from "./helpers/objects.js";

const node = { name: "test-node", nodeIPs: ["192.168.0.2", "2001:db8::1"] };
const v4: RenderOptions = { family: "IPv4", clusterCIDR: "10.0.0.0/8", masqueradeAll: false };
const p80 = [{ name: "p80", port: 80 }];

function payload(r: { filter: string; nat: string }): string {
  return r.filter + r.nat;
}

describe("golden payloads", () => {
  it("ClusterIP: one endpoint, two endpoints, session affinity, no endpoints, UDP and SCTP", () => {
    const { snapshot, changes } = commitAll(
      [
        svc({ ns: "ns1", name: "svc1", clusterIP: "172.30.0.41", ports: p80 }),
        svc({ ns: "ns4", name: "svc4", clusterIP: "172.30.0.44", ports: p80 }),
        svc({ ns: "ns3", name: "svc3", clusterIP: "172.30.0.43", ports: p80, affinity: 10800 }),
        svc({ ns: "ns6", name: "svc6", clusterIP: "172.30.0.46", ports: p80 }),
        svc({
          ns: "kube-system",
          name: "dns",
          clusterIP: "172.30.0.10",
          ports: [{ name: "dns", port: 53, protocol: "UDP" }],
        }),
        svc({ ns: "ns7", name: "sctp", clusterIP: "172.30.0.47", ports: [{ port: 9999, protocol: "SCTP" }] }),
      ],
      [
        slice({ ns: "ns1", service: "svc1", ports: p80, endpoints: [{ ip: "10.180.0.1" }] }),
        slice({
          ns: "ns4",
          service: "svc4",
          ports: p80,
          endpoints: [{ ip: "10.180.0.4" }, { ip: "10.180.0.5" }],
        }),
        slice({
          ns: "ns3",
          service: "svc3",
          ports: p80,
          endpoints: [{ ip: "10.180.0.1" }, { ip: "10.180.0.2" }, { ip: "10.180.0.3" }],
        }),
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
        svc({
          ns: "ns2",
          name: "svc2",
          type: "LoadBalancer",
          clusterIP: "172.30.0.42",
          ports: [{ name: "p80", port: 80, nodePort: 3001 }],
          externalIPs: ["192.168.99.22"],
          lbIPs: ["1.2.3.4"],
          etp: "Local",
          healthCheckNodePort: 30000,
        }),
        // Plain NodePort.
        svc({
          ns: "ns3",
          name: "svc3",
          type: "NodePort",
          clusterIP: "172.30.0.43",
          ports: [{ name: "p80", port: 80, nodePort: 3003 }],
        }),
        // LoadBalancer with source ranges (the node's IP inside one) and Local policy with a local endpoint.
        svc({
          ns: "ns5",
          name: "svc5",
          type: "LoadBalancer",
          clusterIP: "172.30.0.45",
          ports: [{ name: "p80", port: 80, nodePort: 3002 }],
          lbIPs: ["5.6.7.8"],
          sourceRanges: ["203.0.113.0/25", "192.168.0.0/24"],
          etp: "Local",
          healthCheckNodePort: 30001,
        }),
        // internalTrafficPolicy Local without a local endpoint: cluster IP traffic dropped.
        svc({ ns: "ns8", name: "svc8", clusterIP: "172.30.0.48", ports: p80, itp: "Local" }),
        // External IP, no endpoints at all: REJECT everywhere.
        svc({
          ns: "ns9",
          name: "svc9",
          type: "NodePort",
          clusterIP: "172.30.0.49",
          ports: [{ name: "p80", port: 80, nodePort: 3009 }],
          externalIPs: ["192.168.99.33"],
        }),
      ],
      [
        slice({
          ns: "ns2",
          service: "svc2",
          ports: p80,
          endpoints: [{ ip: "10.180.0.2", node: "other-node" }],
        }),
        slice({
          ns: "ns3",
          service: "svc3",
          ports: p80,
          endpoints: [{ ip: "10.180.0.3", node: "other-node" }],
        }),
        slice({
          ns: "ns5",
          service: "svc5",
          ports: p80,
          endpoints: [
            { ip: "10.180.0.5", node: "test-node" },
            { ip: "10.180.1.5", node: "other-node" },
          ],
        }),
        slice({
          ns: "ns8",
          service: "svc8",
          ports: p80,
          endpoints: [{ ip: "10.180.0.8", node: "other-node" }],
        }),
      ],
    );
    expectGolden("external.txt", payload(renderRules({ snapshot, changes, full: true, node, options: v4 })));
  });

  it("IPv6 family of a dual-stack service, masquerade-all and node-port addresses", () => {
    const { snapshot, changes } = commitAll(
      [
        svc({
          ns: "ns1",
          name: "svc1",
          type: "NodePort",
          clusterIP: ["172.30.0.41", "fd00:30::41"],
          ports: [{ name: "p80", port: 80, nodePort: 3001 }],
        }),
      ],
      [
        slice({ ns: "ns1", service: "svc1", ports: p80, endpoints: [{ ip: "10.180.0.1" }] }),
        slice({
          ns: "ns1",
          service: "svc1",
          name: "svc1-v6",
          ipv6: true,
          ports: p80,
          endpoints: [{ ip: "fd00:10::1" }, { ip: "fd00:10::2" }],
        }),
      ],
    );
    const r = renderRules({
      snapshot,
      changes,
      full: true,
      node,
      options: {
        family: "IPv6",
        masqueradeAll: true,
        nodePortAddresses: ["2001:db8::/64", "192.168.0.0/24"],
      },
    });
    expectGolden("ipv6.txt", payload(r));
  });
  it("localhost node ports (kube-proxy's default): KUBE-FIREWALL rule, node ports on 127.0.0.1", () => {
    const { snapshot, changes } = commitAll(
      [
        svc({
          ns: "ns1",
          name: "svc1",
          type: "NodePort",
          clusterIP: "172.30.0.41",
          ports: [{ name: "p80", port: 80, nodePort: 3001 }],
        }),
      ],
      [slice({ ns: "ns1", service: "svc1", ports: p80, endpoints: [{ ip: "10.180.0.1" }] })],
    );
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
