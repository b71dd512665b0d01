import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Pod } from "@worknode/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { StandalonePodObjectProvider } from "../../src/api-objects/provider.js";
import { emptyDirReadyFile, setUpPodVolumes } from "../../src/runtime/volumes.js";
import { setUpApiVolumes } from "../../src/volumes/api-volumes.js";
import { DATA_DIR_NAME, writeAtomically } from "../../src/volumes/atomic-writer.js";
import { ownershipMode } from "../../src/volumes/ownership.js";
import type { VolumePayload } from "../../src/volumes/projection.js";
import { setVolumeOwnership, VolumeOwnershipError } from "../../src/volumes/set-volume-ownership.js";

// As root the walk can give any group, so a group nothing has yet makes the change visible;
// unprivileged, only the user's own group can be given (the modes are checked either way).
const FS_GROUP = process.getuid?.() === 0 ? 4242 : (process.getgid?.() ?? 0);

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), "wn-fsgroup-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const mode = (p: string) => statSync(p).mode & 0o7777;
const gid = (p: string) => lstatSync(p).gid;

function file(p: string, m: number): string {
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, "x");
  chmodSync(p, m);
  return p;
}

function directory(p: string, m: number): string {
  mkdirSync(p, { recursive: true });
  chmodSync(p, m);
  return p;
}

describe("setVolumeOwnership", () => {
  it("gives a writable volume the group, group rw and setgid directories, without following symlinks", async () => {
    const vol = directory(path.join(dir, "vol"), 0o755);
    const plain = file(path.join(vol, "plain"), 0o644);
    const exe = file(path.join(vol, "exe"), 0o744);
    const sub = directory(path.join(vol, "sub"), 0o700);
    const deep = file(path.join(sub, "deep"), 0o600);
    const outside = file(path.join(dir, "outside"), 0o600);
    const outsideGid = gid(outside);
    symlinkSync(outside, path.join(vol, "link"));

    const r = await setVolumeOwnership(vol, { fsGroup: FS_GROUP, readOnly: false });
    expect(r).toEqual({ walked: true, paths: 6, failures: [] });
    expect(mode(vol)).toBe(0o2775);
    expect(mode(sub)).toBe(0o2770);
    expect(mode(plain)).toBe(0o664);
    expect(mode(exe)).toBe(0o764);
    expect(mode(deep)).toBe(0o660);
    for (const p of [vol, sub, plain, exe, deep, path.join(vol, "link")]) expect(gid(p)).toBe(FS_GROUP);
    // the symlink's target outside the volume is untouched
    expect(mode(outside)).toBe(0o600);
    expect(gid(outside)).toBe(outsideGid);
    expect(readlinkSync(path.join(vol, "link"))).toBe(outside);
  });

  it("gives a read-only volume group read only, keeping the modes", async () => {
    const vol = directory(path.join(dir, "vol"), 0o755);
    const secret = file(path.join(vol, "secret"), 0o400);
    const open = file(path.join(vol, "open"), 0o644);
    const r = await setVolumeOwnership(vol, { fsGroup: FS_GROUP, readOnly: true });
    expect(r.walked).toBe(true);
    expect(mode(vol)).toBe(0o2755);
    expect(mode(secret)).toBe(0o440);
    expect(mode(open)).toBe(0o644);
    expect(gid(secret)).toBe(FS_GROUP);
  });

  it("skips an owned root with OnRootMismatch and walks again with Always or a mismatching root", async () => {
    const vol = directory(path.join(dir, "vol"), 0o755);
    await setVolumeOwnership(vol, { fsGroup: FS_GROUP, readOnly: false });
    const later = file(path.join(vol, "later"), 0o600);

    const skipped = await setVolumeOwnership(vol, {
      fsGroup: FS_GROUP,
      readOnly: false,
      policy: "OnRootMismatch",
    });
    expect(skipped).toEqual({ walked: false, paths: 0, failures: [] });
    expect(mode(later)).toBe(0o600);

    const always = await setVolumeOwnership(vol, { fsGroup: FS_GROUP, readOnly: false, policy: "Always" });
    expect(always.walked).toBe(true);
    expect(mode(later)).toBe(0o660);

    const again = file(path.join(vol, "again"), 0o600);
    chmodSync(vol, 0o775); // setgid bit gone: the root no longer matches
    const mismatch = await setVolumeOwnership(vol, {
      fsGroup: FS_GROUP,
      readOnly: false,
      policy: "OnRootMismatch",
    });
    expect(mismatch.walked).toBe(true);
    expect(mode(again)).toBe(0o660);
    expect(mode(vol)).toBe(0o2775);
  });

  it("fails for a volume root that does not exist", async () => {
    await expect(
      setVolumeOwnership(path.join(dir, "missing"), { fsGroup: FS_GROUP, readOnly: false }),
    ).rejects.toBeInstanceOf(VolumeOwnershipError);
  });
});

function payload(entries: Record<string, [string, number]>): VolumePayload {
  return new Map(Object.entries(entries).map(([k, [data, m]]) => [k, { data: Buffer.from(data), mode: m }]));
}

describe("atomic writer with ownership", () => {
  it("sets permissions before the swap and recognizes the owned payload as unchanged", async () => {
    const target = path.join(dir, "vol");
    const seen: Array<string | undefined> = [];
    const options = {
      setPermissions: async (t: string) => {
        seen.push(
          existsSync(path.join(t, DATA_DIR_NAME)) ? readlinkSync(path.join(t, DATA_DIR_NAME)) : undefined,
        );
        await setVolumeOwnership(t, { fsGroup: FS_GROUP, readOnly: true });
      },
      finalMode: (m: number) => ownershipMode(m, "file", true) ?? m,
    };
    const first = await writeAtomically(target, payload({ key: ["v1", 0o400] }), undefined, options);
    expect(first.changed).toBe(true);
    expect(seen).toEqual([undefined]);
    expect(mode(path.join(target, "key"))).toBe(0o440);
    expect(gid(path.join(target, first.dataDir, "key"))).toBe(FS_GROUP);
    expect(mode(target)).toBe(0o2755);

    const same = await writeAtomically(target, payload({ key: ["v1", 0o400] }), undefined, options);
    expect(same).toEqual({ changed: false, dataDir: first.dataDir });
    expect(seen).toHaveLength(1);

    const next = await writeAtomically(target, payload({ key: ["v2", 0o400] }), undefined, options);
    expect(next.changed).toBe(true);
    expect(seen).toEqual([undefined, first.dataDir]);
    expect(mode(path.join(target, "key"))).toBe(0o440);
    expect(gid(path.join(target, next.dataDir, "key"))).toBe(FS_GROUP);
  });
});

function pod(fsGroup: number | undefined, volumes: unknown[]): Pod {
  return {
    metadata: { name: "p", namespace: "default", uid: "uid-fsg" },
    spec: {
      containers: [{ name: "c", image: "busybox" }],
      securityContext: fsGroup === undefined ? {} : { fsGroup },
      volumes,
    },
  } as Pod;
}

describe("pod volumes with fsGroup", () => {
  it("owns a new emptyDir once, and leaves hostPath volumes alone", async () => {
    const root = path.join(dir, "root");
    const host = directory(path.join(dir, "host"), 0o755);
    const hostFile = file(path.join(host, "f"), 0o644);
    const hostGid = gid(host);
    const p = pod(FS_GROUP, [
      { name: "scratch", emptyDir: {} },
      { name: "host", hostPath: { path: host, type: "DirectoryOrCreate" } },
    ]);
    const paths = await setUpPodVolumes(p, root);
    const scratch = paths.get("scratch") ?? "";
    expect(mode(scratch) & 0o2070).toBe(0o2070);
    expect(gid(scratch)).toBe(FS_GROUP);
    expect(existsSync(emptyDirReadyFile(root, "uid-fsg", "scratch"))).toBe(true);
    expect(mode(host)).toBe(0o755);
    expect(mode(hostFile)).toBe(0o644);
    expect(gid(host)).toBe(hostGid);

    // a file a container writes later keeps its own mode on the next sync
    const written = file(path.join(scratch, "written"), 0o600);
    await setUpPodVolumes(p, root);
    expect(mode(written)).toBe(0o600);
  });

  it("changes nothing without fsGroup", async () => {
    const root = path.join(dir, "root");
    const paths = await setUpPodVolumes(pod(undefined, [{ name: "scratch", emptyDir: {} }]), root);
    expect(mode(paths.get("scratch") ?? "") & 0o2000).toBe(0);
  });

  it("gives a downwardAPI volume the group and group read", async () => {
    const root = path.join(dir, "root");
    const p = pod(FS_GROUP, [
      {
        name: "info",
        downwardAPI: {
          defaultMode: 0o400,
          items: [{ path: "name", fieldRef: { fieldPath: "metadata.name" } }],
        },
      },
    ]);
    const ctx = {
      rootDir: root,
      objects: new StandalonePodObjectProvider(),
      podIPs: [],
      hostIPs: ["10.0.0.1"],
      nodeAllocatable: { cpuMilli: 1000, memoryBytes: 1024 ** 3 },
    };
    const r = await setUpApiVolumes(p, ctx);
    expect(r.failures).toEqual([]);
    expect(r.updated).toEqual(["info"]);
    const vol = r.paths.get("info") ?? "";
    expect(mode(path.join(vol, "name"))).toBe(0o440);
    expect(gid(path.join(vol, "name"))).toBe(FS_GROUP);
    expect(gid(vol)).toBe(FS_GROUP);
    expect(mode(vol)).toBe(0o2755);
    // the owned files are what the payload asks for: nothing is rewritten
    const again = await setUpApiVolumes(p, ctx);
    expect(again.updated).toEqual([]);
  });
});
