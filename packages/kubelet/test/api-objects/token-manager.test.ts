import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { FakeClock, KubeApiClient, type Pod } from "@worknode/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiPodObjectProvider } from "../../src/api-objects/api-provider.js";
import { PodObjectError, StandalonePodObjectProvider } from "../../src/api-objects/provider.js";
import { TokenManager, tokenRequestFor, tokenRequiresRefresh } from "../../src/api-objects/token-manager.js";

const HOUR = 3600_000;
const pod: Pod = {
  metadata: { name: "web", namespace: "ns", uid: "uid-1" },
  spec: { serviceAccountName: "robot", containers: [] },
};

describe("token refresh rule", () => {
  it("refreshes once within 20 % of the lifetime of expiry", () => {
    const t = { token: "x", expiresAtMs: 10 * HOUR, expirationSeconds: 3600 };
    expect(tokenRequiresRefresh(t, 9 * HOUR + 0.79 * HOUR)).toBe(false);
    expect(tokenRequiresRefresh(t, 9 * HOUR + 0.81 * HOUR)).toBe(true);
    expect(tokenRequiresRefresh(t, 9 * HOUR + 0.79 * HOUR, 0.02 * HOUR)).toBe(true);
  });

  it("refreshes tokens older than 24 h however long they live", () => {
    const t = { token: "x", expiresAtMs: 48 * HOUR, expirationSeconds: 48 * 3600 };
    expect(tokenRequiresRefresh(t, 23 * HOUR)).toBe(false);
    expect(tokenRequiresRefresh(t, 24 * HOUR + 1)).toBe(true);
  });

  it("binds the TokenRequest to the pod with the projection's audience and lifetime", () => {
    expect(tokenRequestFor(pod, { audience: "vault", expirationSeconds: 600 }).spec).toEqual({
      audiences: ["vault"],
      expirationSeconds: 600,
      boundObjectRef: { apiVersion: "v1", kind: "Pod", name: "web", uid: "uid-1" },
    });
    expect(tokenRequestFor(pod, {}).spec.audiences).toEqual([]);
    expect(tokenRequestFor(pod, {}).spec.expirationSeconds).toBe(3600);
  });
});

describe("API-backed objects over real HTTP", () => {
  let server: Server;
  const requests: Array<{ method: string; url: string; body: string }> = [];
  let configMapValue = "v1";
  let issued = 0;
  const clock = new FakeClock(Date.parse("2026-01-01T00:00:00Z"));

  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res) => {
      let body = "";
      req.on("data", (c: Buffer) => {
        body += c.toString("utf8");
      });
      req.on("end", () => {
        requests.push({ method: req.method ?? "", url: req.url ?? "", body });
        res.setHeader("Content-Type", "application/json");
        if (req.url === "/api/v1/namespaces/ns/configmaps/cfg") {
          res.end(JSON.stringify({ metadata: { name: "cfg" }, data: { k: configMapValue } }));
        } else if (req.url === "/api/v1/namespaces/ns/serviceaccounts/robot/token" && req.method === "POST") {
          const spec = (JSON.parse(body) as { spec: { expirationSeconds: number } }).spec;
          issued++;
          res.end(
            JSON.stringify({
              spec,
              status: {
                token: `token-${issued}`,
                expirationTimestamp: new Date(clock.now() + spec.expirationSeconds * 1000).toISOString(),
              },
            }),
          );
        } else if (req.url === "/api/v1/namespaces/ns/secrets/locked") {
          res.statusCode = 403;
          res.end(
            JSON.stringify({
              kind: "Status",
              code: 403,
              reason: "Forbidden",
              message: "no relationship found",
            }),
          );
        } else {
          res.statusCode = 404;
          res.end(JSON.stringify({ kind: "Status", code: 404, reason: "NotFound", message: "not found" }));
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  });

  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  function client(): KubeApiClient {
    const kc = new KubeConfig();
    const port = (server.address() as AddressInfo).port;
    kc.loadFromOptions({
      clusters: [{ name: "c", server: `http://127.0.0.1:${port}` }],
      users: [{ name: "u" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    return new KubeApiClient(kc);
  }

  it("GETs each object, reuses it for the TTL, then reads it again", async () => {
    const p = new ApiPodObjectProvider({ client: client(), ttlMs: 1000, clock });
    expect((await p.getConfigMap("ns", "cfg")).data).toEqual({ k: "v1" });
    configMapValue = "v2";
    expect((await p.getConfigMap("ns", "cfg")).data).toEqual({ k: "v1" });
    await clock.advance(1001);
    expect((await p.getConfigMap("ns", "cfg")).data).toEqual({ k: "v2" });
    expect(requests.filter((r) => r.url.endsWith("/configmaps/cfg"))).toHaveLength(2);
  });

  it("tells missing objects from forbidden ones", async () => {
    const p = new ApiPodObjectProvider({ client: client(), clock });
    const missing = await p.getSecret("ns", "gone").catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(PodObjectError);
    expect((missing as PodObjectError).notFound).toBe(true);
    expect((missing as PodObjectError).message).toBe('secret "gone" not found');
    const locked = await p.getSecret("ns", "locked").catch((e: unknown) => e);
    expect((locked as PodObjectError).reason).toBe("Forbidden");
  });

  it("reads a missing object again at the next request, so that it is found once created", async () => {
    const p = new ApiPodObjectProvider({ client: client(), clock });
    const reads = () => requests.filter((r) => r.url.endsWith("/secrets/gone")).length;
    const before = reads();
    await p.getSecret("ns", "gone").catch(() => undefined);
    await p.getSecret("ns", "gone").catch(() => undefined);
    expect(reads() - before).toBe(2);
  });

  it("requests bound tokens and refreshes them after 80 % of their lifetime", async () => {
    const tokens = new TokenManager({ client: client(), clock, random: () => 0 });
    expect(await tokens.token(pod, { expirationSeconds: 3600 })).toBe("token-1");
    const sent = JSON.parse(requests.at(-1)?.body ?? "{}") as { spec: { boundObjectRef: { uid: string } } };
    expect(sent.spec.boundObjectRef.uid).toBe("uid-1");
    await clock.advance(0.7 * HOUR);
    expect(await tokens.token(pod, { expirationSeconds: 3600 })).toBe("token-1");
    await clock.advance(0.11 * HOUR);
    expect(await tokens.token(pod, { expirationSeconds: 3600 })).toBe("token-2");
    expect(tokens.size).toBe(1);
    tokens.forgetPod("uid-1");
    expect(tokens.size).toBe(0);
  });

  it("fails every read with a clear reason without an API server", async () => {
    const p = new StandalonePodObjectProvider();
    await expect(p.getConfigMap("ns", "cfg")).rejects.toThrow(/no kubeClient defined/);
    await expect(p.serviceAccountToken(pod)).rejects.toThrow(/without an API server/);
    expect(await p.services()).toEqual([]);
  });
});
