/**
 * A container's environment as kubelet builds it (`makeEnvironmentVariables`,
 * `podFieldSelectorRuntimeValue`, downward API `resourceFieldRef`), then the
 * `$(VAR)` expansion of command and args.
 *
 * Order of evaluation follows kubelet: `envFrom` sources first, then `env` in
 * declaration order; a literal `value` is expanded against the variables defined
 * so far and the service variables; a later variable of the same name replaces
 * the earlier one. Service variables (`serviceEnv`, see `serviceEnvironment`)
 * come last, for the names not defined explicitly. A missing ConfigMap or Secret
 * fails with kubelet's `configmap "name" not found` unless the reference is
 * `optional`; an object that could not be read for another reason fails even
 * then. `envFrom` keys that are not valid variable names are skipped and
 * reported through `onInvalidKeys`. Unlike kubelet, which emits a Go map in
 * random order, the result keeps first-definition order.
 *
 * @module
 */

import type { Pod } from "@worknode/core";
import { WorknodeError } from "@worknode/core";
import { expandVariables, lookupIn } from "./expansion.js";
import type { Container } from "./pod-spec.js";
import { parseQuantity, Quantity } from "./quantity.js";
import { containerLimit, containerRequest } from "./resources.js";

/**
 * The container's configuration cannot be built (bad field path, missing
 * ConfigMap key …): kubelet's `CreateContainerConfigError`.
 */
export class ContainerConfigError extends WorknodeError {
  /** The waiting reason kubelet reports. */
  readonly reason = "CreateContainerConfigError";

  constructor(message: string) {
    super("CREATE_CONTAINER_CONFIG", message);
  }
}

/** One environment variable (CRI `KeyValue`). */
export interface EnvEntry {
  readonly key: string;
  readonly value: string;
}

/** Node allocatable used as the default of unset limits in `resourceFieldRef`. */
export interface NodeAllocatable {
  readonly cpuMilli: number;
  readonly memoryBytes: number;
  readonly ephemeralStorageBytes?: number;
}

/** What the environment depends on besides the pod and container. */
export interface EnvironmentContext {
  /** Pod IPs, primary first (empty before the sandbox has one). */
  readonly podIPs: readonly string[];
  /** Node IPs, primary first. */
  readonly hostIPs: readonly string[];
  /** Node allocatable (defaults for unset limits). */
  readonly nodeAllocatable: NodeAllocatable;
  /** ConfigMaps of the pod's namespace by name (`data`); none in standalone mode. */
  readonly configMaps?: ReadonlyMap<string, Readonly<Record<string, string>>>;
  /** Secrets of the pod's namespace by name (decoded `data`); none in standalone mode. */
  readonly secrets?: ReadonlyMap<string, Readonly<Record<string, string>>>;
  /**
   * Objects that could not be read for a reason other than "not found", by
   * `configmap/<name>` or `secret/<name>`, with the message to report.
   */
  readonly objectErrors?: ReadonlyMap<string, string>;
  /** Service environment variables (defaults for names not set explicitly). */
  readonly serviceEnv?: readonly EnvEntry[];
  /** Called with the `envFrom` keys skipped as invalid names (kubelet's `InvalidEnvironmentVariableNames` event). */
  readonly onInvalidKeys?: (kind: "configMap" | "secret", name: string, keys: readonly string[]) => void;
}

const SUPPORTED_FIELD_PATHS = new Set([
  "metadata.name",
  "metadata.namespace",
  "metadata.uid",
  "metadata.labels",
  "metadata.annotations",
  "spec.nodeName",
  "spec.serviceAccountName",
  "status.podIP",
  "status.podIPs",
  "status.hostIP",
  "status.hostIPs",
]);

/** apimachinery `SplitMaybeSubscriptedPath`: `metadata.labels['k']` → `["metadata.labels", "k"]`. */
export function splitSubscriptedPath(fieldPath: string): { path: string; subscript?: string } {
  if (!fieldPath.endsWith("']")) return { path: fieldPath };
  const s = fieldPath.slice(0, -2);
  const at = s.indexOf("['");
  if (at <= 0) return { path: fieldPath };
  return { path: s.slice(0, at), subscript: s.slice(at + 2) };
}

/** apimachinery `FormatMap`: sorted `key="value"` lines (values quoted; JSON quoting stands in for Go's `%q`). */
export function formatLabelMap(m: Readonly<Record<string, string>> | undefined): string {
  return Object.keys(m ?? {})
    .sort()
    .map((k) => `${k}=${JSON.stringify(m?.[k] ?? "")}`)
    .join("\n");
}

/**
 * The value of a downward-API `fieldRef` for a pod (kubelet's
 * `podFieldSelectorRuntimeValue`).
 *
 * @throws {@link ContainerConfigError} for unsupported paths or API versions
 */
export function podFieldValue(
  pod: Pod,
  fieldPath: string,
  ctx: Pick<EnvironmentContext, "podIPs" | "hostIPs">,
  apiVersion?: string,
): string {
  if (apiVersion && apiVersion !== "v1")
    throw new ContainerConfigError(`unsupported pod version: ${apiVersion}`);
  const { path, subscript } = splitSubscriptedPath(fieldPath);
  if (subscript !== undefined) {
    if (path === "metadata.labels") return pod.metadata?.labels?.[subscript] ?? "";
    if (path === "metadata.annotations") return pod.metadata?.annotations?.[subscript] ?? "";
    throw new ContainerConfigError(`fieldPath "${fieldPath}" does not support subscript`);
  }
  if (!SUPPORTED_FIELD_PATHS.has(path)) {
    throw new ContainerConfigError(`field label not supported: ${fieldPath}`);
  }
  switch (path) {
    case "metadata.name":
      return pod.metadata?.name ?? "";
    case "metadata.namespace":
      return pod.metadata?.namespace ?? "";
    case "metadata.uid":
      return pod.metadata?.uid ?? "";
    case "metadata.labels":
      return formatLabelMap(pod.metadata?.labels);
    case "metadata.annotations":
      return formatLabelMap(pod.metadata?.annotations);
    case "spec.nodeName":
      return pod.spec?.nodeName ?? "";
    case "spec.serviceAccountName":
      return pod.spec?.serviceAccountName ?? "";
    case "status.podIP":
      return ctx.podIPs[0] ?? "";
    case "status.podIPs":
      return ctx.podIPs.join(",");
    case "status.hostIP":
      if (!ctx.hostIPs[0]) throw new ContainerConfigError("the node has no IP address (status.hostIP)");
      return ctx.hostIPs[0];
    default:
      if (!ctx.hostIPs[0]) throw new ContainerConfigError("the node has no IP address (status.hostIPs)");
      return ctx.hostIPs.join(",");
  }
}

function ceilDivBig(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a > 0n === b > 0n ? q + 1n : q;
}

/**
 * The value of a downward-API `resourceFieldRef` for a container
 * (`ExtractContainerResourceValue` after `defaultPodLimitsForDownwardAPI`): the
 * value divided by the divisor (default `1`), rounded up; unset limits default to
 * node allocatable; unset requests read as their limit or 0.
 *
 * @throws {@link ContainerConfigError} for unsupported resources or bad divisors
 */
export function containerResourceValue(
  container: Container,
  resource: string,
  divisor: string | undefined,
  allocatable: NodeAllocatable,
): string {
  let div: Quantity;
  try {
    div = divisor === undefined || divisor === "" ? new Quantity(1n) : parseQuantity(divisor);
  } catch {
    throw new ContainerConfigError(`invalid divisor ${JSON.stringify(divisor)} for ${resource}`);
  }
  if (div.isZero()) div = new Quantity(1n);
  const [kind, name] = resource.split(".", 2) as [string, string | undefined];
  let amount: Quantity;
  if (kind === "limits" && (name === "cpu" || name === "memory" || name === "ephemeral-storage")) {
    const lim = containerLimit(container, name);
    if (lim && !lim.isZero()) amount = lim;
    else if (name === "cpu") amount = Quantity.fromMilli(allocatable.cpuMilli);
    else if (name === "memory") amount = new Quantity(BigInt(allocatable.memoryBytes));
    else amount = new Quantity(BigInt(allocatable.ephemeralStorageBytes ?? 0));
  } else if (kind === "requests" && (name === "cpu" || name === "memory" || name === "ephemeral-storage")) {
    amount = containerRequest(container, name) ?? Quantity.ZERO;
  } else {
    throw new ContainerConfigError(`unsupported container resource : ${resource}`);
  }
  if (name === "cpu") {
    const d = BigInt(div.milliValue());
    if (d === 0n)
      throw new ContainerConfigError(`divisor ${JSON.stringify(divisor)} is too small for ${resource}`);
    return ceilDivBig(BigInt(amount.milliValue()), d).toString();
  }
  const d = BigInt(div.value());
  if (d === 0n)
    throw new ContainerConfigError(`divisor ${JSON.stringify(divisor)} is too small for ${resource}`);
  return ceilDivBig(BigInt(amount.value()), d).toString();
}

const ENV_NAME_RE = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/**
 * Builds the container's environment (see the module notes).
 *
 * @throws {@link ContainerConfigError} when a reference cannot be resolved
 */
export function makeEnvironment(pod: Pod, container: Container, ctx: EnvironmentContext): EnvEntry[] {
  const env = new Map<string, string>();
  const service = new Map((ctx.serviceEnv ?? []).map((e) => [e.key, e.value]));
  const ns = pod.metadata?.namespace ?? "";
  /** The object's data; `undefined` when it is missing and the reference optional. */
  const objectData = (
    kind: "configmap" | "secret",
    name: string,
    optional: boolean | undefined,
  ): Readonly<Record<string, string>> | undefined => {
    const data = (kind === "configmap" ? ctx.configMaps : ctx.secrets)?.get(name);
    if (data) return data;
    const err = ctx.objectErrors?.get(`${kind}/${name}`);
    if (err !== undefined) throw new ContainerConfigError(err);
    if (optional) return undefined;
    throw new ContainerConfigError(`${kind} "${name}" not found`);
  };
  for (const from of container.envFrom ?? []) {
    const prefix = from.prefix ?? "";
    let data: Readonly<Record<string, string>> | undefined;
    let kind: "configMap" | "secret" = "configMap";
    let name = "";
    if (from.configMapRef) {
      name = from.configMapRef.name ?? "";
      data = objectData("configmap", name, from.configMapRef.optional);
    } else if (from.secretRef) {
      kind = "secret";
      name = from.secretRef.name ?? "";
      data = objectData("secret", name, from.secretRef.optional);
    }
    const invalid: string[] = [];
    for (const [k, v] of Object.entries(data ?? {})) {
      const key = prefix + k;
      if (ENV_NAME_RE.test(key)) env.set(key, v);
      else invalid.push(key);
    }
    if (invalid.length > 0) ctx.onInvalidKeys?.(kind, `${ns}/${name}`, invalid.sort());
  }
  for (const e of container.env ?? []) {
    let value = "";
    if (e.value) {
      value = expandVariables(e.value, (n) => env.get(n) ?? service.get(n));
    } else if (e.valueFrom) {
      const vf = e.valueFrom;
      if (vf.fieldRef) {
        value = podFieldValue(pod, vf.fieldRef.fieldPath, ctx, vf.fieldRef.apiVersion);
      } else if (vf.resourceFieldRef) {
        const ref = vf.resourceFieldRef;
        if (ref.containerName && ref.containerName !== container.name) {
          throw new ContainerConfigError(
            `resourceFieldRef of ${e.name} names another container: ${ref.containerName}`,
          );
        }
        value = containerResourceValue(container, ref.resource, ref.divisor, ctx.nodeAllocatable);
      } else if (vf.configMapKeyRef) {
        const ref = vf.configMapKeyRef;
        const data = objectData("configmap", ref.name ?? "", ref.optional);
        if (!data) continue;
        const v = data[ref.key];
        if (v === undefined) {
          if (ref.optional) continue;
          throw new ContainerConfigError(`couldn't find key ${ref.key} in ConfigMap ${ns}/${ref.name ?? ""}`);
        }
        value = v;
      } else if (vf.secretKeyRef) {
        const ref = vf.secretKeyRef;
        const data = objectData("secret", ref.name ?? "", ref.optional);
        if (!data) continue;
        const v = data[ref.key];
        if (v === undefined) {
          if (ref.optional) continue;
          throw new ContainerConfigError(`couldn't find key ${ref.key} in Secret ${ns}/${ref.name ?? ""}`);
        }
        value = v;
      }
    }
    env.set(e.name, value);
  }
  for (const [k, v] of service) if (!env.has(k)) env.set(k, v);
  return [...env].map(([key, value]) => ({ key, value }));
}

/** Expands `$(VAR)` in the container's command and args against its final environment. */
export function expandCommandAndArgs(
  container: Container,
  env: readonly EnvEntry[],
): { command: string[]; args: string[] } {
  const lookup = lookupIn(new Map(env.map((e) => [e.key, e.value])));
  return {
    command: (container.command ?? []).map((c) => expandVariables(c, lookup)),
    args: (container.args ?? []).map((a) => expandVariables(a, lookup)),
  };
}
