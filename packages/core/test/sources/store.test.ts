import { describe, expect, it } from "vitest";
import type { EndpointSlice, KubeObject } from "../../src/kube/objects.js";
import { LABEL_SERVICE_NAME } from "../../src/kube/objects.js";
import {
  IndexedStore,
  indexByLabel,
  indexByNamespace,
  jsonEqual,
  NAMESPACE_INDEX,
  sameResourceVersion,
} from "../../src/sources/store.js";
import { ConfigError } from "../../src/util/errors.js";

function slice(ns: string, name: string, service: string | undefined, rv = "1"): EndpointSlice {
  return {
    metadata: {
      namespace: ns,
      name,
      resourceVersion: rv,
      ...(service === undefined ? {} : { labels: { [LABEL_SERVICE_NAME]: service } }),
    },
    addressType: "IPv4",
    endpoints: [],
  };
}

function newStore() {
  return new IndexedStore<EndpointSlice>({
    indexers: { [NAMESPACE_INDEX]: indexByNamespace, service: indexByLabel(LABEL_SERVICE_NAME) },
  });
}

const names = (objs: readonly KubeObject[]) => objs.map((o) => o.metadata?.name).sort();

describe("IndexedStore", () => {
  it("adds, gets, updates and deletes by namespace/name key", () => {
    const store = newStore();
    const a = slice("ns1", "a", "svc");
    expect(store.add(a)).toBeUndefined();
    expect(store.get("ns1/a")).toBe(a);
    expect(store.has("ns1/a")).toBe(true);
    expect(store.size).toBe(1);
    const a2 = slice("ns1", "a", "svc", "2");
    expect(store.update(a2)).toBe(a);
    expect(store.get("ns1/a")).toBe(a2);
    expect(store.delete("ns1/a")).toBe(a2);
    expect(store.delete("ns1/a")).toBeUndefined();
    expect(store.size).toBe(0);
    expect(store.get("ns1/a")).toBeUndefined();
  });

  it("keys cluster-scoped objects by name and deletes by object", () => {
    const store = new IndexedStore<KubeObject>();
    const node = { metadata: { name: "node1" } };
    store.add(node);
    expect([...store.keys()]).toEqual(["node1"]);
    expect(store.delete(node)).toBe(node);
  });

  it("maintains the namespace and label indexes on add, update and delete", () => {
    const store = newStore();
    store.add(slice("ns1", "a-1", "a"));
    store.add(slice("ns1", "a-2", "a"));
    store.add(slice("ns2", "a-1", "a"));
    store.add(slice("ns1", "b-1", "b"));
    store.add(slice("ns1", "orphan", undefined));
    expect(names(store.byIndex("service", "ns1/a"))).toEqual(["a-1", "a-2"]);
    expect(names(store.byIndex("service", "ns2/a"))).toEqual(["a-1"]);
    expect(names(store.byIndex(NAMESPACE_INDEX, "ns1"))).toEqual(["a-1", "a-2", "b-1", "orphan"]);
    expect(store.indexValues("service").sort()).toEqual(["ns1/a", "ns1/b", "ns2/a"]);

    // The label moves a-2 from service a to service b.
    store.update(slice("ns1", "a-2", "b", "2"));
    expect(names(store.byIndex("service", "ns1/a"))).toEqual(["a-1"]);
    expect(names(store.byIndex("service", "ns1/b"))).toEqual(["a-2", "b-1"]);

    // Losing the label removes it from the index; empty values disappear.
    store.update(slice("ns1", "b-1", undefined, "3"));
    store.delete("ns1/a-2");
    expect(store.byIndex("service", "ns1/b")).toEqual([]);
    expect(store.indexValues("service").sort()).toEqual(["ns1/a", "ns2/a"]);
    expect(store.indexKeys(NAMESPACE_INDEX, "ns1").sort()).toEqual(["ns1/a-1", "ns1/b-1", "ns1/orphan"]);
  });

  it("supports multi-valued indexes", () => {
    const byFinalizer = (o: KubeObject) => o.metadata?.finalizers ?? [];
    const store = new IndexedStore<KubeObject>({ indexers: { finalizer: byFinalizer } });
    store.add({ metadata: { name: "x", finalizers: ["f1", "f2"] } });
    store.add({ metadata: { name: "y", finalizers: ["f2"] } });
    expect(names(store.byIndex("finalizer", "f2"))).toEqual(["x", "y"]);
    store.update({ metadata: { name: "x", finalizers: ["f2", "f3"] } });
    expect(names(store.byIndex("finalizer", "f1"))).toEqual([]);
    expect(names(store.byIndex("finalizer", "f3"))).toEqual(["x"]);
    expect(names(store.byIndex("finalizer", "f2"))).toEqual(["x", "y"]);
  });

  it("indexes label values without the namespace when asked", () => {
    const store = new IndexedStore<EndpointSlice>({
      indexers: { svc: indexByLabel(LABEL_SERVICE_NAME, false) },
    });
    store.add(slice("ns1", "a", "web"));
    store.add(slice("ns2", "b", "web"));
    expect(names(store.byIndex("svc", "web"))).toEqual(["a", "b"]);
  });

  it("rejects unknown index names", () => {
    const store = newStore();
    expect(() => store.byIndex("nope", "x")).toThrow(ConfigError);
    expect(() => store.indexKeys("nope", "x")).toThrow(ConfigError);
    expect(() => store.indexValues("nope")).toThrow(ConfigError);
    expect(store.indexNames().sort()).toEqual([NAMESPACE_INDEX, "service"]);
  });

  it("caches list() until the next change", () => {
    const store = newStore();
    store.add(slice("ns", "a", "s"));
    const first = store.list();
    expect(store.list()).toBe(first);
    store.add(slice("ns", "b", "s"));
    const second = store.list();
    expect(second).not.toBe(first);
    expect(names(second)).toEqual(["a", "b"]);
    store.delete("ns/a");
    expect(names(store.list())).toEqual(["b"]);
    store.clear();
    expect(store.list()).toEqual([]);
    expect(store.indexValues("service")).toEqual([]);
  });

  it("replace() reports adds, updates and deletes and keeps unchanged instances", () => {
    const store = newStore();
    const keep = slice("ns", "keep", "s", "5");
    store.add(keep);
    store.add(slice("ns", "change", "s", "5"));
    store.add(slice("ns", "gone", "s", "5"));
    const keepCopy = slice("ns", "keep", "s", "5");
    const changed = slice("ns", "change", "t", "6");
    const fresh = slice("ns", "fresh", "t", "7");
    const result = store.replace([keepCopy, changed, fresh]);
    expect(result.added).toEqual([fresh]);
    expect(result.updated.map((u) => [u.oldObj.metadata?.resourceVersion, u.newObj])).toEqual([
      ["5", changed],
    ]);
    expect(names(result.deleted)).toEqual(["gone"]);
    expect(store.get("ns/keep")).toBe(keep);
    expect(store.size).toBe(3);
    expect(names(store.byIndex("service", "ns/s"))).toEqual(["keep"]);
    expect(names(store.byIndex("service", "ns/t"))).toEqual(["change", "fresh"]);
    expect(names(store.list())).toEqual(["change", "fresh", "keep"]);
  });

  it("replace() with an empty list deletes everything; with the same list changes nothing", () => {
    const store = newStore();
    const objs = [slice("a", "1", "s"), slice("a", "2", "s")];
    expect(store.replace(objs).added).toHaveLength(2);
    const listed = store.list();
    const again = store.replace(objs.map((o) => structuredClone(o)));
    expect(again).toEqual({ added: [], updated: [], deleted: [] });
    expect(store.list()).toBe(listed);
    const cleared = store.replace([]);
    expect(names(cleared.deleted)).toEqual(["1", "2"]);
    expect(store.size).toBe(0);
    expect(store.indexValues(NAMESPACE_INDEX)).toEqual([]);
  });

  it("replace() compares objects without resourceVersion by content", () => {
    const store = new IndexedStore<KubeObject & { spec?: unknown }>();
    store.add({ metadata: { name: "a" }, spec: { x: 1 } });
    store.add({ metadata: { name: "b" }, spec: { x: 1 } });
    const r = store.replace([
      { metadata: { name: "a" }, spec: { x: 1 } },
      { metadata: { name: "b" }, spec: { x: 2 } },
    ]);
    expect(r.updated.map((u) => u.newObj.metadata?.name)).toEqual(["b"]);
  });
});

describe("sameResourceVersion / jsonEqual", () => {
  it("compares resourceVersions when both objects have one", () => {
    expect(
      sameResourceVersion({ metadata: { resourceVersion: "1" } }, { metadata: { resourceVersion: "1" } }),
    ).toBe(true);
    expect(
      sameResourceVersion({ metadata: { resourceVersion: "1" } }, { metadata: { resourceVersion: "2" } }),
    ).toBe(false);
  });

  it("compares JSON data deeply, treating undefined fields as absent", () => {
    expect(jsonEqual({ a: [1, { b: "x" }], c: undefined }, { a: [1, { b: "x" }] })).toBe(true);
    expect(jsonEqual({ a: [1, 2] }, { a: [2, 1] })).toBe(false);
    expect(jsonEqual({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(jsonEqual({ a: 1, b: 2 }, { a: 1 })).toBe(false);
    expect(jsonEqual([], {})).toBe(false);
    expect(jsonEqual(null, {})).toBe(false);
    expect(jsonEqual("x", "x")).toBe(true);
  });
});
