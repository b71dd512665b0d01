/**
 * End-to-end syncs on the real kernel: `NftablesProxier.sync` (render + one `nft -f -`)
 * inside a network namespace made for the benchmark, at 10k services × 10 endpoints
 * (`WORKNODE_BENCH_SERVICES` sets another size): the initial full sync is timed once and
 * printed, then partial syncs of one changed service are measured. This is the
 * "one-service change at 10k services" case of the proxy's performance aim.
 *
 * Needs root: it throws, loudly, when not root.
 */
import type { ServiceChangeTracker } from "@worknode/core";
import { commitAll, createNetns, destroyAll, type Netns } from "@worknode/testing";
import { afterAll, bench, describe } from "vitest";
import { makeCluster, makeEndpointSlice } from "../../core/test/fixtures/services.js";
import { NftablesProxier } from "../src/proxier.js";

if (process.getuid?.() !== 0) {
  throw new Error(
    "packages/proxy-nftables/bench/apply.bench.ts needs root: it programs nftables inside a network " +
      "namespace. Run it as root: npx vitest bench --run --project unit packages/proxy-nftables/bench/apply.bench.ts",
  );
}

const SERVICES = Number(process.env.WORKNODE_BENCH_SERVICES ?? 10_000);

afterAll(async () => {
  await destroyAll();
});

let tracker: ServiceChangeTracker;
let proxier: NftablesProxier;
let slices: ReturnType<typeof makeCluster>["slices"];
let round = 0;

/** Changes the endpoints of one service and syncs partially. */
async function changeOne(): Promise<void> {
  round++;
  const i = (round * 7919) % SERVICES;
  const next = makeEndpointSlice(i, 10, { offset: 100 + (round % 50) });
  tracker.endpointSliceHandler.onUpdate!(slices[i]!, next);
  slices[i] = next;
  const committed = tracker.commit();
  await proxier.sync({ snapshot: committed.snapshot, changes: committed.changes, full: false });
}

/**
 * Builds the cluster and syncs it fully, once. (Called from the first, warm-up run of the
 * benchmark: vitest 4 does not run `beforeAll` hooks inside a benchmark `describe`.)
 */
async function setUp(): Promise<void> {
  const ns: Netns = await createNetns("nftbench");
  const cluster = makeCluster(SERVICES, 10);
  slices = cluster.slices;
  const all = commitAll(cluster.services, slices, "node-1");
  tracker = all.tracker;
  proxier = new NftablesProxier({
    nodeName: "node-1",
    nodeIPs: ["192.168.0.2"],
    clusterCIDRs: ["10.128.0.0/9"],
    netns: ns.name,
  });
  const started = performance.now();
  await proxier.sync({ snapshot: all.snapshot, changes: all.changes, full: true });
  console.log(
    `nftables: full sync of ${SERVICES} services x 10 endpoints: ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
}

let ready: Promise<void> | undefined;

describe(`NftablesProxier.sync, ${SERVICES} services x 10 endpoints, in a namespace`, () => {
  bench(
    "partial sync of 1 changed service (render + nft -f -)",
    async () => {
      ready ??= setUp();
      await ready;
      await changeOne();
    },
    { iterations: 30, warmupIterations: 2 },
  );
});
