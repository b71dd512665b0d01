// The standalone kubelet against real containerd (the lab's private containerd 1.6, CNI bridge,
// loopback registry): a failing liveness probe restarts the container, postStart and preStop
// hooks (exec, httpGet, sleep) run, an image that cannot be pulled goes ErrImagePull →
// ImagePullBackOff with growing back-off, emptyDir volumes (tmpfs for medium Memory, a disk
// directory shared by two containers), kubelet_pod_start_duration_seconds, and max-pods admission.
import { mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { ManifestDirSource, type Pod } from "@worknode/core";
import { CriClient } from "@worknode/cri";
import { type ContainerdLab, startContainerdLab } from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Kubelet,
  KubeletMetrics,
  LABEL_POD_UID,
  newCrashLoopBackoffWith,
  newImagePullBackoff,
  type PodStatus,
} from "../src/index.js";
import { waitFor, writeManifest } from "./system-helpers.js";

const LAB_CONTAINERD = {
  labDir: "/tmp/wnk5-lab",
  bridgeName: "wnk5b0",
  podSubnet: "10.90.0.0/16",
  streamPort: 10057,
};
const NODE = "wnk5-node";
const MISSING_IMAGE = "127.0.0.1:5000/does-not-exist:1";

let lab: ContainerdLab;
let client: CriClient;
let image: string;
const dirs: string[] = [];

function tempDir(prefix: string): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

beforeAll(async () => {
  lab = await startContainerdLab({ log: (l) => console.error(`[lab] ${l}`), containerd: LAB_CONTAINERD });
  client = new CriClient({ endpoint: lab.endpoint });
  image = lab.busyboxImage;
});

afterAll(async () => {
  client?.close();
  await lab?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function podByName(k: Kubelet, name: string): Pod | undefined {
  return k.pods().find((p) => p.metadata?.name === `${name}-${NODE}`);
}

function containerStatus(k: Kubelet, pod: string, container: string) {
  return podByName(k, pod)?.status?.containerStatuses?.find((c) => c.name === container);
}

function containerId(k: Kubelet, pod: string, container: string): string {
  return (containerStatus(k, pod, container)?.containerID ?? "").replace("containerd://", "");
}

async function exec(id: string, cmd: string[]): Promise<{ exitCode: number; stdout: string }> {
  const r = await client.runtime.execSync({ containerId: id, cmd, timeout: 10 });
  return { exitCode: r.exitCode, stdout: Buffer.from(r.stdout).toString() };
}

async function runtimeObjects(uid: string) {
  const sel = { labelSelector: { [LABEL_POD_UID]: uid } };
  const [{ items }, { containers }] = await Promise.all([
    client.runtime.listPodSandbox({ filter: sel }),
    client.runtime.listContainers({ filter: sel }),
  ]);
  return { sandboxes: items, containers };
}

function allRunning(p: Pod | undefined): boolean {
  const cs = p?.status?.containerStatuses ?? [];
  return cs.length === (p?.spec?.containers.length ?? -1) && cs.every((c) => c.state?.running);
}

/** A shell loop that exits 0 on SIGTERM after appending "term <epoch s>" to `file`. */
function termAware(file: string): string[] {
  return ["sh", "-c", `trap 'echo "term $(date +%s)" >> ${file}; exit 0' TERM; while true; do sleep 1; done`];
}

describe("standalone kubelet: probes, hooks, image pulls, volumes, pod start metric", () => {
  let kubelet: Kubelet;
  let source: ManifestDirSource;
  let manifestDir: string;
  let hookDir: string;
  let hookServer: Server;
  let hookPort = 0;
  const hookRequests: Array<{ url: string; at: number }> = [];
  const metrics = new KubeletMetrics({ nodeName: NODE });
  const statusLog: Array<{ name: string; status: PodStatus; at: number }> = [];

  beforeAll(async () => {
    manifestDir = tempDir("wnk5-manifests-");
    hookDir = tempDir("wnk5-hooks-");
    hookServer = createServer((req, res) => {
      hookRequests.push({ url: req.url ?? "", at: Date.now() });
      res.end("ok");
    });
    await new Promise<void>((r) => hookServer.listen(0, "127.0.0.1", r));
    hookPort = (hookServer.address() as AddressInfo).port;
    source = new ManifestDirSource({
      path: manifestDir,
      nodeName: NODE,
      debounceMs: 20,
      rescanIntervalMs: 1000,
    });
    kubelet = new Kubelet({
      client,
      nodeName: NODE,
      sources: [source],
      rootDir: tempDir("wnk5-root-"),
      podLogsDir: tempDir("wnk5-logs-"),
      resolvConf: "",
      relistPeriodMs: 500,
      resyncIntervalMs: 2000,
      errorRetryMs: 500,
      crashLoopBackoff: newCrashLoopBackoffWith(1000),
      imagePullBackoff: newImagePullBackoff(1000),
      onPodStarted: metrics.observePodStart,
      onStatus: (pod, status) =>
        statusLog.push({ name: pod.metadata?.name ?? "", status: structuredClone(status), at: Date.now() }),
    });
    await source.start();
    await kubelet.start();
  });

  afterAll(async () => {
    // Remove every pod through the kubelet so the next suite's kubelet starts on an empty runtime.
    if (kubelet && manifestDir) {
      for (const f of readdirSync(manifestDir)) unlinkSync(path.join(manifestDir, f));
      await waitFor("all pods removed", () => (kubelet.pods().length === 0 ? true : undefined), 60_000).catch(
        (e: unknown) => console.error(String(e)),
      );
      await kubelet.waitForTerminations();
    }
    await kubelet?.stop();
    await source?.stop();
    await new Promise((r) => hookServer?.close(r));
  });

  it("restarts a container whose liveness probe fails, keeping the last state", async () => {
    writeManifest(manifestDir, "liveness.yaml", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "liveness" },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [
          {
            name: "app",
            image,
            // Healthy for 2 s after each start, then the probe's file is gone.
            command: ["sh", "-c", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 3600"],
            livenessProbe: {
              exec: { command: ["test", "-f", "/tmp/healthy"] },
              periodSeconds: 1,
              failureThreshold: 1,
            },
          },
        ],
      },
    });
    const first = await waitFor("liveness running", () => {
      const c = containerStatus(kubelet, "liveness", "app");
      return c?.state?.running && c.restartCount === 0 ? c : undefined;
    });
    const restarted = await waitFor(
      "liveness restarted twice",
      () => {
        const c = containerStatus(kubelet, "liveness", "app");
        return (c?.restartCount ?? 0) >= 2 ? c : undefined;
      },
      90_000,
    );
    expect(restarted.containerID).not.toBe(first.containerID);
    // Killed by the kubelet: the shell ignores SIGTERM as PID 1, so the runtime SIGKILLs it.
    expect(restarted.lastState?.terminated?.exitCode).toBe(137);
    expect(restarted.lastState?.terminated?.reason).toBe("Error");
    const uid = podByName(kubelet, "liveness")?.metadata?.uid ?? "";
    expect((await runtimeObjects(uid)).sandboxes.length).toBe(1);
    unlinkSync(path.join(manifestDir, "liveness.yaml"));
    await waitFor("liveness gone", () => (podByName(kubelet, "liveness") ? undefined : true));
  });

  it("runs postStart, and at deletion the exec, httpGet and sleep preStop hooks within the grace period", async () => {
    writeManifest(manifestDir, "hooks.yaml", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "hooks" },
      spec: {
        terminationGracePeriodSeconds: 15,
        volumes: [{ name: "out", hostPath: { path: hookDir, type: "Directory" } }],
        containers: [
          {
            name: "exec",
            image,
            command: termAware("/out/exec"),
            volumeMounts: [{ name: "out", mountPath: "/out" }],
            lifecycle: {
              postStart: {
                exec: { command: ["sh", "-c", "echo started > /tmp/poststart; echo poststart >> /out/exec"] },
              },
              preStop: { exec: { command: ["sh", "-c", "echo prestop >> /out/exec"] } },
            },
          },
          {
            name: "http",
            image,
            command: termAware("/out/http"),
            volumeMounts: [{ name: "out", mountPath: "/out" }],
            lifecycle: {
              preStop: { httpGet: { host: "127.0.0.1", port: hookPort, path: "/prestop/http" } },
            },
          },
          {
            name: "sleep",
            image,
            command: termAware("/out/sleep"),
            volumeMounts: [{ name: "out", mountPath: "/out" }],
            lifecycle: { preStop: { sleep: { seconds: 3 } } },
          },
        ],
      },
    });
    await waitFor("hooks running", () => allRunning(podByName(kubelet, "hooks")));
    const id = containerId(kubelet, "hooks", "exec");
    expect(await exec(id, ["cat", "/tmp/poststart"])).toEqual({ exitCode: 0, stdout: "started\n" });
    expect(readFileSync(path.join(hookDir, "exec"), "utf8")).toBe("poststart\n");
    expect(hookRequests).toEqual([]);

    const deletedAt = Date.now();
    unlinkSync(path.join(manifestDir, "hooks.yaml"));
    await waitFor("hooks removed", () => (podByName(kubelet, "hooks") ? undefined : true), 60_000);
    await kubelet.waitForTerminations();
    const elapsed = Date.now() - deletedAt;
    expect(elapsed).toBeLessThan(15_000);

    // exec: the hook ran before SIGTERM reached the container.
    const execLines = readFileSync(path.join(hookDir, "exec"), "utf8").trim().split("\n");
    expect(execLines.slice(0, 2)).toEqual(["poststart", "prestop"]);
    expect(execLines[2]).toMatch(/^term \d+$/);
    // httpGet: the kubelet called the hook once, before the container got SIGTERM.
    expect(hookRequests.map((r) => r.url)).toEqual(["/prestop/http"]);
    const httpTerm = Number(
      /^term (\d+)$/.exec(readFileSync(path.join(hookDir, "http"), "utf8").trim())?.[1],
    );
    expect(httpTerm).toBeGreaterThanOrEqual(Math.floor((hookRequests[0]?.at ?? 0) / 1000));
    // sleep: SIGTERM came only after the 3 s sleep; the other containers did not wait for it.
    const sleepTerm = Number(
      /^term (\d+)$/.exec(readFileSync(path.join(hookDir, "sleep"), "utf8").trim())?.[1],
    );
    expect(sleepTerm).toBeGreaterThanOrEqual(Math.floor(deletedAt / 1000) + 3);
    const execTerm = Number(/^term (\d+)$/.exec(execLines[2] ?? "")?.[1]);
    expect(execTerm).toBeLessThan(sleepTerm);
  });

  it("reports ErrImagePull, then ImagePullBackOff with a growing back-off, for an image that does not exist", async () => {
    writeManifest(manifestDir, "badimage.yaml", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "badimage" },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [{ name: "app", image: MISSING_IMAGE, command: ["sleep", "3600"] }],
      },
    });
    const name = `badimage-${NODE}`;
    const waiting = () =>
      statusLog
        .filter((e) => e.name === name)
        .map((e) => ({ at: e.at, w: e.status.containerStatuses?.[0]?.state?.waiting }));
    // Pull attempts: each status that reports ErrImagePull right after one that did not.
    const attempts = () =>
      waiting().filter(
        (e, i, all) => e.w?.reason === "ErrImagePull" && all[i - 1]?.w?.reason !== "ErrImagePull",
      );
    await waitFor("4 pull attempts", () => (attempts().length >= 4 ? true : undefined), 90_000);
    const seen = waiting();
    const first = seen.findIndex((e) => e.w?.reason === "ErrImagePull");
    expect(first).toBeGreaterThanOrEqual(0);
    expect(seen[first]?.w?.message).toContain(`Failed to pull image "${MISSING_IMAGE}"`);
    expect(seen.slice(first + 1).some((e) => e.w?.reason === "ImagePullBackOff")).toBe(true);
    const backOff = seen.find((e) => e.w?.reason === "ImagePullBackOff");
    expect(backOff?.w?.message).toBe(`Back-off pulling image "${MISSING_IMAGE}"`);
    const p = podByName(kubelet, "badimage");
    expect(p?.status?.phase).toBe("Pending");
    // Back-off 1 s → 2 s → 4 s (kubelet's doubling from a 1 s start): each gap is longer.
    const at = attempts().map((a) => a.at);
    const gaps = at.slice(1).map((t, i) => t - (at[i] as number));
    for (let i = 1; i < gaps.length; i++)
      expect(gaps[i], gaps.join(",")).toBeGreaterThan(gaps[i - 1] as number);
    expect(gaps[0]).toBeGreaterThanOrEqual(1000);
    unlinkSync(path.join(manifestDir, "badimage.yaml"));
    await waitFor("badimage gone", () => (podByName(kubelet, "badimage") ? undefined : true));
  });

  it("mounts a tmpfs for an emptyDir with medium Memory and shares a disk emptyDir between containers", async () => {
    writeManifest(manifestDir, "volumes.yaml", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "volumes" },
      spec: {
        terminationGracePeriodSeconds: 1,
        volumes: [
          { name: "shared", emptyDir: {} },
          { name: "mem", emptyDir: { medium: "Memory", sizeLimit: "16Mi" } },
        ],
        containers: [
          {
            name: "writer",
            image,
            command: ["sh", "-c", "echo from-writer > /shared/note; sleep 3600"],
            volumeMounts: [
              { name: "shared", mountPath: "/shared" },
              { name: "mem", mountPath: "/mem" },
            ],
          },
          {
            name: "reader",
            image,
            command: ["sleep", "3600"],
            volumeMounts: [{ name: "shared", mountPath: "/data" }],
          },
        ],
      },
    });
    await waitFor("volumes running", () => allRunning(podByName(kubelet, "volumes")));
    const writer = containerId(kubelet, "volumes", "writer");
    const reader = containerId(kubelet, "volumes", "reader");
    const mounts = (await exec(writer, ["cat", "/proc/mounts"])).stdout.split("\n");
    const mem = mounts.find((l) => l.split(" ")[1] === "/mem");
    expect(mem?.split(" ")[2]).toBe("tmpfs");
    expect(mem).toContain("size=16384k");
    const shared = mounts.find((l) => l.split(" ")[1] === "/shared");
    expect(shared).toBeDefined();
    expect(shared?.split(" ")[2]).not.toBe("tmpfs");
    await waitFor("the writer's note", async () =>
      (await exec(reader, ["cat", "/data/note"])).stdout === "from-writer\n" ? true : undefined,
    );
    expect((await exec(reader, ["sh", "-c", "echo from-reader > /data/back"])).exitCode).toBe(0);
    expect((await exec(writer, ["cat", "/shared/back"])).stdout).toBe("from-reader\n");
    // The reader does not see the writer's memory volume.
    expect((await exec(reader, ["cat", "/proc/mounts"])).stdout).not.toContain(" /mem ");
  });

  it("observes kubelet_pod_start_duration_seconds and its SLI once per pod that got all containers running", async () => {
    const started = new Set(
      statusLog
        .filter((e) => {
          const cs = e.status.containerStatuses ?? [];
          return cs.length > 0 && cs.every((c) => c.state?.running);
        })
        .map((e) => e.name),
    );
    expect([...started].sort()).toEqual([`hooks-${NODE}`, `liveness-${NODE}`, `volumes-${NODE}`]);
    const text = await metrics.registry.metrics();
    expect(text).toContain(`kubelet_pod_start_duration_seconds_count ${started.size}`);
    const sum = Number(/kubelet_pod_start_duration_seconds_sum (\S+)/.exec(text)?.[1]);
    expect(sum).toBeGreaterThan(0);
    expect(text).toContain(`kubelet_pod_start_duration_seconds_bucket{le="3600"} ${started.size}`);
    // The SLI histogram sees the same starts, each without its image pulls: never longer.
    expect(text).toContain(`kubelet_pod_start_sli_duration_seconds_count ${started.size}`);
    const sli = Number(/kubelet_pod_start_sli_duration_seconds_sum (\S+)/.exec(text)?.[1]);
    expect(sli).toBeGreaterThan(0);
    expect(sli).toBeLessThanOrEqual(sum);
  });
});

describe("standalone kubelet: max-pods admission", () => {
  let kubelet: Kubelet;
  let source: ManifestDirSource;
  let manifestDir: string;

  beforeAll(async () => {
    manifestDir = tempDir("wnk5-maxpods-");
    source = new ManifestDirSource({
      path: manifestDir,
      nodeName: NODE,
      debounceMs: 20,
      rescanIntervalMs: 1000,
    });
    kubelet = new Kubelet({
      client,
      nodeName: NODE,
      sources: [source],
      rootDir: tempDir("wnk5-root2-"),
      podLogsDir: tempDir("wnk5-logs2-"),
      resolvConf: "",
      relistPeriodMs: 500,
      maxPods: 2,
    });
    await source.start();
    await kubelet.start();
  });

  afterAll(async () => {
    if (kubelet && manifestDir) {
      for (const f of readdirSync(manifestDir)) unlinkSync(path.join(manifestDir, f));
      await waitFor("all pods removed", () => (kubelet.pods().length === 0 ? true : undefined), 60_000).catch(
        (e: unknown) => console.error(String(e)),
      );
      await kubelet.waitForTerminations();
    }
    await kubelet?.stop();
    await source?.stop();
  });

  const sleeper = (name: string) => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name },
    spec: {
      terminationGracePeriodSeconds: 0,
      containers: [{ name: "main", image, command: ["sleep", "3600"] }],
    },
  });

  it("rejects the pod beyond max-pods with OutOfpods while the admitted ones keep running", async () => {
    writeManifest(manifestDir, "one.yaml", sleeper("one"));
    writeManifest(manifestDir, "two.yaml", sleeper("two"));
    await waitFor("two pods running", () =>
      allRunning(podByName(kubelet, "one")) && allRunning(podByName(kubelet, "two")) ? true : undefined,
    );
    writeManifest(manifestDir, "three.yaml", sleeper("three"));
    const three = await waitFor("three rejected", () => {
      const p = podByName(kubelet, "three");
      return p?.status?.phase === "Failed" ? p : undefined;
    });
    expect(three.status?.reason).toBe("OutOfpods");
    expect(three.status?.message).toMatch(/^Pod was rejected: /);
    expect((await runtimeObjects(three.metadata?.uid ?? "")).sandboxes).toEqual([]);
    // Let a few relists and resyncs pass: the admitted pods are untouched.
    const ids = ["one", "two"].map((n) => containerId(kubelet, n, "main"));
    await new Promise((r) => setTimeout(r, 2000));
    expect(["one", "two"].map((n) => containerId(kubelet, n, "main"))).toEqual(ids);
    expect(["one", "two"].every((n) => allRunning(podByName(kubelet, n)))).toBe(true);
  });
});
