/**
 * worknode's own Informer against a real kube-apiserver (built from source by the
 * control-plane harness), reached through a TCP proxy that can cut, refuse and count
 * connections: initial list, live watch, reconnection after broken connections and
 * an unreachable server, a half-dead connection, an expired resourceVersion, label
 * selectors and a clean stop.
 *
 * The informers' debug logs are printed for a failed test, or for every test when
 * `$WORKNODE_INFORMER_TEST_LOGS` is set.
 */
import {
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1EndpointSlice,
  type V1Service,
} from "@kubernetes/client-node";
import {
  AbortedError,
  type ConfigMap,
  createLogger,
  type EndpointSlice,
  Informer,
  type InformerOptions,
  KUBE_RESOURCES,
  type KubeObject,
  LABEL_SERVICE_NAME,
  type Logger,
  type ObjectEventHandler,
  objectKey,
  type Service,
} from "@worknode/core";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, onTestFailed } from "vitest";
import { type ControlPlane, startControlPlane } from "../src/control-plane.js";
import { ensureControlPlaneBinaries } from "../src/go-build.js";
import { TcpProxy } from "./helpers/tcp-proxy.js";

// ---------------------------------------------------------------------------
// Helpers

/** Polls `predicate` every 50 ms until it holds; fails after `timeoutMs` with `describe()`. */
async function waitFor(
  what: string,
  predicate: () => boolean | Promise<boolean>,
  options: { timeoutMs?: number; describe?: () => unknown } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) {
      const detail = options.describe ? `; state: ${JSON.stringify(options.describe())}` : "";
      throw new Error(`timed out waiting for ${what}${detail}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One readable line per callback: `add name@rv`, `update name@old->new`, `delete name@rv`, `synced`. */
class Recorder implements ObjectEventHandler<KubeObject> {
  readonly events: string[] = [];
  onAdd(obj: KubeObject): void {
    this.events.push(`add ${obj.metadata?.name}@${obj.metadata?.resourceVersion}`);
  }
  onUpdate(oldObj: KubeObject, newObj: KubeObject): void {
    this.events.push(
      `update ${newObj.metadata?.name}@${oldObj.metadata?.resourceVersion}->${newObj.metadata?.resourceVersion}`,
    );
  }
  onDelete(obj: KubeObject): void {
    this.events.push(`delete ${obj.metadata?.name}@${obj.metadata?.resourceVersion}`);
  }
  onSynced(): void {
    this.events.push("synced");
  }
  onInvalid(): void {
    this.events.push("invalid");
  }
  /** Waits until `line` was recorded. */
  async seen(line: string, timeoutMs = 30_000): Promise<void> {
    await waitFor(`event "${line}"`, () => this.events.includes(line), {
      timeoutMs,
      describe: () => this.events,
    });
  }
}

/**
 * The events a correct informer must deliver for the writes made through it, in
 * the same `Recorder` format. Writes are sequential, so their resourceVersions (and
 * the watch events they cause) come in this order.
 */
class Journal {
  readonly entries: string[] = [];
  private readonly lastRv = new Map<string, string>();

  created(obj: KubeObject): void {
    const { name, rv } = nameAndRv(obj);
    this.entries.push(`add ${name}@${rv}`);
    this.lastRv.set(name, rv);
  }
  updated(obj: KubeObject): void {
    const { name, rv } = nameAndRv(obj);
    this.entries.push(`update ${name}@${this.lastRv.get(name)}->${rv}`);
    this.lastRv.set(name, rv);
  }
  deleted(name: string): void {
    this.entries.push(`delete ${name}@${this.lastRv.get(name)}`);
    this.lastRv.delete(name);
  }
  /** The last resourceVersion written for a live object. */
  rv(name: string): string | undefined {
    return this.lastRv.get(name);
  }
  /** Live objects as sorted `name@rv`. */
  live(): string[] {
    return [...this.lastRv].map(([name, rv]) => `${name}@${rv}`).sort();
  }
}

function nameAndRv(obj: KubeObject): { name: string; rv: string } {
  const name = obj.metadata?.name;
  const rv = obj.metadata?.resourceVersion;
  if (!name || !rv)
    throw new Error(`object without name or resourceVersion: ${JSON.stringify(obj.metadata)}`);
  return { name, rv };
}

function summary(objects: readonly KubeObject[]): string[] {
  return objects.map((o) => `${o.metadata?.name}@${o.metadata?.resourceVersion}`).sort();
}

/** The admin kubeconfig with every cluster's server URL replaced by `server` (credentials unchanged). */
function kubeConfigVia(admin: KubeConfig, server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: admin.clusters.map((c) => ({ ...c, server })),
    users: admin.users,
    contexts: admin.contexts,
    currentContext: admin.currentContext,
  });
  return kc;
}

/** Sum of a counter's values (all label sets), read from a registry. */
async function counterTotal(registry: Registry, name: string): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values.reduce((sum, v) => sum + v.value, 0);
}

function serviceBody(name: string, labels: Record<string, string> = {}): V1Service {
  return {
    metadata: { name, labels },
    spec: { ports: [{ name: "http", port: 80, targetPort: 8080, protocol: "TCP" }] },
  };
}

function sliceBody(name: string, serviceName: string | undefined, ip: string): V1EndpointSlice {
  return {
    metadata: { name, labels: serviceName ? { [LABEL_SERVICE_NAME]: serviceName } : {} },
    addressType: "IPv4",
    endpoints: [{ addresses: [ip], conditions: { ready: true } }],
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
  };
}

/** Compacts etcd's history up to `revision` (a resourceVersion), through its JSON gateway. */
async function compactEtcd(etcdClientPort: number, revision: string): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${etcdClientPort}/v3/kv/compaction`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ revision, physical: true }),
  });
  if (!res.ok) throw new Error(`etcd compaction failed: ${res.status} ${await res.text()}`);
}

const MERGE_PATCH = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
/** Fast restarts, so reconnection tests take seconds, not the production 0.8 s → 30 s backoff. */
const FAST_BACKOFF = { initialMs: 100, maxMs: 1_000, factor: 2, jitter: 0.2 };

// ---------------------------------------------------------------------------
// Suite

describe("Informer against a real kube-apiserver", () => {
  let cp: ControlPlane;
  let core: CoreV1Api;
  let discovery: DiscoveryV1Api;
  const namespaces: string[] = [];
  const informers: Array<Informer<KubeObject>> = [];
  const proxies: TcpProxy[] = [];
  let logLines: string[] = [];
  let failed = false;

  beforeAll(async () => {
    const binaries = await ensureControlPlaneBinaries();
    // ConfigMaps bypass the watch cache, so their watches read etcd directly and a compaction
    // makes an old resourceVersion expire (410) at once; Services and EndpointSlices keep the cache.
    cp = await startControlPlane({ binaries, apiserverArgs: ["--watch-cache-sizes=configmaps#0"] });
    core = cp.adminKubeConfig.makeApiClient(CoreV1Api);
    discovery = cp.adminKubeConfig.makeApiClient(DiscoveryV1Api);
  }, 3_600_000);

  beforeEach(() => {
    // Reset here, not in afterEach: onTestFailed callbacks run after the afterEach hooks.
    logLines = [];
  });

  afterEach(async () => {
    if (process.env.WORKNODE_INFORMER_TEST_LOGS) console.error(logLines.join(""));
    for (const inf of informers.splice(0)) await inf.stop();
    for (const proxy of proxies.splice(0)) await proxy.close();
  });

  afterAll(async () => {
    try {
      if (cp) {
        for (const name of namespaces) await core.deleteNamespace({ name }).catch(() => {});
      }
    } finally {
      if (cp) await cp.stop({ keepLogs: failed });
      if (failed && cp) console.error(`control plane logs kept in ${cp.logsDir}`);
    }
  });

  /** Marks the run failed (keeps logs) and prints the informers' debug logs of the failed test. */
  const track = () =>
    onTestFailed(() => {
      failed = true;
      console.error(`informer logs of the failed test:\n${logLines.join("")}`);
    });

  const logger = (): Logger =>
    createLogger({ level: "debug", destination: { write: (line: string) => void logLines.push(line) } });

  async function freshNamespace(prefix: string): Promise<string> {
    const name = `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
    await core.createNamespace({ body: { metadata: { name } } });
    namespaces.push(name);
    return name;
  }

  async function proxy(): Promise<TcpProxy> {
    const url = new URL(cp.server);
    const p = await TcpProxy.start({ host: url.hostname, port: Number(url.port) });
    proxies.push(p);
    return p;
  }

  /** An informer with fast restarts and captured debug logs, stopped after the test. */
  function informer<T extends KubeObject>(
    options: Pick<InformerOptions<T>, "resource" | "namespace" | "kubeConfig"> & Partial<InformerOptions<T>>,
  ): Informer<T> {
    const inf = new Informer<T>({
      backoff: FAST_BACKOFF,
      requestTimeoutMs: 15_000,
      syncTimeoutMs: 60_000,
      logger: logger(),
      ...options,
    });
    informers.push(inf as unknown as Informer<KubeObject>);
    return inf;
  }

  /** Service writes in one namespace, journaled. */
  function services(namespace: string, journal = new Journal()) {
    return {
      journal,
      async create(name: string, labels: Record<string, string> = {}): Promise<V1Service> {
        const svc = await core.createNamespacedService({ namespace, body: serviceBody(name, labels) });
        journal.created(svc as KubeObject);
        return svc;
      },
      async label(name: string, labels: Record<string, string>): Promise<V1Service> {
        const svc = await core.patchNamespacedService(
          { name, namespace, body: { metadata: { labels } } },
          MERGE_PATCH,
        );
        journal.updated(svc as KubeObject);
        return svc;
      },
      async delete(name: string): Promise<void> {
        await core.deleteNamespacedService({ name, namespace });
        journal.deleted(name);
      },
      /** The server's services as sorted `name@rv`. */
      async server(): Promise<string[]> {
        const list = await core.listNamespacedService({ namespace });
        return summary(list.items as KubeObject[]);
      },
    };
  }

  /** Waits until the informer's cache holds exactly what the API server lists. */
  async function converged(inf: Informer<Service>, serverState: () => Promise<string[]>): Promise<string[]> {
    let last: string[] = [];
    await waitFor(
      "the informer's cache to equal the API server's state",
      async () => {
        last = await serverState();
        return JSON.stringify(summary(inf.list())) === JSON.stringify(last);
      },
      { describe: () => ({ informer: summary(inf.list()), server: last, status: inf.status() }) },
    );
    return last;
  }

  it("lists pre-existing services, resolves start() and reports synced after their adds", async () => {
    track();
    const ns = await freshNamespace("inf-list");
    const svcs = services(ns);
    const created = [await svcs.create("a"), await svcs.create("b"), await svcs.create("c")];
    const p = await proxy();
    const inf = informer<Service>({
      resource: KUBE_RESOURCES.services,
      namespace: ns,
      kubeConfig: kubeConfigVia(cp.adminKubeConfig, p.url()),
    });
    const rec = new Recorder();
    inf.addHandler(rec);
    expect(inf.hasSynced()).toBe(false);

    await inf.start();

    expect(inf.hasSynced()).toBe(true);
    expect(inf.server).toBe(p.url());
    expect(p.acceptedConnections).toBeGreaterThanOrEqual(1);
    // Three adds (list order is the server's), then synced, nothing else.
    expect(rec.events).toHaveLength(4);
    expect(rec.events.slice(0, 3).sort()).toEqual(svcs.journal.entries.slice().sort());
    expect(rec.events[3]).toBe("synced");
    // The cached objects are the server's, with kind/apiVersion filled in (list items lack them).
    for (const svc of created) {
      const cached = inf.get(`${ns}/${svc.metadata?.name}`);
      expect(cached?.metadata?.uid).toBe(svc.metadata?.uid);
      expect(cached?.spec?.clusterIP).toBe(svc.spec?.clusterIP);
      expect(cached?.kind).toBe("Service");
      expect(cached?.apiVersion).toBe("v1");
    }
    const status = inf.status();
    expect(status.synced).toBe(true);
    expect(status.objects).toBe(3);
    expect(status.lists).toBe(1);
    expect(status.resourceVersion).toMatch(/^\d+$/);
    // A handler attached later gets the cache replayed, then synced.
    const late = new Recorder();
    inf.addHandler(late);
    expect(late.events.slice(0, 3).sort()).toEqual(rec.events.slice(0, 3).sort());
    expect(late.events[3]).toBe("synced");
  });

  it("delivers live creates, updates and deletes in order, and its cache matches the server", async () => {
    track();
    const ns = await freshNamespace("inf-watch");
    const svcs = services(ns);
    await svcs.create("existing");
    const p = await proxy();
    const inf = informer<Service>({
      resource: KUBE_RESOURCES.services,
      namespace: ns,
      kubeConfig: kubeConfigVia(cp.adminKubeConfig, p.url()),
    });
    const rec = new Recorder();
    const objects: Array<{ type: string; obj: Service }> = [];
    inf.addHandler(rec);
    inf.addHandler({
      onAdd: (obj) => objects.push({ type: "add", obj }),
      onUpdate: (_old, obj) => objects.push({ type: "update", obj }),
      onDelete: (obj) => objects.push({ type: "delete", obj }),
    });
    await inf.start();
    const afterSync = rec.events.length;
    objects.length = 0;

    const created = await svcs.create("web");
    await rec.seen(`add web@${created.metadata?.resourceVersion}`);
    const labelled = await svcs.label("web", { tier: "frontend" });
    await rec.seen(`update web@${created.metadata?.resourceVersion}->${labelled.metadata?.resourceVersion}`);
    expect(inf.get(`${ns}/web`)?.metadata?.labels).toEqual({ tier: "frontend" });
    await svcs.delete("web");
    await rec.seen(`delete web@${labelled.metadata?.resourceVersion}`);

    expect(rec.events.slice(afterSync)).toEqual(svcs.journal.entries.slice(1));
    // The delivered objects are the real ones.
    expect(objects.map((e) => e.type)).toEqual(["add", "update", "delete"]);
    expect(objects[0]?.obj.metadata?.uid).toBe(created.metadata?.uid);
    expect(objects[0]?.obj.spec?.clusterIP).toBe(created.spec?.clusterIP);
    expect(objects[1]?.obj.metadata?.labels).toEqual({ tier: "frontend" });
    expect(objects[2]?.obj.metadata?.uid).toBe(created.metadata?.uid);
    expect(inf.get(`${ns}/web`)).toBeUndefined();

    // Another create after the delete, then compare the cache with a direct list.
    await svcs.create("api", { tier: "backend" });
    const server = await converged(inf, svcs.server);
    expect(server).toEqual(svcs.journal.live());
    expect(summary(inf.list())).toEqual(server);
    expect(inf.status().objects).toBe(2);
    expect(inf.status().phase).toBe("watching");
    // Watch events came over the one watch connection; nothing forced a relist.
    expect(inf.status().lists).toBe(1);
  });

  it("reconnects by itself after cut connections and an unreachable server, delivering every change exactly once", async () => {
    track();
    const ns = await freshNamespace("inf-cut");
    const svcs = services(ns);
    for (const name of ["s0", "s1", "s2", "s3"]) await svcs.create(name);
    const p = await proxy();
    const registry = new Registry();
    const inf = informer<Service>({
      resource: KUBE_RESOURCES.services,
      namespace: ns,
      kubeConfig: kubeConfigVia(cp.adminKubeConfig, p.url()),
      metrics: registry,
    });
    const rec = new Recorder();
    inf.addHandler(rec);
    await inf.start();
    expect(rec.events.slice(0, 4).sort()).toEqual(svcs.journal.entries.slice().sort());
    expect(rec.events[4]).toBe("synced");
    const listed = svcs.journal.entries.length;
    /** Everything delivered after the initial list must equal the journal after it, in order. */
    const deliveredAfterList = () => rec.events.slice(listed + 1);
    const expectExactlyOnce = () => expect(deliveredAfterList()).toEqual(svcs.journal.entries.slice(listed));
    const restarts = () => counterTotal(registry, "worknode_informer_watch_restarts_total");

    // 1. Cut the idle watch (established: it just delivered an event).
    const beforeIdleCut = await svcs.create("before-idle-cut");
    await rec.seen(`add before-idle-cut@${beforeIdleCut.metadata?.resourceVersion}`);
    expect(p.openConnections).toBe(1);
    const watchesBefore = inf.status().watches;
    const restartsBefore = await restarts();
    expect(p.cutAll()).toBe(1);
    await waitFor(
      "a new watch through the proxy",
      () => inf.status().watches > watchesBefore && p.openConnections === 1,
      {
        describe: () => ({ status: inf.status(), open: p.openConnections }),
      },
    );
    expect(await restarts()).toBeGreaterThan(restartsBefore);
    expect(inf.status().lastError).toBeDefined();
    expect(deliveredAfterList()).toHaveLength(1); // a cut is not a change
    const afterIdleCut = await svcs.create("after-idle-cut");
    await rec.seen(`add after-idle-cut@${afterIdleCut.metadata?.resourceVersion}`);
    expectExactlyOnce();

    // 2. Cut connections while changes happen: at a varying moment after each round of
    // writes started (often mid-handshake), and as soon as the round's first event was
    // delivered, while the round's later writes are still being made (mid-stream).
    const cutsBefore = p.cutConnections;
    for (let k = 0; k < 6; k++) {
      const timer = setTimeout(() => p.cutAll(), 5 + 8 * k);
      const writes = (async () => {
        await svcs.create(`burst-${k}`);
        await svcs.label(`burst-${k}`, { round: String(k) });
        await svcs.label("s0", { round: String(k) });
        if (k % 2 === 1) await svcs.delete(`burst-${k}`);
      })();
      try {
        await waitFor(`burst-${k} delivered`, () => rec.events.some((e) => e.startsWith(`add burst-${k}@`)), {
          describe: () => ({ status: inf.status() }),
        });
        p.cutAll();
      } finally {
        clearTimeout(timer);
        await writes;
      }
    }
    expect(p.cutConnections - cutsBefore).toBeGreaterThanOrEqual(6);
    await converged(inf, svcs.server);
    expect(summary(inf.list())).toEqual(svcs.journal.live());
    expectExactlyOnce();

    // 3. The server is unreachable while changes happen: create 2, delete 1, update 1.
    await waitFor("the watch connection", () => p.openConnections === 1, {
      describe: () => ({ status: inf.status(), open: p.openConnections }),
    });
    p.pause("refuse");
    p.cutAll();
    const refusedBefore = p.refusedConnections;
    const eventsBefore = rec.events.length;
    await svcs.create("offline-1");
    await svcs.create("offline-2");
    await svcs.delete("s1");
    await svcs.label("s2", { offline: "true" });
    // It keeps trying (and failing) to connect; it cannot have seen any of the changes.
    await waitFor("two refused reconnection attempts", () => p.refusedConnections >= refusedBefore + 2, {
      describe: () => ({ status: inf.status(), refused: p.refusedConnections }),
    });
    expect(rec.events.length).toBe(eventsBefore);
    expect(inf.get(`${ns}/offline-1`)).toBeUndefined();
    expect(inf.get(`${ns}/s1`)).toBeDefined();
    expect(inf.status().lastError).toBeDefined();
    const restartsWhileOffline = await restarts();

    p.resume();
    await converged(inf, svcs.server);
    expect(summary(inf.list())).toEqual(svcs.journal.live());
    expectExactlyOnce();
    expect(rec.events.slice(eventsBefore)).toHaveLength(4);
    // It resumed the watch from its resourceVersion: no relist was needed.
    expect(inf.status().lists).toBe(1);
    expect(await counterTotal(registry, "worknode_informer_relists_total")).toBe(0);
    expect(await restarts()).toBeGreaterThanOrEqual(restartsWhileOffline);

    // 4. New connections hang (accepted, never answered) while changes happen, then go through.
    await waitFor("the watch connection", () => p.openConnections === 1);
    p.pause("hold");
    p.cutAll();
    const heldBefore = rec.events.length;
    await svcs.create("held-1");
    await svcs.delete("offline-1");
    await waitFor("a held reconnection attempt", () => p.openConnections === 1, {
      describe: () => ({ status: inf.status(), open: p.openConnections }),
    });
    expect(rec.events.length).toBe(heldBefore);
    p.resume();
    await converged(inf, svcs.server);
    expect(rec.events.slice(heldBefore)).toHaveLength(2);
    expectExactlyOnce();

    // 5. It keeps delivering afterwards.
    const later = await svcs.create("after-resume");
    await rec.seen(`add after-resume@${later.metadata?.resourceVersion}`);
    const s3Rv = svcs.journal.rv("s3");
    const relabelled = await svcs.label("s3", { later: "yes" });
    await rec.seen(`update s3@${s3Rv}->${relabelled.metadata?.resourceVersion}`);
    await converged(inf, svcs.server);
    expectExactlyOnce();
    expect(rec.events.filter((e) => e === "synced")).toHaveLength(1);
    expect(inf.status().phase).toBe("watching");
  });

  it("detects a silent, half-dead watch connection with its watchdog and reconnects", async () => {
    track();
    const ns = await freshNamespace("inf-stall");
    const svcs = services(ns);
    await svcs.create("first");
    const p = await proxy();
    const registry = new Registry();
    const inf = informer<Service>({
      resource: KUBE_RESOURCES.services,
      namespace: ns,
      kubeConfig: kubeConfigVia(cp.adminKubeConfig, p.url()),
      metrics: registry,
      // Watches of 4–8 s, aborted after 1 s of silence beyond that.
      minWatchTimeoutSeconds: 4,
      watchdogGraceMs: 1_000,
    });
    const rec = new Recorder();
    inf.addHandler(rec);
    await inf.start();
    // Every request has its own connection: wait until the list's has closed and the watch's is the
    // one open, so that the stall below hits the live watch and not the list's closing connection.
    await waitFor(
      "the watch connection",
      () => inf.status().phase === "watching" && p.acceptedConnections >= 2 && p.openConnections === 1,
    );
    const stalledRestarts = async () => {
      const metric = registry.getSingleMetric("worknode_informer_watch_restarts_total");
      const values = metric ? (await metric.get()).values : [];
      return values.filter((v) => v.labels.reason === "stalled").reduce((sum, v) => sum + v.value, 0);
    };
    expect(await stalledRestarts()).toBe(0);

    // The path goes dead: no bytes, no FIN, no RST; the API server's own watch timeout never arrives.
    expect(p.stallAll()).toBe(1);
    const created = await svcs.create("while-stalled");
    await rec.seen(`add while-stalled@${created.metadata?.resourceVersion}`, 20_000);
    expect(await stalledRestarts()).toBe(1);
    expect(inf.status().lastError).toMatch(/no data for \d+ ms/);
    // The informer closed the dead connection itself.
    await waitFor("the stalled connection to be closed", () => p.stalledConnections === 0, {
      timeoutMs: 5_000,
    });
    await converged(inf, svcs.server);
    expect(rec.events.filter((e) => e !== "synced")).toEqual(svcs.journal.entries);
  });

  it("relists when its resourceVersion was compacted away (410) and emits exactly the missed changes", async () => {
    track();
    const ns = await freshNamespace("inf-expired");
    const create = async (name: string, value: string) =>
      (await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name }, data: { value } } }))
        .metadata?.resourceVersion ?? "";
    const update = async (name: string, value: string) =>
      (await core.patchNamespacedConfigMap({ name, namespace: ns, body: { data: { value } } }, MERGE_PATCH))
        .metadata?.resourceVersion ?? "";
    const rv0 = await create("c0", "0");
    const rv1 = await create("c1", "1");
    const rv2 = await create("c2", "2");
    const rv3 = await create("c3", "3");
    const p = await proxy();
    const registry = new Registry();
    const inf = informer<ConfigMap>({
      resource: KUBE_RESOURCES.configMaps,
      namespace: ns,
      kubeConfig: kubeConfigVia(cp.adminKubeConfig, p.url()),
      metrics: registry,
    });
    const rec = new Recorder();
    inf.addHandler(rec);
    await inf.start();
    expect(rec.events.slice(0, 4).sort()).toEqual([
      `add c0@${rv0}`,
      `add c1@${rv1}`,
      `add c2@${rv2}`,
      `add c3@${rv3}`,
    ]);
    // The watch works (straight from etcd) before the outage.
    const rvLive = await update("c0", "live");
    await rec.seen(`update c0@${rv0}->${rvLive}`);
    const synced = rec.events.length;

    // Offline: changes happen, then etcd forgets the history the informer would resume from.
    await waitFor("the watch connection", () => p.openConnections === 1);
    p.pause("refuse");
    p.cutAll();
    const rvNew = await create("c-new", "new");
    await core.deleteNamespacedConfigMap({ name: "c1", namespace: ns });
    const rv2b = await update("c2", "2b");
    await update("c3", "3b");
    const rv3c = await update("c3", "3c");
    await create("ephemeral", "gone soon");
    await core.deleteNamespacedConfigMap({ name: "ephemeral", namespace: ns });
    const head = (await core.listNamespacedConfigMap({ namespace: ns })).metadata?.resourceVersion ?? "";
    const etcd = cp.components.find((c) => c.name === "etcd");
    expect(etcd?.ports[0]).toBeDefined();
    await compactEtcd(etcd?.ports[0] ?? 0, head);
    await waitFor("a refused reconnection attempt", () => p.refusedConnections > 0);
    expect(rec.events.length).toBe(synced);
    p.resume();

    // The watch from the old resourceVersion fails with 410; the relist's diff brings the cache up to date.
    await waitFor("the relist", () => inf.status().lists === 2, { describe: () => inf.status() });
    const server = await core.listNamespacedConfigMap({ namespace: ns });
    expect(summary(inf.list())).toEqual(summary(server.items as KubeObject[]));
    expect(rec.events.slice(synced).sort()).toEqual(
      [
        `delete c1@${rv1}`,
        `update c2@${rv2}->${rv2b}`,
        `update c3@${rv3}->${rv3c}`,
        `add c-new@${rvNew}`,
      ].sort(),
    );
    expect(inf.get(`${ns}/c3`)?.data).toEqual({ value: "3c" });
    expect(await counterTotal(registry, "worknode_informer_relists_total")).toBe(1);
    const restarts = registry.getSingleMetric("worknode_informer_watch_restarts_total");
    const expired = (await restarts?.get())?.values.filter((v) => v.labels.reason === "expired") ?? [];
    expect(expired.reduce((sum, v) => sum + v.value, 0)).toBeGreaterThanOrEqual(1);
    expect(rec.events.filter((e) => e === "synced")).toHaveLength(1);

    // And it watches on from the new list.
    const rvAfter = await create("after-relist", "x");
    await rec.seen(`add after-relist@${rvAfter}`);
    expect(inf.status().lists).toBe(2);
  });

  it("watches EndpointSlices with a label selector and delivers only the matching ones", async () => {
    track();
    const ns = await freshNamespace("inf-slices");
    const create = (name: string, svc: string | undefined, ip: string) =>
      discovery.createNamespacedEndpointSlice({ namespace: ns, body: sliceBody(name, svc, ip) });
    const relabel = (name: string, svc: string) =>
      discovery.patchNamespacedEndpointSlice(
        { name, namespace: ns, body: { metadata: { labels: { [LABEL_SERVICE_NAME]: svc } } } },
        MERGE_PATCH,
      );
    const a1 = await create("alpha-1", "alpha", "10.244.0.1");
    await create("beta-1", "beta", "10.244.0.2");
    await create("loose-1", undefined, "10.244.0.3");
    const p = await proxy();
    const inf = informer<EndpointSlice>({
      resource: KUBE_RESOURCES.endpointSlices,
      namespace: ns,
      kubeConfig: kubeConfigVia(cp.adminKubeConfig, p.url()),
      labelSelector: `${LABEL_SERVICE_NAME}=alpha`,
    });
    const rec = new Recorder();
    inf.addHandler(rec);
    await inf.start();

    expect(rec.events).toEqual([`add alpha-1@${a1.metadata?.resourceVersion}`, "synced"]);
    const cached = inf.get(`${ns}/alpha-1`);
    expect(cached?.kind).toBe("EndpointSlice");
    expect(cached?.apiVersion).toBe("discovery.k8s.io/v1");
    expect(cached?.endpoints[0]?.addresses).toEqual(["10.244.0.1"]);

    // A non-matching slice, then a matching one: watch events come in resourceVersion
    // order, so once the matching add arrived a non-matching add would have arrived too.
    const b2 = await create("beta-2", "beta", "10.244.0.4");
    const a2 = await create("alpha-2", "alpha", "10.244.0.5");
    await rec.seen(`add alpha-2@${a2.metadata?.resourceVersion}`);
    expect(rec.events.some((e) => e.includes("beta-2"))).toBe(false);
    expect(Number(b2.metadata?.resourceVersion)).toBeLessThan(Number(a2.metadata?.resourceVersion));

    // Leaving the selector is a delete; entering it is an add.
    const moved = await relabel("alpha-1", "beta");
    await rec.seen(`delete alpha-1@${a1.metadata?.resourceVersion}`);
    const joined = await relabel("beta-1", "alpha");
    await rec.seen(`add beta-1@${joined.metadata?.resourceVersion}`);
    expect(Number(moved.metadata?.resourceVersion)).toBeLessThan(Number(joined.metadata?.resourceVersion));

    const server = await discovery.listNamespacedEndpointSlice({
      namespace: ns,
      labelSelector: `${LABEL_SERVICE_NAME}=alpha`,
    });
    expect(summary(inf.list())).toEqual(summary(server.items as KubeObject[]));
    expect(summary(inf.list()).map((s) => s.split("@")[0])).toEqual(["alpha-2", "beta-1"]);
    for (const slice of inf.list()) expect(slice.metadata?.labels?.[LABEL_SERVICE_NAME]).toBe("alpha");
    expect(rec.events.some((e) => e.includes("loose-1") || e.includes("beta-2"))).toBe(false);
    expect(rec.events.filter((e) => e !== "synced")).toHaveLength(4);
  });

  it("stop() closes every connection and no event arrives afterwards", async () => {
    track();
    const ns = await freshNamespace("inf-stop");
    const svcs = services(ns);
    await svcs.create("before");
    const p = await proxy();
    const inf = informer<Service>({
      resource: KUBE_RESOURCES.services,
      namespace: ns,
      kubeConfig: kubeConfigVia(cp.adminKubeConfig, p.url()),
    });
    const rec = new Recorder();
    inf.addHandler(rec);
    await inf.start();
    await waitFor("the watch connection", () => p.openConnections === 1);
    const during = await svcs.create("during");
    await rec.seen(`add during@${during.metadata?.resourceVersion}`);

    await inf.stop();
    expect(inf.status().phase).toBe("stopped");
    await waitFor("the proxy to see no open connection", () => p.openConnections === 0, {
      timeoutMs: 5_000,
      describe: () => ({ open: p.openConnections }),
    });
    const accepted = p.acceptedConnections;
    const events = rec.events.length;

    // A second informer, connected directly, proves the next changes reach watchers.
    const control = informer<Service>({
      resource: KUBE_RESOURCES.services,
      namespace: ns,
      kubeConfig: cp.adminKubeConfig,
    });
    const controlRec = new Recorder();
    control.addHandler(controlRec);
    await control.start();
    const beforeRv = svcs.journal.rv("before");
    const after = await svcs.create("after");
    await svcs.delete("before");
    await controlRec.seen(`add after@${after.metadata?.resourceVersion}`);
    await controlRec.seen(`delete before@${beforeRv}`);

    expect(rec.events.length).toBe(events);
    expect(inf.get(`${ns}/after`)).toBeUndefined();
    expect(inf.get(`${ns}/before`)).toBeDefined(); // the cache keeps its last state
    expect(p.acceptedConnections).toBe(accepted); // no reconnection attempt
    expect(p.openConnections).toBe(0);
    await inf.stop(); // idempotent
    expect(objectKey(inf.list()[0] as KubeObject)).toBe(`${ns}/before`);
  });

  it("stop() while a connection is still being set up closes it and rejects start()", async () => {
    track();
    const ns = await freshNamespace("inf-stop-early");
    const p = await proxy();
    p.pause("hold");
    const inf = informer<Service>({
      resource: KUBE_RESOURCES.services,
      namespace: ns,
      kubeConfig: kubeConfigVia(cp.adminKubeConfig, p.url()),
    });
    const rec = new Recorder();
    inf.addHandler(rec);
    const started = inf.start();
    await waitFor("the held list connection", () => p.openConnections === 1);
    expect(inf.status().phase).toBe("listing");

    await inf.stop();
    await expect(started).rejects.toBeInstanceOf(AbortedError);
    await waitFor("the held connection to be closed", () => p.openConnections === 0, { timeoutMs: 5_000 });
    expect(inf.hasSynced()).toBe(false);
    expect(inf.status().phase).toBe("stopped");
    p.resume();
    expect(p.acceptedConnections).toBe(1);
    expect(rec.events).toEqual([]);
  });
});
