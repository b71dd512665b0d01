/**
 * Kubernetes object types as they travel on the wire (JSON / YAML).
 *
 * worknode uses the generated models of `@kubernetes/client-node` for field
 * names and shapes, but keeps objects in their wire form: timestamps stay
 * RFC 3339 strings instead of `Date`s, so objects from the API server, from
 * files and from tests are plain data that can be compared, hashed and
 * stored without a serializer.
 *
 * @module
 */
import type {
  V1ConfigMap,
  V1EndpointSlice,
  V1Lease,
  V1Node,
  V1ObjectMeta,
  V1Pod,
  V1Secret,
  V1Service,
} from "@kubernetes/client-node";

/** Maps a client-node model type to its JSON wire form (every `Date` becomes an RFC 3339 string). */
export type Wire<T> = T extends Date
  ? string
  : T extends ReadonlyArray<infer U>
    ? Wire<U>[]
    : T extends object
      ? { [K in keyof T]: Wire<T[K]> }
      : T;

/** `metadata` of any object, in wire form. */
export type ObjectMeta = Wire<V1ObjectMeta>;
/** A core/v1 Service. */
export type Service = Wire<V1Service>;
/** A discovery.k8s.io/v1 EndpointSlice. */
export type EndpointSlice = Wire<V1EndpointSlice>;
/** A core/v1 Pod. */
export type Pod = Wire<V1Pod>;
/** A core/v1 Node. */
export type Node = Wire<V1Node>;
/** A core/v1 ConfigMap. */
export type ConfigMap = Wire<V1ConfigMap>;
/** A core/v1 Secret. */
export type Secret = Wire<V1Secret>;
/** A coordination.k8s.io/v1 Lease. */
export type Lease = Wire<V1Lease>;

/** Any object with Kubernetes metadata. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}

/** The store key of an object: `namespace/name`, or `name` for cluster-scoped objects. */
export function objectKey(obj: KubeObject): string {
  const ns = obj.metadata?.namespace;
  const name = obj.metadata?.name ?? "";
  return ns ? `${ns}/${name}` : name;
}

/** Label that ties an EndpointSlice to its Service. */
export const LABEL_SERVICE_NAME = "kubernetes.io/service-name";
/** Label that selects which proxy serves a Service (empty: the default proxy). */
export const LABEL_SERVICE_PROXY_NAME = "service.kubernetes.io/service-proxy-name";
/** Label marking a headless Service's EndpointSlices. */
export const LABEL_HEADLESS = "service.kubernetes.io/headless";
/** Label naming the controller that manages an EndpointSlice. */
export const LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by";
/** Node label holding the node's zone. */
export const LABEL_TOPOLOGY_ZONE = "topology.kubernetes.io/zone";
