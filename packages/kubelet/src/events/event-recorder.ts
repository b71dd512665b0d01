/**
 * Kubernetes events the kubelet records about pods: the {@link EventRecorder}
 * contract, kubelet's event reasons (pkg/kubelet/events), the involved-object
 * reference of a pod or one of its containers, and the recorders without an
 * API server (log only, or nothing).
 *
 * @module
 */
import type { Logger, Pod } from "@worknode/core";
import type { Container } from "../pod-spec.js";

/** `Normal` or `Warning`. */
export type EventType = "Normal" | "Warning";

/** kubelet's event reasons (pkg/kubelet/events). */
export const EventReason = {
  PullingImage: "Pulling",
  PulledImage: "Pulled",
  FailedToPullImage: "Failed",
  FailedToInspectImage: "InspectFailed",
  ErrImageNeverPull: "ErrImageNeverPull",
  BackOffPullImage: "BackOff",
  CreatedContainer: "Created",
  StartedContainer: "Started",
  FailedToCreateContainer: "Failed",
  FailedToStartContainer: "Failed",
  KillingContainer: "Killing",
  BackOffStartContainer: "BackOff",
  ContainerUnhealthy: "Unhealthy",
  FailedPostStartHook: "FailedPostStartHook",
  FailedMountVolume: "FailedMount",
  FailedCreatePodSandBox: "FailedCreatePodSandBox",
  SandboxChanged: "SandboxChanged",
  FailedToRetrieveImagePullSecret: "FailedToRetrieveImagePullSecret",
  InvalidEnvironmentVariableNames: "InvalidEnvironmentVariableNames",
  MissingClusterDNS: "MissingClusterDNS",
} as const;

/** A core/v1 `ObjectReference` (the event's `involvedObject`). */
export interface ObjectReference {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly uid?: string;
  readonly resourceVersion?: string;
  readonly fieldPath?: string;
}

/** Records events about objects; implementations never throw and never block the caller. */
export interface EventRecorder {
  /** Records one event (`message` is final text, kubelet's wording). */
  event(ref: ObjectReference, type: EventType, reason: string, message: string): void;
}

/**
 * The reference to a pod, or to one of its containers (`fieldPath`
 * `spec.containers{name}` / `spec.initContainers{name}`), as kubelet's
 * `GenerateContainerRef` builds it.
 */
export function podReference(pod: Pod, container?: Container | string): ObjectReference {
  const m = pod.metadata;
  let fieldPath: string | undefined;
  if (container !== undefined) {
    const name = typeof container === "string" ? container : container.name;
    const init = (pod.spec?.initContainers ?? []).some((c) => c.name === name);
    fieldPath = init ? `spec.initContainers{${name}}` : `spec.containers{${name}}`;
  }
  return {
    apiVersion: "v1",
    kind: "Pod",
    ...(m?.namespace ? { namespace: m.namespace } : {}),
    ...(m?.name ? { name: m.name } : {}),
    ...(m?.uid ? { uid: m.uid } : {}),
    ...(m?.resourceVersion ? { resourceVersion: m.resourceVersion } : {}),
    ...(fieldPath ? { fieldPath } : {}),
  };
}

/** Discards every event. */
export class NoopEventRecorder implements EventRecorder {
  event(): void {}
}

/** Logs every event (the standalone kubelet's recorder: there is no API to post to). */
export class LoggingEventRecorder implements EventRecorder {
  constructor(private readonly logger: Logger) {}

  event(ref: ObjectReference, type: EventType, reason: string, message: string): void {
    const object = `${ref.kind ?? ""}/${ref.namespace ? `${ref.namespace}/` : ""}${ref.name ?? ""}`;
    const fields = { object, ...(ref.fieldPath ? { fieldPath: ref.fieldPath } : {}), type, reason };
    if (type === "Warning") this.logger.warn(fields, message);
    else this.logger.info(fields, message);
  }
}
