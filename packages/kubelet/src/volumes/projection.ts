/**
 * What the API-backed volumes of a pod contain: pure functions turning a
 * volume source and the objects it references into a payload (relative file
 * path → bytes and mode), as kubelet's volume plugins' `MakePayload` /
 * `CollectData` do for `configMap`, `secret`, `downwardAPI` and `projected`.
 *
 * - No `items`: every key of the object's `data` (and a ConfigMap's
 *   `binaryData`) becomes a file of that name; with `items`, each item's key
 *   goes to its `path`, and a missing key fails the volume unless it is
 *   `optional`.
 * - A missing object fails the volume unless it is `optional` (then the volume
 *   is empty); in a projected volume a missing optional source adds nothing.
 * - File modes: the item's `mode`, else the volume's `defaultMode`, else 0644.
 * - A downward API item reads a pod field (`fieldRef`) or a container resource
 *   (`resourceFieldRef`, which must name its container).
 *
 * @module
 */
import type { ConfigMap, Pod, Secret } from "@worknode/core";
import { WorknodeError } from "@worknode/core";
import { containerResourceValue, type EnvironmentContext, podFieldValue } from "../env.js";
import { appContainers, initContainers, type PodSpec } from "../pod-spec.js";

/** One volume of a pod spec. */
export type PodVolume = NonNullable<PodSpec["volumes"]>[number];

/** The default file mode of API-backed volumes (0644). */
export const DEFAULT_VOLUME_FILE_MODE = 0o644;

/** One file of a volume. */
export interface FileProjection {
  readonly data: Buffer;
  readonly mode: number;
}

/** A volume's files by relative path. */
export type VolumePayload = Map<string, FileProjection>;

/** The volume's content cannot be made (missing object or key, bad field): kubelet's `FailedMount`. */
export class VolumeProjectionError extends WorknodeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("VOLUME_PROJECTION", message, options);
  }
}

/** A key-to-path item of a volume source. */
interface KeyToPath {
  key: string;
  path: string;
  mode?: number;
}

/** Objects and tokens resolved for a pod's volumes (absent object: not found). */
export interface ResolvedVolumeObjects {
  /** ConfigMaps by name; a missing name means the ConfigMap does not exist. */
  readonly configMaps: ReadonlyMap<string, ConfigMap>;
  /** Secrets by name; a missing name means the Secret does not exist. */
  readonly secrets: ReadonlyMap<string, Secret>;
  /** Service-account tokens by {@link tokenKey}. */
  readonly tokens: ReadonlyMap<string, string>;
}

/** The key of a projected service-account token in {@link ResolvedVolumeObjects.tokens}. */
export function tokenKey(audience: string | undefined, expirationSeconds: number | undefined): string {
  return `${audience ?? ""}|${expirationSeconds ?? 3600}`;
}

/** A Secret's values, decoded from base64 (`stringData` is merged by the API server, not here). */
export function secretData(secret: Secret): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(secret.data ?? {})) out[k] = Buffer.from(v, "base64");
  return out;
}

/** A ConfigMap's values: `data` as UTF-8 and `binaryData` decoded from base64. */
export function configMapData(cm: ConfigMap): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(cm.data ?? {})) out[k] = Buffer.from(v, "utf8");
  for (const [k, v] of Object.entries(cm.binaryData ?? {})) out[k] = Buffer.from(v, "base64");
  return out;
}

/** Rejects absolute paths and `..` elements (kubelet's `validatePath`). */
export function validatePayloadPath(path: string): void {
  if (path === "") throw new VolumeProjectionError("invalid path: must not be empty");
  if (path.startsWith("/"))
    throw new VolumeProjectionError(`invalid path ${JSON.stringify(path)}: must be relative`);
  if (path.split("/").includes("..")) {
    throw new VolumeProjectionError(`invalid path ${JSON.stringify(path)}: must not contain '..'`);
  }
  if (path.startsWith(".."))
    throw new VolumeProjectionError(`invalid path ${JSON.stringify(path)}: must not start with '..'`);
}

function keyPayload(
  what: "configmap" | "secret",
  data: Record<string, Buffer>,
  items: readonly KeyToPath[] | undefined,
  defaultMode: number,
  optional: boolean,
  out: VolumePayload,
): void {
  if (!items || items.length === 0) {
    for (const [k, v] of Object.entries(data)) out.set(k, { data: v, mode: defaultMode });
    return;
  }
  for (const it of items) {
    const v = data[it.key];
    if (v === undefined) {
      if (optional) continue;
      throw new VolumeProjectionError(
        `${what} references non-existent ${what === "secret" ? "secret" : "config"} key: ${it.key}`,
      );
    }
    out.set(it.path, { data: v, mode: it.mode ?? defaultMode });
  }
}

/** The payload of a `configMap` volume (`cm` undefined: the ConfigMap does not exist). */
export function configMapPayload(
  source: NonNullable<PodVolume["configMap"]>,
  cm: ConfigMap | undefined,
): VolumePayload {
  const out: VolumePayload = new Map();
  const optional = source.optional === true;
  if (!cm) {
    if (optional) return out;
    throw new VolumeProjectionError(`configmap "${source.name ?? ""}" not found`);
  }
  keyPayload(
    "configmap",
    configMapData(cm),
    source.items,
    source.defaultMode ?? DEFAULT_VOLUME_FILE_MODE,
    optional,
    out,
  );
  return out;
}

/** The payload of a `secret` volume (`secret` undefined: the Secret does not exist). */
export function secretPayload(
  source: NonNullable<PodVolume["secret"]>,
  secret: Secret | undefined,
): VolumePayload {
  const out: VolumePayload = new Map();
  const optional = source.optional === true;
  if (!secret) {
    if (optional) return out;
    throw new VolumeProjectionError(`secret "${source.secretName ?? ""}" not found`);
  }
  keyPayload(
    "secret",
    secretData(secret),
    source.items,
    source.defaultMode ?? DEFAULT_VOLUME_FILE_MODE,
    optional,
    out,
  );
  return out;
}

type DownwardItem = NonNullable<NonNullable<PodVolume["downwardAPI"]>["items"]>[number];

/** The files of downward API items (a `downwardAPI` volume or projected source). */
export function downwardApiPayload(
  pod: Pod,
  items: readonly DownwardItem[] | undefined,
  defaultMode: number,
  ctx: Pick<EnvironmentContext, "podIPs" | "hostIPs" | "nodeAllocatable">,
  out: VolumePayload = new Map(),
): VolumePayload {
  for (const it of items ?? []) {
    let value: string;
    try {
      if (it.fieldRef) {
        value = podFieldValue(pod, it.fieldRef.fieldPath, ctx, it.fieldRef.apiVersion);
      } else if (it.resourceFieldRef) {
        const ref = it.resourceFieldRef;
        const c = [...initContainers(pod), ...appContainers(pod)].find((x) => x.name === ref.containerName);
        if (!c)
          throw new VolumeProjectionError(`container "${ref.containerName ?? ""}" not found in the pod`);
        value = containerResourceValue(
          c,
          ref.resource,
          ref.divisor as string | undefined,
          ctx.nodeAllocatable,
        );
      } else {
        continue;
      }
    } catch (e) {
      if (e instanceof VolumeProjectionError) throw e;
      throw new VolumeProjectionError(`downward API item ${it.path}: ${(e as Error).message}`, { cause: e });
    }
    out.set(it.path, { data: Buffer.from(value, "utf8"), mode: it.mode ?? defaultMode });
  }
  return out;
}

/** The payload of a `projected` volume (sources in order; a later file of the same path wins). */
export function projectedPayload(
  pod: Pod,
  source: NonNullable<PodVolume["projected"]>,
  objects: ResolvedVolumeObjects,
  ctx: Pick<EnvironmentContext, "podIPs" | "hostIPs" | "nodeAllocatable">,
): VolumePayload {
  const out: VolumePayload = new Map();
  const defaultMode = source.defaultMode ?? DEFAULT_VOLUME_FILE_MODE;
  for (const s of source.sources ?? []) {
    if (s.configMap) {
      const cm = objects.configMaps.get(s.configMap.name ?? "");
      const optional = s.configMap.optional === true;
      if (!cm) {
        if (optional) continue;
        throw new VolumeProjectionError(`configmap "${s.configMap.name ?? ""}" not found`);
      }
      keyPayload("configmap", configMapData(cm), s.configMap.items, defaultMode, optional, out);
    } else if (s.secret) {
      const secret = objects.secrets.get(s.secret.name ?? "");
      const optional = s.secret.optional === true;
      if (!secret) {
        if (optional) continue;
        throw new VolumeProjectionError(`secret "${s.secret.name ?? ""}" not found`);
      }
      keyPayload("secret", secretData(secret), s.secret.items, defaultMode, optional, out);
    } else if (s.downwardAPI) {
      downwardApiPayload(pod, s.downwardAPI.items, defaultMode, ctx, out);
    } else if (s.serviceAccountToken) {
      const t = s.serviceAccountToken;
      const token = objects.tokens.get(tokenKey(t.audience, t.expirationSeconds));
      if (token === undefined) throw new VolumeProjectionError(`no service account token for path ${t.path}`);
      out.set(t.path, { data: Buffer.from(token, "utf8"), mode: defaultMode });
    }
  }
  return out;
}

/** The ConfigMaps, Secrets and tokens a volume references. */
export interface VolumeReferences {
  readonly configMaps: Set<string>;
  readonly secrets: Set<string>;
  readonly tokens: Map<string, { audience?: string; expirationSeconds?: number }>;
}

/** Collects what a pod's API-backed volumes reference (to fetch before projecting). */
export function volumeReferences(volumes: readonly PodVolume[]): VolumeReferences {
  const refs: VolumeReferences = { configMaps: new Set(), secrets: new Set(), tokens: new Map() };
  for (const v of volumes) {
    if (v.configMap) refs.configMaps.add(v.configMap.name ?? "");
    if (v.secret) refs.secrets.add(v.secret.secretName ?? "");
    for (const s of v.projected?.sources ?? []) {
      if (s.configMap) refs.configMaps.add(s.configMap.name ?? "");
      if (s.secret) refs.secrets.add(s.secret.name ?? "");
      if (s.serviceAccountToken) {
        const t = s.serviceAccountToken;
        refs.tokens.set(tokenKey(t.audience, t.expirationSeconds), {
          ...(t.audience ? { audience: t.audience } : {}),
          ...(t.expirationSeconds !== undefined ? { expirationSeconds: t.expirationSeconds } : {}),
        });
      }
    }
  }
  return refs;
}

/** True for the volume kinds this module projects. */
export function isApiVolume(v: PodVolume): boolean {
  return Boolean(v.configMap || v.secret || v.downwardAPI || v.projected);
}

/** The kubelet plugin directory of an API-backed volume kind. */
export function apiVolumePlugin(v: PodVolume): string | undefined {
  if (v.configMap) return "kubernetes.io~configmap";
  if (v.secret) return "kubernetes.io~secret";
  if (v.downwardAPI) return "kubernetes.io~downward-api";
  if (v.projected) return "kubernetes.io~projected";
  return undefined;
}

/** The payload of one API-backed volume (see the module notes). */
export function volumePayload(
  pod: Pod,
  v: PodVolume,
  objects: ResolvedVolumeObjects,
  ctx: Pick<EnvironmentContext, "podIPs" | "hostIPs" | "nodeAllocatable">,
): VolumePayload {
  if (v.configMap) return configMapPayload(v.configMap, objects.configMaps.get(v.configMap.name ?? ""));
  if (v.secret) return secretPayload(v.secret, objects.secrets.get(v.secret.secretName ?? ""));
  if (v.downwardAPI) {
    return downwardApiPayload(
      pod,
      v.downwardAPI.items,
      v.downwardAPI.defaultMode ?? DEFAULT_VOLUME_FILE_MODE,
      ctx,
    );
  }
  if (v.projected) return projectedPayload(pod, v.projected, objects, ctx);
  throw new VolumeProjectionError(`volume ${v.name} is not an API-backed volume`);
}
