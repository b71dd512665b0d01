// The kubelet API behind a real kube-apiserver: a Node whose kubelet endpoint is our KubeletServer
// (authentication by the cluster CA's client certificates and TokenReview, authorization by
// SubjectAccessReview), a pod run by the Kubelet on the lab's real containerd, and kubectl going
// through the API server for logs, exec (with stdin), port-forward and the stats summary.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { networkInterfaces, tmpdir } from "node:os";
import path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { KubeApiClient, type Pod, SnapshotObjectSource } from "@worknode/core";
import { CriClient } from "@worknode/cri";
import {
  type ContainerdLab,
  type ControlPlane,
  ensureControlPlaneBinaries,
  startContainerdLab,
  startControlPlane,
} from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildKubeletAuth,
  CriRuntimeLocator,
  CriStreamingBackend,
  CriSummaryProvider,
  containerLogPathFromStatus,
  Kubelet,
  KubeletServer,
  newCrashLoopBackoffWith,
  type Summary,
} from "../src/index.js";

const LAB_CONTAINERD = {
  labDir: "/tmp/wnsrv-lab",
  bridgeName: "wnsrv0",
  podSubnet: "10.88.0.0/16",
  streamPort: 10055,
};
const NODE = "wnsrv-node";
const NS = "default";
const POD = "web";

let cp: ControlPlane;
let lab: ContainerdLab;
let client: CriClient;
let kubelet: Kubelet;
let server: KubeletServer;
let admin: KubeApiClient;
let kubectlBin: string;
let rootDir: string;
let logsDir: string;
/** The lab bridge's address on the host: the node's InternalIP (the API server refuses to proxy to loopback). */
let nodeIP: string;
let kubeletUrl: string;
const children = new Set<ChildProcess>();

async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 90_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

/** Runs kubectl as the admin with standard input; resolves with its output and exit code. */
function kubectl(
  args: readonly string[],
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(kubectlBin, [`--kubeconfig=${cp.kubeconfigPath}`, ...args], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    children.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => {
      children.delete(child);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(stdin ?? "");
  });
}

/** A request straight to the kubelet port (not through the API server), with a token or a client certificate. */
function kubeletGet(
  urlPath: string,
  token?: string,
  clientCert?: { cert: Buffer; key: Buffer },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(urlPath, kubeletUrl), {
      rejectUnauthorized: false,
      agent: false,
      headers: token ? { authorization: `Bearer ${token}` } : {},
      ...(clientCert ?? {}),
    });
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false });
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

function bridgeAddress(): string | undefined {
  return networkInterfaces()[LAB_CONTAINERD.bridgeName]?.find((a) => a.family === "IPv4")?.address;
}

function podSpec(image: string): Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: POD, namespace: NS },
    spec: {
      nodeName: NODE,
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 1,
      // the node never reports Ready: keep the pod on it
      tolerations: [
        { key: "node.kubernetes.io/unreachable", operator: "Exists", effect: "NoExecute" },
        { key: "node.kubernetes.io/not-ready", operator: "Exists", effect: "NoExecute" },
      ],
      containers: [
        {
          name: "web",
          image,
          command: [
            "sh",
            "-c",
            "mkdir -p /www && echo served-by-httpd > /www/index.html && echo hello from web && exec httpd -f -p 8080 -h /www",
          ],
        },
        {
          name: "ticker",
          image,
          command: ["sh", "-c", "while true; do echo tick; sleep 0.5; done"],
        },
        {
          name: "crasher",
          image,
          command: ["sh", "-c", "echo attempt-$(date +%s); sleep 1; exit 1"],
        },
      ],
    },
  };
}

beforeAll(async () => {
  kubectlBin = (await ensureControlPlaneBinaries()).binaries.kubectl ?? "";
  [cp, lab] = await Promise.all([
    startControlPlane({ scheduler: false }),
    startContainerdLab({ log: (l) => console.error(`[lab] ${l}`), containerd: LAB_CONTAINERD }),
  ]);
  admin = new KubeApiClient(cp.adminKubeConfig);
  client = new CriClient({ endpoint: lab.endpoint });
  rootDir = mkdtempSync(path.join(tmpdir(), "wnsrv-root-"));
  logsDir = mkdtempSync(path.join(tmpdir(), "wnsrv-logs-"));

  // The pod, in the API first (its UID is the one the kubelet runs).
  await admin.requestJson("POST", "/api/v1/nodes", {
    body: { apiVersion: "v1", kind: "Node", metadata: { name: NODE } },
  });
  const created = await admin.requestJson<Pod>("POST", `/api/v1/namespaces/${NS}/pods`, {
    body: podSpec(lab.busyboxImage),
  });
  const source = new SnapshotObjectSource<Pod>({ kind: "Pod" });
  source.replace([created]);
  kubelet = new Kubelet({
    client,
    nodeName: NODE,
    sources: [source],
    rootDir,
    podLogsDir: logsDir,
    crashLoopBackoff: newCrashLoopBackoffWith(500),
    relistPeriodMs: 500,
  });
  await kubelet.start();
  const running = () => kubelet.pods().find((p) => p.metadata?.name === POD);
  await waitFor("the web container to run", () =>
    running()?.status?.containerStatuses?.some((c) => c.name === "web" && c.state?.running),
  );
  nodeIP = await waitFor("the lab bridge address", bridgeAddress);

  // The kubelet's own API credentials (system:node:<node>) for TokenReview and SubjectAccessReview.
  const nodeConfig = new KubeConfig();
  nodeConfig.loadFromFile(await cp.nodeCredentials(NODE));
  const auth = await buildKubeletAuth({
    nodeName: NODE,
    authentication: {
      x509: { clientCAFile: cp.pki.ca.certPath },
      webhook: { enabled: true },
      anonymous: { enabled: false },
    },
    // short denial cache so the RBAC grant below takes effect quickly
    authorization: { mode: "Webhook", webhook: { cacheUnauthorizedTTLMs: 1000 } },
    apiClient: new KubeApiClient(nodeConfig),
  });
  server = new KubeletServer({
    nodeName: NODE,
    server: { host: nodeIP, port: 0, certDir: path.join(rootDir, "pki"), auth },
    provider: {
      pods: () => kubelet.pods(),
      containerLogPath: (namespace, name, container, previous) => {
        const pod = kubelet
          .pods()
          .find((p) => p.metadata?.namespace === namespace && p.metadata?.name === name);
        return pod && containerLogPathFromStatus(pod, container, previous, logsDir);
      },
      healthy: () => kubelet.plegHealth().healthy,
      registries: [],
    },
    stats: new CriSummaryProvider({ client, nodeName: NODE, rootDir }),
    streaming: new CriStreamingBackend({
      client,
      locator: new CriRuntimeLocator({ client, pods: () => kubelet.pods() }),
    }),
  });
  await server.start();
  const port = server.serverAddress?.port ?? 0;
  kubeletUrl = `https://${nodeIP}:${port}`;

  // Where the API server finds the kubelet; the pod is Running for kubectl port-forward.
  await admin.requestJson("PATCH", `/api/v1/nodes/${NODE}/status`, {
    contentType: "application/merge-patch+json",
    body: {
      status: {
        addresses: [{ type: "InternalIP", address: nodeIP }],
        daemonEndpoints: { kubeletEndpoint: { Port: port } },
      },
    },
  });
  await admin.requestJson("PATCH", `/api/v1/namespaces/${NS}/pods/${POD}/status`, {
    contentType: "application/merge-patch+json",
    body: { status: { phase: "Running", podIP: running()?.status?.podIP } },
  });
}, 300_000);

afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await server?.stop();
  await kubelet?.stop();
  // remove what the kubelet ran: an empty source makes it terminate the pod
  if (client) {
    const { items } = await client.runtime.listPodSandbox({}).catch(() => ({ items: [] }));
    for (const s of items) {
      await client.runtime.stopPodSandbox({ podSandboxId: s.id }).catch(() => undefined);
      await client.runtime.removePodSandbox({ podSandboxId: s.id }).catch(() => undefined);
    }
  }
  client?.close();
  await lab?.stop();
  await cp?.stop();
  for (const d of [rootDir, logsDir]) if (d) rmSync(d, { recursive: true, force: true });
}, 120_000);

describe("kubelet API through a real kube-apiserver", () => {
  it("serves kubectl logs (and --previous after a restart)", async () => {
    const logs = await waitFor("kubectl logs", async () => {
      const r = await kubectl(["logs", POD, "-c", "web"]);
      return r.code === 0 && r.stdout.includes("hello from web") ? r.stdout : undefined;
    });
    expect(logs).toContain("hello from web");

    await waitFor("a crasher restart", () =>
      kubelet
        .pods()
        .find((p) => p.metadata?.name === POD)
        ?.status?.containerStatuses?.some((c) => c.name === "crasher" && (c.restartCount ?? 0) >= 1),
    );
    const previous = await waitFor("kubectl logs --previous", async () => {
      const r = await kubectl(["logs", POD, "-c", "crasher", "--previous"]);
      return r.code === 0 && /attempt-\d+/.test(r.stdout) ? r.stdout : undefined;
    });
    expect(previous).toMatch(/^attempt-\d+\n$/);
  }, 120_000);

  it("serves kubectl exec, with and without stdin", async () => {
    const r = await kubectl(["exec", POD, "-c", "web", "--", "sh", "-c", "echo hi"]);
    expect(r.stderr).toBe("");
    expect(r).toMatchObject({ code: 0, stdout: "hi\n" });

    const piped = await kubectl(
      ["exec", "-i", POD, "-c", "web", "--", "sh", "-c", "tr a-z A-Z; echo done"],
      "piped input\n",
    );
    expect(piped).toMatchObject({ code: 0, stdout: "PIPED INPUT\ndone\n" });

    const failing = await kubectl(["exec", POD, "-c", "web", "--", "sh", "-c", "exit 3"]);
    expect(failing.code).toBe(3);

    const missing = await kubectl(["exec", POD, "-c", "nope", "--", "true"]);
    expect(missing.code).not.toBe(0);
  }, 60_000);

  it("serves kubectl attach to a running container's output", async () => {
    const child = spawn(kubectlBin, [`--kubeconfig=${cp.kubeconfigPath}`, "attach", POD, "-c", "ticker"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(child);
    try {
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => {
        stdout += c.toString();
      });
      child.stderr.on("data", (c: Buffer) => {
        stderr += c.toString();
      });
      // output written after attaching arrives through the attach stream (kubectl adds a banner)
      await waitFor("attached output", () => (stdout.match(/^tick$/gm)?.length ?? 0) >= 2, 30_000);
      expect(stderr).not.toMatch(/error/i);
    } finally {
      child.kill("SIGTERM");
      children.delete(child);
    }
  }, 60_000);

  it("serves kubectl port-forward to a port inside the pod", async () => {
    const child = spawn(
      kubectlBin,
      [`--kubeconfig=${cp.kubeconfigPath}`, "port-forward", "--address=127.0.0.1", `pod/${POD}`, ":8080"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    children.add(child);
    try {
      let out = "";
      child.stdout.on("data", (c: Buffer) => {
        out += c.toString();
      });
      child.stderr.on("data", (c: Buffer) => {
        out += c.toString();
      });
      const localPort = await waitFor(
        "port-forward to listen",
        () => /127\.0\.0\.1:(\d+) -> 8080/.exec(out)?.[1],
        30_000,
      );
      const res = await httpGet(`http://127.0.0.1:${localPort}/index.html`);
      expect(res).toEqual({ status: 200, body: "served-by-httpd\n" });
      const again = await httpGet(`http://127.0.0.1:${localPort}/`);
      expect(again.body).toBe("served-by-httpd\n");
    } finally {
      child.kill("SIGTERM");
      children.delete(child);
    }
  }, 60_000);

  it("serves the stats summary and resource metrics through the node proxy", async () => {
    const summary = await waitFor(
      "a summary with the pod's CPU",
      async () => {
        const raw = await cp.kubectl(["get", "--raw", `/api/v1/nodes/${NODE}/proxy/stats/summary`]);
        const s = JSON.parse(raw) as Summary;
        const web = s.pods.find((p) => p.podRef.name === POD)?.containers.find((c) => c.name === "web");
        return (web?.cpu?.usageCoreNanoSeconds ?? 0) > 0 ? s : undefined;
      },
      40_000,
    );
    expect(summary.node.nodeName).toBe(NODE);
    expect(summary.node.cpu?.usageCoreNanoSeconds).toBeGreaterThan(0);
    expect(summary.node.memory?.workingSetBytes).toBeGreaterThan(0);
    expect(summary.node.fs?.capacityBytes).toBeGreaterThan(0);
    const pod = summary.pods.find((p) => p.podRef.name === POD);
    const uid = kubelet.pods().find((p) => p.metadata?.name === POD)?.metadata?.uid;
    expect(pod?.podRef).toEqual({ name: POD, namespace: NS, uid });
    const web = pod?.containers.find((c) => c.name === "web");
    expect(web?.memory?.workingSetBytes).toBeGreaterThan(0);
    expect(Date.parse(web?.startTime ?? "")).toBeGreaterThan(Date.now() - 600_000);
    expect(pod?.cpu?.usageCoreNanoSeconds).toBeGreaterThan(0);
    expect(pod?.memory?.workingSetBytes).toBeGreaterThan(0);

    const metrics = await cp.kubectl(["get", "--raw", `/api/v1/nodes/${NODE}/proxy/metrics/resource`]);
    expect(metrics).toMatch(
      new RegExp(
        `^container_cpu_usage_seconds_total\\{container="web",namespace="${NS}",pod="${POD}"\\} [0-9.e+-]+ \\d+$`,
        "m",
      ),
    );
    expect(metrics).toMatch(/^node_memory_working_set_bytes [0-9.e+]+ \d+$/m);
    expect(metrics).toMatch(/^resource_scrape_error 0$/m);
  }, 60_000);

  it("refuses anonymous requests with 401", async () => {
    expect(await kubeletGet("/pods")).toEqual({ status: 401, body: "Unauthorized" });
    expect((await kubeletGet("/pods", "not-a-token")).status).toBe(401);
  });

  it("authenticates client certificates of the cluster CA and refuses others", async () => {
    const pair = (p: { certPath: string; keyPath: string }) => ({
      cert: readFileSync(p.certPath),
      key: readFileSync(p.keyPath),
    });
    // the cluster admin (O=system:masters), authorized through SubjectAccessReview
    const admin = await kubeletGet("/pods", undefined, pair(cp.pki.admin));
    expect(admin.status).toBe(200);
    expect((JSON.parse(admin.body) as { kind: string }).kind).toBe("PodList");
    // a client certificate from another CA (the front proxy's)
    expect(await kubeletGet("/pods", undefined, pair(cp.pki.frontProxyClient))).toEqual({
      status: 401,
      body: "Unauthorized",
    });
  });

  it("authorizes service-account tokens through SubjectAccessReview: 403 without RBAC, 200 with nodes/proxy", async () => {
    await admin.requestJson("POST", `/api/v1/namespaces/${NS}/serviceaccounts`, {
      body: { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "reader" } },
    });
    const tr = await admin.requestJson<{ status: { token: string } }>(
      "POST",
      `/api/v1/namespaces/${NS}/serviceaccounts/reader/token`,
      { body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: {} } },
    );
    const token = tr.status.token;
    const denied = await kubeletGet("/pods", token);
    expect(denied).toEqual({
      status: 403,
      body: `Forbidden (user=system:serviceaccount:${NS}:reader, verb=get, resource=nodes, subresource(s)=[pods proxy])\n`,
    });

    await admin.requestJson("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", {
      body: {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRole",
        metadata: { name: "wnsrv-node-proxy" },
        rules: [{ apiGroups: [""], resources: ["nodes/proxy"], verbs: ["get"] }],
      },
    });
    await admin.requestJson("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
      body: {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRoleBinding",
        metadata: { name: "wnsrv-node-proxy" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "wnsrv-node-proxy" },
        subjects: [{ kind: "ServiceAccount", name: "reader", namespace: NS }],
      },
    });
    const allowed = await waitFor("the grant to take effect", async () => {
      const r = await kubeletGet("/pods", token);
      return r.status === 200 ? r : undefined;
    });
    const list = JSON.parse(allowed.body) as { kind: string; items: Pod[] };
    expect(list.kind).toBe("PodList");
    expect(list.items.map((p) => p.metadata?.name)).toContain(POD);
    // nodes/proxy does not grant nodes/stats
    expect((await kubeletGet("/stats/summary", token)).status).toBe(403);
  }, 60_000);
});
