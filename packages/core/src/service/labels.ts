/**
 * Which Services and EndpointSlices a proxy serves, by label (kube-proxy's
 * informer label selector).
 *
 * @module
 */
import { LABEL_HEADLESS, LABEL_SERVICE_PROXY_NAME } from "../kube/objects.js";

/**
 * Why a proxy named `proxyName` must ignore an object with these labels, or
 * `undefined` when it serves it.
 *
 * kube-proxy watches only objects **without** the `service.kubernetes.io/service-proxy-name`
 * label and **without** the `service.kubernetes.io/headless` label. A proxy configured
 * with a name (as Cilium and kube-router do) serves exactly the objects whose
 * `service-proxy-name` label equals that name, and ignores unlabelled ones, which
 * belong to the cluster's default proxy. Both rules apply to Services and to
 * EndpointSlices (the EndpointSlice controller copies a Service's labels to its slices).
 *
 * @param labels `metadata.labels` of the object
 * @param proxyName the configured proxy name; empty or undefined: the default proxy
 */
export function ignoredByLabels(
  labels: Readonly<Record<string, string>> | undefined,
  proxyName?: string,
): string | undefined {
  const owner = labels?.[LABEL_SERVICE_PROXY_NAME];
  if (proxyName) {
    if (owner !== proxyName) {
      return owner === undefined
        ? `no ${LABEL_SERVICE_PROXY_NAME} label (served by the default proxy, this proxy is "${proxyName}")`
        : `${LABEL_SERVICE_PROXY_NAME}="${owner}" names another proxy (this proxy is "${proxyName}")`;
    }
  } else if (owner !== undefined) {
    return `${LABEL_SERVICE_PROXY_NAME}="${owner}" hands it to another proxy`;
  }
  if (labels?.[LABEL_HEADLESS] !== undefined) return `labelled ${LABEL_HEADLESS} (headless)`;
  return undefined;
}
