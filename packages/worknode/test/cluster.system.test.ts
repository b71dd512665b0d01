// `worknode kubelet` joins a real cluster: a control plane built from the Kubernetes Go modules
// (kube-apiserver with Node,RBAC + NodeRestriction, etcd, kube-controller-manager,
// kube-scheduler) and a real containerd (the lab's, on its own bridge). The agent runs as a child
// process of the CLI, bootstraps its client certificate from a bootstrap token, registers its
// Node, runs what the scheduler places on it, and answers kubectl through the API server.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Node, Pod } from "@worknode/core";
import { ContainerState, CriClient } from "@worknode/cri";
import { cleanUpPodDirectory } from "@worknode/kubelet";
import {
  type ContainerdLab,
  type ControlPlane,
  freeLoopbackPorts,
  startContainerdLab,
  startControlPlane,
} from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";

const NODE = "wn-e2e";
const LAB = { labDir: "/tmp/wncl-lab", bridgeName: "wncl0", podSubnet: "10.92.0.0/16", streamPort: 10059 };
/**
 * The node's address: the lab bridge's gateway (kube-apiserver proxies logs, exec and stats only
 * to a global unicast node address, never to loopback). The test gives the bridge its address
 * before the first pod; CNI's bridge plugin then finds it in place.
 */
const NODE_IP = "10.92.0.1";
const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.join(here, "..", "..", "..");

let lab: ContainerdLab;
let cp: ControlPlane;
let cri: CriClient;
let workDir: string;
let manifestDir: string;
let kubeletPort: number;
let healthzPort: number;
let agent: ChildProcess | undefined;
let agentLog = "";

function startAgent(): ChildProcess {
  const child = spawn(
    process.execPath,
    [
      "--conditions=@worknode/source",
      "--import",
      "tsx",
      path.join(repoRoot, "packages", "worknode", "src", "cli.ts"),
      "kubelet",
      `--kubeconfig=${path.join(workDir, "kubelet.conf")}`,
      `--bootstrap-kubeconfig=${cp.bootstrapKubeconfigPath ?? ""}`,
      `--container-runtime-endpoint=${lab.endpoint}`,
      `--root-dir=${path.join(workDir, "root")}`,
      `--pod-manifest-path=${manifestDir}`,
      `--hostname-override=${NODE}`,
      `--node-ip=${NODE_IP}`,
      `--address=${NODE_IP}`,
      `--port=${kubeletPort}`,
      `--healthz-port=${healthzPort}`,
      `--client-ca-file=${cp.pki.ca.certPath}`,
      "--node-labels=worknode.dev/e2e=true",
      "--cluster-domain=cluster.local",
      "--node-status-update-frequency=2s",
      "--log-level=info",
    ],
    { stdio: ["ignore", "pipe", "pipe"], cwd: repoRoot },
  );
  const keep = (chunk: Buffer) => {
    agentLog += chunk.toString();
    if (agentLog.length > 400_000) agentLog = agentLog.slice(-200_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  return child;
}

async function stopAgent(signal: NodeJS.Signals): Promise<void> {
  const child = agent;
  agent = undefined;
  if (!child || child.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.kill(signal);
  });
}

async function kubectlJson<T>(...args: string[]): Promise<T> {
  return JSON.parse(await cp.kubectl([...args, "-o", "json"])) as T;
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}\n--- agent log tail ---\n${agentLog.slice(-6000)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

function readyCondition(node: Node): string | undefined {
  return node.status?.conditions?.find((c) => c.type === "Ready")?.status;
}

async function nodeReady(): Promise<string | undefined> {
  const node = await kubectlJson<Node>("get", "node", NODE);
  return readyCondition(node);
}

async function runningContainerIds(): Promise<string[]> {
  const { containers } = await cri.runtime.listContainers({});
  return containers
    .filter((c) => c.state === ContainerState.CONTAINER_RUNNING)
    .map((c) => c.id)
    .sort();
}

function podsOf(list: { items: Pod[] }, app: string): Pod[] {
  return list.items.filter((p) => p.metadata?.labels?.app === app && !p.metadata?.deletionTimestamp);
}

beforeAll(async () => {
  lab = await startContainerdLab({ log: (l) => console.error(`[lab] ${l}`), containerd: LAB });
  cri = new CriClient({ endpoint: lab.endpoint });
  await cri.connect();
  const ip = (...args: string[]) => execFileSync("ip", args, { stdio: "pipe" });
  try {
    ip("link", "show", LAB.bridgeName);
  } catch {
    ip("link", "add", LAB.bridgeName, "type", "bridge");
  }
  if (!ip("-4", "addr", "show", "dev", LAB.bridgeName).toString().includes(`${NODE_IP}/`)) {
    ip("addr", "add", `${NODE_IP}/16`, "dev", LAB.bridgeName);
  }
  ip("link", "set", LAB.bridgeName, "up");
  cp = await startControlPlane({
    controllerManagerArgs: ["--node-monitor-grace-period=20s", "--node-monitor-period=2s"],
  });
  workDir = await mkdtemp(path.join(tmpdir(), "wncl-"));
  manifestDir = path.join(workDir, "manifests");
  await mkdir(manifestDir, { recursive: true });
  [kubeletPort, healthzPort] = (await freeLoopbackPorts(2)) as [number, number];
  await writeFile(
    path.join(manifestDir, "static.yaml"),
    stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "static-web", namespace: "default", labels: { app: "static-web" } },
      spec: {
        terminationGracePeriodSeconds: 2,
        containers: [{ name: "web", image: lab.busyboxImage, command: ["httpd", "-f", "-p", "8080"] }],
      },
    }),
  );
  agent = startAgent();
}, 1_200_000);

afterAll(async () => {
  await stopAgent("SIGTERM");
  // The agent leaves pods running on SIGTERM (as kubelet does): remove them through the runtime.
  if (cri) {
    const { items } = await cri.runtime.listPodSandbox({}).catch(() => ({ items: [] }));
    for (const s of items) {
      await cri.runtime.stopPodSandbox({ podSandboxId: s.id }).catch(() => {});
      await cri.runtime.removePodSandbox({ podSandboxId: s.id }).catch(() => {});
    }
    cri.close();
  }
  await cp?.stop();
  await lab?.stop();
  try {
    execFileSync("ip", ["link", "del", LAB.bridgeName], { stdio: "pipe" });
  } catch {
    // already gone with the lab
  }
  if (workDir) {
    // The pods' volumes (tmpfs for secrets and tokens) outlive the agent, as with kubelet.
    const root = path.join(workDir, "root");
    for (const uid of await readdir(path.join(root, "pods")).catch(() => [])) {
      await cleanUpPodDirectory(root, uid);
    }
    await rm(workDir, { recursive: true, force: true });
  }
}, 300_000);

describe("a worknode kubelet in a real cluster", () => {
  it("bootstraps its client certificate, registers its Node and becomes Ready", async () => {
    await waitFor("the node to be Ready", async () => ((await nodeReady()) === "True" ? true : undefined));
    const node = await kubectlJson<Node>("get", "node", NODE);
    expect(node.metadata?.labels).toMatchObject({
      "kubernetes.io/hostname": NODE,
      "kubernetes.io/os": "linux",
      "worknode.dev/e2e": "true",
    });
    expect(node.status?.nodeInfo?.containerRuntimeVersion).toMatch(/^containerd:\/\//);
    expect(node.status?.daemonEndpoints?.kubeletEndpoint?.Port).toBe(kubeletPort);
    expect(Number(node.status?.allocatable?.pods)).toBe(110);
    const csrs = await kubectlJson<{ items: Array<{ spec: { username: string; signerName: string } }> }>(
      "get",
      "csr",
    );
    expect(csrs.items.some((c) => c.spec.signerName === "kubernetes.io/kube-apiserver-client-kubelet")).toBe(
      true,
    );
    const lease = await kubectlJson<{ spec: { holderIdentity: string; leaseDurationSeconds: number } }>(
      "get",
      "lease",
      "-n",
      "kube-node-lease",
      NODE,
    );
    expect(lease.spec).toMatchObject({ holderIdentity: NODE, leaseDurationSeconds: 40 });
  }, 240_000);

  it("refuses an anonymous request to the kubelet API", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        { host: NODE_IP, port: kubeletPort, path: "/pods", rejectUnauthorized: false },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(401);
  });

  it("runs a Deployment with a configMap volume, a secret env var and a readiness probe", async () => {
    await cp.kubectl(["create", "configmap", "web-config", "--from-literal=index.html=hello from configmap"]);
    await cp.kubectl(["create", "secret", "generic", "web-secret", "--from-literal=token=s3cr3t"]);
    const deployment = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "web", namespace: "default" },
      spec: {
        replicas: 3,
        selector: { matchLabels: { app: "web" } },
        template: {
          metadata: { labels: { app: "web" } },
          spec: {
            terminationGracePeriodSeconds: 5,
            containers: [
              {
                name: "web",
                image: lab.busyboxImage,
                command: ["sh", "-c", 'echo "token=$TOKEN"; exec httpd -f -p 8080 -h /config'],
                env: [{ name: "TOKEN", valueFrom: { secretKeyRef: { name: "web-secret", key: "token" } } }],
                ports: [{ containerPort: 8080, name: "http" }],
                readinessProbe: { httpGet: { path: "/index.html", port: 8080 }, periodSeconds: 2 },
                volumeMounts: [{ name: "config", mountPath: "/config" }],
              },
            ],
            volumes: [{ name: "config", configMap: { name: "web-config" } }],
          },
        },
      },
    };
    const service = {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "web", namespace: "default" },
      spec: { selector: { app: "web" }, ports: [{ port: 80, targetPort: 8080 }] },
    };
    const file = path.join(workDir, "web.yaml");
    await writeFile(file, `${stringify(deployment)}---\n${stringify(service)}`);
    await cp.kubectl(["apply", "-f", file]);

    const pods = await waitFor(
      "3 ready web pods",
      async () => {
        const list = podsOf(await kubectlJson<{ items: Pod[] }>("get", "pods"), "web");
        const ready = list.filter((p) =>
          p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
        );
        return ready.length === 3 ? ready : undefined;
      },
      240_000,
    );
    for (const p of pods) {
      expect(p.spec?.nodeName).toBe(NODE);
      expect(p.status?.phase).toBe("Running");
      expect(p.status?.podIP).toMatch(/^10\.92\./);
      expect(p.status?.containerStatuses?.[0]?.containerID).toMatch(/^containerd:\/\//);
    }
    const podIPs = pods.map((p) => p.status?.podIP).sort();
    const sliceIPs = await waitFor("the EndpointSlice to list the ready pod IPs", async () => {
      const slices = await kubectlJson<{
        items: Array<{ endpoints?: Array<{ addresses: string[]; conditions?: { ready?: boolean } }> }>;
      }>("get", "endpointslices", "-l", "kubernetes.io/service-name=web");
      const ips = slices.items
        .flatMap((s) => s.endpoints ?? [])
        .filter((e) => e.conditions?.ready)
        .flatMap((e) => e.addresses)
        .sort();
      return ips.length === 3 ? ips : undefined;
    });
    expect(sliceIPs).toEqual(podIPs);
    const body = await fetch(`http://${podIPs[0]}:8080/index.html`).then((r) => r.text());
    expect(body).toBe("hello from configmap");
  }, 300_000);

  it("serves kubectl logs and kubectl exec through the API server", async () => {
    const pod = podsOf(await kubectlJson<{ items: Pod[] }>("get", "pods"), "web")[0];
    const name = pod?.metadata?.name ?? "";
    expect(await cp.kubectl(["logs", name])).toContain("token=s3cr3t");
    expect(await cp.kubectl(["exec", name, "--", "cat", "/config/index.html"])).toBe("hello from configmap");
    expect(await cp.kubectl(["exec", name, "--", "sh", "-c", "echo $TOKEN"])).toBe("s3cr3t\n");
  }, 120_000);

  it("terminates a deleted pod within its grace period and runs the ReplicaSet's replacement", async () => {
    const before = podsOf(await kubectlJson<{ items: Pod[] }>("get", "pods"), "web");
    const victim = before[0];
    const name = victim?.metadata?.name ?? "";
    const started = Date.now();
    await cp.kubectl(["delete", "pod", name, "--wait=true", "--timeout=60s"]);
    const took = Date.now() - started;
    expect(took).toBeLessThan(30_000); // grace period 5 s; the object goes once the kubelet confirms
    const victimIds = (victim?.status?.containerStatuses ?? []).map((c) =>
      c.containerID?.replace(/^.*:\/\//, ""),
    );
    const running = await runningContainerIds();
    for (const id of victimIds) expect(running).not.toContain(id);
    await waitFor(
      "the replacement pod to be ready",
      async () => {
        const list = podsOf(await kubectlJson<{ items: Pod[] }>("get", "pods"), "web");
        const ready = list.filter((p) =>
          p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
        );
        return ready.length === 3 && !ready.some((p) => p.metadata?.name === name) ? true : undefined;
      },
      180_000,
    );
  }, 240_000);

  it("shows the static pod as a mirror pod with its status", async () => {
    const mirror = await waitFor("the mirror pod to be Running", async () => {
      const p = await kubectlJson<Pod>("get", "pod", `static-web-${NODE}`);
      return p.status?.phase === "Running" ? p : undefined;
    });
    expect(mirror.metadata?.annotations?.["kubernetes.io/config.mirror"]).toBeTruthy();
    expect(mirror.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "Node", name: NODE });
  }, 180_000);

  it("starts a pod whose configMap is missing once the configMap exists", async () => {
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "needs-config", namespace: "default" },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [
          {
            name: "main",
            image: lab.busyboxImage,
            command: ["sh", "-c", "echo mode=$MODE; exec sleep 3600"],
            env: [{ name: "MODE", valueFrom: { configMapKeyRef: { name: "late-config", key: "mode" } } }],
          },
        ],
      },
    };
    const file = path.join(workDir, "needs-config.yaml");
    await writeFile(file, stringify(pod));
    await cp.kubectl(["apply", "-f", file]);
    const waiting = await waitFor("CreateContainerConfigError", async () => {
      const p = await kubectlJson<Pod>("get", "pod", "needs-config");
      const w = p.status?.containerStatuses?.[0]?.state?.waiting;
      return w?.reason === "CreateContainerConfigError" ? w : undefined;
    });
    expect(waiting.message).toContain("late-config");
    await cp.kubectl(["create", "configmap", "late-config", "--from-literal=mode=fast"]);
    await waitFor("the pod to run", async () => {
      const p = await kubectlJson<Pod>("get", "pod", "needs-config");
      return p.status?.containerStatuses?.[0]?.state?.running ? true : undefined;
    });
    expect(await cp.kubectl(["logs", "needs-config"])).toContain("mode=fast");
  }, 240_000);

  it("goes NotReady when the agent is killed and Ready again when it restarts, adopting its containers", async () => {
    const before = await runningContainerIds();
    expect(before.length).toBeGreaterThanOrEqual(5); // 3 web + static + needs-config
    await stopAgent("SIGKILL");
    await waitFor(
      "the controller-manager to mark the node not ready",
      async () => ((await nodeReady()) !== "True" ? true : undefined),
      120_000,
    );
    expect(await runningContainerIds()).toEqual(before); // pods keep running without the agent
    agent = startAgent();
    await waitFor("the node to be Ready again", async () =>
      (await nodeReady()) === "True" ? true : undefined,
    );
    // Give the restarted agent a few relists: it must adopt, not duplicate.
    await new Promise((r) => setTimeout(r, 8000));
    expect(await runningContainerIds()).toEqual(before);
    const web = podsOf(await kubectlJson<{ items: Pod[] }>("get", "pods"), "web");
    expect(web).toHaveLength(3);
  }, 300_000);
});
