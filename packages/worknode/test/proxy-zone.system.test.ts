/**
 * Node-aware proxying of `worknode proxy --kubeconfig` against a real kube-apiserver
 * (`startControlPlane`, admin kubeconfig): Services and EndpointSlices come from the
 * API server, and so does this node's Node object, whose `topology.kubernetes.io/zone`
 * label steers a Service whose endpoints carry zone hints. The command runs in this
 * process (it must reach the API server on the host's loopback) with its iptables
 * commands run in a network namespace made by the test: the host's tables are never
 * touched.
 *
 *   node (bridge 10.248.0.1/24) ──veth── zone-a pod (10.248.0.11:8080 answers "pod-a")
 *                               └─veth── zone-b pod (10.248.0.12:8080 answers "pod-b")
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
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
import { createProxyCommand } from "../src/commands/proxy.js";
import { createIptablesBackend } from "../src/commands/proxy-backend.js";
import type { ProxyReadyInfo } from "../src/commands/proxy-run.js";

const NODE_NAME = "wnpzone-node";
const ZONE_LABEL = "topology.kubernetes.io/zone";
const CLUSTER_IP = "10.96.48.10";
const NODE_PORT = 30848;
const PODS = [
  { name: "pod-a", ip: "10.248.0.11", zone: "zone-a" },
  { name: "pod-b", ip: "10.248.0.12", zone: "zone-b" },
] as const;

/** A NodePort Service without selector and its EndpointSlice, each endpoint hinted for its zone. */
const OBJECTS = `apiVersion: v1
kind: Service
metadata: {name: zoned, namespace: default}
spec:
  type: NodePort
  clusterIP: ${CLUSTER_IP}
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: ${NODE_PORT}}]
---
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
const abort = new AbortController();
let done: Promise<number> | undefined;
let stderr = "";

/** The pods answering 20 connections to `host:port` from the node. */
async function answering(host = CLUSTER_IP, port = 80): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const r = await connectFromNetns(node, { protocol: "tcp", host, port, timeoutMs: 2_000 });
    seen.add(r.ok ? r.reply : `error:${r.error}`);
  }
  return seen;
}

async function eventually(what: string, fn: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function onlyFrom(pod: string, host?: string, port?: number): Promise<boolean> {
  const seen = await answering(host, port);
  return seen.size === 1 && seen.has(pod);
}

beforeAll(async () => {
  cp = await startControlPlane({
    binaries: await ensureControlPlaneBinaries(),
    controllerManager: false,
    scheduler: false,
  });
  dir = await mkdtemp(path.join(tmpdir(), "wnpzone-"));
  await writeFile(path.join(dir, "objects.yaml"), OBJECTS);
  await cp.kubectl(["apply", "-f", path.join(dir, "objects.yaml")]);
  node = await createNetns("pznode");
  const bridge = await createBridge(node, { addresses: ["10.248.0.1/24"] });
  for (const p of PODS) {
    const ns = await createNetns(`pz${p.name.replace("-", "")}`);
    const pair = await createVethPair(node, ns, { addressB: `${p.ip}/24` });
    await bridge.addPort(pair.nameA);
    await ns.exec("ip", ["route", "add", "default", "via", "10.248.0.1"]);
    await startNetnsServer(ns, { protocol: "tcp", port: 8080, reply: p.name });
  }
  await node.exec("ip", ["route", "add", "default", "dev", bridge.name]);
}, 600_000);

afterAll(async () => {
  abort.abort();
  await done?.catch(() => {});
  await destroyAll();
  await cp?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 120_000);

describe("worknode proxy --kubeconfig: this node's zone steers topology-hinted Services", () => {
  it("serves every endpoint while the Node is missing, then the endpoint of its zone, and follows a relabel", async () => {
    let ready!: (info: ProxyReadyInfo) => void;
    const started = new Promise<ProxyReadyInfo>((r) => {
      ready = r;
    });
    const command = createProxyCommand({
      backend: createIptablesBackend(createCommandRunner({ netns: node.name })),
      nodeIPs: () => ["10.248.0.1"],
      onReady: ready,
    });
    done = command.run(
      [
        "--kubeconfig",
        cp.kubeconfigPath,
        "--hostname-override",
        NODE_NAME,
        "--cluster-cidr",
        "10.248.0.0/16",
        "--iptables-min-sync-period=0s",
        "--healthz-bind-address=",
        "--metrics-bind-address=",
      ],
      {
        stdout: () => {},
        stderr: (t) => {
          stderr += t;
        },
        signal: abort.signal,
      },
    );
    await Promise.race([
      started,
      done.then((status) => {
        throw new Error(`worknode proxy ended (status ${status}) before it was ready:\n${stderr}`);
      }),
    ]);
    expect(stderr).toContain("Node object does not exist (yet)");

    // No Node, no zone: the hints are not used, both endpoints serve.
    await eventually("traffic to both endpoints", async () => (await answering()).size === 2);
    expect(await answering()).toEqual(new Set(["pod-a", "pod-b"]));

    // The Node registers in zone-a.
    await writeFile(
      path.join(dir, "node.yaml"),
      `apiVersion: v1\nkind: Node\nmetadata:\n  name: ${NODE_NAME}\n  labels: {${ZONE_LABEL}: zone-a}\n`,
    );
    await cp.kubectl(["apply", "-f", path.join(dir, "node.yaml")]);
    await eventually("traffic to the zone-a endpoint only", () => onlyFrom("pod-a"));
    // Stays there (not a lucky draw): 20 more connections, all to pod-a.
    expect(await answering()).toEqual(new Set(["pod-a"]));
    // Localhost node ports (--iptables-localhost-nodeports, default true) follow the zone too.
    await eventually("the node port on 127.0.0.1, zone-a", () => onlyFrom("pod-a", "127.0.0.1", NODE_PORT));

    await cp.kubectl(["label", "node", NODE_NAME, `${ZONE_LABEL}=zone-b`, "--overwrite"]);
    await eventually("traffic to the zone-b endpoint only", () => onlyFrom("pod-b"));
    expect(await answering()).toEqual(new Set(["pod-b"]));
    await eventually("the node port on 127.0.0.1, zone-b", () => onlyFrom("pod-b", "127.0.0.1", NODE_PORT));

    // A zone no endpoint is hinted for: no topology narrowing, both endpoints serve.
    await cp.kubectl(["label", "node", NODE_NAME, `${ZONE_LABEL}=zone-c`, "--overwrite"]);
    await eventually("traffic to both endpoints again", async () => (await answering()).size === 2);
    expect(await answering()).toEqual(new Set(["pod-a", "pod-b"]));

    abort.abort();
    expect(await done).toBe(0);
  });
});
