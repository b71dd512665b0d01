/**
 * Node-aware proxying of `worknode node` with `--kubeconfig`: the proxy half reads this
 * node's Node object from a real kube-apiserver (`startControlPlane`) and routes a
 * Service whose endpoints carry zone hints to the endpoint of the node's zone — and
 * moves when the Node's `topology.kubernetes.io/zone` label changes. The rules live in
 * a network namespace made by the test (the host's tables are never touched).
 *
 *   node (bridge 10.247.0.1/24) ──veth── zone-a pod (10.247.0.11:8080 answers "pod-a")
 *                               └─veth── zone-b pod (10.247.0.12:8080 answers "pod-b")
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createLogger } from "@worknode/core";
import { createCommandRunner } from "@worknode/proxy-iptables";
import {
  type ControlPlane,
  connectFromNetns,
  createBridge,
  createNetns,
  createVethPair,
  destroyAll,
  ensureControlPlaneBinaries,
  type Netns,
  startControlPlane,
  startNetnsServer,
} from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeletPodSource } from "../src/commands/node-pods.js";
import { type RunningNodeProxy, startNodeProxy } from "../src/commands/node-proxy.js";
import { createIptablesBackend } from "../src/commands/proxy-backend.js";
import { eventually, serviceYaml } from "./helpers/proxy-setup.js";

const NODE_NAME = "wnzone-node";
const ZONE_LABEL = "topology.kubernetes.io/zone";
const CLUSTER_IP = "172.30.9.10";
const PODS = [
  { name: "pod-a", ip: "10.247.0.11", zone: "zone-a" },
  { name: "pod-b", ip: "10.247.0.12", zone: "zone-b" },
] as const;

const SERVICES = `${serviceYaml("zoned", CLUSTER_IP)}---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: zoned-1, namespace: default, labels: {kubernetes.io/service-name: zoned}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
${PODS.map(
  (p) => `- addresses: [${p.ip}]
  conditions: {ready: true}
  nodeName: other-node
  zone: ${p.zone}
  hints: {forZones: [{name: ${p.zone}}]}`,
).join("\n")}
`;

let cp: ControlPlane;
let node: Netns;
let dir: string;
let proxy: RunningNodeProxy | undefined;
let pods: KubeletPodSource | undefined;

async function setZone(zone: string): Promise<void> {
  await cp.kubectl(["label", "node", NODE_NAME, `${ZONE_LABEL}=${zone}`, "--overwrite"]);
}

/** The pods answering 20 connections to the ClusterIP from the node. */
async function answering(): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const r = await connectFromNetns(node, { protocol: "tcp", host: CLUSTER_IP, port: 80, timeoutMs: 2_000 });
    seen.add(r.ok ? r.reply : `error:${r.error}`);
  }
  return seen;
}

/** Waits for the traffic to settle (polling every 300 ms). */
function settled(what: string, fn: () => Promise<boolean>): Promise<void> {
  return eventually(what, fn, 30_000, 300);
}

beforeAll(async () => {
  cp = await startControlPlane({
    binaries: await ensureControlPlaneBinaries(),
    controllerManager: false,
    scheduler: false,
  });
  dir = await mkdtemp(path.join(tmpdir(), "wnzone-"));
  const node1 = path.join(dir, "node.yaml");
  await writeFile(
    node1,
    `apiVersion: v1\nkind: Node\nmetadata:\n  name: ${NODE_NAME}\n  labels: {${ZONE_LABEL}: zone-a}\n`,
  );
  await cp.kubectl(["apply", "-f", node1]);
  node = await createNetns("znode");
  const bridge = await createBridge(node, { addresses: ["10.247.0.1/24"] });
  for (const p of PODS) {
    const ns = await createNetns(p.name.replace("-", ""));
    const pair = await createVethPair(node, ns, { addressB: `${p.ip}/24` });
    await bridge.addPort(pair.nameA);
    await ns.exec("ip", ["route", "add", "default", "via", "10.247.0.1"]);
    await startNetnsServer(ns, { protocol: "tcp", port: 8080, reply: p.name });
  }
  await node.exec("ip", ["route", "add", "default", "dev", bridge.name]);
  await writeFile(path.join(dir, "services.yaml"), SERVICES);
}, 600_000);

afterAll(async () => {
  await proxy?.stop();
  await pods?.stop();
  await destroyAll();
  await cp?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 120_000);

describe("worknode node --kubeconfig: the Node's zone steers topology-hinted Services", () => {
  it("routes to the endpoint hinted for the node's zone, and follows a zone change", async () => {
    pods = new KubeletPodSource({ listPods: () => [] });
    await pods.start();
    proxy = await startNodeProxy({
      settings: {
        mode: "iptables",
        clusterCIDRs: ["10.247.0.0/16"],
        masqueradeAll: false,
        nodePortAddresses: [],
        masqueradeBit: 14,
        localhostNodePorts: false,
        minSyncPeriodMs: 0,
        syncPeriodMs: 30_000,
        healthzBindAddress: undefined,
        metricsBindAddress: undefined,
      },
      nodeName: NODE_NAME,
      nodeIPs: ["10.247.0.1"],
      servicesPath: path.join(dir, "services.yaml"),
      rescanIntervalMs: 60_000,
      pods,
      backend: createIptablesBackend(createCommandRunner({ netns: node.name })),
      kubeConfig: cp.adminKubeConfig,
      logger: createLogger({ name: "wnzone", level: "warn" }),
    });
    await settled("traffic to the zone-a endpoint only", async () => {
      const seen = await answering();
      return seen.size === 1 && seen.has("pod-a");
    });
    // Stays there (not a lucky draw): 20 more connections, all to pod-a.
    expect(await answering()).toEqual(new Set(["pod-a"]));

    await setZone("zone-b");
    await settled("traffic to the zone-b endpoint only", async () => {
      const seen = await answering();
      return seen.size === 1 && seen.has("pod-b");
    });

    // A zone no endpoint is hinted for: no topology narrowing, both endpoints serve.
    await setZone("zone-c");
    await settled("traffic to both endpoints", async () => (await answering()).size === 2);
    expect(await answering()).toEqual(new Set(["pod-a", "pod-b"]));
  });
});
