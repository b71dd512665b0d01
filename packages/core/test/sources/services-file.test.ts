import { mkdir, rename, rm, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import type { Service } from "../../src/kube/objects.js";
import { ServicesFileSource, type ServicesFileSourceOptions } from "../../src/sources/services-file.js";
import { FakeClock } from "../../src/util/clock.js";
import { InvalidObjectError, UnavailableError } from "../../src/util/errors.js";
import { record, tempDir, until } from "./file-helpers.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const svc = (name: string, port = 80, ns?: string) => `apiVersion: v1
kind: Service
metadata:
  name: ${name}${ns ? `\n  namespace: ${ns}` : ""}
spec:
  clusterIP: 10.0.0.10
  ports:
  - port: ${port}
`;

const slice = (name: string, service: string, ip = "10.1.0.5") => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${name}
  labels: {kubernetes.io/service-name: ${service}}
addressType: IPv4
endpoints:
- addresses: ["${ip}"]
`;

const docs = (...d: string[]) => d.join("---\n");

/**
 * A source on a file in a fresh temporary directory. By default fs.watch is off
 * and nothing is periodic: tests call `rescan()` after writing, which is deterministic.
 */
async function setup(options: Partial<ServicesFileSourceOptions> = {}, initial?: string) {
  const t = await tempDir();
  cleanups.push(t.cleanup);
  const path = join(t.dir, "services.yaml");
  if (initial !== undefined) await writeFile(path, initial);
  const source = new ServicesFileSource({ path, fsWatch: false, rescanIntervalMs: 0, ...options });
  cleanups.push(() => source.stop());
  const services = record(source.services);
  const slices = record(source.endpointSlices);
  return { dir: t.dir, path, source, services, slices };
}

const port = (s: Service | undefined) => s?.spec?.ports?.[0]?.port;

describe("ServicesFileSource", () => {
  it("serves the file's objects once started, then reports synced", async () => {
    const s = await setup({}, docs(svc("web"), svc("db", 5432, "data"), slice("web-1", "web")));
    expect(s.source.services.hasSynced()).toBe(false);
    await s.source.start();
    expect(s.services.take()).toEqual(["add data/db", "add default/web", "synced"]);
    expect(s.slices.take()).toEqual(["add default/web-1", "synced"]);
    expect(s.source.services.get("default/web")?.metadata?.namespace).toBe("default");
    expect(s.source.services.list()).toHaveLength(2);
    expect(s.source.endpointSlices.get("default/web-1")?.endpoints?.[0]?.addresses).toEqual(["10.1.0.5"]);
    expect(s.source.errors()).toEqual([]);
  });

  it("emits exactly the adds, updates and deletes of an edit", async () => {
    const s = await setup({}, docs(svc("a"), svc("b"), svc("c"), slice("a-1", "a")));
    await s.source.start();
    s.services.take();
    s.slices.take();
    await writeFile(s.path, docs(svc("a"), svc("b", 8080), svc("d"), slice("a-1", "a", "10.1.0.6")));
    await s.source.rescan();
    expect(s.services.take()).toEqual(["delete default/c", "update default/b", "add default/d"]);
    expect(port(s.services.updates[0]![0])).toBe(80);
    expect(port(s.services.updates[0]![1])).toBe(8080);
    expect(s.slices.take()).toEqual(["update default/a-1"]);
  });

  it("ignores reformatting that does not change content", async () => {
    const s = await setup({}, docs(svc("a"), svc("b")));
    await s.source.start();
    s.services.take();
    const reordered = `# the same objects, keys reordered and in flow style\nkind: Service\napiVersion: v1\nspec: {ports: [{port: 80}], clusterIP: 10.0.0.10}\nmetadata: {name: b}\n---\n${svc("a")}`;
    await writeFile(s.path, reordered);
    await s.source.rescan();
    expect(s.services.take()).toEqual([]);
  });

  it("reports invalid documents with reasons and origins while serving the valid ones", async () => {
    const registry = new Registry();
    const bad = docs(
      svc("web"),
      "apiVersion: v1\nkind: Service\nmetadata: {name: noports}\nspec: {clusterIP: 10.0.0.3}\n",
      "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
      slice("orphan", "web").replace("kubernetes.io/service-name: web", "app: web"),
      svc("web"),
    );
    const s = await setup({ registry }, bad);
    await s.source.start();
    expect(s.source.services.list().map((o) => o.metadata?.name)).toEqual(["web"]);
    const errors = s.source.errors();
    expect(errors).toHaveLength(4);
    expect(errors.every((e) => e instanceof InvalidObjectError)).toBe(true);
    expect(errors.map((e) => e.message)).toEqual([
      expect.stringMatching(
        /^invalid Service default\/noports \(.*services\.yaml:\d+, document 2\): spec\.ports is missing/,
      ),
      expect.stringMatching(/^invalid Pod p \(.*document 3\): unsupported kind "Pod"/),
      expect.stringMatching(
        /^invalid EndpointSlice default\/orphan \(.*document 4\): label kubernetes\.io\/service-name/,
      ),
      expect.stringMatching(/^invalid Service default\/web \(.*document 5\): duplicate Service default\/web/),
    ]);
    // handlers: Service problems to the Service source, slice problems to the slice source, others to both
    expect(s.services.invalid.map((e) => e.object.name)).toEqual(["noports", "p", "web"]);
    expect(s.slices.invalid.map((e) => e.object.name)).toEqual(["p", "orphan"]);
    const metric = await registry.getSingleMetric("worknode_source_invalid_objects_total")!.get();
    const byKind = Object.fromEntries(metric.values.map((v) => [v.labels.kind, v.value]));
    expect(byKind).toEqual({ Service: 2, EndpointSlice: 1, unknown: 1 });
    expect(metric.values[0]!.labels.source).toBe("services-file");
  });

  it("keeps the previous version of an object whose document became invalid, until fixed", async () => {
    const s = await setup({}, docs(svc("a"), svc("b")));
    await s.source.start();
    s.services.take();
    const broken = "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {ports: [{port: -1}]}\n";
    await writeFile(s.path, docs(svc("a", 81), broken));
    await s.source.rescan();
    expect(s.services.take()).toEqual(["update default/a", "invalid"]);
    expect(port(s.source.services.get("default/b"))).toBe(80);
    expect(s.source.errors()[0]!.message).toMatch(
      /Service default\/b .*port must be .*previous version of the Service stays/,
    );
    await writeFile(s.path, docs(svc("a", 81), svc("b", 90)));
    await s.source.rescan();
    expect(s.services.take()).toEqual(["update default/b"]);
    expect(s.source.errors()).toEqual([]);
  });

  it("does not delete objects while part of the file cannot be parsed", async () => {
    const s = await setup({}, docs(svc("a"), svc("b"), svc("c")));
    await s.source.start();
    s.services.take();
    // b is removed, c changed, and a YAML error sits in the middle
    await writeFile(s.path, docs(svc("a"), "kind: Service\nmetadata: {name: [oops\n", svc("c", 99)));
    await s.source.rescan();
    expect(s.services.take()).toEqual(["update default/c", "invalid"]);
    expect(s.source.services.get("default/b")).toBeDefined();
    expect(s.source.errors()[0]!.message).toMatch(
      /YAML syntax error.*objects missing from the file are kept until it parses again: Service default\/b/,
    );
    await writeFile(s.path, docs(svc("a"), svc("c", 99)));
    await s.source.rescan();
    expect(s.services.take()).toEqual(["delete default/b"]);
  });

  it("follows the file through fs.watch: created after start, edited by rename-replace, deleted", async () => {
    const s = await setup({ fsWatch: true, debounceMs: 5 });
    await s.source.start();
    expect(s.services.take()).toEqual(["synced"]);
    await writeFile(s.path, svc("web"));
    await until(() => expect(s.services.events).toEqual(["add default/web"]));
    s.services.take();
    const tmp = join(s.dir, ".services.yaml.swp");
    await writeFile(tmp, svc("web", 443));
    await rename(tmp, s.path);
    await until(() => expect(s.services.events).toEqual(["update default/web"]));
    s.services.take();
    await rm(s.path);
    await until(() => expect(s.services.events).toEqual(["delete default/web"]));
  });

  it("emits nothing when the file is touched without a change", async () => {
    const s = await setup({}, svc("web"));
    await s.source.start();
    s.services.take();
    const later = new Date(Date.now() + 60_000);
    await utimes(s.path, later, later);
    await writeFile(s.path, svc("web"));
    await s.source.rescan();
    expect(s.services.take()).toEqual([]);
  });

  it("picks up a change at the periodic rescan when fs.watch is off", async () => {
    const clock = new FakeClock();
    const s = await setup({ clock, rescanIntervalMs: 20_000 }, svc("web"));
    await s.source.start();
    s.services.take();
    await writeFile(s.path, svc("web", 8443));
    await clock.advance(20_000);
    await until(() => expect(s.services.events).toEqual(["update default/web"]));
  });

  it("keeps its objects when the file cannot be read", async () => {
    const s = await setup({}, svc("web"));
    await s.source.start();
    s.services.take();
    await rm(s.path);
    await mkdir(s.path); // now a directory: unreadable as a file
    await s.source.rescan();
    expect(s.services.take()).toEqual([]);
    expect(s.source.services.get("default/web")).toBeDefined();
    expect(s.source.errors()[0]).toBeInstanceOf(UnavailableError);
    expect(s.source.errors()[0]!.message).toMatch(/cannot read services file/);
  });

  it("replays the current objects to a handler added later", async () => {
    const s = await setup({}, docs(svc("b"), svc("a")));
    await s.source.start();
    const late = record(s.source.services);
    expect(late.events).toEqual(["add default/a", "add default/b", "synced"]);
    late.detach();
    await writeFile(s.path, svc("a"));
    await s.source.rescan();
    expect(late.events).toHaveLength(3);
  });

  it("stop() leaves no timers behind", async () => {
    const clock = new FakeClock();
    const s = await setup({ clock, rescanIntervalMs: 20_000, fsWatch: true }, svc("web"));
    await s.source.start();
    expect(clock.pendingTimers()).toBe(1);
    await s.source.stop();
    expect(clock.pendingTimers()).toBe(0);
    await writeFile(s.path, svc("web", 1));
    await clock.advance(40_000);
    expect(s.services.take()).toEqual(["add default/web", "synced"]);
  });
});
