import { describe, expect, it } from "vitest";
import { emptyChangeSet, isEmptyChangeSet, mergeChangeSets } from "../../src/proxy/change-set-merge.js";
import { changeSet } from "./fake-tracker.js";

describe("mergeChangeSets", () => {
  it("returns the other side when one side is empty", () => {
    const a = changeSet({ changed: ["ns/a:p/TCP"] });
    expect(mergeChangeSets(emptyChangeSet(), a)).toBe(a);
    expect(mergeChangeSets(a, emptyChangeSet())).toBe(a);
    expect(isEmptyChangeSet(emptyChangeSet())).toBe(true);
    expect(isEmptyChangeSet(a)).toBe(false);
  });

  it("unions changed ports and keeps deletions that were not undone", () => {
    const older = changeSet({ changed: ["ns/a:p/TCP"], deleted: ["ns/b:p/TCP", "ns/c:p/TCP"] });
    const newer = changeSet({ changed: ["ns/c:p/TCP", "ns/d:p/TCP"], deleted: ["ns/a:p/TCP"] });
    const m = mergeChangeSets(older, newer);
    expect([...m.changedServicePorts].sort()).toEqual([
      "ns/a:p/TCP",
      "ns/b:p/TCP",
      "ns/c:p/TCP",
      "ns/d:p/TCP",
    ]);
    // b stays deleted; c was re-created by newer; a was deleted by newer
    expect([...m.deletedServicePorts].sort()).toEqual(["ns/a:p/TCP", "ns/b:p/TCP"]);
  });

  it("unions stale conntrack entries without duplicates, in order", () => {
    const x = { serviceIP: "10.0.0.1", port: 53, protocol: "UDP" as const };
    const y = { serviceIP: "10.0.0.1", port: 53, protocol: "UDP" as const, endpoint: "10.1.0.2:53" };
    const z = { serviceIP: "", port: 30053, protocol: "UDP" as const };
    const m = mergeChangeSets(changeSet({ stale: [x, y] }), changeSet({ stale: [{ ...y }, z, { ...x }] }));
    expect(m.staleConntrack).toEqual([x, y, z]);
  });

  it("keeps the earliest trigger time per port", () => {
    const m = mergeChangeSets(
      changeSet({
        triggers: [
          ["ns/a:p/TCP", 100],
          ["ns/b:p/TCP", 500],
        ],
      }),
      changeSet({
        triggers: [
          ["ns/a:p/TCP", 200],
          ["ns/b:p/TCP", 300],
          ["ns/c:p/TCP", 50],
        ],
      }),
    );
    expect(Object.fromEntries(m.triggerTimes)).toEqual({
      "ns/a:p/TCP": 100,
      "ns/b:p/TCP": 300,
      "ns/c:p/TCP": 50,
    });
  });

  it("does not modify its inputs", () => {
    const older = changeSet({ changed: ["ns/a:p/TCP"], triggers: [["ns/a:p/TCP", 1]] });
    const newer = changeSet({ changed: ["ns/b:p/TCP"], deleted: ["ns/c:p/TCP"] });
    mergeChangeSets(older, newer);
    expect([...older.changedServicePorts]).toEqual(["ns/a:p/TCP"]);
    expect([...newer.changedServicePorts].sort()).toEqual(["ns/b:p/TCP", "ns/c:p/TCP"]);
    expect(older.triggerTimes.size).toBe(1);
  });
});
