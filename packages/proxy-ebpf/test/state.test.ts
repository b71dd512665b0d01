import type { EndpointSlice, Service } from "@worknode/core";
import { LiveServiceObjects, slice, svc } from "@worknode/testing";
import { describe, expect, it } from "vitest";
import { backendsSignature, type Frontend, frontendId } from "../src/maps/layout.js";
import type { PortPlan } from "../src/maps/plan.js";
import { EbpfMapState, type MapOp } from "../src/maps/state.js";
import { FakeKernel, inSafeOrder, kernelOf, NODE, plansOf } from "./helpers/ebpf-model.js";

/** A port plan from `[ip, port, group]` frontends and groups of `ip:port` backends. */
function port(
  frontends: readonly (readonly [string, number, number])[],
  groups: readonly (readonly string[])[],
  affinity = 0,
): PortPlan {
  const gs = groups.map((list) => {
    const backends = list.map((a) => {
      const i = a.lastIndexOf(":");
      return { ip: a.slice(0, i), port: Number(a.slice(i + 1)) };
    });
    return { backends, affinityTimeout: affinity, signature: backendsSignature(backends) };
  });
  return {
    frontends: frontends.map(([ip, p, group]) => {
      const frontend: Frontend = { ip, port: p, protocol: "TCP" };
      return { id: frontendId(frontend), frontend, group };
    }),
    groups: gs,
  };
}

const fe = (ip: string, p = 80): Frontend => ({ ip, port: p, protocol: "TCP" });
const plans = (...entries: [string, PortPlan | undefined][]) => new Map(entries);

/** Applies to the state and the kernel, checking at every step that no frontend is half-written. */
function step(state: EbpfMapState, kernel: FakeKernel, p: Map<string, PortPlan | undefined>, full = false) {
  const diff = state.apply(p, full);
  kernel.run(diff.ops, (n) => expect(kernel.brokenFrontends(), `after ${n} ops`).toEqual([]));
  return diff;
}

const A = port([["172.30.0.1", 80, 0]], [["10.0.0.1:8080", "10.0.0.2:8080"]]);
const B = port(
  [
    ["172.30.0.2", 80, 0],
    ["192.168.99.1", 80, 1],
    ["192.168.0.2", 30080, 1],
  ],
  [["10.0.0.3:80"], ["10.0.0.3:80"]],
);

describe("EbpfMapState.apply", () => {
  it("from empty maps: slots first, then frontends; one group per plan group, shared by its frontends", () => {
    const state = EbpfMapState.empty();
    const { ops, conflicts } = state.apply(plans(["a", A], ["b", B]), true);
    expect(conflicts).toEqual([]);
    expect(inSafeOrder(ops)).toBe(true);
    const puts = ops.filter((o) => o.op === "putBackend");
    expect(puts).toHaveLength(4);
    const fronts = ops.filter((o) => o.op === "putFrontend");
    expect(fronts.map((o) => o.frontend.ip)).toEqual([
      "172.30.0.1",
      "172.30.0.2",
      "192.168.99.1",
      "192.168.0.2",
    ]);
    const ids = fronts.map((o) => o.value.id);
    expect(ids[2]).toBe(ids[3]);
    expect(new Set(ids).size).toBe(3);
    expect(ids).not.toContain(0);
    expect(fronts[0]?.value).toEqual({ id: ids[0], count: 2, affinityTimeout: 0 });
    expect(state.frontendCount).toBe(4);
    expect(state.backendSlotCount).toBe(4);
    expect(state.frontendValue(frontendId(fe("192.168.0.2", 30080)))?.count).toBe(1);
    expect([...kernelOf(ops).resolve().values()].map((r) => r.backends)).toEqual([
      "10.0.0.1:8080,10.0.0.2:8080",
      "10.0.0.3:80",
      "10.0.0.3:80",
      "10.0.0.3:80",
    ]);
  });

  it("a group without backends gets id 0, count 0 and no slots", () => {
    const state = EbpfMapState.empty();
    const { ops } = state.apply(plans(["e", port([["172.30.0.9", 80, 0]], [[]])]), false);
    expect(ops).toEqual([
      { op: "putFrontend", frontend: fe("172.30.0.9"), value: { id: 0, count: 0, affinityTimeout: 0 } },
    ]);
    expect(state.backendSlotCount).toBe(0);
  });

  it("an unchanged plan writes nothing, partially or fully", () => {
    const state = EbpfMapState.empty();
    state.apply(plans(["a", A], ["b", B]), true);
    expect(state.apply(plans(["a", A]), false).ops).toEqual([]);
    expect(state.apply(plans(["a", A], ["b", B]), true).ops).toEqual([]);
    // An equal plan built anew (no shared objects) is unchanged too.
    const again = port([["172.30.0.1", 80, 0]], [["10.0.0.1:8080", "10.0.0.2:8080"]]);
    expect(state.apply(plans(["a", again]), false).ops).toEqual([]);
  });

  it("changed endpoints: a new id's slots, the frontend moved to it, then the old slots deleted", () => {
    const state = EbpfMapState.empty();
    const kernel = new FakeKernel();
    const first = step(state, kernel, plans(["a", A]));
    const oldId = (first.ops.find((o) => o.op === "putFrontend") as Extract<MapOp, { op: "putFrontend" }>)
      .value.id;
    const changed = port([["172.30.0.1", 80, 0]], [["10.0.0.1:8080", "10.0.0.5:8080", "10.0.0.6:8080"]]);
    const { ops } = step(state, kernel, plans(["a", changed]));
    const newId = (ops.find((o) => o.op === "putFrontend") as Extract<MapOp, { op: "putFrontend" }>).value.id;
    expect(newId).not.toBe(oldId);
    expect(ops).toEqual([
      { op: "putBackend", id: newId, slot: 0, backend: { ip: "10.0.0.1", port: 8080 } },
      { op: "putBackend", id: newId, slot: 1, backend: { ip: "10.0.0.5", port: 8080 } },
      { op: "putBackend", id: newId, slot: 2, backend: { ip: "10.0.0.6", port: 8080 } },
      { op: "putFrontend", frontend: fe("172.30.0.1"), value: { id: newId, count: 3, affinityTimeout: 0 } },
      { op: "deleteBackend", id: oldId, slot: 0 },
      { op: "deleteBackend", id: oldId, slot: 1 },
    ]);
    expect(kernel.orphanSlots()).toEqual([]);
    expect(state.backendSlotCount).toBe(3);
  });

  it("changed endpoints of a group shared by several frontends: one new group, every frontend moved", () => {
    const state = EbpfMapState.empty();
    const kernel = new FakeKernel();
    step(state, kernel, plans(["b", B]));
    const changed = port(
      [
        ["172.30.0.2", 80, 0],
        ["192.168.99.1", 80, 1],
        ["192.168.0.2", 30080, 1],
      ],
      [["10.0.0.3:80"], ["10.0.0.3:80", "10.0.0.4:80"]],
    );
    const { ops } = step(state, kernel, plans(["b", changed]));
    expect(ops.map((o) => o.op)).toEqual([
      "putBackend",
      "putBackend",
      "putFrontend",
      "putFrontend",
      "deleteBackend",
    ]);
    expect(kernel.resolve().get(frontendId(fe("192.168.0.2", 30080)))?.backends).toBe(
      "10.0.0.3:80,10.0.0.4:80",
    );
    expect(kernel.orphanSlots()).toEqual([]);
  });

  it("affinity-only change: the frontend is rewritten with the same id; no slot is written", () => {
    const state = EbpfMapState.empty();
    const kernel = new FakeKernel();
    const first = step(state, kernel, plans(["a", A]));
    const id = (first.ops.find((o) => o.op === "putFrontend") as Extract<MapOp, { op: "putFrontend" }>).value
      .id;
    const sticky = port([["172.30.0.1", 80, 0]], [["10.0.0.1:8080", "10.0.0.2:8080"]], 10800);
    const { ops } = step(state, kernel, plans(["a", sticky]));
    expect(ops).toEqual([
      { op: "putFrontend", frontend: fe("172.30.0.1"), value: { id, count: 2, affinityTimeout: 10800 } },
    ]);
    expect(state.backendSlotCount).toBe(2);
    // And back.
    expect(step(state, kernel, plans(["a", A])).ops).toEqual([
      { op: "putFrontend", frontend: fe("172.30.0.1"), value: { id, count: 2, affinityTimeout: 0 } },
    ]);
  });

  it("a deleted port: its frontends, then its slots", () => {
    const state = EbpfMapState.empty();
    const kernel = new FakeKernel();
    step(state, kernel, plans(["a", A], ["b", B]));
    const { ops } = step(state, kernel, plans(["b", undefined]));
    expect(ops.map((o) => o.op)).toEqual([
      "deleteFrontend",
      "deleteFrontend",
      "deleteFrontend",
      "deleteBackend",
      "deleteBackend",
    ]);
    expect(new Set(ops.flatMap((o) => (o.op === "deleteFrontend" ? [o.frontend.ip] : [])))).toEqual(
      new Set(["172.30.0.2", "192.168.99.1", "192.168.0.2"]),
    );
    expect([...kernel.resolve().keys()]).toEqual([frontendId(fe("172.30.0.1"))]);
    expect(state.frontendCount).toBe(1);
    expect(state.backendSlotCount).toBe(2);
    // Deleting it again is a no-op.
    expect(state.apply(plans(["b", undefined]), false).ops).toEqual([]);
  });

  it("a frontend that a port no longer plans is deleted; a full apply deletes ports it does not name", () => {
    const state = EbpfMapState.empty();
    const kernel = new FakeKernel();
    step(state, kernel, plans(["a", A], ["b", B]));
    const noExternal = port([["172.30.0.2", 80, 0]], [["10.0.0.3:80"]]);
    const { ops } = step(state, kernel, plans(["b", noExternal]));
    expect(ops).toEqual([
      { op: "deleteFrontend", frontend: fe("192.168.99.1") },
      { op: "deleteFrontend", frontend: fe("192.168.0.2", 30080) },
      { op: "deleteBackend", id: expect.any(Number), slot: 0 },
    ]);
    const full = step(state, kernel, plans(["b", noExternal]), true);
    expect(full.ops.map((o) => o.op)).toEqual(["deleteFrontend", "deleteBackend", "deleteBackend"]);
    expect([...kernel.resolve().keys()]).toEqual([frontendId(fe("172.30.0.2"))]);
    expect(kernel.orphanSlots()).toEqual([]);
  });

  it("keeps every kind of operation in the safe order in one apply", () => {
    const state = EbpfMapState.empty();
    const kernel = new FakeKernel();
    const C = port([["172.30.0.3", 80, 0]], [["10.0.0.7:80"]]);
    step(state, kernel, plans(["a", A], ["b", B], ["c", C]));
    const changedA = port([["172.30.0.1", 80, 0]], [["10.0.0.1:8080"]]);
    const D = port([["172.30.0.4", 80, 0]], [["10.0.0.8:80"]]);
    const { ops } = step(state, kernel, plans(["b", undefined], ["a", changedA], ["d", D], ["c", C]));
    expect(new Set(ops.map((o) => o.op))).toEqual(
      new Set(["putBackend", "putFrontend", "deleteFrontend", "deleteBackend"]),
    );
    expect(inSafeOrder(ops)).toBe(true);
    const firstDelete = ops.findIndex((o) => o.op.startsWith("delete"));
    const lastPut = ops.map((o) => o.op.startsWith("put")).lastIndexOf(true);
    expect(lastPut).toBeLessThan(firstDelete);
  });

  it("two ports planning one frontend: the first keeps it, the conflict is reported", () => {
    const state = EbpfMapState.empty();
    const kernel = new FakeKernel();
    const p1 = port(
      [
        ["172.30.0.1", 80, 0],
        ["192.168.99.1", 80, 0],
      ],
      [["10.0.0.1:80"]],
    );
    const p2 = port(
      [
        ["172.30.0.2", 80, 0],
        ["192.168.99.1", 80, 0],
      ],
      [["10.0.0.2:80"]],
    );
    const diff = step(state, kernel, plans(["p1", p1], ["p2", p2]));
    expect(diff.conflicts).toEqual([{ frontend: fe("192.168.99.1"), owner: "p1", refused: "p2" }]);
    expect(kernel.resolve().get(frontendId(fe("192.168.99.1")))?.backends).toBe("10.0.0.1:80");
    expect(kernel.resolve().get(frontendId(fe("172.30.0.2")))?.backends).toBe("10.0.0.2:80");
    // p2 again: still refused, nothing written.
    const again = state.apply(plans(["p2", p2]), false);
    expect(again.ops).toEqual([]);
    expect(again.conflicts).toEqual([{ frontend: fe("192.168.99.1"), owner: "p1", refused: "p2" }]);
    // p2's own change does not touch p1's frontend.
    const p2b = port(
      [
        ["172.30.0.2", 80, 0],
        ["192.168.99.1", 80, 0],
      ],
      [["10.0.0.3:80"]],
    );
    step(state, kernel, plans(["p2", p2b]));
    expect(kernel.resolve().get(frontendId(fe("192.168.99.1")))?.backends).toBe("10.0.0.1:80");
    // p1 gives it up; the next time p2 is planned it takes it.
    step(state, kernel, plans(["p1", port([["172.30.0.1", 80, 0]], [["10.0.0.1:80"]])]));
    expect(kernel.resolve().has(frontendId(fe("192.168.99.1")))).toBe(false);
    const taken = step(state, kernel, plans(["p2", p2b]));
    expect(taken.conflicts).toEqual([]);
    expect(kernel.resolve().get(frontendId(fe("192.168.99.1")))?.backends).toBe("10.0.0.3:80");
    expect(kernel.orphanSlots()).toEqual([]);
  });

  it("a frontend moving from one port to another in one apply ends up in the maps (either order)", () => {
    for (const order of [
      ["p1", "p2"],
      ["p2", "p1"],
    ]) {
      const state = EbpfMapState.empty();
      const kernel = new FakeKernel();
      const p1 = port(
        [
          ["172.30.0.1", 80, 0],
          ["192.168.99.1", 80, 0],
        ],
        [["10.0.0.1:80"]],
      );
      const p2 = port([["172.30.0.2", 80, 0]], [["10.0.0.2:80"]]);
      step(state, kernel, plans(["p1", p1], ["p2", p2]));
      const moved = new Map<string, PortPlan>([
        ["p1", port([["172.30.0.1", 80, 0]], [["10.0.0.1:80"]])],
        [
          "p2",
          port(
            [
              ["172.30.0.2", 80, 0],
              ["192.168.99.1", 80, 0],
            ],
            [["10.0.0.2:80"]],
          ),
        ],
      ]);
      const diff = step(state, kernel, new Map(order.map((k) => [k, moved.get(k)])));
      expect(diff.conflicts, order.join(",")).toEqual([]);
      expect(kernel.resolve().get(frontendId(fe("192.168.99.1")))?.backends, order.join(",")).toBe(
        "10.0.0.2:80",
      );
      // The state agrees with the kernel: nothing more to write.
      expect(state.apply(new Map([...moved]), true).ops, order.join(",")).toEqual([]);
      expect(kernel.orphanSlots()).toEqual([]);
    }
  });
});

describe("EbpfMapState.fromKernel", () => {
  it("a full apply deletes unowned frontends and orphan slots, reuses matching groups, rewrites incomplete ones", () => {
    const kernel = new FakeKernel();
    kernel.run([
      // Group 7: complete, matches A's backends.
      { op: "putBackend", id: 7, slot: 0, backend: { ip: "10.0.0.1", port: 8080 } },
      { op: "putBackend", id: 7, slot: 1, backend: { ip: "10.0.0.2", port: 8080 } },
      { op: "putFrontend", frontend: fe("172.30.0.1"), value: { id: 7, count: 2, affinityTimeout: 0 } },
      // Group 9: slot 0 missing (a failed batch); B's cluster IP points at it.
      { op: "putBackend", id: 9, slot: 1, backend: { ip: "10.0.0.3", port: 80 } },
      { op: "putFrontend", frontend: fe("172.30.0.2"), value: { id: 9, count: 1, affinityTimeout: 0 } },
      // Group 12: nobody's.
      { op: "putBackend", id: 12, slot: 0, backend: { ip: "10.9.9.9", port: 80 } },
      // A frontend of a deleted service.
      { op: "putFrontend", frontend: fe("172.30.0.99"), value: { id: 0, count: 0, affinityTimeout: 0 } },
    ]);
    const state = EbpfMapState.fromKernel(kernel.dump(), frontendId);
    expect(state.frontendCount).toBe(3);
    expect(state.backendSlotCount).toBe(4);
    const { ops } = state.apply(plans(["a", A], ["b", B]), true);
    expect(inSafeOrder(ops)).toBe(true);
    // The broken frontend stays as broken as it was until it is moved, and nothing else breaks.
    const brokenKey = frontendId(fe("172.30.0.2"));
    kernel.run(ops, (n) =>
      expect(
        kernel.brokenFrontends().filter((b) => !b.startsWith(brokenKey)),
        `after ${n} ops`,
      ).toEqual([]),
    );
    expect(kernel.brokenFrontends()).toEqual([]);
    // A keeps group 7: no write for it at all.
    expect(
      ops.some(
        (o) => (o.op === "putFrontend" || o.op === "deleteFrontend") && o.frontend.ip === "172.30.0.1",
      ),
    ).toBe(false);
    expect(ops.some((o) => (o.op === "putBackend" || o.op === "deleteBackend") && o.id === 7)).toBe(false);
    // New ids never collide with the kernel's.
    const newIds = new Set(ops.flatMap((o) => (o.op === "putBackend" ? [o.id] : [])));
    for (const id of newIds) expect(id).toBeGreaterThan(12);
    // The incomplete group 9 and the orphan 12 are deleted; so is the unowned frontend.
    expect(ops.filter((o) => o.op === "deleteBackend")).toEqual([
      { op: "deleteBackend", id: 9, slot: 1 },
      { op: "deleteBackend", id: 12, slot: 0 },
    ]);
    expect(ops.filter((o) => o.op === "deleteFrontend")).toEqual([
      { op: "deleteFrontend", frontend: fe("172.30.0.99") },
    ]);
    const resolved = kernel.resolve();
    expect(resolved.get(frontendId(fe("172.30.0.2")))?.backends).toBe("10.0.0.3:80");
    expect(resolved.size).toBe(4);
    expect(kernel.orphanSlots()).toEqual([]);
    // The state now describes the kernel.
    expect(
      EbpfMapState.fromKernel(kernel.dump(), frontendId).apply(plans(["a", A], ["b", B]), true).ops,
    ).toEqual([]);
    expect(state.apply(plans(["a", A], ["b", B]), true).ops).toEqual([]);
  });

  it("a partial apply claims kernel frontends without deleting the unclaimed ones", () => {
    const kernel = kernelOf(EbpfMapState.empty().apply(plans(["a", A], ["b", B]), true).ops);
    const state = EbpfMapState.fromKernel(kernel.dump(), frontendId);
    expect(state.apply(plans(["a", A]), false).ops).toEqual([]);
    expect(state.frontendCount).toBe(4);
  });
});

describe("model: random partial applies against an in-memory kernel", () => {
  /** mulberry32: a small seeded generator, so that a failure replays. */
  function rng(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  const SERVICES = 8;
  const EXTERNAL_POOL = ["192.168.99.1", "192.168.99.2", "192.168.99.3", "192.168.99.4", "192.168.99.5"];
  const options = { families: ["IPv4"] as const };

  interface Spec {
    nodePort: boolean;
    udp: boolean;
    affinity: number | undefined;
    externalIPs: string[];
  }

  function service(i: number, s: Spec): Service {
    const ports = [
      { name: "p80", port: 80, targetPort: 8080, ...(s.nodePort ? { nodePort: 30000 + i } : {}) },
      ...(s.udp ? [{ name: "dns", port: 53, protocol: "UDP" as const }] : []),
    ];
    return svc({
      ns: "m",
      name: `s${i}`,
      clusterIP: `172.30.1.${i}`,
      ports,
      ...(s.nodePort ? { type: "NodePort" as const } : {}),
      ...(s.externalIPs.length > 0 ? { externalIPs: s.externalIPs } : {}),
      ...(s.affinity !== undefined ? { affinity: s.affinity } : {}),
    });
  }

  function endpoints(i: number, r: () => number): EndpointSlice {
    const eps = [];
    for (let j = 1; j <= 5; j++) {
      const x = r();
      if (x < 0.45) continue;
      if (x < 0.85) eps.push({ ip: `10.1.${i}.${j}`, node: j % 2 ? NODE.name : "other" });
      else if (x < 0.93) eps.push({ ip: `10.1.${i}.${j}`, ready: false, serving: true, terminating: true });
      else eps.push({ ip: `10.1.${i}.${j}`, ready: false });
    }
    return slice({
      ns: "m",
      service: `s${i}`,
      ports: [
        { name: "p80", port: 80, targetPort: 8080 },
        { name: "dns", port: 53, protocol: "UDP" },
      ],
      endpoints: eps,
    });
  }

  it("matches a fresh full apply after every step and never shows a half-written group", async () => {
    const r = rng(20240611);
    const specs = new Map<number, Spec>();
    /** Which service holds each external IP (at most one at a time). */
    const holder = new Map<string, number>();
    const live = new LiveServiceObjects({}, {}, NODE.name);
    const state = EbpfMapState.empty();
    const kernel = new FakeKernel();
    const pick = <T>(list: readonly T[]): T => list[Math.floor(r() * list.length)] as T;
    const tally: Record<string, number> = {};
    let totalOps = 0;

    for (let stepNo = 0; stepNo < 80; stepNo++) {
      const services: Record<string, Service | undefined> = {};
      const slices: Record<string, EndpointSlice | undefined> = {};
      const i = 1 + Math.floor(r() * SERVICES);
      const spec = specs.get(i);
      const put = (n: number, s: Spec) => {
        specs.set(n, s);
        services[`s${n}`] = service(n, s);
      };
      let action: string;
      if (spec === undefined || r() < 0.1) {
        action = spec === undefined ? "add service" : "replace service";
        for (const [ip, h] of holder) if (h === i) holder.delete(ip);
        const free = EXTERNAL_POOL.filter((ip) => !holder.has(ip) && r() < 0.3);
        for (const ip of free) holder.set(ip, i);
        put(i, {
          nodePort: r() < 0.5,
          udp: r() < 0.3,
          affinity: r() < 0.3 ? 300 : undefined,
          externalIPs: free,
        });
        if (r() < 0.8) slices[`s${i}`] = endpoints(i, r);
      } else {
        const x = r();
        if (x < 0.1) {
          action = "delete service";
          specs.delete(i);
          services[`s${i}`] = undefined;
          for (const [ip, h] of holder) if (h === i) holder.delete(ip);
          if (r() < 0.5) slices[`s${i}`] = undefined;
        } else if (x < 0.5) {
          action = "endpoints";
          slices[`s${i}`] = endpoints(i, r);
        } else if (x < 0.55) {
          action = "delete endpoints";
          slices[`s${i}`] = undefined;
        } else if (x < 0.7) {
          action = "affinity";
          put(i, { ...spec, affinity: spec.affinity === undefined ? pick([60, 10800]) : undefined });
        } else if (x < 0.85) {
          action = "external IPs";
          const mine = spec.externalIPs.filter(() => r() < 0.5);
          for (const ip of spec.externalIPs) if (!mine.includes(ip)) holder.delete(ip);
          for (const ip of EXTERNAL_POOL) if (!holder.has(ip) && r() < 0.3) mine.push(ip);
          for (const ip of mine) holder.set(ip, i);
          put(i, { ...spec, externalIPs: mine });
        } else if (x < 0.95) {
          // An external IP moves from its service to this one in one commit.
          const others = EXTERNAL_POOL.filter((e) => holder.has(e) && holder.get(e) !== i);
          const ip = others.length > 0 && r() < 0.8 ? pick(others) : pick(EXTERNAL_POOL);
          const from = holder.get(ip);
          action = from !== undefined && from !== i ? "move external IP" : "take external IP";
          if (from !== undefined && from !== i) {
            const fromSpec = specs.get(from) as Spec;
            put(from, { ...fromSpec, externalIPs: fromSpec.externalIPs.filter((e) => e !== ip) });
          }
          holder.set(ip, i);
          put(i, { ...spec, externalIPs: [...spec.externalIPs.filter((e) => e !== ip), ip] });
        } else {
          action = "node port";
          put(i, { ...spec, nodePort: !spec.nodePort });
        }
      }
      tally[action] = (tally[action] ?? 0) + 1;

      const { snapshot, changes } = await live.apply(services, slices);
      const keys = new Set([...changes.changedServicePorts, ...changes.deletedServicePorts]);
      const diff = state.apply(plansOf(snapshot, options, keys), false);
      const where = `step ${stepNo} (${action} s${i})`;
      expect(diff.conflicts, where).toEqual([]);
      expect(inSafeOrder(diff.ops), where).toBe(true);
      totalOps += diff.ops.length;
      // (b) at every prefix of the batch, every frontend resolves to `count` slots.
      kernel.run(diff.ops, (n) => {
        const broken = kernel.brokenFrontends();
        if (broken.length > 0) expect(broken, `${where}, after ${n} of ${diff.ops.length} ops`).toEqual([]);
      });
      // (a) the kernel holds what a fresh full apply of everything would write (ids aside).
      const all = plansOf(snapshot, options);
      const fresh = EbpfMapState.empty().apply(all, true);
      expect(fresh.conflicts, where).toEqual([]);
      expect(kernel.resolve(), where).toEqual(kernelOf(fresh.ops).resolve());
      expect(kernel.orphanSlots(), where).toEqual([]);
      expect(state.frontendCount, where).toBe(kernel.services.size);
      expect(state.backendSlotCount, where).toBe(kernel.backends.size);
      // A restart: reading the kernel back and applying everything writes nothing.
      expect(EbpfMapState.fromKernel(kernel.dump(), frontendId).apply(all, true).ops, where).toEqual([]);
    }
    // The run exercised every kind of change and wrote something.
    expect(Object.keys(tally)).toEqual(
      expect.arrayContaining([
        "add service",
        "affinity",
        "delete endpoints",
        "delete service",
        "endpoints",
        "external IPs",
        "move external IP",
        "node port",
        "replace service",
      ]),
    );
    expect(tally["move external IP"]).toBeGreaterThanOrEqual(3);
    expect(totalOps).toBeGreaterThan(100);
    expect(kernel.services.size).toBeGreaterThan(0);
  });
});
