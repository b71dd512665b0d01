/**
 * End-to-end syncs on the real kernel: `EbpfProxier.sync` (plan + map diff + one
 * `bpftool batch`) at 10k services × 10 endpoints (`WORKNODE_BENCH_SERVICES` sets another
 * size), with the programs attached to an empty cgroup made for the benchmark and the maps
 * pinned in a bpffs directory of its own. The initial full sync and a full resync (which
 * reads both maps back from the kernel) are timed once; then partial syncs of one changed
 * service are measured: the "one-service change at 10k services" case of the proxy's
 * performance aim. The one-off times and the partial syncs' percentiles go to
 * `bench-results/proxy-ebpf-apply.json`.
 *
 * Needs root: it throws, loudly, when not root.
 */
import { mkdirSync, rmdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ProxyController, type ServiceChangeTracker, type SyncInput, type SyncStats } from "@worknode/core";
import { commitAll } from "@worknode/testing";
import { afterAll, bench, describe } from "vitest";
import { makeCluster, makeEndpointSlice } from "../../core/test/fixtures/services.js";
import { cgroup2Root } from "../src/bpf-tool.js";
import { EbpfProxier } from "../src/proxier.js";

if (process.getuid?.() !== 0) {
  throw new Error(
    "packages/proxy-ebpf/bench/apply.bench.ts needs root: it loads BPF programs into a cgroup of its own. " +
      "Run it as root: npx vitest bench --run --project unit packages/proxy-ebpf/bench/apply.bench.ts",
  );
}

const SERVICES = Number(process.env.WORKNODE_BENCH_SERVICES ?? 10_000);
const PIN_PATH = "/sys/fs/bpf/wnebp-bench";
const RESULTS = fileURLToPath(new URL("../../../bench-results/proxy-ebpf-apply.json", import.meta.url));

let tracker: ServiceChangeTracker;
let proxier: EbpfProxier | undefined;
let cgroup: string | undefined;
let slices: ReturnType<typeof makeCluster>["slices"];
let round = 0;
const partialMs: number[] = [];
const controllerMs: number[] = [];
const oneOff: Record<string, number> = {};

/** Changes the endpoints of one service and syncs partially. */
async function changeOne(): Promise<void> {
  round++;
  const i = (round * 7919) % SERVICES;
  const next = makeEndpointSlice(i, 10, { offset: 100 + (round % 50) });
  const started = performance.now();
  tracker.endpointSliceHandler.onUpdate!(slices[i]!, next);
  slices[i] = next;
  const committed = tracker.commit();
  await proxier!.sync({ snapshot: committed.snapshot, changes: committed.changes, full: false });
  partialMs.push(performance.now() - started);
}

async function timed(name: string, run: () => Promise<unknown>): Promise<void> {
  const started = performance.now();
  await run();
  oneOff[name] = Math.round(performance.now() - started);
  console.log(`eBPF: ${name} of ${SERVICES} services x 10 endpoints: ${oneOff[name]} ms`);
}

/**
 * Builds the cluster, loads the programs and syncs fully, once. (Called from the first,
 * warm-up run of the benchmark: vitest 4 does not run `beforeAll` hooks inside a benchmark
 * `describe`.)
 */
async function setUp(): Promise<void> {
  cgroup = `${await cgroup2Root()}/wnebp-bench`;
  mkdirSync(cgroup, { recursive: true });
  const cluster = makeCluster(SERVICES, 10);
  slices = cluster.slices;
  const all = commitAll(cluster.services, slices, "node-1");
  tracker = all.tracker;
  proxier = new EbpfProxier({
    nodeName: "node-1",
    nodeIPs: ["192.168.0.2"],
    cgroupPath: cgroup,
    pinPath: PIN_PATH,
  });
  await proxier.cleanup();
  await timed("first full sync (load programs, write every entry)", () =>
    proxier!.sync({ snapshot: all.snapshot, changes: all.changes, full: true }),
  );
  await timed("full resync (read both maps back, write the difference)", () =>
    proxier!.sync({ snapshot: all.snapshot, changes: all.changes, full: true }),
  );
}

/** The `q` quantile of `samples`, rounded to 0.1 ms. */
function pct(samples: readonly number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return Math.round((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0) * 10) / 10;
}

let controller: ProxyController | undefined;
let synced: (() => void) | undefined;

/**
 * The same change through the whole pipeline: tracker event → `ProxyController` (its
 * bounded-frequency runner, idle, runs at once) → `EbpfProxier.sync`. Timed from the event to
 * the end of the sync.
 */
async function changeOneThroughController(): Promise<void> {
  round++;
  const i = (round * 7919) % SERVICES;
  const next = makeEndpointSlice(i, 10, { offset: 100 + (round % 50) });
  const done = new Promise<void>((resolve) => {
    synced = resolve;
  });
  const started = performance.now();
  tracker.endpointSliceHandler.onUpdate!(slices[i]!, next);
  slices[i] = next;
  await done;
  controllerMs.push(performance.now() - started);
  // Let the runner's minimum interval (100 ms) pass, so that every change finds it idle.
  await new Promise((r) => setTimeout(r, 110));
}

async function startController(): Promise<void> {
  ready ??= setUp();
  await ready;
  const inner = proxier!;
  controller = new ProxyController({
    tracker,
    minSyncPeriodMs: 100,
    syncPeriodMs: 3_600_000,
    periodicFullSync: false,
    proxier: {
      mode: inner.mode,
      cleanup: () => inner.cleanup(),
      async sync(input: SyncInput): Promise<SyncStats> {
        const stats = await inner.sync(input);
        synced?.();
        return stats;
      },
    },
  });
  const first = new Promise<void>((resolve) => {
    synced = resolve;
  });
  controller.markServicesSynced();
  controller.markEndpointSlicesSynced();
  controller.start();
  await first; // the controller's own first, full sync
  await new Promise((r) => setTimeout(r, 110)); // the runner is idle again
}

afterAll(async () => {
  await controller?.stop();
  if (partialMs.length > 0) {
    const sorted = [...partialMs].sort((a, b) => a - b);
    const at = (q: number) =>
      Math.round((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0) * 10) / 10;
    mkdirSync(new URL("../../../bench-results/", import.meta.url), { recursive: true });
    writeFileSync(
      RESULTS,
      `${JSON.stringify(
        {
          table: {
            title: `eBPF backend on the real kernel, ${SERVICES} services x 10 endpoints`,
            columns: ["measurement", "ms"],
            rows: [
              ...Object.entries(oneOff).map(([k, v]) => [k, v]),
              [`one-service change, event to programmed, p50 (${sorted.length} runs)`, at(0.5)],
              ["one-service change, event to programmed, p99", at(0.99)],
              ...(controllerMs.length > 0
                ? [
                    [
                      `one-service change through ProxyController, event to programmed, p50 (${controllerMs.length} runs)`,
                      pct(controllerMs, 0.5),
                    ],
                    [
                      "one-service change through ProxyController, event to programmed, p99",
                      pct(controllerMs, 0.99),
                    ],
                  ]
                : []),
            ],
          },
        },
        null,
        2,
      )}\n`,
    );
  }
  await proxier?.cleanup();
  if (cgroup !== undefined) rmdirSync(cgroup);
});

let ready: Promise<void> | undefined;

describe(`EbpfProxier.sync, ${SERVICES} services x 10 endpoints, programs on a cgroup of their own`, () => {
  bench(
    "partial sync of 1 changed service (event + plan + diff + bpftool batch)",
    async () => {
      ready ??= setUp();
      await ready;
      await changeOne();
    },
    { iterations: 50, warmupIterations: 2 },
  );
  bench(
    "the same through ProxyController (event + runner + sync, then a 110 ms wait for the idle runner: event-to-programmed times in the table below)",
    async () => {
      if (controller === undefined) await startController();
      await changeOneThroughController();
    },
    { iterations: 30, warmupIterations: 2 },
  );
});
