import { describe, expect, it } from "vitest";
import type { Service } from "../../src/kube/objects.js";
import { SnapshotObjectSource } from "../../src/sources/snapshot-source.js";
import { InvalidObjectError } from "../../src/util/errors.js";
import { record } from "./file-helpers.js";

const svc = (name: string, port = 80, ns = "default"): Service => ({
  apiVersion: "v1",
  kind: "Service",
  metadata: { name, namespace: ns },
  spec: { ports: [{ port }] },
});

describe("SnapshotObjectSource", () => {
  it("emits deletes, updates and adds for the difference, and synced once", () => {
    const src = new SnapshotObjectSource<Service>({ kind: "Service" });
    const rec = record(src);
    expect(src.hasSynced()).toBe(false);
    expect(src.replace([svc("b"), svc("a")])).toEqual({ added: 2, updated: 0, deleted: 0 });
    expect(rec.take()).toEqual(["add default/a", "add default/b", "synced"]);
    expect(src.hasSynced()).toBe(true);
    expect(src.replace([svc("a", 81), svc("c"), svc("b")])).toEqual({ added: 1, updated: 1, deleted: 0 });
    expect(src.replace([svc("c"), svc("a", 81)])).toEqual({ added: 0, updated: 0, deleted: 1 });
    expect(rec.take()).toEqual(["update default/a", "add default/c", "delete default/b"]);
    expect(rec.updates[0]!.map((s) => s.spec?.ports?.[0]?.port)).toEqual([80, 81]);
    expect(src.get("default/a")?.spec?.ports?.[0]?.port).toBe(81);
    expect(
      src
        .list()
        .map((s) => s.metadata?.name)
        .sort(),
    ).toEqual(["a", "c"]);
  });

  it("compares by content, not identity or key order", () => {
    const src = new SnapshotObjectSource<Service>({ kind: "Service" });
    src.replace([svc("a")]);
    const rec = record(src);
    rec.take();
    const sameContent: Service = {
      spec: { ports: [{ port: 80 }] },
      metadata: { namespace: "default", name: "a" },
      kind: "Service",
      apiVersion: "v1",
    };
    src.replace([sameContent]);
    expect(rec.take()).toEqual([]);
  });

  it("replays state to late handlers, stops calling detached ones and survives throwing ones", () => {
    const src = new SnapshotObjectSource<Service>({ kind: "Service" });
    src.replace([svc("a")]);
    const thrower = src.addHandler({
      onAdd: () => {
        throw new Error("boom");
      },
    });
    const late = record(src);
    expect(late.take()).toEqual(["add default/a", "synced"]);
    src.replace([svc("a"), svc("b")]);
    expect(late.take()).toEqual(["add default/b"]);
    late.detach();
    thrower();
    src.replace([]);
    expect(late.events).toEqual([]);
  });

  it("delivers invalid-object reports to handlers", () => {
    const src = new SnapshotObjectSource<Service>({ kind: "Service" });
    const rec = record(src);
    const err = new InvalidObjectError({ kind: "Service", name: "x", origin: "f.yaml:1" }, ["bad"]);
    src.reportInvalid(err);
    expect(rec.invalid).toEqual([err]);
  });
});
