import { KubeConfig } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import { IdleWatchdog } from "../../src/sources/informer-watchdog.js";
import {
  apiStatusError,
  isResourceExpired,
  KUBE_RESOURCES,
  KubeApiClient,
  resourceApiVersion,
  resourceLabel,
  resourcePath,
} from "../../src/sources/kube-client.js";
import { FakeClock } from "../../src/util/clock.js";
import { AbortedError, ApiStatusError, ConfigError, UnavailableError } from "../../src/util/errors.js";
import { FakeApiServer, waitFor } from "../helpers/fake-apiserver.js";

describe("resource paths", () => {
  it("builds core and group paths, namespaced or not", () => {
    expect(resourcePath(KUBE_RESOURCES.services)).toBe("/api/v1/services");
    expect(resourcePath(KUBE_RESOURCES.services, "kube-system")).toBe(
      "/api/v1/namespaces/kube-system/services",
    );
    expect(resourcePath(KUBE_RESOURCES.endpointSlices, "default")).toBe(
      "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
    );
    expect(resourcePath(KUBE_RESOURCES.nodes)).toBe("/api/v1/nodes");
    expect(() => resourcePath(KUBE_RESOURCES.nodes, "default")).toThrow(ConfigError);
    expect(resourceApiVersion(KUBE_RESOURCES.endpointSlices)).toBe("discovery.k8s.io/v1");
    expect(resourceApiVersion(KUBE_RESOURCES.pods)).toBe("v1");
    expect(resourceLabel(KUBE_RESOURCES.pods)).toBe("core/v1/pods");
  });
});

describe("API status errors", () => {
  it("takes code, reason and message from a Status body", () => {
    const err = apiStatusError(
      200,
      { kind: "Status", code: 410, reason: "Expired", message: "too old resource version: 5 (9)" },
      "watch",
    );
    expect(err).toBeInstanceOf(ApiStatusError);
    expect(err.status).toBe(410);
    expect(err.reason).toBe("Expired");
    expect(err.message).toContain("too old resource version");
    expect(isResourceExpired(err)).toBe(true);
  });

  it("recognises every spelling of an expired resourceVersion", () => {
    expect(isResourceExpired(new ApiStatusError(410, undefined, "gone"))).toBe(true);
    expect(isResourceExpired(new ApiStatusError(500, "Gone", "x"))).toBe(true);
    expect(isResourceExpired(new ApiStatusError(500, undefined, "too old resource version: 1 (2)"))).toBe(
      true,
    );
    expect(isResourceExpired(new ApiStatusError(500, "InternalError", "boom"))).toBe(false);
    expect(isResourceExpired(new Error("410"))).toBe(false);
  });

  it("reports non-Status bodies as text", () => {
    const err = apiStatusError(502, "<html>bad gateway</html>", "GET /api/v1/services");
    expect(err.status).toBe(502);
    expect(err.reason).toBeUndefined();
    expect(err.message).toContain("bad gateway");
  });
});

describe("KubeApiClient", () => {
  let server: FakeApiServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it("rejects a kubeconfig without a cluster or with a bad server URL", () => {
    expect(() => new KubeApiClient(new KubeConfig())).toThrow(ConfigError);
    const kc = new KubeConfig();
    kc.loadFromClusterAndUser({ name: "c", server: "ftp://x", skipTLSVerify: false }, { name: "u" });
    expect(() => new KubeApiClient(kc)).toThrow(ConfigError);
  });

  it("keeps a server path prefix and encodes query parameters", () => {
    const kc = new KubeConfig();
    kc.loadFromClusterAndUser(
      { name: "c", server: "https://h:6443/k8s/clusters/x/", skipTLSVerify: false },
      { name: "u" },
    );
    const url = new KubeApiClient(kc).url("/api/v1/pods", {
      fieldSelector: "spec.nodeName=n 1",
      limit: 5,
      x: undefined,
    });
    expect(url.pathname).toBe("/k8s/clusters/x/api/v1/pods");
    expect(url.searchParams.get("fieldSelector")).toBe("spec.nodeName=n 1");
    expect(url.searchParams.get("limit")).toBe("5");
    expect(url.searchParams.has("x")).toBe(false);
  });

  it("turns a non-2xx answer into an ApiStatusError with the Status reason", async () => {
    server = await FakeApiServer.start();
    server.failNext(1, { status: 403, reason: "Forbidden", message: "services is forbidden" });
    const client = new KubeApiClient(server.kubeConfig());
    const err = await client.get("/api/v1/services", {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiStatusError);
    expect((err as ApiStatusError).status).toBe(403);
    expect((err as ApiStatusError).reason).toBe("Forbidden");
    expect((err as ApiStatusError).message).toContain("services is forbidden");
  });

  it("reports an unreachable server as UnavailableError and an aborted request as AbortedError", async () => {
    server = await FakeApiServer.start();
    const kc = server.kubeConfig();
    await server.close();
    server = undefined;
    const client = new KubeApiClient(kc);
    await expect(client.get("/api/v1/services", {})).rejects.toBeInstanceOf(UnavailableError);
    const ac = new AbortController();
    ac.abort();
    await expect(client.get("/api/v1/services", {}, { signal: ac.signal })).rejects.toBeInstanceOf(
      AbortedError,
    );
  });

  it("stops waiting for credentials when aborted", async () => {
    server = await FakeApiServer.start();
    const kc = server.kubeConfig();
    let asked = 0;
    kc.addAuthenticator({
      isAuthProvider: () => true,
      applyAuthentication: () => {
        asked++;
        return new Promise<void>(() => {}); // a plugin that never answers
      },
    });
    const client = new KubeApiClient(kc);
    const ac = new AbortController();
    const pending = client.get("/api/v1/services", {}, { signal: ac.signal });
    await waitFor(() => asked === 1, "authenticator call");
    ac.abort();
    await expect(pending).rejects.toBeInstanceOf(AbortedError);
    expect(server.requests).toHaveLength(0);
  });

  it("decompresses gzip list bodies", async () => {
    server = await FakeApiServer.start({ gzipLists: true });
    server.add("services", { metadata: { name: "a" } });
    const client = new KubeApiClient(server.kubeConfig());
    const res = await client.get("/api/v1/services", {}, { acceptGzip: true });
    expect(res.headers["content-encoding"]).toBe("gzip");
    const chunks: Buffer[] = [];
    for await (const c of res.body) chunks.push(c);
    const list = JSON.parse(Buffer.concat(chunks).toString()) as {
      items: Array<{ metadata: { name: string } }>;
    };
    expect(list.items.map((i) => i.metadata.name)).toEqual(["a"]);
  });
});

describe("IdleWatchdog", () => {
  it("fires once after the limit of silence, measured from the last touch", async () => {
    const clock = new FakeClock();
    const fired: number[] = [];
    const dog = new IdleWatchdog(clock, 1000, (idle) => fired.push(idle));
    await clock.advance(600);
    dog.touch();
    await clock.advance(600);
    expect(fired).toEqual([]);
    await clock.advance(400);
    expect(fired).toEqual([1000]);
    expect(dog.fired).toBe(true);
    await clock.advance(5000);
    expect(fired).toHaveLength(1);
  });

  it("can change its limit and be cancelled", async () => {
    const clock = new FakeClock();
    let fired = 0;
    const dog = new IdleWatchdog(clock, 100, () => fired++);
    dog.setLimit(10_000);
    await clock.advance(9_999);
    expect(fired).toBe(0);
    dog.cancel();
    await clock.advance(100_000);
    expect(fired).toBe(0);
    expect(clock.pendingTimers()).toBe(0);
  });
});
