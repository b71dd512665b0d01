/**
 * Sets up a pod's API-backed volumes (`configMap`, `secret`, `downwardAPI`,
 * `projected`) on the host: reads the objects and tokens each references
 * through a {@link PodObjectProvider}, projects them into a payload
 * (`volumePayload`, pure) and writes it with {@link writeAtomically} under
 * `<rootDir>/pods/<uid>/volumes/<plugin>/<name>`. Called on every sync of the
 * pod, so a changed source updates the files in place (an unchanged one
 * rewrites nothing). With the pod's `fsGroup`, every write gives the whole
 * volume that group (read-only ownership, see `ownership.ts`) before the new
 * data becomes visible.
 *
 * @module
 */
import type { ConfigMap, Pod, Secret } from "@worknode/core";
import { describeError } from "@worknode/core";
import { isObjectNotFound, type PodObjectProvider } from "../api-objects/provider.js";
import { podVolumeDirectory } from "../container-config.js";
import type { EnvironmentContext } from "../env.js";
import { type AtomicWriteOptions, writeAtomically } from "./atomic-writer.js";
import { ownershipMode, type VolumeOwnership, volumeOwnershipFor } from "./ownership.js";
import {
  apiVolumePlugin,
  isApiVolume,
  type PodVolume,
  type ResolvedVolumeObjects,
  volumePayload,
  volumeReferences,
} from "./projection.js";
import { setVolumeOwnership } from "./set-volume-ownership.js";

/** What API-backed volumes need besides the pod. */
export interface ApiVolumeContext extends Pick<EnvironmentContext, "podIPs" | "hostIPs" | "nodeAllocatable"> {
  readonly rootDir: string;
  readonly objects: PodObjectProvider;
  /**
   * Prepares a volume's directory before its first write (the runtime layer
   * mounts a tmpfs there for memory-backed kinds, see {@link isMemoryBackedVolume}).
   */
  readonly prepareDirectory?: (volume: PodVolume, dir: string) => Promise<void>;
}

/**
 * True for the kinds kubelet keeps in memory (a tmpfs, so secrets never reach
 * the disk): `secret`, `downwardAPI` and `projected`; `configMap` is on disk.
 */
export function isMemoryBackedVolume(v: PodVolume): boolean {
  return Boolean(v.secret || v.downwardAPI || v.projected);
}

/** A volume that could not be set up, with kubelet's `FailedMount` message. */
export interface VolumeFailure {
  readonly volume: string;
  /** `MountVolume.SetUp failed for volume "<name>" : <reason>`. */
  readonly message: string;
}

/** The outcome of {@link setUpApiVolumes}. */
export interface ApiVolumesResult {
  /** Host path by volume name, for the volumes that are set up. */
  readonly paths: Map<string, string>;
  /** Volumes whose content changed on this call. */
  readonly updated: string[];
  readonly failures: VolumeFailure[];
}

/** kubelet's FailedMount message. */
export function failedMountMessage(volume: string, reason: string): string {
  return `MountVolume.SetUp failed for volume "${volume}" : ${reason}`;
}

async function resolveFor(
  pod: Pod,
  v: PodVolume,
  objects: PodObjectProvider,
): Promise<ResolvedVolumeObjects> {
  const ns = pod.metadata?.namespace ?? "";
  const refs = volumeReferences([v]);
  const configMaps = new Map<string, ConfigMap>();
  const secrets = new Map<string, Secret>();
  const tokens = new Map<string, string>();
  const tolerate = (e: unknown) => {
    if (!isObjectNotFound(e)) throw e;
  };
  for (const name of refs.configMaps) {
    await objects.getConfigMap(ns, name).then((o) => void configMaps.set(name, o), tolerate);
  }
  for (const name of refs.secrets) {
    await objects.getSecret(ns, name).then((o) => void secrets.set(name, o), tolerate);
  }
  for (const [key, t] of refs.tokens) tokens.set(key, await objects.serviceAccountToken(pod, t));
  return { configMaps, secrets, tokens };
}

/** The atomic writer's options for a volume with managed ownership. */
function ownershipWriteOptions(own: VolumeOwnership | undefined): AtomicWriteOptions {
  if (!own) return {};
  return {
    setPermissions: async (target) => {
      await setVolumeOwnership(target, own);
    },
    finalMode: (mode) => ownershipMode(mode, "file", own.readOnly) ?? mode,
  };
}

/** Sets up (or updates) every API-backed volume of the pod (see the module notes). */
export async function setUpApiVolumes(pod: Pod, ctx: ApiVolumeContext): Promise<ApiVolumesResult> {
  const uid = pod.metadata?.uid ?? "";
  const result: ApiVolumesResult = { paths: new Map(), updated: [], failures: [] };
  for (const v of pod.spec?.volumes ?? []) {
    if (!isApiVolume(v)) continue;
    const dir = podVolumeDirectory(ctx.rootDir, uid, apiVolumePlugin(v) ?? "", v.name);
    try {
      const objects = await resolveFor(pod, v, ctx.objects);
      const payload = volumePayload(pod, v, objects, ctx);
      await ctx.prepareDirectory?.(v, dir);
      const w = await writeAtomically(
        dir,
        payload,
        undefined,
        ownershipWriteOptions(volumeOwnershipFor(pod, v)),
      );
      if (w.changed) result.updated.push(v.name);
      result.paths.set(v.name, dir);
    } catch (e) {
      result.failures.push({ volume: v.name, message: failedMountMessage(v.name, describeError(e)) });
    }
  }
  return result;
}
