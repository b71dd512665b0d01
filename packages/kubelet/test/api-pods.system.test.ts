// The kubelet with an API server: a real kube-apiserver (Node,RBAC authorization + NodeRestriction,
// the kubelet authenticating with a node client certificate) and the lab's real containerd. Pods
// bound to the node run and their API status follows; `kubectl delete pod` stops them (preStop hook,
// grace period) and the kubelet removes the object; static pods get mirror pods that come back
// when deleted, follow manifest changes and go with the manifest.
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import {
  ANNOTATION_CONFIG_HASH,
  ApiStatusError,
  createLogger,
  KubeApiClient,
  ManifestDirSource,
  type Node,
  type Pod,
} from "@worknode/core";
import { ContainerState, CriClient } from "@worknode/cri";
import {
  type ContainerdLab,
  type ControlPlane,
  startContainerdLab,
  startControlPlane,
} from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import {
  ANNOTATION_CONFIG_MIRROR,
  ApiPodSync,
  Kubelet,
  LABEL_POD_UID,
  type PodStatus,
} from "../src/index.js";

const LAB_CONTAINERD = {
  labDir: "/tmp/wnapi-lab",
  bridgeName: "wnapi0",
  podSubnet: "10.86.0.0/16",
  streamPort: 10053,
};
const NODE = "wnapi-node";

let cp: ControlPlane;
let lab: ContainerdLab;
let client: CriClient;
let admin: KubeApiClient;
let nodeUid = "";
let manifestDir: string;
let rootDir: string;
let logsDir: string;
let hostDir: string;
let image: string;
let manifests: ManifestDirSource | undefined;
let sync: ApiPodSync | undefined;
let kubelet: Kubelet | undefined;
/** Every status the kubelet side saw in the API for each pod UID, in order (informer events). */
const apiStatuses = new Map<string, PodStatus[]>();

async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 90_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

async function getPod(name: string, namespace = "default"): Promise<Pod | undefined> {
  try {
    return await admin.requestJson<Pod>("GET", `/api/v1/namespaces/${namespace}/pods/${name}`);
  } catch (e) {
    if (e instanceof ApiStatusError && e.status === 404) return undefined;
    throw e;
  }
}

function condition(p: Pod | undefined, type: string) {
  return p?.status?.conditions?.find((c) => c.type === type);
}

async function runtimeObjects(uid: string) {
  const sel = { labelSelector: { [LABEL_POD_UID]: uid } };
  const [{ items }, { containers }] = await Promise.all([
    client.runtime.listPodSandbox({ filter: sel }),
    client.runtime.listContainers({ filter: sel }),
  ]);
  return { sandboxes: items, containers };
}

function writeManifest(file: string, pod: unknown): void {
  const tmp = path.join(manifestDir, `.${file}.tmp`);
  writeFileSync(tmp, stringify(pod));
  renameSync(tmp, path.join(manifestDir, file));
}

/** Creates the Node as the admin (registration is not this test's subject), Ready and schedulable. */
async function createNode(): Promise<string> {
  const node = await admin.requestJson<Node>("POST", "/api/v1/nodes", {
    body: {
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: NODE, labels: { "kubernetes.io/hostname": NODE } },
    },
  });
  const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const resources = { cpu: "2", memory: "8Gi", pods: "110" };
  await admin.requestJson("PATCH", `/api/v1/nodes/${NODE}/status`, {
    contentType: "application/merge-patch+json",
    body: {
      status: {
        capacity: resources,
        allocatable: resources,
        conditions: [
          {
            type: "Ready",
            status: "True",
            reason: "KubeletReady",
            message: "test",
            lastHeartbeatTime: now,
            lastTransitionTime: now,
          },
        ],
      },
    },
  });
  // Without a controller manager nobody lifts the not-ready taint the API server put on the new node.
  await admin.requestJson("PATCH", `/api/v1/nodes/${NODE}`, {
    contentType: "application/merge-patch+json",
    body: { spec: { taints: null } },
  });
  return node.metadata?.uid ?? "";
}

beforeAll(async () => {
  [cp, lab] = await Promise.all([
    // No controller manager: nothing else (node lifecycle, garbage collector) touches our objects.
    startControlPlane({ controllerManager: false }),
    startContainerdLab({ log: (l) => console.error(`[lab] ${l}`), containerd: LAB_CONTAINERD }),
  ]);
  client = new CriClient({ endpoint: lab.endpoint });
  image = lab.busyboxImage;
  admin = new KubeApiClient(cp.adminKubeConfig);
  manifestDir = mkdtempSync(path.join(tmpdir(), "wnapi-manifests-"));
  rootDir = mkdtempSync(path.join(tmpdir(), "wnapi-root-"));
  logsDir = mkdtempSync(path.join(tmpdir(), "wnapi-logs-"));
  hostDir = mkdtempSync(path.join(tmpdir(), "wnapi-host-"));
  // The ServiceAccount admission needs the namespace's default ServiceAccount (no controller manager).
  await admin
    .requestJson("POST", "/api/v1/namespaces/default/serviceaccounts", {
      body: { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "default" } },
    })
    .catch((e: unknown) => {
      if (!(e instanceof ApiStatusError && e.status === 409)) throw e;
    });
  nodeUid = await createNode();

  const nodeKubeConfig = new KubeConfig();
  nodeKubeConfig.loadFromFile(await cp.nodeCredentials(NODE));
  manifests = new ManifestDirSource({
    path: manifestDir,
    nodeName: NODE,
    debounceMs: 20,
    rescanIntervalMs: 1000,
  });
  sync = new ApiPodSync({
    kubeConfig: nodeKubeConfig,
    nodeName: NODE,
    nodeUid: () => nodeUid,
    staticPods: [manifests],
    retryInitialMs: 200,
    resyncIntervalMs: 2000,
    // $WORKNODE_API_PODS_TEST_LOGS=1 prints every status patch.
    ...(process.env.WORKNODE_API_PODS_TEST_LOGS ? { logger: createLogger({ level: "debug" }) } : {}),
  });
  sync.podSource.allPods.addHandler({
    onAdd: (p) => recordApiStatus(p),
    onUpdate: (_o, p) => recordApiStatus(p),
  });
  kubelet = new Kubelet({
    client,
    nodeName: NODE,
    rootDir,
    podLogsDir: logsDir,
    resolvConf: "",
    relistPeriodMs: 500,
    resyncIntervalMs: 2000,
    ...sync.kubeletOptions([manifests]),
  });
  await manifests.start();
  await sync.start();
  await kubelet.start();
}, 300_000);

function recordApiStatus(p: Pod): void {
  const uid = p.metadata?.uid ?? "";
  const list = apiStatuses.get(uid) ?? [];
  if (p.status) list.push(p.status);
  apiStatuses.set(uid, list);
}

afterAll(async () => {
  await kubelet?.stop();
  await sync?.stop();
  await manifests?.stop();
  // Remove what the kubelet ran (it leaves pods running on stop, by design).
  if (client) {
    const { items } = await client.runtime.listPodSandbox({}).catch(() => ({ items: [] }));
    for (const s of items) {
      await client.runtime.stopPodSandbox({ podSandboxId: s.id }).catch(() => {});
      await client.runtime.removePodSandbox({ podSandboxId: s.id }).catch(() => {});
    }
    client.close();
  }
  await Promise.all([lab?.stop(), cp?.stop()]);
  for (const d of [manifestDir, rootDir, logsDir, hostDir])
    if (d) rmSync(d, { recursive: true, force: true });
}, 120_000);

function apiPodManifest() {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "api-web", namespace: "default", labels: { app: "api-web" } },
    spec: {
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 20,
      readinessGates: [{ conditionType: "example.com/gate" }],
      volumes: [{ name: "host", hostPath: { path: hostDir, type: "Directory" } }],
      containers: [
        {
          name: "web",
          image,
          // Exits 0 on SIGTERM, so the final phase is Succeeded.
          command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"],
          volumeMounts: [{ name: "host", mountPath: "/host" }],
          readinessProbe: { exec: { command: ["true"] }, periodSeconds: 1 },
          lifecycle: { preStop: { exec: { command: ["sh", "-c", "echo bye > /host/prestop"] } } },
        },
      ],
    },
  };
}

describe("pods from the API server", () => {
  let uid = "";
  let scheduledAt = "";
  let patchesAtStart = 0;

  it("runs a pod the scheduler bound to the node and reports its status to the API", async () => {
    const created = await admin.requestJson<Pod>("POST", "/api/v1/namespaces/default/pods", {
      body: apiPodManifest(),
    });
    uid = created.metadata?.uid ?? "";
    const scheduled = await waitFor("the scheduler to bind the pod", async () => {
      const p = await getPod("api-web");
      return p?.spec?.nodeName === NODE && condition(p, "PodScheduled")?.status === "True" ? p : undefined;
    });
    scheduledAt = condition(scheduled, "PodScheduled")?.lastTransitionTime ?? "";
    expect(scheduledAt).not.toBe("");

    const running = await waitFor("the pod to run with its containers in the API status", async () => {
      const p = await getPod("api-web");
      const cs = p?.status?.containerStatuses?.[0];
      return p?.status?.phase === "Running" && cs?.state?.running && p.status.podIP ? p : undefined;
    });
    const cs = running.status?.containerStatuses?.[0];
    expect(cs?.containerID).toMatch(/^containerd:\/\/[0-9a-f]{64}$/);
    expect(cs?.imageID).not.toBe("");
    expect(running.status?.podIP).toMatch(/^10\.86\./);
    expect(running.status?.hostIP).toBeTruthy();
    expect(running.status?.qosClass).toBe("BestEffort");
    // The readiness gate is not set yet: containers ready, the pod not.
    await waitFor(
      "ContainersReady",
      async () => condition(await getPod("api-web"), "ContainersReady")?.status === "True",
    );
    expect(condition(await getPod("api-web"), "Ready")?.status).toBe("False");

    // Someone else's condition (the readiness gate) is set; the kubelet keeps it and turns Ready.
    await admin.requestJson("PATCH", "/api/v1/namespaces/default/pods/api-web/status", {
      contentType: "application/strategic-merge-patch+json",
      body: { status: { conditions: [{ type: "example.com/gate", status: "True" }] } },
    });
    const ready = await waitFor("Ready with the readiness gate", async () => {
      const p = await getPod("api-web");
      return condition(p, "Ready")?.status === "True" ? p : undefined;
    });
    expect(condition(ready, "example.com/gate")?.status).toBe("True");
    // PodScheduled is the scheduler's: untouched.
    expect(condition(ready, "PodScheduled")?.lastTransitionTime).toBe(scheduledAt);
    // The runtime runs exactly one container for it.
    const objs = await runtimeObjects(uid);
    expect(objs.containers.filter((c) => c.state === ContainerState.CONTAINER_RUNNING)).toHaveLength(1);

    // Settle, then count the status patches this pod start took (reported for the benchmark).
    await new Promise((r) => setTimeout(r, 3000));
    patchesAtStart = sync?.statusManager.patchCount(uid) ?? 0;
    console.error(`[api-pods] status PATCH requests for one pod start (to Ready): ${patchesAtStart}`);
    expect(patchesAtStart).toBeGreaterThan(0);
    // No patch while nothing changes (periodic re-checks compare, they do not write).
    await new Promise((r) => setTimeout(r, 4500));
    expect(sync?.statusManager.patchCount(uid)).toBe(patchesAtStart);
  }, 180_000);

  it("kubectl delete pod: preStop runs, containers stop within the grace period, the kubelet deletes the object", async () => {
    const deletesBefore = sync?.statusManager.stats().deletes ?? 0;
    const t0 = Date.now();
    await cp.kubectl(["delete", "pod", "api-web", "--wait=false"]);
    await waitFor("the pod object to disappear", async () => (await getPod("api-web")) === undefined);
    const elapsedS = (Date.now() - t0) / 1000;
    console.error(`[api-pods] deletion took ${elapsedS.toFixed(1)} s (grace period 20 s)`);
    expect(elapsedS).toBeLessThan(20 + 15);
    expect(sync?.statusManager.stats().deletes).toBe(deletesBefore + 1);
    // Everything of the pod is gone from the runtime, and its preStop hook ran.
    const objs = await runtimeObjects(uid);
    expect(objs.containers).toHaveLength(0);
    expect(objs.sandboxes).toHaveLength(0);
    expect(readFileSync(path.join(hostDir, "prestop"), "utf8").trim()).toBe("bye");
    // The final status reached the API before the object went: terminal, container exited 0.
    const seen = apiStatuses.get(uid) ?? [];
    const last = seen[seen.length - 1];
    expect(last?.phase).toBe("Succeeded");
    expect(last?.containerStatuses?.[0]?.state?.terminated?.exitCode).toBe(0);
    // It never showed the terminal phase going back.
    const firstTerminal = seen.findIndex((s) => s.phase === "Succeeded" || s.phase === "Failed");
    expect(seen.slice(firstTerminal).every((s) => s.phase === "Succeeded")).toBe(true);
  }, 120_000);

  it("forgets the deleted pod", async () => {
    expect(kubelet?.pods().some((p) => p.metadata?.uid === uid)).toBe(false);
  });

  it("kills with the deletion's grace period, not the spec's (kubectl delete --grace-period)", async () => {
    const created = await admin.requestJson<Pod>("POST", "/api/v1/namespaces/default/pods", {
      body: {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "stubborn" },
        spec: {
          nodeName: NODE,
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 120,
          // Ignores SIGTERM: only SIGKILL at the end of the grace period stops it.
          containers: [
            { name: "c", image, command: ["sh", "-c", "trap '' TERM; while true; do sleep 0.2; done"] },
          ],
        },
      },
    });
    const stubbornUid = created.metadata?.uid ?? "";
    await waitFor("stubborn to run", async () => (await getPod("stubborn"))?.status?.phase === "Running");
    const t0 = Date.now();
    await cp.kubectl(["delete", "pod", "stubborn", "--grace-period=3", "--wait=false"]);
    await waitFor("stubborn to disappear", async () => (await getPod("stubborn")) === undefined);
    const elapsedS = (Date.now() - t0) / 1000;
    console.error(
      `[api-pods] deletion with --grace-period=3 took ${elapsedS.toFixed(1)} s (spec grace 120 s)`,
    );
    expect(elapsedS).toBeGreaterThanOrEqual(2.5);
    expect(elapsedS).toBeLessThan(60);
    const seen = apiStatuses.get(stubbornUid) ?? [];
    const last = seen[seen.length - 1];
    expect(last?.phase).toBe("Failed");
    expect(last?.containerStatuses?.[0]?.state?.terminated?.exitCode).toBe(137);
    expect((await runtimeObjects(stubbornUid)).containers).toHaveLength(0);
  }, 120_000);

  it("leaves a finished pod as it is until it is deleted", async () => {
    await admin.requestJson<Pod>("POST", "/api/v1/namespaces/default/pods", {
      body: {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "job-like" },
        spec: {
          nodeName: NODE,
          automountServiceAccountToken: false,
          restartPolicy: "Never",
          containers: [{ name: "c", image, command: ["sh", "-c", "exit 0"] }],
        },
      },
    });
    const done = await waitFor("the pod to succeed", async () => {
      const p = await getPod("job-like");
      return p?.status?.phase === "Succeeded" ? p : undefined;
    });
    expect(done.status?.containerStatuses?.[0]?.state?.terminated).toMatchObject({
      exitCode: 0,
      reason: "Completed",
    });
    await new Promise((r) => setTimeout(r, 4000));
    const still = await getPod("job-like");
    expect(still?.status?.phase).toBe("Succeeded");
    expect(still?.metadata?.deletionTimestamp).toBeUndefined();
    await cp.kubectl(["delete", "pod", "job-like", "--wait=false"]);
    await waitFor("the finished pod to disappear", async () => (await getPod("job-like")) === undefined);
  }, 120_000);
});

describe("mirror pods of static pods", () => {
  const name = `mirror-web-${NODE}`;

  function staticManifest(rev: string) {
    return {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "mirror-web", labels: { app: "mirror-web", rev } },
      spec: {
        terminationGracePeriodSeconds: 2,
        containers: [
          {
            name: "web",
            image,
            command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"],
            readinessProbe: { exec: { command: ["true"] }, periodSeconds: 1 },
          },
        ],
      },
    };
  }

  async function currentMirror(hash?: string): Promise<Pod | undefined> {
    const p = await getPod(name);
    if (!p || p.metadata?.deletionTimestamp) return undefined;
    if (hash && p.metadata?.annotations?.[ANNOTATION_CONFIG_MIRROR] !== hash) return undefined;
    return p;
  }

  function staticPod(): Pod | undefined {
    return kubelet?.pods().find((p) => p.metadata?.name === name);
  }

  let mirrorUid = "";

  it("creates the mirror pod, owned by the node, with the static pod's Running status", async () => {
    writeManifest("mirror-web.yaml", staticManifest("1"));
    const sp = await waitFor("the static pod", () => staticPod());
    const hash = sp.metadata?.annotations?.[ANNOTATION_CONFIG_HASH] ?? "";
    expect(hash).not.toBe("");
    const mirror = await waitFor("the mirror pod Running and Ready", async () => {
      const p = await currentMirror(hash);
      return p?.status?.phase === "Running" && condition(p, "Ready")?.status === "True" && p.status.podIP
        ? p
        : undefined;
    });
    mirrorUid = mirror.metadata?.uid ?? "";
    expect(mirror.metadata?.annotations?.[ANNOTATION_CONFIG_MIRROR]).toBe(hash);
    expect(mirror.metadata?.labels).toMatchObject({ app: "mirror-web", rev: "1" });
    expect(mirror.metadata?.ownerReferences).toEqual([
      { apiVersion: "v1", kind: "Node", name: NODE, uid: nodeUid, controller: true },
    ]);
    expect(mirror.spec?.nodeName).toBe(NODE);
    expect(mirror.status?.containerStatuses?.[0]?.containerID).toMatch(/^containerd:\/\//);
    expect(condition(mirror, "PodScheduled")?.status).toBe("True");
    // The mirror is not a pod the kubelet runs: one static pod, one running container.
    const sps = kubelet?.pods().filter((p) => p.metadata?.name === name) ?? [];
    expect(sps).toHaveLength(1);
    const objs = await runtimeObjects(sp.metadata?.uid ?? "");
    expect(objs.containers.filter((c) => c.state === ContainerState.CONTAINER_RUNNING)).toHaveLength(1);
    console.error(
      `[api-pods] status PATCH requests for the static pod start: ${sync?.statusManager.patchCount(sp.metadata?.uid ?? "")}`,
    );
  }, 120_000);

  it("recreates the mirror pod when it is deleted; the static pod keeps running", async () => {
    const sp = staticPod();
    const containersBefore = (await runtimeObjects(sp?.metadata?.uid ?? "")).containers.map((c) => c.id);
    await cp.kubectl(["delete", "pod", name, "--wait=false"]);
    const again = await waitFor("a new mirror pod", async () => {
      const p = await currentMirror();
      return p && p.metadata?.uid !== mirrorUid && p.status?.phase === "Running" ? p : undefined;
    });
    expect(again.metadata?.ownerReferences?.[0]?.uid).toBe(nodeUid);
    const containersAfter = (await runtimeObjects(sp?.metadata?.uid ?? "")).containers.map((c) => c.id);
    expect(containersAfter).toEqual(containersBefore);
    mirrorUid = again.metadata?.uid ?? "";
  }, 120_000);

  it("replaces the mirror pod when the manifest changes", async () => {
    const oldHash = staticPod()?.metadata?.annotations?.[ANNOTATION_CONFIG_HASH];
    writeManifest("mirror-web.yaml", staticManifest("2"));
    const sp = await waitFor("the new static pod", () => {
      const p = staticPod();
      return p && p.metadata?.annotations?.[ANNOTATION_CONFIG_HASH] !== oldHash ? p : undefined;
    });
    const hash = sp.metadata?.annotations?.[ANNOTATION_CONFIG_HASH] ?? "";
    const mirror = await waitFor("the mirror of the new manifest, Running", async () => {
      const p = await currentMirror(hash);
      return p?.status?.phase === "Running" && p.status.podIP ? p : undefined;
    });
    expect(mirror.metadata?.uid).not.toBe(mirrorUid);
    expect(mirror.metadata?.labels?.rev).toBe("2");
  }, 120_000);

  it("deletes the mirror pod when the manifest is removed", async () => {
    unlinkSync(path.join(manifestDir, "mirror-web.yaml"));
    await waitFor("the mirror pod to go", async () => (await getPod(name)) === undefined);
    await kubelet?.waitForTerminations();
    expect(existsSync(path.join(manifestDir, "mirror-web.yaml"))).toBe(false);
  }, 120_000);
});
