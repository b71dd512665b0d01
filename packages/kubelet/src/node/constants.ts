/**
 * Names and defaults of the kubelet's Node lifecycle (registration, lease, status),
 * as the real kubelet uses them.
 *
 * @module
 */

/**
 * The version this kubelet reports in `status.nodeInfo.kubeletVersion`: a valid semver
 * string (the Kubernetes release it follows, with a `worknode` pre-release tag) that
 * `kubectl get nodes` shows as is.
 */
export const KUBELET_VERSION = "v1.36.3-worknode";

/** `kubernetes.io/hostname`: the node's hostname label. */
export const LABEL_HOSTNAME = "kubernetes.io/hostname";
/** `kubernetes.io/os`: the node's operating system in Go naming (`linux`). */
export const LABEL_OS = "kubernetes.io/os";
/** `kubernetes.io/arch`: the node's architecture in Go naming (`amd64`, `arm64`). */
export const LABEL_ARCH = "kubernetes.io/arch";
/** `beta.kubernetes.io/os`: deprecated twin of {@link LABEL_OS} the kubelet still sets. */
export const LABEL_OS_BETA = "beta.kubernetes.io/os";
/** `beta.kubernetes.io/arch`: deprecated twin of {@link LABEL_ARCH} the kubelet still sets. */
export const LABEL_ARCH_BETA = "beta.kubernetes.io/arch";

/** Labels the kubelet owns and keeps up to date on its Node (kubelet's default labels). */
export const KUBELET_DEFAULT_LABELS: readonly string[] = [
  LABEL_HOSTNAME,
  LABEL_OS,
  LABEL_ARCH,
  LABEL_OS_BETA,
  LABEL_ARCH_BETA,
];

/** Namespace of node Leases (`kube-node-lease`). */
export const NODE_LEASE_NAMESPACE = "kube-node-lease";
/** kubelet's `--node-lease-duration-seconds` default: 40. */
export const DEFAULT_NODE_LEASE_DURATION_SECONDS = 40;
/** Fraction of the lease duration after which the kubelet renews its lease (0.25 → 10 s). */
export const NODE_LEASE_RENEW_INTERVAL_FRACTION = 0.25;

/** kubelet's `nodeStatusUpdateFrequency` default: 10 s. */
export const DEFAULT_NODE_STATUS_UPDATE_FREQUENCY_MS = 10_000;
/** kubelet's `nodeStatusReportFrequency` default: 5 min. */
export const DEFAULT_NODE_STATUS_REPORT_FREQUENCY_MS = 300_000;
