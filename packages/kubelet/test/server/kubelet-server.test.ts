import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { appendFile, mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Counter, createMetricsRegistry, type Pod, type Registry } from "@worknode/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProberMetrics } from "../../src/probes/prober-metrics.js";
import { KubeletMetrics } from "../../src/server/kubelet-metrics.js";
import {
  KubeletServer,
  type KubeletServerProvider,
  parseContainerLogsQuery,
} from "../../src/server/kubelet-server.js";
import { containerLogPathFromStatus } from "../../src/server/log-locator.js";

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(url: string, init: { method?: string } = {}): Promise<Reply> {
  const u = new URL(url);
  const req = (u.protocol === "https:" ? httpsRequest : httpRequest)(u, {
    method: init.method ?? "GET",
    rejectUnauthorized: false,
    agent: false,
  });
  return new Promise((resolve, reject) => {
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** Opens a streaming GET; returns the text received so far and a way to hang up. */
function stream(url: string): { text: () => string; status: Promise<number>; close: () => void } {
  let text = "";
  const req = httpsRequest(new URL(url), { rejectUnauthorized: false, agent: false });
  const status = new Promise<number>((resolve, reject) => {
    req.on("response", (res) => {
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        text += c;
      });
      res.on("error", () => undefined);
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
  });
  req.end();
  return { text: () => text, status, close: () => req.destroy() };
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const logLine = (sec: number, text: string) =>
  `2024-05-01T10:00:${String(sec).padStart(2, "0")}Z stdout F ${text}\n`;

function webPod(restartCount: number, running: boolean): Pod {
  return {
    metadata: { name: "web", namespace: "default", uid: "uid-web" },
    spec: {
      initContainers: [{ name: "init", image: "busybox" }],
      containers: [
        { name: "app", image: "busybox" },
        { name: "pending", image: "busybox" },
      ],
    },
    status: {
      phase: "Running",
      conditions: [{ type: "PodReadyToStartContainers", status: "True" }],
      initContainerStatuses: [
        {
          name: "init",
          image: "busybox",
          imageID: "",
          ready: false,
          restartCount: 0,
          state: { terminated: { exitCode: 0, containerID: "containerd://i0", reason: "Completed" } },
        },
      ],
      containerStatuses: [
        {
          name: "app",
          image: "busybox",
          imageID: "",
          ready: running,
          restartCount,
          state: running
            ? { running: { startedAt: "2024-05-01T10:00:00Z" } }
            : { waiting: { reason: "CrashLoopBackOff" } },
          lastState: restartCount > 0 ? { terminated: { exitCode: 1, containerID: "containerd://old" } } : {},
        },
        {
          name: "pending",
          image: "busybox",
          imageID: "",
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: "ContainerCreating" } },
        },
      ],
    },
  };
}

describe("KubeletServer on 127.0.0.1", () => {
  let dir: string;
  let logsDir: string;
  let server: KubeletServer;
  let base: string;
  let healthz: string;
  let healthy = true;
  let pods: Pod[];
  let registry: Registry;
  let prober: ProberMetrics;
  let metrics: KubeletMetrics;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "kubelet-server-"));
    logsDir = path.join(dir, "pods");
    pods = [webPod(1, true)];
    const appDir = path.join(logsDir, "default_web_uid-web", "app");
    await mkdir(appDir, { recursive: true });
    await writeFile(path.join(appDir, "0.log"), logLine(1, "previous run") + logLine(2, "crashed"));
    await writeFile(path.join(appDir, "1.log"), logLine(3, "a") + logLine(4, "b") + logLine(5, "c"));
    await mkdir(path.join(logsDir, "default_web_uid-web", "init"), { recursive: true });
    await writeFile(path.join(logsDir, "default_web_uid-web", "init", "0.log"), logLine(0, "init done"));

    registry = createMetricsRegistry();
    new Counter({ name: "worknode_test_total", help: "test counter", registers: [registry] }).inc(3);
    prober = new ProberMetrics();
    prober.record(
      "readiness",
      "successful",
      { container: "app", pod: "web", namespace: "default", podUid: "u" },
      0.01,
    );
    metrics = new KubeletMetrics({ nodeName: "node-a" });
    metrics.derivePodGaugesFrom(() => pods);
    const provider: KubeletServerProvider = {
      pods: () => pods,
      containerLogPath: (ns, name, container, previous) => {
        const pod = pods.find((p) => p.metadata?.namespace === ns && p.metadata?.name === name);
        return pod ? containerLogPathFromStatus(pod, container, previous, logsDir) : undefined;
      },
      healthy: () => healthy,
      registries: [registry, metrics.registry],
      probeRegistries: [prober.registry],
    };
    server = new KubeletServer({
      provider,
      nodeName: "node-a",
      healthz: { host: "127.0.0.1", port: 0 },
      server: { host: "127.0.0.1", port: 0, certDir: path.join(dir, "pki") },
      logPollIntervalMs: 50,
    });
    await server.start();
    base = `https://127.0.0.1:${server.serverAddress!.port}`;
    healthz = `http://127.0.0.1:${server.healthzAddress!.port}`;
  });

  afterAll(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("serves /healthz on plain HTTP, 500 when unhealthy", async () => {
    expect(await get(`${healthz}/healthz`)).toMatchObject({ status: 200, body: "ok" });
    healthy = false;
    const r = await get(`${healthz}/healthz`);
    healthy = true;
    expect(r.status).toBe(500);
    expect(r.body).toContain("healthz check failed");
    expect((await get(`${healthz}/healthz/ping`)).status).toBe(200);
    expect((await get(`${healthz}/pods`)).status).toBe(404);
    expect((await get(`${healthz}/healthz`, { method: "POST" })).status).toBe(405);
  });

  it("serves HTTPS with a self-signed certificate for the node it generated in certDir", async () => {
    const cert = server.certificate!;
    expect(cert.generated).toBe(true);
    expect(cert.certFile).toBe(path.join(dir, "pki", "kubelet.crt"));
    const x509 = new X509Certificate(cert.cert);
    expect(x509.subject).toMatch(/CN=node-a@\d+/);
    expect(x509.subjectAltName).toContain("DNS:node-a");
    expect(x509.subjectAltName).toContain("IP Address:127.0.0.1");
    expect((await stat(cert.keyFile)).mode & 0o777).toBe(0o600);
    expect((await get(`${base}/healthz`)).body).toBe("ok");
  });

  it("reuses the certificate on the next start", async () => {
    const again = new KubeletServer({
      provider: { pods: () => [], containerLogPath: () => undefined, healthy: () => true, registries: [] },
      nodeName: "node-a",
      server: { host: "127.0.0.1", port: 0, certDir: path.join(dir, "pki") },
    });
    await again.start();
    try {
      expect(again.certificate!.generated).toBe(false);
      expect(again.certificate!.cert.equals(server.certificate!.cert)).toBe(true);
    } finally {
      await again.stop();
    }
  });

  it("serves /pods as a v1 PodList with statuses", async () => {
    const r = await get(`${base}/pods`);
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toBe("application/json");
    const list = JSON.parse(r.body);
    expect(list).toMatchObject({ kind: "PodList", apiVersion: "v1", metadata: {} });
    expect(list.items).toHaveLength(1);
    expect(list.items[0].metadata.name).toBe("web");
    expect(list.items[0].status.containerStatuses[0].restartCount).toBe(1);
  });

  it("serves /metrics from every registry, with kubelet's metric names", async () => {
    const r = await get(`${base}/metrics`);
    expect(r.status).toBe(200);
    expect(r.body).toContain("worknode_test_total 3");
    expect(r.body).toContain('kubelet_node_name{node="node-a"} 1');
    expect(r.body).toContain("kubelet_running_pods 1");
    expect(r.body).toContain('kubelet_running_containers{container_state="running"} 1');
    expect(r.body).toContain('kubelet_running_containers{container_state="exited"} 2');
    expect(r.body).toContain("# TYPE kubelet_pod_start_duration_seconds histogram");
    expect(r.body).toContain("# TYPE kubelet_pod_worker_duration_seconds histogram");
    const probes = await get(`${base}/metrics/probes`);
    expect(probes.body).toContain('prober_probe_total{probe_type="Readiness",result="successful"');
  });

  it("serves the current container log, with tailLines and timestamps", async () => {
    expect(await get(`${base}/containerLogs/default/web/app`)).toMatchObject({
      status: 200,
      body: "a\nb\nc\n",
    });
    expect((await get(`${base}/containerLogs/default/web/app?tailLines=2`)).body).toBe("b\nc\n");
    expect((await get(`${base}/containerLogs/default/web/app?tailLines=1&timestamps=true`)).body).toBe(
      "2024-05-01T10:00:05.000000000Z c\n",
    );
    expect((await get(`${base}/containerLogs/default/web/init`)).body).toBe("init done\n");
  });

  it("serves the previous instance's log with previous=true", async () => {
    expect((await get(`${base}/containerLogs/default/web/app?previous=true`)).body).toBe(
      "previous run\ncrashed\n",
    );
    const r = await get(`${base}/containerLogs/default/web/init?previous=true`);
    expect(r.status).toBe(400);
    expect(r.body).toContain('previous terminated container "init" in pod "web" not found');
  });

  it("answers 404 for unknown pods and containers, 400 for containers without logs, 422 / 400 for bad queries", async () => {
    const noPod = await get(`${base}/containerLogs/default/nope/app`);
    expect(noPod.status).toBe(404);
    expect(noPod.body).toContain('pod "nope" does not exist');
    const noCtr = await get(`${base}/containerLogs/default/web/nope`);
    expect(noCtr.status).toBe(404);
    expect(noCtr.body).toContain('container "nope" not found in pod "web"');
    expect((await get(`${base}/containerLogs/default/web/pending`)).status).toBe(400);
    expect((await get(`${base}/containerLogs/default/web/app?tailLines=-1`)).status).toBe(422);
    expect((await get(`${base}/containerLogs/default/web/app?tailLines=x`)).status).toBe(400);
    expect((await get(`${base}/containerLogs/default/web/app?follow=maybe`)).status).toBe(400);
    expect((await get(`${base}/containerLogs/default/web`)).status).toBe(404);
    expect((await get(`${base}/nothing`)).status).toBe(404);
    expect((await get(`${base}/containerLogs/default/web/%E0%A4%A`)).status).toBe(400);
  });

  it("follows a log until the client disconnects", async () => {
    const s = stream(`${base}/containerLogs/default/web/app?follow=true&tailLines=1`);
    expect(await s.status).toBe(200);
    await until(() => s.text() === "c\n", "the tail");
    const file = path.join(logsDir, "default_web_uid-web", "app", "1.log");
    await appendFile(file, logLine(6, "d"));
    await until(() => s.text() === "c\nd\n", "the appended line");
    s.close();
    await until(
      () => (server as unknown as { follows: Set<unknown> }).follows.size === 0,
      "the follow to end",
    );
  });

  it("ends a follow when the container restarted (a new log file is current)", async () => {
    const s = stream(`${base}/containerLogs/default/web/app?follow=true&tailLines=0`);
    expect(await s.status).toBe(200);
    const appDir = path.join(logsDir, "default_web_uid-web", "app");
    await writeFile(path.join(appDir, "2.log"), logLine(7, "new instance"));
    await appendFile(path.join(appDir, "1.log"), logLine(8, "dying words"));
    pods = [webPod(2, true)];
    await until(
      () => (server as unknown as { follows: Set<unknown> }).follows.size === 0,
      "the follow to end",
    );
    expect(s.text()).toBe("dying words\n");
    pods = [webPod(1, true)];
  });
});

describe("KubeletServer with given certificate files", () => {
  it("serves with the given pair and reports unreadable files", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "kubelet-tls-"));
    try {
      const key = path.join(dir, "k.pem");
      const cert = path.join(dir, "c.pem");
      await promisify(execFile)("openssl", [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "1",
        "-subj",
        "/CN=given",
      ]);
      const provider: KubeletServerProvider = {
        pods: () => [],
        containerLogPath: () => undefined,
        healthy: () => true,
        registries: [],
      };
      const s = new KubeletServer({
        provider,
        nodeName: "n",
        server: { host: "127.0.0.1", port: 0, tlsCertFile: cert, tlsPrivateKeyFile: key },
      });
      await s.start();
      try {
        expect(new X509Certificate(s.certificate!.cert).subject).toBe("CN=given");
        expect(JSON.parse((await get(`https://127.0.0.1:${s.serverAddress!.port}/pods`)).body).items).toEqual(
          [],
        );
      } finally {
        await s.stop();
      }
      const bad = new KubeletServer({
        provider,
        nodeName: "n",
        server: {
          host: "127.0.0.1",
          port: 0,
          tlsCertFile: path.join(dir, "missing.pem"),
          tlsPrivateKeyFile: key,
        },
      });
      await expect(bad.start()).rejects.toThrow(/--tls-cert-file: cannot read/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("fails to start on a port in use, naming the address", async () => {
    const provider: KubeletServerProvider = {
      pods: () => [],
      containerLogPath: () => undefined,
      healthy: () => true,
      registries: [],
    };
    const a = new KubeletServer({ provider, nodeName: "n", healthz: { host: "127.0.0.1", port: 0 } });
    await a.start();
    try {
      const b = new KubeletServer({
        provider,
        nodeName: "n",
        healthz: { host: "127.0.0.1", port: a.healthzAddress!.port },
      });
      await expect(b.start()).rejects.toThrow(/cannot serve healthz on 127\.0\.0\.1:\d+/);
    } finally {
      await a.stop();
    }
  });
});

describe("parseContainerLogsQuery", () => {
  it("parses Go-style booleans and tailLines", () => {
    expect(
      parseContainerLogsQuery(new URLSearchParams("follow=1&previous=True&timestamps=f&tailLines=5")),
    ).toEqual({ follow: true, previous: true, timestamps: false, tailLines: 5 });
    expect(parseContainerLogsQuery(new URLSearchParams(""))).toEqual({
      follow: false,
      previous: false,
      timestamps: false,
      tailLines: undefined,
    });
  });
});
