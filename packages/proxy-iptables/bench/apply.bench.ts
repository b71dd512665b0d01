/**
 * End-to-end partial syncs on the real kernel: one changed service among N × 10 endpoints,
 * programmed with `IptablesProxier.sync` (render, `iptables-restore --noflush`, canary check)
 * inside a network namespace made for the benchmark (see `CASES`).
 *
 * Needs root: it throws, loudly, when not root.
 */
import type { ServiceChangeTracker } from "@worknode/core";
import { createCommandRunner } from "@worknode/core";
import { createNetns, destroyAll, type Netns } from "@worknode/testing";
import { afterAll, bench, describe } from "vitest";
import { makeCluster, makeEndpointSlice } from "../../core/test/fixtures/services.js";
import { IptablesProxier } from "../src/proxier.js";
import { commitAll } from "../test/helpers/objects.js";

if (process.getuid?.() !== 0) {
  throw new Error(
    "packages/proxy-iptables/bench/apply.bench.ts needs root: it programs iptables inside a network " +
      "namespace. Run it as root: npx vitest bench --run --project unit packages/proxy-iptables/bench/apply.bench.ts",
  );
}

/** One measured setup: a backend flavour at a cluster size. */
interface ApplyCase {
  readonly services: number;
  readonly legacy: boolean;
}

/**
 * iptables-nft at 1k services (its initial full restore is ≈ 14 s there and more than 15 minutes
 * at 10k), and iptables-legacy at 10k services (full restore ≈ 50 s; each restore replaces whole
 * tables, so a partial sync costs seconds). `WORKNODE_BENCH_SERVICES` / `WORKNODE_BENCH_LEGACY=1`
 * run one case of their own instead.
 */
const CASES: readonly ApplyCase[] =
  process.env.WORKNODE_BENCH_SERVICES || process.env.WORKNODE_BENCH_LEGACY
    ? [
        {
          services: Number(process.env.WORKNODE_BENCH_SERVICES ?? 1_000),
          legacy: process.env.WORKNODE_BENCH_LEGACY === "1",
        },
      ]
    : [
        { services: 1_000, legacy: false },
        { services: 10_000, legacy: true },
      ];

afterAll(async () => {
  await destroyAll();
});

for (const c of CASES) {
  const flavour = c.legacy ? "iptables-legacy" : "iptables-nft";
  let tracker: ServiceChangeTracker;
  let proxier: IptablesProxier;
  let slices: ReturnType<typeof makeCluster>["slices"];
  let round = 0;

  /** Changes the endpoints of one service and syncs partially. */
  const changeOne = async (): Promise<void> => {
    round++;
    const i = (round * 7919) % c.services;
    const next = makeEndpointSlice(i, 10, { offset: 100 + (round % 50) });
    tracker.endpointSliceHandler.onUpdate!(slices[i]!, next);
    slices[i] = next;
    const committed = tracker.commit();
    await proxier.sync({ snapshot: committed.snapshot, changes: committed.changes, full: false });
  };

  /** The cluster, synced fully once (from the first warm-up run: vitest 4 runs no `beforeAll` inside a benchmark `describe`). */
  const setUp = async (): Promise<void> => {
    const ns: Netns = await createNetns("bench");
    const cluster = makeCluster(c.services, 10);
    slices = cluster.slices;
    const all = commitAll(cluster.services, slices, "node-1");
    tracker = all.tracker;
    proxier = new IptablesProxier({
      nodeName: "node-1",
      nodeIPs: ["192.168.0.2"],
      clusterCIDRs: ["10.128.0.0/9"],
      legacy: c.legacy,
      runner: createCommandRunner({ netns: ns.name }),
    });
    const started = performance.now();
    await proxier.sync({ snapshot: all.snapshot, changes: all.changes, full: true });
    console.log(
      `${flavour}: full sync of ${c.services} services x 10 endpoints: ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  };
  let ready: Promise<void> | undefined;

  describe(`IptablesProxier.sync, ${c.services} services x 10 endpoints, ${flavour}, in a namespace`, () => {
    bench(
      "partial sync of 1 changed service (render, canary check, iptables-restore)",
      async () => {
        ready ??= setUp();
        await ready;
        await changeOne();
      },
      { iterations: c.services >= 10_000 ? 10 : 20, warmupIterations: 2 },
    );
  });
}
