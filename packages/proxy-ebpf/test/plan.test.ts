import type { EndpointSlice, Service } from "@worknode/core";
import { commitAll, dualStackNodePort, fixtureService, slice, svc } from "@worknode/testing";
import { describe, expect, it } from "vitest";
import { nodePortFrontendIPs, type PlanOptions, type PortPlan, planPort } from "../src/maps/plan.js";
import { NODE, plansOf } from "./helpers/ebpf-model.js";

const V4: PlanOptions = { families: ["IPv4"] };
const DUAL: PlanOptions = { families: ["IPv4", "IPv6"] };
const P80 = [{ name: "p80", port: 80, targetPort: 8080 }];
const KEY = "ns1/svc1:p80/TCP";

/** A plan as text: `ip:port/proto -> backends (affinity)`, one per frontend. */
function view(plan: PortPlan | undefined): string[] {
  if (plan === undefined) return ["<deleted>"];
  return plan.frontends.map((f) => {
    const g = plan.groups[f.group];
    const ip = f.frontend.ip.includes(":") ? `[${f.frontend.ip}]` : f.frontend.ip;
    return `${ip}:${f.frontend.port}/${f.frontend.protocol} -> ${g?.signature || "none"}${g?.affinityTimeout ? ` (affinity ${g.affinityTimeout})` : ""}`;
  });
}

function planOf(services: Service[], slices: EndpointSlice[], options = V4, key = KEY): PortPlan | undefined {
  const { snapshot } = commitAll(services, slices, NODE.name);
  return plansOf(snapshot, options).get(key);
}

const svc1 = (extra: Partial<Parameters<typeof svc>[0]> = {}) =>
  svc({ ns: "ns1", name: "svc1", clusterIP: "172.30.0.41", ports: P80, ...extra });
const slice1 = (endpoints: Parameters<typeof slice>[0]["endpoints"], ipv6 = false) =>
  slice({ ns: "ns1", service: "svc1", name: ipv6 ? "svc1-v6" : "svc1-v4", ports: P80, endpoints, ipv6 });

describe("planPort", () => {
  it("ClusterIP: the cluster IP picks from the ready endpoints, at the target port", () => {
    const plan = planOf(
      [svc1()],
      [
        slice1([
          { ip: "10.180.0.1" },
          { ip: "10.180.0.2", ready: false },
          { ip: "10.180.0.3", node: "other" },
        ]),
      ],
    );
    expect(view(plan)).toEqual(["172.30.0.41:80/TCP -> 10.180.0.1:8080,10.180.0.3:8080"]);
    expect(plan?.groups).toHaveLength(1);
    expect(plan?.groups[0]?.backends).toEqual([
      { ip: "10.180.0.1", port: 8080 },
      { ip: "10.180.0.3", port: 8080 },
    ]);
  });

  it("internalTrafficPolicy Local: only this node's endpoints; none local: no backends", () => {
    const eps = [
      { ip: "10.180.0.1", node: "other" },
      { ip: "10.180.0.2", node: NODE.name },
    ];
    expect(view(planOf([svc1({ itp: "Local" })], [slice1(eps)]))).toEqual([
      "172.30.0.41:80/TCP -> 10.180.0.2:8080",
    ]);
    expect(view(planOf([svc1({ itp: "Local" })], [slice1([{ ip: "10.180.0.1", node: "other" }])]))).toEqual([
      "172.30.0.41:80/TCP -> none",
    ]);
  });

  it("external IPs, LB IPs and node ports use the cluster endpoints even with externalTrafficPolicy Local", () => {
    const eps = [
      { ip: "10.180.0.1", node: "other" },
      { ip: "10.180.0.2", node: NODE.name },
    ];
    const lb = svc1({
      type: "LoadBalancer",
      ports: [{ name: "p80", port: 80, targetPort: 8080, nodePort: 3001 }],
      externalIPs: ["192.168.99.11"],
      lbIPs: ["1.2.3.4"],
      etp: "Local",
    });
    const all = "10.180.0.1:8080,10.180.0.2:8080";
    const plan = planOf([lb], [slice1(eps)]);
    expect(view(plan)).toEqual([
      `172.30.0.41:80/TCP -> ${all}`,
      `192.168.99.11:80/TCP -> ${all}`,
      `1.2.3.4:80/TCP -> ${all}`,
      `192.168.0.2:3001/TCP -> ${all}`,
      `127.0.0.1:3001/TCP -> ${all}`,
    ]);
    // The external frontends share one group, apart from the cluster IP's.
    expect(plan?.groups).toHaveLength(2);
    expect(new Set(plan?.frontends.slice(1).map((f) => f.group))).toEqual(new Set([1]));
    // externalTrafficPolicy Local + internalTrafficPolicy Local: still every endpoint for external frontends.
    const both = planOf([svc1({ ...lbSpec(), etp: "Local", itp: "Local" })], [slice1(eps)]);
    expect(view(both)).toEqual([
      "172.30.0.41:80/TCP -> 10.180.0.2:8080",
      `192.168.99.11:80/TCP -> ${all}`,
      `192.168.0.2:3001/TCP -> ${all}`,
      `127.0.0.1:3001/TCP -> ${all}`,
    ]);
  });

  it("node ports only on node IPs inside nodePortAddresses; 127.0.0.1 unless disabled or excluded", () => {
    const np = svc1(lbSpec());
    const eps = [slice1([{ ip: "10.180.0.1" }])];
    const nodePorts = (options: PlanOptions) =>
      view(planOf([np], eps, options)).filter((l) => l.includes(":3001/"));
    expect(nodePorts(V4)).toEqual([
      "192.168.0.2:3001/TCP -> 10.180.0.1:8080",
      "127.0.0.1:3001/TCP -> 10.180.0.1:8080",
    ]);
    expect(nodePorts({ ...V4, localhostNodePorts: false })).toEqual([
      "192.168.0.2:3001/TCP -> 10.180.0.1:8080",
    ]);
    expect(nodePorts({ ...V4, nodePortAddresses: ["192.168.0.0/24"] })).toEqual([
      "192.168.0.2:3001/TCP -> 10.180.0.1:8080",
    ]);
    expect(nodePorts({ ...V4, nodePortAddresses: ["127.0.0.0/8"] })).toEqual([
      "127.0.0.1:3001/TCP -> 10.180.0.1:8080",
    ]);
    expect(nodePorts({ ...V4, nodePortAddresses: ["10.0.0.0/8"] })).toEqual([]);
  });

  it("headless services have no frontends", () => {
    const headless = svc({ ns: "ns1", name: "svc1", clusterIP: "None", ports: P80 });
    const { snapshot } = commitAll([headless], [slice1([{ ip: "10.180.0.1" }])], NODE.name);
    expect(plansOf(snapshot, V4).size).toBe(0);
    // A service port without cluster IPs (what headless means in the model) plans nothing either.
    const c = commitAll([svc1()], [slice1([{ ip: "10.180.0.1" }])], NODE.name);
    const sp = c.snapshot.services.get(KEY);
    expect(sp).toBeDefined();
    const plan = planPort(
      { ...sp!, clusterIPs: [] },
      c.snapshot.endpoints.get(KEY),
      NODE,
      ["IPv4"],
      new Map([["IPv4", nodePortFrontendIPs(NODE, V4, "IPv4")]]),
    );
    expect(plan.frontends).toEqual([]);
  });

  it("no endpoints: the frontends exist, with a group of no backends (connections refused)", () => {
    const plan = planOf([svc1(lbSpec())], []);
    expect(view(plan)).toEqual([
      "172.30.0.41:80/TCP -> none",
      "192.168.99.11:80/TCP -> none",
      "192.168.0.2:3001/TCP -> none",
      "127.0.0.1:3001/TCP -> none",
    ]);
    expect(plan?.groups.every((g) => g.backends.length === 0)).toBe(true);
  });

  it("ClientIP affinity: the timeout is carried by every group; None gives 0", () => {
    const plan = planOf([svc1({ ...lbSpec(), affinity: 300 })], [slice1([{ ip: "10.180.0.1" }])]);
    expect(plan?.groups.map((g) => g.affinityTimeout)).toEqual([300, 300]);
    const none = planOf([svc1(lbSpec())], [slice1([{ ip: "10.180.0.1" }])]);
    expect(none?.groups.map((g) => g.affinityTimeout)).toEqual([0, 0]);
  });

  it("dual-stack: each family's frontends use that family's endpoints", () => {
    const { services, slices } = dualStackNodePort();
    const plan = planOf(services, slices, DUAL, "ns1/svc1:p80/TCP");
    expect(view(plan)).toEqual([
      "172.30.0.41:80/TCP -> 10.180.0.1:80",
      "192.168.0.2:3001/TCP -> 10.180.0.1:80",
      "127.0.0.1:3001/TCP -> 10.180.0.1:80",
      "[fd00:30::41]:80/TCP -> [fd00:10::1]:80,[fd00:10::2]:80",
      "[2001:db8::2]:3001/TCP -> [fd00:10::1]:80,[fd00:10::2]:80",
    ]);
    // Only one family programmed: only its frontends.
    expect(view(planOf(services, slices, { families: ["IPv6"] }, "ns1/svc1:p80/TCP"))).toEqual([
      "[fd00:30::41]:80/TCP -> [fd00:10::1]:80,[fd00:10::2]:80",
      "[2001:db8::2]:3001/TCP -> [fd00:10::1]:80,[fd00:10::2]:80",
    ]);
  });

  it("falls back to serving-terminating endpoints when none is ready (core's categorizeEndpoints)", () => {
    const terminating = [
      { ip: "10.180.0.1", ready: false, serving: true, terminating: true },
      { ip: "10.180.0.2", ready: false, serving: false, terminating: true },
      { ip: "10.180.0.3", ready: false, serving: false },
    ];
    expect(view(planOf([svc1()], [slice1(terminating)]))).toEqual(["172.30.0.41:80/TCP -> 10.180.0.1:8080"]);
    // One ready endpoint: the terminating ones are not used.
    expect(view(planOf([svc1()], [slice1([...terminating, { ip: "10.180.0.4" }])]))).toEqual([
      "172.30.0.41:80/TCP -> 10.180.0.4:8080",
    ]);
    // internalTrafficPolicy Local: this node's serving-terminating endpoint when it has no ready one.
    const local = [
      { ip: "10.180.0.1", node: NODE.name, ready: false, serving: true, terminating: true },
      { ip: "10.180.0.2", node: "other" },
    ];
    expect(view(planOf([svc1({ itp: "Local" })], [slice1(local)]))).toEqual([
      "172.30.0.41:80/TCP -> 10.180.0.1:8080",
    ]);
  });

  it("plans every protocol and port of a service separately", () => {
    const multi = svc({
      ns: "ns1",
      name: "dns",
      clusterIP: "172.30.0.10",
      ports: [
        { name: "dns", port: 53, protocol: "UDP" },
        { name: "dns-tcp", port: 53, protocol: "TCP" },
      ],
    });
    const eps = slice({
      ns: "ns1",
      service: "dns",
      ports: [
        { name: "dns", port: 53, protocol: "UDP", targetPort: 5353 },
        { name: "dns-tcp", port: 53, protocol: "TCP" },
      ],
      endpoints: [{ ip: "10.180.0.9" }],
    });
    const { snapshot } = commitAll([multi], [eps], NODE.name);
    const plans = plansOf(snapshot, V4);
    expect(view(plans.get("ns1/dns:dns/UDP"))).toEqual(["172.30.0.10:53/UDP -> 10.180.0.9:5353"]);
    expect(view(plans.get("ns1/dns:dns-tcp/TCP"))).toEqual(["172.30.0.10:53/TCP -> 10.180.0.9:53"]);
  });
});

describe("nodePortFrontendIPs", () => {
  const node = { name: "n", nodeIPs: ["192.168.0.2", "10.0.0.2", "2001:db8::2", "192.168.0.2"] };
  it("every node IP of the family (once), then 127.0.0.1 for IPv4", () => {
    expect(nodePortFrontendIPs(node, V4, "IPv4")).toEqual(["192.168.0.2", "10.0.0.2", "127.0.0.1"]);
    expect(nodePortFrontendIPs(node, DUAL, "IPv6")).toEqual(["2001:db8::2"]);
  });
  it("only addresses inside nodePortAddresses of the family", () => {
    const o = { ...V4, nodePortAddresses: ["10.0.0.0/8", "2001:db8::/64"] };
    expect(nodePortFrontendIPs(node, o, "IPv4")).toEqual(["10.0.0.2"]);
    expect(nodePortFrontendIPs(node, o, "IPv6")).toEqual(["2001:db8::2"]);
    expect(nodePortFrontendIPs(node, { ...V4, nodePortAddresses: ["2001:db8::/64"] }, "IPv4")).toEqual([]);
    expect(nodePortFrontendIPs(node, { ...V4, nodePortAddresses: ["0.0.0.0/0"] }, "IPv4")).toEqual([
      "192.168.0.2",
      "10.0.0.2",
      "127.0.0.1",
    ]);
  });
  it("no 127.0.0.1 when localhost node ports are off", () => {
    expect(nodePortFrontendIPs(node, { ...V4, localhostNodePorts: false }, "IPv4")).toEqual([
      "192.168.0.2",
      "10.0.0.2",
    ]);
  });
});

function lbSpec() {
  return {
    type: "NodePort" as const,
    ports: [{ name: "p80", port: 80, targetPort: 8080, nodePort: 3001 }],
    externalIPs: ["192.168.99.11"],
  };
}

// fixtureService is the kit's canonical service; its key is what plansOf keys by.
it("plansOf keys plans by service port key", () => {
  const { snapshot } = commitAll([fixtureService(2)], [], NODE.name);
  expect([...plansOf(snapshot).keys()]).toEqual(["ns2/svc2:p80/TCP"]);
});
