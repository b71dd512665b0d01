/**
 * Labels and annotations the kubelet puts on sandboxes and containers, and
 * their parsing back. They are the kubelet's only durable state: after a crash
 * (even SIGKILL) the pod workers rebuild {@link RuntimePodStatus} from them, so
 * building and parsing must round-trip exactly.
 *
 * Names and encodings follow kubelet (pkg/kubelet/kuberuntime/labels.go,
 * pkg/kubelet/types/labels.go): the hash is hex, counts and grace periods are
 * decimal, the preStop handler and ports are JSON.
 *
 * @module
 */
import type { Pod } from "@worknode/core";
import { hashContainer } from "./container-hash.js";
import { type Container, terminationMessagePath, terminationMessagePolicy } from "./pod-spec.js";

/** Label: pod name. */
export const LABEL_POD_NAME = "io.kubernetes.pod.name";
/** Label: pod namespace. */
export const LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace";
/** Label: pod UID. */
export const LABEL_POD_UID = "io.kubernetes.pod.uid";
/** Label: container name. */
export const LABEL_CONTAINER_NAME = "io.kubernetes.container.name";
/** Annotation: container spec hash (hex). */
export const ANNOTATION_CONTAINER_HASH = "io.kubernetes.container.hash";
/** Annotation: container restart count (decimal). */
export const ANNOTATION_CONTAINER_RESTART_COUNT = "io.kubernetes.container.restartCount";
/** Annotation: container termination message path. */
export const ANNOTATION_TERMINATION_MESSAGE_PATH = "io.kubernetes.container.terminationMessagePath";
/** Annotation: container termination message policy. */
export const ANNOTATION_TERMINATION_MESSAGE_POLICY = "io.kubernetes.container.terminationMessagePolicy";
/** Annotation: pod termination grace period in seconds. */
export const ANNOTATION_POD_TERMINATION_GRACE_PERIOD = "io.kubernetes.pod.terminationGracePeriod";
/** Annotation: pod deletion grace period in seconds. */
export const ANNOTATION_POD_DELETION_GRACE_PERIOD = "io.kubernetes.pod.deletionGracePeriod";
/** Annotation: JSON of the container's preStop handler. */
export const ANNOTATION_PRESTOP_HANDLER = "io.kubernetes.container.preStopHandler";
/** Annotation: JSON of the container's ports. */
export const ANNOTATION_CONTAINER_PORTS = "io.kubernetes.container.ports";

/** A string map as CRI carries labels and annotations. */
export type StringMap = Record<string, string>;

/** Labels of a pod's sandbox: the pod's own labels plus the three pod identity labels. */
export function sandboxLabels(pod: Pod): StringMap {
  const m = pod.metadata;
  return {
    ...(m?.labels ?? {}),
    [LABEL_POD_NAME]: m?.name ?? "",
    [LABEL_POD_NAMESPACE]: m?.namespace ?? "",
    [LABEL_POD_UID]: m?.uid ?? "",
  };
}

/** Annotations of a pod's sandbox: the pod's own annotations. */
export function sandboxAnnotations(pod: Pod): StringMap {
  return { ...(pod.metadata?.annotations ?? {}) };
}

/** Labels of a container: the pod identity labels and the container name. */
export function containerLabels(pod: Pod, container: Container): StringMap {
  const m = pod.metadata;
  return {
    [LABEL_POD_NAME]: m?.name ?? "",
    [LABEL_POD_NAMESPACE]: m?.namespace ?? "",
    [LABEL_POD_UID]: m?.uid ?? "",
    [LABEL_CONTAINER_NAME]: container.name,
  };
}

/** Annotations of a container instance with restart count `restartCount`. */
export function containerAnnotations(pod: Pod, container: Container, restartCount: number): StringMap {
  const out: StringMap = {
    [ANNOTATION_CONTAINER_HASH]: hashContainer(container),
    [ANNOTATION_CONTAINER_RESTART_COUNT]: String(restartCount),
    [ANNOTATION_TERMINATION_MESSAGE_PATH]: terminationMessagePath(container),
    [ANNOTATION_TERMINATION_MESSAGE_POLICY]: terminationMessagePolicy(container),
  };
  const deletionGrace = pod.metadata?.deletionGracePeriodSeconds;
  if (deletionGrace !== undefined) out[ANNOTATION_POD_DELETION_GRACE_PERIOD] = String(deletionGrace);
  const grace = pod.spec?.terminationGracePeriodSeconds;
  if (grace !== undefined) out[ANNOTATION_POD_TERMINATION_GRACE_PERIOD] = String(grace);
  if (container.lifecycle?.preStop)
    out[ANNOTATION_PRESTOP_HANDLER] = JSON.stringify(container.lifecycle.preStop);
  if (container.ports?.length) out[ANNOTATION_CONTAINER_PORTS] = JSON.stringify(container.ports);
  return out;
}

/** Pod identity read back from sandbox or container labels. */
export interface PodLabelInfo {
  readonly podName: string;
  readonly podNamespace: string;
  readonly podUid: string;
}

/** Container identity read back from container labels. */
export interface ContainerLabelInfo extends PodLabelInfo {
  readonly containerName: string;
}

/** What the kubelet stored in a container's annotations, read back. */
export interface ContainerAnnotationInfo {
  /** Spec hash (hex), empty when missing. */
  readonly hash: string;
  /** Restart count, 0 when missing or malformed. */
  readonly restartCount: number;
  /** Termination message path, empty when missing. */
  readonly terminationMessagePath: string;
  /** Termination message policy, empty when missing. */
  readonly terminationMessagePolicy: string;
  /** Pod termination grace period in seconds, when stored. */
  readonly podTerminationGracePeriodSeconds?: number;
  /** Pod deletion grace period in seconds, when stored. */
  readonly podDeletionGracePeriodSeconds?: number;
  /** The preStop handler, when stored and valid JSON. */
  readonly preStopHandler?: unknown;
  /** The container ports, when stored and valid JSON. */
  readonly ports?: unknown;
}

/**
 * Reads the pod identity from sandbox or container labels; `undefined` when the
 * object was not created by a kubelet (any of the three labels missing).
 */
export function parsePodLabels(labels: Readonly<StringMap> | undefined): PodLabelInfo | undefined {
  const podName = labels?.[LABEL_POD_NAME];
  const podNamespace = labels?.[LABEL_POD_NAMESPACE];
  const podUid = labels?.[LABEL_POD_UID];
  if (podName === undefined || podNamespace === undefined || podUid === undefined) return undefined;
  return { podName, podNamespace, podUid };
}

/** Reads pod and container identity from container labels; `undefined` when any is missing. */
export function parseContainerLabels(
  labels: Readonly<StringMap> | undefined,
): ContainerLabelInfo | undefined {
  const pod = parsePodLabels(labels);
  const containerName = labels?.[LABEL_CONTAINER_NAME];
  if (!pod || containerName === undefined) return undefined;
  return { ...pod, containerName };
}

function parseIntOrUndefined(text: string | undefined): number | undefined {
  if (text === undefined || !/^-?\d+$/.test(text)) return undefined;
  return Number(text);
}

function parseJsonOrUndefined(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Reads back what {@link containerAnnotations} stored; tolerant of missing or malformed values. */
export function parseContainerAnnotations(
  annotations: Readonly<StringMap> | undefined,
): ContainerAnnotationInfo {
  const a = annotations ?? {};
  const hash = a[ANNOTATION_CONTAINER_HASH] ?? "";
  const info: {
    -readonly [K in keyof ContainerAnnotationInfo]: ContainerAnnotationInfo[K];
  } = {
    hash: /^[0-9a-f]+$/i.test(hash) ? hash.toLowerCase() : "",
    restartCount: Math.max(0, parseIntOrUndefined(a[ANNOTATION_CONTAINER_RESTART_COUNT]) ?? 0),
    terminationMessagePath: a[ANNOTATION_TERMINATION_MESSAGE_PATH] ?? "",
    terminationMessagePolicy: a[ANNOTATION_TERMINATION_MESSAGE_POLICY] ?? "",
  };
  const grace = parseIntOrUndefined(a[ANNOTATION_POD_TERMINATION_GRACE_PERIOD]);
  if (grace !== undefined) info.podTerminationGracePeriodSeconds = grace;
  const deletion = parseIntOrUndefined(a[ANNOTATION_POD_DELETION_GRACE_PERIOD]);
  if (deletion !== undefined) info.podDeletionGracePeriodSeconds = deletion;
  const preStop = parseJsonOrUndefined(a[ANNOTATION_PRESTOP_HANDLER]);
  if (preStop !== undefined) info.preStopHandler = preStop;
  const ports = parseJsonOrUndefined(a[ANNOTATION_CONTAINER_PORTS]);
  if (ports !== undefined) info.ports = ports;
  return info;
}
