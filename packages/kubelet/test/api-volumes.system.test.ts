// API-backed pod features against a real kube-apiserver (Node,RBAC authorization + NodeRestriction)
// and real containerd: the kubelet reads ConfigMaps, Secrets, service-account tokens and Services
// with the node's own client certificate (so the Node authorizer decides what it may read), writes
// configMap / secret / downwardAPI / projected volumes, resolves env references, and posts events.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { type ConfigMap, KubeApiClient, type Pod, SnapshotObjectSource } from "@worknode/core";
import { CriClient } from "@worknode/cri";
import {
  type ContainerdLab,
  type ControlPlane,
  startContainerdLab,
  startControlPlane,
} from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ApiEventRecorder,
  ApiPodObjectProvider,
  Kubelet,
  PodObjectError,
  type PodStatus,
} from "../src/index.js";

const LAB_CONTAINERD = {
  labDir: "/tmp/wnvol-lab",
  bridgeName: "wnvol0",
  podSubnet: "10.87.0.0/16",
  streamPort: 10054,
};
const NODE = "wnvol-node";
const NS = "default";

let cp: ControlPlane;
let lab: ContainerdLab;
let cri: CriClient;
let admin: KubeApiClient;
let nodeClient: KubeApiClient;
let kubelet: Kubelet;
let recorder: ApiEventRecorder;
let rootDir: string;
let logsDir: string;
const source = new SnapshotObjectSource<Pod>({ kind: "Pod" });
const pods = new Map<string, Pod>();

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
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

async function createPod(spec: Record<string, unknown>, name: string): Promise<Pod> {
  const created = await admin.requestJson<Pod>("POST", `/api/v1/namespaces/${NS}/pods`, {
    body: { apiVersion: "v1", kind: "Pod", metadata: { name, namespace: NS, labels: { app: name } }, spec },
  });
  pods.set(name, created);
  source.replace(pods.values());
  return created;
}

function status(pod: Pod): PodStatus | undefined {
  return kubelet.podStatus(pod.metadata?.uid ?? "");
}

function runningContainerId(pod: Pod, name: string): string | undefined {
  const c = status(pod)?.containerStatuses?.find((x) => x.name === name);
  if (!c?.state?.running) return undefined;
  return c.containerID?.replace(/^containerd:\/\//, "");
}

async function exec(containerId: string, cmd: string[]): Promise<string> {
  const r = await cri.runtime.execSync({ containerId, cmd, timeout: 10 });
  if (r.exitCode !== 0) {
    throw new Error(`${cmd.join(" ")} exited ${r.exitCode}: ${Buffer.from(r.stderr).toString("utf8")}`);
  }
  return Buffer.from(r.stdout).toString("utf8");
}

interface EventList {
  items: Array<{
    reason?: string;
    message?: string;
    type?: string;
    count?: number;
    source?: { component?: string; host?: string };
    involvedObject?: { fieldPath?: string; uid?: string; kind?: string };
  }>;
}

async function podEvents(pod: Pod): Promise<EventList["items"]> {
  const list = await admin.requestJson<EventList>("GET", `/api/v1/namespaces/${NS}/events`, {
    query: { fieldSelector: `involvedObject.uid=${pod.metadata?.uid ?? ""}` },
  });
  return list.items;
}

beforeAll(async () => {
  [cp, lab] = await Promise.all([
    startControlPlane(),
    startContainerdLab({ log: (l) => console.error(`[lab] ${l}`), containerd: LAB_CONTAINERD }),
  ]);
  cri = new CriClient({ endpoint: lab.endpoint });
  admin = new KubeApiClient(cp.adminKubeConfig);
  const nodeKc = new KubeConfig();
  nodeKc.loadFromFile(await cp.nodeCredentials(NODE));
  nodeClient = new KubeApiClient(nodeKc);
  rootDir = mkdtempSync(path.join(tmpdir(), "wnvol-root-"));
  logsDir = mkdtempSync(path.join(tmpdir(), "wnvol-logs-"));

  await admin.requestJson("POST", "/api/v1/nodes", {
    body: { apiVersion: "v1", kind: "Node", metadata: { name: NODE } },
  });
  // The root CA ConfigMap every kube-api-access volume projects (published by the controller manager).
  await waitFor("ConfigMap kube-root-ca.crt", () =>
    admin.requestJson<ConfigMap>("GET", `/api/v1/namespaces/${NS}/configmaps/kube-root-ca.crt`),
  );
  await admin.requestJson("POST", `/api/v1/namespaces/${NS}/configmaps`, {
    body: {
      metadata: { name: "app-config" },
      data: { greeting: "hello", LEVEL: "debug", "1bad": "skipped" },
    },
  });
  await admin.requestJson("POST", `/api/v1/namespaces/${NS}/secrets`, {
    body: { metadata: { name: "app-secret" }, data: { password: b64("s3cret") } },
  });
  const registryAuth = { auths: { [lab.registry.host]: { username: "puller", password: "pw" } } };
  await admin.requestJson("POST", `/api/v1/namespaces/${NS}/secrets`, {
    body: {
      metadata: { name: "regcred" },
      type: "kubernetes.io/dockerconfigjson",
      data: { ".dockerconfigjson": b64(JSON.stringify(registryAuth)) },
    },
  });
  await admin.requestJson("POST", `/api/v1/namespaces/${NS}/services`, {
    body: { metadata: { name: "my-db" }, spec: { ports: [{ name: "sql", port: 5432 }] } },
  });

  recorder = new ApiEventRecorder({ client: nodeClient, host: NODE, retryDelayMs: 200 });
  kubelet = new Kubelet({
    client: cri,
    nodeName: NODE,
    sources: [source],
    rootDir,
    podLogsDir: logsDir,
    resolvConf: "",
    relistPeriodMs: 500,
    resyncIntervalMs: 1500,
    errorRetryMs: 1000,
    objects: new ApiPodObjectProvider({ client: nodeClient, ttlMs: 1000 }),
    recorder,
  });
  source.replace([]);
  await kubelet.start();
});

afterAll(async () => {
  try {
    if (kubelet) {
      source.replace([]);
      await Promise.race([kubelet.waitForTerminations(), new Promise((r) => setTimeout(r, 30_000))]);
      await kubelet.stop();
    }
    await recorder?.flush();
  } finally {
    cri?.close();
    await lab?.stop();
    await cp?.stop();
    for (const d of [rootDir, logsDir]) if (d) rmSync(d, { recursive: true, force: true });
  }
});

describe("kubelet with an API server: volumes, env and events", () => {
  let pod: Pod;
  let id: string;

  it("runs a pod with configMap, secret, downwardAPI and projected volumes and env from the API", async () => {
    pod = await createPod(
      {
        nodeName: NODE,
        terminationGracePeriodSeconds: 1,
        imagePullSecrets: [{ name: "regcred" }, { name: "missing-regcred" }],
        volumes: [
          { name: "cfg", configMap: { name: "app-config" } },
          {
            name: "cfg-items",
            configMap: {
              name: "app-config",
              items: [{ key: "greeting", path: "sub/hello.txt", mode: 0o600 }],
            },
          },
          { name: "sec", secret: { secretName: "app-secret", defaultMode: 0o400 } },
          {
            name: "podinfo",
            downwardAPI: {
              items: [
                { path: "labels", fieldRef: { fieldPath: "metadata.labels" } },
                { path: "name", fieldRef: { fieldPath: "metadata.name" } },
                {
                  path: "mem_limit_mi",
                  resourceFieldRef: { containerName: "app", resource: "limits.memory", divisor: "1Mi" },
                },
              ],
            },
          },
          {
            name: "tokens",
            projected: {
              sources: [
                { serviceAccountToken: { path: "token", expirationSeconds: 3600 } },
                { secret: { name: "app-secret", items: [{ key: "password", path: "pw" }] } },
                { configMap: { name: "missing-but-optional", optional: true } },
              ],
            },
          },
        ],
        containers: [
          {
            name: "app",
            image: lab.busyboxImage,
            imagePullPolicy: "Always",
            command: ["sleep", "3600"],
            resources: { limits: { memory: "64Mi" } },
            env: [
              { name: "GREETING", valueFrom: { configMapKeyRef: { name: "app-config", key: "greeting" } } },
              { name: "PASSWORD", valueFrom: { secretKeyRef: { name: "app-secret", key: "password" } } },
              {
                name: "OPTIONAL",
                valueFrom: { configMapKeyRef: { name: "nope", key: "x", optional: true } },
              },
              { name: "MESSAGE", value: "$(GREETING) from $(KUBERNETES_SERVICE_HOST)" },
            ],
            envFrom: [
              { configMapRef: { name: "app-config" }, prefix: "CFG_" },
              { configMapRef: { name: "app-config" } },
            ],
            volumeMounts: [
              { name: "cfg", mountPath: "/etc/cfg" },
              { name: "cfg-items", mountPath: "/etc/cfg-items" },
              { name: "sec", mountPath: "/etc/sec" },
              { name: "podinfo", mountPath: "/etc/podinfo" },
              { name: "tokens", mountPath: "/var/run/secrets/tokens" },
            ],
          },
        ],
      },
      "api-vol",
    );
    // The ServiceAccount admission plugin added the kube-api-access projected volume.
    expect(pod.spec?.volumes?.some((v) => v.name.startsWith("kube-api-access-"))).toBe(true);
    id = await waitFor("api-vol running", () => runningContainerId(pod, "app"), 120_000);

    expect(await exec(id, ["cat", "/etc/cfg/greeting"])).toBe("hello");
    expect(await exec(id, ["cat", "/etc/cfg/LEVEL"])).toBe("debug");
    expect((await exec(id, ["readlink", "/etc/cfg/greeting"])).trim()).toBe("..data/greeting");
    expect((await exec(id, ["readlink", "/etc/cfg/..data"])).trim()).toMatch(/^\.\.\d{4}_\d{2}_\d{2}_/);
    expect(await exec(id, ["cat", "/etc/cfg-items/sub/hello.txt"])).toBe("hello");
    expect((await exec(id, ["stat", "-L", "-c", "%a", "/etc/cfg-items/sub/hello.txt"])).trim()).toBe("600");
    expect(await exec(id, ["cat", "/etc/sec/password"])).toBe("s3cret");
    expect((await exec(id, ["stat", "-L", "-c", "%a", "/etc/sec/password"])).trim()).toBe("400");
    expect(await exec(id, ["cat", "/etc/podinfo/labels"])).toBe('app="api-vol"');
    expect(await exec(id, ["cat", "/etc/podinfo/name"])).toBe("api-vol");
    expect(await exec(id, ["cat", "/etc/podinfo/mem_limit_mi"])).toBe("64");
    expect(await exec(id, ["cat", "/var/run/secrets/tokens/pw"])).toBe("s3cret");
    // Secrets, downward API and projected volumes live on a tmpfs (never on disk); configMaps do not.
    const mounts = await exec(id, ["cat", "/proc/mounts"]);
    const fsType = (dir: string) =>
      mounts
        .split("\n")
        .find((l) => l.split(" ")[1] === dir)
        ?.split(" ")[2];
    expect(fsType("/etc/sec")).toBe("tmpfs");
    expect(fsType("/etc/podinfo")).toBe("tmpfs");
    expect(fsType("/var/run/secrets/tokens")).toBe("tmpfs");
    expect(fsType("/etc/cfg")).not.toBe("tmpfs");
    const defaultSa = "/var/run/secrets/kubernetes.io/serviceaccount";
    expect(await exec(id, ["cat", `${defaultSa}/namespace`])).toBe(NS);
    expect(await exec(id, ["cat", `${defaultSa}/ca.crt`])).toContain("BEGIN CERTIFICATE");

    const env = new Map(
      (await exec(id, ["env"]))
        .split("\n")
        .filter((l) => l.includes("="))
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)] as const),
    );
    expect(env.get("GREETING")).toBe("hello");
    expect(env.get("PASSWORD")).toBe("s3cret");
    expect(env.get("CFG_greeting")).toBe("hello");
    expect(env.get("CFG_LEVEL")).toBe("debug");
    expect(env.has("OPTIONAL")).toBe(false);
    // "1bad" is no valid variable name; with the prefix, "CFG_1bad" is.
    expect(env.get("CFG_1bad")).toBe("skipped");
    expect(env.has("1bad")).toBe(false);
    expect(env.get("LEVEL")).toBe("debug");
    const kubernetesIp = env.get("KUBERNETES_SERVICE_HOST") ?? "";
    expect(kubernetesIp).toMatch(/^10\.96\.\d+\.\d+$/);
    expect(env.get("KUBERNETES_SERVICE_PORT")).toBe("443");
    expect(env.get("KUBERNETES_PORT")).toBe(`tcp://${kubernetesIp}:443`);
    expect(env.get("KUBERNETES_PORT_443_TCP_ADDR")).toBe(kubernetesIp);
    expect(env.get("MESSAGE")).toBe(`hello from ${kubernetesIp}`);
    // enableServiceLinks (default true): the namespace's Services as variables.
    const dbIp = env.get("MY_DB_SERVICE_HOST") ?? "";
    expect(dbIp).toMatch(/^10\.96\.\d+\.\d+$/);
    expect(env.get("MY_DB_SERVICE_PORT_SQL")).toBe("5432");
    expect(env.get("MY_DB_PORT_5432_TCP")).toBe(`tcp://${dbIp}:5432`);
  });

  it("reads only what the Node authorizer allows: objects of pods bound to the node", async () => {
    await admin.requestJson("POST", `/api/v1/namespaces/${NS}/secrets`, {
      body: { metadata: { name: "unreferenced" }, data: { k: b64("v") } },
    });
    const provider = new ApiPodObjectProvider({ client: nodeClient });
    const denied = await provider.getSecret(NS, "unreferenced").catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(PodObjectError);
    expect((denied as PodObjectError).reason).toBe("Forbidden");
    expect((await provider.getSecret(NS, "app-secret")).data?.password).toBe(b64("s3cret"));
  });

  it("projects service-account tokens the API server accepts, bound to the pod", async () => {
    const review = async (token: string) =>
      admin.requestJson<{
        status?: { authenticated?: boolean; user?: { username?: string; extra?: Record<string, string[]> } };
      }>("POST", "/apis/authentication.k8s.io/v1/tokenreviews", {
        body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } },
      });
    for (const file of [
      "/var/run/secrets/tokens/token",
      "/var/run/secrets/kubernetes.io/serviceaccount/token",
    ]) {
      const token = await exec(id, ["cat", file]);
      expect(token.split(".")).toHaveLength(3);
      const r = await review(token);
      expect(r.status?.authenticated).toBe(true);
      expect(r.status?.user?.username).toBe(`system:serviceaccount:${NS}:default`);
      expect(r.status?.user?.extra?.["authentication.kubernetes.io/pod-name"]).toEqual(["api-vol"]);
      expect(r.status?.user?.extra?.["authentication.kubernetes.io/pod-uid"]).toEqual([pod.metadata?.uid]);
    }
  });

  it("updates a configMap volume in place when the ConfigMap changes", async () => {
    const before = (await exec(id, ["readlink", "/etc/cfg/..data"])).trim();
    await admin.requestJson("PATCH", `/api/v1/namespaces/${NS}/configmaps/app-config`, {
      body: { data: { greeting: "bonjour" } },
      contentType: "application/merge-patch+json",
    });
    await waitFor("updated greeting in the container", async () =>
      (await exec(id, ["cat", "/etc/cfg/greeting"])) === "bonjour" ? true : undefined,
    );
    expect(await exec(id, ["cat", "/etc/cfg-items/sub/hello.txt"])).toBe("bonjour");
    expect((await exec(id, ["readlink", "/etc/cfg/..data"])).trim()).not.toBe(before);
    // Same container: updated in place, not restarted.
    expect(runningContainerId(pod, "app")).toBe(id);
  });

  it("posts the pod's lifecycle events to the API as the node", async () => {
    const events = await waitFor("Pulled, Created and Started events", async () => {
      const list = await podEvents(pod);
      const reasons = new Set(list.map((e) => e.reason));
      return reasons.has("Pulled") && reasons.has("Created") && reasons.has("Started") ? list : undefined;
    });
    const started = events.find((e) => e.reason === "Started");
    expect(started?.message).toBe("Started container app");
    expect(started?.type).toBe("Normal");
    expect(started?.source).toEqual({ component: "kubelet", host: NODE });
    expect(started?.involvedObject?.fieldPath).toBe("spec.containers{app}");
    expect(started?.involvedObject?.kind).toBe("Pod");
    expect(events.find((e) => e.reason === "Created")?.message).toBe("Created container: app");
    expect(events.find((e) => e.reason === "Pulling")?.message).toBe(`Pulling image "${lab.busyboxImage}"`);
    expect(events.find((e) => e.reason === "Pulled")?.message).toMatch(
      new RegExp(
        `^Successfully pulled image "${lab.busyboxImage}" in \\S+ \\(\\S+ including waiting\\)\\. Image size: \\d+ bytes\\.$`,
      ),
    );
    // The kubelet runs without clusterDNS: ClusterFirst pods fall back to Default, with a warning.
    const dns = events.find((e) => e.reason === "MissingClusterDNS");
    expect(dns?.type).toBe("Warning");
    expect(dns?.message).toMatch(
      /^pod: "api-vol_default\(.+\)"\. kubelet does not have ClusterDNS IP configured/,
    );
    expect(events.find((e) => e.reason === "FailedToRetrieveImagePullSecret")?.message).toBe(
      "Unable to retrieve some image pull secrets (missing-regcred); attempting to pull the image may not succeed.",
    );
    expect(events.find((e) => e.reason === "InvalidEnvironmentVariableNames")?.message).toBe(
      "Keys [1bad] from the EnvFrom configMap default/app-config were skipped since they are considered invalid environment variable names.",
    );
  });

  it("holds a pod on a missing volume source (FailedMount) and a missing env source (CreateContainerConfigError) until they exist", async () => {
    const late = await createPod(
      {
        nodeName: NODE,
        terminationGracePeriodSeconds: 1,
        automountServiceAccountToken: false,
        volumes: [{ name: "late", configMap: { name: "late-volume" } }],
        containers: [
          {
            name: "app",
            image: lab.busyboxImage,
            command: ["sleep", "3600"],
            env: [{ name: "LATE", valueFrom: { configMapKeyRef: { name: "late-env", key: "value" } } }],
            volumeMounts: [{ name: "late", mountPath: "/etc/late" }],
          },
        ],
      },
      "late",
    );
    const waiting = () => status(late)?.containerStatuses?.find((c) => c.name === "app")?.state?.waiting;
    const mountWait = await waitFor("ContainerCreating on the missing volume", () =>
      waiting()?.message?.includes("MountVolume.SetUp") ? waiting() : undefined,
    );
    expect(mountWait.reason).toBe("ContainerCreating");
    expect(mountWait.message).toBe(
      `MountVolume.SetUp failed for volume "late" : configmap "late-volume" not found`,
    );
    // Repeated FailedMount events are aggregated into one event whose count grows (PATCH).
    const failedMount = await waitFor("FailedMount event counted twice", async () => {
      const e = (await podEvents(late)).find((x) => x.reason === "FailedMount");
      return e && (e.count ?? 0) >= 2 ? e : undefined;
    });
    expect(failedMount.type).toBe("Warning");
    expect(failedMount.message).toBe(mountWait.message);
    expect((await podEvents(late)).filter((x) => x.reason === "FailedMount")).toHaveLength(1);

    await admin.requestJson("POST", `/api/v1/namespaces/${NS}/configmaps`, {
      body: { metadata: { name: "late-volume" }, data: { file: "now here" } },
    });
    const configWait = await waitFor("CreateContainerConfigError on the missing env source", () =>
      waiting()?.reason === "CreateContainerConfigError" ? waiting() : undefined,
    );
    expect(configWait.message).toBe(`configmap "late-env" not found`);
    await waitFor("Failed event with kubelet's message", async () =>
      (await podEvents(late)).some(
        (e) => e.reason === "Failed" && e.message === `Error: configmap "late-env" not found`,
      ),
    );

    await admin.requestJson("POST", `/api/v1/namespaces/${NS}/configmaps`, {
      body: { metadata: { name: "late-env" }, data: { value: "arrived" } },
    });
    const lateId = await waitFor("late pod running", () => runningContainerId(late, "app"));
    expect(await exec(lateId, ["cat", "/etc/late/file"])).toBe("now here");
    expect(await exec(lateId, ["sh", "-c", "echo -n $LATE"])).toBe("arrived");
  });

  it("records BackOff for a crash-looping container and Killing when a pod is removed", async () => {
    const crasher = await createPod(
      {
        nodeName: NODE,
        terminationGracePeriodSeconds: 1,
        automountServiceAccountToken: false,
        containers: [{ name: "crash", image: lab.busyboxImage, command: ["sh", "-c", "exit 3"] }],
      },
      "crasher",
    );
    const backOff = await waitFor("BackOff event", async () =>
      (await podEvents(crasher)).find((e) => e.reason === "BackOff"),
    );
    expect(backOff.type).toBe("Warning");
    expect(backOff.message).toBe(
      `Back-off restarting failed container crash in pod crasher_${NS}(${crasher.metadata?.uid ?? ""})`,
    );
    expect(backOff.involvedObject?.fieldPath).toBe("spec.containers{crash}");

    const late = pods.get("late") as Pod;
    pods.delete("late");
    source.replace(pods.values());
    await kubelet.waitForTerminations();
    const killing = await waitFor("Killing event", async () =>
      (await podEvents(late)).find((e) => e.reason === "Killing"),
    );
    expect(killing.message).toBe("Stopping container app");
    expect(killing.involvedObject?.fieldPath).toBe("spec.containers{app}");
  });
});
