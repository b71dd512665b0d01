/**
 * Traffic through the iptables backend on the real kernel, inside network namespaces made by
 * the test (never the host's own tables), built with the proxy lab of @worknode/testing:
 * load-balancer IPs and source ranges, source NAT by traffic policy, health-check node ports,
 * UDP conntrack cleanup and IPv6.
 *
 *   wnipt-cli  (192.168.50.2, fd00:50::2) ──veth── wnipt-node (192.168.50.1, fd00:50::1)
 *   wnipt-cli2 (192.168.60.2)             ──veth── wnipt-node (192.168.60.1)
 *   wnipt-node: bridge wniptbr0 10.244.0.1/24, fd00:244::1/64 ──veth── wnipt-poda (.11),
 *                                                                      wnipt-podb (.12), wnipt-podc (.13)
 *
 * Each pod answers TCP on 8080 with `<name> <peer ip>:<peer port>` (so the test sees the
 * source address the backend saw) and UDP on 5353 with its name.
 */
import { createCommandRunner, type Service, serviceHealthResponse } from "@worknode/core";
import {
  createTrafficLab,
  type EpSpec,
  type LabNetns,
  LiveServiceObjects,
  namePeer,
  observeUdpEndpointSwap,
  type ProxyLab,
  RecordingCommandRunner,
  slice,
  svc,
  type TrafficLabPlan,
  httpPorts as tcp,
  trafficLabAddresses,
} from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IptablesProxier } from "../src/proxier.js";

const PLAN: TrafficLabPlan = {
  prefix: "wnipt",
  clientNet: "192.168.50",
  clientNet6: "fd00:50",
  client2Net: "192.168.60",
  podNet: "10.244.0",
  podNet6: "fd00:244",
  pods: ["poda", "podb", "podc"],
};
type PodName = "poda" | "podb" | "podc";
const {
  nodeIP: NODE_IP,
  nodeIP2: NODE_IP2,
  clientIP: CLIENT_IP,
  bridgeIP: BRIDGE_IP,
  bridgeIP6: BRIDGE_IP6,
  podIP,
  podIP6,
} = trafficLabAddresses(PLAN);
const LB_IP = "203.0.113.10";
const LB_LOCAL_IP = "203.0.113.11";

let lab: ProxyLab;
let node: LabNetns;
let client: LabNetns;
let client2: LabNetns;
let objects: LiveServiceObjects;
let runner: RecordingCommandRunner;
let proxier: IptablesProxier;
let hcPortLocal: number;
let hcPortRemote: number;
let baselineV4 = "";
let baselineV6 = "";

function endpoints(names: readonly PodName[], nodeOf: (n: PodName) => string = () => "node-1"): EpSpec[] {
  return names.map((n) => ({ ip: podIP(n), node: nodeOf(n) }));
}

/** Applies the object changes to the tracker, commits and syncs (partial). */
const apply: LiveServiceObjects["apply"] = (svcs, slcs) => objects.apply(svcs, slcs, proxier);

/** `<pod> <peer ip>` of one TCP connection, or `error:<code>`. */
async function tcpFrom(from: LabNetns, host: string, port: number, timeoutMs = 3_000): Promise<string> {
  return namePeer((await lab.tcp(from, host, port, { timeoutMs }))[0]!);
}

async function saveAll(): Promise<{ v4: string; v6: string }> {
  const norm = (s: string) =>
    s
      .split("\n")
      .filter((l) => !l.startsWith("#"))
      .map((l) => l.replace(/\[\d+:\d+\]/g, "[0:0]"))
      .join("\n");
  return {
    v4: norm((await node.exec("iptables-save", [])).stdout),
    v6: norm((await node.exec("ip6tables-save", [])).stdout),
  };
}

beforeAll(async () => {
  const t = await createTrafficLab(PLAN);
  lab = t.lab;
  node = lab.node;
  client = t.client;
  client2 = t.client2;
  // The node's own rules in every table the proxy touches, for both families (so that
  // cleanup can be compared with the tables as they were).
  for (const ipt of ["iptables", "ip6tables"]) {
    await node.exec(ipt, ["-t", "nat", "-A", "POSTROUTING", "-p", "tcp", "--dport", "9", "-j", "RETURN"]);
    await node.exec(ipt, ["-t", "filter", "-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "ACCEPT"]);
    await node.exec(ipt, ["-t", "mangle", "-A", "PREROUTING", "-p", "udp", "--dport", "9", "-j", "ACCEPT"]);
  }
  const saved = await saveAll();
  baselineV4 = saved.v4;
  baselineV6 = saved.v6;
  expect(baselineV4).toContain("--dport 9");

  // The node namespace is fresh: any port in the ephemeral range below it is free.
  hcPortLocal = 31_000 + Math.floor(Math.random() * 1_000);
  hcPortRemote = hcPortLocal + 1;
  const remote = (n: PodName) => (n === "podc" ? "node-2" : "node-1");
  const services: Record<string, Service> = {
    lb: svc({
      ns: "default",
      name: "lb",
      type: "LoadBalancer",
      clusterIP: "172.30.0.30",
      ports: tcp(30090),
      lbIPs: [LB_IP],
      sourceRanges: ["192.168.50.0/24"],
    }),
    local: svc({
      ns: "default",
      name: "local",
      type: "LoadBalancer",
      clusterIP: "172.30.0.31",
      ports: tcp(30091),
      lbIPs: [LB_LOCAL_IP],
      etp: "Local",
      healthCheckNodePort: hcPortLocal,
    }),
    remote: svc({
      ns: "default",
      name: "remote",
      type: "LoadBalancer",
      clusterIP: "172.30.0.32",
      ports: tcp(30092),
      etp: "Local",
      healthCheckNodePort: hcPortRemote,
    }),
    v6: svc({ ns: "default", name: "v6", clusterIP: "fd00:30::10", ports: tcp() }),
    dual: svc({ ns: "default", name: "dual", clusterIP: ["172.30.0.33", "fd00:30::33"], ports: tcp() }),
  };
  const slices = {
    lb: slice({ ns: "default", service: "lb", ports: tcp(), endpoints: endpoints(["poda"]) }),
    // podb runs on this node, podc on another one.
    local: slice({
      ns: "default",
      service: "local",
      ports: tcp(),
      endpoints: endpoints(["podb", "podc"], remote),
    }),
    remote: slice({ ns: "default", service: "remote", ports: tcp(), endpoints: endpoints(["podc"], remote) }),
    v6: slice({
      ns: "default",
      service: "v6",
      ports: tcp(),
      ipv6: true,
      endpoints: PLAN.pods.map((n) => ({ ip: podIP6(n), node: "node-1" })),
    }),
    dual4: slice({
      ns: "default",
      service: "dual",
      name: "dual-v4",
      ports: tcp(),
      endpoints: endpoints(["poda"]),
    }),
    dual6: slice({
      ns: "default",
      service: "dual",
      name: "dual-v6",
      ports: tcp(),
      ipv6: true,
      endpoints: [{ ip: podIP6("podb"), node: "node-1" }],
    }),
  };
  objects = new LiveServiceObjects(services, slices, "node-1");
  runner = new RecordingCommandRunner(createCommandRunner({ netns: node.name }));
  proxier = new IptablesProxier({
    nodeName: "node-1",
    nodeIPs: t.nodeIPs,
    clusterCIDRs: ["10.244.0.0/16", "fd00:244::/64"],
    families: ["IPv4", "IPv6"],
    runner,
    healthCheck: { listen: lab.nodeHealthListen() },
  });
  await proxier.sync({ ...objects.initial, full: true });
}, 180_000);

afterAll(async () => {
  try {
    await proxier?.close();
  } finally {
    await lab?.destroy();
  }
});

describe("LoadBalancer IPs and loadBalancerSourceRanges", () => {
  it("lets an allowed client reach the load-balancer IP, source-NATed to the node (Cluster policy)", async () => {
    expect(await tcpFrom(client, LB_IP, 80)).toBe(`poda ${BRIDGE_IP}`);
  });

  it("drops a client outside the source ranges (no answer, not a refusal)", async () => {
    expect(await tcpFrom(client2, LB_IP, 80, 1_500)).toBe("error:ETIMEDOUT");
    // The same client reaches the node port: source ranges only guard the load-balancer IP.
    expect(await tcpFrom(client2, NODE_IP2, 30090)).toBe(`poda ${BRIDGE_IP}`);
  });
});

describe("source NAT by traffic policy", () => {
  it("a node port with the Cluster policy: the backend sees the node's address", async () => {
    expect(await tcpFrom(client, NODE_IP, 30090)).toBe(`poda ${BRIDGE_IP}`);
  });

  it("externalTrafficPolicy Local: only the local endpoint, and it sees the client's own address", async () => {
    for (let i = 0; i < 6; i++) {
      expect(await tcpFrom(client, NODE_IP, 30091)).toBe(`podb ${CLIENT_IP}`);
    }
    expect(await tcpFrom(client, LB_LOCAL_IP, 80)).toBe(`podb ${CLIENT_IP}`);
  });

  it("externalTrafficPolicy Local without a local endpoint: dropped, not refused", async () => {
    expect(await tcpFrom(client, NODE_IP, 30092, 1_500)).toBe("error:ETIMEDOUT");
    // Its cluster IP still reaches the endpoint on the other node (Cluster policy inside).
    expect(await tcpFrom(client, "172.30.0.32", 80)).toBe(`podc ${BRIDGE_IP}`);
  });
});

describe("health-check node ports (listening in the node namespace)", () => {
  it("answer 200 with a local endpoint and 503 without, on the node's address", async () => {
    const ok = await lab.http(client, NODE_IP, hcPortLocal);
    expect(ok).toMatchObject({ ok: true, status: 200 });
    if (!ok.ok) throw new Error("unreachable");
    expect(ok.body).toBe(serviceHealthResponse({ namespace: "default", name: "local" }, 1, true).body);
    expect(ok.headers["x-content-type-options"]).toBe("nosniff");
    expect(ok.headers["x-load-balancing-endpoint-weight"]).toBe("1");

    const down = await lab.http(client, NODE_IP, hcPortRemote);
    expect(down).toMatchObject({ ok: true, status: 503 });
    if (down.ok) expect(JSON.parse(down.body)).toMatchObject({ localEndpoints: 0 });
  });

  it("follow endpoint changes and close with the service", async () => {
    // The local endpoint of "local" moves away: 503.
    await apply(
      {},
      {
        local: slice({
          ns: "default",
          service: "local",
          ports: tcp(),
          endpoints: endpoints(["podb", "podc"], () => "node-2"),
        }),
      },
    );
    expect(await lab.http(client, NODE_IP, hcPortLocal)).toMatchObject({ ok: true, status: 503 });
    // And traffic to its node port is now dropped as well.
    expect(await tcpFrom(client, NODE_IP, 30091, 1_500)).toBe("error:ETIMEDOUT");

    await apply({ remote: undefined }, { remote: undefined });
    expect(await lab.http(client, NODE_IP, hcPortRemote)).toEqual({ ok: false, error: "ECONNREFUSED" });
    expect(proxier.serviceHealth?.status().map((s) => s.name)).toEqual(["local"]);
  });
});

describe("IPv6 through ip6tables", () => {
  it("spreads connections to an IPv6 cluster IP over the endpoints, masqueraded to the node", async () => {
    const replies = new Set<string>();
    for (let i = 0; i < 24; i++) replies.add(await tcpFrom(client, "fd00:30::10", 80));
    expect(replies).toEqual(new Set(PLAN.pods.map((n) => `${n} ${BRIDGE_IP6}`)));
  });

  it("serves each family of a dual-stack service from that family's endpoints", async () => {
    expect(await tcpFrom(client, "172.30.0.33", 80)).toBe(`poda ${BRIDGE_IP}`);
    expect(await tcpFrom(client, "fd00:30::33", 80)).toBe(`podb ${BRIDGE_IP6}`);
    const nat6 = (await node.exec("ip6tables-save", ["-t", "nat"])).stdout;
    expect(nat6).toContain("--to-destination [fd00:244::12]:8080");
    expect(nat6).not.toContain("10.244.0.");
  });
});

describe("UDP conntrack cleanup", () => {
  it("moves a UDP client to the new endpoint when its endpoint is replaced (and only the deletion does)", async () => {
    const [tested, control] = ["172.30.0.20", "172.30.0.21"];
    const o = await observeUdpEndpointSwap({
      lab,
      from: client,
      node,
      objects,
      proxier,
      runner,
      tested,
      control,
      fromPod: { name: "poda", ip: podIP("poda") },
      toPod: { name: "podb", ip: podIP("podb") },
    });
    expect(new Set(o.before.tested)).toEqual(new Set(["poda"]));
    expect(new Set(o.before.control)).toEqual(new Set(["poda"]));
    // One long-lived entry per client, DNATed to poda.
    expect(o.targetsBefore).toEqual({ tested: ["10.244.0.11"], control: ["10.244.0.11"] });
    expect(o.commit.changes.staleConntrack).toEqual(
      expect.arrayContaining([
        { serviceIP: tested, port: 53, protocol: "UDP", endpoint: "10.244.0.11:5353" },
        { serviceIP: control, port: 53, protocol: "UDP", endpoint: "10.244.0.11:5353" },
      ]),
    );
    expect(runner.conntrackCalls).toContainEqual({
      args: ["-D", "-p", "udp", "--orig-dst", tested, "--dport", "53", "--dst-nat", "10.244.0.11"],
      code: 0,
    });
    // The tested client moved to the new endpoint and stays there ...
    expect(o.after.tested.length).toBeGreaterThan(5);
    expect(new Set(o.after.tested)).toEqual(new Set(["podb"]));
    // ... while the control client, whose entry was not deleted, still talks to poda.
    expect(o.after.control.length).toBeGreaterThan(5);
    expect(new Set(o.after.control)).toEqual(new Set(["poda"]));
    expect(o.targetsAfter).toEqual({ tested: ["10.244.0.12"], control: ["10.244.0.11"] });
  });
});

describe("cleanup", () => {
  it("leaves both families' tables as they were", async () => {
    await proxier.cleanup();
    const after = await saveAll();
    expect(after.v4).toBe(baselineV4);
    expect(after.v6).toBe(baselineV6);
  });
});
