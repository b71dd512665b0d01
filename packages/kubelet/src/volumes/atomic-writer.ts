/**
 * kubelet's atomic writer (pkg/volume/util/atomic_writer.go): a volume's files
 * are replaced all at once, so a reader inside a container never sees a mix of
 * old and new files.
 *
 * Layout of the target directory:
 * ```
 * ..2026_11_24_23_40_01.123456789/   timestamped data directory (the payload)
 * ..data -> ..2026_11_24_23_40_01.123456789
 * key -> ..data/key                  one symlink per top-level payload entry
 * ```
 * A write that changes nothing does nothing. Otherwise a new timestamped
 * directory is filled, the user-visible symlinks of new entries are created,
 * `..data` is swapped by renaming a fresh `..data_tmp` symlink over it (atomic),
 * then entries no longer in the payload and the old data directory are removed.
 * An optional `setPermissions` step (volume ownership for `fsGroup`) runs on
 * the whole target just before the swap, as kubelet's `setPerms` does.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import {
  chmod,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { posix } from "node:path";
import { type FileProjection, type VolumePayload, validatePayloadPath } from "./projection.js";

/** The symlink to the current data directory. */
export const DATA_DIR_NAME = "..data";
/** The temporary symlink renamed over {@link DATA_DIR_NAME}. */
export const NEW_DATA_DIR_NAME = "..data_tmp";

/** What a write did. */
export interface AtomicWriteResult {
  /** False when the payload equalled what was there. */
  readonly changed: boolean;
  /** The timestamped directory now in use. */
  readonly dataDir: string;
}

/** Options of {@link writeAtomically}. */
export interface AtomicWriteOptions {
  /**
   * Runs on the target directory once the new data directory and the new
   * user-visible symlinks exist, before `..data` is swapped (kubelet's `setPerms`:
   * volume ownership for the pod's `fsGroup`). Not run when nothing changed.
   */
  readonly setPermissions?: (target: string) => Promise<void>;
  /**
   * The mode a payload file ends up with once `setPermissions` ran (so an
   * unchanged payload is recognized); default the payload's own mode.
   */
  readonly finalMode?: (mode: number) => number;
}

/** A timestamped data directory name: `..YYYY_MM_DD_HH_MM_SS.<random>`. */
export function timestampedDirName(now: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  const ts = `${now.getUTCFullYear()}_${p(now.getUTCMonth() + 1)}_${p(now.getUTCDate())}_${p(now.getUTCHours())}_${p(now.getUTCMinutes())}_${p(now.getUTCSeconds())}`;
  return `..${ts}.${randomBytes(5).readUIntBE(0, 5).toString().padStart(10, "0").slice(0, 10)}`;
}

/** The top-level entries of a payload (the user-visible symlinks). */
export function userVisiblePaths(payload: VolumePayload): Set<string> {
  const out = new Set<string>();
  for (const path of payload.keys()) out.add(path.split("/")[0] ?? path);
  return out;
}

async function currentDataDir(target: string): Promise<string | undefined> {
  try {
    return await readlink(posix.join(target, DATA_DIR_NAME));
  } catch {
    return undefined;
  }
}

async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listFiles(posix.join(dir, e.name), rel)));
    else out.push(rel);
  }
  return out;
}

async function sameContent(
  dir: string,
  payload: VolumePayload,
  finalMode: (mode: number) => number,
): Promise<boolean> {
  let files: string[];
  try {
    files = await listFiles(dir);
  } catch {
    return false;
  }
  if (files.length !== payload.size) return false;
  for (const [path, f] of payload) {
    try {
      const full = posix.join(dir, path);
      const [data, st] = await Promise.all([readFile(full), stat(full)]);
      if (!data.equals(f.data) || (st.mode & 0o7777) !== finalMode(f.mode)) return false;
    } catch {
      return false;
    }
  }
  return true;
}

async function writePayload(dir: string, payload: VolumePayload): Promise<void> {
  for (const [path, f] of payload as Map<string, FileProjection>) {
    const full = posix.join(dir, path);
    await mkdir(posix.dirname(full), { recursive: true, mode: 0o755 });
    await writeFile(full, f.data, { mode: f.mode });
    await chmod(full, f.mode);
  }
}

/**
 * Writes `payload` into `target` atomically (see the module notes).
 *
 * @throws {@link VolumeProjectionError} for invalid paths; I/O errors as they come
 */
export async function writeAtomically(
  target: string,
  payload: VolumePayload,
  now: Date = new Date(),
  options: AtomicWriteOptions = {},
): Promise<AtomicWriteResult> {
  for (const path of payload.keys()) validatePayloadPath(path);
  await mkdir(target, { recursive: true, mode: 0o755 });
  const old = await currentDataDir(target);
  if (old && (await sameContent(posix.join(target, old), payload, options.finalMode ?? ((m) => m)))) {
    return { changed: false, dataDir: old };
  }
  const name = timestampedDirName(now);
  const dataDir = posix.join(target, name);
  await mkdir(dataDir, { mode: 0o755 });
  await chmod(dataDir, 0o755);
  await writePayload(dataDir, payload);

  const visible = userVisiblePaths(payload);
  for (const p of visible) {
    const link = posix.join(target, p);
    const exists = await lstat(link).then(
      () => true,
      () => false,
    );
    if (!exists) await symlink(posix.join(DATA_DIR_NAME, p), link);
  }

  await options.setPermissions?.(target);
  const tmp = posix.join(target, NEW_DATA_DIR_NAME);
  await rm(tmp, { force: true });
  await symlink(name, tmp);
  await rename(tmp, posix.join(target, DATA_DIR_NAME));

  for (const e of await readdir(target)) {
    if (e.startsWith("..") || visible.has(e)) continue;
    await rm(posix.join(target, e), { recursive: true, force: true });
  }
  for (const e of await readdir(target)) {
    if (e.startsWith("..") && e !== DATA_DIR_NAME && e !== name) {
      await rm(posix.join(target, e), { recursive: true, force: true });
    }
  }
  return { changed: true, dataDir: name };
}
