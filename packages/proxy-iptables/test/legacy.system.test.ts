/**
 * The iptables backend on the legacy (x_tables) kernel interface: `IptablesProxier` with
 * `legacy: true` drives `iptables-legacy-restore` / `iptables-legacy-save` (Debian's
 * names), inside network namespaces made by the test. Real TCP: ClusterIP spread over
 * the endpoints, REJECT without endpoints, a node port from an external client with
 * source NAT, a node port on 127.0.0.1 (localhost node ports: route_localnet and the
 * KUBE-FIREWALL rule), and cleanup restoring the legacy tables. The nf_tables side of
 * the same namespace must stay empty of our chains.
 *
 *   client (192.168.70.2) ──veth── node (192.168.70.1; bridge 10.245.0.1/24) ──┬── pod-a (10.245.0.11)
 *                                                                               └── pod-b (10.245.0.12)
 */

import { createCommandRunner } from "@worknode/core";
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
  { name: "pod-a", ip: "10.245.0.11" },
  { name: "pod-b", ip: "10.245.0.12" },
] as const;
const NODE_IP = "192.168.70.1";
const CLIENT_IP = "192.168.70.2";
const BRIDGE_IP = "10.245.0.1";
const NODE_PORT = 30_555;

let node: Netns;
let client: Netns;
let proxier: IptablesProxier;
let baseline = "";

/**
 * Legacy tables of the node namespace, without comments and counters. (Legacy lists a
 * table once anything loaded it, so empty tables are left out to compare with before.)
 */
async function saveLegacy(): Promise<string> {
  const r = await node.exec("iptables-legacy-save", []);
  const tables = r.stdout.split(/^(?=\*)/m).filter((t) => t.startsWith("*"));
  return tables
    .map((t) =>
      t
        .split("\n")
        .filter((l) => !l.startsWith("#"))
        .map((l) => l.replace(/\[\d+:\d+\]/g, "[0:0]"))
        .join("\n"),
    )
    .filter((t) => t.split("\n").some((l) => l.startsWith("-A ") || / - \[0:0\]$/.test(l)))
    .join("\n");
}

async function tcpFrom(ns: Netns, host: string, port: number): Promise<string> {
  const r = await connectFromNetns(ns, { protocol: "tcp", host, port, timeoutMs: 3_000 });
  return r.ok ? r.reply : `error:${r.error}`;
}

beforeAll(async () => {
  node = await createNetns("lnode");
  client = await createNetns("lclient");
  await createVethPair(client, node, { addressA: `${CLIENT_IP}/24`, addressB: `${NODE_IP}/24` });
  await client.exec("ip", ["route", "add", "default", "via", NODE_IP]);
  const bridge = await createBridge(node, { addresses: [`${BRIDGE_IP}/24`] });
  for (const pod of PODS) {
    const ns = await createNetns(pod.name.replace("-", ""));
    const pair = await createVethPair(node, ns, { addressB: `${pod.ip}/24` });
    await bridge.addPort(pair.nameA);
    await ns.exec("ip", ["route", "add", "default", "via", BRIDGE_IP]);
    await startNetnsServer(ns, { protocol: "tcp", port: 8080, reply: pod.name, echoPeer: true });
  }
  await node.exec("sysctl", ["-q", "-w", "net.ipv4.ip_forward=1"]);
  await node.exec("ip", ["route", "add", "default", "dev", bridge.name]);
  // A rule of the node's own in the legacy tables, to compare cleanup against.
  await node.exec("iptables-legacy", [
    "-t",
    "nat",
    "-A",
    "POSTROUTING",
    "-p",
    "tcp",
    "--dport",
    "9",
    "-j",
    "RETURN",
  ]);
  baseline = await saveLegacy();

  const { snapshot, changes } = commitAll(
    [
      svc({
        ns: "default",
        name: "web",
        type: "NodePort",
        clusterIP: "172.31.0.10",
        ports: [{ name: "http", port: 80, targetPort: 8080, nodePort: NODE_PORT }],
      }),
      svc({ ns: "default", name: "empty", clusterIP: "172.31.0.11", ports: [{ name: "http", port: 80 }] }),
    ],
    [
      slice({
        ns: "default",
        service: "web",
        ports: [{ name: "http", port: 80, targetPort: 8080 }],
        endpoints: PODS.map((p) => ({ ip: p.ip, node: "node-1" })),
      }),
    ],
    "node-1",
  );
  proxier = new IptablesProxier({
    nodeName: "node-1",
    nodeIPs: [NODE_IP, BRIDGE_IP],
    clusterCIDRs: ["10.245.0.0/16"],
    legacy: true,
    runner: createCommandRunner({ netns: node.name }),
  });
  await proxier.sync({ snapshot, changes, full: true });
}, 120_000);

afterAll(async () => {
  await destroyAll();
});

describe("IptablesProxier with legacy iptables (iptables-legacy-restore)", () => {
  it("writes to the legacy tables only, with KUBE-FIREWALL and route_localnet for localhost node ports", async () => {
    const legacy = await saveLegacy();
    expect(legacy).toContain(":KUBE-SERVICES - [0:0]");
    expect(legacy).toContain("-A OUTPUT -j KUBE-FIREWALL");
    expect(legacy).toMatch(
      /-A KUBE-FIREWALL ! -s 127\.0\.0\.0\/8 -d 127\.0\.0\.0\/8 .*block incoming localnet connections.* ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP/,
    );
    expect(legacy).toContain(":KUBE-PROXY-CANARY - [0:0]");
    const nft = (await node.exec("iptables-nft-save", [])).stdout;
    expect(nft).not.toContain("KUBE-");
    const localnet = await node.exec("sysctl", ["-n", "net.ipv4.conf.all.route_localnet"]);
    expect(localnet.stdout.trim()).toBe("1");
  });

  it("spreads connections to the ClusterIP over both endpoints", async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 30 && seen.size < 2; i++)
      seen.add((await tcpFrom(node, "172.31.0.10", 80)).split(" ")[0]!);
    expect(seen).toEqual(new Set(["pod-a", "pod-b"]));
  });

  it("refuses a service without endpoints at once (REJECT)", async () => {
    expect(await tcpFrom(node, "172.31.0.11", 80)).toBe("error:ECONNREFUSED");
  });

  it("serves the node port to an external client, source-NATed to the node", async () => {
    const reply = await tcpFrom(client, NODE_IP, NODE_PORT);
    expect(reply).toMatch(/^pod-[ab] 10\.245\.0\.1:\d+$/);
  });

  it("serves the node port on 127.0.0.1 from the node itself (localhost node ports)", async () => {
    const reply = await tcpFrom(node, "127.0.0.1", NODE_PORT);
    expect(reply).toMatch(/^pod-[ab] 10\.245\.0\.1:\d+$/);
  });

  it("cleanup leaves the legacy tables as they were", async () => {
    await proxier.cleanup();
    expect(await saveLegacy()).toBe(baseline);
    expect(await tcpFrom(node, "127.0.0.1", NODE_PORT)).toMatch(/^error:/);
  });
});
