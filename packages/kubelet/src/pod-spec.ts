/**
 * Reading a wire-form {@link Pod} the way kubelet sees it after API defaulting.
 *
 * Static pods from a manifest directory are not defaulted field by field (the
 * manifest source only sets name, namespace, UID, node name and annotations), so
 * every reader here applies the Kubernetes defaults itself:
 * `restartPolicy: Always`, `terminationGracePeriodSeconds: 30`, `dnsPolicy: ClusterFirst`,
 * `terminationMessagePath: /dev/termination-log`, `terminationMessagePolicy: File`,
 * `imagePullPolicy` (`Always` for `:latest` or untagged images, else `IfNotPresent`).
 *
 * @module
 */
import type { V1Container } from "@kubernetes/client-node";
import type { Pod, Wire } from "@worknode/core";

/** A container spec in wire form. */
export type Container = Wire<V1Container>;
/** A pod spec in wire form. */
export type PodSpec = NonNullable<Pod["spec"]>;
/** A pod status in wire form. */
export type PodStatus = NonNullable<Pod["status"]>;
/** A container status in wire form. */
export type ContainerStatus = NonNullable<PodStatus["containerStatuses"]>[number];
/** A pod condition in wire form. */
export type PodCondition = NonNullable<PodStatus["conditions"]>[number];
/** A container state in wire form. */
export type ContainerState = NonNullable<ContainerStatus["state"]>;

/** `spec.restartPolicy` values. */
export type RestartPolicy = "Always" | "OnFailure" | "Never";
/** `status.phase` values. */
export type PodPhase = "Pending" | "Running" | "Succeeded" | "Failed" | "Unknown";

/** Default `terminationGracePeriodSeconds`. */
export const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS = 30;
/** Default `terminationMessagePath`. */
export const DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log";

/** The pod's restart policy, `Always` when unset. */
export function restartPolicyOf(pod: Pod): RestartPolicy {
  const p = pod.spec?.restartPolicy;
  return p === "OnFailure" || p === "Never" ? p : "Always";
}

/** kubelet's `shouldRestartOnFailure`: true unless the restart policy is `Never`. */
export function shouldRestartOnFailure(pod: Pod): boolean {
  return restartPolicyOf(pod) !== "Never";
}

/** The pod's `terminationGracePeriodSeconds`, 30 when unset. */
export function terminationGracePeriodSeconds(pod: Pod): number {
  return pod.spec?.terminationGracePeriodSeconds ?? DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS;
}

/** True when the pod uses the node's network namespace. */
export function isHostNetwork(pod: Pod): boolean {
  return pod.spec?.hostNetwork === true;
}

/** The pod's app containers (never undefined). */
export function appContainers(pod: Pod): readonly Container[] {
  return pod.spec?.containers ?? [];
}

/** The pod's init containers (never undefined). */
export function initContainers(pod: Pod): readonly Container[] {
  return pod.spec?.initContainers ?? [];
}

/**
 * True for a restartable (sidecar) init container: an init container with
 * `restartPolicy: Always` (KEP-753). It keeps running beside the app containers.
 */
export function isRestartableInitContainer(c: Container): boolean {
  return c.restartPolicy === "Always";
}

/** The pod's restartable (sidecar) init containers, in spec order. */
export function sidecarContainers(pod: Pod): readonly Container[] {
  return initContainers(pod).filter(isRestartableInitContainer);
}

/** kubelet's `format.Pod`: `name_namespace(uid)`, used in messages. */
export function formatPod(pod: Pod): string {
  const m = pod.metadata;
  return `${m?.name ?? ""}_${m?.namespace ?? ""}(${m?.uid ?? ""})`;
}

/** The pod's UID, name and namespace (empty strings when missing). */
export function podIdentity(pod: Pod): { uid: string; name: string; namespace: string } {
  return {
    uid: pod.metadata?.uid ?? "",
    name: pod.metadata?.name ?? "",
    namespace: pod.metadata?.namespace ?? "",
  };
}

/** True once the pod has a deletion timestamp (it is terminating). */
export function isPodDeleted(pod: Pod): boolean {
  return Boolean(pod.metadata?.deletionTimestamp);
}

/** A container's `terminationMessagePath`, `/dev/termination-log` when unset. */
export function terminationMessagePath(c: Container): string {
  return c.terminationMessagePath || DEFAULT_TERMINATION_MESSAGE_PATH;
}

/** A container's `terminationMessagePolicy`, `File` when unset. */
export function terminationMessagePolicy(c: Container): string {
  return c.terminationMessagePolicy || "File";
}

/**
 * A container's image pull policy: the set value, else `Always` when the image has
 * no tag or the `latest` tag and no digest, else `IfNotPresent` (API defaulting).
 */
export function imagePullPolicy(c: Container): "Always" | "IfNotPresent" | "Never" {
  const p = c.imagePullPolicy;
  if (p === "Always" || p === "IfNotPresent" || p === "Never") return p;
  const image = c.image ?? "";
  if (image.includes("@")) return "IfNotPresent";
  const lastSlash = image.lastIndexOf("/");
  const colon = image.indexOf(":", lastSlash + 1);
  const tag = colon === -1 ? "" : image.slice(colon + 1);
  return tag === "" || tag === "latest" ? "Always" : "IfNotPresent";
}

/**
 * Whether the image must be pulled before creating the container (kubelet's
 * `shouldPullImage`): `Always` pulls, `Never` never does, `IfNotPresent` pulls
 * when the image is not present.
 */
export function shouldPullImage(c: Container, imagePresent: boolean): boolean {
  const p = imagePullPolicy(c);
  if (p === "Never") return false;
  return p === "Always" || !imagePresent;
}

/** Formats epoch milliseconds as a Kubernetes timestamp (RFC 3339, whole seconds, UTC). */
export function formatTimestamp(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

/** Formats milliseconds the way Go prints a `time.Duration` of whole seconds (`10s`, `2m40s`, `5m0s`). */
export function formatGoDuration(ms: number): string {
  if (ms < 1000) return ms === 0 ? "0s" : `${ms}ms`;
  const total = ms / 1000;
  const h = Math.floor(total / 3600);
  const m = Math.floor((total - h * 3600) / 60);
  const s = total - h * 3600 - m * 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}
