/**
 * The one place where the decision layer's CRI-shaped objects (numbers, enum
 * names, string env values) become the generated CRI types of `@worknode/cri`
 * (bigint int64, numeric enums, byte env values), and where CRI answers become
 * the kubelet's {@link RuntimePodStatus} pieces.
 *
 * @module
 */
import {
  type ContainerConfig,
  ContainerState,
  type Container as CriContainer,
  type ContainerStatus as CriContainerStatus,
  type DeepPartial,
  MountPropagation,
  NamespaceMode,
  type PodSandbox,
  type PodSandboxConfig,
  PodSandboxState,
  type PodSandboxStatus,
  Protocol,
  SecurityProfile_ProfileType,
} from "@worknode/cri";
import type {
  ContainerConfigSpec,
  MountConfig,
  NamespaceOptionConfig,
  SecurityProfileConfig,
} from "../container-config.js";
import { parseContainerAnnotations, parseContainerLabels } from "../labels.js";
import type { ContainerRuntimeState, ContainerRuntimeStatus, SandboxStatus } from "../runtime-status.js";
import type { PodSandboxConfigSpec } from "../sandbox-config.js";

const NS_MODE: Record<NamespaceOptionConfig["network"], NamespaceMode> = {
  POD: NamespaceMode.POD,
  CONTAINER: NamespaceMode.CONTAINER,
  NODE: NamespaceMode.NODE,
};

const PROPAGATION: Record<MountConfig["propagation"], MountPropagation> = {
  PROPAGATION_PRIVATE: MountPropagation.PROPAGATION_PRIVATE,
  PROPAGATION_HOST_TO_CONTAINER: MountPropagation.PROPAGATION_HOST_TO_CONTAINER,
  PROPAGATION_BIDIRECTIONAL: MountPropagation.PROPAGATION_BIDIRECTIONAL,
};

const PROFILE: Record<SecurityProfileConfig["profileType"], SecurityProfile_ProfileType> = {
  RuntimeDefault: SecurityProfile_ProfileType.RuntimeDefault,
  Unconfined: SecurityProfile_ProfileType.Unconfined,
  Localhost: SecurityProfile_ProfileType.Localhost,
};

const PROTOCOL: Record<"TCP" | "UDP" | "SCTP", Protocol> = {
  TCP: Protocol.TCP,
  UDP: Protocol.UDP,
  SCTP: Protocol.SCTP,
};

function namespaceOptions(n: NamespaceOptionConfig): {
  network: NamespaceMode;
  pid: NamespaceMode;
  ipc: NamespaceMode;
} {
  return { network: NS_MODE[n.network], pid: NS_MODE[n.pid], ipc: NS_MODE[n.ipc] };
}

function securityProfile(p: SecurityProfileConfig | undefined) {
  if (!p) return undefined;
  return { profileType: PROFILE[p.profileType], localhostRef: p.localhostRef ?? "" };
}

/** Converts {@link buildSandboxConfig}'s result to the CRI `PodSandboxConfig` request type. */
export function toCriSandboxConfig(spec: PodSandboxConfigSpec): DeepPartial<PodSandboxConfig> {
  const sc = spec.linux.securityContext;
  return {
    metadata: { ...spec.metadata },
    hostname: spec.hostname,
    logDirectory: spec.logDirectory,
    dnsConfig: {
      servers: [...spec.dnsConfig.servers],
      searches: [...spec.dnsConfig.searches],
      options: [...spec.dnsConfig.options],
    },
    portMappings: spec.portMappings.map((p) => ({
      protocol: PROTOCOL[p.protocol],
      containerPort: p.containerPort,
      hostPort: p.hostPort,
      hostIp: p.hostIp,
    })),
    labels: { ...spec.labels },
    annotations: { ...spec.annotations },
    linux: {
      cgroupParent: spec.linux.cgroupParent,
      sysctls: { ...spec.linux.sysctls },
      securityContext: {
        namespaceOptions: namespaceOptions(sc.namespaceOptions),
        privileged: sc.privileged,
        ...(sc.runAsUser ? { runAsUser: { value: BigInt(sc.runAsUser.value) } } : {}),
        ...(sc.runAsGroup ? { runAsGroup: { value: BigInt(sc.runAsGroup.value) } } : {}),
        supplementalGroups: sc.supplementalGroups.map((g) => BigInt(g)),
        seccomp: securityProfile(sc.seccomp),
      },
    },
  };
}

/** Converts {@link buildContainerConfig}'s result to the CRI `ContainerConfig` request type. */
export function toCriContainerConfig(spec: ContainerConfigSpec): DeepPartial<ContainerConfig> {
  const sc = spec.linux.securityContext;
  const r = spec.linux.resources;
  const enc = new TextEncoder();
  return {
    metadata: { ...spec.metadata },
    image: { ...spec.image },
    command: [...spec.command],
    args: [...spec.args],
    workingDir: spec.workingDir,
    envs: spec.envs.map((e) => ({ key: e.key, value: enc.encode(e.value) })),
    mounts: spec.mounts.map((m) => ({
      containerPath: m.containerPath,
      hostPath: m.hostPath,
      readonly: m.readonly,
      selinuxRelabel: m.selinuxRelabel,
      propagation: PROPAGATION[m.propagation],
    })),
    labels: { ...spec.labels },
    annotations: { ...spec.annotations },
    logPath: spec.logPath,
    stdin: spec.stdin,
    stdinOnce: spec.stdinOnce,
    tty: spec.tty,
    linux: {
      resources: {
        cpuPeriod: BigInt(r.cpuPeriod),
        cpuQuota: BigInt(r.cpuQuota),
        cpuShares: BigInt(r.cpuShares),
        memoryLimitInBytes: BigInt(r.memoryLimitInBytes),
        oomScoreAdj: BigInt(r.oomScoreAdj),
      },
      securityContext: {
        ...(sc.capabilities
          ? {
              capabilities: {
                addCapabilities: [...sc.capabilities.addCapabilities],
                dropCapabilities: [...sc.capabilities.dropCapabilities],
              },
            }
          : {}),
        privileged: sc.privileged,
        namespaceOptions: namespaceOptions(sc.namespaceOptions),
        ...(sc.runAsUser ? { runAsUser: { value: BigInt(sc.runAsUser.value) } } : {}),
        ...(sc.runAsGroup ? { runAsGroup: { value: BigInt(sc.runAsGroup.value) } } : {}),
        runAsUsername: sc.runAsUsername,
        readonlyRootfs: sc.readonlyRootfs,
        supplementalGroups: sc.supplementalGroups.map((g) => BigInt(g)),
        noNewPrivs: sc.noNewPrivs,
        maskedPaths: [...sc.maskedPaths],
        readonlyPaths: [...sc.readonlyPaths],
        ...(sc.seccomp ? { seccomp: securityProfile(sc.seccomp) } : {}),
      },
    },
  };
}

/** CRI nanoseconds to epoch milliseconds (0 stays 0). */
export function nanosToMs(ns: bigint): number {
  return Number(ns / 1_000_000n);
}

/** CRI `ContainerState` to the decision layer's state name. */
export function containerStateName(s: ContainerState): ContainerRuntimeState {
  switch (s) {
    case ContainerState.CONTAINER_CREATED:
      return "created";
    case ContainerState.CONTAINER_RUNNING:
      return "running";
    case ContainerState.CONTAINER_EXITED:
      return "exited";
    default:
      return "unknown";
  }
}

/**
 * A sandbox's status from `ListPodSandbox` (state, attempt, creation) and, when
 * available, `PodSandboxStatus` (IPs, network namespace mode).
 */
export function toSandboxStatus(s: PodSandbox, status?: PodSandboxStatus): SandboxStatus {
  const state = (status?.state ?? s.state) === PodSandboxState.SANDBOX_READY ? "ready" : "notready";
  const ip = status?.network?.ip ?? "";
  const additional = (status?.network?.additionalIps ?? []).map((p) => p.ip).filter((x) => x !== "");
  const hostNetwork = status?.linux?.namespaces?.options?.network === NamespaceMode.NODE;
  return {
    id: s.id,
    attempt: s.metadata?.attempt ?? 0,
    state,
    createdAt: nanosToMs(s.createdAt),
    ...(ip ? { ip } : {}),
    ...(additional.length ? { additionalIps: additional } : {}),
    ...(status ? { hostNetwork } : {}),
  };
}

/**
 * A container instance from `ListContainers` and, when available, its
 * `ContainerStatus` (start/finish times, exit code, reason). `undefined` when
 * the container carries no kubelet labels.
 */
export function toContainerRuntimeStatus(
  c: CriContainer,
  status?: CriContainerStatus,
  terminationMessage?: string,
): ContainerRuntimeStatus | undefined {
  const info = parseContainerLabels(c.labels);
  if (!info) return undefined;
  const ann = parseContainerAnnotations(c.annotations);
  const state = containerStateName(status?.state ?? c.state);
  const startedAt = status ? nanosToMs(status.startedAt) : 0;
  const finishedAt = status ? nanosToMs(status.finishedAt) : 0;
  const message = terminationMessage || status?.message || "";
  return {
    id: c.id,
    name: info.containerName,
    state,
    createdAt: nanosToMs(c.createdAt),
    ...(startedAt ? { startedAt } : {}),
    ...(finishedAt ? { finishedAt } : {}),
    ...(state === "exited" && status ? { exitCode: status.exitCode } : {}),
    ...(status?.reason ? { reason: status.reason } : {}),
    ...(message ? { message } : {}),
    restartCount: ann.restartCount,
    containerSpecHash: ann.hash,
    image: status?.image?.userSpecifiedImage || status?.image?.image || c.image?.image || "",
    imageRef: status?.imageRef || c.imageRef,
    sandboxId: c.podSandboxId,
  };
}
