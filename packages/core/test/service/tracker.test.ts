import { Writable } from "node:stream";
import { pino } from "pino";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import type { EndpointSlice, Service } from "../../src/kube/objects.js";
import {
  buildEndpoints,
  buildServicePorts,
  type Commit,
  ServiceChangeTracker,
  type ServicePort,
  type StaleConntrack,
} from "../../src/service/index.js";
import { FakeClock } from "../../src/util/clock.js";
import type { InvalidObjectError } from "../../src/util/errors.js";
import { endpointIP, makeEndpointSlice, makeService, serviceIP } from "../fixtures/services.js";

function tracker(extra: Partial<ConstructorParameters<typeof ServiceChangeTracker>[0]> = {}) {
  return new ServiceChangeTracker({ nodeName: "node-1", ...extra });
}

function load(t: ServiceChangeTracker, services: Service[], slices: EndpointSlice[]) {
  for (const s of services) t.serviceHandler.onAdd!(s);
  for (const s of slices) t.endpointSliceHandler.onAdd!(s);
}

const clone = <T>(o: T): T => structuredClone(o);
const sortStale = (s: readonly StaleConntrack[]) =>
  [...s].map((e) => `${e.serviceIP}|${e.port}|${e.protocol}|${e.endpoint ?? "*"}`).sort();

describe("ServiceChangeTracker basics", () => {
  it("builds a snapshot from services and slices on commit, not before", () => {
    const t = tracker();
    expect(t.snapshot().generation).toBe(0);
    load(t, [makeService(1, { ports: 2 })], [makeEndpointSlice(1, 3, { ports: 2 })]);
    expect(t.hasPendingChanges()).toBe(true);
    expect(t.snapshot().services.size).toBe(0);
    const { snapshot, changes } = t.commit();
    expect(snapshot.generation).toBe(1);
    expect(t.snapshot()).toBe(snapshot);
    expect([...snapshot.services.keys()].sort()).toEqual(["ns-1/svc-1:p0/TCP", "ns-1/svc-1:p1/TCP"]);
    expect(snapshot.endpoints.get("ns-1/svc-1:p1/TCP")!.map((e) => e.address)).toEqual(
      [0, 1, 2].map((j) => `${endpointIP(1, j)}:8081`).sort(),
    );
    expect([...changes.changedServicePorts].sort()).toEqual(["ns-1/svc-1:p0/TCP", "ns-1/svc-1:p1/TCP"]);
    expect(changes.deletedServicePorts.size).toBe(0);
    expect(t.hasPendingChanges()).toBe(false);
  });

  it("a commit with nothing pending returns the same snapshot and no changes", () => {
    const t = tracker();
    load(t, [makeService(1)], [makeEndpointSlice(1, 2)]);
    const first = t.commit().snapshot;
    const again = t.commit();
    expect(again.snapshot).toBe(first);
    expect(again.changes.changedServicePorts.size).toBe(0);
    expect(again.snapshot.generation).toBe(1);
  });

  it("an update that changes nothing leaves nothing pending", () => {
    const t = tracker();
    const svc = makeService(1, { type: "NodePort" });
    const slice = makeEndpointSlice(1, 3);
    load(t, [svc], [slice]);
    const before = t.commit().snapshot;
    const svc2 = clone(svc);
    svc2.metadata!.resourceVersion = "42"; // irrelevant to the proxy
    svc2.metadata!.annotations = { note: "x" };
    t.serviceHandler.onUpdate!(svc, svc2);
    const slice2 = clone(slice);
    slice2.endpoints.reverse(); // order does not matter
    slice2.metadata!.annotations = {
      "endpoints.kubernetes.io/last-change-trigger-time": "2030-01-01T00:00:00Z",
    };
    t.endpointSliceHandler.onUpdate!(slice, slice2);
    expect(t.hasPendingChanges()).toBe(false);
    const c = t.commit();
    expect(c.snapshot).toBe(before);
    expect(c.changes.changedServicePorts.size).toBe(0);
  });

  it("an add followed by a delete before a commit yields no change", () => {
    const t = tracker();
    load(t, [makeService(1)], [makeEndpointSlice(1, 2)]);
    const before = t.commit().snapshot;
    const svc = makeService(2);
    const slice = makeEndpointSlice(2, 2);
    t.serviceHandler.onAdd!(svc);
    t.endpointSliceHandler.onAdd!(slice);
    expect(t.hasPendingChanges()).toBe(true);
    t.endpointSliceHandler.onDelete!(slice);
    t.serviceHandler.onDelete!(svc);
    expect(t.hasPendingChanges()).toBe(false);
    const c = t.commit();
    expect(c.snapshot).toBe(before);
    expect(c.snapshot.generation).toBe(1);
    // A delete then re-add of the same thing is no change either.
    t.serviceHandler.onDelete!(makeService(1));
    t.serviceHandler.onAdd!(makeService(1));
    expect(t.hasPendingChanges()).toBe(false);
  });

  it("shares unchanged service ports and endpoint lists with the previous snapshot", () => {
    const t = tracker();
    const services = Array.from({ length: 20 }, (_, i) => makeService(i, { ports: 2 }));
    const slices = Array.from({ length: 20 }, (_, i) => makeEndpointSlice(i, 5, { ports: 2 }));
    load(t, services, slices);
    const s1 = t.commit().snapshot;
    const s1Services = [...s1.services.entries()];
    // Service 7: one endpoint stops being ready. Service 9: new external IP.
    t.endpointSliceHandler.onUpdate!(
      slices[7]!,
      makeEndpointSlice(7, 5, { ports: 2, notReady: (j) => j === 3 }),
    );
    t.serviceHandler.onUpdate!(services[9]!, makeService(9, { ports: 2, externalIPs: ["192.0.2.9"] }));
    const { snapshot: s2, changes } = t.commit();
    expect(s2.generation).toBe(2);
    expect([...changes.changedServicePorts].sort()).toEqual([
      "ns-7/svc-7:p0/TCP",
      "ns-7/svc-7:p1/TCP",
      "ns-9/svc-9:p0/TCP",
      "ns-9/svc-9:p1/TCP",
    ]);
    for (const [key, sp] of s1.services) {
      if (key.startsWith("ns-9/svc-9:")) {
        expect(s2.services.get(key)).not.toBe(sp);
        expect(s2.services.get(key)!.externalIPs).toEqual(["192.0.2.9"]);
        // Its endpoints did not change: same array.
        expect(s2.endpoints.get(key)).toBe(s1.endpoints.get(key));
      } else {
        expect(s2.services.get(key)).toBe(sp);
      }
      if (key.startsWith("ns-7/svc-7:")) {
        const before = s1.endpoints.get(key)!;
        const after = s2.endpoints.get(key)!;
        expect(after).not.toBe(before);
        // Unchanged endpoints inside a changed list are the same objects.
        const same = after.filter((e, i) => e === before[i]);
        expect(same).toHaveLength(4);
        expect(after.find((e) => e.ip === endpointIP(7, 3))!.ready).toBe(false);
      } else if (!key.startsWith("ns-9/svc-9:")) {
        expect(s2.endpoints.get(key)).toBe(s1.endpoints.get(key));
      }
    }
    // The old snapshot is untouched.
    expect([...s1.services.entries()]).toEqual(s1Services);
    expect(s1.endpoints.get("ns-7/svc-7:p0/TCP")!.every((e) => e.ready)).toBe(true);
    expect(s1.services.get("ns-9/svc-9:p0/TCP")!.externalIPs).toEqual([]);
  });

  it("deletes a service's ports and endpoints and keeps its slices for when it comes back", () => {
    const t = tracker();
    const svc = makeService(1);
    load(t, [svc, makeService(2)], [makeEndpointSlice(1, 2), makeEndpointSlice(2, 2)]);
    const s1 = t.commit().snapshot;
    t.serviceHandler.onDelete!(svc);
    const c = t.commit();
    expect([...c.changes.deletedServicePorts]).toEqual(["ns-1/svc-1:p0/TCP"]);
    expect([...c.changes.changedServicePorts]).toEqual(["ns-1/svc-1:p0/TCP"]);
    expect(c.snapshot.services.has("ns-1/svc-1:p0/TCP")).toBe(false);
    expect(c.snapshot.endpoints.has("ns-1/svc-1:p0/TCP")).toBe(false);
    expect(c.snapshot.services.get("ns-2/svc-2:p0/TCP")).toBe(s1.services.get("ns-2/svc-2:p0/TCP"));
    t.serviceHandler.onAdd!(svc);
    const back = t.commit().snapshot;
    expect(back.endpoints.get("ns-1/svc-1:p0/TCP")).toHaveLength(2);
  });

  it("uses slices that arrive before their service, and handles slice deletion", () => {
    const t = tracker();
    const slice = makeEndpointSlice(3, 2);
    t.endpointSliceHandler.onAdd!(slice);
    const c0 = t.commit();
    expect(c0.changes.changedServicePorts.size).toBe(0);
    expect(c0.snapshot.endpoints.size).toBe(0);
    t.serviceHandler.onAdd!(makeService(3));
    expect(t.commit().snapshot.endpoints.get("ns-3/svc-3:p0/TCP")).toHaveLength(2);
    t.endpointSliceHandler.onDelete!(slice);
    const c = t.commit();
    expect([...c.changes.changedServicePorts]).toEqual(["ns-3/svc-3:p0/TCP"]);
    expect(c.changes.deletedServicePorts.size).toBe(0);
    expect(c.snapshot.endpoints.has("ns-3/svc-3:p0/TCP")).toBe(false);
    expect(c.snapshot.services.has("ns-3/svc-3:p0/TCP")).toBe(true);
  });

  it("merges and deduplicates endpoints across a service's slices, and follows a slice relabelled to another service", () => {
    const t = tracker();
    const a = makeEndpointSlice(1, 3, { slice: 0, offset: 0 });
    const b = makeEndpointSlice(1, 3, { slice: 1, offset: 2 }); // endpoint 2 in both
    load(t, [makeService(1), makeService(2, { namespaces: 1 })], [a, b]);
    expect(t.commit().snapshot.endpoints.get("ns-1/svc-1:p0/TCP")).toHaveLength(5);
    // Slice b now belongs to svc-2 (same namespace ns-1? no: svc-2 lives in ns-0 with namespaces: 1).
    const moved = clone(b);
    moved.metadata!.labels!["kubernetes.io/service-name"] = "svc-x";
    t.endpointSliceHandler.onUpdate!(b, moved);
    t.serviceHandler.onAdd!({ ...makeService(1), metadata: { namespace: "ns-1", name: "svc-x" } });
    const s = t.commit().snapshot;
    expect(s.endpoints.get("ns-1/svc-1:p0/TCP")).toHaveLength(3);
    expect(s.endpoints.get("ns-1/svc-x:p0/TCP")).toHaveLength(3);
  });

  it("drops a slice that becomes labelled for another proxy", () => {
    const t = tracker();
    const slice = makeEndpointSlice(1, 2);
    load(t, [makeService(1)], [slice]);
    t.commit();
    const other = clone(slice);
    other.metadata!.labels!["service.kubernetes.io/service-proxy-name"] = "someone-else";
    t.endpointSliceHandler.onUpdate!(slice, other);
    expect(t.commit().snapshot.endpoints.has("ns-1/svc-1:p0/TCP")).toBe(false);
  });

  it("serves only services labelled with its name when given a proxy name", () => {
    const t = tracker({ proxyName: "worknode" });
    const label = { "service.kubernetes.io/service-proxy-name": "worknode" };
    load(
      t,
      [makeService(1, { labels: label }), makeService(2)],
      [makeEndpointSlice(1, 1, { labels: label }), makeEndpointSlice(2, 1)],
    );
    expect([...t.commit().snapshot.services.keys()]).toEqual(["ns-1/svc-1:p0/TCP"]);
  });

  it("fires onPendingChange when a change becomes pending, until unsubscribed", () => {
    const t = tracker();
    let calls = 0;
    const off = t.onPendingChange(() => calls++);
    t.serviceHandler.onAdd!(makeService(1));
    expect(calls).toBe(1);
    t.commit();
    t.serviceHandler.onUpdate!(makeService(1), makeService(1)); // no change
    expect(calls).toBe(1);
    t.endpointSliceHandler.onAdd!(makeEndpointSlice(1, 1));
    expect(calls).toBe(2);
    off();
    t.serviceHandler.onDelete!(makeService(1));
    expect(calls).toBe(2);
    expect(t.hasPendingChanges()).toBe(true);
  });

  it("reports sync of both sources", () => {
    const t = tracker();
    t.serviceHandler.onSynced!();
    expect(t.hasSynced()).toBe(false);
    t.endpointSliceHandler.onSynced!();
    expect(t.hasSynced()).toBe(true);
  });

  it("reports trigger times of changed endpoints, ignoring those before the tracker started", () => {
    const clock = new FakeClock(Date.parse("2024-05-01T10:00:00Z"));
    const t = tracker({ clock });
    load(t, [makeService(1), makeService(2)], []);
    t.commit();
    t.endpointSliceHandler.onAdd!(makeEndpointSlice(1, 1, { triggerTime: "2024-05-01T10:00:05Z" }));
    t.endpointSliceHandler.onAdd!(makeEndpointSlice(2, 1, { triggerTime: "2024-05-01T09:00:00Z" }));
    const slice1b = makeEndpointSlice(1, 1, { slice: 1, triggerTime: "2024-05-01T10:00:02Z" });
    t.endpointSliceHandler.onAdd!(slice1b);
    const c = t.commit();
    expect([...c.changes.changedServicePorts].sort()).toEqual(["ns-1/svc-1:p0/TCP", "ns-2/svc-2:p0/TCP"]);
    expect([...c.changes.triggerTimes]).toEqual([["ns-1/svc-1:p0/TCP", Date.parse("2024-05-01T10:00:02Z")]]);
  });

  it("counts events and invalid objects in the metrics registry", async () => {
    const registry = new Registry();
    const t = tracker({ metrics: registry });
    load(
      t,
      [makeService(1), { ...makeService(2), spec: { clusterIP: "bad", ports: [{ port: 1 }] } }],
      [makeEndpointSlice(1, 1)],
    );
    const text = await registry.metrics();
    expect(text).toMatch(/worknode_service_tracker_events_total\{kind="Service"\} 2/);
    expect(text).toMatch(/worknode_service_tracker_events_total\{kind="EndpointSlice"\} 1/);
    expect(text).toMatch(/worknode_service_tracker_pending_services 1/);
    expect(text).toMatch(/worknode_service_tracker_invalid_objects 1/);
  });
});

describe("ServiceChangeTracker invalid objects", () => {
  it("reports an invalid service with a reason naming it, drops its ports, and keeps serving the others", () => {
    const lines: string[] = [];
    const logger = pino(
      { level: "warn" },
      new Writable({
        write(chunk, _enc, cb) {
          lines.push(String(chunk));
          cb();
        },
      }),
    );
    const seen: InvalidObjectError[] = [];
    const t = tracker({ logger, onInvalid: (e) => seen.push(e) });
    const good = makeService(1);
    const svc = makeService(2);
    load(t, [good, svc], [makeEndpointSlice(1, 2), makeEndpointSlice(2, 2)]);
    const s1 = t.commit().snapshot;
    expect(s1.services.has("ns-2/svc-2:p0/TCP")).toBe(true);

    const broken = clone(svc);
    broken.spec!.ports![0]!.port = 0;
    t.serviceHandler.onUpdate!(svc, broken);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.message).toBe(
      "invalid Service ns-2/svc-2: spec.ports[0].port: 0 is not a valid port number (1-65535)",
    );
    expect(t.invalidObjects().map((e) => e.message)).toEqual([seen[0]!.message]);
    expect(lines.join("")).toContain("invalid Service ns-2/svc-2");

    const c = t.commit();
    expect([...c.changes.deletedServicePorts]).toEqual(["ns-2/svc-2:p0/TCP"]);
    expect(c.snapshot.services.has("ns-2/svc-2:p0/TCP")).toBe(false);
    expect(c.snapshot.endpoints.has("ns-2/svc-2:p0/TCP")).toBe(false);
    expect(c.snapshot.services.get("ns-1/svc-1:p0/TCP")).toBe(s1.services.get("ns-1/svc-1:p0/TCP"));
    expect(c.snapshot.endpoints.get("ns-1/svc-1:p0/TCP")).toBe(s1.endpoints.get("ns-1/svc-1:p0/TCP"));

    // Fixing it brings it back and clears the report.
    t.serviceHandler.onUpdate!(broken, svc);
    expect(t.invalidObjects()).toEqual([]);
    const fixed = t.commit().snapshot;
    expect(fixed.services.has("ns-2/svc-2:p0/TCP")).toBe(true);
    expect(fixed.endpoints.get("ns-2/svc-2:p0/TCP")).toHaveLength(2);
  });

  it("keeps the valid endpoints of a partly invalid slice and lists the slice as invalid until deleted", () => {
    const t = tracker();
    const slice = makeEndpointSlice(1, 3);
    slice.endpoints[1]!.addresses = ["not-an-ip"];
    load(t, [makeService(1)], [slice]);
    expect(t.commit().snapshot.endpoints.get("ns-1/svc-1:p0/TCP")).toHaveLength(2);
    expect(t.invalidObjects().map((e) => e.message)).toEqual([
      'invalid EndpointSlice ns-1/svc-1-0: endpoints[1].addresses[0]: "not-an-ip" is not a valid IP address',
    ]);
    t.endpointSliceHandler.onDelete!(slice);
    expect(t.invalidObjects()).toEqual([]);
  });

  it("lists a slice without service label as invalid and ignores it", () => {
    const t = tracker();
    const slice = makeEndpointSlice(1, 3);
    slice.metadata!.labels = {};
    load(t, [makeService(1)], [slice]);
    expect(t.commit().snapshot.endpoints.size).toBe(0);
    expect(t.invalidObjects()).toHaveLength(1);
    expect(t.invalidObjects()[0]!.message).toContain("EndpointSlice ns-1/svc-1-0");
  });
});

describe("ServiceChangeTracker stale conntrack", () => {
  const udp = (extra = {}) =>
    makeService(1, {
      protocol: "UDP",
      type: "LoadBalancer",
      externalIPs: ["192.0.2.1"],
      loadBalancerIPs: ["203.0.113.1"],
      ...extra,
    });
  const nodePort = () => buildServicePorts(udp()).ports[0]!.nodePort;

  it("flushes a removed UDP endpoint from every frontend and the node port", () => {
    const t = tracker();
    load(t, [udp()], [makeEndpointSlice(1, 3, { protocol: "UDP" })]);
    t.commit();
    t.endpointSliceHandler.onUpdate!(
      makeEndpointSlice(1, 3, { protocol: "UDP" }),
      makeEndpointSlice(1, 2, { protocol: "UDP" }),
    );
    const { changes } = t.commit();
    const gone = `${endpointIP(1, 2)}:8080`;
    expect(sortStale(changes.staleConntrack)).toEqual(
      [
        `${serviceIP(1)}|80|UDP|${gone}`,
        `192.0.2.1|80|UDP|${gone}`,
        `203.0.113.1|80|UDP|${gone}`,
        `|${nodePort()}|UDP|${gone}`,
      ].sort(),
    );
  });

  it("flushes an endpoint that stops serving, but not one that only stops being ready while serving", () => {
    const t = tracker();
    load(t, [makeService(1, { protocol: "UDP" })], [makeEndpointSlice(1, 3, { protocol: "UDP" })]);
    t.commit();
    t.endpointSliceHandler.onUpdate!(
      makeEndpointSlice(1, 3, { protocol: "UDP" }),
      makeEndpointSlice(1, 3, { protocol: "UDP", notReady: (j) => j === 0, terminating: (j) => j === 1 }),
    );
    const { changes } = t.commit();
    expect(sortStale(changes.staleConntrack)).toEqual([`${serviceIP(1)}|80|UDP|${endpointIP(1, 0)}:8080`]);
  });

  it("flushes the old cluster IP when it changes, and whole frontends of a deleted UDP service", () => {
    const t = tracker();
    const svc = makeService(1, { protocol: "UDP" });
    load(t, [svc], [makeEndpointSlice(1, 1, { protocol: "UDP" })]);
    t.commit();
    const moved = clone(svc);
    moved.spec!.clusterIP = "10.99.0.1";
    moved.spec!.clusterIPs = ["10.99.0.1"];
    t.serviceHandler.onUpdate!(svc, moved);
    expect(sortStale(t.commit().changes.staleConntrack)).toEqual([`${serviceIP(1)}|80|UDP|*`]);
    t.serviceHandler.onDelete!(moved);
    expect(sortStale(t.commit().changes.staleConntrack)).toEqual(["10.99.0.1|80|UDP|*"]);
  });

  it("flushes every frontend of a UDP service that gets its first serving endpoint", () => {
    const t = tracker();
    load(t, [udp()], []);
    expect(t.commit().changes.staleConntrack).toEqual([]);
    t.endpointSliceHandler.onAdd!(makeEndpointSlice(1, 1, { protocol: "UDP" }));
    expect(sortStale(t.commit().changes.staleConntrack)).toEqual(
      [
        `${serviceIP(1)}|80|UDP|*`,
        "192.0.2.1|80|UDP|*",
        "203.0.113.1|80|UDP|*",
        `|${nodePort()}|UDP|*`,
      ].sort(),
    );
  });

  it("reports nothing for TCP services", () => {
    const t = tracker();
    const svc = makeService(1, { type: "NodePort" });
    load(t, [svc], [makeEndpointSlice(1, 3)]);
    expect(t.commit().changes.staleConntrack).toEqual([]);
    t.endpointSliceHandler.onUpdate!(makeEndpointSlice(1, 3), makeEndpointSlice(1, 1));
    t.serviceHandler.onDelete!(svc);
    expect(t.commit().changes.staleConntrack).toEqual([]);
  });

  it("covers SCTP and pairs endpoints only with service IPs of their family", () => {
    const t = tracker();
    const svc = makeService(1, { protocol: "SCTP", dualStack: true });
    load(t, [svc], [makeEndpointSlice(1, 2, { protocol: "SCTP" })]);
    t.commit();
    t.endpointSliceHandler.onUpdate!(
      makeEndpointSlice(1, 2, { protocol: "SCTP" }),
      makeEndpointSlice(1, 1, { protocol: "SCTP" }),
    );
    expect(sortStale(t.commit().changes.staleConntrack)).toEqual([
      `${serviceIP(1)}|80|SCTP|${endpointIP(1, 1)}:8080`,
    ]);
  });
});

/** Small deterministic PRNG (mulberry32). */
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

describe("ServiceChangeTracker against a from-scratch rebuild", () => {
  it("every commit equals building everything anew, and the change set is the exact diff", () => {
    const rand = rng(7);
    const t = tracker();
    const services = new Map<number, Service>();
    const slices = new Map<string, EndpointSlice>();
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
    let prev: Commit["snapshot"] = t.snapshot();
    for (let step = 0; step < 300; step++) {
      const i = Math.floor(rand() * 12);
      const r = rand();
      if (r < 0.3) {
        const svc = makeService(i, {
          ports: 1 + Math.floor(rand() * 2),
          protocol: pick(["TCP", "UDP"] as const),
          type: pick(["ClusterIP", "NodePort", "ExternalName"] as const),
          ...(rand() < 0.1 ? { clusterIP: "999.1.1.1" } : {}),
          ...(rand() < 0.3 ? { internalTrafficPolicy: "Local" as const } : {}),
        });
        const old = services.get(i);
        if (old) t.serviceHandler.onUpdate!(old, svc);
        else t.serviceHandler.onAdd!(svc);
        services.set(i, svc);
      } else if (r < 0.4) {
        const old = services.get(i);
        if (old) {
          t.serviceHandler.onDelete!(old);
          services.delete(i);
        }
      } else if (r < 0.85) {
        const sliceNo = Math.floor(rand() * 2);
        const s = makeEndpointSlice(i, 1 + Math.floor(rand() * 4), {
          slice: sliceNo,
          offset: Math.floor(rand() * 4),
          ports: 1 + Math.floor(rand() * 2),
          protocol: pick(["TCP", "UDP"] as const),
          notReady: () => rand() < 0.2,
        });
        const key = s.metadata!.name!;
        const old = slices.get(key);
        if (old) t.endpointSliceHandler.onUpdate!(old, s);
        else t.endpointSliceHandler.onAdd!(s);
        slices.set(key, s);
      } else {
        const key = pick([...slices.keys()].concat(["none"]));
        const old = slices.get(key);
        if (old) {
          t.endpointSliceHandler.onDelete!(old);
          slices.delete(key);
        }
      }
      if (rand() < 0.3) continue;

      const { snapshot, changes } = t.commit();
      // Expected state from scratch.
      const ports: ServicePort[] = [];
      for (const svc of services.values()) ports.push(...buildServicePorts(svc).ports);
      const expectedEps = buildEndpoints(slices.values(), {
        nodeName: "node-1",
        servicePorts: ports,
      }).endpoints;
      expect([...snapshot.services.keys()].sort()).toEqual(ports.map((p) => p.key).sort());
      for (const p of ports) expect(snapshot.services.get(p.key)).toEqual(p);
      expect([...snapshot.endpoints.keys()].sort()).toEqual([...expectedEps.keys()].sort());
      for (const [k, eps] of expectedEps) expect(snapshot.endpoints.get(k)).toEqual(eps);
      // The change set is exactly the keys whose service port or endpoints changed identity.
      const keys = new Set([...prev.services.keys(), ...snapshot.services.keys()]);
      const diff = [...keys].filter(
        (k) =>
          prev.services.get(k) !== snapshot.services.get(k) ||
          prev.endpoints.get(k) !== snapshot.endpoints.get(k),
      );
      expect([...changes.changedServicePorts].sort()).toEqual(diff.sort());
      for (const k of diff) {
        // Identity changes only where content changed.
        const same =
          JSON.stringify(prev.services.get(k)) === JSON.stringify(snapshot.services.get(k)) &&
          JSON.stringify(prev.endpoints.get(k) ?? []) === JSON.stringify(snapshot.endpoints.get(k) ?? []);
        expect(same).toBe(false);
      }
      expect([...changes.deletedServicePorts].sort()).toEqual(
        [...prev.services.keys()].filter((k) => !snapshot.services.has(k)).sort(),
      );
      expect(snapshot.generation).toBe(prev.generation + (diff.length > 0 ? 1 : 0));
      prev = snapshot;
    }
  });
});
