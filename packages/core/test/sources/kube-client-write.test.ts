import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import { KubeApiClient } from "../../src/sources/kube-client.js";
import { ApiStatusError } from "../../src/util/errors.js";

interface Seen {
  method: string;
  url: string;
  contentType: string | undefined;
  body: string;
}

let server: Server | undefined;

afterEach(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function start(respond: (seen: Seen) => { status: number; body: string }): Promise<{
  client: KubeApiClient;
  seen: Seen[];
}> {
  const seen: Seen[] = [];
  server = createServer((req, res) => {
    void readBody(req).then((body) => {
      const s = {
        method: req.method ?? "",
        url: req.url ?? "",
        contentType: req.headers["content-type"],
        body,
      };
      seen.push(s);
      const out = respond(s);
      res.writeHead(out.status, { "Content-Type": "application/json" });
      res.end(out.body);
    });
  });
  await new Promise<void>((r) => server?.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as AddressInfo).port;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${port}` }],
    users: [{ name: "u", token: "t0ken" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return { client: new KubeApiClient(kc), seen };
}

describe("KubeApiClient writes", () => {
  it("POSTs a JSON body and decodes the JSON answer", async () => {
    const { client, seen } = await start((s) => ({ status: 201, body: s.body }));
    const created = await client.requestJson<{ metadata: { name: string } }>("POST", "/api/v1/nodes", {
      body: { kind: "Node", metadata: { name: "n1" } },
    });
    expect(created.metadata.name).toBe("n1");
    expect(seen[0]).toMatchObject({ method: "POST", url: "/api/v1/nodes", contentType: "application/json" });
    expect(JSON.parse(seen[0]?.body ?? "")).toEqual({ kind: "Node", metadata: { name: "n1" } });
  });

  it("PATCHes with the given patch type and query", async () => {
    const { client, seen } = await start(() => ({ status: 200, body: '{"ok":true}' }));
    await client.requestJson("PATCH", "/api/v1/namespaces/d/pods/p/status", {
      body: { status: { phase: "Running" } },
      contentType: "application/strategic-merge-patch+json",
      query: { fieldManager: "worknode" },
    });
    expect(seen[0]).toMatchObject({
      method: "PATCH",
      url: "/api/v1/namespaces/d/pods/p/status?fieldManager=worknode",
      contentType: "application/strategic-merge-patch+json",
    });
  });

  it("throws ApiStatusError with the Status reason of a refused write", async () => {
    const { client } = await start(() => ({
      status: 409,
      body: JSON.stringify({ kind: "Status", code: 409, reason: "Conflict", message: "uid mismatch" }),
    }));
    const err = await client
      .requestJson("DELETE", "/api/v1/namespaces/d/pods/p", { body: { preconditions: { uid: "u1" } } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiStatusError);
    expect((err as ApiStatusError).status).toBe(409);
    expect((err as ApiStatusError).reason).toBe("Conflict");
    expect((err as ApiStatusError).message).toContain("DELETE /api/v1/namespaces/d/pods/p");
  });

  it("resolves undefined for an empty body", async () => {
    const { client } = await start(() => ({ status: 200, body: "" }));
    expect(await client.requestJson("DELETE", "/x")).toBeUndefined();
  });
});
