// The standalone kubelet against real containerd (the lab's private containerd 1.6, CNI bridge,
// loopback registry): static pods from a manifest directory run, restart, crash-loop, get replaced
// and removed, and a SIGKILLed kubelet's successor adopts what runs without duplicates.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ManifestDirSource, type Pod } from "@worknode/core";
import { ContainerState, CriClient, PodSandboxState } from "@worknode/cri";
import { type ContainerdLab, startContainerdLab } from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { Kubelet, LABEL_POD_UID, newCrashLoopBackoffWith, type PodStatus } from "../src/index.js";

const LAB_CONTAINERD = {
  labDir: "/tmp/wnkub-lab",
  bridgeName: "wnkub0",
  podSubnet: "10.82.0.0/16",
  streamPort: 10051,
};
const NODE = "wnkub-node";

let lab: ContainerdLab;
let client: CriClient;
let manifestDir: string;
let rootDir: string;
let logsDir: string;
let image: string;

beforeAll(async () => {
  lab = await startContainerdLab({ log: (l) => console.error(`[lab] ${l}`), containerd: LAB_CONTAINERD });
  client = new CriClient({ endpoint: lab.endpoint });
  image = lab.busyboxImage;
  manifestDir = mkdtempSync(path.join(tmpdir(), "wnkub-manifests-"));
  rootDir = mkdtempSync(path.join(tmpdir(), "wnkub-root-"));
  logsDir = mkdtempSync(path.join(tmpdir(), "wnkub-logs-"));
});

afterAll(async () => {
  client?.close();
  await lab?.stop();
  for (const d of [manifestDir, rootDir, logsDir]) if (d) rmSync(d, { recursive: true, force: true });
});

async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 60_000,
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
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

function writeManifest(file: string, pod: unknown): void {
  const tmp = path.join(manifestDir, `.${file}.tmp`);
  writeFileSync(tmp, stringify(pod));
  // rename: the source sees the whole file at once
  renameSync(tmp, path.join(manifestDir, file));
}

function podByName(k: Kubelet, name: string): Pod | undefined {
  return k.pods().find((p) => p.metadata?.name === `${name}-${NODE}`);
}

function condition(s: PodStatus | undefined, type: string): string | undefined {
  return s?.conditions?.find((c) => c.type === type)?.status;
}

async function runtimeObjects(uid: string) {
  const sel = { labelSelector: { [LABEL_POD_UID]: uid } };
  const [{ items }, { containers }] = await Promise.all([
    client.runtime.listPodSandbox({ filter: sel }),
    client.runtime.listContainers({ filter: sel }),
  ]);
  return { sandboxes: items, containers };
}

async function fetchText(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
  return res.text();
}

function webPod(extraLabel = "") {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "web", labels: { app: "web", ...(extraLabel ? { rev: extraLabel } : {}) } },
    spec: {
      terminationGracePeriodSeconds: 3,
      volumes: [{ name: "www", emptyDir: {} }],
      initContainers: [
        {
          name: "init",
          image,
          command: ["sh", "-c", 'echo "hello from init $POD_NAME" > /www/index.html'],
          env: [{ name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } }],
          volumeMounts: [{ name: "www", mountPath: "/www" }],
        },
      ],
      containers: [
        {
          name: "web",
          image,
          command: ["httpd", "-f", "-p", "8080", "-h", "/www"],
          ports: [{ containerPort: 8080, name: "http" }],
          volumeMounts: [{ name: "www", mountPath: "/www" }],
          readinessProbe: {
            exec: { command: ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"] },
            periodSeconds: 1,
          },
        },
        {
          name: "echo",
          image,
          command: ["httpd", "-f", "-p", "9090", "-h", "/www"],
          volumeMounts: [{ name: "www", mountPath: "/www", readOnly: true }],
        },
      ],
    },
  };
}

describe("standalone kubelet on real containerd", () => {
  let kubelet: Kubelet;
  let source: ManifestDirSource;
  const statusLog: Array<{ name: string; status: PodStatus; at: number }> = [];

  beforeAll(async () => {
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
      rootDir,
      podLogsDir: logsDir,
      resolvConf: "",
      relistPeriodMs: 500,
      resyncIntervalMs: 2000,
      crashLoopBackoff: newCrashLoopBackoffWith(1000),
      onStatus: (pod, status) =>
        statusLog.push({ name: pod.metadata?.name ?? "", status: structuredClone(status), at: Date.now() }),
    });
    writeManifest("web.yaml", webPod());
    writeManifest("hog.yaml", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "hog" },
      spec: {
        containers: [
          { name: "hog", image, command: ["sleep", "3600"], resources: { requests: { cpu: "1000" } } },
        ],
      },
    });
    await source.start();
    await kubelet.start();
  });

  afterAll(async () => {
    await kubelet?.stop();
    await source?.stop();
  });

  it("runs a pod with an init container and two app containers to Running and Ready, serving on its IP", async () => {
    const pod = await waitFor("web Ready", () => {
      const p = podByName(kubelet, "web");
      return condition(p?.status, "Ready") === "True" ? p : undefined;
    });
    const s = pod.status as PodStatus;
    expect(s.phase).toBe("Running");
    expect(condition(s, "Initialized")).toBe("True");
    expect(condition(s, "ContainersReady")).toBe("True");
    expect(condition(s, "PodReadyToStartContainers")).toBe("True");
    expect(s.initContainerStatuses?.[0]?.state?.terminated?.reason).toBe("Completed");
    expect(s.containerStatuses?.map((c) => [c.name, Boolean(c.state?.running), c.ready])).toEqual([
      ["echo", true, true],
      ["web", true, true],
    ]);
    expect(s.containerStatuses?.[0]?.containerID).toMatch(/^containerd:\/\/[0-9a-f]{64}$/);
    expect(s.podIP?.startsWith("10.82.")).toBe(true);
    const body = await fetchText(`http://${s.podIP}:8080/`);
    expect(body).toBe(`hello from init web-${NODE}\n`);
    expect(await fetchText(`http://${s.podIP}:9090/`)).toBe(body);

    const uid = pod.metadata?.uid ?? "";
    const logDir = path.join(logsDir, `default_web-${NODE}_${uid}`);
    expect(existsSync(path.join(logDir, "web", "0.log"))).toBe(true);
    expect(existsSync(path.join(logDir, "init", "0.log"))).toBe(true);
    const objs = await runtimeObjects(uid);
    expect(objs.sandboxes.length).toBe(1);
    expect(objs.containers.filter((c) => c.state === ContainerState.CONTAINER_RUNNING).length).toBe(2);
  });

  it("rejects a pod that does not fit with a Failed status while the others run", async () => {
    const hog = await waitFor("hog rejected", () => {
      const p = podByName(kubelet, "hog");
      return p?.status?.phase === "Failed" ? p : undefined;
    });
    expect(hog.status?.reason).toBe("OutOfcpu");
    expect(hog.status?.message).toMatch(/^Pod was rejected: Node didn't have enough resource: cpu/);
    expect((await runtimeObjects(hog.metadata?.uid ?? "")).sandboxes).toEqual([]);
    unlinkSync(path.join(manifestDir, "hog.yaml"));
    await waitFor("hog gone", () => (podByName(kubelet, "hog") ? undefined : true));
  });

  it("restarts a container whose process was killed from outside and counts the restart", async () => {
    const before = podByName(kubelet, "web")?.status?.containerStatuses?.find((c) => c.name === "web");
    const id = (before?.containerID ?? "").replace("containerd://", "");
    const verbose = await client.runtime.containerStatus({ containerId: id, verbose: true });
    const pid = (JSON.parse(verbose.info.info ?? "{}") as { pid?: number }).pid ?? 0;
    expect(pid).toBeGreaterThan(1);
    process.kill(pid, "SIGKILL");
    const after = await waitFor("web restarted", () => {
      const c = podByName(kubelet, "web")?.status?.containerStatuses?.find((x) => x.name === "web");
      return c?.restartCount === 1 && c.state?.running ? c : undefined;
    });
    expect(after.containerID).not.toBe(before?.containerID);
    expect(after.lastState?.terminated?.exitCode).toBe(137);
    const s = podByName(kubelet, "web")?.status;
    await waitFor("web Ready again", () =>
      condition(podByName(kubelet, "web")?.status, "Ready") === "True" ? true : undefined,
    );
    expect(await fetchText(`http://${s?.podIP}:8080/`)).toContain("hello from init");
  });

  it("shows CrashLoopBackOff with growing delays for a container that exits 1", async () => {
    writeManifest("crash.yaml", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "crash" },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [{ name: "crash", image, command: ["sh", "-c", "echo failing; exit 1"] }],
      },
    });
    const c = await waitFor(
      "crash restarted 4 times",
      () => {
        const x = podByName(kubelet, "crash")?.status?.containerStatuses?.[0];
        return (x?.restartCount ?? 0) >= 4 ? x : undefined;
      },
      90_000,
    );
    expect(c.lastState?.terminated?.exitCode).toBe(1);
    const messages = statusLog
      .filter((e) => e.name === `crash-${NODE}`)
      .map((e) => e.status.containerStatuses?.[0]?.state?.waiting)
      .filter((w) => w?.reason === "CrashLoopBackOff")
      .map((w) => w?.message ?? "");
    const delays = [
      ...new Set(messages.map((m) => /^back-off (\d+)s restarting failed container=crash/.exec(m)?.[1])),
    ]
      .filter((d): d is string => d !== undefined)
      .map(Number);
    expect(delays.length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < delays.length; i++) expect(delays[i]).toBeGreaterThan(delays[i - 1] as number);
    // The kubelet keeps at most two instances of a crashing container.
    const objs = await runtimeObjects(podByName(kubelet, "crash")?.metadata?.uid ?? "");
    expect(objs.containers.length).toBeLessThanOrEqual(3);
    unlinkSync(path.join(manifestDir, "crash.yaml"));
    await waitFor("crash gone", () => (podByName(kubelet, "crash") ? undefined : true));
  });

  it("replaces the pod when its manifest changes and stops it within its grace period when removed", async () => {
    const oldUid = podByName(kubelet, "web")?.metadata?.uid ?? "";
    writeManifest("web.yaml", webPod("2"));
    const fresh = await waitFor("new web Ready", () => {
      const p = podByName(kubelet, "web");
      return p?.metadata?.uid !== oldUid && condition(p?.status, "Ready") === "True" ? p : undefined;
    });
    expect(fresh.metadata?.labels?.rev).toBe("2");
    expect(await runtimeObjects(oldUid)).toEqual({ sandboxes: [], containers: [] });
    expect(existsSync(path.join(rootDir, "pods", oldUid))).toBe(false);
    const newUid = fresh.metadata?.uid ?? "";
    expect((await runtimeObjects(newUid)).sandboxes.length).toBe(1);

    const t0 = Date.now();
    unlinkSync(path.join(manifestDir, "web.yaml"));
    await waitFor("web removed", () => (podByName(kubelet, "web") ? undefined : true), 30_000);
    await kubelet.waitForTerminations();
    const elapsed = Date.now() - t0;
    // grace 3 s (busybox httpd ignores SIGTERM as PID 1, so the runtime SIGKILLs at the end of it)
    expect(elapsed).toBeLessThan(3000 + 5000);
    expect(await runtimeObjects(newUid)).toEqual({ sandboxes: [], containers: [] });
  });
  it("starts 30 static pods that all report Running, and removes them", async () => {
    const names = Array.from({ length: 30 }, (_, i) => `many-${i}`);
    for (const n of names) {
      writeManifest(`${n}.yaml`, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: n },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [{ name: "main", image, command: ["sleep", "3600"] }],
        },
      });
    }
    await waitFor(
      "30 pods Running",
      () => (names.every((n) => podByName(kubelet, n)?.status?.phase === "Running") ? true : undefined),
      240_000,
    );
    const ips = new Set(names.map((n) => podByName(kubelet, n)?.status?.podIP));
    expect(ips.size).toBe(30);
    for (const n of names) unlinkSync(path.join(manifestDir, `${n}.yaml`));
    await waitFor(
      "30 pods removed",
      () => (names.some((n) => podByName(kubelet, n)) ? undefined : true),
      240_000,
    );
    await kubelet.waitForTerminations();
    const { items } = await client.runtime.listPodSandbox({});
    expect(items.filter((i) => i.metadata?.name.startsWith("many-"))).toEqual([]);
  }, 600_000);
});

describe("restart safety", () => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const children: ChildProcess[] = [];

  function startChild(): ChildProcess {
    const child = spawn(
      process.execPath,
      [
        "--conditions=@worknode/source",
        "--import",
        "tsx",
        path.join(here, "runtime", "kubelet-child.ts"),
        JSON.stringify({ endpoint: lab.endpoint, manifestDir, nodeName: NODE, rootDir, podLogsDir: logsDir }),
      ],
      { stdio: ["ignore", "pipe", "inherit"], cwd: path.join(here, "..", "..", "..") },
    );
    children.push(child);
    // One listener for the child's whole life: output is never lost between polls.
    const output = { text: "" };
    childOutput.set(child, output);
    child.stdout?.on("data", (chunk: Buffer) => {
      output.text += chunk.toString();
    });
    return child;
  }

  const childOutput = new Map<ChildProcess, { text: string }>();

  function exited(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((r) => child.once("exit", () => r()));
  }

  afterAll(() => {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  });

  it("a kubelet SIGKILLed mid-start is followed by one that adopts without duplicates and removes orphans", async () => {
    // An orphan the kubelet labelled (its pod is gone) and a sandbox that is not the kubelet's.
    const orphanUid = "orphan-0000-1111";
    const orphan = await client.runtime.runPodSandbox({
      config: {
        metadata: { name: "ghost", uid: orphanUid, namespace: "default" },
        labels: {
          "io.kubernetes.pod.name": "ghost",
          "io.kubernetes.pod.namespace": "default",
          [LABEL_POD_UID]: orphanUid,
        },
        logDirectory: path.join(logsDir, "ghost"),
      },
    });
    const foreign = await client.runtime.runPodSandbox({
      config: {
        metadata: { name: "foreign", uid: "foreign-uid", namespace: "other" },
        labels: { "not.the.kubelet": "yes" },
        logDirectory: path.join(logsDir, "foreign"),
      },
    });

    writeManifest("trio.yaml", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "trio" },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: ["a", "b", "c"].map((n) => ({ name: n, image, command: ["sleep", "3600"] })),
      },
    });
    const first = startChild();
    // Kill it mid-start: once the sandbox and a first container exist, before all containers run.
    const uid = await waitFor(
      "trio sandbox",
      async () => {
        const { items } = await client.runtime.listPodSandbox({
          filter: { labelSelector: { "io.kubernetes.pod.name": `trio-${NODE}` } },
        });
        const id = items[0]?.labels[LABEL_POD_UID];
        if (!id) return undefined;
        const { containers } = await client.runtime.listContainers({
          filter: { labelSelector: { [LABEL_POD_UID]: id } },
        });
        return containers.length >= 1 ? id : undefined;
      },
      60_000,
    );
    first.kill("SIGKILL");
    await exited(first);
    const mid = await runtimeObjects(uid);
    console.error(
      `[restart] at SIGKILL: ${mid.sandboxes.length} sandbox(es), ${mid.containers.length} container(s)`,
    );

    const second = startChild();
    await waitFor(
      "second kubelet ready",
      async () => (childOutput.get(second)?.text.includes("started") ? true : undefined),
      60_000,
    );
    const final = await waitFor("trio: three running containers", async () => {
      const o = await runtimeObjects(uid);
      const running = o.containers.filter((c) => c.state === ContainerState.CONTAINER_RUNNING);
      return running.length >= 3 ? o : undefined;
    });
    // Let a few more relists and resyncs pass: nothing new may appear.
    await new Promise((r) => setTimeout(r, 3000));
    const settled = await runtimeObjects(uid);
    const running = settled.containers.filter((c) => c.state === ContainerState.CONTAINER_RUNNING);
    expect(running.map((c) => c.metadata?.name).sort()).toEqual(["a", "b", "c"]);
    // One set: exactly one running instance per container. A dead instance may remain only as an
    // earlier attempt of the same container (the kubelet keeps it for `--previous` logs, and the
    // first kubelet's interrupted start leaves one), never as a second live copy.
    const listing = settled.containers.map(
      (c) => `${c.metadata?.name}#${c.metadata?.attempt}:${ContainerState[c.state]}`,
    );
    const dead = settled.containers.filter((c) => c.state !== ContainerState.CONTAINER_RUNNING);
    for (const d of dead) {
      const live = running.find((r) => r.metadata?.name === d.metadata?.name);
      expect(live?.metadata?.attempt ?? -1, listing.join(" ")).toBeGreaterThan(d.metadata?.attempt ?? 0);
    }
    expect(new Set(dead.map((d) => d.metadata?.name)).size, listing.join(" ")).toBe(dead.length);
    expect(settled.sandboxes.filter((s) => s.state === PodSandboxState.SANDBOX_READY).length).toBe(1);
    expect(final.sandboxes.map((s) => s.id)).toEqual(settled.sandboxes.map((s) => s.id));

    // The labelled orphan was removed; the foreign sandbox was left alone.
    await waitFor("orphan removed", async () => {
      const { items } = await client.runtime.listPodSandbox({ filter: { id: orphan.podSandboxId } });
      return items.length === 0 ? true : undefined;
    });
    const { items: foreignLeft } = await client.runtime.listPodSandbox({
      filter: { id: foreign.podSandboxId },
    });
    expect(foreignLeft.length).toBe(1);
    await client.runtime.stopPodSandbox({ podSandboxId: foreign.podSandboxId });
    await client.runtime.removePodSandbox({ podSandboxId: foreign.podSandboxId });

    // SIGTERM: the kubelet stops, the pod keeps running.
    expect(second.exitCode).toBeNull();
    second.kill("SIGTERM");
    await exited(second);
    const afterStop = await runtimeObjects(uid);
    expect(afterStop.containers.filter((c) => c.state === ContainerState.CONTAINER_RUNNING).length).toBe(3);

    // Clean up through a kubelet: removing the manifest stops and removes the pod.
    unlinkSync(path.join(manifestDir, "trio.yaml"));
    const third = startChild();
    await waitFor(
      "trio removed",
      async () => {
        const o = await runtimeObjects(uid);
        return o.sandboxes.length === 0 && o.containers.length === 0 ? true : undefined;
      },
      60_000,
    );
    third.kill("SIGTERM");
    await exited(third);
  });
});
