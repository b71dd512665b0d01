import {
  commitAll,
  dualStackNodePort,
  fixtureLoadBalancer,
  fixtureNodePort,
  fixtureService,
  fixtureSlice,
  goldenFiles,
  ipv6MasqueradeAllOptions,
  slice,
  svc,
} from "@worknode/testing";
import { describe, expect, it } from "vitest";
import { type NftRenderOptions, type NftRenderResult, renderNftables } from "../src/index.js";

const expectGolden = goldenFiles(new URL("./golden/", import.meta.url), expect);

const node = { name: "test-node", nodeIPs: ["192.168.0.2", "2001:db8::1"] };
const v4: NftRenderOptions = { family: "IPv4", clusterCIDR: "10.0.0.0/8", masqueradeAll: false };

describe("golden nft payloads", () => {
  it("ClusterIP and NodePort", () => {
    const { snapshot, changes } = commitAll(
      [
        fixtureService(1),
        fixtureNodePort(3, 3003),
        // No endpoints: rejected.
        fixtureService(4),
        svc({
          ns: "kube-system",
          name: "dns",
          clusterIP: "172.30.0.10",
          ports: [{ name: "dns", port: 53, protocol: "UDP" }],
        }),
      ],
      [
        fixtureSlice(1, ["10.180.0.1"]),
        fixtureSlice(3, ["10.180.0.3", { ip: "10.180.0.4", node: "test-node" }, "10.180.0.5"]),
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
        fixtureLoadBalancer(5, 3002, {
          externalIPs: ["192.168.99.55"],
          lbIPs: ["5.6.7.8"],
          sourceRanges: ["203.0.113.0/25", "192.168.0.0/24"],
          etp: "Local",
          healthCheckNodePort: 30001,
          affinity: 10800,
        }),
      ],
      [
        fixtureSlice(5, [
          { ip: "10.180.0.5", node: "test-node" },
          { ip: "10.180.1.5", node: "other-node" },
        ]),
      ],
    );
    expectGolden(
      "loadbalancer-local.nft",
      renderNftables({ snapshot, changes, full: true, node, options: v4 }).payload,
    );
  });

  it("IPv6 with masquerade-all and node-port addresses", () => {
    const { services, slices } = dualStackNodePort();
    const { snapshot, changes } = commitAll(services, slices);
    const r = renderNftables({
      snapshot,
      changes,
      full: true,
      node,
      options: ipv6MasqueradeAllOptions(),
    });
    expectGolden("ipv6.nft", r.payload);
  });

  it("a partial render after one endpoint change and one deleted service", () => {
    const services = [
      fixtureService(1),
      fixtureService(2, { externalIPs: ["192.168.99.22"] }),
      fixtureService(3),
    ];
    const slices = [
      fixtureSlice(1, ["10.180.0.1"]),
      fixtureSlice(2, ["10.180.0.2"]),
      fixtureSlice(3, ["10.180.0.3"]),
    ];
    const c = commitAll(services, slices);
    const first = renderNftables({ snapshot: c.snapshot, changes: c.changes, full: true, node, options: v4 });
    c.tracker.endpointSliceHandler.onUpdate!(slices[0]!, fixtureSlice(1, ["10.180.0.1", "10.180.0.11"]));
    c.tracker.serviceHandler.onDelete!(services[1]!);
    /** Commits the tracker and renders what changed, from the state `previous` left. */
    const partial = (previous: NftRenderResult) => {
      const next = c.tracker.commit();
      return renderNftables({ ...next, full: false, previous: previous.state, node, options: v4 });
    };
    const second = partial(first);
    // And the next one, which deletes the chains the second one emptied.
    const third = partial(second);
    expectGolden("partial.nft", `# partial render\n${second.payload}# next partial render\n${third.payload}`);
  });
});
