import { describe, expect, it } from "vitest";
import { PersistentMap } from "../../src/service/index.js";

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

function contents<K, V>(m: ReadonlyMap<K, V>): [K, V][] {
  return [...m.entries()].sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1));
}

describe("PersistentMap", () => {
  it("applies changes without touching the previous version", () => {
    const a = PersistentMap.from([
      ["x", 1],
      ["y", 2],
    ]);
    const b = a.withChanges(
      new Map<string, number | undefined>([
        ["y", undefined],
        ["z", 3],
        ["x", 10],
      ]),
    );
    expect(contents(a)).toEqual([
      ["x", 1],
      ["y", 2],
    ]);
    expect(a.size).toBe(2);
    expect(contents(b)).toEqual([
      ["x", 10],
      ["z", 3],
    ]);
    expect(b.size).toBe(2);
    expect(b.has("y")).toBe(false);
    expect(b.get("y")).toBeUndefined();
    expect(b.get("x")).toBe(10);
    expect(a.withChanges(new Map())).toBe(a);
    // Deleting an absent key and re-setting the base value are no-ops for size.
    const c = b.withChanges(
      new Map<string, number | undefined>([
        ["nope", undefined],
        ["x", 1],
      ]),
    );
    expect(c.size).toBe(2);
    expect(c.get("x")).toBe(1);
  });

  it("behaves like a Map over many random versions, and old versions stay intact", () => {
    const rand = rng(42);
    let pm = PersistentMap.empty<number, number>();
    const ref = new Map<number, number>();
    const history: [PersistentMap<number, number>, [number, number][]][] = [];
    for (let step = 0; step < 400; step++) {
      const changes = new Map<number, number | undefined>();
      const n = 1 + Math.floor(rand() * (step % 50 === 0 ? 400 : 8));
      for (let i = 0; i < n; i++) {
        const k = Math.floor(rand() * 1000);
        changes.set(k, rand() < 0.3 ? undefined : Math.floor(rand() * 1e6));
      }
      pm = pm.withChanges(changes);
      for (const [k, v] of changes) {
        if (v === undefined) ref.delete(k);
        else ref.set(k, v);
      }
      expect(pm.size).toBe(ref.size);
      if (step % 20 === 0) {
        expect(contents(pm)).toEqual(contents(ref));
        history.push([pm, contents(ref)]);
      }
      const probe = Math.floor(rand() * 1000);
      expect(pm.get(probe)).toBe(ref.get(probe));
      expect(pm.has(probe)).toBe(ref.has(probe));
    }
    for (const [old, expected] of history) expect(contents(old)).toEqual(expected);
    // Every iteration API agrees.
    expect([...pm.keys()].length).toBe(ref.size);
    expect([...pm.values()].reduce((s, v) => s + v, 0)).toBe([...ref.values()].reduce((s, v) => s + v, 0));
    const seen: number[] = [];
    pm.forEach((v, k, m) => {
      expect(m).toBe(pm);
      expect(ref.get(k)).toBe(v);
      seen.push(k);
    });
    expect(seen.length).toBe(ref.size);
    expect(new Map(pm).size).toBe(ref.size);
  });
});
