import { createHash } from "node:crypto";
import { mkdir, rename, rm, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import type { Pod } from "../../src/kube/objects.js";
import {
  ANNOTATION_CONFIG_HASH,
  ANNOTATION_CONFIG_SEEN,
  ANNOTATION_CONFIG_SOURCE,
  formatRfc3339,
  isManifestFileName,
  ManifestDirSource,
  type ManifestDirSourceOptions,
  parsePodManifestFile,
  staticPodUid,
} from "../../src/sources/manifest-dir.js";
import { FakeClock } from "../../src/util/clock.js";
import { ConfigError, InvalidObjectError } from "../../src/util/errors.js";
import { record, tempDir, until } from "./file-helpers.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const pod = (name: string, image = "nginx:1.27", extra = "") => `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
spec:
  containers:
  - name: main
    image: ${image}
${extra}`;

const START = Date.UTC(2024, 0, 2, 3, 4, 5);

/** A source on a fresh manifest directory; fs.watch off and no periodic rescan unless asked. */
async function setup(options: Partial<ManifestDirSourceOptions> = {}, files: Record<string, string> = {}) {
  const t = await tempDir();
  cleanups.push(t.cleanup);
  const dir = join(t.dir, "manifests");
  await mkdir(dir);
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  const clock = new FakeClock(START);
  const source = new ManifestDirSource({
    path: dir,
    nodeName: "Node-1",
    clock,
    fsWatch: false,
    rescanIntervalMs: 0,
    ...options,
  });
  cleanups.push(() => source.stop());
  const rec = record(source);
  return { dir, parent: t.dir, clock, source, rec };
}

const uidOf = (p: Pod | undefined) => p?.metadata?.uid;

describe("ManifestDirSource", () => {
  it("serves the pods of every manifest file with kubelet's static-pod defaults", async () => {
    const s = await setup(
      {},
      {
        "web.yaml": pod("web"),
        "pair.yml": `${pod("one")}---\n${pod("two").replace("  name: two", "  name: two\n  namespace: kube-system")}`,
        "notes.txt": pod("ignored-txt"),
        ".hidden.yaml": pod("ignored-hidden"),
      },
    );
    await mkdir(join(s.dir, "sub.yaml"));
    await s.source.start();
    expect(s.rec.take()).toEqual([
      "add default/one-node-1",
      "add default/web-node-1",
      "add kube-system/two-node-1",
      "synced",
    ]);
    const web = s.source.get("default/web-node-1")!;
    const path = join(s.dir, "web.yaml");
    // the canonical JSON of the document: keys sorted at every level
    const manifest = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "web" },
      spec: { containers: [{ image: "nginx:1.27", name: "main" }] },
    };
    const expectedUid = createHash("md5")
      .update(`host:Node-1file:${path}`)
      .update(JSON.stringify(manifest))
      .digest("hex");
    expect(web.metadata).toEqual({
      name: "web-node-1",
      namespace: "default",
      uid: expectedUid,
      annotations: {
        [ANNOTATION_CONFIG_HASH]: expectedUid,
        [ANNOTATION_CONFIG_SEEN]: "2024-01-02T03:04:05Z",
        [ANNOTATION_CONFIG_SOURCE]: "file",
      },
    });
    expect(web.spec?.nodeName).toBe("Node-1");
    expect(web.spec?.tolerations).toEqual([{ operator: "Exists", effect: "NoExecute" }]);
    expect(web.status).toEqual({ phase: "Pending" });
    expect(s.source.errors()).toEqual([]);
  });

  it("reads JSON files and Lists of pods", async () => {
    const json = JSON.stringify(
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "j" },
        spec: { containers: [{ name: "c", image: "busybox" }] },
      },
      null,
      "\t",
    );
    const list = `apiVersion: v1
kind: PodList
items:
- metadata: {name: l1}
  spec: {containers: [{name: c, image: busybox}]}
- metadata: {name: l2}
  spec: {containers: [{name: c, image: busybox}]}
`;
    const s = await setup({}, { "j.json": json, "list.yaml": list });
    await s.source.start();
    expect(s.rec.take()).toEqual([
      "add default/j-node-1",
      "add default/l1-node-1",
      "add default/l2-node-1",
      "synced",
    ]);
  });

  it("updates a changed pod with a new UID and seen time, leaving the others alone", async () => {
    const s = await setup({}, { "a.yaml": `${pod("a")}---\n${pod("b")}`, "c.yaml": pod("c") });
    await s.source.start();
    s.rec.take();
    const oldUid = uidOf(s.source.get("default/a-node-1"));
    await s.clock.advance(1_500);
    await writeFile(join(s.dir, "a.yaml"), `${pod("a", "nginx:1.28")}---\n# a comment\n${pod("b")}`);
    await s.source.rescan();
    expect(s.rec.take()).toEqual(["update default/a-node-1"]);
    const [before, after] = s.rec.updates[0]!;
    expect(uidOf(before)).toBe(oldUid);
    expect(uidOf(after)).not.toBe(oldUid);
    expect(after.metadata?.annotations?.[ANNOTATION_CONFIG_HASH]).toBe(uidOf(after));
    expect(after.metadata?.annotations?.[ANNOTATION_CONFIG_SEEN]).toBe("2024-01-02T03:04:06.5Z");
    expect(after.spec?.containers[0]?.image).toBe("nginx:1.28");
    // b keeps its UID and first-seen time
    expect(s.source.get("default/b-node-1")?.metadata?.annotations?.[ANNOTATION_CONFIG_SEEN]).toBe(
      "2024-01-02T03:04:05Z",
    );
  });

  it("deletes the pods of a removed file", async () => {
    const s = await setup({}, { "a.yaml": `${pod("a1")}---\n${pod("a2")}`, "b.yaml": pod("b") });
    await s.source.start();
    s.rec.take();
    await rm(join(s.dir, "a.yaml"));
    await s.source.rescan();
    expect(s.rec.take()).toEqual(["delete default/a1-node-1", "delete default/a2-node-1"]);
    expect(s.source.list().map((p) => p.metadata?.name)).toEqual(["b-node-1"]);
  });

  it("reports invalid files and pods with their path, and runs the valid ones", async () => {
    const registry = new Registry();
    const s = await setup(
      { registry },
      {
        "good.yaml": pod("good"),
        "broken.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [oops\n",
        "service.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 1}]}\n",
        "empty.yaml": "",
        "nocontainers.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: nc}\nspec: {containers: []}\n",
        "noname.yaml":
          "apiVersion: v1\nkind: Pod\nmetadata: {labels: {a: b}}\nspec: {containers: [{name: c, image: i}]}\n",
        "z-dup.yaml": pod("good", "other:1"),
      },
    );
    await s.source.start();
    expect(s.source.list().map((p) => p.metadata?.name)).toEqual(["good-node-1"]);
    expect(s.source.get("default/good-node-1")?.spec?.containers[0]?.image).toBe("nginx:1.27");
    const messages = s.source.errors().map((e) => e.message);
    const p = (f: string) => join(s.dir, f).replace(/[/.]/g, (c) => `\\${c}`);
    expect(messages).toEqual([
      expect.stringMatching(
        new RegExp(
          `^invalid Pod <unnamed> \\(${p("broken.yaml")}:1, document 1\\): YAML syntax error.*line 5`,
        ),
      ),
      expect.stringMatching(
        new RegExp(`^invalid Pod <unnamed> \\(${p("empty.yaml")}\\): the file holds no pod`),
      ),
      expect.stringMatching(new RegExp(`${p("nocontainers.yaml")}.*spec\\.containers is missing`)),
      expect.stringMatching(new RegExp(`${p("noname.yaml")}.*metadata\\.name is missing`)),
      expect.stringMatching(
        new RegExp(`^invalid Service default/s \\(${p("service.yaml")}.*kind "Service" is not Pod`),
      ),
      expect.stringMatching(
        new RegExp(
          `^invalid Pod default/good-node-1 \\(${p("z-dup.yaml")}.*duplicate pod default/good-node-1: already defined at ${p("good.yaml")}`,
        ),
      ),
    ]);
    expect(s.rec.invalid).toHaveLength(6);
    expect(s.rec.invalid.every((e) => e instanceof InvalidObjectError)).toBe(true);
    const metric = await registry.getSingleMetric("worknode_source_invalid_objects_total")!.get();
    const byKind = Object.fromEntries(metric.values.map((v) => [v.labels.kind, v.value]));
    expect(byKind).toEqual({ Pod: 5, unknown: 1 });
  });

  it("stops the pods of a file that becomes invalid, as kubelet does, and restarts them once fixed", async () => {
    const s = await setup({}, { "a.yaml": pod("a"), "b.yaml": pod("b") });
    await s.source.start();
    s.rec.take();
    await writeFile(
      join(s.dir, "a.yaml"),
      "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: main}]}\n",
    );
    await s.source.rescan();
    expect(s.rec.take()).toEqual(["delete default/a-node-1", "invalid"]);
    expect(s.rec.invalid[0]!.message).toMatch(
      /Pod default\/a .*a\.yaml.*spec\.containers\[0\]\.image is missing/,
    );
    expect(s.source.get("default/b-node-1")).toBeDefined();
    await writeFile(join(s.dir, "a.yaml"), pod("a"));
    await s.source.rescan();
    expect(s.rec.take()).toEqual(["add default/a-node-1"]);
  });

  it("keeps a running pod when another file claims its name", async () => {
    const s = await setup({}, { "b.yaml": pod("web", "b:1") });
    await s.source.start();
    s.rec.take();
    await writeFile(join(s.dir, "a.yaml"), pod("web", "a:1")); // sorts first, same pod name
    await s.source.rescan();
    expect(s.rec.take()).toEqual(["invalid"]);
    expect(s.source.get("default/web-node-1")?.spec?.containers[0]?.image).toBe("b:1");
    expect(s.rec.invalid[0]!.object.origin).toMatch(/a\.yaml/);
    await rm(join(s.dir, "b.yaml"));
    await s.source.rescan();
    expect(s.rec.take()).toEqual(["update default/web-node-1"]);
    expect(s.source.get("default/web-node-1")?.spec?.containers[0]?.image).toBe("a:1");
  });

  it("emits nothing when a manifest is touched without a change", async () => {
    const s = await setup({}, { "a.yaml": pod("a") });
    await s.source.start();
    s.rec.take();
    const later = new Date(Date.now() + 60_000);
    await utimes(join(s.dir, "a.yaml"), later, later);
    await s.clock.advance(5_000);
    await s.source.rescan();
    expect(s.rec.take()).toEqual([]);
  });

  it("follows the directory through fs.watch: created later, files added by rename-replace and removed", async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const dir = join(t.dir, "manifests");
    const source = new ManifestDirSource({ path: dir, nodeName: "n", debounceMs: 5, rescanIntervalMs: 0 });
    cleanups.push(() => source.stop());
    const rec = record(source);
    await source.start();
    expect(rec.take()).toEqual(["synced"]);
    await mkdir(dir);
    await writeFile(join(dir, ".web.yaml.tmp"), pod("web"));
    await rename(join(dir, ".web.yaml.tmp"), join(dir, "web.yaml"));
    await until(() => expect(rec.events).toEqual(["add default/web-n"]));
    rec.take();
    await writeFile(join(dir, ".web.yaml.tmp"), pod("web", "nginx:2"));
    await rename(join(dir, ".web.yaml.tmp"), join(dir, "web.yaml"));
    await until(() => expect(rec.events).toEqual(["update default/web-n"]));
    rec.take();
    await rm(join(dir, "web.yaml"));
    await until(() => expect(rec.events).toEqual(["delete default/web-n"]));
  });

  it("catches a change missed by the watch at the periodic rescan (20 s default)", async () => {
    const s = await setup({ rescanIntervalMs: undefined }, { "a.yaml": pod("a") });
    await s.source.start();
    s.rec.take();
    await writeFile(join(s.dir, "b.yaml"), pod("b"));
    await s.clock.advance(19_000);
    expect(s.rec.events).toEqual([]);
    await s.clock.advance(1_000);
    await until(() => expect(s.rec.events).toEqual(["add default/b-node-1"]));
  });

  it("removes every pod when the directory disappears", async () => {
    const s = await setup({}, { "a.yaml": pod("a") });
    await s.source.start();
    s.rec.take();
    await rm(s.dir, { recursive: true });
    await s.source.rescan();
    expect(s.rec.take()).toEqual(["delete default/a-node-1"]);
  });

  it("stop() leaves no timers and closes the watch", async () => {
    const s = await setup({ rescanIntervalMs: 20_000, fsWatch: true }, { "a.yaml": pod("a") });
    await s.source.start();
    expect(s.clock.pendingTimers()).toBe(1);
    await s.source.stop();
    expect(s.clock.pendingTimers()).toBe(0);
    await writeFile(join(s.dir, "b.yaml"), pod("b"));
    await s.clock.advance(60_000);
    expect(s.rec.take()).toEqual(["add default/a-node-1", "synced"]);
  });

  it("requires a node name", () => {
    expect(() => new ManifestDirSource({ path: "/nonexistent", nodeName: "" })).toThrow(ConfigError);
  });
});

describe("static pod defaults", () => {
  it("derives the UID from node, path and content, and honours an explicit one", () => {
    const text = pod("a");
    const u = (path: string, node: string, t = text) =>
      uidOf(parsePodManifestFile(t, path, node).pods[0]?.pod);
    expect(u("/m/a.yaml", "n1")).toMatch(/^[0-9a-f]{32}$/);
    expect(u("/m/a.yaml", "n1")).toBe(u("/m/a.yaml", "n1"));
    expect(u("/m/a.yaml", "n2")).not.toBe(u("/m/a.yaml", "n1"));
    expect(u("/m/b.yaml", "n1")).not.toBe(u("/m/a.yaml", "n1"));
    expect(u("/m/a.yaml", "n1", pod("a", "other"))).not.toBe(u("/m/a.yaml", "n1"));
    // formatting and key order do not matter
    const reordered =
      "kind: Pod\napiVersion: v1\nspec: {containers: [{image: nginx:1.27, name: main}]}\nmetadata: {name: a}\n";
    expect(u("/m/a.yaml", "n1", reordered)).toBe(u("/m/a.yaml", "n1"));
    expect(u("/m/a.yaml", "n1")).toBe(
      staticPodUid(
        {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "a" },
          spec: { containers: [{ name: "main", image: "nginx:1.27" }] },
        },
        "/m/a.yaml",
        "n1",
      ),
    );
    const explicit = pod("a").replace("  name: a", "  name: a\n  uid: fixed-uid");
    const p = parsePodManifestFile(explicit, "/m/a.yaml", "n1").pods[0]!.pod;
    expect(p.metadata?.uid).toBe("fixed-uid");
    expect(p.metadata?.annotations?.[ANNOTATION_CONFIG_HASH]).toBe("fixed-uid");
  });

  it("does not add the NoExecute toleration twice, and keeps other tolerations and status", () => {
    const extra = `  tolerations:
  - {key: a, operator: Equal, value: b, effect: NoSchedule}
  - {operator: Exists, effect: NoExecute}
status:
  podIP: 10.0.0.1
`;
    const p = parsePodManifestFile(pod("a", "img", extra), "/m/a.yaml", "n").pods[0]!.pod;
    expect(p.spec?.tolerations).toEqual([
      { key: "a", operator: "Equal", value: "b", effect: "NoSchedule" },
      { operator: "Exists", effect: "NoExecute" },
    ]);
    expect(p.status).toEqual({ podIP: "10.0.0.1", phase: "Pending" });
  });

  it("reads octal file modes as Kubernetes does", () => {
    const extra = "  volumes:\n  - name: v\n    configMap: {name: c, defaultMode: 0644}\n";
    const p = parsePodManifestFile(pod("a", "img", extra), "/m/a.yaml", "n").pods[0]!.pod;
    expect(p.spec?.volumes?.[0]?.configMap?.defaultMode).toBe(0o644);
  });

  it("rejects a name that becomes too long with the node suffix, and duplicate container names", () => {
    const long = "x".repeat(250);
    const out = parsePodManifestFile(pod(long), "/m/a.yaml", "node");
    expect(out.invalid[0]!.reasons[0]).toMatch(/generated pod name .* must be at most 253 characters/);
    const dup = pod("a", "img", "  - name: main\n    image: img2\n");
    expect(parsePodManifestFile(dup, "/m/a.yaml", "n").invalid[0]!.reasons).toEqual([
      'spec.containers[1].name "main" is used by another container',
    ]);
  });

  it("selects manifest files by extension, never hidden ones", () => {
    expect(["a.yaml", "b.yml", "c.json", "D.YAML"].every((n) => isManifestFileName(n))).toBe(true);
    expect(["a.txt", ".a.yaml", "yaml", "a.yaml.bak", "a.yaml~"].some((n) => isManifestFileName(n))).toBe(
      false,
    );
  });

  it("formats times as RFC 3339 without empty fractions", () => {
    expect(formatRfc3339(Date.UTC(2024, 0, 2, 3, 4, 5))).toBe("2024-01-02T03:04:05Z");
    expect(formatRfc3339(Date.UTC(2024, 0, 2, 3, 4, 5, 120))).toBe("2024-01-02T03:04:05.12Z");
  });
});
