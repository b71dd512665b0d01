// Pod start through the API server, worknode's kubelet beside the reference kubelet (the Go binary
// the harness built from the same Kubernetes release), on one control plane and one containerd lab:
// latency from "the pod's create request returned" to "a watch first sees phase Running with every
// container running and ready", for batches of 30 and 110 pods (busybox `sleep 3600`, image
// pre-pulled, IfNotPresent), and the pod status writes per pod start counted by kube-apiserver
// (`apiserver_request_total{resource="pods",subresource="status"}`, PATCH/PUT, from /metrics before
// the batch and 3 s after its last pod started).
//
// Pods are bound with spec.nodeName directly (no scheduler in the measured path) and mount the
// default service account token (projected volume through TokenRequest) like any ordinary pod.
// The two kubelets take turns (30 pods: worknode then reference; 110 pods: the same), never running
// together: each kills pods it does not know about on the shared containerd. Each one registers its
// own Node (worknode: `wnbapi-worknode`, reference: `wnbapi-reference`) with a node client
// certificate from `cp.nodeCredentials()`; both keep their defaults otherwise (status update, PLEG,
// API QPS). The machine is shared: compare the two kubelets within one run, not across runs.
//
// Each bench row times one batch (create N pods → all N started in the API); the per-pod p50 / p99
// and the status writes per pod start go to stderr and to bench-results/kubelet-api-pod-start.json.
// Deleting a batch (and waiting until the objects are gone) is not timed: it happens in the next
// row's setup and in afterAll.
//
// What the reference kubelet needs here (a cgroup v1 host without systemd, in a container):
// `failCgroupV1: false` (1.35+ refuses cgroup v1 otherwise), `cgroupDriver: cgroupfs` (the lab
// containerd renders `SystemdCgroup = false`), `failSwapOn: false`, its own --root-dir and
// --cert-dir (self-signed serving certificate), a private `cgroupRoot` (`/wnbapi`, created before it
// starts and removed after, so its `kubepods` never meets another kubelet's), and low eviction /
// image-GC thresholds so a busy shared disk neither evicts the pods nor removes the pre-pulled image.
// No --pod-infra-container-image: the sandbox image is containerd's (`sandbox_image`), already
// imported by the lab. Its non-fatal complaints here: no RuntimeConfig in containerd 1.6 (falls back
// to the configured cgroup driver), no permission to raise RLIMIT_NOFILE, no init pid namespace for
// the OOM score of the container manager.
//
// Needs root (containerd with CNI, the reference kubelet): it throws, loudly, when not root.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CoreV1Api, type V1Pod, Watch } from "@kubernetes/client-node";
import type { Node, Pod } from "@worknode/core";
import { CriClient } from "@worknode/cri";
import {
  type ContainerdLab,
  type ControlPlane,
  ensureControlPlaneBinaries,
  freeLoopbackPorts,
  startContainerdLab,
  startControlPlane,
} from "@worknode/testing";
import { afterAll, beforeAll, bench, describe } from "vitest";
import { stringify } from "yaml";
import {
  ApiPodStartTracker,
  BENCH_LABEL,
  benchPod,
  podStatusWrites,
  referenceKubeletConfig,
} from "./api-pod-start-lab.js";
import { percentile } from "./pod-start-lab.js";

if (process.getuid?.() !== 0) {
  throw new Error(
    "packages/kubelet/bench/api-pod-start.bench.ts needs root: it starts a private containerd with CNI " +
      "networking, a control plane and the reference kubelet. Run it as root: " +
      "npx vitest bench --run --project unit packages/kubelet/bench/api-pod-start.bench.ts",
  );
}

type KubeletId = "worknode" | "reference";
const KUBELETS: readonly KubeletId[] = ["worknode", "reference"];
const TITLES: Record<KubeletId, string> = {
  worknode: "worknode kubelet",
  reference: "reference kubelet (Go)",
};
const NODE_NAMES: Record<KubeletId, string> = { worknode: "wnbapi-worknode", reference: "wnbapi-reference" };
const SIZES = [30, 110] as const;
const LAB = {
  labDir: "/tmp/wnbapi-lab",
  bridgeName: "wnbapi0",
  podSubnet: "10.94.0.0/16",
  streamPort: 10061,
};
/** The lab bridge's gateway: a non-loopback node address (kube-apiserver refuses loopback nodes). */
const NODE_IP = "10.94.0.1";
const NAMESPACE = "default";
const SELECTOR = `${BENCH_LABEL.key}=${BENCH_LABEL.value}`;
const READY_TIMEOUT_MS = 240_000;
const START_TIMEOUT_MS = 600_000;
const REMOVE_TIMEOUT_MS = 600_000;
const SETTLE_MS = 3000;
/** Quiet time after a kubelet is ready, before its first batch (first relists, informer sync). */
const AGENT_SETTLE_MS = 5000;
const CREATE_CONCURRENCY = 10;
/** The reference kubelet's private parent cgroup (created before it starts, removed after). */
const CGROUP_ROOT = "wnbapi";
const CGROUP_MOUNT = "/sys/fs/cgroup";
const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "../../..");
const RESULTS_FILE = path.join(repoRoot, "bench-results", "kubelet-api-pod-start.json");

interface BatchResult {
  pods: number;
  started: number;
  p50: number;
  p99: number;
  max: number;
  statusWrites: number;
  statusWritesByVerb: Record<string, number>;
  statusWritesPerPodStart: number;
}
interface Results {
  date: string;
  method: string;
  kubelets: Partial<
    Record<KubeletId, { node: string; batches: Record<string, BatchResult>; error?: string }>
  >;
  /** The same figures as a ready-to-render table (title, column names, rows). */
  table?: { title: string; columns: string[]; rows: Array<Array<string | number>> };
}
const results: Results = {
  date: new Date().toISOString(),
  method:
    "latency: create request returned → watch sees phase Running and every container running+ready; " +
    "status writes: kube-apiserver apiserver_request_total{resource=pods,subresource=status,verb=PATCH|PUT} " +
    `delta from before the batch to ${SETTLE_MS} ms after its last pod started, divided by the pods; ` +
    "pods bound with spec.nodeName (no scheduler), default service account token mounted, image present",
  kubelets: {},
};

let lab: ContainerdLab | undefined;
let cri: CriClient | undefined;
let cp: ControlPlane | undefined;
let core: CoreV1Api | undefined;
let image = "";
let referenceBinary = "";
const workDir = path.join(tmpdir(), `wnbapi-${process.pid}`);
const tracker = new ApiPodStartTracker();
let watchAbort: AbortController | undefined;
let watching = false;

interface Agent {
  readonly id: KubeletId;
  readonly child: ChildProcess;
  readonly rootDir: string;
  log: string;
}
let agent: Agent | undefined;

interface OpenBatch {
  readonly kubelet: KubeletId;
  readonly size: number;
  readonly writesBefore: number;
  readonly writesByVerbBefore: Record<string, number>;
  readonly names: string[];
  startedAll: boolean;
}
let open: OpenBatch | undefined;
let batchCounter = 0;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (ms: number) => Math.round(ms * 10) / 10;

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`api-pod-start bench: ${what} is not set up (beforeAll failed?)`);
  return v;
}

function writeResults(): void {
  results.table = resultsTable();
  mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
  writeFileSync(RESULTS_FILE, `${JSON.stringify(results, null, 2)}\n`);
}

function resultsTable(): NonNullable<Results["table"]> {
  const rows: Array<Array<string | number>> = [];
  for (const id of KUBELETS) {
    const r = results.kubelets[id];
    for (const size of SIZES) {
      const b = r?.batches[`${size}`];
      if (b) rows.push([TITLES[id], size, b.p50, b.p99, b.max, b.statusWritesPerPodStart]);
      else
        rows.push([TITLES[id], size, "—", "—", "—", r?.error ? "did not run (see the bench output)" : "—"]);
    }
  }
  return {
    title:
      "Pod start through the API server, same containerd (create returned → Running and ready in a watch)",
    columns: ["kubelet", "pods", "p50 ms", "p99 ms", "max ms", "pod status writes per pod start"],
    rows,
  };
}

function loud(message: string): void {
  const bar = "!".repeat(100);
  console.error(`\n${bar}\n[api-pod-start bench] ${message}\n${bar}\n`);
}

/**
 * Polls `fn` until it returns a value; `gaveUp` (checked before every poll) ends the wait early with
 * its reason, e.g. when the kubelet being waited for has exited.
 */
async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs: number,
  gaveUp: () => string | undefined = () => undefined,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const reason = gaveUp();
    if (reason !== undefined) throw new Error(`gave up waiting for ${what}: ${reason}`);
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const tail = agent ? `\n--- ${agent.id} kubelet log tail ---\n${agent.log.slice(-6000)}` : "";
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}${tail}`);
    }
    await sleep(500);
  }
}

// --- the watch ----------------------------------------------------------------------------------

async function startWatch(): Promise<void> {
  const c = need(cp, "control plane");
  watching = true;
  const begin = async (): Promise<void> => {
    watchAbort = await new Watch(c.adminKubeConfig).watch(
      `/api/v1/namespaces/${NAMESPACE}/pods`,
      { labelSelector: SELECTOR, allowWatchBookmarks: false },
      (_phase, obj: Pod) => tracker.observe(obj),
      () => follow(),
    );
  };
  // The server ends watches after a while, and a start can fail: follow on. Events in between are
  // caught by the slow list in startBatch, with a later (pessimistic) timestamp.
  const follow = (): void => {
    if (!watching) return;
    void sleep(500).then(() => (watching ? begin().catch(() => follow()) : undefined));
  };
  await begin();
}

function stopWatch(): void {
  watching = false;
  watchAbort?.abort();
  watchAbort = undefined;
}

// --- API server metrics -------------------------------------------------------------------------

async function statusWrites(): Promise<{ total: number; byVerb: Record<string, number> }> {
  return podStatusWrites(await need(cp, "control plane").kubectl(["get", "--raw", "/metrics"]));
}

// --- the kubelets -------------------------------------------------------------------------------

function spawnAgent(id: KubeletId, kubeconfig: string, rootDir: string, ports: number[]): ChildProcess {
  const c = need(cp, "control plane");
  const l = need(lab, "lab");
  const [port, healthzPort] = ports as [number, number];
  const node = NODE_NAMES[id];
  if (id === "worknode") {
    return spawn(
      process.execPath,
      [
        "--conditions=@worknode/source",
        "--import",
        "tsx",
        path.join(repoRoot, "packages", "worknode", "src", "cli.ts"),
        "kubelet",
        `--kubeconfig=${kubeconfig}`,
        `--container-runtime-endpoint=${l.endpoint}`,
        `--root-dir=${rootDir}`,
        `--hostname-override=${node}`,
        `--node-ip=${NODE_IP}`,
        `--address=${NODE_IP}`,
        `--port=${port}`,
        "--healthz-bind-address=127.0.0.1",
        `--healthz-port=${healthzPort}`,
        `--client-ca-file=${c.pki.ca.certPath}`,
        "--cluster-domain=cluster.local",
        "--log-level=info",
      ],
      { stdio: ["ignore", "pipe", "pipe"], cwd: repoRoot },
    );
  }
  const configFile = path.join(rootDir, "..", "reference-kubelet-config.yaml");
  writeFileSync(
    configFile,
    stringify(
      referenceKubeletConfig({
        containerRuntimeEndpoint: l.endpoint,
        address: NODE_IP,
        port,
        healthzPort,
        clientCAFile: c.pki.ca.certPath,
        cgroupDriver: "cgroupfs",
        cgroupRoot: `/${CGROUP_ROOT}`,
      }),
    ),
  );
  return spawn(
    referenceBinary,
    [
      `--config=${configFile}`,
      `--kubeconfig=${kubeconfig}`,
      `--root-dir=${rootDir}`,
      `--cert-dir=${path.join(rootDir, "..", "reference-pki")}`,
      `--hostname-override=${node}`,
      `--node-ip=${NODE_IP}`,
      "--v=1",
    ],
    { stdio: ["ignore", "pipe", "pipe"], cwd: workDir },
  );
}

async function startAgent(id: KubeletId): Promise<void> {
  const c = need(cp, "control plane");
  const dir = path.join(workDir, id);
  const rootDir = path.join(dir, "root");
  mkdirSync(rootDir, { recursive: true });
  const kubeconfig = await c.nodeCredentials(NODE_NAMES[id]);
  if (id === "reference") createCgroupRoot();
  const ports = await freeLoopbackPorts(2);
  const healthzPort = ports[1] as number;
  const spawnedAt = Date.now();
  const child = spawnAgent(id, kubeconfig, rootDir, ports);
  const a: Agent = { id, child, rootDir, log: "" };
  const keep = (chunk: Buffer) => {
    a.log += chunk.toString();
    if (a.log.length > 400_000) a.log = a.log.slice(-200_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  agent = a;
  // A restarted kubelet finds its Node still Ready from its previous run: wait for this process's
  // healthz, a Lease renewal after it was spawned, and the Node Ready.
  await waitFor(
    `the ${TITLES[id]} to be healthy, renew its Lease and have its Node ${NODE_NAMES[id]} Ready`,
    async () => {
      const healthz = await fetch(`http://127.0.0.1:${healthzPort}/healthz`);
      if (!healthz.ok) return undefined;
      const lease = JSON.parse(
        await c.kubectl(["get", "lease", "-n", "kube-node-lease", NODE_NAMES[id], "-o", "json"]),
      ) as { spec?: { renewTime?: string } };
      if (!(Date.parse(lease.spec?.renewTime ?? "") >= spawnedAt)) return undefined;
      const node = JSON.parse(await c.kubectl(["get", "node", NODE_NAMES[id], "-o", "json"])) as Node;
      return node.status?.conditions?.find((x) => x.type === "Ready")?.status === "True" ? true : undefined;
    },
    READY_TIMEOUT_MS,
    () =>
      child.exitCode !== null || child.signalCode !== null
        ? `the ${TITLES[id]} exited (${child.exitCode ?? child.signalCode}); log tail:\n${a.log.slice(-8000)}`
        : undefined,
  );
  await sleep(AGENT_SETTLE_MS);
  console.error(`[api-pod-start bench] ${TITLES[id]} runs, Node ${NODE_NAMES[id]} Ready`);
}

async function stopAgent(): Promise<void> {
  const a = agent;
  agent = undefined;
  if (!a) return;
  const { child } = a;
  if (child.exitCode === null && child.signalCode === null) {
    await new Promise<void>((resolve) => {
      const kill = setTimeout(() => child.kill("SIGKILL"), 30_000);
      child.once("exit", () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill("SIGTERM");
    });
  }
  await removeLeftoverSandboxes();
  unmountUnder(path.dirname(a.rootDir));
  if (a.id === "reference") removeCgroupRoot();
}

/** Stops and removes every sandbox left in the lab runtime (none when the batch was deleted). */
async function removeLeftoverSandboxes(): Promise<void> {
  if (!cri) return;
  const { items } = await cri.runtime.listPodSandbox({}).catch(() => ({ items: [] }));
  for (const s of items) {
    await cri.runtime.stopPodSandbox({ podSandboxId: s.id }).catch(() => undefined);
    await cri.runtime.removePodSandbox({ podSandboxId: s.id }).catch(() => undefined);
  }
}

/** Unmounts every mount below `dir` (the kubelets' tmpfs volumes), deepest first. */
function unmountUnder(dir: string): void {
  const prefix = `${path.resolve(dir)}/`;
  const mounts = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => (l.split(" ")[4] ?? "").replace(/\\040/g, " "))
    .filter((m) => m.startsWith(prefix))
    .sort((x, y) => y.length - x.length);
  for (const m of mounts) {
    try {
      execFileSync("umount", ["-l", m], { stdio: "pipe" });
    } catch {
      // already gone
    }
  }
}

/**
 * Creates the reference kubelet's parent cgroup in every mounted hierarchy (cgroup v1 here; on a v2
 * host the single unified directory). A v1 cpuset child starts with no CPUs and memory nodes:
 * copy the parent's.
 */
function createCgroupRoot(): void {
  for (const dir of cgroupRootDirs()) {
    mkdirSync(dir, { recursive: true });
    for (const file of ["cpuset.cpus", "cpuset.mems"]) {
      const parent = path.join(path.dirname(dir), file);
      if (existsSync(parent) && readFileSync(path.join(dir, file), "utf8").trim() === "") {
        writeFileSync(path.join(dir, file), readFileSync(parent, "utf8"));
      }
    }
  }
}

/** Removes the reference kubelet's (by now empty) cgroups, deepest first. */
function removeCgroupRoot(): void {
  const removeTree = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) removeTree(path.join(dir, e.name));
    }
    try {
      rmdirSync(dir);
    } catch (err) {
      console.error(`[api-pod-start bench] cleanup: cannot remove cgroup ${dir}: ${String(err)}`);
    }
  };
  for (const dir of cgroupRootDirs()) if (existsSync(dir)) removeTree(dir);
}

/**
 * `/sys/fs/cgroup/<hierarchy>/wnbapi` for every v1 hierarchy (and the hybrid `unified` one, where
 * runc mirrors the pod cgroups), or `/sys/fs/cgroup/wnbapi` on a v2-only host.
 */
function cgroupRootDirs(): string[] {
  if (existsSync(path.join(CGROUP_MOUNT, "cgroup.controllers")))
    return [path.join(CGROUP_MOUNT, CGROUP_ROOT)];
  return readdirSync(CGROUP_MOUNT, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => path.join(CGROUP_MOUNT, e.name, CGROUP_ROOT));
}

/** Makes `id` the running kubelet: finishes the open batch and stops the other one first. */
async function ensureAgent(id: KubeletId): Promise<void> {
  if (agent?.id === id && agent.child.exitCode === null) return;
  await finishBatch();
  await stopAgent();
  results.kubelets[id] ??= { node: NODE_NAMES[id], batches: {} };
  try {
    await startAgent(id);
  } catch (err) {
    const entry = need(results.kubelets[id], "results entry");
    entry.error = err instanceof Error ? err.message : String(err);
    writeResults();
    loud(`THE ${TITLES[id].toUpperCase()} DID NOT RUN ON THIS MACHINE: ${entry.error.slice(-4000)}`);
    await stopAgent();
    throw err;
  }
}

// --- batches ------------------------------------------------------------------------------------

async function startBatch(id: KubeletId, size: number): Promise<void> {
  const api = need(core, "API client");
  if (open) throw new Error("api-pod-start bench: a batch is still open");
  const before = await statusWrites();
  const b = batchCounter++;
  const names = Array.from({ length: size }, (_, i) => `aps-${id.slice(0, 3)}-${b}-${i}`);
  open = {
    kubelet: id,
    size,
    writesBefore: before.total,
    writesByVerbBefore: before.byVerb,
    names,
    startedAll: false,
  };
  let next = 0;
  const creator = async () => {
    while (next < names.length) {
      const name = names[next++] as string;
      await api.createNamespacedPod({
        namespace: NAMESPACE,
        body: benchPod(name, NODE_NAMES[id], image) as V1Pod,
      });
      tracker.created(name);
    }
  };
  await Promise.all(Array.from({ length: CREATE_CONCURRENCY }, creator));
  // Safety net beside the watch: a slow list (only matters if a watch event was lost).
  const poll = setInterval(() => {
    api
      .listNamespacedPod({ namespace: NAMESPACE, labelSelector: SELECTOR })
      .then((list) => {
        for (const p of list.items) tracker.observe(p as Pod);
      })
      .catch(() => undefined);
  }, 2000);
  try {
    await tracker.waitAll(START_TIMEOUT_MS);
  } catch (err) {
    throw new Error(`${String(err)}\n--- ${id} kubelet log tail ---\n${agent?.log.slice(-6000) ?? ""}`);
  } finally {
    clearInterval(poll);
  }
  open.startedAll = true;
}

/** Records the open batch (latencies, status writes), deletes its pods and waits until they are gone. */
async function finishBatch(): Promise<void> {
  const o = open;
  if (!o) return;
  open = undefined;
  const latencies = tracker.drain();
  if (o.startedAll) {
    await sleep(SETTLE_MS);
    const after = await statusWrites();
    const byVerb: Record<string, number> = {};
    for (const [verb, n] of Object.entries(after.byVerb)) {
      const d = n - (o.writesByVerbBefore[verb] ?? 0);
      if (d > 0) byVerb[verb] = d;
    }
    const writes = after.total - o.writesBefore;
    const r: BatchResult = {
      pods: o.size,
      started: latencies.length,
      p50: round(percentile(latencies, 50)),
      p99: round(percentile(latencies, 99)),
      max: round(Math.max(...latencies)),
      statusWrites: writes,
      statusWritesByVerb: byVerb,
      statusWritesPerPodStart: Math.round((writes / o.size) * 100) / 100,
    };
    const entry = results.kubelets[o.kubelet] ?? { node: NODE_NAMES[o.kubelet], batches: {} };
    results.kubelets[o.kubelet] = entry;
    entry.batches[`${o.size}`] = r;
    writeResults();
    console.error(
      `[api-pod-start bench] ${TITLES[o.kubelet]}, ${o.size} pods: p50 ${r.p50} ms, p99 ${r.p99} ms, max ${r.max} ms; ` +
        `pod status writes ${writes} (${JSON.stringify(byVerb)}) = ${r.statusWritesPerPodStart} per pod start`,
    );
  }
  await deleteAllBenchPods();
}

async function deleteAllBenchPods(): Promise<void> {
  const api = need(core, "API client");
  // Without a running kubelet to confirm the deletion, the objects would stay Terminating: force.
  const live = agent !== undefined && agent.child.exitCode === null && agent.child.signalCode === null;
  await api.deleteCollectionNamespacedPod({
    namespace: NAMESPACE,
    labelSelector: SELECTOR,
    ...(live ? {} : { gracePeriodSeconds: 0 }),
  });
  await waitFor(
    "the benchmark pods to be gone from the API",
    async () => {
      const list = await api.listNamespacedPod({ namespace: NAMESPACE, labelSelector: SELECTOR });
      return list.items.length === 0 ? true : undefined;
    },
    REMOVE_TIMEOUT_MS,
  );
}

// --- lifecycle ----------------------------------------------------------------------------------

/**
 * The reference kubelet runs in the host's network namespace and writes its iptables utility
 * chains there (KUBE-IPTABLES-HINT, KUBE-KUBELET-CANARY, KUBE-FIREWALL with its INPUT / OUTPUT
 * jumps). The benchmark removes them afterwards when the host had no KUBE- chains before it.
 */
const IPTABLES = ["iptables", "ip6tables"] as const;

function hostKubeChains(): string[] {
  return IPTABLES.flatMap((cmd) => {
    try {
      return execFileSync(`${cmd}-save`, [], { stdio: "pipe" })
        .toString()
        .split("\n")
        .filter((l) => /^:KUBE-/.test(l))
        .map((l) => `${cmd} ${l}`);
    } catch {
      return [];
    }
  });
}

function removeReferenceKubeletChains(): void {
  const run = (cmd: string, args: string[]) => {
    try {
      execFileSync(cmd, args, { stdio: "pipe" });
    } catch {
      // not there
    }
  };
  for (const cmd of IPTABLES) {
    for (const hook of ["INPUT", "OUTPUT"]) run(cmd, ["-t", "filter", "-D", hook, "-j", "KUBE-FIREWALL"]);
    for (const table of ["filter", "nat", "mangle"]) {
      for (const chain of ["KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT"]) {
        run(cmd, ["-t", table, "-F", chain]);
        run(cmd, ["-t", table, "-X", chain]);
      }
    }
  }
}

let hostHadKubeChains = true;

beforeAll(async () => {
  hostHadKubeChains = hostKubeChains().length > 0;
  mkdirSync(workDir, { recursive: true });
  lab = await startContainerdLab({ log: (l) => console.error(`[lab] ${l}`), containerd: LAB });
  cri = new CriClient({ endpoint: lab.endpoint });
  await cri.connect();
  image = lab.busyboxImage;
  await cri.image.pullImage({ image: { image } });
  const ip = (...args: string[]) => execFileSync("ip", args, { stdio: "pipe" }).toString();
  try {
    ip("link", "show", LAB.bridgeName);
  } catch {
    ip("link", "add", LAB.bridgeName, "type", "bridge");
  }
  if (!ip("-4", "addr", "show", "dev", LAB.bridgeName).includes(`${NODE_IP}/`)) {
    ip("addr", "add", `${NODE_IP}/16`, "dev", LAB.bridgeName);
  }
  ip("link", "set", LAB.bridgeName, "up");
  const binaries = await ensureControlPlaneBinaries();
  referenceBinary = binaries.binaries.kubelet ?? "";
  if (!referenceBinary) throw new Error("the harness did not build the reference kubelet");
  cp = await startControlPlane({ binaries });
  core = cp.adminKubeConfig.makeApiClient(CoreV1Api);
  await startWatch();
}, 1_800_000);

afterAll(async () => {
  const errors: unknown[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown> | unknown) => {
    try {
      await fn();
    } catch (e) {
      errors.push(e);
      console.error(`[api-pod-start bench] cleanup: ${what} failed: ${String(e)}`);
    }
  };
  await attempt("finishing the last batch", () => finishBatch());
  await attempt("writing the results", () => writeResults());
  for (const id of KUBELETS) {
    const r = results.kubelets[id];
    if (!r || r.error || Object.keys(r.batches).length === 0) {
      loud(
        `NO RESULT FOR THE ${TITLES[id].toUpperCase()}${r?.error ? `: ${r.error.slice(-2000)}` : " (it did not run)"}`,
      );
    }
  }
  stopWatch();
  await attempt("stopping the kubelet", () => stopAgent());
  await attempt("stopping the control plane", () => cp?.stop());
  cri?.close();
  await attempt("stopping the lab", () => lab?.stop());
  try {
    execFileSync("ip", ["link", "del", LAB.bridgeName], { stdio: "pipe" });
  } catch {
    // already gone with the lab
  }
  unmountUnder(workDir);
  rmSync(workDir, { recursive: true, force: true });
  if (!hostHadKubeChains) {
    removeReferenceKubeletChains();
    const left = hostKubeChains();
    if (left.length > 0) errors.push(new Error(`KUBE- chains left on the host: ${left.join("; ")}`));
  }
  if (errors.length > 0) throw errors[0];
}, 1_200_000);

describe("pod start through the API server (create returned → Running and ready in a watch; image present)", () => {
  // Interleaved (30: worknode, reference; then 110: worknode, reference) so that a change in the
  // shared machine's load during the run weighs on both kubelets alike.
  for (const size of SIZES) {
    for (const id of KUBELETS) {
      bench(
        `${TITLES[id]}, ${size} pods (one batch)`,
        async () => {
          await startBatch(id, size);
        },
        {
          iterations: 1,
          time: 0,
          warmupIterations: 0,
          warmupTime: 0,
          setup: async (_task, mode) => {
            if (mode !== "warmup") return;
            // Before each row: the previous batch recorded and deleted, this row's kubelet running.
            await finishBatch();
            await ensureAgent(id);
          },
        },
      );
    }
  }
});
