/**
 * Render time and payload size of the nftables backend: full renders (the whole table)
 * at 1k, 10k and 30k services × 10 endpoints, and partial renders of one changed service
 * at 10k, each from the state the previous render left (as `NftablesProxier` does).
 * Payload sizes are printed once per scenario.
 */
import type { ServiceChangeTracker } from "@worknode/core";
import { commitAll } from "@worknode/testing";
import { bench, describe } from "vitest";
import { makeCluster, makeEndpointSlice } from "../../core/test/fixtures/services.js";
import { type NftRenderInput, type NftRenderState, renderNftables } from "../src/render/render.js";

const node = { name: "node-1", nodeIPs: ["192.168.0.2"] };
const options = { family: "IPv4", clusterCIDR: "10.128.0.0/9", masqueradeAll: false } as const;

function fullInput(services: number): NftRenderInput {
  const { services: svcs, slices } = makeCluster(services, 10);
  const { snapshot, changes } = commitAll(svcs, slices, "node-1");
  return { snapshot, changes, full: true, node, options };
}

function report(name: string, input: NftRenderInput): void {
  const r = renderNftables(input);
  console.log(
    `${name}: payload ${(Buffer.byteLength(r.payload) / 1024).toFixed(1)} KiB, rules ${r.stats.rulesWritten}, elements ${r.stats.elementsWritten}, chains ${r.stats.chains}, service ports written ${r.stats.servicePortsWritten}`,
  );
}

/** A 10k cluster rendered once; each call changes one service's endpoints and renders partially. */
function partialSequence(services: number): () => void {
  const { services: svcs, slices } = makeCluster(services, 10);
  const all = commitAll(svcs, slices, "node-1");
  const tracker: ServiceChangeTracker = all.tracker;
  let state: NftRenderState = renderNftables({ ...all, full: true, node, options }).state;
  let round = 0;
  let printed = false;
  return () => {
    round++;
    const i = (round * 7919) % services;
    const next = makeEndpointSlice(i, 10, { offset: 100 + (round % 50) });
    tracker.endpointSliceHandler.onUpdate!(slices[i]!, next);
    slices[i] = next;
    const c = tracker.commit();
    const r = renderNftables({ ...c, full: false, previous: state, node, options });
    state = r.state;
    if (!printed) {
      printed = true;
      console.log(
        `partial 1 of ${services}: payload ${Buffer.byteLength(r.payload)} B, rules ${r.stats.rulesWritten}, elements ${r.stats.elementsWritten}`,
      );
    }
  };
}

const full1k = fullInput(1_000);
const full10k = fullInput(10_000);
const full30k = fullInput(30_000);
report("full 1k x 10", full1k);
report("full 10k x 10", full10k);
report("full 30k x 10", full30k);
const partial10k = partialSequence(10_000);

describe("renderNftables", () => {
  bench("full: 1k services x 10 endpoints", () => {
    renderNftables(full1k);
  });
  bench(
    "full: 10k services x 10 endpoints",
    () => {
      renderNftables(full10k);
    },
    { iterations: 5, time: 2_000 },
  );
  bench(
    "full: 30k services x 10 endpoints",
    () => {
      renderNftables(full30k);
    },
    { iterations: 3, time: 2_000 },
  );
  bench("partial: 1 changed service of 10k (tracker commit + render)", partial10k);
});
