/**
 * Lab and cache directories of the harnesses, and removing a lab directory
 * safely (unmount what is mounted below it first, never delete through a mount).
 *
 * @module
 */
import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { WorknodeError } from "@worknode/core";
import { runCommand } from "./exec.js";

/** Default root of the persistent cache (built images, registry data); `$WORKNODE_TESTING_CACHE` overrides it. */
export function defaultTestingCacheRoot(): string {
  return process.env.WORKNODE_TESTING_CACHE || "/var/cache/worknode-testing";
}

/** Default directory of the locally built image cache: `<cache root>/images`. */
export function defaultImageCacheDir(): string {
  return path.join(defaultTestingCacheRoot(), "images");
}

/** Default directory for run-time state (pid files, sockets, logs) of shared lab daemons. */
export function defaultRunRoot(): string {
  return process.env.WORKNODE_TESTING_RUN || "/run/worknode-testing";
}

/** Default lab directory of a containerd instance, derived from its (unique) bridge name. */
export function defaultContainerdLabDir(bridgeName: string): string {
  return path.join(tmpdir(), `worknode-containerd-${bridgeName}`);
}

/** One entry of `/proc/self/mountinfo`. */
export interface MountEntry {
  /** Mount id. */
  readonly id: number;
  /** Parent mount id. */
  readonly parentId: number;
  /** Mount point, unescaped. */
  readonly mountPoint: string;
  /** File system type (`overlay`, `nsfs`, `tmpfs` …). */
  readonly fsType: string;
}

function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** Parses `/proc/<pid>/mountinfo`. */
export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const fields = line.split(" ");
    const sep = fields.indexOf("-");
    const id = Number(fields[0]);
    const parentId = Number(fields[1]);
    const mp = fields[4];
    const fsType = sep >= 0 ? fields[sep + 1] : undefined;
    if (!Number.isInteger(id) || mp === undefined || fsType === undefined) continue;
    out.push({ id, parentId, mountPoint: unescapeMountField(mp), fsType });
  }
  return out;
}

/** True when `p` is `dir` or lies below it (both absolute, normalised). */
export function isPathWithin(p: string, dir: string): boolean {
  const rel = path.relative(dir, p);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

/**
 * The mount points at or below `dir`, deepest first (the order to unmount them in).
 */
export function mountsUnder(entries: readonly MountEntry[], dir: string): string[] {
  const root = path.resolve(dir);
  const points = new Set(entries.map((e) => e.mountPoint).filter((m) => isPathWithin(m, root)));
  return [...points].sort((a, b) => b.split("/").length - a.split("/").length || b.length - a.length);
}

/** Lists the mount points at or below `dir` in this process's mount namespace, deepest first. */
export async function listMountsUnder(dir: string): Promise<string[]> {
  return mountsUnder(parseMountInfo(await readFile("/proc/self/mountinfo", "utf8")), dir);
}

/**
 * Unmounts (lazily, `umount -l`) everything mounted at or below `dir`, deepest first,
 * repeating while mounts remain (stacked mounts).
 *
 * @throws WorknodeError when mounts remain after several passes
 */
export async function unmountUnder(dir: string): Promise<void> {
  for (let pass = 0; pass < 5; pass++) {
    const points = await listMountsUnder(dir);
    if (points.length === 0) return;
    for (const p of points) await runCommand("umount", ["-l", p], { allowFailure: true });
  }
  const left = await listMountsUnder(dir);
  if (left.length > 0) {
    throw new WorknodeError("MOUNTS_LEFT", `cannot unmount below ${dir}: ${left.join(", ")}`);
  }
}

/**
 * Removes a lab directory: unmounts everything below it, checks nothing is mounted any more,
 * then deletes it recursively. Refuses `/` and very short paths.
 */
export async function removeLabDir(dir: string): Promise<void> {
  const abs = path.resolve(dir);
  if (abs.split("/").filter(Boolean).length < 2) {
    throw new WorknodeError("UNSAFE_PATH", `refusing to remove ${abs}: too close to /`);
  }
  await unmountUnder(abs);
  await rm(abs, { recursive: true, force: true, maxRetries: 3 });
}
