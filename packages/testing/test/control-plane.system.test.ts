import { execFile } from "node:child_process";
import { access } from "node:fs/promises";
import { promisify } from "node:util";
import {
  ApiException,
  AuthenticationV1Api,
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Node,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { type ControlPlane, startControlPlane } from "../src/control-plane.js";
import { isLoopbackAddress, listeningSocketsOf, listListeningSockets } from "../src/control-plane-sockets.js";
import { ensureControlPlaneBinaries } from "../src/go-build.js";

const run = promisify(execFile);

function nodeObject(name: string): V1Node {
  return { apiVersion: "v1", kind: "Node", metadata: { name, labels: { "kubernetes.io/hostname": name } } };
}

/** The HTTP status and Status message of a request (200 and "" when it succeeds). */
async function outcomeOf(promise: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await promise;
    return { code: 200, message: "" };
  } catch (error) {
    if (!(error instanceof ApiException)) throw error;
    const body: unknown = typeof error.body === "string" ? JSON.parse(error.body) : error.body;
    const message =
      typeof body === "object" && body !== null && "message" in body && typeof body.message === "string"
        ? body.message
        : "";
    return { code: error.code, message };
  }
}

async function eventually<T>(fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("real control plane on loopback", () => {
  let cp: ControlPlane;
  let failed = false;
  let stopped = false;

  beforeAll(async () => {
    // A cold build of all binaries takes tens of minutes on 2 cores; cached runs take milliseconds.
    const binaries = await ensureControlPlaneBinaries();
    cp = await startControlPlane({ binaries });
  }, 3_600_000);

  afterAll(async () => {
    if (cp && !stopped) await cp.stop({ keepLogs: true });
    if (failed && cp) console.error(`control plane logs kept in ${cp.logsDir}`);
  });

  const track = () =>
    onTestFailed(() => {
      failed = true;
    });

  it("runs the pinned release (apiserver and kubectl report it)", async () => {
    track();
    const out = JSON.parse(await cp.kubectl(["version", "-o", "json"])) as {
      clientVersion?: { gitVersion?: string };
      serverVersion?: { gitVersion?: string };
    };
    expect(cp.version).toMatch(/^v1\.\d+\.\d+$/);
    expect(out.serverVersion?.gitVersion).toBe(cp.version);
    expect(out.clientVersion?.gitVersion).toBe(cp.version);
    const apiserver = cp.components.find((c) => c.name === "kube-apiserver");
    expect(apiserver).toBeDefined();
  });

  it("starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler, listening on loopback only", async () => {
    track();
    expect(cp.components.map((c) => c.name)).toEqual([
      "etcd",
      "kube-apiserver",
      "kube-controller-manager",
      "kube-scheduler",
    ]);
    const sockets = await listeningSocketsOf(cp.components.map((c) => c.pid));
    expect(sockets.length).toBeGreaterThanOrEqual(cp.components.length);
    for (const s of sockets)
      expect(isLoopbackAddress(s.address), `${s.address}:${s.port} (pid ${s.pid})`).toBe(true);
    const ports = new Set(sockets.map((s) => s.port));
    for (const c of cp.components)
      for (const port of c.ports) expect(ports, `${c.name} port ${port}`).toContain(port);
    expect(cp.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it("stores and returns a namespace, a Service and an EndpointSlice", async () => {
    track();
    const core = cp.adminKubeConfig.makeApiClient(CoreV1Api);
    const discovery = cp.adminKubeConfig.makeApiClient(DiscoveryV1Api);
    await core.createNamespace({ body: { metadata: { name: "cp-test" } } });
    const created = await core.createNamespacedService({
      namespace: "cp-test",
      body: {
        metadata: { name: "web" },
        spec: { ports: [{ name: "http", port: 80, targetPort: 8080, protocol: "TCP" }] },
      },
    });
    const clusterIp = created.spec?.clusterIP ?? "";
    expect(clusterIp).toMatch(/^10\.96\.\d+\.\d+$/);
    await discovery.createNamespacedEndpointSlice({
      namespace: "cp-test",
      body: {
        metadata: { name: "web-1", labels: { "kubernetes.io/service-name": "web" } },
        addressType: "IPv4",
        endpoints: [{ addresses: ["10.244.1.5"], conditions: { ready: true }, nodeName: "worker-a" }],
        ports: [{ name: "http", port: 8080, protocol: "TCP" }],
      },
    });

    const svc = await core.readNamespacedService({ name: "web", namespace: "cp-test" });
    expect(svc.spec?.clusterIP).toBe(clusterIp);
    expect(svc.spec?.ports?.[0]?.targetPort).toBe(8080);
    const slice = await discovery.readNamespacedEndpointSlice({ name: "web-1", namespace: "cp-test" });
    expect(slice.endpoints[0]?.addresses).toEqual(["10.244.1.5"]);
    expect(slice.ports?.[0]?.port).toBe(8080);
    const listed = await discovery.listNamespacedEndpointSlice({
      namespace: "cp-test",
      labelSelector: "kubernetes.io/service-name=web",
    });
    expect(listed.items.map((s) => s.metadata?.name)).toContain("web-1");
    // kubectl sees the same objects.
    expect(
      await cp.kubectl(["get", "service", "web", "-n", "cp-test", "-o", "jsonpath={.spec.clusterIP}"]),
    ).toBe(clusterIp);
  });

  it("lets a node register its own Node but not another node's (NodeRestriction)", async () => {
    track();
    const kc = new KubeConfig();
    kc.loadFromFile(await cp.nodeCredentials("worker-a"));
    const asNode = kc.makeApiClient(CoreV1Api);

    const own = await asNode.createNode({ body: nodeObject("worker-a") });
    expect(own.metadata?.name).toBe("worker-a");
    // Authorized (the Node authorizer lets nodes create Nodes), then refused by NodeRestriction admission.
    const other = await outcomeOf(asNode.createNode({ body: nodeObject("worker-b") }));
    expect(other.code).toBe(403);
    expect(other.message).toContain('node "worker-a" is not allowed to modify node "worker-b"');
    // It cannot relabel its own Node into the node-restriction.kubernetes.io/ prefix either.
    const relabel = await outcomeOf(
      asNode.patchNode(
        {
          name: "worker-a",
          body: { metadata: { labels: { "node-restriction.kubernetes.io/role": "admin" } } },
        },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      ),
    );
    expect(relabel.code).toBe(403);
    expect(relabel.message).toContain("node-restriction.kubernetes.io/");
    // The Node authorizer keeps it away from secrets no pod of it references.
    const secrets = await outcomeOf(asNode.listNamespacedSecret({ namespace: "kube-system" }));
    expect(secrets.code).toBe(403);
    // The admin sees worker-a only.
    const nodes = await cp.adminKubeConfig.makeApiClient(CoreV1Api).listNode();
    expect(nodes.items.map((n) => n.metadata?.name)).toEqual(["worker-a"]);
  });

  it("authenticates the bootstrap token as a bootstrapper", async () => {
    track();
    expect(cp.bootstrapToken).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    const kc = new KubeConfig();
    kc.loadFromFile(cp.bootstrapKubeconfigPath ?? "");
    const auth = kc.makeApiClient(AuthenticationV1Api);
    const review = await eventually(() => auth.createSelfSubjectReview({ body: {} }));
    const id = cp.bootstrapToken?.split(".")[0];
    expect(review.status?.userInfo?.username).toBe(`system:bootstrap:${id}`);
    expect(review.status?.userInfo?.groups).toContain("system:bootstrappers");
  });

  it("runs a scheduler that reports a pod as unschedulable without schedulable nodes", async () => {
    track();
    const core = cp.adminKubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespacedPod({
      namespace: "cp-test",
      body: {
        metadata: { name: "pending" },
        spec: { containers: [{ name: "c", image: "registry.invalid/none:1" }] },
      },
    });
    const condition = await eventually(async () => {
      const pod = await core.readNamespacedPod({ name: "pending", namespace: "cp-test" });
      const c = pod.status?.conditions?.find((x) => x.type === "PodScheduled");
      if (!c) throw new Error("no PodScheduled condition yet");
      return c;
    });
    expect(condition.status).toBe("False");
    expect(condition.reason).toBe("Unschedulable");
  });

  it("stops every process, frees every port and removes its directory", async () => {
    track();
    const pids = cp.components.map((c) => c.pid);
    const ports = cp.components.flatMap((c) => c.ports);
    stopped = true;
    await cp.stop({ keepLogs: failed });
    for (const pid of pids) expect(pidAlive(pid), `pid ${pid}`).toBe(false);
    const listening = new Set((await listListeningSockets()).map((s) => s.port));
    for (const port of ports) expect(listening.has(port), `port ${port}`).toBe(false);
    if (!failed) await expect(access(cp.workDir)).rejects.toThrow();
    // No stray control-plane process of ours survives (by pid; the binaries live in the cache dir).
    const { stdout } = await run("ps", ["-eo", "pid=,args="]);
    const strays = stdout.split("\n").filter((line) => line.includes(cp.workDir));
    expect(strays).toEqual([]);
  });
});
