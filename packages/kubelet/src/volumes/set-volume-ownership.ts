/**
 * Applies a pod's `fsGroup` to a volume on the host (kubelet's
 * `SetVolumeOwnership`): the I/O half of `ownership.ts`. Walks the volume
 * depth first without following symlinks, children before their directory and
 * the root last (so an interrupted walk leaves the root unowned and
 * `OnRootMismatch` walks again), `lchown`s every path to the group and `chmod`s
 * every non-symlink to {@link ownershipMode}. Like kubelet, a path whose
 * `lchown` / `chmod` fails is reported and the walk goes on; a path removed
 * while walking is skipped.
 *
 * @module
 */
import { chmod, lchown, lstat, readdir, stat } from "node:fs/promises";
import { posix } from "node:path";
import { WorknodeError } from "@worknode/core";
import {
  type OwnershipPathKind,
  ownershipMode,
  shouldWalkVolume,
  type VolumeOwnership,
  type VolumeRootStat,
} from "./ownership.js";

/** A volume's directory could not be walked to set its ownership. */
export class VolumeOwnershipError extends WorknodeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("VOLUME_OWNERSHIP", message, options);
  }
}

/** A path whose group or mode could not be changed. */
export interface OwnershipFailure {
  readonly path: string;
  readonly message: string;
}

/** What {@link setVolumeOwnership} did. */
export interface OwnershipResult {
  /** False when the change policy found the root already owned. */
  readonly walked: boolean;
  /** Paths visited (the root included). */
  readonly paths: number;
  readonly failures: readonly OwnershipFailure[];
}

function isNotFound(e: unknown): boolean {
  return (e as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
}

async function rootStat(dir: string): Promise<VolumeRootStat | undefined> {
  try {
    const st = await stat(dir);
    return { isDirectory: st.isDirectory(), gid: st.gid, mode: st.mode };
  } catch {
    return undefined;
  }
}

/**
 * Gives the volume at `dir` the group and modes of `own` (see the module notes).
 *
 * @throws {@link VolumeOwnershipError} when `dir` or a directory under it cannot be read
 */
export async function setVolumeOwnership(dir: string, own: VolumeOwnership): Promise<OwnershipResult> {
  if (!shouldWalkVolume(own, await rootStat(dir))) return { walked: false, paths: 0, failures: [] };
  const failures: OwnershipFailure[] = [];
  let paths = 0;

  const change = async (path: string, kind: OwnershipPathKind, mode: number): Promise<void> => {
    paths++;
    try {
      await lchown(path, -1, own.fsGroup);
    } catch (e) {
      if (isNotFound(e)) return;
      failures.push({ path, message: `lchown: ${(e as Error).message}` });
    }
    const next = ownershipMode(mode, kind, own.readOnly);
    if (next === undefined) return;
    try {
      await chmod(path, next);
    } catch (e) {
      if (!isNotFound(e)) failures.push({ path, message: `chmod: ${(e as Error).message}` });
    }
  };

  const visit = async (path: string, isRoot: boolean): Promise<void> => {
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = await lstat(path);
    } catch (e) {
      if (!isRoot && isNotFound(e)) return;
      throw new VolumeOwnershipError(`cannot set ownership of ${path}`, { cause: e });
    }
    if (st.isSymbolicLink()) return change(path, "symlink", st.mode);
    if (!st.isDirectory()) return change(path, "file", st.mode);
    let names: string[];
    try {
      names = await readdir(path);
    } catch (e) {
      if (!isRoot && isNotFound(e)) return;
      throw new VolumeOwnershipError(`cannot set ownership of ${path}`, { cause: e });
    }
    for (const name of names) await visit(posix.join(path, name), false);
    await change(path, "directory", st.mode);
  };

  await visit(dir, true);
  return { walked: true, paths, failures };
}
