/**
 * The API objects a pod worker reads besides the pod itself: the ConfigMaps
 * and Secrets its volumes, environment and image pull secrets reference, the
 * service-account tokens of its projected volumes, and the Services its
 * environment variables describe. {@link PodObjectProvider} is the contract;
 * `ApiPodObjectProvider` reads them from an API server, and
 * {@link StandalonePodObjectProvider} fails every read with the reason
 * standalone kubelet gives (there is no API server to read them from).
 *
 * @module
 */
import type { ConfigMap, Pod, Secret, Service } from "@worknode/core";
import { WorknodeError } from "@worknode/core";

/** A `serviceAccountToken` projection: the token's audience and lifetime. */
export interface ServiceAccountTokenProjection {
  /** Intended audience; empty for the API server's own audiences. */
  readonly audience?: string;
  /** Requested lifetime in seconds; default 3600 (the API's default). */
  readonly expirationSeconds?: number;
}

/** Why an object could not be read. */
export type ObjectReadFailure = "NotFound" | "Forbidden" | "Unavailable";

/**
 * An API object could not be read. `reason` tells a missing object (which an
 * `optional` reference tolerates) from any other failure (which it does not).
 */
export class PodObjectError extends WorknodeError {
  constructor(
    readonly reason: ObjectReadFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(reason === "NotFound" ? "OBJECT_NOT_FOUND" : "OBJECT_UNAVAILABLE", message, options);
  }

  /** True for a missing object (HTTP 404). */
  get notFound(): boolean {
    return this.reason === "NotFound";
  }
}

/** True when `e` is a {@link PodObjectError} for a missing object. */
export function isObjectNotFound(e: unknown): boolean {
  return e instanceof PodObjectError && e.notFound;
}

/** kubelet's not-found message for a ConfigMap or Secret: `configmap "name" not found`. */
export function objectNotFoundMessage(kind: "configmap" | "secret", name: string): string {
  return `${kind} "${name}" not found`;
}

/** The API objects a pod's worker needs (see the module notes). */
export interface PodObjectProvider {
  /**
   * A ConfigMap of the pod's namespace.
   * @throws {@link PodObjectError} (`NotFound` when it does not exist)
   */
  getConfigMap(namespace: string, name: string): Promise<ConfigMap>;
  /**
   * A Secret of the pod's namespace.
   * @throws {@link PodObjectError} (`NotFound` when it does not exist)
   */
  getSecret(namespace: string, name: string): Promise<Secret>;
  /**
   * A token of the pod's service account for a projected volume, bound to the pod
   * (refreshed before it expires).
   * @throws {@link PodObjectError}
   */
  serviceAccountToken(pod: Pod, projection: ServiceAccountTokenProjection): Promise<string>;
  /**
   * Every Service of the cluster (the kubelet filters by namespace for service
   * environment variables); empty when there is no API server.
   */
  services(): Promise<readonly Service[]>;
  /** Forgets what is cached for a pod that is gone (its tokens). */
  forgetPod?(uid: string): void;
}

/**
 * The provider of a kubelet without an API server: every ConfigMap, Secret and
 * token read fails with a clear reason; there are no Services.
 */
export class StandalonePodObjectProvider implements PodObjectProvider {
  /** See {@link PodObjectProvider.getConfigMap}. */
  async getConfigMap(namespace: string, name: string): Promise<ConfigMap> {
    throw new PodObjectError(
      "Unavailable",
      `couldn't get configMap ${namespace}/${name}, no kubeClient defined (the kubelet runs without an API server)`,
    );
  }

  /** See {@link PodObjectProvider.getSecret}. */
  async getSecret(namespace: string, name: string): Promise<Secret> {
    throw new PodObjectError(
      "Unavailable",
      `couldn't get secret ${namespace}/${name}, no kubeClient defined (the kubelet runs without an API server)`,
    );
  }

  /** See {@link PodObjectProvider.serviceAccountToken}. */
  async serviceAccountToken(pod: Pod): Promise<string> {
    const sa = pod.spec?.serviceAccountName || "default";
    throw new PodObjectError(
      "Unavailable",
      `cannot request a token for service account ${pod.metadata?.namespace ?? ""}/${sa}: the kubelet runs without an API server`,
    );
  }

  /** See {@link PodObjectProvider.services}. */
  async services(): Promise<readonly Service[]> {
    return [];
  }
}
