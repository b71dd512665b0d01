import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { type KubeObject, LABEL_SERVICE_NAME, objectKey, type Service } from "../../src/kube/objects.js";
import { Informer, type InformerOptions } from "../../src/sources/informer.js";
import { KUBE_RESOURCES } from "../../src/sources/kube-client.js";
import { indexByLabel, indexByNamespace } from "../../src/sources/store.js";
import type { ObjectEventHandler } from "../../src/sources/types.js";
import { FakeClock } from "../../src/util/clock.js";
import { AbortedError, UnavailableError } from "../../src/util/errors.js";
import { FakeApiServer, waitFor } from "../helpers/fake-apiserver.js";

/** Records every callback as one readable line: `add ns/name@rv`, `update ns/name@1->2`, … */
class Recorder implements ObjectEventHandler<KubeObject> {
  readonly events: string[] = [];
  onAdd(obj: KubeObject): void {
    this.events.push(`add ${objectKey(obj)}@${obj.metadata?.resourceVersion}`);
  }
  onUpdate(oldObj: KubeObject, newObj: KubeObject): void {
    this.events.push(
      `update ${objectKey(newObj)}@${oldObj.metadata?.resourceVersion}->${newObj.metadata?.resourceVersion}`,
    );
  }
  onDelete(obj: KubeObject): void {
    this.events.push(`delete ${objectKey(obj)}@${obj.metadata?.resourceVersion}`);
  }
  onSynced(): void {
    this.events.push("synced");
  }
  onInvalid(): void {
    this.events.push("invalid");
  }
  /** Waits until `line` was recorded. */
  async seen(line: string): Promise<void> {
    await waitFor(() => this.events.includes(line), `event "${line}"; got ${JSON.stringify(this.events)}`);
  }
  /** Returns the events recorded since the last take(). */
  take(): string[] {
    return this.events.splice(0);
  }
}

const BACKOFF = { initialMs: 1000, maxMs: 8000, factor: 2, jitter: 0 };

let server: FakeApiServer | undefined;
const informers: Array<Informer<KubeObject>> = [];

afterEach(async () => {
  for (const inf of informers.splice(0)) await inf.stop();
  await server?.close();
  server = undefined;
});

async function setup(
  options: Partial<InformerOptions<Service>> = {},
  serverOptions: Parameters<typeof FakeApiServer.start>[0] = {},
) {
  server = await FakeApiServer.start({
    resources: [KUBE_RESOURCES.services, KUBE_RESOURCES.endpointSlices],
    ...serverOptions,
  });
  const clock = new FakeClock();
  const registry = new Registry();
  const rec = new Recorder();
  const informer = new Informer<Service>({
    resource: KUBE_RESOURCES.services,
    kubeConfig: server.kubeConfig(),
    clock,
    random: () => 0,
    backoff: BACKOFF,
    metrics: registry,
    ...options,
  });
  informers.push(informer as unknown as Informer<KubeObject>);
  informer.addHandler(rec);
  return { server, clock, registry, rec, informer };
}

function svc(name: string, extra: Partial<Service> = {}, namespace = "default"): Service {
  return { metadata: { name, namespace, ...extra.metadata }, spec: { clusterIP: "10.0.0.1", ...extra.spec } };
}

async function watching(informer: Informer<KubeObject> | Informer<Service>, s: FakeApiServer, n = 1) {
  await waitFor(
    () =>
      informer.status().phase === "watching" && s.activeWatches() >= 1 && s.requestsOf("watch").length >= n,
    `watch #${n} to be open (status ${JSON.stringify(informer.status())})`,
  );
}

async function inBackoff(informer: Informer<KubeObject> | Informer<Service>) {
  await waitFor(
    () => informer.status().phase === "backoff",
    `backoff (status ${JSON.stringify(informer.status())})`,
  );
}

async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

describe("Informer: list and sync", () => {
  it("lists, delivers the initial state, then reports synced", async () => {
    const { server, rec, informer } = await setup();
    const a = server.add("services", svc("a"));
    const b = server.add("services", svc("b", {}, "other"));
    expect(informer.hasSynced()).toBe(false);
    await informer.start();
    expect(informer.hasSynced()).toBe(true);
    expect(rec.take()).toEqual([
      `add default/a@${a.metadata?.resourceVersion}`,
      `add other/b@${b.metadata?.resourceVersion}`,
      "synced",
    ]);
    expect(informer.list().map(objectKey).sort()).toEqual(["default/a", "other/b"]);
    // List items lack kind/apiVersion on the wire; the informer fills them in.
    expect(informer.get("default/a")).toMatchObject({ kind: "Service", apiVersion: "v1", spec: a.spec });
    expect(informer.status()).toMatchObject({
      synced: true,
      lists: 1,
      resourceVersion: server.resourceVersion,
    });
    expect(informer.kind).toBe("Service");
    expect(informer.server).toBe(server.url);

    // A late handler gets the cached objects and onSynced at once.
    const late = new Recorder();
    informer.addHandler(late);
    expect(late.events.slice().sort()).toEqual(
      [
        `add default/a@${a.metadata?.resourceVersion}`,
        `add other/b@${b.metadata?.resourceVersion}`,
        "synced",
      ].sort(),
    );
    expect(late.events.at(-1)).toBe("synced");
  });

  it("delivers an empty initial list as just onSynced, and start() is idempotent", async () => {
    const { rec, informer } = await setup();
    const p1 = informer.start();
    expect(informer.start()).toBe(p1);
    await p1;
    expect(rec.take()).toEqual(["synced"]);
  });

  it("pages through the list with limit and continue", async () => {
    const { server, rec, informer } = await setup({ pageSize: 2 });
    for (const n of ["a", "b", "c", "d", "e"]) server.add("services", svc(n));
    const listRv = server.resourceVersion;
    await informer.start();
    const lists = server.requestsOf("list");
    expect(lists).toHaveLength(3);
    expect(lists.map((r) => r.query.get("limit"))).toEqual(["2", "2", "2"]);
    expect(lists[0]!.query.has("continue")).toBe(false);
    expect(lists[1]!.query.get("continue")).toBeTruthy();
    expect(lists[2]!.query.get("continue")).toBeTruthy();
    expect(rec.take()).toHaveLength(6);
    expect(informer.list()).toHaveLength(5);
    await watching(informer, server);
    expect(server.requestsOf("watch")[0]!.query.get("resourceVersion")).toBe(listRv);
  });

  it("lists again in one request when a continue token expired", async () => {
    const { server, rec, informer } = await setup({ pageSize: 2 });
    for (const n of ["a", "b", "c"]) server.add("services", svc(n));
    server.failNext(1, {
      status: 410,
      on: "continue",
      message: "The provided continue parameter is too old",
    });
    await informer.start();
    const lists = server.requestsOf("list");
    expect(lists.map((r) => [r.query.get("limit"), r.query.has("continue")])).toEqual([
      ["2", false],
      ["2", true],
      [null, false],
    ]);
    expect(rec.take()).toHaveLength(4);
    expect(informer.list()).toHaveLength(3);
  });

  it("passes label and field selectors to list and watch, and sees objects leave the selection", async () => {
    const { server, rec, informer } = await setup({
      labelSelector: "app=web",
      fieldSelector: "metadata.namespace=default",
    });
    const web = server.add("services", svc("web", { metadata: { name: "web", labels: { app: "web" } } }));
    server.add("services", svc("db", { metadata: { name: "db", labels: { app: "db" } } }));
    server.add("services", svc("web", { metadata: { name: "web", labels: { app: "web" } } }, "other"));
    await informer.start();
    expect(informer.list().map(objectKey)).toEqual(["default/web"]);
    await watching(informer, server);
    for (const r of [server.requestsOf("list")[0]!, server.requestsOf("watch")[0]!]) {
      expect(r.query.get("labelSelector")).toBe("app=web");
      expect(r.query.get("fieldSelector")).toBe("metadata.namespace=default");
    }
    rec.take();
    const moved = server.modify(
      "services",
      svc("web", { metadata: { name: "web", labels: { app: "api" } } }),
    );
    // onDelete carries the last version delivered (the one that still matched).
    await rec.seen(`delete default/web@${web.metadata?.resourceVersion}`);
    expect(informer.status().resourceVersion).toBe(moved.metadata?.resourceVersion);
    const joined = server.modify("services", svc("db", { metadata: { name: "db", labels: { app: "web" } } }));
    await rec.seen(`add default/db@${joined.metadata?.resourceVersion}`);
    expect(informer.list().map(objectKey)).toEqual(["default/db"]);
  });

  it("watches one namespace through the namespaced path", async () => {
    const { server, informer } = await setup({ namespace: "team-a" });
    server.add("services", svc("x", {}, "team-a"));
    server.add("services", svc("y", {}, "team-b"));
    await informer.start();
    expect(informer.list().map(objectKey)).toEqual(["team-a/x"]);
    expect(server.requestsOf("list")[0]!.path).toBe("/api/v1/namespaces/team-a/services");
  });

  it("keeps indexes for consumers", async () => {
    server = await FakeApiServer.start({ resources: [KUBE_RESOURCES.endpointSlices] });
    const informer = new Informer<KubeObject>({
      resource: KUBE_RESOURCES.endpointSlices,
      kubeConfig: server.kubeConfig(),
      clock: new FakeClock(),
      indexers: { namespace: indexByNamespace, service: indexByLabel(LABEL_SERVICE_NAME) },
    });
    informers.push(informer);
    const mk = (name: string, service: string) => ({
      metadata: { name, labels: { [LABEL_SERVICE_NAME]: service } },
      addressType: "IPv4",
      endpoints: [],
    });
    server.add("endpointslices", mk("web-1", "web"));
    server.add("endpointslices", mk("web-2", "web"));
    server.add("endpointslices", mk("db-1", "db"));
    await informer.start();
    expect(informer.byIndex("service", "default/web").map(objectKey).sort()).toEqual([
      "default/web-1",
      "default/web-2",
    ]);
    expect(informer.get("default/db-1")?.kind).toBe("EndpointSlice");
    expect(informer.get("default/db-1")?.apiVersion).toBe("discovery.k8s.io/v1");
    await watching(informer, server);
    server.modify("endpointslices", mk("web-2", "db"));
    await waitFor(() => informer.byIndex("service", "default/db").length === 2, "index update");
    expect(informer.store.byIndex("service", "default/web").map(objectKey)).toEqual(["default/web-1"]);
  });
});

describe("Informer: watch", () => {
  it("opens the watch from the list's resourceVersion with bookmarks and a 5-10 min timeout", async () => {
    const { server, informer } = await setup({ random: () => 0.999 });
    server.add("services", svc("a"));
    await informer.start();
    await watching(informer, server);
    const q = server.requestsOf("watch")[0]!.query;
    expect(q.get("watch")).toBe("true");
    expect(q.get("allowWatchBookmarks")).toBe("true");
    expect(q.get("resourceVersion")).toBe(server.resourceVersion);
    const timeout = Number(q.get("timeoutSeconds"));
    expect(timeout).toBeGreaterThanOrEqual(300);
    expect(timeout).toBeLessThan(600);
    expect(timeout).toBe(599);
  });

  it("delivers added, modified and deleted events in order", async () => {
    const { server, rec, informer, registry } = await setup();
    server.add("services", svc("a"));
    await informer.start();
    await watching(informer, server);
    rec.take();
    const b = server.add("services", svc("b"));
    const a2 = server.modify("services", svc("a", { spec: { clusterIP: "10.0.0.2" } }));
    const b2 = server.modify("services", svc("b", { spec: { clusterIP: "10.0.0.3" } }));
    server.remove("services", "default/a");
    const c = server.add("services", svc("c"));
    await rec.seen(`add default/c@${c.metadata?.resourceVersion}`);
    const rv = (o: KubeObject) => o.metadata?.resourceVersion;
    expect(rec.take()).toEqual([
      `add default/b@${rv(b)}`,
      `update default/a@${Number(rv(a2)) - 2}->${rv(a2)}`,
      `update default/b@${rv(b)}->${rv(b2)}`,
      // onDelete carries the last version delivered.
      `delete default/a@${rv(a2)}`,
      `add default/c@${rv(c)}`,
    ]);
    expect(informer.list().map(objectKey).sort()).toEqual(["default/b", "default/c"]);
    expect(informer.get("default/b")?.spec?.clusterIP).toBe("10.0.0.3");
    expect(informer.status().resourceVersion).toBe(rv(c));
    expect(await metric(registry, "worknode_informer_events_total", { type: "ADDED" })).toBe(2);
    expect(await metric(registry, "worknode_informer_events_total", { type: "MODIFIED" })).toBe(2);
    expect(await metric(registry, "worknode_informer_events_total", { type: "DELETED" })).toBe(1);
  });

  it("treats MODIFIED of an unknown key as add, ignores DELETED of an unknown key, ADDED of a known key as update", async () => {
    const { server, rec, informer } = await setup();
    server.add("services", svc("a"));
    await informer.start();
    await watching(informer, server);
    rec.take();
    const ev = (type: string, name: string, rv: string) =>
      `${JSON.stringify({ type, object: { kind: "Service", apiVersion: "v1", metadata: { name, namespace: "default", resourceVersion: rv } } })}\n`;
    server.sendRaw(
      ev("MODIFIED", "ghost", "5001") + ev("DELETED", "nobody", "5002") + ev("ADDED", "a", "5003"),
    );
    // The same resourceVersion again is a duplicate and is dropped.
    server.sendRaw(ev("MODIFIED", "a", "5003"));
    server.sendRaw(ev("MODIFIED", "sentinel", "5004"));
    await rec.seen("add default/sentinel@5004");
    expect(rec.take()).toEqual([
      "add default/ghost@5001",
      `update default/a@${server.list("services")[0]!.metadata?.resourceVersion}->5003`,
      "add default/sentinel@5004",
    ]);
    expect(informer.status().resourceVersion).toBe("5004");
  });

  it("reports objects without a name through onInvalid and keeps going", async () => {
    const { server, rec, informer } = await setup();
    await informer.start();
    await watching(informer, server);
    rec.take();
    server.sendRaw(
      `${JSON.stringify({ type: "ADDED", object: { metadata: { resourceVersion: "7000" } } })}\n`,
    );
    const b = server.add("services", svc("b"));
    await rec.seen(`add default/b@${b.metadata?.resourceVersion}`);
    expect(rec.take()).toEqual(["invalid", `add default/b@${b.metadata?.resourceVersion}`]);
  });

  it("advances the resourceVersion on bookmarks without calling handlers and re-watches from it", async () => {
    const { server, rec, informer, registry } = await setup();
    await informer.start();
    await watching(informer, server);
    rec.take();
    server.add("endpointslices", { metadata: { name: "unrelated" } }); // bumps the global resourceVersion
    server.add("endpointslices", { metadata: { name: "unrelated-2" } });
    const rvBefore = informer.status().resourceVersion;
    server.bookmark("services");
    await waitFor(() => informer.status().resourceVersion === server.resourceVersion, "bookmark");
    expect(informer.status().resourceVersion).not.toBe(rvBefore);
    expect(rec.take()).toEqual([]);
    expect(await metric(registry, "worknode_informer_events_total", { type: "BOOKMARK" })).toBe(1);
    // The server ends the watch (its timeout): the informer re-watches at once from the bookmark.
    server.endWatches();
    await watching(informer, server, 2);
    expect(server.requestsOf("watch")[1]!.query.get("resourceVersion")).toBe(server.resourceVersion);
    expect(await metric(registry, "worknode_informer_watch_restarts_total", { reason: "closed" })).toBe(1);
  });

  it("re-watches at once when the server ends a watch that delivered events", async () => {
    const { server, rec, informer } = await setup();
    await informer.start();
    await watching(informer, server);
    const a = server.add("services", svc("a"));
    await rec.seen(`add default/a@${a.metadata?.resourceVersion}`);
    server.endWatches();
    // No clock advance: the re-watch needed no backoff.
    await watching(informer, server, 2);
    expect(informer.status().lastError).toBeUndefined();
    const b = server.add("services", svc("b"));
    await rec.seen(`add default/b@${b.metadata?.resourceVersion}`);
  });

  it("treats a stream that ends inside an event as an error and re-watches from the last event", async () => {
    const { server, rec, informer, clock } = await setup();
    await informer.start();
    await watching(informer, server);
    rec.take();
    const a = server.add("services", svc("a"));
    await rec.seen(`add default/a@${a.metadata?.resourceVersion}`);
    server.sendRaw('{"type":"ADDED","object":{"metadata":');
    server.endWatches();
    await inBackoff(informer);
    expect(informer.status().lastError).toMatch(/ended inside an event/);
    await clock.advance(BACKOFF.initialMs);
    await watching(informer, server, 2);
    expect(server.requestsOf("watch")[1]!.query.get("resourceVersion")).toBe(a.metadata?.resourceVersion);
    expect(rec.take()).toEqual([`add default/a@${a.metadata?.resourceVersion}`]);
  });

  it("backs off when a watch ends at once without any event", async () => {
    const { server, informer, clock } = await setup();
    await informer.start();
    await watching(informer, server);
    server.endWatches();
    await inBackoff(informer);
    expect(server.requestsOf("watch")).toHaveLength(1);
    await clock.advance(BACKOFF.initialMs);
    await watching(informer, server, 2);
  });
});

describe("Informer: failures", () => {
  it("reconnects after the connection is cut mid-stream, without losing or repeating events", async () => {
    const { server, rec, informer, clock, registry } = await setup();
    const a = server.add("services", svc("a"));
    await informer.start();
    await watching(informer, server);
    rec.take();
    const b = server.add("services", svc("b"));
    await rec.seen(`add default/b@${b.metadata?.resourceVersion}`);
    server.cutWatches("now");
    await inBackoff(informer);
    // Changes while disconnected.
    const c = server.add("services", svc("c"));
    const a2 = server.modify("services", svc("a", { spec: { clusterIP: "10.9.9.9" } }));
    server.remove("services", "default/b");
    await clock.advance(BACKOFF.initialMs);
    await watching(informer, server, 2);
    expect(server.requestsOf("watch")[1]!.query.get("resourceVersion")).toBe(b.metadata?.resourceVersion);
    const d = server.add("services", svc("d"));
    await rec.seen(`add default/d@${d.metadata?.resourceVersion}`);
    expect(rec.take()).toEqual([
      `add default/b@${b.metadata?.resourceVersion}`,
      `add default/c@${c.metadata?.resourceVersion}`,
      `update default/a@${a.metadata?.resourceVersion}->${a2.metadata?.resourceVersion}`,
      `delete default/b@${b.metadata?.resourceVersion}`,
      `add default/d@${d.metadata?.resourceVersion}`,
    ]);
    expect(informer.list().map(objectKey).sort()).toEqual(["default/a", "default/c", "default/d"]);
    expect(await metric(registry, "worknode_informer_watch_restarts_total", { reason: "error" })).toBe(1);
    expect(server.requestsOf("list")).toHaveLength(1);
  });

  it("reconnects after the connection is cut in the middle of a JSON object, delivering it once", async () => {
    const { server, rec, informer, clock } = await setup();
    server.add("services", svc("a"));
    await informer.start();
    await watching(informer, server);
    rec.take();
    server.cutWatches("mid-event");
    const big = server.modify(
      "services",
      svc("a", { metadata: { name: "a", annotations: { blob: "x".repeat(200_000) } } }),
    );
    await inBackoff(informer);
    expect(rec.events).toEqual([]);
    expect(informer.status().lastError).toBeTruthy();
    await clock.advance(BACKOFF.initialMs);
    await watching(informer, server, 2);
    const after = server.add("services", svc("z"));
    await rec.seen(`add default/z@${after.metadata?.resourceVersion}`);
    expect(rec.take()).toEqual([
      `update default/a@${Number(big.metadata?.resourceVersion) - 1}->${big.metadata?.resourceVersion}`,
      `add default/z@${after.metadata?.resourceVersion}`,
    ]);
    expect(informer.get("default/a")?.metadata?.annotations?.blob).toHaveLength(200_000);
  });

  it("relists on an expired resourceVersion and emits the missed deletes, updates and adds", async () => {
    const { server, rec, informer, clock, registry } = await setup();
    server.add("services", svc("keep"));
    const change = server.add("services", svc("change"));
    const gone = server.add("services", svc("gone"));
    await informer.start();
    await watching(informer, server);
    rec.take();
    server.cutWatches("now");
    await inBackoff(informer);
    const changed = server.modify("services", svc("change", { spec: { clusterIP: "10.1.1.1" } }));
    server.remove("services", "default/gone");
    const fresh = server.add("services", svc("fresh"));
    server.compact();
    await clock.advance(BACKOFF.initialMs);
    await waitFor(() => informer.status().lists === 2, "relist");
    expect(rec.take()).toEqual([
      `delete default/gone@${gone.metadata?.resourceVersion}`,
      `update default/change@${change.metadata?.resourceVersion}->${changed.metadata?.resourceVersion}`,
      `add default/fresh@${fresh.metadata?.resourceVersion}`,
    ]);
    expect(informer.list().map(objectKey).sort()).toEqual([
      "default/change",
      "default/fresh",
      "default/keep",
    ]);
    await watching(informer, server, 3);
    expect(server.requestsOf("watch")[2]!.query.get("resourceVersion")).toBe(server.resourceVersion);
    expect(await metric(registry, "worknode_informer_relists_total", {})).toBe(1);
    expect(await metric(registry, "worknode_informer_watch_restarts_total", { reason: "expired" })).toBe(1);
    // Still live after the relist.
    const late = server.add("services", svc("late"));
    await rec.seen(`add default/late@${late.metadata?.resourceVersion}`);
  });

  it("relists at once on an HTTP 410 answer to the watch", async () => {
    const { server, rec, informer } = await setup();
    await informer.start();
    await watching(informer, server);
    const first = server.add("services", svc("first"));
    await rec.seen(`add default/first@${first.metadata?.resourceVersion}`);
    server.failNext(1, { status: 410, on: "watch", message: "too old resource version: 1 (2)" });
    server.endWatches();
    // No clock advance needed: an expiry relists without backoff.
    await waitFor(() => informer.status().lists === 2, "relist");
    await watching(informer, server, 3);
    const x = server.add("services", svc("x"));
    await rec.seen(`add default/x@${x.metadata?.resourceVersion}`);
  });

  it("relists at once when an ERROR 410 event arrives mid-watch", async () => {
    const { server, rec, informer, registry } = await setup();
    await informer.start();
    await watching(informer, server);
    server.errorEvent({ code: 410, reason: "Expired", message: "too old resource version: 5 (10)" });
    await waitFor(() => informer.status().lists === 2, "relist");
    await watching(informer, server, 2);
    const x = server.add("services", svc("x"));
    await rec.seen(`add default/x@${x.metadata?.resourceVersion}`);
    expect(await metric(registry, "worknode_informer_watch_restarts_total", { reason: "expired" })).toBe(1);
  });

  it("backs off when relisting does not cure repeated expiries", async () => {
    const { server, informer, clock } = await setup();
    await informer.start();
    await watching(informer, server);
    server.failNext(2, { status: 410, on: "watch" });
    server.errorEvent({ code: 410, reason: "Expired", message: "too old resource version" });
    // expired -> relist at once -> watch 410 -> relist (after backoff) -> watch 410 -> backoff
    await waitFor(
      () => informer.status().lists === 2 && informer.status().phase === "backoff",
      "first backoff",
    );
    expect(server.requestsOf("watch")).toHaveLength(2);
    await clock.advance(1000);
    await waitFor(
      () => informer.status().lists === 3 && informer.status().phase === "backoff",
      "second backoff",
    );
    await clock.advance(2000);
    await waitFor(() => informer.status().lists === 4, "third list");
    await watching(informer, server, 4);
  });

  it("emits delete + add when a relist finds a name taken by a new object (new uid)", async () => {
    const { server, rec, informer, clock } = await setup();
    const old = server.add("services", svc("a"));
    await informer.start();
    await watching(informer, server);
    rec.take();
    server.cutWatches("now");
    await inBackoff(informer);
    server.remove("services", "default/a");
    const recreated = server.add("services", svc("a"));
    server.compact();
    expect(recreated.metadata?.uid).not.toBe(old.metadata?.uid);
    await clock.advance(BACKOFF.initialMs);
    await waitFor(() => informer.status().lists === 2, "relist");
    expect(rec.take()).toEqual([
      `delete default/a@${old.metadata?.resourceVersion}`,
      `add default/a@${recreated.metadata?.resourceVersion}`,
    ]);
    expect(informer.get("default/a")?.metadata?.uid).toBe(recreated.metadata?.uid);
  });

  it("backs off exponentially on 500 errors, then recovers", async () => {
    const { server, rec, informer, clock } = await setup();
    server.add("services", svc("a"));
    server.failNext(3, { status: 500, on: "list" });
    let synced = false;
    const started = informer.start().then(() => {
      synced = true;
    });
    const lists = () => server.requestsOf("list").length;
    for (const [attempt, delay] of [
      [1, 1000],
      [2, 2000],
      [3, 4000],
    ] as const) {
      await waitFor(
        () => lists() === attempt && informer.status().phase === "backoff",
        `list attempt ${attempt}`,
      );
      expect(informer.status().lastError).toContain("500");
      await clock.advance(delay - 1);
      expect(lists()).toBe(attempt);
      await clock.advance(1);
    }
    await started;
    expect(synced).toBe(true);
    expect(rec.take()).toEqual([
      `add default/a@${server.list("services")[0]!.metadata?.resourceVersion}`,
      "synced",
    ]);
    expect(lists()).toBe(4);
  });

  it("backs off on watch errors (5xx, ERROR events, garbage) and resets the backoff after a healthy watch", async () => {
    const { server, rec, informer, clock, registry } = await setup();
    await informer.start();
    await watching(informer, server);
    rec.take();
    // A healthy watch that then gets an ERROR 500 event: first delay again.
    const a = server.add("services", svc("a"));
    await rec.seen(`add default/a@${a.metadata?.resourceVersion}`);
    server.errorEvent({ code: 500, reason: "InternalError", message: "etcd hiccup" });
    await inBackoff(informer);
    expect(informer.status().lastError).toContain("etcd hiccup");
    // The next watch request fails with 503 twice: delays 1000 (reset), 2000, 4000.
    server.failNext(2, { status: 503, on: "watch" });
    await clock.advance(1000);
    await waitFor(
      () => server.requestsOf("watch").length === 2 && informer.status().phase === "backoff",
      "503 #1",
    );
    await clock.advance(1999);
    expect(server.requestsOf("watch")).toHaveLength(2);
    await clock.advance(1);
    await waitFor(
      () => server.requestsOf("watch").length === 3 && informer.status().phase === "backoff",
      "503 #2",
    );
    await clock.advance(4000);
    await watching(informer, server, 4);
    // Garbage in the stream: events before it count, the watch restarts from the last good one.
    const b = server.add("services", svc("b"));
    server.sendRaw("{not json}\n");
    await inBackoff(informer);
    expect(informer.status().lastError).toMatch(/invalid JSON/);
    // The watch that delivered b was healthy, so the delay is back at 1000.
    await clock.advance(1000);
    await watching(informer, server, 5);
    expect(server.requestsOf("watch")[4]!.query.get("resourceVersion")).toBe(b.metadata?.resourceVersion);
    const c = server.add("services", svc("c"));
    await rec.seen(`add default/c@${c.metadata?.resourceVersion}`);
    expect(rec.take()).toEqual([
      `add default/a@${a.metadata?.resourceVersion}`,
      `add default/b@${b.metadata?.resourceVersion}`,
      `add default/c@${c.metadata?.resourceVersion}`,
    ]);
    expect(await metric(registry, "worknode_informer_watch_restarts_total", { reason: "error" })).toBe(4);
  });

  it("restarts a watch that went silent (watchdog) and catches up", async () => {
    const { server, rec, informer, clock, registry } = await setup({ watchdogGraceMs: 30_000 });
    await informer.start();
    await watching(informer, server);
    server.hangWatches();
    const a = server.add("services", svc("a"));
    // timeoutSeconds is 300 (random = 0): silence up to 300 s + grace is tolerated.
    await clock.advance(329_999);
    expect(informer.status().phase).toBe("watching");
    expect(rec.events).toEqual(["synced"]);
    await clock.advance(1);
    await inBackoff(informer);
    expect(informer.status().lastError).toMatch(/no data for 330000 ms/);
    await clock.advance(BACKOFF.initialMs);
    await rec.seen(`add default/a@${a.metadata?.resourceVersion}`);
    expect(await metric(registry, "worknode_informer_watch_restarts_total", { reason: "stalled" })).toBe(1);
    await waitFor(() => server.activeWatches() === 1, "hung watch closed");
  });

  it("aborts a request whose answer never comes (request timeout)", async () => {
    const { server, informer, clock } = await setup({ requestTimeoutMs: 10_000 });
    server.failNext(1, { hang: true, on: "list" });
    const started = informer.start();
    await waitFor(() => server.requestsOf("list").length === 1, "first list");
    await clock.advance(10_000);
    await inBackoff(informer);
    expect(informer.status().lastError).toMatch(/no data for 10000 ms/);
    await clock.advance(BACKOFF.initialMs);
    await started;
    expect(server.requestsOf("list")).toHaveLength(2);
  });

  it("keeps retrying on 401, and start() rejects after syncTimeoutMs while it goes on", async () => {
    const { server, informer, clock } = await setup({ syncTimeoutMs: 5_000 }, { token: "right" });
    // The informer's kubeconfig carries the server token; use one with the wrong token instead.
    const wrong = new Informer<Service>({
      resource: KUBE_RESOURCES.services,
      kubeConfig: server.kubeConfig({ token: "wrong" }),
      clock,
      random: () => 0,
      backoff: BACKOFF,
      syncTimeoutMs: 5_000,
    });
    informers.push(wrong as unknown as Informer<KubeObject>);
    const result = wrong.start().catch((e: unknown) => e);
    await inBackoff(wrong);
    expect(wrong.status().lastError).toContain("401");
    await clock.advance(1000);
    await waitFor(() => server.requestsOf("list").length >= 2, "retry");
    await clock.advance(4000);
    const err = await result;
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toContain("401");
    expect(wrong.hasSynced()).toBe(false);
    expect(["listing", "backoff"]).toContain(wrong.status().phase);
    // The informer with the right token syncs.
    await informer.start();
    expect(server.requestsOf("list").some((r) => r.headers.authorization === "Bearer right")).toBe(true);
  });

  it("isolates a throwing handler", async () => {
    const { server, rec, informer } = await setup();
    informer.addHandler({
      onAdd() {
        throw new Error("handler bug");
      },
    });
    await informer.start();
    await watching(informer, server);
    const a = server.add("services", svc("a"));
    await rec.seen(`add default/a@${a.metadata?.resourceVersion}`);
    expect(informer.status().phase).toBe("watching");
  });
});

describe("Informer: stop", () => {
  it("stops everything: no open connections, no timers, no requests, no events", async () => {
    const { server, rec, informer, clock } = await setup();
    await informer.start();
    await watching(informer, server);
    await informer.stop();
    expect(informer.status().phase).toBe("stopped");
    await waitFor(async () => server.activeWatches() === 0 && (await server.connections()) === 0, "closed");
    expect(clock.pendingTimers()).toBe(0);
    const requests = server.requests.length;
    server.add("services", svc("after"));
    server.endWatches();
    await clock.advance(3_600_000);
    expect(server.requests.length).toBe(requests);
    expect(rec.take()).toEqual(["synced"]);
    await informer.stop(); // idempotent
    await expect(informer.start()).resolves.toBeUndefined(); // already started: same (resolved) promise
  });

  it("stop() during backoff or a hanging list ends at once; start() then rejects with AbortedError", async () => {
    const { server, informer, clock } = await setup();
    server.failNext(1, { hang: true, on: "list" });
    const started = informer.start().catch((e: unknown) => e);
    await waitFor(() => server.requestsOf("list").length === 1, "list");
    await informer.stop();
    expect(await started).toBeInstanceOf(AbortedError);
    expect(clock.pendingTimers()).toBe(0);
    await clock.advance(600_000);
    expect(server.requestsOf("list")).toHaveLength(1);
  });

  it("start() after stop() without a start rejects", async () => {
    const { informer } = await setup();
    await informer.stop();
    await expect(informer.start()).rejects.toBeInstanceOf(AbortedError);
  });

  it("a removed handler gets no more events", async () => {
    const { server, rec, informer } = await setup();
    const other = new Recorder();
    const remove = informer.addHandler(other);
    await informer.start();
    await watching(informer, server);
    remove();
    const a = server.add("services", svc("a"));
    await rec.seen(`add default/a@${a.metadata?.resourceVersion}`);
    expect(other.events).toEqual(["synced"]);
  });
});
