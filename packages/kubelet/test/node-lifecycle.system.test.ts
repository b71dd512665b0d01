// The kubelet's Node lifecycle against a real control plane (etcd, kube-apiserver with
// Node,RBAC + NodeRestriction, kube-controller-manager with a 20 s node-monitor grace period)
// and a real containerd for the runtime's version and status: the node registers with its
// labels, taints, capacity, nodeInfo and addresses and becomes Ready, its Lease is renewed,
// a stopped controller leaves the node to go Unknown and a new one brings it back, and a
// pre-existing Node keeps the labels and taints others set.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ApiStatusError, KubeApiClient, type Lease, type Node } from "@worknode/core";
import { CriClient } from "@worknode/cri";
import {
  type ContainerdLab,
  type ControlPlane,
  startContainerdLab,
  startControlPlane,
} from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  criNodeRuntime,
  KUBELET_VERSION,
  loadKubeconfig,
  NodeController,
  type NodeControllerOptions,
  nodeLeasePath,
  nodePath,
  parseTaints,
} from "../src/index.js";

const LAB_CONTAINERD = {
  labDir: "/tmp/wnnode-lab",
  bridgeName: "wnnode0",
  podSubnet: "10.85.0.0/16",
  streamPort: 10052,
};
const NODE = "wnnode-a";
const PRE = "wnnode-pre";
const NODE_IPS = ["192.0.2.10", "2001:db8::10"];

let cp: ControlPlane;
let lab: ContainerdLab;
let cri: CriClient;
let admin: KubeApiClient;
let rootDir: string;
const controllers: NodeController[] = [];

beforeAll(async () => {
  [cp, lab] = await Promise.all([
    startControlPlane({
      controllerManagerArgs: ["--node-monitor-grace-period=20s", "--node-monitor-period=2s"],
    }),
    startContainerdLab({ log: (l) => console.error(`[lab] ${l}`), containerd: LAB_CONTAINERD }),
  ]);
  cri = new CriClient({ endpoint: lab.endpoint });
  admin = new KubeApiClient(cp.adminKubeConfig);
  rootDir = mkdtempSync(path.join(tmpdir(), "wnnode-root-"));
}, 300_000);

afterAll(async () => {
  for (const c of controllers) await c.stop().catch(() => undefined);
  cri?.close();
  await Promise.allSettled([lab?.stop(), cp?.stop()]);
  if (rootDir) rmSync(rootDir, { recursive: true, force: true });
}, 120_000);

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

const getNode = (name: string) => admin.requestJson<Node>("GET", nodePath(name));
const ready = (n: Node) => n.status?.conditions?.find((c) => c.type === "Ready");

async function nodeApi(name: string): Promise<KubeApiClient> {
  return new KubeApiClient(await loadKubeconfig(await cp.nodeCredentials(name)));
}

async function startController(
  name: string,
  extra: Partial<NodeControllerOptions> = {},
): Promise<NodeController> {
  const c = new NodeController({
    api: await nodeApi(name),
    nodeName: name,
    runtime: criNodeRuntime(cri),
    nodeIPs: NODE_IPS,
    rootDir,
    kubeletPort: 10250,
    ...extra,
  });
  controllers.push(c);
  c.start();
  return c;
}

describe("node lifecycle", () => {
  it("registers the Node with its labels, taints, capacity, nodeInfo and addresses and becomes Ready", async () => {
    const c = await startController(NODE, {
      labels: { "node.kubernetes.io/pool": "blue", "example.com/rack": "r1" },
      taints: parseTaints("example.com/dedicated=ops:NoSchedule"),
      capacity: { pods: "50" },
    });
    await c.registered();
    const node = await waitFor("node Ready", async () => {
      const n = await getNode(NODE);
      return ready(n)?.status === "True" ? n : undefined;
    });
    const labels = node.metadata?.labels ?? {};
    expect(labels).toMatchObject({
      "kubernetes.io/hostname": NODE,
      "kubernetes.io/os": "linux",
      "beta.kubernetes.io/os": "linux",
      "node.kubernetes.io/pool": "blue",
      "example.com/rack": "r1",
    });
    expect(["amd64", "arm64"]).toContain(labels["kubernetes.io/arch"]);
    expect(labels["beta.kubernetes.io/arch"]).toBe(labels["kubernetes.io/arch"]);
    expect(node.spec?.taints).toEqual([{ key: "example.com/dedicated", value: "ops", effect: "NoSchedule" }]);
    const status = node.status;
    expect(status?.addresses).toEqual([
      { type: "InternalIP", address: "192.0.2.10" },
      { type: "InternalIP", address: "2001:db8::10" },
      { type: "Hostname", address: NODE },
    ]);
    expect(status?.capacity?.pods).toBe("50");
    expect(Number(status?.capacity?.cpu)).toBeGreaterThan(0);
    expect(status?.capacity?.memory).toMatch(/^\d+(Ki|Mi|Gi)?$/);
    expect(status?.capacity?.["ephemeral-storage"]).toBeDefined();
    expect(status?.allocatable?.memory).toBeDefined();
    expect(status?.allocatable?.memory).not.toBe(status?.capacity?.memory); // 100Mi eviction threshold
    const info = status?.nodeInfo;
    expect(info?.kubeletVersion).toBe(KUBELET_VERSION);
    expect(info?.containerRuntimeVersion).toBe(
      `${lab.runtimeVersion.runtimeName}://${lab.runtimeVersion.runtimeVersion}`,
    );
    expect(info?.operatingSystem).toBe("linux");
    expect(info?.kernelVersion).toBeTruthy();
    expect(info?.osImage).toBeTruthy();
    expect(info?.bootID).toMatch(/^[0-9a-f-]{36}$/);
    expect(status?.daemonEndpoints?.kubeletEndpoint?.Port).toBe(10250);
    const r = ready(node);
    expect(r?.reason).toBe("KubeletReady");
    expect(r?.message).toBe("kubelet is posting ready status");
    for (const [type, reason] of [
      ["MemoryPressure", "KubeletHasSufficientMemory"],
      ["DiskPressure", "KubeletHasNoDiskPressure"],
      ["PIDPressure", "KubeletHasSufficientPID"],
    ]) {
      expect(status?.conditions?.find((x) => x.type === type)).toMatchObject({ status: "False", reason });
    }
  }, 120_000);

  it("renews the node Lease, owned by the Node", async () => {
    const node = await getNode(NODE);
    const first = await waitFor("lease", () => admin.requestJson<Lease>("GET", nodeLeasePath(NODE)));
    expect(first.spec?.holderIdentity).toBe(NODE);
    expect(first.spec?.leaseDurationSeconds).toBe(40);
    expect(first.metadata?.ownerReferences).toEqual([
      expect.objectContaining({ kind: "Node", name: NODE, uid: node.metadata?.uid }),
    ]);
    const renewed = await waitFor(
      "lease renewal",
      async () => {
        const l = await admin.requestJson<Lease>("GET", nodeLeasePath(NODE));
        return Date.parse(l.spec?.renewTime ?? "") > Date.parse(first.spec?.renewTime ?? "") ? l : undefined;
      },
      30_000,
    );
    expect(renewed.spec?.holderIdentity).toBe(NODE);
  }, 60_000);

  it("goes Unknown once stopped (the Node stays) and Ready again under a new controller", async () => {
    const old = controllers.splice(0);
    for (const c of old) await c.stop();
    const unknown = await waitFor(
      "node Unknown",
      async () => {
        const n = await getNode(NODE);
        return ready(n)?.status === "Unknown" ? n : undefined;
      },
      120_000,
    );
    expect(ready(unknown)?.reason).toBe("NodeStatusUnknown");
    const c = await startController(NODE, { labels: { "node.kubernetes.io/pool": "blue" } });
    await c.registered();
    const back = await waitFor("node Ready again", async () => {
      const n = await getNode(NODE);
      return ready(n)?.status === "True" ? n : undefined;
    });
    // a new transition (not before the node controller's); the node is the same object
    expect(Date.parse(ready(back)?.lastTransitionTime ?? "")).toBeGreaterThanOrEqual(
      Date.parse(ready(unknown)?.lastTransitionTime ?? ""),
    );
    expect(back.metadata?.uid).toBe(unknown.metadata?.uid);
    expect(back.metadata?.labels?.["example.com/rack"]).toBe("r1"); // set by the first kubelet, kept
  }, 180_000);

  it("reconciles a pre-existing Node without losing foreign labels or taints", async () => {
    await admin.requestJson("POST", "/api/v1/nodes", {
      body: {
        apiVersion: "v1",
        kind: "Node",
        metadata: { name: PRE, labels: { "example.com/team": "storage", "kubernetes.io/os": "windows" } },
        spec: { taints: [{ key: "example.com/maintenance", effect: "NoExecute" }] },
      },
    });
    const c = await startController(PRE, {
      labels: { "node.kubernetes.io/pool": "green" },
      taints: parseTaints("example.com/other=x:NoSchedule"),
    });
    await c.registered();
    const node = await waitFor("pre-existing node Ready", async () => {
      const n = await getNode(PRE);
      return ready(n)?.status === "True" ? n : undefined;
    });
    expect(node.metadata?.labels).toMatchObject({
      "example.com/team": "storage",
      "kubernetes.io/os": "linux",
      "kubernetes.io/hostname": PRE,
      "node.kubernetes.io/pool": "green",
    });
    // taints are registered only at creation, like the kubelet: the existing one stays, alone
    expect(node.spec?.taints).toEqual([{ key: "example.com/maintenance", effect: "NoExecute" }]);
  }, 120_000);

  it("can write only its own Node under NodeRestriction", async () => {
    const api = await nodeApi(NODE);
    const err = await api
      .requestJson("PATCH", nodePath(PRE), {
        body: { metadata: { labels: { "example.com/hijack": "yes" } } },
        contentType: "application/merge-patch+json",
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(ApiStatusError);
    expect((err as ApiStatusError).status).toBe(403);
  }, 30_000);
});
