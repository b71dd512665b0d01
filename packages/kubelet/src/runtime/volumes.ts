/**
 * Pod volumes on the host: `emptyDir` (a directory under
 * `<rootDir>/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>`, a tmpfs mounted
 * there for `medium: Memory`, with `sizeLimit` as its size), `hostPath` (created
 * for `DirectoryOrCreate` / `FileOrCreate`, checked for the other types), and,
 * through {@link setUpAllPodVolumes} with an object provider, the API-backed
 * `configMap`, `secret`, `downwardAPI` and `projected` volumes (see
 * `volumes/api-volumes.ts`; `secret`, `downwardAPI` and `projected` ones on a
 * tmpfs, as kubelet keeps them). Also the pod's own files: per-container termination
 * message files and the managed `/etc/hosts`.
 *
 * With the pod's `securityContext.fsGroup`, an emptyDir gets the group (group
 * read / write, setgid directories; see `volumes/ownership.ts`) once, when it is
 * set up: a `ready` file under `<pod dir>/plugins/kubernetes.io~empty-dir/<name>`
 * (kubelet's layout) marks it done, so later syncs leave the containers' files
 * alone; a Memory emptyDir whose tmpfs had to be mounted again is owned again.
 * hostPath volumes are never changed.
 *
 * @module
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { posix } from "node:path";
import { promisify } from "node:util";
import { type Pod, WorknodeError } from "@worknode/core";
import { podVolumeDirectory } from "../container-config.js";
import { parseQuantity } from "../quantity.js";
import {
  type ApiVolumeContext,
  isMemoryBackedVolume,
  setUpApiVolumes,
  type VolumeFailure,
} from "../volumes/api-volumes.js";
import { volumeOwnershipFor } from "../volumes/ownership.js";
import { setVolumeOwnership } from "../volumes/set-volume-ownership.js";

const execFileP = promisify(execFile);

/** The emptyDir plugin directory name. */
export const EMPTY_DIR_PLUGIN = "kubernetes.io~empty-dir";

/** A volume could not be set up (reported as a `FailedMount`-like waiting message). */
export class VolumeSetupError extends WorknodeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("VOLUME_SETUP", message, options);
  }
}

/** The pod's directory under the kubelet root: `<rootDir>/pods/<uid>`. */
export function podDirectory(rootDir: string, uid: string): string {
  return posix.join(rootDir, "pods", uid);
}

/** The emptyDir's `ready` marker: `<pod dir>/plugins/kubernetes.io~empty-dir/<name>/ready`. */
export function emptyDirReadyFile(rootDir: string, uid: string, volumeName: string): string {
  return posix.join(podDirectory(rootDir, uid), "plugins", EMPTY_DIR_PLUGIN, volumeName, "ready");
}

async function isMountPoint(path: string): Promise<boolean> {
  const text = await readFile("/proc/self/mountinfo", "utf8").catch(() => "");
  return text.split("\n").some((l) => l.split(" ")[4] === path);
}

/** Mounts a tmpfs on `dir` (created 0755) unless something is mounted there already. */
async function ensureTmpfs(dir: string, what: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  if (await isMountPoint(dir)) return;
  try {
    await execFileP("mount", ["-t", "tmpfs", "-o", "mode=0755", "tmpfs", dir]);
  } catch (e) {
    throw new VolumeSetupError(`cannot mount tmpfs for ${what}`, { cause: e });
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Creates the pod's volumes and returns the host path of each by volume name
 * (for `buildContainerConfig`). Unsupported volume kinds are left out (a
 * container mounting one then fails with `CreateContainerConfigError`).
 */
export async function setUpPodVolumes(pod: Pod, rootDir: string): Promise<Map<string, string>> {
  const uid = pod.metadata?.uid ?? "";
  const out = new Map<string, string>();
  for (const v of pod.spec?.volumes ?? []) {
    if (v.emptyDir) {
      const dir = podVolumeDirectory(rootDir, uid, EMPTY_DIR_PLUGIN, v.name);
      const ready = emptyDirReadyFile(rootDir, uid, v.name);
      const wasReady = await exists(ready);
      let mounted = false;
      await mkdir(dir, { recursive: true, mode: 0o777 });
      if (v.emptyDir.medium === "Memory" && !(await isMountPoint(dir))) {
        mounted = true;
        const opts = ["mode=0777"];
        const size = v.emptyDir.sizeLimit ? parseQuantity(String(v.emptyDir.sizeLimit)).value() : 0;
        if (size > 0) opts.push(`size=${size}`);
        try {
          await execFileP("mount", ["-t", "tmpfs", "-o", opts.join(","), "tmpfs", dir]);
        } catch (e) {
          throw new VolumeSetupError(`cannot mount tmpfs for emptyDir ${v.name}`, { cause: e });
        }
      }
      if (!wasReady || mounted) {
        const own = volumeOwnershipFor(pod, v);
        if (own) {
          try {
            await setVolumeOwnership(dir, own);
          } catch (e) {
            throw new VolumeSetupError(`cannot set the ownership of emptyDir ${v.name}`, { cause: e });
          }
        }
        if (!wasReady) {
          await mkdir(posix.dirname(ready), { recursive: true });
          await writeFile(ready, "");
        }
      }
      out.set(v.name, dir);
    } else if (v.hostPath) {
      const p = v.hostPath.path;
      const type = v.hostPath.type ?? "";
      if (type === "DirectoryOrCreate") await mkdir(p, { recursive: true, mode: 0o755 });
      else if (type === "FileOrCreate" && !(await exists(p))) {
        await mkdir(posix.dirname(p), { recursive: true });
        await writeFile(p, "", { mode: 0o644 });
      } else if (type !== "" && !(await exists(p))) {
        throw new VolumeSetupError(`hostPath type check failed: ${p} does not exist`);
      }
      out.set(v.name, p);
    }
  }
  return out;
}

/**
 * Creates an empty termination message file for a new container instance:
 * `<pod dir>/containers/<name>/<random>` (kubelet's layout).
 */
export async function makeTerminationMessageFile(
  rootDir: string,
  uid: string,
  name: string,
): Promise<string> {
  const dir = posix.join(podDirectory(rootDir, uid), "containers", name);
  await mkdir(dir, { recursive: true });
  const file = posix.join(dir, randomBytes(4).toString("hex"));
  await writeFile(file, "", { mode: 0o666 });
  return file;
}

/** Writes the pod's managed `/etc/hosts` (localhost entries and the pod's own IPs and hostname). */
export async function writeEtcHosts(
  rootDir: string,
  uid: string,
  podIPs: readonly string[],
  hostname: string,
): Promise<string> {
  const file = posix.join(podDirectory(rootDir, uid), "etc-hosts");
  const lines = [
    "# Kubernetes-managed hosts file.",
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "fe00::0\tip6-mcastprefix",
    "fe00::1\tip6-allnodes",
    "fe00::2\tip6-allrouters",
    ...podIPs.map((ip) => `${ip}\t${hostname}`),
  ];
  await mkdir(posix.dirname(file), { recursive: true });
  await writeFile(file, `${lines.join("\n")}\n`, { mode: 0o644 });
  return file;
}

/** Removes the pod directory, unmounting tmpfs emptyDirs first. */
export async function cleanUpPodDirectory(rootDir: string, uid: string): Promise<void> {
  if (!uid) return;
  const dir = podDirectory(rootDir, uid);
  const text = await readFile("/proc/self/mountinfo", "utf8").catch(() => "");
  const mounts = text
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await execFileP("umount", [m]).catch(() => {});
  await rm(dir, { recursive: true, force: true });
}

/** The outcome of {@link setUpAllPodVolumes}. */
export interface PodVolumesResult {
  /** Host path by volume name, for every volume that is set up. */
  readonly paths: Map<string, string>;
  /** API-backed volumes whose files changed on this call. */
  readonly updated: readonly string[];
  /** Volumes that could not be set up, with kubelet's `FailedMount` messages. */
  readonly failures: readonly VolumeFailure[];
}

/**
 * Sets up every volume of the pod: emptyDir and hostPath ({@link setUpPodVolumes})
 * and, when `api` is given, the API-backed ones. Idempotent: run on every sync so
 * that changed ConfigMaps, Secrets, tokens and pod fields update the files.
 * An emptyDir / hostPath failure is reported like an API volume failure.
 */
export async function setUpAllPodVolumes(
  pod: Pod,
  rootDir: string,
  api?: Omit<ApiVolumeContext, "rootDir">,
): Promise<PodVolumesResult> {
  let paths: Map<string, string>;
  const failures: VolumeFailure[] = [];
  try {
    paths = await setUpPodVolumes(pod, rootDir);
  } catch (e) {
    paths = new Map();
    failures.push({ volume: "", message: e instanceof Error ? e.message : String(e) });
  }
  if (!api) return { paths, updated: [], failures };
  const r = await setUpApiVolumes(pod, {
    ...api,
    rootDir,
    prepareDirectory: async (v, dir) => {
      if (isMemoryBackedVolume(v)) await ensureTmpfs(dir, `volume ${v.name}`);
    },
  });
  for (const [k, v] of r.paths) paths.set(k, v);
  return { paths, updated: r.updated, failures: [...failures, ...r.failures] };
}
