import { FakeClock, type Pod, SnapshotObjectSource } from "@worknode/core";
import { describe, expect, it } from "vitest";
import { FilteredObjectSource } from "../../src/api/api-pod-source.js";
import { KeyedWorkQueue } from "../../src/api/keyed-queue.js";
import { ANNOTATION_CONFIG_MIRROR } from "../../src/api/mirror-pod.js";
import { pod } from "../helpers.js";

/** Lets promise callbacks run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

describe("KeyedWorkQueue", () => {
  it("coalesces a burst into one run and runs once more for changes during a run", async () => {
    const clock = new FakeClock();
    const runs: string[] = [];
    let release: (() => void) | undefined;
    const q = new KeyedWorkQueue({
      clock,
      retryInitialMs: 100,
      retryMaxMs: 1000,
      work: async (k) => {
        runs.push(k);
        await new Promise<void>((r) => {
          release = r;
        });
      },
    });
    for (let i = 0; i < 5; i++) q.schedule("a", 20);
    await clock.advance(20);
    expect(runs).toEqual(["a"]);
    // Three more changes while the run is in flight: one more run, not three.
    q.schedule("a", 20);
    q.schedule("a", 20);
    q.schedule("a", 20);
    release?.();
    await flush();
    await clock.advance(0);
    expect(runs).toEqual(["a", "a"]);
    release?.();
    await flush();
    await clock.advance(1000);
    expect(runs).toEqual(["a", "a"]);
    expect(q.keys()).toEqual([]);
  });

  it("retries a failing key with doubling backoff and resets after a success", async () => {
    const clock = new FakeClock();
    const at: number[] = [];
    const errors: number[] = [];
    let failures = 3;
    const q = new KeyedWorkQueue({
      clock,
      retryInitialMs: 100,
      retryMaxMs: 1000,
      onError: (_k, _e, delay) => errors.push(delay),
      work: async () => {
        at.push(clock.now());
        if (failures-- > 0) throw new Error("boom");
      },
    });
    const t0 = clock.now();
    q.schedule("a");
    for (let i = 0; i < 30; i++) {
      await clock.advance(50);
      await flush();
    }
    expect(errors).toEqual([100, 200, 400]);
    expect(at.map((t) => t - t0)).toEqual([0, 100, 300, 700]);
    expect(q.keys()).toEqual([]);
  });

  it("keeps keys apart and forgets cancelled ones", async () => {
    const clock = new FakeClock();
    const runs: string[] = [];
    const q = new KeyedWorkQueue({
      clock,
      retryInitialMs: 100,
      retryMaxMs: 1000,
      work: async (k) => {
        runs.push(k);
      },
    });
    q.schedule("a", 10);
    q.schedule("b", 10);
    q.forget("b");
    await clock.advance(10);
    await flush();
    expect(runs).toEqual(["a"]);
    await q.stop();
    q.schedule("c");
    await clock.advance(10);
    expect(runs).toEqual(["a"]);
  });
});

describe("FilteredObjectSource", () => {
  const mirror = (p: Pod): Pod => ({
    ...p,
    metadata: { ...p.metadata, annotations: { [ANNOTATION_CONFIG_MIRROR]: "h" } },
  });

  it("delivers only the objects that pass, turning updates across the filter into adds and deletes", () => {
    const inner = new SnapshotObjectSource<Pod>({ kind: "Pod" });
    const filtered = new FilteredObjectSource(
      inner,
      (p) => !p.metadata?.annotations?.[ANNOTATION_CONFIG_MIRROR],
    );
    const events: string[] = [];
    filtered.addHandler({
      onAdd: (p) => events.push(`add ${p.metadata?.name}`),
      onUpdate: (_a, b) => events.push(`update ${b.metadata?.name}`),
      onDelete: (p) => events.push(`delete ${p.metadata?.name}`),
      onSynced: () => events.push("synced"),
    });
    const a = pod({}, { name: "a", uid: "ua" });
    const m = mirror(pod({}, { name: "m", uid: "um" }));
    inner.replace([a, m]);
    expect(events).toEqual(["add a", "synced"]);
    expect(filtered.list().map((p) => p.metadata?.name)).toEqual(["a"]);
    expect(filtered.get("default/m")).toBeUndefined();
    expect(filtered.get("default/a")).toBe(a);
    expect(filtered.hasSynced()).toBe(true);
    events.length = 0;
    inner.replace([mirror(a), { ...m, metadata: { ...m.metadata, annotations: {} } }]);
    expect(events.sort()).toEqual(["add m", "delete a"]);
  });
});
