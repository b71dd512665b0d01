import { mkdtempSync, rmSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeletServer } from "../../src/server/kubelet-server.js";
import type { Summary } from "../../src/server/stats-types.js";

const T = "2023-11-14T22:13:20.000Z";
const summary: Summary = {
  node: {
    nodeName: "node-1",
    startTime: "2023-11-14T00:00:00.000Z",
    cpu: { time: T, usageNanoCores: 250_000_000, usageCoreNanoSeconds: 9e12 },
    memory: { time: T, workingSetBytes: 2_000_000_000 },
    fs: { time: T, capacityBytes: 100, availableBytes: 40, usedBytes: 60 },
    rlimit: { time: T, maxpid: 4194304, curproc: 200 },
  },
  pods: [
    {
      podRef: { name: "web", namespace: "default", uid: "u1" },
      startTime: T,
      containers: [
        {
          name: "app",
          startTime: T,
          cpu: { time: T, usageCoreNanoSeconds: 1_500_000_000 },
          memory: { time: T, workingSetBytes: 4096 },
          rootfs: { time: T, usedBytes: 10 },
        },
      ],
      cpu: { time: T, usageCoreNanoSeconds: 1_500_000_000 },
      memory: { time: T, workingSetBytes: 4096 },
      network: { time: T, name: "eth0", rxBytes: 1, txBytes: 2 },
    },
  ],
};

describe("KubeletServer stats endpoints", () => {
  let server: KubeletServer;
  let certDir: string;
  let fail = false;

  beforeAll(async () => {
    certDir = mkdtempSync(path.join(tmpdir(), "wn-stats-"));
    server = new KubeletServer({
      nodeName: "node-1",
      server: { port: 0, certDir },
      provider: { pods: () => [], containerLogPath: () => undefined, healthy: () => true, registries: [] },
      stats: { summary: () => (fail ? Promise.reject(new Error("runtime down")) : Promise.resolve(summary)) },
    });
    await server.start();
  });

  afterAll(async () => {
    await server?.stop();
    if (certDir) rmSync(certDir, { recursive: true, force: true });
  });

  function get(urlPath: string): Promise<{ status: number; type: string; body: string }> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest(`https://127.0.0.1:${server.serverAddress?.port}${urlPath}`, {
        rejectUnauthorized: false,
        agent: false,
      });
      req.on("response", (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          body += c;
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), body }),
        );
      });
      req.on("error", reject);
      req.end();
    });
  }

  it("listens on loopback without auth", () => {
    expect(server.serverAddress?.host).toBe("127.0.0.1");
  });

  it("serves the summary, and only CPU and memory when asked", async () => {
    const full = await get("/stats/summary");
    expect(full.status).toBe(200);
    expect(JSON.parse(full.body)).toEqual(summary);
    const only = JSON.parse((await get("/stats/summary?only_cpu_and_memory=true")).body) as Summary;
    expect(only.node).toEqual({
      nodeName: "node-1",
      startTime: "2023-11-14T00:00:00.000Z",
      cpu: summary.node.cpu,
      memory: summary.node.memory,
    });
    expect(only.pods[0]).toEqual({
      podRef: { name: "web", namespace: "default", uid: "u1" },
      startTime: T,
      containers: [
        {
          name: "app",
          startTime: T,
          cpu: { time: T, usageCoreNanoSeconds: 1_500_000_000 },
          memory: { time: T, workingSetBytes: 4096 },
        },
      ],
      cpu: { time: T, usageCoreNanoSeconds: 1_500_000_000 },
      memory: { time: T, workingSetBytes: 4096 },
    });
  });

  it("serves resource metrics, with the scrape error set when the summary fails", async () => {
    const ok = await get("/metrics/resource");
    expect(ok.type).toContain("text/plain");
    expect(ok.body).toContain(
      'container_cpu_usage_seconds_total{container="app",namespace="default",pod="web"} 1.5',
    );
    expect(ok.body).toContain("\nresource_scrape_error 0\n");
    fail = true;
    try {
      const bad = await get("/metrics/resource");
      expect(bad.status).toBe(200);
      expect(bad.body).toContain("\nresource_scrape_error 1\n");
      const summaryFailed = await get("/stats/summary");
      expect(summaryFailed.status).toBe(500);
      expect(summaryFailed.body).toContain("failed to get summary stats: runtime down");
    } finally {
      fail = false;
    }
  });
});
