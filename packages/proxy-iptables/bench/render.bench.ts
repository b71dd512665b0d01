/**
 * Render time and payload size of the iptables backend: full renders at 1k and 10k
 * services × 10 endpoints, and a partial render of one changed service at 10k, both
 * incremental (from the previous render's state, as `IptablesProxier` does) and from a
 * chain set the renderer does not know (as after `iptables-save`: every port is planned).
 * Payload sizes are printed once per scenario.
 */
import { bench, describe } from "vitest";
import { makeCluster, makeEndpointSlice } from "../../core/test/fixtures/services.js";
import { type RenderInput, renderRules } from "../src/render/render.js";
import { commitAll } from "../test/helpers/objects.js";

const node = { name: "node-1", nodeIPs: ["192.168.0.2"] };
const options = { family: "IPv4", clusterCIDR: "10.128.0.0/9", masqueradeAll: false } as const;

function fullInput(services: number): RenderInput {
  const { services: svcs, slices } = makeCluster(services, 10);
  const { snapshot, changes } = commitAll(svcs, slices, "node-1");
  return { snapshot, changes, full: true, node, options };
}

function partialInput(services: number): RenderInput {
  const { services: svcs, slices } = makeCluster(services, 10);
  const { tracker, snapshot, changes } = commitAll(svcs, slices, "node-1");
  const first = renderRules({ snapshot, changes, full: true, node, options });
  const i = Math.floor(services / 2);
  tracker.endpointSliceHandler.onUpdate!(slices[i]!, makeEndpointSlice(i, 10, { offset: 100 }));
  const next = tracker.commit();
  return {
    snapshot: next.snapshot,
    changes: next.changes,
    full: false,
    previousChains: first.activeChains,
    node,
    options,
  };
}

function report(name: string, input: RenderInput): void {
  const r = renderRules(input);
  const bytes = Buffer.byteLength(r.filter) + Buffer.byteLength(r.nat);
  console.log(
    `${name}: payload ${(bytes / 1024).toFixed(1)} KiB, nat rules ${r.stats.natRules}, chains written ${r.chainsWritten.length}, service ports written ${r.stats.servicePortsWritten}`,
  );
}

const full1k = fullInput(1_000);
const full10k = fullInput(10_000);
const partial10k = partialInput(10_000);
// The same chains, in a set the renderer has no state for.
const partial10kUnknown: RenderInput = { ...partial10k, previousChains: new Set(partial10k.previousChains) };
report("full 1k x 10", full1k);
report("full 10k x 10", full10k);
report("partial 1 of 10k", partial10k);

describe("renderRules", () => {
  bench("full: 1k services x 10 endpoints", () => {
    renderRules(full1k);
  });
  bench(
    "full: 10k services x 10 endpoints",
    () => {
      renderRules(full10k);
    },
    { iterations: 5, time: 2_000 },
  );
  bench("partial: 1 changed service of 10k (incremental)", () => {
    renderRules(partial10k);
  });
  bench("partial: 1 changed service of 10k (previous chains unknown: plans every port)", () => {
    renderRules(partial10kUnknown);
  });
});
