/**
 * The CRI container configuration kubelet builds for one container instance
 * (`generateContainerConfig` in pkg/kubelet/kuberuntime/kuberuntime_container.go),
 * as a plain object shaped like CRI's `ContainerConfig` with camelCase fields.
 *
 * Differences from the generated CRI types, for the CRI client to bridge: integer
 * fields are `number` (CRI int64 are `bigint`), namespace modes and seccomp profile
 * types are their enum *names* (`"POD"`, `"NODE"`, `"RuntimeDefault"`), and env
 * values are strings.
 *
 * @module
 */
import { posix } from "node:path";
import type { Pod } from "@worknode/core";
import {
  ContainerConfigError,
  type EnvEntry,
  type EnvironmentContext,
  expandCommandAndArgs,
  makeEnvironment,
} from "./env.js";
import { expandVariables } from "./expansion.js";
import { containerAnnotations, containerLabels, type StringMap } from "./labels.js";
import { containerLogPath } from "./log-paths.js";
import type { Container } from "./pod-spec.js";
import { containerOomScoreAdj, podQosClass } from "./qos.js";
import { type LinuxContainerResourcesConfig, linuxContainerResources } from "./resources.js";

/** CRI `NamespaceMode` by name. */
export type NamespaceMode = "POD" | "CONTAINER" | "NODE";

/** CRI `NamespaceOption`. */
export interface NamespaceOptionConfig {
  readonly network: NamespaceMode;
  readonly pid: NamespaceMode;
  readonly ipc: NamespaceMode;
}

/** CRI `SecurityProfile` (seccomp). */
export interface SecurityProfileConfig {
  readonly profileType: "RuntimeDefault" | "Unconfined" | "Localhost";
  /** Path of a Localhost profile, relative to the kubelet's seccomp directory. */
  readonly localhostRef?: string;
}

/** CRI `LinuxContainerSecurityContext` (the fields kubelet fills on Linux). */
export interface LinuxContainerSecurityContextConfig {
  readonly capabilities?: { readonly addCapabilities: string[]; readonly dropCapabilities: string[] };
  readonly privileged: boolean;
  readonly namespaceOptions: NamespaceOptionConfig;
  readonly runAsUser?: { readonly value: number };
  readonly runAsGroup?: { readonly value: number };
  readonly runAsUsername: string;
  readonly readonlyRootfs: boolean;
  readonly supplementalGroups: number[];
  readonly noNewPrivs: boolean;
  readonly maskedPaths: string[];
  readonly readonlyPaths: string[];
  readonly seccomp?: SecurityProfileConfig;
}

/** CRI `Mount`. */
export interface MountConfig {
  readonly containerPath: string;
  readonly hostPath: string;
  readonly readonly: boolean;
  readonly selinuxRelabel: boolean;
  readonly propagation: "PROPAGATION_PRIVATE" | "PROPAGATION_HOST_TO_CONTAINER" | "PROPAGATION_BIDIRECTIONAL";
}

/** CRI `ContainerConfig` (the fields kubelet fills on Linux). */
export interface ContainerConfigSpec {
  readonly metadata: { readonly name: string; readonly attempt: number };
  readonly image: { readonly image: string; readonly userSpecifiedImage: string };
  readonly command: string[];
  readonly args: string[];
  readonly workingDir: string;
  readonly envs: EnvEntry[];
  readonly mounts: MountConfig[];
  readonly labels: StringMap;
  readonly annotations: StringMap;
  /** Relative to the sandbox's `logDirectory`: `<container>/<restartCount>.log`. */
  readonly logPath: string;
  readonly stdin: boolean;
  readonly stdinOnce: boolean;
  readonly tty: boolean;
  readonly linux: {
    readonly resources: LinuxContainerResourcesConfig;
    readonly securityContext: LinuxContainerSecurityContextConfig;
  };
}

/** Inputs of {@link buildContainerConfig} besides pod and container. */
export interface ContainerConfigContext extends EnvironmentContext {
  /** Restart count of the new instance (see `nextRestartCount`); also `metadata.attempt`. */
  readonly restartCount: number;
  /** The image reference to run (the pulled image's ID/digest); default the spec's image. */
  readonly imageRef?: string;
  /** Node memory capacity in bytes (for Burstable oom_score_adj). */
  readonly memoryCapacityBytes: number;
  /** Host path of each pod volume by volume name (prepared by the worker; see `volumeHostPath`). */
  readonly volumeHostPaths: ReadonlyMap<string, string>;
  /** Host file bind-mounted at the container's termination message path, when the worker made one. */
  readonly terminationMessageHostPath?: string;
  /** Host file bind-mounted at `/etc/hosts` (kubelet manages it for pods without host network). */
  readonly etcHostsPath?: string;
}

/** kubelet's default masked paths (pkg/securitycontext). */
export const DEFAULT_MASKED_PATHS: readonly string[] = [
  "/proc/asound",
  "/proc/acpi",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/sys/firmware",
  "/sys/devices/virtual/powercap",
];

/** kubelet's default read-only paths (pkg/securitycontext). */
export const DEFAULT_READONLY_PATHS: readonly string[] = [
  "/proc/bus",
  "/proc/fs",
  "/proc/irq",
  "/proc/sys",
  "/proc/sysrq-trigger",
];

/** The pod's namespace modes (kubelet's `namespacesForPod`). */
export function podNamespaceOptions(pod: Pod): NamespaceOptionConfig {
  const s = pod.spec;
  return {
    network: s?.hostNetwork ? "NODE" : "POD",
    pid: s?.hostPID ? "NODE" : s?.shareProcessNamespace ? "POD" : "CONTAINER",
    ipc: s?.hostIPC ? "NODE" : "POD",
  };
}

type SeccompSpec = { type: string; localhostProfile?: string } | undefined;

/** Maps a pod or container `seccompProfile` to CRI (undefined: none set, the runtime's choice). */
export function seccompProfile(profile: SeccompSpec): SecurityProfileConfig | undefined {
  if (!profile) return undefined;
  if (profile.type === "RuntimeDefault") return { profileType: "RuntimeDefault" };
  if (profile.type === "Unconfined") return { profileType: "Unconfined" };
  if (profile.type === "Localhost")
    return { profileType: "Localhost", localhostRef: profile.localhostProfile ?? "" };
  return undefined;
}

/** The container's effective Linux security context: container settings over pod settings. */
export function containerSecurityContext(pod: Pod, c: Container): LinuxContainerSecurityContextConfig {
  const ps = pod.spec?.securityContext;
  const cs = c.securityContext;
  const privileged = cs?.privileged === true;
  const runAsUser = cs?.runAsUser ?? ps?.runAsUser;
  const runAsGroup = cs?.runAsGroup ?? ps?.runAsGroup;
  const groups: number[] = [];
  if (ps?.fsGroup !== undefined) groups.push(ps.fsGroup);
  for (const g of ps?.supplementalGroups ?? []) groups.push(g);
  const unmasked = cs?.procMount === "Unmasked";
  const out: {
    -readonly [K in keyof LinuxContainerSecurityContextConfig]: LinuxContainerSecurityContextConfig[K];
  } = {
    privileged,
    namespaceOptions: podNamespaceOptions(pod),
    runAsUsername: "",
    readonlyRootfs: cs?.readOnlyRootFilesystem === true,
    supplementalGroups: groups,
    noNewPrivs: cs?.allowPrivilegeEscalation === false,
    maskedPaths: privileged || unmasked ? [] : [...DEFAULT_MASKED_PATHS],
    readonlyPaths: privileged || unmasked ? [] : [...DEFAULT_READONLY_PATHS],
  };
  if (cs?.capabilities) {
    out.capabilities = {
      addCapabilities: [...(cs.capabilities.add ?? [])],
      dropCapabilities: [...(cs.capabilities.drop ?? [])],
    };
  }
  if (runAsUser !== undefined) out.runAsUser = { value: runAsUser };
  if (runAsGroup !== undefined) out.runAsGroup = { value: runAsGroup };
  const seccomp = seccompProfile(cs?.seccompProfile ?? ps?.seccompProfile);
  if (seccomp) out.seccomp = seccomp;
  return out;
}

/** Where kubelet keeps a pod volume on the host: `<rootDir>/pods/<uid>/volumes/<plugin>/<name>`. */
export function podVolumeDirectory(
  rootDir: string,
  podUid: string,
  plugin: string,
  volumeName: string,
): string {
  return posix.join(rootDir, "pods", podUid, "volumes", plugin, volumeName);
}

/**
 * The host path of a pod volume: `hostPath` (its path), `emptyDir`, `configMap`,
 * `secret`, `downwardAPI` and `projected` (under the pod directory, plugins
 * `kubernetes.io~empty-dir`, `~configmap`, `~secret`, `~downward-api`,
 * `~projected`). Other kinds return `undefined`.
 */
export function volumeHostPath(pod: Pod, volumeName: string, rootDir: string): string | undefined {
  const v = pod.spec?.volumes?.find((x) => x.name === volumeName);
  if (!v) return undefined;
  if (v.hostPath) return v.hostPath.path;
  const plugin = v.emptyDir
    ? "kubernetes.io~empty-dir"
    : v.configMap
      ? "kubernetes.io~configmap"
      : v.secret
        ? "kubernetes.io~secret"
        : v.downwardAPI
          ? "kubernetes.io~downward-api"
          : v.projected
            ? "kubernetes.io~projected"
            : undefined;
  return plugin ? podVolumeDirectory(rootDir, pod.metadata?.uid ?? "", plugin, volumeName) : undefined;
}

function checkSubPath(sub: string, what: string): void {
  if (posix.isAbsolute(sub) || sub.split("/").includes("..")) {
    throw new ContainerConfigError(`${what} ${JSON.stringify(sub)} must be a relative path without '..'`);
  }
}

/** The container's CRI mounts from its `volumeMounts` (with `subPath` / `subPathExpr`) plus kubelet's own files. */
export function containerMounts(
  pod: Pod,
  c: Container,
  env: readonly EnvEntry[],
  ctx: ContainerConfigContext,
): MountConfig[] {
  const envMap = new Map(env.map((e) => [e.key, e.value]));
  const mounts: MountConfig[] = [];
  for (const vm of c.volumeMounts ?? []) {
    const host = ctx.volumeHostPaths.get(vm.name);
    if (host === undefined)
      throw new ContainerConfigError(`cannot find volume "${vm.name}" to mount into container "${c.name}"`);
    let sub = vm.subPath ?? "";
    if (vm.subPathExpr) {
      const missing: string[] = [];
      sub = expandVariables(vm.subPathExpr, (k) => {
        const v = envMap.get(k);
        if (!v) missing.push(k);
        return v ?? "";
      });
      if (missing.length)
        throw new ContainerConfigError(`missing value for ${[...new Set(missing)].sort().join(", ")}`);
    }
    if (sub) checkSubPath(sub, "subPath");
    mounts.push({
      containerPath: vm.mountPath,
      hostPath: sub ? posix.join(host, sub) : host,
      readonly: vm.readOnly === true,
      selinuxRelabel: false,
      propagation:
        vm.mountPropagation === "Bidirectional"
          ? "PROPAGATION_BIDIRECTIONAL"
          : vm.mountPropagation === "HostToContainer"
            ? "PROPAGATION_HOST_TO_CONTAINER"
            : "PROPAGATION_PRIVATE",
    });
  }
  const mounted = new Set(mounts.map((m) => m.containerPath));
  if (ctx.etcHostsPath && !pod.spec?.hostNetwork && !mounted.has("/etc/hosts")) {
    mounts.push({
      containerPath: "/etc/hosts",
      hostPath: ctx.etcHostsPath,
      readonly: false,
      selinuxRelabel: false,
      propagation: "PROPAGATION_PRIVATE",
    });
  }
  if (ctx.terminationMessageHostPath) {
    mounts.push({
      containerPath: c.terminationMessagePath || "/dev/termination-log",
      hostPath: ctx.terminationMessageHostPath,
      readonly: false,
      selinuxRelabel: false,
      propagation: "PROPAGATION_PRIVATE",
    });
  }
  return mounts;
}

/**
 * Builds the CRI configuration of one container instance.
 *
 * @throws {@link ContainerConfigError} when env references or mounts cannot be
 *   resolved (report as waiting reason `CreateContainerConfigError`)
 */
export function buildContainerConfig(
  pod: Pod,
  container: Container,
  ctx: ContainerConfigContext,
): ContainerConfigSpec {
  const envs = makeEnvironment(pod, container, ctx);
  const { command, args } = expandCommandAndArgs(container, envs);
  const qos = podQosClass(pod);
  return {
    metadata: { name: container.name, attempt: ctx.restartCount },
    image: { image: ctx.imageRef || container.image || "", userSpecifiedImage: container.image ?? "" },
    command,
    args,
    workingDir: container.workingDir ?? "",
    envs,
    mounts: containerMounts(pod, container, envs, ctx),
    labels: containerLabels(pod, container),
    annotations: containerAnnotations(pod, container, ctx.restartCount),
    logPath: containerLogPath(container.name, ctx.restartCount),
    stdin: container.stdin === true,
    stdinOnce: container.stdinOnce === true,
    tty: container.tty === true,
    linux: {
      resources: linuxContainerResources(
        container,
        containerOomScoreAdj(pod, container, ctx.memoryCapacityBytes, qos),
      ),
      securityContext: containerSecurityContext(pod, container),
    },
  };
}
