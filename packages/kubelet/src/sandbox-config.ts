/**
 * The CRI pod sandbox configuration kubelet builds (`generatePodSandboxConfig`,
 * pkg/kubelet/kuberuntime/kuberuntime_sandbox.go), as a plain object shaped like
 * CRI's `PodSandboxConfig` (integers as `number`, enums by name).
 *
 * @module
 */
import type { Pod } from "@worknode/core";
import { ipFamilyOf } from "@worknode/core";
import {
  type NamespaceOptionConfig,
  podNamespaceOptions,
  type SecurityProfileConfig,
} from "./container-config.js";
import { type DnsConfigSpec, type DnsContext, podDnsConfig } from "./dns.js";
import { ContainerConfigError } from "./env.js";
import { type StringMap, sandboxAnnotations, sandboxLabels } from "./labels.js";
import { podLogDirectory } from "./log-paths.js";
import { appContainers, type Container, initContainers } from "./pod-spec.js";

/** CRI `PortMapping`. */
export interface PortMappingConfig {
  readonly protocol: "TCP" | "UDP" | "SCTP";
  readonly containerPort: number;
  readonly hostPort: number;
  readonly hostIp: string;
}

/** CRI `PodSandboxConfig` (the fields kubelet fills on Linux). */
export interface PodSandboxConfigSpec {
  readonly metadata: {
    readonly name: string;
    readonly uid: string;
    readonly namespace: string;
    readonly attempt: number;
  };
  /** Empty for host-network pods (the runtime keeps the node's hostname). */
  readonly hostname: string;
  readonly logDirectory: string;
  readonly dnsConfig: DnsConfigSpec;
  readonly portMappings: PortMappingConfig[];
  readonly labels: StringMap;
  readonly annotations: StringMap;
  readonly linux: {
    readonly cgroupParent: string;
    readonly sysctls: StringMap;
    readonly securityContext: {
      readonly namespaceOptions: NamespaceOptionConfig;
      readonly privileged: boolean;
      readonly runAsUser?: { readonly value: number };
      readonly runAsGroup?: { readonly value: number };
      readonly supplementalGroups: number[];
      readonly seccomp: SecurityProfileConfig;
    };
  };
}

/** Inputs of {@link buildSandboxConfig} besides the pod. */
export interface SandboxConfigContext extends DnsContext {
  /** Sandbox attempt (from `computePodActions`). */
  readonly attempt: number;
  /** Pod log root, default `/var/log/pods`. */
  readonly podLogsRoot?: string;
  /** The pod's cgroup parent, chosen by the cgroup manager; empty for the runtime default. */
  readonly cgroupParent?: string;
}

/** Maximum hostname length (a DNS label). */
export const HOSTNAME_MAX_LENGTH = 63;
/** Maximum FQDN length the kernel's nodename field holds. */
export const FQDN_MAX_LENGTH = 64;

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * The pod's hostname as kubelet sets it (`GeneratePodHostNameAndDomain` +
 * `GetNodenameForKernel`): `spec.hostname` or the pod name, cut to 63 characters
 * without a trailing `-` or `.`; with `setHostnameAsFQDN` and a subdomain,
 * `<hostname>.<subdomain>.<ns>.svc.<clusterDomain>` (at most 64 characters).
 *
 * @throws {@link ContainerConfigError} for an invalid hostname or a too long FQDN
 */
export function podHostname(pod: Pod, clusterDomain: string): string {
  let hostname = pod.metadata?.name ?? "";
  const explicit = pod.spec?.hostname;
  if (explicit) {
    if (explicit.length > HOSTNAME_MAX_LENGTH || !DNS1123_LABEL.test(explicit)) {
      throw new ContainerConfigError(`pod Hostname "${explicit}" is not a valid DNS label`);
    }
    hostname = explicit;
  }
  if (hostname.length > HOSTNAME_MAX_LENGTH) {
    hostname = hostname.slice(0, HOSTNAME_MAX_LENGTH).replace(/[-.]+$/, "");
    if (!hostname)
      throw new ContainerConfigError(`hostname for pod "${pod.metadata?.name ?? ""}" was invalid`);
  }
  const sub = pod.spec?.subdomain;
  if (sub && pod.spec?.setHostnameAsFQDN) {
    const fqdn = `${hostname}.${sub}.${pod.metadata?.namespace ?? ""}.svc.${clusterDomain}`;
    if (fqdn.length > FQDN_MAX_LENGTH) {
      throw new ContainerConfigError(
        `failed to construct FQDN from pod hostname and cluster domain, FQDN ${fqdn} is too long (${FQDN_MAX_LENGTH} characters is the max, ${fqdn.length} characters requested)`,
      );
    }
    return fqdn;
  }
  return hostname;
}

/**
 * The sandbox's port mappings (kubelet's `MakePortMappings` over the app
 * containers): every declared port, host port 0 included; a port whose name — or,
 * unnamed, whose `family-protocol-hostIP:containerPort:hostPort` — repeats within a
 * container is dropped.
 */
export function podPortMappings(pod: Pod): PortMappingConfig[] {
  const out: PortMappingConfig[] = [];
  for (const c of appContainers(pod)) out.push(...containerPortMappings(c));
  return out;
}

function containerPortMappings(c: Container): PortMappingConfig[] {
  const seen = new Set<string>();
  const out: PortMappingConfig[] = [];
  for (const p of c.ports ?? []) {
    const protocol = p.protocol === "UDP" || p.protocol === "SCTP" ? p.protocol : "TCP";
    const hostIp = p.hostIP ?? "";
    const family = hostIp === "" ? "any" : ipFamilyOf(hostIp) === "IPv6" ? "v6" : "v4";
    const name = p.name || `${family}-${protocol}-${hostIp}:${p.containerPort}:${p.hostPort ?? 0}`;
    if (seen.has(name)) continue;
    seen.add(name);
    out.push({ protocol, containerPort: p.containerPort, hostPort: p.hostPort ?? 0, hostIp });
  }
  return out;
}

function anyPrivileged(pod: Pod): boolean {
  return [...initContainers(pod), ...appContainers(pod)].some((c) => c.securityContext?.privileged === true);
}

/**
 * Builds the CRI sandbox configuration: metadata with the attempt, hostname
 * (none for host-network pods), log directory, DNS, port mappings, pod labels with
 * the identity labels, pod annotations, sysctls, namespace options, pod-level user,
 * groups (`fsGroup` first) and the `RuntimeDefault` seccomp profile kubelet forces
 * on the sandbox.
 *
 * @throws {@link ContainerConfigError} for an invalid hostname
 */
export function buildSandboxConfig(pod: Pod, ctx: SandboxConfigContext): PodSandboxConfigSpec {
  const m = pod.metadata;
  const sc = pod.spec?.securityContext;
  const sysctls: StringMap = {};
  for (const s of sc?.sysctls ?? []) sysctls[s.name] = s.value;
  const groups: number[] = [];
  if (sc?.fsGroup !== undefined) groups.push(sc.fsGroup);
  for (const g of sc?.supplementalGroups ?? []) groups.push(g);
  return {
    metadata: { name: m?.name ?? "", uid: m?.uid ?? "", namespace: m?.namespace ?? "", attempt: ctx.attempt },
    hostname: pod.spec?.hostNetwork ? "" : podHostname(pod, ctx.clusterDomain),
    logDirectory: podLogDirectory(pod, ctx.podLogsRoot),
    dnsConfig: podDnsConfig(pod, ctx),
    portMappings: podPortMappings(pod),
    labels: sandboxLabels(pod),
    annotations: sandboxAnnotations(pod),
    linux: {
      cgroupParent: ctx.cgroupParent ?? "",
      sysctls,
      securityContext: {
        namespaceOptions: podNamespaceOptions(pod),
        privileged: anyPrivileged(pod),
        ...(sc?.runAsUser !== undefined ? { runAsUser: { value: sc.runAsUser } } : {}),
        ...(sc?.runAsGroup !== undefined ? { runAsGroup: { value: sc.runAsGroup } } : {}),
        supplementalGroups: groups,
        seccomp: { profileType: "RuntimeDefault" },
      },
    },
  };
}
