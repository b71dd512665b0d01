/**
 * Mirror pods, as kubelet's `pkg/kubelet/pod` and `mirror_client.go` define
 * them: the API-server copy of a static pod, marked with the
 * `kubernetes.io/config.mirror` annotation (the static pod's config hash) and
 * owned by the node. Pure functions: what a mirror pod looks like, which pods
 * are static or mirrors, and what to do with the mirror of a static pod.
 *
 * @module
 */
import { ANNOTATION_CONFIG_HASH, ANNOTATION_CONFIG_SOURCE, type Pod } from "@worknode/core";

/** Annotation marking a mirror pod; its value is the static pod's config hash. */
export const ANNOTATION_CONFIG_MIRROR = "kubernetes.io/config.mirror";
/** Value of `kubernetes.io/config.source` for pods from the API server. */
export const CONFIG_SOURCE_API = "api";

/** The node a mirror pod belongs to (its owner reference). */
export interface MirrorPodOwner {
  /** Node name. */
  readonly name: string;
  /** Node UID (NodeRestriction checks it). */
  readonly uid: string;
}

/** True for a mirror pod (it carries `kubernetes.io/config.mirror`). */
export function isMirrorPod(pod: Pod): boolean {
  return pod.metadata?.annotations?.[ANNOTATION_CONFIG_MIRROR] !== undefined;
}

/** The pod's `kubernetes.io/config.source`, `api` when it has none (kubelet's `GetPodSource`). */
export function podSource(pod: Pod): string {
  return pod.metadata?.annotations?.[ANNOTATION_CONFIG_SOURCE] ?? CONFIG_SOURCE_API;
}

/** True for a static pod: one whose source is not the API server (kubelet's `IsStaticPod`). */
export function isStaticPod(pod: Pod): boolean {
  return podSource(pod) !== CONFIG_SOURCE_API;
}

/** The config hash of a static pod (`kubernetes.io/config.hash`, else its UID). */
export function staticPodHash(pod: Pod): string {
  return pod.metadata?.annotations?.[ANNOTATION_CONFIG_HASH] ?? pod.metadata?.uid ?? "";
}

/** The hash a mirror pod mirrors, if it is one. */
export function mirrorPodHash(pod: Pod): string | undefined {
  return pod.metadata?.annotations?.[ANNOTATION_CONFIG_MIRROR];
}

/** True when `mirror` is the mirror of `staticPod`'s current version (kubelet's `IsMirrorPodOf`). */
export function isMirrorPodOf(mirror: Pod, staticPod: Pod): boolean {
  const hash = mirrorPodHash(mirror);
  return (
    hash !== undefined &&
    hash === staticPodHash(staticPod) &&
    mirror.metadata?.name === staticPod.metadata?.name &&
    mirror.metadata?.namespace === staticPod.metadata?.namespace
  );
}

/** True when the mirror pod has a controller owner reference to the node (name and UID). */
export function isOwnedByNode(mirror: Pod, node: MirrorPodOwner): boolean {
  return (mirror.metadata?.ownerReferences ?? []).some(
    (r) =>
      r.kind === "Node" &&
      r.apiVersion === "v1" &&
      r.name === node.name &&
      (node.uid === "" || r.uid === node.uid) &&
      r.controller === true,
  );
}

/**
 * The mirror pod of a static pod (kubelet's `CreateMirrorPod`): the same
 * metadata name, namespace, labels and annotations plus
 * `kubernetes.io/config.mirror` = the config hash, a controller owner reference
 * to the node, the same spec bound to the node, and no status or server-set fields.
 */
export function buildMirrorPod(staticPod: Pod, node: MirrorPodOwner): Pod {
  const meta = staticPod.metadata ?? {};
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: meta.name ?? "",
      namespace: meta.namespace ?? "default",
      ...(meta.labels ? { labels: { ...meta.labels } } : {}),
      annotations: { ...meta.annotations, [ANNOTATION_CONFIG_MIRROR]: staticPodHash(staticPod) },
      ownerReferences: [{ apiVersion: "v1", kind: "Node", name: node.name, uid: node.uid, controller: true }],
    },
    spec: { ...structuredClone(staticPod.spec ?? { containers: [] }), nodeName: node.name },
  };
}

/** What to do about the mirror pod of one static pod. */
export type MirrorPodAction =
  /** No mirror pod exists: create it. */
  | "create"
  /**
   * The mirror is stale (other hash, not owned by the node) or someone deleted it
   * (`deletionTimestamp`; only the kubelet finishes that deletion): delete it
   * at once, then create it again.
   */
  | "recreate"
  /** The mirror is current. */
  | "none";

/**
 * Decides what to do about a static pod's mirror (kubelet's `syncPod` mirror
 * handling): `existing` is the API pod with the static pod's name, if any.
 * A mirror pod being deleted is deleted at once and created again: the static
 * pod keeps running and keeps its mirror.
 * A non-mirror API pod of that name is left alone (`none`): kubelet never
 * deletes a regular pod for a static one.
 */
export function mirrorPodAction(
  staticPod: Pod,
  existing: Pod | undefined,
  node: MirrorPodOwner,
): MirrorPodAction {
  if (!existing) return "create";
  if (!isMirrorPod(existing)) return "none";
  if (existing.metadata?.deletionTimestamp) return "recreate";
  if (!isMirrorPodOf(existing, staticPod) || !isOwnedByNode(existing, node)) return "recreate";
  return "none";
}

/**
 * The `DeleteOptions` body kubelet sends to delete a pod it is done with (a
 * terminated API pod, or a mirror pod): immediate, and only if the object still
 * has that UID.
 */
export function deleteOptionsFor(uid: string): {
  kind: "DeleteOptions";
  apiVersion: "v1";
  gracePeriodSeconds: 0;
  preconditions: { uid: string };
} {
  return { kind: "DeleteOptions", apiVersion: "v1", gracePeriodSeconds: 0, preconditions: { uid } };
}

/** The API path of one pod (`/api/v1/namespaces/<ns>/pods/<name>`), optionally a subresource. */
export function podPath(namespace: string, name: string, subresource?: string): string {
  const base = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`;
  return subresource ? `${base}/${subresource}` : base;
}
