import type { EndpointSlice, Service } from "@worknode/core";
import {
  commitAll,
  fixtureService,
  fixtureSlice,
  goldenFiles,
  svc,
  threeServices as threeServiceFixture,
} from "@worknode/testing";
import { describe, expect, it } from "vitest";
import { makeCluster, makeEndpointSlice, makeService } from "../../core/test/fixtures/services.js";
import { type RenderOptions, renderRules } from "../src/render/render.js";

const expectGolden = goldenFiles(new URL("./golden/", import.meta.url), expect);

const node = { name: "test-node", nodeIPs: ["192.168.0.2"] };
const v4: RenderOptions = { family: "IPv4", clusterCIDR: "10.0.0.0/8", masqueradeAll: false };
const p80 = [{ name: "p80", port: 80 }];

/** The three services of `threeServices`, committed. */
function threeServices() {
  const f = threeServiceFixture();
  return { ...f, ...commitAll(f.services, f.slices) };
}

const declared = (payload: string) =>
  payload
    .split("\n")
    .filter((l) => l.startsWith(":"))
    .map((l) => l.slice(1).split(" ")[0]);

describe("partial renders", () => {
  it("after one endpoint change, rewrites only that service port's chains", () => {
    const { slices, tracker, snapshot, changes } = threeServices();
    const first = renderRules({ snapshot, changes, full: true, node, options: v4 });
    expect(first.stats.servicePortsWritten).toBe(3);

    const oldSlice = slices[1]!;
    tracker.endpointSliceHandler.onUpdate!(oldSlice, fixtureSlice(2, ["10.180.0.2", "10.180.0.23"]));
    const next = tracker.commit();
    const partial = renderRules({
      snapshot: next.snapshot,
      changes: next.changes,
      full: false,
      previousChains: first.activeChains,
      node,
      options: v4,
    });
    expectGolden("partial.txt", partial.filter + partial.nat);

    const svc2Chains = ["KUBE-SVC-GNZBNJ2PO5MGZ6GT"];
    expect(partial.chainsWritten).toContain(svc2Chains[0]);
    expect(partial.stats.servicePortsWritten).toBe(1);
    expect(partial.stats.servicePortsSkipped).toBe(2);
    // Neither svc1's nor svc3's chains are declared (and so not flushed) in the payload.
    const names = declared(partial.nat);
    expect(names).not.toContain("KUBE-SVC-XPGD46QRK7WJZT7O");
    expect(names).not.toContain("KUBE-SEP-SXIVWICOYRO3J4NJ");
    expect(names).not.toContain("KUBE-SVC-X27LE4BHSL4DOUIK");
    expect(partial.nat).not.toMatch(/^-A KUBE-SVC-XPGD46QRK7WJZT7O/m);
    // ... but the top-level chain still jumps to them.
    expect(partial.nat).toContain("-d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O");
    expect(partial.nat).toContain("-d 172.30.0.43 --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK");
    // The endpoint that went away loses its chain; the new one gets one.
    expect(partial.chainsDeleted).toHaveLength(1);
    expect(partial.nat).toContain(`-X ${partial.chainsDeleted[0]}`);
    expect(partial.nat).toContain("--to-destination 10.180.0.23:80");
    expect(partial.nat).not.toContain("10.180.0.22");
    // Active chains still include the unchanged services' chains.
    expect(partial.activeChains.has("KUBE-SEP-SXIVWICOYRO3J4NJ")).toBe(true);
  });

  it("deletes every chain of a deleted service", () => {
    const { services, tracker, snapshot, changes } = threeServices();
    const first = renderRules({ snapshot, changes, full: true, node, options: v4 });
    tracker.serviceHandler.onDelete!(services[1]!);
    const next = tracker.commit();
    expect(next.changes.deletedServicePorts.has("ns2/svc2:p80/TCP")).toBe(true);
    for (const full of [false, true]) {
      const r = renderRules({
        snapshot: next.snapshot,
        changes: next.changes,
        full,
        previousChains: first.activeChains,
        node,
        options: v4,
      });
      const svc2 = [...first.activeChains].filter((c) => !r.activeChains.has(c));
      expect(svc2).toHaveLength(3); // SVC + 2 SEP
      expect([...r.chainsDeleted].sort()).toEqual(svc2.sort());
      for (const c of svc2) {
        expect(r.nat).toContain(`:${c} - [0:0]`);
        expect(r.nat).toContain(`-X ${c}\n`);
        expect(r.nat).not.toContain(`-j ${c}`);
      }
      expect(r.stats.servicePortsWritten).toBe(full ? 2 : 0);
    }
  });

  it("rewrites an unchanged service port whose chains are missing from previousChains", () => {
    const { snapshot, changes } = threeServices();
    const first = renderRules({ snapshot, changes, full: true, node, options: v4 });
    const previous = new Set(first.activeChains);
    previous.delete("KUBE-SEP-SXIVWICOYRO3J4NJ");
    const none = { ...changes, changedServicePorts: new Set<string>() };
    const r = renderRules({
      snapshot,
      changes: none,
      full: false,
      previousChains: previous,
      node,
      options: v4,
    });
    expect(r.chainsWritten).toEqual(["KUBE-SVC-XPGD46QRK7WJZT7O", "KUBE-SEP-SXIVWICOYRO3J4NJ"]);
  });

  it("never deletes chains that are not per-service chains", () => {
    const { snapshot, changes } = threeServices();
    const r = renderRules({
      snapshot,
      changes,
      full: true,
      previousChains: new Set([
        "KUBE-SERVICES",
        "KUBE-MARK-MASQ",
        "CNI-HOSTPORT-DNAT",
        "KUBE-SVC-OLDOLDOLDOLDOLD0",
      ]),
      node,
      options: v4,
    });
    expect(r.chainsDeleted).toEqual(["KUBE-SVC-OLDOLDOLDOLDOLD0"]);
  });
});

describe("incremental partial renders", () => {
  /** Compares everything a render returns. */
  function same(a: ReturnType<typeof renderRules>, b: ReturnType<typeof renderRules>) {
    expect(a.nat).toBe(b.nat);
    expect(a.filter).toBe(b.filter);
    expect(a.chainsWritten).toEqual(b.chainsWritten);
    expect(a.chainsDeleted).toEqual(b.chainsDeleted);
    expect(a.stats).toEqual(b.stats);
    expect([...a.activeChains].sort()).toEqual([...b.activeChains].sort());
    expect(a.activeChains.size).toBe(b.activeChains.size);
  }

  it("give the same payloads as planning every service port, over a long series of changes", () => {
    const N = 120;
    const services: (Service | undefined)[] = [];
    const slices: (EndpointSlice | undefined)[] = [];
    for (let i = 0; i < N; i++) {
      services.push(makeService(i, { dualStack: i % 3 === 0, type: i % 5 === 0 ? "NodePort" : "ClusterIP" }));
      slices.push(makeEndpointSlice(i, 1 + (i % 4), { nodes: 3 }));
    }
    const c = commitAll(
      services.filter((s) => s !== undefined),
      slices.filter((s) => s !== undefined),
      "node-0",
    );
    const tracker = c.tracker;
    const nodeN = { name: "node-0", nodeIPs: ["192.168.0.2", "fd00::2"] };
    const v6: RenderOptions = { family: "IPv6", clusterCIDR: "fd00:10::/64", masqueradeAll: false };
    const prev = new Map<
      string,
      { inc: ReturnType<typeof renderRules>; ref: ReturnType<typeof renderRules> }
    >();
    for (const options of [v4, v6]) {
      const r = renderRules({ snapshot: c.snapshot, changes: c.changes, full: true, node: nodeN, options });
      prev.set(options.family, { inc: r, ref: r });
    }

    const setSlice = (i: number, next: EndpointSlice | undefined) => {
      const old = slices[i];
      if (old && next) tracker.endpointSliceHandler.onUpdate!(old, next);
      else if (old) tracker.endpointSliceHandler.onDelete!(old);
      else if (next) tracker.endpointSliceHandler.onAdd!(next);
      slices[i] = next;
    };
    const setService = (i: number, next: Service | undefined) => {
      const old = services[i];
      if (old && next) tracker.serviceHandler.onUpdate!(old, next);
      else if (old) tracker.serviceHandler.onDelete!(old);
      else if (next) tracker.serviceHandler.onAdd!(next);
      services[i] = next;
    };
    const steps: (() => void)[] = [
      () => setSlice(7, makeEndpointSlice(7, 3, { offset: 50, nodes: 3 })),
      () => setSlice(9, undefined), // no endpoints: REJECT
      () => setService(11, undefined), // deleted service
      () => setService(11, makeService(11, { dualStack: true })), // back, dual-stack now
      () => {
        setService(N, makeService(N, { type: "LoadBalancer", loadBalancerIPs: ["203.0.113.1"] }));
        setSlice(N, makeEndpointSlice(N, 2, { nodes: 3 }));
      },
      () => setService(12, makeService(12, { type: "NodePort", externalTrafficPolicy: "Local" })),
      () => setSlice(12, makeEndpointSlice(12, 4, { nodes: 3, notReady: (j) => j % 2 === 0 })),
      () => {
        // Many changes at once (the incremental path gives up above a quarter of the ports).
        for (let i = 10; i < N; i++) setSlice(i, makeEndpointSlice(i, 2, { offset: 9, nodes: 3 }));
      },
      () => setService(0, makeService(0, { affinityTimeout: 100, dualStack: true })),
      () => setSlice(9, makeEndpointSlice(9, 12, { nodes: 3 })),
      () => {}, // nothing changed
      () => {
        // Past 1000 endpoints: large cluster mode for the written chains.
        for (let i = 60; i < 64; i++) setSlice(i, makeEndpointSlice(i, 250, { nodes: 3 }));
      },
      () => setService(3, undefined),
    ];
    for (const step of steps) {
      step();
      const next = tracker.commit();
      for (const options of [v4, v6]) {
        const p = prev.get(options.family)!;
        const base = { snapshot: next.snapshot, changes: next.changes, full: false, node: nodeN, options };
        const inc = renderRules({ ...base, previousChains: p.inc.activeChains });
        // A copy of the chain set is unknown to the renderer: it plans every service port.
        const ref = renderRules({ ...base, previousChains: new Set(p.ref.activeChains) });
        same(inc, ref);
        prev.set(options.family, { inc, ref });
      }
    }
    // And the end state matches a full render's view of what is active.
    const last = tracker.snapshot();
    const full = renderRules({ snapshot: last, changes: c.changes, full: true, node: nodeN, options: v4 });
    expect([...prev.get("IPv4")!.inc.activeChains].sort()).toEqual([...full.activeChains].sort());
    expect(full.stats.largeClusterMode).toBe(true);
  });

  it("start from the earlier render's state: only the listed service ports are planned again", () => {
    const { slices, tracker, snapshot, changes } = threeServices();
    const first = renderRules({ snapshot, changes, full: true, node, options: v4 });
    tracker.endpointSliceHandler.onUpdate!(slices[1]!, fixtureSlice(2, ["10.180.0.99"]));
    const next = tracker.commit();
    const none = { ...next.changes, changedServicePorts: new Set<string>() };
    // The change set is trusted (it is what changed since `first`): with nothing listed,
    // nothing is planned again, so the old endpoint is still what KUBE-SERVICES leads to.
    const trusted = renderRules({
      snapshot: next.snapshot,
      changes: none,
      full: false,
      previousChains: first.activeChains,
      node,
      options: v4,
    });
    expect(trusted.nat).not.toContain("10.180.0.99");
    // Given the change, it is planned again.
    const told = renderRules({
      snapshot: next.snapshot,
      changes: next.changes,
      full: false,
      previousChains: first.activeChains,
      node,
      options: v4,
    });
    expect(told.nat).toContain("--to-destination 10.180.0.99:80");
    expect(told.stats.servicePortsWritten).toBe(1);
  });
});

describe("full renders", () => {
  it("are byte-identical whatever order the objects arrived in", () => {
    const { services, slices } = makeCluster(20, 3);
    const a = commitAll(services, slices);
    const b = commitAll([...services].reverse(), [...slices].reverse());
    const ra = renderRules({ snapshot: a.snapshot, changes: a.changes, full: true, node, options: v4 });
    const rb = renderRules({ snapshot: b.snapshot, changes: b.changes, full: true, node, options: v4 });
    expect(ra.nat).toBe(rb.nat);
    expect(ra.filter).toBe(rb.filter);
  });

  it("drops per-endpoint comments above 1000 endpoints (large cluster mode)", () => {
    const small = makeCluster(100, 10);
    const s = commitAll(small.services, small.slices);
    const rs = renderRules({ snapshot: s.snapshot, changes: s.changes, full: true, node, options: v4 });
    expect(rs.stats.largeClusterMode).toBe(false);
    expect(rs.nat).toMatch(/^-A KUBE-SEP-\S+ -m comment --comment ns-\d\/svc-\d+:p0 -s /m);

    const big = makeCluster(101, 10);
    const b = commitAll(big.services, big.slices);
    const rb = renderRules({ snapshot: b.snapshot, changes: b.changes, full: true, node, options: v4 });
    expect(rb.stats.largeClusterMode).toBe(true);
    expect(rb.stats.endpoints).toBe(1010);
    expect(rb.nat).not.toMatch(/^-A KUBE-SEP-\S+ -m comment/m);
    expect(rb.nat).not.toMatch(/^-A KUBE-SVC-\S+ -m comment --comment "[^"]* -> /m);
    // Service-level comments stay.
    expect(rb.nat).toContain('-m comment --comment "ns-0/svc-0:p0 cluster IP"');
    expect(rb.nat).toMatch(/^-A KUBE-SEP-\S+ -s 10\.\d+\.\d+\.\d+ -j KUBE-MARK-MASQ$/m);
  });

  it("load-balances with probabilities 1/n, 1/(n-1), … and a final unconditional rule", () => {
    const { services, slices } = makeCluster(1, 4);
    const c = commitAll(services, slices);
    const r = renderRules({ snapshot: c.snapshot, changes: c.changes, full: true, node, options: v4 });
    const lines = r.nat.split("\n").filter((l) => /^-A KUBE-SVC-\S+ .*-j KUBE-SEP-/.test(l));
    expect(lines.map((l) => /--probability (\S+)/.exec(l)?.[1] ?? "last")).toEqual([
      "0.2500000000",
      "0.3333333333",
      "0.5000000000",
      "last",
    ]);
  });

  it("falls back to serving terminating endpoints when none is ready", () => {
    const c = commitAll(
      [fixtureService(1)],
      [
        fixtureSlice(1, [
          { ip: "10.180.0.1", ready: false, serving: true, terminating: true },
          { ip: "10.180.0.2", ready: false, serving: false, terminating: true },
        ]),
      ],
    );
    const r = renderRules({ snapshot: c.snapshot, changes: c.changes, full: true, node, options: v4 });
    expect(r.nat).toContain("--to-destination 10.180.0.1:80");
    expect(r.nat).not.toContain("10.180.0.2");
    expect(r.filter).not.toContain("REJECT");
  });

  it("rejects a service whose endpoints are all unready and not serving", () => {
    const c = commitAll([fixtureService(1)], [fixtureSlice(1, [{ ip: "10.180.0.1", ready: false }])]);
    const r = renderRules({ snapshot: c.snapshot, changes: c.changes, full: true, node, options: v4 });
    expect(r.filter).toContain(
      '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j REJECT',
    );
    expect(r.activeChains.size).toBe(0);
  });

  it("ignores service ports without a cluster IP of the rendered family", () => {
    const c = commitAll([svc({ ns: "ns1", name: "svc1", clusterIP: "fd00:30::41", ports: p80 })], []);
    const r = renderRules({ snapshot: c.snapshot, changes: c.changes, full: true, node, options: v4 });
    expect(r.stats.servicePorts).toBe(0);
    expect(r.filter).not.toContain("ns1/svc1");
  });

  it("masquerade bit and --random-fully are configurable", () => {
    const c = commitAll([], []);
    const r = renderRules({
      snapshot: c.snapshot,
      changes: c.changes,
      full: true,
      node,
      options: { ...v4, masqueradeBit: 13, randomFully: true, conntrackTCPLiberal: true },
    });
    expect(r.nat).toContain("-A KUBE-MARK-MASQ -j MARK --or-mark 0x2000\n");
    expect(r.nat).toContain("-j MASQUERADE --random-fully\n");
    expect(r.filter).not.toContain("INVALID");
  });
});
