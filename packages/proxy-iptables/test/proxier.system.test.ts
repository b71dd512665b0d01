/**
 * The iptables backend against the real kernel, inside network namespaces made by
 * the test (never the host's own tables):
 *
 *   client (192.168.50.2) ──veth── node (192.168.50.1, bridge 10.244.0.1/24) ──veth── pod-a (10.244.0.11)
 *                                                                            ├─veth── pod-b (10.244.0.12)
 *                                                                            └─veth── pod-c (10.244.0.13)
 *
 * The proxier programs the node namespace; the client reaches cluster IPs (routed
 * through the node) and node ports; each pod answers with its name.
 */
import type { EndpointSlice, Service, ServiceChangeTracker } from "@worknode/core";
import { type CommandRunner, createCommandRunner } from "@worknode/core";
import {
  connectFromNetns,
  createBridge,
  createNetns,
  createVethPair,
  destroyAll,
  type Netns,
  startNetnsServer,
} from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IptablesProxier } from "../src/proxier.js";
import { commitAll, slice, svc } from "./helpers/objects.js";

const PODS = [
  { name: "pod-a", ip: "10.244.0.11" },
  { name: "pod-b", ip: "10.244.0.12" },
  { name: "pod-c", ip: "10.244.0.13" },
] as const;
const NODE_IP = "192.168.50.1";
const CLIENT_IP = "192.168.50.2";
const http = [{ name: "http", port: 80, targetPort: 8080 }];

let node: Netns;
let client: Netns;
const restoreInputs: string[] = [];

function recordingRunner(inner: CommandRunner): CommandRunner {
  return {
    exec(command, args, stdin) {
      if (command.endsWith("-restore") && stdin !== undefined) restoreInputs.push(stdin);
      return inner.exec(command, args, stdin);
    },
  };
}

async function sh(ns: Netns, cmd: string, args: string[]): Promise<string> {
  const r = await ns.exec(cmd, args);
  return r.stdout;
}

/** `iptables-save` of every table of the node, without counters and comment lines. */
async function saveNode(): Promise<string> {
  return normalize(await sh(node, "iptables-save", []));
}

function normalize(save: string): string {
  return save
    .split("\n")
    .filter((l) => !l.startsWith("#"))
    .map((l) => l.replace(/\[\d+:\d+\]/g, "[0:0]"))
    .join("\n");
}

async function connectMany(host: string, port: number, n: number): Promise<string[]> {
  const replies: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await connectFromNetns(client, { protocol: "tcp", host, port, timeoutMs: 3_000 });
    replies.push(r.ok ? r.reply : `error:${r.error}`);
  }
  return replies;
}

function endpoints(names: readonly (typeof PODS)[number]["name"][]) {
  return PODS.filter((p) => names.includes(p.name)).map((p) => ({ ip: p.ip, node: "node-1" }));
}

beforeAll(async () => {
  node = await createNetns("node");
  client = await createNetns("client");
  await createVethPair(client, node, { addressA: `${CLIENT_IP}/24`, addressB: `${NODE_IP}/24` });
  await client.exec("ip", ["route", "add", "default", "via", NODE_IP]);
  const bridge = await createBridge(node, { addresses: ["10.244.0.1/24"] });
  for (const pod of PODS) {
    const ns = await createNetns(pod.name.replace("-", ""));
    const pair = await createVethPair(node, ns, { addressB: `${pod.ip}/24` });
    await bridge.addPort(pair.nameA);
    await ns.exec("ip", ["route", "add", "default", "via", "10.244.0.1"]);
    await startNetnsServer(ns, { protocol: "tcp", port: 8080, reply: pod.name });
  }
  await node.exec("sysctl", ["-q", "-w", "net.ipv4.ip_forward=1"]);
  // A real node has a default route: without any route to a cluster IP, a packet to a
  // service without endpoints would fail routing (ENETUNREACH) before reaching the
  // filter table's REJECT.
  await node.exec("ip", ["route", "add", "default", "dev", bridge.name]);
  // The node already has rules of its own in every table the proxy touches.
  await node.exec("iptables", ["-t", "nat", "-A", "POSTROUTING", "-s", "10.99.0.0/16", "-j", "MASQUERADE"]);
  await node.exec("iptables", ["-t", "filter", "-N", "SITE-INPUT"]);
  await node.exec("iptables", [
    "-t",
    "filter",
    "-A",
    "INPUT",
    "-p",
    "tcp",
    "--dport",
    "22",
    "-j",
    "SITE-INPUT",
  ]);
  await node.exec("iptables", [
    "-t",
    "mangle",
    "-A",
    "PREROUTING",
    "-p",
    "udp",
    "--dport",
    "5353",
    "-j",
    "ACCEPT",
  ]);
}, 120_000);

afterAll(async () => {
  await destroyAll();
});

describe("IptablesProxier in a node namespace", () => {
  let tracker: ServiceChangeTracker;
  let proxier: IptablesProxier;
  let baseline: string;
  const services: Record<string, Service> = {};
  const slices: Record<string, EndpointSlice> = {};

  it("programs cluster IPs and node ports with a full sync", async () => {
    baseline = await saveNode();
    expect(baseline).toContain("SITE-INPUT");
    services.web = svc({ ns: "default", name: "web", clusterIP: "172.30.0.10", ports: http });
    services.sticky = svc({
      ns: "default",
      name: "sticky",
      clusterIP: "172.30.0.11",
      ports: http,
      affinity: 600,
    });
    services.empty = svc({ ns: "default", name: "empty", clusterIP: "172.30.0.12", ports: http });
    services.np = svc({
      ns: "default",
      name: "np",
      type: "NodePort",
      clusterIP: "172.30.0.13",
      ports: [{ name: "http", port: 80, targetPort: 8080, nodePort: 30080 }],
    });
    slices.web = slice({
      ns: "default",
      service: "web",
      ports: http,
      endpoints: endpoints(["pod-a", "pod-b", "pod-c"]),
    });
    slices.sticky = slice({
      ns: "default",
      service: "sticky",
      ports: http,
      endpoints: endpoints(["pod-a", "pod-b", "pod-c"]),
    });
    slices.np = slice({ ns: "default", service: "np", ports: http, endpoints: endpoints(["pod-c"]) });
    const c = commitAll(Object.values(services), Object.values(slices), "node-1");
    tracker = c.tracker;
    proxier = new IptablesProxier({
      nodeName: "node-1",
      nodeIPs: [NODE_IP, "10.244.0.1"],
      clusterCIDRs: ["10.244.0.0/16"],
      runner: recordingRunner(createCommandRunner({ netns: node.name })),
    });
    const stats = await proxier.sync({ snapshot: c.snapshot, changes: c.changes, full: true });
    expect(stats.servicePorts).toBe(4);
    expect(stats.endpoints).toBe(7);
    const nat = await sh(node, "iptables-save", ["-t", "nat"]);
    expect(nat).toContain('-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES');
    expect(nat).toMatch(/-A KUBE-SVC-\S+ .*--probability 0\.33333333/);
  });

  it("spreads connections to a cluster IP over all ready endpoints", async () => {
    const replies = await connectMany("172.30.0.10", 80, 30);
    expect(new Set(replies)).toEqual(new Set(["pod-a", "pod-b", "pod-c"]));
  });

  it("refuses connections to a service without endpoints at once (REJECT)", async () => {
    const started = Date.now();
    const r = await connectFromNetns(client, {
      protocol: "tcp",
      host: "172.30.0.12",
      port: 80,
      timeoutMs: 5_000,
    });
    expect(r).toEqual({ ok: false, error: "ECONNREFUSED" });
    expect(Date.now() - started).toBeLessThan(4_000);
  });

  it("keeps a client on one endpoint with sessionAffinity ClientIP", async () => {
    const replies = await connectMany("172.30.0.11", 80, 12);
    expect(replies[0]).toMatch(/^pod-[abc]$/);
    expect(new Set(replies).size).toBe(1);
  });

  it("reaches a backend through a node port from the client namespace", async () => {
    const r = await connectFromNetns(client, {
      protocol: "tcp",
      host: NODE_IP,
      port: 30080,
      timeoutMs: 3_000,
    });
    expect(r).toEqual({ ok: true, reply: "pod-c" });
  });

  it("a partial sync after one change rewrites only that service's chains", async () => {
    const natBefore = await sh(node, "iptables-save", ["-t", "nat"]);
    const oldSlice = slices.web!;
    slices.web = slice({ ns: "default", service: "web", ports: http, endpoints: endpoints(["pod-b"]) });
    tracker.endpointSliceHandler.onUpdate!(oldSlice, slices.web);
    const next = tracker.commit();
    expect([...next.changes.changedServicePorts]).toEqual(["default/web:http/TCP"]);
    restoreInputs.length = 0;
    await proxier.sync({ snapshot: next.snapshot, changes: next.changes, full: false });

    expect(restoreInputs).toHaveLength(1);
    const payload = restoreInputs[0]!;
    const applied = proxier.lastApplied()!;
    expect(applied.full).toBe(false);
    expect(applied.payload).toBe(payload);
    const webChains = new Set(applied.render.chainsWritten);
    const declared = payload
      .split("\n")
      .filter((l) => l.startsWith(":KUBE-SVC-") || l.startsWith(":KUBE-SEP-") || l.startsWith(":KUBE-EXT-"))
      .map((l) => l.slice(1).split(" ")[0]!);
    // Declared service chains: web's chains, and the two endpoint chains it lost (deleted).
    expect(applied.render.chainsDeleted).toHaveLength(2);
    expect(new Set(declared)).toEqual(new Set([...webChains, ...applied.render.chainsDeleted]));
    for (const c of applied.render.chainsDeleted) expect(payload).toContain(`-X ${c}\n`);
    // No other service's chain is touched: each one's rules are byte-identical in the kernel.
    const natAfter = await sh(node, "iptables-save", ["-t", "nat"]);
    const rulesOf = (save: string, chain: string) =>
      save.split("\n").filter((l) => l.startsWith(`-A ${chain} `));
    const otherChains = [...proxier.lastApplied()!.render.activeChains].filter((c) => !webChains.has(c));
    expect(otherChains.length).toBeGreaterThan(0);
    for (const c of otherChains) {
      expect(rulesOf(natAfter, c)).toEqual(rulesOf(natBefore, c));
      expect(rulesOf(natAfter, c).length).toBeGreaterThan(0);
    }
    for (const c of applied.render.chainsDeleted) expect(natAfter).not.toContain(`:${c} `);

    expect(new Set(await connectMany("172.30.0.10", 80, 6))).toEqual(new Set(["pod-b"]));
    // Unchanged services keep working.
    expect(await connectFromNetns(client, { protocol: "tcp", host: NODE_IP, port: 30080 })).toEqual({
      ok: true,
      reply: "pod-c",
    });
  });

  it("a failed restore throws with the failing line and leaves the previous rules working", async () => {
    const natBefore = normalize(await sh(node, "iptables-save", ["-t", "nat"]));
    const broken = new IptablesProxier({
      nodeName: "node-1",
      clusterCIDRs: ["10.244.0.0/16"],
      runner: {
        exec(command, args, stdin) {
          const bad = stdin?.replace("-m tcp -p tcp -j DNAT", "-m tcp -p tcpx -j DNAT");
          return createCommandRunner({ netns: node.name }).exec(command, args, bad);
        },
      },
    });
    const snap = tracker.snapshot();
    const corrupted = broken.plan({ snapshot: snap, changes: emptyChanges() });
    const expectedLine = (corrupted.filter + corrupted.nat)
      .split("\n")
      .find((l) => l.includes("-m tcp -p tcp -j DNAT"));
    expect(expectedLine).toBeDefined();
    const err = await broken
      .sync({ snapshot: snap, changes: { ...emptyChanges(), changedServicePorts: new Set() }, full: true })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "PROXY_SYNC", mode: "iptables" });
    // The line iptables-restore blamed, taken from the payload the proxier rendered.
    expect((err as { failingLine?: string }).failingLine).toBe(expectedLine);
    expect((err as Error).message).toMatch(/failed \(exit \d+\) at line \d+/);
    expect(normalize(await sh(node, "iptables-save", ["-t", "nat"]))).toBe(natBefore);
    expect(new Set(await connectMany("172.30.0.10", 80, 3))).toEqual(new Set(["pod-b"]));
  });

  it("cleanup() leaves the node's tables as they were before", async () => {
    await proxier.cleanup();
    expect(await saveNode()).toBe(baseline);
    await proxier.cleanup(); // idempotent
    expect(await saveNode()).toBe(baseline);
    const r = await connectFromNetns(client, {
      protocol: "tcp",
      host: "172.30.0.10",
      port: 80,
      timeoutMs: 1_500,
    });
    expect(r.ok).toBe(false);
  });
});

function emptyChanges() {
  return {
    changedServicePorts: new Set<string>(),
    deletedServicePorts: new Set<string>(),
    staleConntrack: [],
    triggerTimes: new Map<string, number>(),
  };
}
