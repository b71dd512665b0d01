// The standalone kubelet on a real containerd 1.6 (the lab's, with CNI bridge networking): pod start
// latency from "manifest written into the watched directory" to "all containers running" for 1, 30
// and 110 static pods (busybox `sleep 3600`, image already present, IfNotPresent), the cost of one
// PLEG relist with 110 pods running, and the agent's RSS idle and with 110 pods.
//
// Each bench row times one batch (write N manifests → all N pods running). Per-pod latencies, their
// p50 / p99, the relist cost and the RSS go to stderr and to bench-results/kubelet-pod-start.json.
// Removing the pods is not timed: it happens in the next bench's setup and in afterAll (tinybench
// does not await `teardown`). Kubelet settings are the defaults (PLEG relist 1 s, manifest
// debounce 100 ms), so the numbers include them.
//
// Needs root (the lab starts containerd with CNI): it throws, loudly, when not root.
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ManifestDirSource } from "@worknode/core";
import { CriClient } from "@worknode/cri";
import { type ContainerdLab, startContainerdLab } from "@worknode/testing";
import { afterAll, beforeAll, bench, describe } from "vitest";
import { stringify } from "yaml";
import { Kubelet, Pleg, RuntimeInspector } from "../src/index.js";
import { allContainersRunning, PodStartTracker, percentile, sleeperPod } from "./pod-start-lab.js";

if (process.getuid?.() !== 0) {
  throw new Error(
    "packages/kubelet/bench/pod-start.bench.ts needs root: it starts a private containerd with CNI " +
      "networking (startContainerdLab). Run it as root: npx vitest bench --run --project unit packages/kubelet/bench/pod-start.bench.ts",
  );
}

const NODE = "wnkbb-node";
const SIZES = [1, 30, 110] as const;
const ITERATIONS: Record<(typeof SIZES)[number], number> = { 1: 5, 30: 2, 110: 1 };
const START_TIMEOUT_MS = 300_000;
const REMOVE_TIMEOUT_MS = 300_000;
const RESULTS_FILE = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "../../../bench-results/kubelet-pod-start.json",
);

let lab: ContainerdLab | undefined;
let client: CriClient | undefined;
let source: ManifestDirSource | undefined;
let kubelet: Kubelet | undefined;
let image = "";
const manifestDir = mkdtempSync(path.join(tmpdir(), "wnkbb-manifests-"));
const rootDir = mkdtempSync(path.join(tmpdir(), "wnkbb-root-"));
const logsDir = mkdtempSync(path.join(tmpdir(), "wnkbb-logs-"));
const tracker = new PodStartTracker();
let batch = 0;

interface Results {
  date: string;
  podStartMs: Record<string, { pods: number; samples: number; p50: number; p99: number; max: number }>;
  plegRelistMs?: { samples: number; p50: number; p99: number; mean: number; kubeletLastRelistMs: number };
  rss?: {
    beforeKubeletMiB: number;
    idleMiB: number;
    with110PodsMiB: number;
    heapUsedIdleMiB: number;
    heapUsedWith110PodsMiB: number;
    note: string;
  };
}
const results: Results = { date: new Date().toISOString(), podStartMs: {} };
let rssBeforeKubelet = 0;
let memIdle: NodeJS.MemoryUsage | undefined;
const relistSamples: number[] = [];

const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;
const round = (ms: number) => Math.round(ms * 10) / 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`pod-start bench: ${what} is not set up (beforeAll failed?)`);
  return v;
}

function writeResults(): void {
  mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
  writeFileSync(RESULTS_FILE, `${JSON.stringify(results, null, 2)}\n`);
}

beforeAll(async () => {
  lab = await startContainerdLab({
    log: (l) => console.error(`[lab] ${l}`),
    containerd: {
      labDir: "/tmp/wnkbb-lab",
      bridgeName: "wnkbb0",
      podSubnet: "10.84.0.0/16",
      streamPort: 10061,
    },
  });
  client = new CriClient({ endpoint: lab.endpoint });
  await client.connect();
  image = lab.busyboxImage;
  await client.image.pullImage({ image: { image } });
  rssBeforeKubelet = process.memoryUsage().rss;
  source = new ManifestDirSource({ path: manifestDir, nodeName: NODE });
  kubelet = new Kubelet({
    client,
    nodeName: NODE,
    sources: [source],
    rootDir,
    podLogsDir: logsDir,
    resolvConf: "",
    onStatus: (pod, status) => tracker.observe(pod.metadata?.name ?? "", status),
  });
  await source.start();
  await kubelet.start();
  await sleep(3000); // let the first relists and housekeeping settle before the idle RSS
  memIdle = process.memoryUsage();
}, 900_000);

afterAll(async () => {
  const errors: unknown[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown> | unknown) => {
    try {
      await fn();
    } catch (e) {
      errors.push(e);
      console.error(`[pod-start bench] cleanup: ${what} failed: ${String(e)}`);
    }
  };
  try {
    writeResults();
  } catch (e) {
    errors.push(e);
  }
  if (kubelet) await attempt("removing the pods", () => removeAllPods());
  await attempt("stopping the kubelet", () => kubelet?.stop());
  await attempt("stopping the manifest source", () => source?.stop());
  client?.close();
  // lab.stop() also stops and removes every sandbox left behind through CRI
  await attempt("stopping the lab", () => lab?.stop());
  for (const d of [manifestDir, rootDir, logsDir]) rmSync(d, { recursive: true, force: true });
  if (errors.length > 0) throw errors[0];
}, 900_000);

/** Removes every manifest and waits until the kubelet forgot every pod and the runtime has no sandbox left. */
async function removeAllPods(): Promise<void> {
  const k = need(kubelet, "kubelet");
  const c = need(client, "client");
  for (const f of readdirSync(manifestDir)) unlinkSync(path.join(manifestDir, f));
  const deadline = Date.now() + REMOVE_TIMEOUT_MS;
  for (;;) {
    await k.waitForTerminations();
    const { items } = await c.runtime.listPodSandbox({});
    if (k.pods().length === 0 && items.length === 0) break;
    if (Date.now() > deadline)
      throw new Error(
        `pods not removed after ${REMOVE_TIMEOUT_MS} ms: kubelet knows ${k.pods().length}, runtime has ${items.length} sandboxes`,
      );
    await sleep(200);
  }
  tracker.drain();
}

/** Writes `n` manifests (one file each, atomically) and resolves once every pod runs. */
async function startPods(n: number): Promise<void> {
  const k = need(kubelet, "kubelet");
  const b = batch++;
  for (let i = 0; i < n; i++) {
    const name = `ps${b}-${i}`;
    const tmp = path.join(manifestDir, `.${name}.yaml.tmp`);
    writeFileSync(tmp, stringify(sleeperPod(name, image)));
    tracker.expect(`${name}-${NODE}`);
    renameSync(tmp, path.join(manifestDir, `${name}.yaml`));
  }
  // Safety net beside onStatus: a slow poll of the kubelet's pod list.
  const poll = setInterval(() => {
    for (const p of k.pods()) tracker.observe(p.metadata?.name ?? "", p.status);
  }, 250);
  try {
    await tracker.waitAll(START_TIMEOUT_MS);
  } finally {
    clearInterval(poll);
  }
}

const latenciesBySize = new Map<number, number[]>();

/** Adds one batch's per-pod latencies to its size's samples and recomputes p50 / p99. */
function recordLatencies(size: number, latencies: readonly number[]): void {
  const all = [...(latenciesBySize.get(size) ?? []), ...latencies];
  latenciesBySize.set(size, all);
  results.podStartMs[`${size}`] = {
    pods: size,
    samples: all.length,
    p50: round(percentile(all, 50)),
    p99: round(percentile(all, 99)),
    max: round(Math.max(...all)),
  };
}

function reportPodStart(size: number): void {
  const r = results.podStartMs[`${size}`];
  if (!r) return;
  console.error(
    `[pod-start bench] ${size} pod(s) per batch: ${r.samples} pod starts, p50 ${r.p50} ms, p99 ${r.p99} ms, max ${r.max} ms`,
  );
  writeResults();
}

describe("static pod start on containerd 1.6 (manifest written → all containers running)", () => {
  for (const size of SIZES) {
    bench(
      `pod start, ${size} pod${size === 1 ? "" : "s"} (one batch)`,
      async () => {
        await startPods(size);
        // One batch of `size` pods after the other; the previous batch is still running (not
        // timed to remove): at most 4 + 30 pods before a 1- or 30-pod batch, none before 110.
        recordLatencies(size, tracker.drain());
      },
      {
        iterations: ITERATIONS[size],
        time: 0,
        warmupIterations: 0,
        warmupTime: 0,
        setup: async (_task, mode) => {
          if (mode !== "warmup") return;
          // Before this size's batches: every earlier pod removed, so each size starts from an empty node.
          await removeAllPods();
        },
        // tinybench does not await teardown: report synchronously only.
        teardown: (_task, mode) => {
          if (mode === "run") reportPodStart(size);
        },
      },
    );
  }
});

describe("PLEG relist with 110 pods running (ListPodSandbox + ListContainers + grouping + fingerprints)", () => {
  let pleg: Pleg | undefined;
  bench(
    "PLEG relist, 110 pods",
    async () => {
      const t0 = performance.now();
      await need(pleg, "pleg").relist();
      relistSamples.push(performance.now() - t0);
    },
    {
      iterations: 30,
      time: 0,
      warmupIterations: 3,
      warmupTime: 0,
      setup: async (_task, mode) => {
        if (mode !== "warmup") return;
        const k = need(kubelet, "kubelet");
        const c = need(client, "client");
        // The 110-pod start bench leaves 110 pods running; start them when it did not run (filtered).
        const running = k.pods().filter((p) => allContainersRunning(p.status, 1)).length;
        if (running !== 110) {
          await removeAllPods();
          await startPods(110);
          tracker.drain();
        }
        const { items } = await c.runtime.listPodSandbox({});
        if (items.length !== 110) throw new Error(`expected 110 sandboxes, runtime lists ${items.length}`);
        await sleep(3000); // let the workers' post-start syncs finish before measuring RSS and relists
        const mem = process.memoryUsage();
        const idle = need(memIdle, "idle memory usage");
        results.rss = {
          beforeKubeletMiB: mib(rssBeforeKubelet),
          idleMiB: mib(idle.rss),
          with110PodsMiB: mib(mem.rss),
          heapUsedIdleMiB: mib(idle.heapUsed),
          heapUsedWith110PodsMiB: mib(mem.heapUsed),
          note: "RSS of the benchmark worker process (kubelet + CRI client + vitest); beforeKubeletMiB is the same process before the kubelet was created",
        };
        console.error(
          `[pod-start bench] RSS: before kubelet ${results.rss.beforeKubeletMiB} MiB, idle ${results.rss.idleMiB} MiB, ` +
            `110 pods ${results.rss.with110PodsMiB} MiB (heap used ${results.rss.heapUsedIdleMiB} → ${results.rss.heapUsedWith110PodsMiB} MiB)`,
        );
        writeResults();
        // A PLEG of its own over the same runtime, so the kubelet's workers are not woken.
        pleg = new Pleg({ inspector: new RuntimeInspector(c), onPodsChanged: () => {} });
      },
      teardown: (_task, mode) => {
        if (mode !== "run") {
          relistSamples.length = 0; // drop the warm-up relists
          return;
        }
        const mean = relistSamples.reduce((a, b) => a + b, 0) / relistSamples.length;
        results.plegRelistMs = {
          samples: relistSamples.length,
          p50: round(percentile(relistSamples, 50)),
          p99: round(percentile(relistSamples, 99)),
          mean: round(mean),
          kubeletLastRelistMs: round(need(kubelet, "kubelet").plegHealth().lastRelistDurationMs),
        };
        console.error(
          `[pod-start bench] PLEG relist with 110 pods: p50 ${results.plegRelistMs.p50} ms, p99 ${results.plegRelistMs.p99} ms, ` +
            `mean ${results.plegRelistMs.mean} ms (kubelet's own last relist ${results.plegRelistMs.kubeletLastRelistMs} ms)`,
        );
        writeResults();
      },
    },
  );
});
