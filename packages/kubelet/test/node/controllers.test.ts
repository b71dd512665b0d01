// The registrar, lease controller and status updater against a fake API server on loopback
// (plain HTTP): retries, 409 handling and the post-only-when-needed rule, with short periods.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { KubeApiClient, type Lease, type Node } from "@worknode/core";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  buildNode,
  buildNodeStatus,
  type MachineInfo,
  NodeController,
  type NodeHealth,
  NodeLeaseController,
  NodeRegistrar,
  NodeStatusUpdater,
} from "../../src/index.js";

interface Recorded {
  method: string;
  path: string;
  contentType: string | undefined;
  body: unknown;
}

class FakeApi {
  readonly requests: Recorded[] = [];
  nodes = new Map<string, Node>();
  leases = new Map<string, Lease>();
  failNext: number[] = [];
  conflictNextLeasePut = 0;
  private rv = 1;
  private server: Server | undefined;
  url = "";

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server?.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()));
  }

  client(): KubeApiClient {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "c", server: this.url }],
      users: [{ name: "u", token: "t" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    return new KubeApiClient(kc);
  }

  private send(res: ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { "Content-Type": "application/json" });
    res.end(JSON.stringify(body));
  }

  private status(res: ServerResponse, code: number, reason: string): void {
    this.send(res, code, {
      kind: "Status",
      apiVersion: "v1",
      status: "Failure",
      reason,
      code,
      message: reason,
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let text = "";
    for await (const chunk of req) text += chunk;
    const body = text ? JSON.parse(text) : undefined;
    const path = new URL(req.url ?? "/", this.url).pathname;
    const method = req.method ?? "GET";
    this.requests.push({ method, path, contentType: req.headers["content-type"], body });
    const fail = this.failNext.shift();
    if (fail) return this.status(res, fail, "InternalError");
    const nodeMatch = /^\/api\/v1\/nodes\/([^/]+)(\/status)?$/.exec(path);
    if (method === "POST" && path === "/api/v1/nodes") {
      const node = body as Node;
      const name = node.metadata?.name ?? "";
      if (this.nodes.has(name)) return this.status(res, 409, "AlreadyExists");
      const stored = {
        ...node,
        metadata: { ...node.metadata, uid: `uid-${name}`, resourceVersion: String(this.rv++) },
      };
      this.nodes.set(name, stored);
      return this.send(res, 201, stored);
    }
    if (nodeMatch) {
      const name = decodeURIComponent(nodeMatch[1] ?? "");
      const node = this.nodes.get(name);
      if (!node) return this.status(res, 404, "NotFound");
      if (method === "GET") return this.send(res, 200, node);
      if (method === "PATCH" && !nodeMatch[2]) {
        const patch = body as {
          metadata: { labels?: Record<string, string>; annotations?: Record<string, string> };
        };
        node.metadata = {
          ...node.metadata,
          labels: { ...node.metadata?.labels, ...patch.metadata.labels },
          annotations: { ...node.metadata?.annotations, ...patch.metadata.annotations },
          resourceVersion: String(this.rv++),
        };
        return this.send(res, 200, node);
      }
      if (method === "PATCH") return this.send(res, 200, node);
    }
    const leaseMatch =
      /^\/apis\/coordination\.k8s\.io\/v1\/namespaces\/kube-node-lease\/leases(?:\/([^/]+))?$/.exec(path);
    if (leaseMatch) {
      const name = leaseMatch[1];
      if (method === "POST") {
        const lease = { ...(body as Lease) };
        lease.metadata = { ...lease.metadata, resourceVersion: String(this.rv++) };
        this.leases.set(lease.metadata?.name ?? "", lease);
        return this.send(res, 201, lease);
      }
      const lease = name ? this.leases.get(name) : undefined;
      if (!lease || !name) return this.status(res, 404, "NotFound");
      if (method === "GET") return this.send(res, 200, lease);
      if (method === "PUT") {
        const update = body as Lease;
        if (this.conflictNextLeasePut > 0) {
          this.conflictNextLeasePut--;
          lease.metadata = { ...lease.metadata, resourceVersion: String(this.rv++) }; // someone else wrote it
        }
        if (update.metadata?.resourceVersion !== lease.metadata?.resourceVersion)
          return this.status(res, 409, "Conflict");
        const stored = { ...update, metadata: { ...update.metadata, resourceVersion: String(this.rv++) } };
        this.leases.set(name, stored);
        return this.send(res, 200, stored);
      }
    }
    this.status(res, 404, "NotFound");
  }
}

const machine: MachineInfo = {
  machineID: "m",
  systemUUID: "s",
  bootID: "b",
  kernelVersion: "6.1.0",
  osImage: "Debian",
  operatingSystem: "linux",
  architecture: "amd64",
  hostname: "h",
  cpuCount: 2,
  memoryBytes: 4 * 1024 ** 3,
  rootFsBytes: 10 * 1024 ** 3,
};
const runtime = { runtimeName: "containerd", runtimeVersion: "v1.6.20" };
const desired = () =>
  buildNode({ nodeName: "n", nodeIPs: ["10.0.0.1"], machine, runtime, labels: { mine: "1" } });

let api: FakeApi;
beforeEach(async () => {
  api = new FakeApi();
  await api.start();
});
afterEach(async () => {
  await api.stop();
});

describe("NodeRegistrar", () => {
  it("creates the Node, retrying failures with backoff", async () => {
    api.failNext = [500, 500];
    const registrar = new NodeRegistrar({
      api: api.client(),
      desiredNode: desired,
      initialBackoffMs: 5,
      maxBackoffMs: 10,
    });
    const node = await registrar.register();
    expect(node.metadata?.uid).toBe("uid-n");
    expect(api.requests.filter((r) => r.method === "POST")).toHaveLength(3);
  });

  it("reconciles an existing Node with a guarded merge patch and keeps foreign labels", async () => {
    api.nodes.set("n", {
      metadata: { name: "n", uid: "old", resourceVersion: "9", labels: { foreign: "x", mine: "0" } },
    });
    const node = await new NodeRegistrar({ api: api.client(), desiredNode: desired }).register();
    expect(node.metadata?.uid).toBe("old");
    expect(node.metadata?.labels).toMatchObject({ foreign: "x", mine: "1", "kubernetes.io/hostname": "n" });
    const patch = api.requests.find((r) => r.method === "PATCH");
    expect(patch?.contentType).toBe("application/merge-patch+json");
    expect(patch?.body).toMatchObject({ metadata: { resourceVersion: "9" } });
  });

  it("stops retrying when aborted", async () => {
    api.failNext = Array(1000).fill(500);
    const controller = new AbortController();
    const registering = new NodeRegistrar({
      api: api.client(),
      desiredNode: desired,
      initialBackoffMs: 5,
      maxBackoffMs: 5,
    }).register(controller.signal);
    await vi.waitFor(() => expect(api.requests.length).toBeGreaterThan(2), { timeout: 5_000 });
    controller.abort();
    await expect(registering).rejects.toThrow(/stopped/);
  });
});

describe("NodeLeaseController", () => {
  it("creates the lease, then renews it with its resourceVersion, re-reading it on a conflict", async () => {
    const leases = new NodeLeaseController({
      api: api.client(),
      nodeName: "n",
      owner: () => ({ name: "n", uid: "u" }),
    });
    const created = await leases.renew();
    expect(api.requests.map((r) => r.method)).toEqual(["GET", "POST", "PUT"]);
    expect(created.spec).toMatchObject({ holderIdentity: "n", leaseDurationSeconds: 40 });
    expect(created.metadata?.ownerReferences).toEqual([
      { apiVersion: "v1", kind: "Node", name: "n", uid: "u" },
    ]);
    api.requests.length = 0;
    api.conflictNextLeasePut = 1;
    const renewed = await leases.renew();
    expect(api.requests.map((r) => r.method)).toEqual(["PUT", "GET", "PUT"]);
    expect(renewed.metadata?.resourceVersion).toBe(api.leases.get("n")?.metadata?.resourceVersion);
  });

  it("keeps renewing in the background and retries failures", async () => {
    const leases = new NodeLeaseController({ api: api.client(), nodeName: "n", renewIntervalMs: 20 });
    api.failNext = [500];
    leases.start();
    await vi.waitFor(
      () => expect(api.requests.filter((r) => r.method === "PUT").length).toBeGreaterThanOrEqual(3),
      { timeout: 5_000 },
    );
    await leases.stop();
    // A renewal already on the wire when stop() aborted it may still reach the server: let it land,
    // then no new renewal may start.
    await new Promise((r) => setTimeout(r, 50));
    const puts = api.requests.filter((r) => r.method === "PUT").length;
    await new Promise((r) => setTimeout(r, 100));
    expect(api.requests.filter((r) => r.method === "PUT").length).toBe(puts);
  });
});

describe("NodeStatusUpdater", () => {
  const healthy: NodeHealth = {
    runtime: {
      ok: true,
      conditions: [
        { type: "RuntimeReady", status: true, reason: "", message: "" },
        { type: "NetworkReady", status: true, reason: "", message: "" },
      ],
    },
    memoryPressure: false,
    diskPressure: false,
    pidPressure: false,
  };

  it("posts a strategic merge patch first, then only on change or on request when something changed", async () => {
    api.nodes.set("n", desired());
    let health = healthy;
    const updater = new NodeStatusUpdater({
      api: api.client(),
      nodeName: "n",
      health: async () => health,
      status: async () => buildNodeStatus({ nodeName: "n", nodeIPs: ["10.0.0.1"], machine, runtime }),
      updateFrequencyMs: 10,
      reportFrequencyMs: 3_600_000,
    });
    const posts = () => api.requests.filter((r) => r.method === "PATCH");
    updater.start();
    await vi.waitFor(() => expect(posts()).toHaveLength(1), { timeout: 5_000 });
    expect(posts()[0]?.path).toBe("/api/v1/nodes/n/status");
    expect(posts()[0]?.contentType).toBe("application/strategic-merge-patch+json");
    await new Promise((r) => setTimeout(r, 100)); // ~10 computations, nothing changed
    expect(posts()).toHaveLength(1);
    health = { ...healthy, runtime: { ok: false, error: "down" } };
    updater.requestUpdate();
    await vi.waitFor(() => expect(posts()).toHaveLength(2), { timeout: 5_000 });
    type StatusPatch = { status: { conditions: { type: string; status: string; message: string }[] } };
    const second = posts()[1]?.body as StatusPatch | undefined;
    const ready = second?.status.conditions.find((c) => c.type === "Ready");
    expect(ready).toMatchObject({ status: "False", message: "container runtime is down: down" });
    await updater.stop();
  });

  it("posts when the report frequency passed even if nothing changed", async () => {
    api.nodes.set("n", desired());
    const updater = new NodeStatusUpdater({
      api: api.client(),
      nodeName: "n",
      health: async () => healthy,
      status: async () => buildNodeStatus({ nodeName: "n", nodeIPs: [], machine, runtime }),
      updateFrequencyMs: 10,
      reportFrequencyMs: 40,
    });
    updater.start();
    await vi.waitFor(
      () => expect(api.requests.filter((r) => r.method === "PATCH").length).toBeGreaterThanOrEqual(3),
      { timeout: 5_000 },
    );
    await updater.stop();
  });
});

describe("NodeController", () => {
  const nodeRuntime = {
    version: async () => runtime,
    status: async () => [
      { type: "RuntimeReady", status: true, reason: "", message: "" },
      { type: "NetworkReady", status: true, reason: "", message: "" },
    ],
  };

  it("registers, then renews the lease and posts status, and stop() leaves the Node", async () => {
    const c = new NodeController({
      api: api.client(),
      nodeName: "n",
      runtime: nodeRuntime,
      nodeIPs: ["10.0.0.1"],
      machineInfo: async () => machine,
      statusUpdateFrequencyMs: 10,
    });
    c.start();
    const node = await c.registered();
    expect(node.metadata?.uid).toBe("uid-n");
    await vi.waitFor(
      () => {
        expect(api.leases.get("n")?.metadata?.ownerReferences?.[0]?.uid).toBe("uid-n");
        expect(c.status?.conditions?.find((x) => x.type === "Ready")?.status).toBe("True");
      },
      { timeout: 5_000 },
    );
    await c.stop();
    expect(api.requests.some((r) => r.method === "DELETE")).toBe(false);
    expect(api.nodes.has("n")).toBe(true);
  });

  it("rejects registered() when stopped before the node could register", async () => {
    api.failNext = Array(1000).fill(500);
    const c = new NodeController({
      api: api.client(),
      nodeName: "n",
      runtime: nodeRuntime,
      nodeIPs: [],
      machineInfo: async () => machine,
    });
    c.start();
    const registered = c.registered();
    await vi.waitFor(() => expect(api.requests.length).toBeGreaterThan(0), { timeout: 5_000 });
    await c.stop();
    await expect(registered).rejects.toThrow(/stopped before the node was registered/);
  });
});
