import { commitAll, slice, svc } from "@worknode/testing";
import { describe, it } from "vitest";
import { type NftRenderOptions, renderNftables } from "../src/index.js";
import { expectGolden } from "./helpers/golden.js";

const node = { name: "test-node", nodeIPs: ["192.168.0.2", "2001:db8::1"] };
const v4: NftRenderOptions = { family: "IPv4", clusterCIDR: "10.0.0.0/8", masqueradeAll: false };
const p80 = [{ name: "p80", port: 80 }];

describe("golden nft payloads", () => {
  it("ClusterIP and NodePort", () => {
    const { snapshot, changes } = commitAll(
      [
        svc({ ns: "ns1", name: "svc1", clusterIP: "172.30.0.41", ports: p80 }),
        svc({
          ns: "ns3",
          name: "svc3",
          type: "NodePort",
          clusterIP: "172.30.0.43",
          ports: [{ name: "p80", port: 80, nodePort: 3003 }],
        }),
        // No endpoints: rejected.
        svc({ ns: "ns4", name: "svc4", clusterIP: "172.30.0.44", ports: p80 }),
        svc({
          ns: "kube-system",
          name: "dns",
          clusterIP: "172.30.0.10",
          ports: [{ name: "dns", port: 53, protocol: "UDP" }],
        }),
      ],
      [
        slice({ ns: "ns1", service: "svc1", ports: p80, endpoints: [{ ip: "10.180.0.1" }] }),
        slice({
          ns: "ns3",
          service: "svc3",
          ports: p80,
          endpoints: [{ ip: "10.180.0.3" }, { ip: "10.180.0.4", node: "test-node" }, { ip: "10.180.0.5" }],
        }),
        slice({
          ns: "kube-system",
          service: "dns",
          ports: [{ name: "dns", port: 53, protocol: "UDP" }],
          endpoints: [{ ip: "10.180.0.53" }, { ip: "10.180.0.54", ready: false }],
        }),
      ],
    );
    expectGolden(
      "clusterip-nodeport.nft",
      renderNftables({ snapshot, changes, full: true, node, options: v4 }).payload,
    );
  });

  it("LoadBalancer with source ranges, externalTrafficPolicy Local and a health check node port", () => {
    const { snapshot, changes } = commitAll(
      [
        svc({
          ns: "ns5",
          name: "svc5",
          type: "LoadBalancer",
          clusterIP: "172.30.0.45",
          ports: [{ name: "p80", port: 80, nodePort: 3002 }],
          externalIPs: ["192.168.99.55"],
          lbIPs: ["5.6.7.8"],
          sourceRanges: ["203.0.113.0/25", "192.168.0.0/24"],
          etp: "Local",
          healthCheckNodePort: 30001,
          affinity: 10800,
        }),
      ],
      [
        slice({
          ns: "ns5",
          service: "svc5",
          ports: p80,
          endpoints: [
            { ip: "10.180.0.5", node: "test-node" },
            { ip: "10.180.1.5", node: "other-node" },
          ],
        }),
      ],
    );
    expectGolden(
      "loadbalancer-local.nft",
      renderNftables({ snapshot, changes, full: true, node, options: v4 }).payload,
    );
  });

  it("IPv6 with masquerade-all and node-port addresses", () => {
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
    const r = renderNftables({
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
    expectGolden("ipv6.nft", r.payload);
  });

  it("a partial render after one endpoint change and one deleted service", () => {
    const services = [
      svc({ ns: "ns1", name: "svc1", clusterIP: "172.30.0.41", ports: p80 }),
      svc({ ns: "ns2", name: "svc2", clusterIP: "172.30.0.42", ports: p80, externalIPs: ["192.168.99.22"] }),
      svc({ ns: "ns3", name: "svc3", clusterIP: "172.30.0.43", ports: p80 }),
    ];
    const slices = [
      slice({ ns: "ns1", service: "svc1", ports: p80, endpoints: [{ ip: "10.180.0.1" }] }),
      slice({ ns: "ns2", service: "svc2", ports: p80, endpoints: [{ ip: "10.180.0.2" }] }),
      slice({ ns: "ns3", service: "svc3", ports: p80, endpoints: [{ ip: "10.180.0.3" }] }),
    ];
    const c = commitAll(services, slices);
    const first = renderNftables({ snapshot: c.snapshot, changes: c.changes, full: true, node, options: v4 });
    c.tracker.endpointSliceHandler.onUpdate!(
      slices[0]!,
      slice({
        ns: "ns1",
        service: "svc1",
        ports: p80,
        endpoints: [{ ip: "10.180.0.1" }, { ip: "10.180.0.11" }],
      }),
    );
    c.tracker.serviceHandler.onDelete!(services[1]!);
    const next = c.tracker.commit();
    const second = renderNftables({
      snapshot: next.snapshot,
      changes: next.changes,
      full: false,
      previous: first.state,
      node,
      options: v4,
    });
    // And the next one, which deletes the chains the second one emptied.
    const last = c.tracker.commit();
    const third = renderNftables({
      snapshot: last.snapshot,
      changes: last.changes,
      full: false,
      previous: second.state,
      node,
      options: v4,
    });
    expectGolden("partial.nft", `# partial render\n${second.payload}# next partial render\n${third.payload}`);
  });
});
