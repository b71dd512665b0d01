/**
 * Pure cost of an eBPF sync, without the kernel: plan + map diff + `bpftool batch` script
 * for a full sync onto empty maps at 1k and 10k services × 10 endpoints, and a partial sync
 * of one changed service at 10k (tracker commit + plan + diff + script), each from the state
 * the previous one left, as `EbpfProxier` does. Operation counts and script sizes are printed
 * once per scenario.
 */
import type { ServiceChangeTracker, ServiceSnapshot } from "@worknode/core";
import { commitAll } from "@worknode/testing";
import { bench, describe } from "vitest";
import { makeCluster, makeEndpointSlice } from "../../core/test/fixtures/services.js";
import { renderBatch } from "../src/maps/batch.js";
import { type PlanOptions, type PortPlan, planServicePorts } from "../src/maps/plan.js";
import { EbpfMapState } from "../src/maps/state.js";

const node = { name: "node-1", nodeIPs: ["192.168.0.2"] };
const options: PlanOptions = { families: ["IPv4"] };
const MAPS_DIR = "/sys/fs/bpf/worknode/maps-v1";
function plans(snapshot: ServiceSnapshot, keys?: Iterable<string>): Map<string, PortPlan | undefined> {
  return planServicePorts(snapshot, node, options, keys);
}

/** One full sync onto empty maps; returns the script. */
function fullSync(snapshot: ServiceSnapshot): { ops: number; script: string } {
  const diff = EbpfMapState.empty().apply(plans(snapshot), true);
  return { ops: diff.ops.length, script: renderBatch(diff.ops, MAPS_DIR) };
}

function snapshotOf(services: number): ServiceSnapshot {
  const { services: svcs, slices } = makeCluster(services, 10);
  return commitAll(svcs, slices, "node-1").snapshot;
}

/** A full sync, set up on the first call (vitest 4 runs no `beforeAll` inside a bench `describe`). */
function fullSequence(name: string, services: number): () => void {
  let snapshot: ServiceSnapshot | undefined;
  return () => {
    if (snapshot === undefined) {
      snapshot = snapshotOf(services);
      const r = fullSync(snapshot);
      console.log(`${name}: ${r.ops} ops, script ${(Buffer.byteLength(r.script) / 1024).toFixed(1)} KiB`);
    }
    fullSync(snapshot);
  };
}

/** A cluster synced fully once; each call changes one service's endpoints (back and forth) and syncs partially. */
function partialSequence(services: number): () => void {
  let tracker: ServiceChangeTracker | undefined;
  let slices: ReturnType<typeof makeCluster>["slices"] = [];
  let state: EbpfMapState | undefined;
  let round = 0;
  let printed = false;
  return () => {
    if (tracker === undefined || state === undefined) {
      const cluster = makeCluster(services, 10);
      slices = cluster.slices;
      const all = commitAll(cluster.services, slices, "node-1");
      tracker = all.tracker;
      state = EbpfMapState.empty();
      state.apply(plans(all.snapshot), true);
    }
    round++;
    const i = (round * 7919) % services;
    // Endpoints 100-109 on odd rounds of this service, 0-9 again on even ones.
    const next = makeEndpointSlice(i, 10, { offset: round % 2 === 1 ? 100 : 0 });
    tracker.endpointSliceHandler.onUpdate!(slices[i]!, next);
    slices[i] = next;
    const c = tracker.commit();
    const keys = new Set([...c.changes.changedServicePorts, ...c.changes.deletedServicePorts]);
    const diff = state.apply(plans(c.snapshot, keys), false);
    const script = renderBatch(diff.ops, MAPS_DIR);
    if (!printed) {
      printed = true;
      console.log(
        `partial 1 of ${services}: ${diff.ops.length} ops, script ${Buffer.byteLength(script)} B, frontends ${state.frontendCount}, slots ${state.backendSlotCount}`,
      );
    }
  };
}

describe("eBPF plan + diff + renderBatch", () => {
  bench("full: 1k services x 10 endpoints", fullSequence("full 1k x 10", 1_000));
  bench("full: 10k services x 10 endpoints", fullSequence("full 10k x 10", 10_000), {
    iterations: 5,
    time: 2_000,
  });
  bench("partial: 1 changed service of 10k (tracker commit + plan + diff + render)", partialSequence(10_000));
});
