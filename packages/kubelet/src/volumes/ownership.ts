/**
 * Volume ownership for a pod's `securityContext.fsGroup`, the pure decisions of
 * kubelet's `SetVolumeOwnership` (pkg/volume/volume_linux.go): which volumes get
 * it, which mode bits each path gets, and whether a volume is walked at all.
 *
 * - Every file, directory and symlink of the volume gets group `fsGroup`
 *   (symlinks themselves, never their targets).
 * - Modes are only ever widened: a writable volume adds group read + write
 *   (`0660`), a read-only one (the atomic-writer kinds: `configMap`, `secret`,
 *   `downwardAPI`, `projected`) adds owner and group read only (`0440`), so a
 *   `defaultMode: 0400` file becomes `0440`. Directories also get owner and group
 *   search (`0110`) and the setgid bit, so new files inherit the group. Files get
 *   no execute bits, and symlinks are not chmod-ed (that would change their
 *   targets).
 * - `fsGroupChangePolicy: OnRootMismatch` skips the walk when the volume root is
 *   a directory that already has group `fsGroup`, the setgid bit and at least the
 *   mode bits above; `Always` (or none) walks every time. kubelet's in-tree
 *   `emptyDir` and atomic-writer plugins pass no policy (they walk on every set-up
 *   and write), and so does worknode (see {@link volumeOwnershipFor}).
 * - `hostPath` and every other kind is never changed.
 *
 * The walk itself (lchown / chmod, not following symlinks) is in
 * `set-volume-ownership.ts`.
 *
 * @module
 */
import type { Pod } from "@worknode/core";
import type { PodVolume } from "./projection.js";

/** Group read + write, added to every path of a writable volume. */
export const OWNERSHIP_RW_MASK = 0o660;
/** Owner + group read, added to every path of a read-only volume. */
export const OWNERSHIP_RO_MASK = 0o440;
/** Owner + group search, added to directories. */
export const OWNERSHIP_EXEC_MASK = 0o110;
/** The setgid bit (as in `stat.st_mode`), added to directories. */
export const SETGID_BIT = 0o2000;

/** `fsGroupChangePolicy`: `Always` (default) or `OnRootMismatch`. */
export type FsGroupChangePolicy = "Always" | "OnRootMismatch";

/** What kind of path the walk is at (from `lstat`). */
export type OwnershipPathKind = "directory" | "file" | "symlink";

/** How one volume's ownership is managed. */
export interface VolumeOwnership {
  /** The group every path gets. */
  readonly fsGroup: number;
  /** Read-only volumes get {@link OWNERSHIP_RO_MASK}, writable ones {@link OWNERSHIP_RW_MASK}. */
  readonly readOnly: boolean;
  /** When to walk (default `Always`). */
  readonly policy?: FsGroupChangePolicy;
}

/** The root of a volume as `stat` (following symlinks) sees it; `undefined` when it cannot be read. */
export interface VolumeRootStat {
  readonly isDirectory: boolean;
  readonly gid: number;
  /** `st_mode` (only the low 12 bits are looked at). */
  readonly mode: number;
}

/** The pod's `fsGroup`, if set. */
export function podFsGroup(pod: Pod): number | undefined {
  const g = pod.spec?.securityContext?.fsGroup;
  return typeof g === "number" ? g : undefined;
}

/** The pod's `fsGroupChangePolicy` (`Always` unless it is `OnRootMismatch`). */
export function podFsGroupChangePolicy(pod: Pod): FsGroupChangePolicy {
  return pod.spec?.securityContext?.fsGroupChangePolicy === "OnRootMismatch" ? "OnRootMismatch" : "Always";
}

/**
 * True for the volume kinds whose ownership kubelet manages: `emptyDir`,
 * `configMap`, `secret`, `downwardAPI`, `projected`. `hostPath` (and any other
 * kind) is left as it is.
 */
export function supportsOwnershipManagement(v: PodVolume): boolean {
  return Boolean(v.emptyDir || v.configMap || v.secret || v.downwardAPI || v.projected);
}

/**
 * How a volume of the pod gets its ownership: `undefined` without `fsGroup` or for
 * a kind that does not support it; otherwise read-only for the atomic-writer
 * kinds and writable for `emptyDir`. Like kubelet's in-tree plugins, no change
 * policy is passed (the pod's `fsGroupChangePolicy` applies to other volume kinds
 * only), so these are walked on every set-up.
 */
export function volumeOwnershipFor(pod: Pod, v: PodVolume): VolumeOwnership | undefined {
  const fsGroup = podFsGroup(pod);
  if (fsGroup === undefined || !supportsOwnershipManagement(v)) return undefined;
  return { fsGroup, readOnly: !v.emptyDir };
}

/**
 * The mode a path gets: its current `st_mode` permission bits (low 12 bits)
 * widened by the volume's mask, plus search bits and setgid for directories.
 * `undefined` for symlinks (not chmod-ed).
 */
export function ownershipMode(mode: number, kind: OwnershipPathKind, readOnly: boolean): number | undefined {
  if (kind === "symlink") return undefined;
  let mask = readOnly ? OWNERSHIP_RO_MASK : OWNERSHIP_RW_MASK;
  if (kind === "directory") mask |= OWNERSHIP_EXEC_MASK | SETGID_BIT;
  return (mode & 0o7777) | mask;
}

/**
 * True when the volume root does not already look owned: not readable, not a
 * directory, another group, no setgid bit, or missing some of the mode bits a
 * directory gets (kubelet's `requiresPermissionChange`).
 */
export function rootNeedsOwnershipChange(
  root: VolumeRootStat | undefined,
  fsGroup: number,
  readOnly: boolean,
): boolean {
  if (!root?.isDirectory || root.gid !== fsGroup) return true;
  const want = (readOnly ? OWNERSHIP_RO_MASK : OWNERSHIP_RW_MASK) | OWNERSHIP_EXEC_MASK;
  return (root.mode & want) !== want || (root.mode & SETGID_BIT) === 0;
}

/** Whether to walk the volume: always, unless `OnRootMismatch` finds the root already owned. */
export function shouldWalkVolume(own: VolumeOwnership, root: VolumeRootStat | undefined): boolean {
  if (own.policy !== "OnRootMismatch") return true;
  return rootNeedsOwnershipChange(root, own.fsGroup, own.readOnly);
}
