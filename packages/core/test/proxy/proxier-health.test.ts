import { afterEach, describe, expect, it } from "vitest";
import {
  healthzResponse,
  livezResponse,
  type ProxyHealthServer,
  startProxyHealthServer,
} from "../../src/proxy/health-server.js";
import { formatGoTime, ProxierHealth, TO_BE_DELETED_TAINT } from "../../src/proxy/proxier-health.js";
import { FakeClock } from "../../src/util/clock.js";
import { ConfigError, UnavailableError } from "../../src/util/errors.js";
import { createMetricsRegistry } from "../../src/util/metrics.js";

describe("formatGoTime", () => {
  it("prints Go's time.Time format in UTC, trimming fractional zeros", () => {
    expect(formatGoTime(Date.UTC(2024, 0, 2, 3, 4, 5, 500))).toBe("2024-01-02 03:04:05.5 +0000 UTC");
    expect(formatGoTime(Date.UTC(2024, 11, 31, 23, 59, 59, 120))).toBe("2024-12-31 23:59:59.12 +0000 UTC");
    expect(formatGoTime(Date.UTC(2024, 5, 6, 7, 8, 9, 7))).toBe("2024-06-06 07:08:09.007 +0000 UTC");
    expect(formatGoTime(Date.UTC(2024, 5, 6, 7, 8, 9, 0))).toBe("2024-06-06 07:08:09 +0000 UTC");
    expect(formatGoTime(undefined)).toBe("0001-01-01 00:00:00 +0000 UTC");
  });
});

describe("ProxierHealth", () => {
  it("is healthy until a queued update waits longer than the timeout", async () => {
    const clock = new FakeClock();
    const h = new ProxierHealth({ healthTimeoutMs: 60_000, clock });
    expect(h.isHealthy()).toBe(true);
    h.queuedUpdate();
    const queuedAt = clock.now();
    await clock.advance(30_000);
    h.queuedUpdate(); // does not move the oldest pending time
    await clock.advance(29_999);
    expect(h.isHealthy()).toBe(true);
    await clock.advance(1);
    expect(h.status()).toMatchObject({
      healthy: false,
      oldestPendingQueued: queuedAt,
      lastUpdated: undefined,
    });
    h.updated();
    expect(h.status()).toMatchObject({
      healthy: true,
      oldestPendingQueued: undefined,
      lastUpdated: clock.now(),
    });
  });

  it("derives node eligibility from the Node", () => {
    const h = new ProxierHealth({ healthTimeoutMs: 1 });
    h.syncNode({
      metadata: { name: "n" },
      spec: { taints: [{ key: TO_BE_DELETED_TAINT, effect: "NoSchedule" }] },
    });
    expect(h.status().nodeEligible).toBe(false);
    h.syncNode({ metadata: { name: "n" } });
    expect(h.status().nodeEligible).toBe(true);
    h.syncNode({ metadata: { name: "n", deletionTimestamp: "2024-01-01T00:00:00Z" } });
    expect(h.status().nodeEligible).toBe(false);
    expect(() => new ProxierHealth({ healthTimeoutMs: 0 })).toThrow(ConfigError);
  });

  it("answers like kube-proxy's healthz and livez handlers", () => {
    const base = {
      oldestPendingQueued: undefined,
      currentTime: Date.UTC(2024, 0, 1, 0, 0, 1),
      lastUpdated: Date.UTC(2024, 0, 1),
    };
    expect(healthzResponse({ ...base, healthy: true, nodeEligible: true })).toEqual({
      status: 200,
      body: '{"lastUpdated": "2024-01-01 00:00:01 +0000 UTC","currentTime": "2024-01-01 00:00:01 +0000 UTC", "nodeEligible": true}',
    });
    expect(healthzResponse({ ...base, healthy: false, nodeEligible: true })).toEqual({
      status: 503,
      body: '{"lastUpdated": "2024-01-01 00:00:00 +0000 UTC","currentTime": "2024-01-01 00:00:01 +0000 UTC", "nodeEligible": true}',
    });
    expect(healthzResponse({ ...base, healthy: true, nodeEligible: false }).status).toBe(503);
    expect(livezResponse({ ...base, healthy: true, nodeEligible: false })).toEqual({
      status: 200,
      body: '{"lastUpdated": "2024-01-01 00:00:01 +0000 UTC","currentTime": "2024-01-01 00:00:01 +0000 UTC"}',
    });
    expect(livezResponse({ ...base, healthy: false, nodeEligible: true }).status).toBe(503);
  });
});

describe("startProxyHealthServer", () => {
  let server: ProxyHealthServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it("serves /healthz and /livez with 200/503 and kube-proxy's JSON body", async () => {
    const clock = new FakeClock(Date.UTC(2024, 2, 3, 4, 5, 6));
    const health = new ProxierHealth({ healthTimeoutMs: 60_000, clock });
    const registry = createMetricsRegistry();
    server = await startProxyHealthServer({ host: "127.0.0.1", port: 0, health, registry });
    const base = `http://127.0.0.1:${server.address.port}`;

    health.updated();
    const lastUpdated = clock.now();
    let res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    const okBody = await res.json();
    expect(okBody).toEqual({
      lastUpdated: "2024-03-03 04:05:06 +0000 UTC",
      currentTime: "2024-03-03 04:05:06 +0000 UTC",
      nodeEligible: true,
    });

    health.queuedUpdate();
    await clock.advance(60_500);
    res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({
      lastUpdated: formatGoTime(lastUpdated),
      currentTime: "2024-03-03 04:06:06.5 +0000 UTC",
      nodeEligible: true,
    });
    res = await fetch(`${base}/livez`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({
      lastUpdated: formatGoTime(lastUpdated),
      currentTime: "2024-03-03 04:06:06.5 +0000 UTC",
    });

    health.updated();
    health.setNodeEligible(false);
    res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { nodeEligible: boolean }).nodeEligible).toBe(false);
    res = await fetch(`${base}/livez`);
    expect(res.status).toBe(200);
    await res.text();

    res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(404);
    await res.text();

    const metrics = await registry.metrics();
    expect(metrics).toContain('kubeproxy_proxy_healthz_total{code="200"} 1');
    expect(metrics).toContain('kubeproxy_proxy_healthz_total{code="503"} 2');
    expect(metrics).toContain('kubeproxy_proxy_livez_total{code="503"} 1');
    expect(metrics).toContain('kubeproxy_proxy_livez_total{code="200"} 1');
  });

  it("fails with UnavailableError when the port is taken", async () => {
    const health = new ProxierHealth({ healthTimeoutMs: 1_000 });
    server = await startProxyHealthServer({ host: "127.0.0.1", port: 0, health });
    await expect(
      startProxyHealthServer({ host: "127.0.0.1", port: server.address.port, health }),
    ).rejects.toBeInstanceOf(UnavailableError);
  });
});
