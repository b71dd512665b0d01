/**
 * The kubelet's rules for `--node-labels`: label syntax, and the restriction on the
 * `kubernetes.io` / `k8s.io` namespaces that NodeRestriction enforces (a kubelet may set
 * only its well-known labels and those under `kubelet.kubernetes.io` / `node.kubernetes.io`).
 *
 * @module
 */
import { ConfigError } from "@worknode/core";
import { LABEL_ARCH, LABEL_ARCH_BETA, LABEL_HOSTNAME, LABEL_OS, LABEL_OS_BETA } from "./constants.js";

/** A `--node-labels` entry (or a label value) is invalid. */
export class NodeLabelError extends ConfigError {}

/** Labels in a restricted namespace a kubelet may still set (kubelet's `KubeletLabels()`). */
export const KUBELET_ALLOWED_LABELS: readonly string[] = [
  LABEL_HOSTNAME,
  "topology.kubernetes.io/zone",
  "topology.kubernetes.io/region",
  "failure-domain.beta.kubernetes.io/zone",
  "failure-domain.beta.kubernetes.io/region",
  "beta.kubernetes.io/instance-type",
  "node.kubernetes.io/instance-type",
  LABEL_OS,
  LABEL_ARCH,
  LABEL_OS_BETA,
  LABEL_ARCH_BETA,
];

/** Label namespaces (and their subdomains) a kubelet may set labels in. */
export const KUBELET_ALLOWED_LABEL_NAMESPACES: readonly string[] = [
  "kubelet.kubernetes.io",
  "node.kubernetes.io",
];

const NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Reasons why `key` is not a qualified name (`[prefix/]name`); empty when it is one. */
export function qualifiedNameErrors(key: string): string[] {
  const parts = key.split("/");
  if (parts.length > 2) return [`${JSON.stringify(key)}: a qualified name has at most one "/"`];
  const [prefix, name] = parts.length === 2 ? [parts[0] ?? "", parts[1] ?? ""] : ["", parts[0] ?? ""];
  const errors: string[] = [];
  if (parts.length === 2 && (!prefix || prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))) {
    errors.push(`${JSON.stringify(key)}: prefix must be a DNS-1123 subdomain`);
  }
  if (!name || name.length > 63 || !NAME.test(name)) {
    errors.push(
      `${JSON.stringify(key)}: name must be 1-63 alphanumeric characters, "-", "_" or ".", starting and ending alphanumeric`,
    );
  }
  return errors;
}

/** Reasons why `value` is not a label value; empty when it is one. */
export function labelValueErrors(value: string): string[] {
  if (value === "") return [];
  if (value.length > 63 || !NAME.test(value)) {
    return [
      `${JSON.stringify(value)}: a label value must be at most 63 alphanumeric characters, "-", "_" or ".", starting and ending alphanumeric`,
    ];
  }
  return [];
}

/** The namespace (prefix) of a label key, or `""` when it has none. */
export function labelNamespace(key: string): string {
  const slash = key.indexOf("/");
  return slash < 0 ? "" : key.slice(0, slash);
}

function inNamespace(ns: string, root: string): boolean {
  return ns === root || ns.endsWith(`.${root}`);
}

/**
 * True when a kubelet may set label `key` on its own Node: a key outside the
 * `kubernetes.io` / `k8s.io` namespaces, one of {@link KUBELET_ALLOWED_LABELS}, or a key in
 * {@link KUBELET_ALLOWED_LABEL_NAMESPACES}.
 */
export function isKubeletAllowedLabel(key: string): boolean {
  const ns = labelNamespace(key);
  if (!inNamespace(ns, "kubernetes.io") && !inNamespace(ns, "k8s.io")) return true;
  if (KUBELET_ALLOWED_LABELS.includes(key)) return true;
  return KUBELET_ALLOWED_LABEL_NAMESPACES.some((allowed) => inNamespace(ns, allowed));
}

/**
 * Validates user node labels as the kubelet does at start-up.
 *
 * @throws NodeLabelError listing every invalid key or value and every key in a restricted namespace
 */
export function validateNodeLabels(labels: Readonly<Record<string, string>>): void {
  const errors: string[] = [];
  for (const [key, value] of Object.entries(labels)) {
    errors.push(...qualifiedNameErrors(key), ...labelValueErrors(value));
    if (qualifiedNameErrors(key).length === 0 && !isKubeletAllowedLabel(key)) {
      errors.push(
        `${JSON.stringify(key)}: a kubelet may not set labels in the kubernetes.io or k8s.io namespaces other than ${KUBELET_ALLOWED_LABEL_NAMESPACES.join(", ")} and its well-known labels`,
      );
    }
  }
  if (errors.length > 0) throw new NodeLabelError(`invalid node labels: ${errors.join("; ")}`);
}

/**
 * Parses kubelet's `--node-labels` syntax: `key=value` pairs separated by commas.
 *
 * @throws NodeLabelError for an entry without `=` or an invalid key / value
 */
export function parseNodeLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const raw of text.split(",")) {
    const entry = raw.trim();
    if (!entry) continue;
    const eq = entry.indexOf("=");
    if (eq < 0) throw new NodeLabelError(`invalid node label ${JSON.stringify(entry)}: expected key=value`);
    labels[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  validateNodeLabels(labels);
  return labels;
}
