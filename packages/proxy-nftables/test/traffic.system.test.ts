/**
 * Traffic through the nftables backend on the real kernel, inside network namespaces made by
 * the test (never the host's own ruleset), built with the proxy lab of @worknode/testing:
 *
 *   wnft-cli  (192.168.150.2, fd00:150::2) ──veth── wnft-node (192.168.150.1, fd00:150::1)
 *   wnft-cli2 (192.168.160.2)              ──veth── wnft-node (192.168.160.1)
 *   wnft-node: bridge wnftbr0 10.245.0.1/24, fd00:245::1/64 ──veth── wnft-pa (.11), wnft-pb (.12),
 *                                                                    wnft-pc (.13), wnft-pd (.14)
 *
 * Each pod answers TCP on 8080 with `<name> <peer ip>:<peer port>` (so the test sees the source
 * address the backend left) and UDP on 5353 with its name. Cluster IPs (172.30.150.0/24,
 * fd00:30:150::/64) exist only in the node namespace's `kube-proxy` tables.
 */
import { createCommandRunner, type EndpointSlice, type Service, serviceHealthResponse } from "@worknode/core";
import {
  createTrafficLab,
  type EpSpec,
  emptyChangeSet,
  type LabAnswer,
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
import { NftablesProxier } from "../src/index.js";

const PLAN: TrafficLabPlan = {
  prefix: "wnft",
  clientNet: "192.168.150",
  clientNet6: "fd00:150",
  client2Net: "192.168.160",
  podNet: "10.245.0",
  podNet6: "fd00:245",
  pods: ["pa", "pb", "pc", "pd"],
};
type PodName = "pa" | "pb" | "pc" | "pd";
const {
  nodeIP: NODE_IP,
  nodeIP2: NODE_IP2,
  clientIP: CLIENT_IP,
  bridgeIP: BRIDGE_IP,
  bridgeIP6: BRIDGE_IP6,
  nodeIPs: NODE_IPS,
  podIP,
  podIP6,
} = trafficLabAddresses(PLAN);
const LB_IP = "203.0.113.110";
const LB_LOCAL_IP = "203.0.113.111";
const LB_REMOTE_IP = "203.0.113.112";

const CIP = {
  web: "172.30.150.10",
  sticky: "172.30.150.11",
  empty: "172.30.150.12",
  lb: "172.30.150.14",
  local: "172.30.150.15",
  remote: "172.30.150.16",
  hair: "172.30.150.17",
  udp: "172.30.150.20",
  udpctl: "172.30.150.21",
  v6: "fd00:30:150::10",
} as const;

let lab: ProxyLab;
let node: LabNetns;
let objects: LiveServiceObjects;
let runner: RecordingCommandRunner;
let proxier: NftablesProxier;
let hcPortLocal: number;
let hcPortRemote: number;
let baselineRuleset = "";

function endpoints(
  names: readonly PodName[],
  opts: { node?: (n: PodName) => string; ready?: (n: PodName) => boolean; v6?: boolean } = {},
): EpSpec[] {
  return names.map((n) => ({
    ip: opts.v6 ? podIP6(n) : podIP(n),
    node: opts.node?.(n) ?? "node-1",
    ready: opts.ready?.(n) ?? true,
  }));
}

/** Applies the object changes to the tracker, commits and syncs (partial). */
const apply: LiveServiceObjects["apply"] = (svcs, slcs) => objects.apply(svcs, slcs, proxier);

async function tcpFrom(from: LabNetns, host: string, port: number, count = 1, timeoutMs = 3_000) {
  return lab.tcp(from, host, port, { count, timeoutMs });
}

const names = (as: readonly LabAnswer[]) => as.map((a) => (a.ok ? a.name : `error:${a.error}`));
const one = async (from: LabNetns, host: string, port: number, timeoutMs = 3_000) =>
  namePeer((await tcpFrom(from, host, port, 1, timeoutMs))[0]!);

async function nft(args: string[]): Promise<string> {
  return (await node.exec("nft", args)).stdout;
}

/** The chains of `nft list table <family> kube-proxy`, by name, with their bodies. */
function chainsOf(listing: string): Map<string, string> {
  const chains = new Map<string, string>();
  const re = /^\tchain (\S+) \{\n([\s\S]*?)^\t\}$/gm;
  for (let m = re.exec(listing); m !== null; m = re.exec(listing))
    chains.set(m[1]!.replace(/^"|"$/g, ""), m[2]!);
  return chains;
}

beforeAll(async () => {
  lab = (await createTrafficLab(PLAN)).lab;
  node = lab.node;
  // The node's own nftables table, which the proxy must leave alone.
  await node.exec("nft", ["-f", "-"], {
    input:
      "table inet wnft-site {\n" +
      "  chain input { type filter hook input priority 0; policy accept; tcp dport 9 accept; }\n" +
      "  chain post { type nat hook postrouting priority 100; ip saddr 10.99.0.0/16 masquerade; }\n" +
      "}\n",
  });
  baselineRuleset = await nft(["list", "ruleset"]);
  expect(baselineRuleset).toContain("wnft-site");

  hcPortLocal = 31_000 + Math.floor(Math.random() * 1_000);
  hcPortRemote = hcPortLocal + 1;
  const remote = (n: PodName) => (n === "pc" ? "node-2" : "node-1");
  const services: Record<string, Service> = {};
  const slices: Record<string, EndpointSlice> = {};
  services.web = svc({ ns: "default", name: "web", clusterIP: CIP.web, ports: tcp() });
  slices.web = slice({
    ns: "default",
    service: "web",
    ports: tcp(),
    endpoints: endpoints(["pa", "pb", "pc", "pd"], { ready: (n) => n !== "pd" }),
  });
  services.sticky = svc({
    ns: "default",
    name: "sticky",
    clusterIP: CIP.sticky,
    ports: tcp(),
    affinity: 600,
  });
  slices.sticky = slice({
    ns: "default",
    service: "sticky",
    ports: tcp(),
    endpoints: endpoints(["pa", "pb", "pc"]),
  });
  services.empty = svc({ ns: "default", name: "empty", clusterIP: CIP.empty, ports: tcp() });
  services.lb = svc({
    ns: "default",
    name: "lb",
    type: "LoadBalancer",
    clusterIP: CIP.lb,
    ports: tcp(30150),
    lbIPs: [LB_IP],
    sourceRanges: ["192.168.150.0/24"],
  });
  slices.lb = slice({ ns: "default", service: "lb", ports: tcp(), endpoints: endpoints(["pa"]) });
  services.local = svc({
    ns: "default",
    name: "local",
    type: "LoadBalancer",
    clusterIP: CIP.local,
    ports: tcp(30151),
    lbIPs: [LB_LOCAL_IP],
    etp: "Local",
    healthCheckNodePort: hcPortLocal,
  });
  // pb runs on this node, pc on another one.
  slices.local = slice({
    ns: "default",
    service: "local",
    ports: tcp(),
    endpoints: endpoints(["pb", "pc"], { node: remote }),
  });
  services.remote = svc({
    ns: "default",
    name: "remote",
    type: "LoadBalancer",
    clusterIP: CIP.remote,
    ports: tcp(30152),
    lbIPs: [LB_REMOTE_IP],
    etp: "Local",
    healthCheckNodePort: hcPortRemote,
  });
  slices.remote = slice({
    ns: "default",
    service: "remote",
    ports: tcp(),
    endpoints: endpoints(["pc"], { node: remote }),
  });
  services.hair = svc({ ns: "default", name: "hair", clusterIP: CIP.hair, ports: tcp() });
  slices.hair = slice({ ns: "default", service: "hair", ports: tcp(), endpoints: endpoints(["pa"]) });
  services.v6 = svc({ ns: "default", name: "v6", clusterIP: CIP.v6, ports: tcp() });
  slices.v6 = slice({
    ns: "default",
    service: "v6",
    ports: tcp(),
    ipv6: true,
    endpoints: endpoints(["pa", "pb", "pc"], { v6: true }),
  });

  objects = new LiveServiceObjects(services, slices, "node-1");
  runner = new RecordingCommandRunner(createCommandRunner({ netns: node.name }));
  proxier = new NftablesProxier({
    nodeName: "node-1",
    nodeIPs: NODE_IPS,
    clusterCIDRs: ["10.245.0.0/24", "fd00:245::/64"],
    families: ["IPv4", "IPv6"],
    // In the node namespace, through a runner that records what it runs (`netns` alone is
    // exercised by the restarted proxier of the cleanup tests).
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

describe("cluster IPs", () => {
  it("spread connections over all ready endpoints; an unready endpoint gets none", async () => {
    const list = await nft(["list", "table", "ip", "kube-proxy"]);
    expect(list).toContain("chain nat-prerouting");
    expect(list).toMatch(/numgen random mod 3/);
    const replies = names(await tcpFrom(lab.client("cli"), CIP.web, 80, 40));
    expect(new Set(replies)).toEqual(new Set(["pa", "pb", "pc"]));
    // From the node itself (output hook) as well.
    const fromNode = names(await tcpFrom(node, CIP.web, 80, 20));
    expect(new Set(fromNode)).toEqual(new Set(["pa", "pb", "pc"]));
  });

  it("sessionAffinity ClientIP keeps a client on one endpoint", async () => {
    const replies = names(await tcpFrom(lab.client("cli"), CIP.sticky, 80, 15));
    expect(replies[0]).toMatch(/^p[abc]$/);
    expect(new Set(replies).size).toBe(1);
    // Another client is an independent affinity entry, but sticks as well.
    const other = names(await tcpFrom(lab.client("cli2"), CIP.sticky, 80, 10));
    expect(other[0]).toMatch(/^p[abc]$/);
    expect(new Set(other).size).toBe(1);
  });

  it("a service without endpoints refuses at once (not a timeout)", async () => {
    const [r] = await tcpFrom(lab.client("cli"), CIP.empty, 80, 1, 5_000);
    expect(r).toMatchObject({ ok: false, error: "ECONNREFUSED" });
    expect(r!.ms).toBeLessThan(1_000);
    // From the node itself too.
    const [n] = await tcpFrom(node, CIP.empty, 80, 1, 5_000);
    expect(n).toMatchObject({ ok: false, error: "ECONNREFUSED" });
  });

  it("hairpin: a pod reaching itself through its service is masqueraded to the bridge", async () => {
    const answers = await tcpFrom(lab.pod("pa"), CIP.hair, 80, 3);
    for (const a of answers) expect(namePeer(a)).toBe(`pa ${BRIDGE_IP}`);
    // Another pod reaching the same service keeps its own address (pod-to-pod is not masqueraded).
    expect(await one(lab.pod("pb"), CIP.hair, 80)).toBe(`pa ${podIP("pb")}`);
  });
});

describe("node ports, load-balancer IPs and source ranges", () => {
  it("NodePort and LoadBalancer IP with the Cluster policy: the backend sees the node's address", async () => {
    const cli = lab.client("cli");
    expect(await one(cli, NODE_IP, 30150)).toBe(`pa ${BRIDGE_IP}`);
    expect(await one(cli, LB_IP, 80)).toBe(`pa ${BRIDGE_IP}`);
  });

  it("loadBalancerSourceRanges drop a client outside them (no answer, not a refusal)", async () => {
    const cli2 = lab.client("cli2");
    expect(await one(cli2, LB_IP, 80, 1_500)).toBe("error:ETIMEDOUT");
    // Source ranges guard the load-balancer IP only: the same client reaches the node port.
    expect(await one(cli2, NODE_IP2, 30150)).toBe(`pa ${BRIDGE_IP}`);
    // And the allowed client still gets in.
    expect(await one(lab.client("cli"), LB_IP, 80)).toBe(`pa ${BRIDGE_IP}`);
  });

  it("externalTrafficPolicy Local keeps the client's address and uses only the local endpoint", async () => {
    const cli = lab.client("cli");
    const viaNodePort = await tcpFrom(cli, NODE_IP, 30151, 8);
    expect(new Set(viaNodePort.map(namePeer))).toEqual(new Set([`pb ${CLIENT_IP}`]));
    const viaLB = await tcpFrom(cli, LB_LOCAL_IP, 80, 4);
    expect(new Set(viaLB.map(namePeer))).toEqual(new Set([`pb ${CLIENT_IP}`]));
  });

  it("externalTrafficPolicy Local without a local endpoint drops external traffic (timeout)", async () => {
    const cli = lab.client("cli");
    expect(await one(cli, NODE_IP, 30152, 1_500)).toBe("error:ETIMEDOUT");
    expect(await one(cli, LB_REMOTE_IP, 80, 1_500)).toBe("error:ETIMEDOUT");
    // Its cluster IP still reaches the endpoint on the other node (the internal policy is Cluster).
    expect(await one(cli, CIP.remote, 80)).toBe(`pc ${BRIDGE_IP}`);
  });
});

describe("health-check node ports (listening in the node namespace)", () => {
  it("answer 200 with a local endpoint and 503 without", async () => {
    const cli = lab.client("cli");
    const ok = await lab.http(cli, NODE_IP, hcPortLocal);
    expect(ok).toMatchObject({ ok: true, status: 200 });
    if (!ok.ok) throw new Error("unreachable");
    expect(ok.body).toBe(serviceHealthResponse({ namespace: "default", name: "local" }, 1, true).body);
    expect(ok.headers["x-load-balancing-endpoint-weight"]).toBe("1");

    const down = await lab.http(cli, NODE_IP, hcPortRemote);
    expect(down).toMatchObject({ ok: true, status: 503 });
    if (down.ok) expect(JSON.parse(down.body)).toMatchObject({ localEndpoints: 0 });
  });

  it("follow endpoint changes: the local endpoint moves away, 503 and external traffic dropped", async () => {
    await apply(
      {},
      {
        local: slice({
          ns: "default",
          service: "local",
          ports: tcp(),
          endpoints: endpoints(["pb", "pc"], { node: () => "node-2" }),
        }),
      },
    );
    const cli = lab.client("cli");
    expect(await lab.http(cli, NODE_IP, hcPortLocal)).toMatchObject({ ok: true, status: 503 });
    expect(await one(cli, NODE_IP, 30151, 1_500)).toBe("error:ETIMEDOUT");
    // Back on this node: 200 and traffic again.
    await apply(
      {},
      {
        local: slice({
          ns: "default",
          service: "local",
          ports: tcp(),
          endpoints: endpoints(["pb", "pc"], { node: (n) => (n === "pc" ? "node-2" : "node-1") }),
        }),
      },
    );
    expect(await lab.http(cli, NODE_IP, hcPortLocal)).toMatchObject({ ok: true, status: 200 });
    expect(await one(cli, NODE_IP, 30151)).toBe(`pb ${CLIENT_IP}`);
  });
});

describe("IPv6 (table ip6 kube-proxy)", () => {
  it("spreads connections to an IPv6 cluster IP over the endpoints, masqueraded to the node", async () => {
    const list6 = await nft(["list", "table", "ip6", "kube-proxy"]);
    expect(list6).toContain(CIP.v6);
    expect(list6).not.toContain("10.245.0.");
    const answers = await tcpFrom(lab.client("cli"), CIP.v6, 80, 30);
    expect(new Set(answers.map(namePeer))).toEqual(
      new Set(["pa", "pb", "pc"].map((n) => `${n} ${BRIDGE_IP6}`)),
    );
  });
});

describe("UDP conntrack cleanup", () => {
  it("moves a UDP client to the new endpoint when its endpoint is replaced (and only the deletion does)", async () => {
    const [tested, control] = [CIP.udp, CIP.udpctl];
    const o = await observeUdpEndpointSwap({
      lab,
      from: lab.client("cli"),
      node,
      objects,
      proxier,
      runner,
      tested,
      control,
      fromPod: { name: "pa", ip: podIP("pa") },
      toPod: { name: "pb", ip: podIP("pb") },
    });
    expect(new Set(o.before.tested)).toEqual(new Set(["pa"]));
    expect(new Set(o.before.control)).toEqual(new Set(["pa"]));
    expect(o.targetsBefore).toEqual({ tested: [podIP("pa")], control: [podIP("pa")] });
    expect(o.commit.changes.staleConntrack).toEqual(
      expect.arrayContaining([
        { serviceIP: tested, port: 53, protocol: "UDP", endpoint: `${podIP("pa")}:5353` },
        { serviceIP: control, port: 53, protocol: "UDP", endpoint: `${podIP("pa")}:5353` },
      ]),
    );
    // The tested service's deletion ran in the node namespace and succeeded.
    expect(runner.conntrackCalls.some((c) => c.args.includes(tested) && c.code === 0)).toBe(true);
    expect(o.after.tested.length).toBeGreaterThan(5);
    expect(new Set(o.after.tested)).toEqual(new Set(["pb"]));
    // The control client, whose entry was not deleted, still talks to pa.
    expect(o.after.control.length).toBeGreaterThan(5);
    expect(new Set(o.after.control)).toEqual(new Set(["pa"]));
    expect(o.targetsAfter).toEqual({ tested: [podIP("pb")], control: [podIP("pa")] });
  });
});

describe("partial sync", () => {
  it("after one change rewrites only that service's chains", async () => {
    const before = await nft(["list", "table", "ip", "kube-proxy"]);
    const chainsBefore = chainsOf(before);
    const webChains = [...chainsBefore.keys()].filter((c) => c.includes("-default/web/"));
    const otherServiceChains = [...chainsBefore.keys()].filter(
      (c) => /^(service|local|external|firewall)-/.test(c) && !c.includes("-default/web/"),
    );
    expect(webChains.length).toBeGreaterThan(0);
    expect(otherServiceChains.length).toBeGreaterThan(3);

    runner.inputs.length = 0;
    const next = await apply(
      {},
      { web: slice({ ns: "default", service: "web", ports: tcp(), endpoints: endpoints(["pb"]) }) },
    );
    expect([...next.changes.changedServicePorts]).toEqual(["default/web:http/TCP"]);
    const applied = proxier.lastApplied("IPv4");
    expect(applied).toBeDefined();
    expect(applied!.full).toBe(false);
    // What ran is what the proxier reports.
    expect(runner.inputsOf("nft")).toContain(applied!.payload);
    const payload = applied!.payload;
    expect(payload).toContain("-default/web/");
    for (const other of ["sticky", "empty", "lb", "local", "remote", "hair", "udp", "udpctl"]) {
      expect(payload).not.toContain(`-default/${other}/`);
    }
    for (const c of otherServiceChains) expect(payload).not.toContain(c);

    const after = await nft(["list", "table", "ip", "kube-proxy"]);
    const chainsAfter = chainsOf(after);
    for (const c of otherServiceChains) expect(chainsAfter.get(c), c).toBe(chainsBefore.get(c));
    const webService = [...chainsAfter.keys()].filter(
      (c) => c.startsWith("service-") && c.includes("-default/web/"),
    );
    expect(webService).toHaveLength(1);
    const body = chainsAfter.get(webService[0]!)!;
    expect(body).toContain(`${podIP("pb")}:8080`);
    expect(body).not.toContain(`${podIP("pa")}:8080`);
    expect(body).not.toContain(`${podIP("pc")}:8080`);

    const replies = names(await tcpFrom(lab.client("cli"), CIP.web, 80, 6));
    expect(new Set(replies)).toEqual(new Set(["pb"]));
    // Unchanged services keep working.
    expect(await one(lab.client("cli"), NODE_IP, 30150)).toBe(`pa ${BRIDGE_IP}`);
  });
});

describe("recovery and cleanup", () => {
  it("a full sync restores traffic after someone deleted the table", async () => {
    await node.exec("nft", ["delete", "table", "ip", "kube-proxy"]);
    const [gone] = await tcpFrom(lab.client("cli"), CIP.web, 80, 1, 1_500);
    expect(gone).toMatchObject({ ok: false });
    await proxier.sync({ snapshot: objects.tracker.snapshot(), changes: emptyChangeSet(), full: true });
    expect(names(await tcpFrom(lab.client("cli"), CIP.web, 80, 3))).toEqual(["pb", "pb", "pb"]);
    expect(await one(lab.client("cli"), NODE_IP, 30150)).toBe(`pa ${BRIDGE_IP}`);
  });

  it("cleanup() leaves the namespace's ruleset as it was before", async () => {
    await proxier.cleanup();
    expect(await nft(["list", "ruleset"])).toBe(baselineRuleset);
    await proxier.cleanup(); // idempotent
    expect(await nft(["list", "ruleset"])).toBe(baselineRuleset);
    const [r] = await tcpFrom(lab.client("cli"), CIP.web, 80, 1, 1_500);
    expect(r!.ok).toBe(false);
  });

  it("a restarted proxier with only `netns` programs the node again, and its cleanup restores the ruleset", async () => {
    const restarted = new NftablesProxier({
      nodeName: "node-1",
      nodeIPs: NODE_IPS,
      clusterCIDRs: ["10.245.0.0/24", "fd00:245::/64"],
      families: ["IPv4", "IPv6"],
      netns: node.name,
    });
    try {
      await restarted.sync({ snapshot: objects.tracker.snapshot(), changes: emptyChangeSet(), full: true });
      expect(names(await tcpFrom(lab.client("cli"), CIP.web, 80, 3))).toEqual(["pb", "pb", "pb"]);
      const v6 = names(await tcpFrom(lab.client("cli"), CIP.v6, 80, 12));
      expect(new Set(v6)).toEqual(new Set(["pa", "pb", "pc"]));
    } finally {
      await restarted.cleanup();
      await restarted.close();
    }
    expect(await nft(["list", "ruleset"])).toBe(baselineRuleset);
  });
});
