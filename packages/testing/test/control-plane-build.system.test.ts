import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { UnavailableError } from "@worknode/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  defaultGoModuleDir,
  ensureControlPlaneBinaries,
  parseBuildPin,
  versionLdflags,
} from "../src/go-build.js";

const run = promisify(execFile);

describe("building the control plane from Go modules", () => {
  let cacheRoot: string;

  beforeAll(async () => {
    cacheRoot = await mkdtemp(join(tmpdir(), "worknode-k8s-cache-test-"));
  });
  afterAll(async () => {
    await rm(cacheRoot, { recursive: true, force: true });
  });

  it("reads one Kubernetes release and its etcd from the committed go.mod", async () => {
    const dir = defaultGoModuleDir();
    const pin = parseBuildPin(
      await readFile(join(dir, "go.mod"), "utf8"),
      await readFile(join(dir, "go.sum"), "utf8"),
    );
    expect(pin.kubernetesVersion).toMatch(/^v1\.\d+\.\d+$/);
    expect(pin.etcdVersion).toMatch(/^v3\.\d+\.\d+$/);
    const minor = pin.kubernetesVersion.split(".")[1];
    // Every staging module is replaced by the published v0.<minor>.<patch> of the same release.
    const goMod = await readFile(join(dir, "go.mod"), "utf8");
    const replaces = [...goMod.matchAll(/^\s*(k8s\.io\/\S+) => (\S+) (v\S+)$/gm)];
    expect(replaces.length).toBeGreaterThan(20);
    for (const [, from, to, version] of replaces) {
      expect(to).toBe(from);
      expect(version).toBe(`v0.${minor}.${pin.kubernetesVersion.split(".")[2]}`);
    }
    expect(versionLdflags(pin.kubernetesVersion, "2026-01-01T00:00:00Z")).toContain(
      `-X k8s.io/component-base/version.gitVersion=${pin.kubernetesVersion}`,
    );
  });

  it("builds a binary that reports the pinned version, then reuses it without Go", async () => {
    const built = await ensureControlPlaneBinaries({ cacheRoot, binaries: ["etcd"] });
    const etcd = built.binaries.etcd ?? "";
    const { stdout } = await run(etcd, ["--version"]);
    expect(stdout).toContain(`etcd Version: ${built.etcdVersion.slice(1)}`);
    const first = await stat(etcd);
    // Up to date: no go command is needed (a broken one proves it is not run).
    const again = await ensureControlPlaneBinaries({
      cacheRoot,
      binaries: ["etcd"],
      goCommand: "/nonexistent/go",
    });
    expect(again.binaries.etcd).toBe(etcd);
    expect((await stat(etcd)).mtimeMs).toBe(first.mtimeMs);
  }, 1_800_000);

  it("rebuilds when the pin stamp does not match", async () => {
    const dir = join(
      cacheRoot,
      (await ensureControlPlaneBinaries({ cacheRoot, binaries: ["etcd"] })).version,
    );
    const before = await stat(join(dir, "etcd"));
    await writeFile(join(dir, ".worknode-build-stamp"), "some-other-pin\n");
    // The stale binary must not be served: with no working Go the call fails instead.
    await expect(
      ensureControlPlaneBinaries({ cacheRoot, binaries: ["etcd"], goCommand: "/nonexistent/go" }),
    ).rejects.toBeInstanceOf(UnavailableError);
    const rebuilt = await ensureControlPlaneBinaries({ cacheRoot, binaries: ["etcd"] });
    const after = await stat(rebuilt.binaries.etcd ?? "");
    expect(after.ino === before.ino && after.mtimeMs === before.mtimeMs).toBe(false);
  }, 1_800_000);

  it("fails clearly when Go cannot run", async () => {
    const emptyRoot = await mkdtemp(join(tmpdir(), "worknode-k8s-nogo-"));
    try {
      const error = await ensureControlPlaneBinaries({
        cacheRoot: emptyRoot,
        binaries: ["etcd"],
        goCommand: "/nonexistent/go",
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnavailableError);
      expect(String((error as Error).message)).toMatch(/Go toolchain/);
    } finally {
      await rm(emptyRoot, { recursive: true, force: true });
    }
  });
});
