import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { KubeApiClient } from "@worknode/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiEventRecorder } from "../../src/events/api-recorder.js";
import { podReference } from "../../src/events/event-recorder.js";

interface Seen {
  method: string;
  url: string;
  contentType: string;
  body: Record<string, unknown>;
}

describe("ApiEventRecorder over real HTTP", () => {
  let server: Server;
  const seen: Seen[] = [];
  let patchStatus = 200;

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => {
        body += c.toString("utf8");
      });
      req.on("end", () => {
        seen.push({
          method: req.method ?? "",
          url: req.url ?? "",
          contentType: req.headers["content-type"] ?? "",
          body: JSON.parse(body || "{}") as Record<string, unknown>,
        });
        res.setHeader("Content-Type", "application/json");
        if (req.method === "PATCH" && patchStatus === 404) {
          res.statusCode = 404;
          res.end(JSON.stringify({ kind: "Status", code: 404, reason: "NotFound" }));
          return;
        }
        res.statusCode = req.method === "POST" ? 201 : 200;
        res.end(body);
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  });

  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  function recorder(): ApiEventRecorder {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "c", server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }],
      users: [{ name: "u" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    return new ApiEventRecorder({ client: new KubeApiClient(kc), host: "node-1", retryDelayMs: 10 });
  }

  const pod = {
    metadata: { name: "web", namespace: "ns", uid: "u1" },
    spec: { containers: [{ name: "app" }] },
  };

  it("posts a new event, then patches its count; a vanished event is created again with its count", async () => {
    const r = recorder();
    const ref = podReference(pod, "app");
    r.event(ref, "Warning", "BackOff", "Back-off restarting failed container app in pod web_ns(u1)");
    r.event(ref, "Warning", "BackOff", "Back-off restarting failed container app in pod web_ns(u1)");
    await r.flush();
    expect(seen.map((s) => s.method)).toEqual(["POST", "PATCH"]);
    const created = seen[0] as Seen;
    expect(created.url).toBe("/api/v1/namespaces/ns/events");
    expect(created.body).toMatchObject({
      kind: "Event",
      reason: "BackOff",
      type: "Warning",
      count: 1,
      source: { component: "kubelet", host: "node-1" },
      reportingComponent: "kubelet",
      reportingInstance: "node-1",
      involvedObject: {
        kind: "Pod",
        name: "web",
        namespace: "ns",
        uid: "u1",
        fieldPath: "spec.containers{app}",
      },
    });
    const name = (created.body.metadata as { name: string }).name;
    expect(name).toMatch(/^web\.[0-9a-f]+$/);
    const patch = seen[1] as Seen;
    expect(patch.url).toBe(`/api/v1/namespaces/ns/events/${name}`);
    expect(patch.contentType).toBe("application/strategic-merge-patch+json");
    expect(patch.body.count).toBe(2);

    patchStatus = 404;
    r.event(ref, "Warning", "BackOff", "Back-off restarting failed container app in pod web_ns(u1)");
    await r.flush();
    expect(seen.slice(2).map((s) => s.method)).toEqual(["PATCH", "POST"]);
    expect((seen[3] as Seen).body.count).toBe(3);
    patchStatus = 200;
    r.event(ref, "Warning", "BackOff", "Back-off restarting failed container app in pod web_ns(u1)");
    await r.flush();
    expect(seen.slice(4).map((s) => s.method)).toEqual(["PATCH"]);
    expect((seen[4] as Seen).body.count).toBe(4);
  });
});
