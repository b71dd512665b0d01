import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { EndpointSlice, Service } from "../../src/kube/objects.js";
import { ProxyController, type ProxyControllerOptions } from "../../src/proxy/controller.js";
import { PROXY_METRIC_NAMES } from "../../src/proxy/metrics.js";
import { ProxySyncError } from "../../src/proxy/proxier.js";
import type { ObjectEventHandler, ObjectSource } from "../../src/sources/types.js";
import { FakeClock, flushMicrotasks } from "../../src/util/clock.js";
import type { Registry } from "../../src/util/metrics.js";
import { FakeProxier } from "./fake-proxier.js";
import { changeSet, FakeTracker } from "./fake-tracker.js";

const SYNC_PERIOD = 30_000;
const MIN_SYNC = 1_000;

function setup(overrides: Partial<ProxyControllerOptions> = {}) {
  const clock = new FakeClock();
  const t0 = clock.now();
  const tracker = new FakeTracker();
  const proxier = new FakeProxier(clock);
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => logs.push(JSON.parse(line)) });
  const controller = new ProxyController({
    tracker,
    proxier,
    clock,
    logger,
    minSyncPeriodMs: MIN_SYNC,
    syncPeriodMs: SYNC_PERIOD,
    // random 0.5 makes the ±10 % jitter neutral: delays are exactly 1 s, 2 s, 4 s …
    retryBackoff: { initialMs: 1_000, maxMs: 30_000, jitter: 0.1, random: () => 0.5 },
    ...overrides,
  });
  return { clock, t0, tracker, proxier, controller, logs, rel: (t: number) => t - t0 };
}

/** Starts the controller with both sources synced and lets the first (full) sync run. */
async function started(overrides: Partial<ProxyControllerOptions> = {}) {
  const s = setup(overrides);
  s.controller.start();
  s.controller.markServicesSynced();
  s.controller.markEndpointSlicesSynced();
  await flushMicrotasks();
  expect(s.proxier.syncs).toHaveLength(1);
  return s;
}

async function metricValues(
  registry: Registry,
  name: string,
): Promise<{ value: number; labels: object; metricName?: string }[]> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`metric ${name} not registered`);
  return (await metric.get()).values;
}

async function histogramCount(registry: Registry, name: string): Promise<number> {
  const values = await metricValues(registry, name);
  return values.find((v) => v.metricName === `${name}_count`)?.value ?? Number.NaN;
}

async function histogramSum(registry: Registry, name: string): Promise<number> {
  const values = await metricValues(registry, name);
  return values.find((v) => v.metricName === `${name}_sum`)?.value ?? Number.NaN;
}

describe("ProxyController", () => {
  it("waits for both services and endpoint slices to be synced", async () => {
    const s = setup();
    s.controller.start();
    s.tracker.pushChange(changeSet({ changed: ["default/a:http/TCP"] }));
    await s.clock.advance(2 * SYNC_PERIOD);
    expect(s.proxier.syncs).toHaveLength(0);
    await expect(s.controller.syncNow()).resolves.toMatchObject({ status: "skipped" });
    expect(s.proxier.syncs).toHaveLength(0);

    s.controller.markServicesSynced();
    await s.clock.advance(SYNC_PERIOD);
    expect(s.proxier.syncs).toHaveLength(0);
    expect(s.controller.initialized).toBe(false);

    s.controller.markEndpointSlicesSynced();
    await flushMicrotasks();
    expect(s.controller.initialized).toBe(true);
    expect(s.proxier.syncs).toHaveLength(1);
    expect(s.proxier.last().full).toBe(true);
    // the change made before the gate opened is in the first commit
    expect([...s.proxier.last().changes.changedServicePorts]).toEqual(["default/a:http/TCP"]);
    await s.controller.stop();
  });

  it("syncs only after start() when the sources were synced before it", async () => {
    const s = setup();
    s.controller.markServicesSynced();
    s.controller.markEndpointSlicesSynced();
    await s.clock.advance(2 * SYNC_PERIOD);
    expect(s.proxier.syncs).toHaveLength(0);
    s.controller.start();
    await flushMicrotasks();
    expect(s.proxier.fullFlags()).toEqual([true]);
    await s.controller.stop();
  });

  it("opens the gate from the sources' onSynced callbacks", async () => {
    const s = setup();
    const sources = [fakeSource<Service>("Service"), fakeSource<EndpointSlice>("EndpointSlice")] as const;
    const detach = s.controller.trackSourcesSynced(sources[0], sources[1]);
    s.controller.start();
    sources[1].synced();
    await flushMicrotasks();
    expect(s.proxier.syncs).toHaveLength(0);
    sources[0].synced();
    await flushMicrotasks();
    expect(s.proxier.syncs).toHaveLength(1);
    detach();
    expect(sources[0].handlers.size + sources[1].handlers.size).toBe(0);
    await s.controller.stop();
  });

  it("syncs full first, then partially with the tracker's change set", async () => {
    const s = await started();
    expect(s.proxier.last().full).toBe(true);
    expect(s.proxier.last().snapshot).toBe(s.tracker.commits[0]!.snapshot);

    const change = changeSet({ changed: ["ns/web:http/TCP"], deleted: ["ns/old:dns/UDP"] });
    s.tracker.pushChange(change);
    await s.clock.advance(MIN_SYNC - 1);
    expect(s.proxier.syncs).toHaveLength(1);
    await s.clock.advance(1);
    expect(s.proxier.syncs).toHaveLength(2);
    const second = s.proxier.last();
    expect(second.full).toBe(false);
    expect([...second.changes.changedServicePorts].sort()).toEqual(["ns/old:dns/UDP", "ns/web:http/TCP"]);
    expect([...second.changes.deletedServicePorts]).toEqual(["ns/old:dns/UDP"]);
    expect(second.snapshot.generation).toBe(s.tracker.commits[1]!.snapshot.generation);
    expect(s.controller.lastResult).toMatchObject({ status: "synced", full: false });
    await s.controller.stop();
  });

  it("coalesces a burst of changes into one sync", async () => {
    const s = await started();
    for (let i = 0; i < 20; i++) {
      s.tracker.pushChange(changeSet({ changed: [`ns/s${i}:p/TCP`] }));
      await s.clock.advance(20);
    }
    await s.clock.advance(MIN_SYNC);
    expect(s.proxier.syncs).toHaveLength(2);
    expect(s.proxier.last().changes.changedServicePorts.size).toBe(20);
    await s.controller.stop();
  });

  it("makes the periodic sync full (or partial when periodicFullSync is off)", async () => {
    const s = await started();
    await s.clock.advance(SYNC_PERIOD);
    expect(s.proxier.fullFlags()).toEqual([true, true]);
    expect(s.proxier.last().changes.changedServicePorts.size).toBe(0);
    await s.controller.stop();

    const p = await started({ periodicFullSync: false, fullSyncPeriodMs: 3 * SYNC_PERIOD });
    await p.clock.advance(SYNC_PERIOD);
    await p.clock.advance(SYNC_PERIOD);
    expect(p.proxier.fullFlags()).toEqual([true, false, false]);
    // fullSyncPeriodMs (90 s since the last full sync) forces the next one to be full
    await p.clock.advance(SYNC_PERIOD);
    expect(p.proxier.fullFlags()).toEqual([true, false, false, true]);
    await p.controller.stop();
  });

  it("retries a failed sync with backoff, fully, carrying the failed change set", async () => {
    const s = await started();
    const t1 = s.clock.now();
    const a = changeSet({
      changed: ["ns/dns:udp/UDP"],
      deleted: ["ns/gone:udp/UDP"],
      stale: [{ serviceIP: "10.0.0.10", port: 53, protocol: "UDP", endpoint: "10.1.0.5:53" }],
      triggers: [["ns/dns:udp/UDP", t1 - 500]],
    });
    s.proxier.failures.push(
      new ProxySyncError("fake", "restore failed", { failingLine: "-A KUBE-SVC-X -j BROKEN" }),
      new Error("second failure"),
    );
    s.tracker.pushChange(a);
    await s.clock.advance(MIN_SYNC);
    expect(s.proxier.syncs).toHaveLength(2);
    expect(s.proxier.last().full).toBe(false);
    expect(s.controller.syncErrors).toBe(1);
    expect(s.controller.lastResult).toMatchObject({ status: "failed", retryInMs: 1_000 });

    const failureLog = s.logs.find((l) => l.level === 50 && l.failingLine !== undefined);
    expect(failureLog).toMatchObject({
      failingLine: "-A KUBE-SVC-X -j BROKEN",
      mode: "fake",
      retryInMs: 1_000,
    });
    expect(failureLog?.err).toMatchObject({ message: "restore failed" });

    // a new change arrives before the retry
    const b = changeSet({
      changed: ["ns/web:http/TCP", "ns/gone:udp/UDP"],
      stale: [{ serviceIP: "10.0.0.11", port: 80, protocol: "UDP" }],
      triggers: [["ns/dns:udp/UDP", t1 - 100]],
    });
    s.tracker.pushChange(b);
    // retry 1 s after the failure (2nd failure) and then 2 s after that (success)
    await s.clock.advance(MIN_SYNC);
    expect(s.proxier.syncs).toHaveLength(3);
    const retry1 = s.proxier.last();
    expect(retry1.full).toBe(true);
    expect(s.controller.lastResult).toMatchObject({ status: "failed", retryInMs: 2_000 });
    await s.clock.advance(1_999);
    expect(s.proxier.syncs).toHaveLength(3);
    await s.clock.advance(1);
    expect(s.proxier.syncs).toHaveLength(4);

    const ok = s.proxier.last();
    expect(ok.full).toBe(true);
    expect([...ok.changes.changedServicePorts].sort()).toEqual([
      "ns/dns:udp/UDP",
      "ns/gone:udp/UDP",
      "ns/web:http/TCP",
    ]);
    // "ns/gone" was re-created by b: no longer deleted
    expect([...ok.changes.deletedServicePorts]).toEqual([]);
    expect(ok.changes.staleConntrack).toEqual([
      { serviceIP: "10.0.0.10", port: 53, protocol: "UDP", endpoint: "10.1.0.5:53" },
      { serviceIP: "10.0.0.11", port: 80, protocol: "UDP" },
    ]);
    expect(ok.changes.triggerTimes.get("ns/dns:udp/UDP")).toBe(t1 - 500);
    expect(s.controller.lastResult).toMatchObject({ status: "synced", full: true });
    expect(s.controller.syncErrors).toBe(2);
    expect(s.controller.consecutiveFailures).toBe(0);

    // after success: partial again, the carried set is gone, backoff starts over
    s.tracker.pushChange(changeSet({ changed: ["ns/x:p/TCP"] }));
    await s.clock.advance(MIN_SYNC);
    expect(s.proxier.last().full).toBe(false);
    expect([...s.proxier.last().changes.changedServicePorts]).toEqual(["ns/x:p/TCP"]);
    s.proxier.failures.push(new Error("again"));
    s.tracker.pushChange(changeSet({ changed: ["ns/y:p/TCP"] }));
    await s.clock.advance(MIN_SYNC);
    expect(s.controller.lastResult).toMatchObject({ status: "failed", retryInMs: 1_000 });
    await s.controller.stop();
  });

  it("keeps the carried change set when the tracker's commit throws", async () => {
    const s = await started();
    s.proxier.failures.push(new Error("backend down"));
    s.tracker.pushChange(changeSet({ changed: ["ns/a:p/TCP"] }));
    await s.clock.advance(MIN_SYNC);
    s.tracker.commitError = new Error("tracker broke");
    await s.clock.advance(MIN_SYNC);
    expect(s.controller.lastResult).toMatchObject({ status: "failed", retryInMs: 2_000 });
    expect(s.proxier.syncs).toHaveLength(2);
    await s.clock.advance(2_000);
    expect(s.proxier.syncs).toHaveLength(3);
    expect([...s.proxier.last().changes.changedServicePorts]).toEqual(["ns/a:p/TCP"]);
    expect(s.proxier.last().full).toBe(true);
    await s.controller.stop();
  });

  it("never calls sync concurrently, and stop() waits for the sync in flight", async () => {
    const s = await started();
    s.proxier.syncMs = 5_000;
    s.tracker.pushChange(changeSet({ changed: ["ns/a:p/TCP"] }));
    await s.clock.advance(MIN_SYNC + 100);
    expect(s.proxier.active).toBe(1);
    for (let i = 0; i < 10; i++) {
      s.tracker.pushChange(changeSet({ changed: [`ns/b${i}:p/TCP`] }));
      await s.clock.advance(100);
    }
    const manual = s.controller.syncNow();
    await s.clock.advance(20_000);
    await expect(manual).resolves.toMatchObject({ status: "synced" });
    expect(s.proxier.maxActive).toBe(1);

    s.tracker.pushChange(changeSet({ changed: ["ns/c:p/TCP"] }));
    await s.clock.advance(MIN_SYNC + 100);
    expect(s.proxier.active).toBe(1);
    let stopped = false;
    const stopping = s.controller.stop().then(() => {
      stopped = true;
    });
    await s.clock.advance(3_000);
    expect(stopped).toBe(false);
    await s.clock.advance(1_000);
    await stopping;
    expect(stopped).toBe(true);
    expect(s.tracker.listenerCount).toBe(0);
    const count = s.proxier.syncs.length;
    s.tracker.pushChange(changeSet({ changed: ["ns/d:p/TCP"] }));
    await s.clock.advance(10 * SYNC_PERIOD);
    expect(s.proxier.syncs).toHaveLength(count);
  });

  it("turns unhealthy when a queued change is not synced in time, healthy after a sync", async () => {
    const s = await started();
    expect(s.controller.health.healthTimeoutMs).toBe(2 * SYNC_PERIOD);
    expect(s.controller.health.isHealthy()).toBe(true);
    const firstSyncAt = s.clock.now();
    expect(s.controller.health.status().lastUpdated).toBe(firstSyncAt);

    // the backend keeps failing: the change stays queued
    s.proxier.failures.push(...Array.from({ length: 20 }, () => new Error("nope")));
    s.tracker.pushChange(changeSet({ changed: ["ns/a:p/TCP"] }));
    const queuedAt = s.clock.now();
    await s.clock.advance(2 * SYNC_PERIOD - 1);
    expect(s.controller.health.isHealthy()).toBe(true);
    await s.clock.advance(1);
    expect(s.controller.health.isHealthy()).toBe(false);
    expect(s.controller.health.status()).toMatchObject({
      oldestPendingQueued: queuedAt,
      lastUpdated: firstSyncAt,
    });

    s.proxier.failures = [];
    await s.clock.advance(SYNC_PERIOD);
    expect(s.controller.lastResult).toMatchObject({ status: "synced" });
    expect(s.controller.health.isHealthy()).toBe(true);
    expect(s.controller.health.status().oldestPendingQueued).toBeUndefined();
    await s.controller.stop();
  });

  it("keeps a change queued during a sync pending in the health state", async () => {
    const s = await started();
    s.proxier.syncMs = 2_000;
    s.tracker.pushChange(changeSet({ changed: ["ns/a:p/TCP"] }));
    await s.clock.advance(MIN_SYNC + 500); // sync in flight, its commit already taken
    s.tracker.pushChange(changeSet({ changed: ["ns/b:p/TCP"] }));
    await s.clock.advance(1_500); // sync done
    expect(s.controller.lastResult).toMatchObject({ status: "synced" });
    expect(s.controller.health.status().oldestPendingQueued).toBeDefined();
    await s.clock.advance(MIN_SYNC + 2_000);
    expect(s.controller.health.status().oldestPendingQueued).toBeUndefined();
    await s.controller.stop();
  });

  it("observes kube-proxy's metrics", async () => {
    const s = setup();
    const reg = s.controller.registry;
    s.controller.start();
    s.controller.markServicesSynced();
    s.controller.markEndpointSlicesSynced();
    const queuedAt = s.clock.now();
    await flushMicrotasks();
    expect(await histogramCount(reg, PROXY_METRIC_NAMES.syncDuration)).toBe(1);
    expect(await histogramCount(reg, PROXY_METRIC_NAMES.syncFullDuration)).toBe(1);
    expect(await histogramCount(reg, PROXY_METRIC_NAMES.syncPartialDuration)).toBe(0);
    expect((await metricValues(reg, PROXY_METRIC_NAMES.lastQueuedTimestamp))[0]?.value).toBe(queuedAt / 1000);
    expect((await metricValues(reg, PROXY_METRIC_NAMES.lastSyncTimestamp))[0]?.value).toBe(queuedAt / 1000);

    // a partial sync taking 250 ms, for a change triggered upstream 2 s before it was queued
    s.proxier.syncMs = 250;
    const changeQueuedAt = s.clock.now() + 5_000;
    await s.clock.advance(5_000);
    s.tracker.pushChange(
      changeSet({
        changed: ["ns/a:p/TCP", "ns/b:p/TCP"],
        triggers: [
          ["ns/a:p/TCP", changeQueuedAt - 2_000],
          ["ns/b:p/TCP", changeQueuedAt - 4_000],
        ],
      }),
    );
    await s.clock.advance(300);
    expect(s.controller.lastResult).toMatchObject({ status: "synced", full: false, durationMs: 250 });
    expect(await histogramCount(reg, PROXY_METRIC_NAMES.syncDuration)).toBe(2);
    expect(await histogramCount(reg, PROXY_METRIC_NAMES.syncPartialDuration)).toBe(1);
    expect(await histogramSum(reg, PROXY_METRIC_NAMES.syncPartialDuration)).toBeCloseTo(0.25, 6);
    expect((await metricValues(reg, PROXY_METRIC_NAMES.lastQueuedTimestamp))[0]?.value).toBe(
      changeQueuedAt / 1000,
    );
    expect((await metricValues(reg, PROXY_METRIC_NAMES.lastSyncTimestamp))[0]?.value).toBe(
      (changeQueuedAt + 250) / 1000,
    );
    expect(await histogramCount(reg, PROXY_METRIC_NAMES.networkProgrammingDuration)).toBe(2);
    expect(await histogramSum(reg, PROXY_METRIC_NAMES.networkProgrammingDuration)).toBeCloseTo(
      2.25 + 4.25,
      6,
    );

    // a failure is counted by mode and its duration still observed
    s.proxier.syncMs = 0;
    s.proxier.failures.push(new Error("x"));
    s.tracker.pushChange(changeSet({ changed: ["ns/c:p/TCP"] }));
    await s.clock.advance(MIN_SYNC);
    const errors = await metricValues(reg, PROXY_METRIC_NAMES.syncErrors);
    expect(errors).toEqual([expect.objectContaining({ value: 1, labels: { mode: "fake" } })]);
    expect(await histogramCount(reg, PROXY_METRIC_NAMES.syncDuration)).toBe(3);
    await s.controller.stop();
  });
});

/** A minimal ObjectSource whose only behaviour is reporting `onSynced`. */
function fakeSource<T>(kind: string) {
  const handlers = new Set<ObjectEventHandler<T>>();
  let isSynced = false;
  const source: ObjectSource<T> & { handlers: Set<ObjectEventHandler<T>>; synced(): void } = {
    kind,
    handlers,
    addHandler(h) {
      handlers.add(h);
      if (isSynced) h.onSynced?.();
      return () => handlers.delete(h);
    },
    hasSynced: () => isSynced,
    list: () => [],
    get: () => undefined,
    synced() {
      isSynced = true;
      for (const h of handlers) h.onSynced?.();
    },
  };
  return source;
}
