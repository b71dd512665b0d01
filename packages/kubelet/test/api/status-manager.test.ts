// The status manager against a small fake API server on loopback (real HTTP): what it writes,
// how often, and what it does on failures, 404s and finished deletions.
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { KubeApiClient, type Pod, SnapshotObjectSource } from "@worknode/core";
import { afterEach, describe, expect, it } from "vitest";
import { ANNOTATION_CONFIG_MIRROR } from "../../src/api/mirror-pod.js";
import { StatusManager } from "../../src/api/status-manager.js";
import type { PodStatus } from "../../src/pod-spec.js";
import { pod } from "../helpers.js";

interface Req {
  method: string;
  path: string;
  contentType: string | undefined;
  body: unknown;
}

/** A fake API server: records requests; `respond` decides the status code. */
class FakeApi {
  readonly requests: Req[] = [];
  respond: (req: Req) => number = () => 200;
  /** Metadata of the stored pod, echoed in PATCH responses. */
  storedMeta: Record<string, unknown> = {};
  private server: Server | undefined;
  port = 0;

  async start(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    this.server = server;
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    this.port = (server.address() as AddressInfo).port;
  }

  private async handle(req: IncomingMessage, res: import("node:http").ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString();
    const r: Req = {
      method: req.method ?? "",
      path: req.url ?? "",
      contentType: req.headers["content-type"],
      body: text ? JSON.parse(text) : undefined,
    };
    this.requests.push(r);
    const code = this.respond(r);
    res.writeHead(code, { "content-type": "application/json" });
    if (code >= 300) {
      res.end(JSON.stringify({ kind: "Status", code, reason: code === 404 ? "NotFound" : "InternalError" }));
      return;
    }
    // Echo a pod whose status is the patch (enough for the manager's bookkeeping).
    const patch = r.body as { status?: PodStatus; metadata?: { uid?: string } } | undefined;
    res.end(
      JSON.stringify({
        metadata: {
          ...this.storedMeta,
          uid: patch?.metadata?.uid,
          resourceVersion: String(this.requests.length + 100),
        },
        status: patch?.status ?? {},
      }),
    );
  }

  client(): KubeApiClient {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "c", server: `http://127.0.0.1:${this.port}`, skipTLSVerify: true }],
      users: [{ name: "u" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    return new KubeApiClient(kc);
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => this.server?.close(() => r()));
  }

  patches(): Req[] {
    return this.requests.filter((r) => r.method === "PATCH");
  }
}

function statusOf(ready: boolean, podIP = "10.0.0.5"): PodStatus {
  return {
    phase: "Running",
    podIP,
    podIPs: [{ ip: podIP }],
    conditions: [
      { type: "Ready", status: ready ? "True" : "False", lastTransitionTime: "2026-01-01T00:00:00Z" },
    ],
    containerStatuses: [
      {
        name: "app",
        image: "img",
        imageID: "id",
        ready,
        restartCount: 0,
        state: { running: { startedAt: "2026-01-01T00:00:00Z" } },
      },
    ],
  };
}

async function until(what: string, fn: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

let api: FakeApi;
let manager: StatusManager | undefined;

async function setup(apiPods: Pod[]): Promise<{ source: SnapshotObjectSource<Pod> }> {
  api = new FakeApi();
  await api.start();
  const source = new SnapshotObjectSource<Pod>({ kind: "Pod" });
  source.replace(apiPods);
  manager = new StatusManager({
    api: api.client(),
    apiPods: source,
    batchDelayMs: 20,
    retryInitialMs: 50,
    retryMaxMs: 200,
    resyncIntervalMs: 60_000,
  });
  manager.start();
  return { source };
}

afterEach(async () => {
  await manager?.stop();
  await api?.stop();
});

describe("StatusManager", () => {
  const apiPod = pod({}, { name: "web", uid: "u1", resourceVersion: "5" });

  it("patches pods/<name>/status once for a burst, with the latest status and the UID precondition", async () => {
    await setup([apiPod]);
    manager?.setPodStatus(apiPod, statusOf(false, "10.0.0.1"));
    manager?.setPodStatus(apiPod, statusOf(false, "10.0.0.2"));
    manager?.setPodStatus(apiPod, statusOf(true, "10.0.0.3"));
    await until("a patch", () => manager?.patchCount("u1") === 1);
    await new Promise((r) => setTimeout(r, 150));
    expect(api.patches()).toHaveLength(1);
    const p = api.patches()[0];
    expect(p?.path).toBe("/api/v1/namespaces/default/pods/web/status");
    expect(p?.contentType).toBe("application/strategic-merge-patch+json");
    expect(p?.body).toMatchObject({ metadata: { uid: "u1" }, status: { podIP: "10.0.0.3" } });
    expect(manager?.patchCount("u1")).toBe(1);
    // The same status again: nothing to write.
    manager?.setPodStatus(apiPod, statusOf(true, "10.0.0.3"));
    await new Promise((r) => setTimeout(r, 150));
    expect(api.patches()).toHaveLength(1);
  });

  it("retries a failed patch with backoff", async () => {
    await setup([apiPod]);
    let failures = 2;
    api.respond = (r) => (r.method === "PATCH" && failures-- > 0 ? 500 : 200);
    manager?.setPodStatus(apiPod, statusOf(true));
    await until("a successful patch", () => manager?.stats().patches === 1);
    expect(api.patches()).toHaveLength(3);
    expect(manager?.stats()).toMatchObject({ patches: 1, failures: 2 });
  });

  it("drops a pod the API server no longer has", async () => {
    await setup([apiPod]);
    api.respond = () => 404;
    manager?.setPodStatus(apiPod, statusOf(true));
    await until("the patch", () => api.patches().length === 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(api.patches()).toHaveLength(1);
    expect(manager?.getPodStatus("u1")).toBeUndefined();
  });

  it("writes the final status of a deleted pod, then deletes it with grace 0 and the UID precondition", async () => {
    const deleted = pod(
      {},
      { name: "web", uid: "u1", resourceVersion: "5", deletionTimestamp: "2026-01-01T00:00:00Z" },
    );
    await setup([{ ...deleted, status: statusOf(true) }]);
    api.storedMeta = { ...deleted.metadata };
    const final: PodStatus = {
      ...statusOf(false),
      phase: "Succeeded",
      containerStatuses: [
        {
          name: "app",
          image: "img",
          imageID: "id",
          ready: false,
          restartCount: 0,
          state: { terminated: { exitCode: 0, reason: "Completed" } },
        },
      ],
    };
    manager?.podTerminated(deleted, final);
    await until("the delete", () => manager?.stats().deletes === 1);
    const methods = api.requests.map((r) => r.method);
    expect(methods).toEqual(["PATCH", "DELETE"]);
    const del = api.requests[1];
    expect(del?.path).toBe("/api/v1/namespaces/default/pods/web");
    expect(del?.body).toEqual({
      kind: "DeleteOptions",
      apiVersion: "v1",
      gracePeriodSeconds: 0,
      preconditions: { uid: "u1" },
    });
    expect(manager?.stats().deletes).toBe(1);
  });

  it("writes a static pod's status to its mirror pod once it exists, with the mirror's UID", async () => {
    const staticPod = pod(
      {},
      {
        name: "web-node",
        uid: "hash-1",
        annotations: { "kubernetes.io/config.source": "file", "kubernetes.io/config.hash": "hash-1" },
      },
    );
    const { source } = await setup([]);
    manager?.setPodStatus(staticPod, statusOf(true));
    await new Promise((r) => setTimeout(r, 150));
    expect(api.patches()).toHaveLength(0);
    source.replace([
      pod(
        {},
        {
          name: "web-node",
          uid: "mirror-uid",
          resourceVersion: "9",
          annotations: { [ANNOTATION_CONFIG_MIRROR]: "hash-1" },
        },
      ),
    ]);
    await until("the mirror's patch", () => manager?.patchCount("hash-1") === 1);
    expect(api.patches()).toHaveLength(1);
    expect(api.patches()[0]?.body).toMatchObject({ metadata: { uid: "mirror-uid" } });
    expect(manager?.patchCount("hash-1")).toBe(1);
  });
});
