/**
 * End-to-end partial syncs on the real kernel: one changed service among N (default
 * 1 000; `WORKNODE_BENCH_SERVICES`) × 10 endpoints, programmed with `IptablesProxier.sync`
 * (render, `iptables-restore --noflush`, canary check) inside a network namespace made
 * for the benchmark. `WORKNODE_BENCH_LEGACY=1` uses iptables-legacy.
 *
 * Needs root: it throws, loudly, when not root. The initial full sync is slow with
 * iptables-nft (≈ 14 s at 1k services; more than 15 minutes at 10k), hence the default.
 */
import type { ServiceChangeTracker } from "@worknode/core";
import { createNetns, destroyAll, type Netns } from "@worknode/testing";
import { afterAll, beforeAll, bench, describe } from "vitest";
import { makeCluster, makeEndpointSlice } from "../../core/test/fixtures/services.js";
import { createCommandRunner } from "../src/command.js";
import { IptablesProxier } from "../src/proxier.js";
import { commitAll } from "../test/helpers/objects.js";

if (process.getuid?.() !== 0) {
  throw new Error(
    "packages/proxy-iptables/bench/apply.bench.ts needs root: it programs iptables inside a network " +
      "namespace. Run it as root: npx vitest bench --run --project unit packages/proxy-iptables/bench/apply.bench.ts",
  );
}

const N = Number(process.env.WORKNODE_BENCH_SERVICES ?? 1_000);
const legacy = process.env.WORKNODE_BENCH_LEGACY === "1";
let ns: Netns;
let tracker: ServiceChangeTracker;
let proxier: IptablesProxier;
let slices: ReturnType<typeof makeCluster>["slices"];
let round = 0;

beforeAll(async () => {
  ns = await createNetns("bench");
  const cluster = makeCluster(N, 10);
  slices = cluster.slices;
  const c = commitAll(cluster.services, slices, "node-1");
  tracker = c.tracker;
  proxier = new IptablesProxier({
    nodeName: "node-1",
    nodeIPs: ["192.168.0.2"],
    clusterCIDRs: ["10.128.0.0/9"],
    legacy,
    runner: createCommandRunner({ netns: ns.name }),
  });
  const started = performance.now();
  await proxier.sync({ snapshot: c.snapshot, changes: c.changes, full: true });
  console.log(
    `${legacy ? "iptables-legacy" : "iptables-nft"}: full sync of ${N} services x 10 endpoints: ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
}, 3_600_000);

afterAll(async () => {
  await destroyAll();
});

/** Changes the endpoints of one service and syncs partially. */
async function changeOne(): Promise<void> {
  round++;
  const i = (round * 7919) % N;
  const next = makeEndpointSlice(i, 10, { offset: 100 + (round % 50) });
  tracker.endpointSliceHandler.onUpdate!(slices[i]!, next);
  slices[i] = next;
  const c = tracker.commit();
  await proxier.sync({ snapshot: c.snapshot, changes: c.changes, full: false });
}

describe(`IptablesProxier.sync, ${N} services x 10 endpoints, in a namespace`, () => {
  bench("partial sync of 1 changed service (render, canary check, iptables-restore)", changeOne, {
    iterations: 20,
  });
});
