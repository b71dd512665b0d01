// Where the time of a static-pod batch start goes: the standalone kubelet on the lab's containerd
// with every CRI call timed (per RPC: count, total, mean, p50, p99, max), the CPU used by the kubelet
// process and by the runtime side (containerd, its shims, runc, CNI plugins: everything on the machine
// except this process), the machine's idle time, and the in-flight concurrency of CRI calls.
//
// Run as root:  npx tsx --conditions=@worknode/source packages/kubelet/bench/pod-start-profile.ts [pods…]
// (default sizes 30 and 110). Prints a JSON report per batch to stdout.
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createLogger, ManifestDirSource } from "@worknode/core";
import { CriClient } from "@worknode/cri";
import { startContainerdLab } from "@worknode/testing";
import { stringify } from "yaml";
import { Kubelet, RuntimeInspector } from "../src/index.js";
import { PodStartTracker, percentile, sleeperPod } from "./pod-start-lab.js";

if (process.getuid?.() !== 0)
  throw new Error("pod-start-profile needs root (it starts a private containerd)");

const NODE = "wnk5p-node";
const LAB_DIR = "/tmp/wnk5-lab";
const sizes = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => n > 0);
const SIZES = sizes.length > 0 ? sizes : [30, 110];

interface CallStats {
  samples: number[];
}

/** A CRI client whose every RuntimeService / ImageService call is timed. */
function instrument(client: CriClient): {
  client: CriClient;
  calls: Map<string, CallStats>;
  inflight: { now: number; max: number; area: number; last: number };
} {
  const calls = new Map<string, CallStats>();
  const inflight = { now: 0, max: 0, area: 0, last: performance.now() };
  const tick = (delta: number) => {
    const t = performance.now();
    inflight.area += inflight.now * (t - inflight.last);
    inflight.last = t;
    inflight.now += delta;
    inflight.max = Math.max(inflight.max, inflight.now);
  };
  // The services are frozen objects: build timed copies instead of proxying them.
  const wrap = <T extends object>(svc: T, prefix: string): T => {
    const out: Record<string, unknown> = {};
    for (const [name, fn] of Object.entries(svc)) {
      if (typeof fn !== "function") continue;
      const key = `${prefix}.${name}`;
      out[name] = (...args: unknown[]) => {
        const t0 = performance.now();
        tick(1);
        const done = () => {
          tick(-1);
          const s = calls.get(key) ?? { samples: [] };
          calls.set(key, s);
          s.samples.push(performance.now() - t0);
        };
        const r = (fn as (...a: unknown[]) => unknown)(...args);
        if (r instanceof Promise) return r.finally(done);
        done();
        return r;
      };
    }
    return out as T;
  };
  const runtime = wrap(client.runtime, "runtime");
  const image = wrap(client.image, "image");
  const proxied = new Proxy(client, {
    get(target, prop) {
      if (prop === "runtime") return runtime;
      if (prop === "image") return image;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { client: proxied, calls, inflight };
}

/** Machine CPU jiffies (busy, idle) from /proc/stat. */
function machineCpu(): { busy: number; idle: number } {
  const f = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "")
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, idle };
}

const TICK_MS = 10; // USER_HZ = 100

/**
 * CPU jiffies (own + waited-for children) of the processes whose command line names `labDir`:
 * the lab's containerd (its children: CNI plugins) and its shims (their children: runc).
 */
function runtimeCpu(labDir: string): number {
  let sum = 0;
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(labDir)) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat
        .slice(stat.lastIndexOf(")") + 2)
        .split(" ")
        .map(Number);
      // fields 14-17 (utime, stime, cutime, cstime) are at 11-14 after the command name
      sum += (f[11] ?? 0) + (f[12] ?? 0) + (f[13] ?? 0) + (f[14] ?? 0);
    } catch {
      // the process ended
    }
  }
  return sum;
}

/**
 * The CPU cost of one pod status read (kubelet's GetPodStatus: 2 filtered lists + one status per
 * sandbox and container) with the batch running: 100 reads one after the other, CPU per read in
 * the kubelet process and in the lab runtime.
 */
async function podStatusCost(client: CriClient, kubelet: Kubelet) {
  const inspector = new RuntimeInspector(client);
  const pods = kubelet.pods().slice(0, 100);
  const reads = 100;
  const c0 = process.cpuUsage();
  const r0 = runtimeCpu(LAB_DIR);
  const t0 = performance.now();
  for (let i = 0; i < reads; i++) {
    const p = pods[i % pods.length];
    await inspector.podStatus(p?.metadata?.uid ?? "", p?.metadata?.name ?? "", p?.metadata?.namespace ?? "");
  }
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return {
    reads,
    wallMsPerRead: Math.round((wall / reads) * 10) / 10,
    kubeletCpuMsPerRead: Math.round(((c.user + c.system) / 1000 / reads) * 10) / 10,
    runtimeCpuMsPerRead: Math.round((((runtimeCpu(LAB_DIR) - r0) * TICK_MS) / reads) * 10) / 10,
  };
}

async function main(): Promise<void> {
  const lab = await startContainerdLab({
    log: (l) => console.error(`[lab] ${l}`),
    containerd: {
      labDir: "/tmp/wnk5-lab",
      bridgeName: "wnk5b0",
      podSubnet: "10.90.0.0/16",
      streamPort: 10057,
    },
  });
  const manifestDir = mkdtempSync(path.join(tmpdir(), "wnk5p-manifests-"));
  const rootDir = mkdtempSync(path.join(tmpdir(), "wnk5p-root-"));
  const logsDir = mkdtempSync(path.join(tmpdir(), "wnk5p-logs-"));
  const raw = new CriClient({ endpoint: lab.endpoint });
  const { client, calls, inflight } = instrument(raw);
  const tracker = new PodStartTracker();
  const firstStatus = new Map<string, number>();
  const source = new ManifestDirSource({ path: manifestDir, nodeName: NODE });
  const kubelet = new Kubelet({
    client,
    nodeName: NODE,
    sources: [source],
    rootDir,
    podLogsDir: logsDir,
    resolvConf: "",
    // PROFILE_LOG=1 logs (level from WORKNODE_LOG_LEVEL, default info) the kubelet to stderr.
    ...(process.env.PROFILE_LOG ? { logger: createLogger({ name: "kubelet" }) } : {}),
    onStatus: (pod, status) => {
      const n = pod.metadata?.name ?? "";
      if (!firstStatus.has(n)) firstStatus.set(n, performance.now());
      tracker.observe(n, status);
    },
  });
  try {
    await raw.image.pullImage({ image: { image: lab.busyboxImage } });
    await source.start();
    await kubelet.start();
    let batch = 0;
    for (const n of SIZES) {
      calls.clear();
      inflight.max = 0;
      inflight.area = 0;
      inflight.last = performance.now();
      firstStatus.clear();
      const cpu0 = process.cpuUsage();
      const m0 = machineCpu();
      const r0 = runtimeCpu(LAB_DIR);
      const t0 = performance.now();
      const b = batch++;
      for (let i = 0; i < n; i++) {
        const name = `pp${b}-${i}`;
        const tmp = path.join(manifestDir, `.${name}.yaml.tmp`);
        writeFileSync(tmp, stringify(sleeperPod(name, lab.busyboxImage)));
        tracker.expect(`${name}-${NODE}`);
        renameSync(tmp, path.join(manifestDir, `${name}.yaml`));
      }
      await tracker.waitAll(600_000);
      const wall = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      const m1 = machineCpu();
      const r1 = runtimeCpu(LAB_DIR);
      const latencies = tracker.drain();
      const firstSeen = [...firstStatus.values()].map((t) => t - t0);
      const kubeletCpuMs = (cpu.user + cpu.system) / 1000;
      const machineBusyMs = (m1.busy - m0.busy) * TICK_MS;
      const report = {
        pods: n,
        wallMs: Math.round(wall),
        podStartMs: {
          p50: Math.round(percentile(latencies, 50)),
          p99: Math.round(percentile(latencies, 99)),
        },
        firstStatusMs: {
          p50: Math.round(percentile(firstSeen, 50)),
          max: Math.round(Math.max(...firstSeen)),
        },
        cpu: {
          kubeletProcessMs: Math.round(kubeletCpuMs),
          labRuntimeMs: (r1 - r0) * TICK_MS,
          restOfMachineMs: Math.round(machineBusyMs - kubeletCpuMs - (r1 - r0) * TICK_MS),
          machineIdleMs: (m1.idle - m0.idle) * TICK_MS,
          cores: 2,
        },
        criInFlight: { max: inflight.max, mean: Math.round((inflight.area / wall) * 10) / 10 },
        rpc: Object.fromEntries(
          [...calls]
            .sort((a, b) => b[1].samples.reduce((x, y) => x + y, 0) - a[1].samples.reduce((x, y) => x + y, 0))
            .map(([k, s]) => [
              k,
              {
                count: s.samples.length,
                totalMs: Math.round(s.samples.reduce((x, y) => x + y, 0)),
                p50: Math.round(percentile(s.samples, 50) * 10) / 10,
                p99: Math.round(percentile(s.samples, 99) * 10) / 10,
                max: Math.round(Math.max(...s.samples)),
              },
            ]),
        ),
      };
      console.log(JSON.stringify(report, null, 2));
      console.log(JSON.stringify({ pods: n, podStatusCost: await podStatusCost(raw, kubelet) }, null, 2));
      // Remove the batch before the next one (not measured).
      for (const f of readdirSync(manifestDir)) unlinkSync(path.join(manifestDir, f));
      for (const deadline = Date.now() + 300_000; kubelet.pods().length > 0 && Date.now() < deadline; )
        await new Promise((r) => setTimeout(r, 200));
      await kubelet.waitForTerminations();
    }
  } finally {
    await kubelet.stop();
    await source.stop();
    raw.close();
    await lab.stop();
    for (const d of [manifestDir, rootDir, logsDir]) rmSync(d, { recursive: true, force: true });
  }
}

await main();
