/**
 * Memory of the proxy holding 10k services / 100k endpoints: the change tracker (its
 * snapshot and the objects it keeps) plus the iptables proxier after a full sync (its
 * render state, cached per-port plans and chain names, and the last payload), measured
 * as V8 heap used after a forced GC, minus the heap before anything was built. The
 * input object arrays are dropped before measuring, so only what the proxy retains
 * counts. The proxier runs against a runner that accepts every command (no iptables):
 * this measures the process, not the kernel.
 *
 * Results go to `bench-results/proxy-memory.json` and the console; the bench body (one
 * partial sync of a changed service at that size, kept state included) keeps the figure
 * next to the time it costs.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { CommandRunner, ServiceChangeTracker, SyncInput } from "@worknode/core";
import { afterAll, beforeAll, bench, describe } from "vitest";
import { makeCluster, makeEndpointSlice } from "../../core/test/fixtures/services.js";
import { IptablesProxier } from "../src/proxier.js";
import { commitAll } from "../test/helpers/objects.js";

const SERVICES = 10_000;
const ENDPOINTS_PER_SERVICE = 10;
const RESULTS_FILE = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "../../../bench-results/proxy-memory.json",
);

/** `gc()` without `--expose-gc` on the command line. */
function gcFunction(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

const acceptAll: CommandRunner = {
  async exec() {
    return { code: 0, stdout: "", stderr: "" };
  },
};

const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;

let tracker: ServiceChangeTracker;
let proxier: IptablesProxier;
let changeIndex = 0;
const results: Record<string, number | string> = {};

function settledHeap(gc: () => void): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

beforeAll(async () => {
  const gc = gcFunction();
  const before = settledHeap(gc);
  {
    const { services, slices } = makeCluster(SERVICES, ENDPOINTS_PER_SERVICE);
    const committed = commitAll(services, slices, "node-1");
    tracker = committed.tracker;
    proxier = new IptablesProxier({
      nodeName: "node-1",
      nodeIPs: ["192.168.0.2"],
      clusterCIDRs: ["10.128.0.0/9"],
      runner: acceptAll,
      conntrack: false,
    });
    const input: SyncInput = { snapshot: committed.snapshot, changes: committed.changes, full: true };
    await proxier.sync(input);
  }
  const trackerAndProxier = settledHeap(gc);
  const payloadBytes = proxier.lastApplied()?.payload.length ?? 0;
  results.services = SERVICES;
  results.endpoints = SERVICES * ENDPOINTS_PER_SERVICE;
  results.heapUsedBeforeMiB = mib(before);
  results.heapUsedWithProxyMiB = mib(trackerAndProxier);
  results.proxyHeapMiB = mib(trackerAndProxier - before);
  results.lastPayloadMiB = mib(payloadBytes);
  results.note =
    "V8 heap used after GC; proxyHeapMiB = tracker + proxier state (including the last restore payload, lastPayloadMiB) after a full sync";
  console.error(
    `[proxy memory] ${SERVICES} services / ${SERVICES * ENDPOINTS_PER_SERVICE} endpoints: tracker + proxier hold ${results.proxyHeapMiB} MiB of heap (of which the last payload ${results.lastPayloadMiB} MiB)`,
  );
  mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
  writeFileSync(RESULTS_FILE, `${JSON.stringify(results, null, 2)}\n`);
}, 300_000);

afterAll(() => {
  console.error(`[proxy memory] results in ${RESULTS_FILE}`);
});

describe("proxy memory at 10k services / 100k endpoints", () => {
  bench(
    "partial sync of 1 changed service, state of 10k services kept",
    async () => {
      const i = changeIndex++ % SERVICES;
      tracker.endpointSliceHandler.onUpdate!(
        makeEndpointSlice(i, ENDPOINTS_PER_SERVICE),
        makeEndpointSlice(i, ENDPOINTS_PER_SERVICE, { offset: 100 + (changeIndex % 2) }),
      );
      const { snapshot, changes } = tracker.commit();
      await proxier.sync({ snapshot, changes, full: false });
    },
    { iterations: 20, time: 0, warmupIterations: 2, warmupTime: 0 },
  );
});
