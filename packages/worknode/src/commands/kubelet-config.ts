/**
 * Configuration of `worknode kubelet`: kubelet's flag names, the
 * KubeletConfiguration file (`--config`, kubelet.config.k8s.io/v1beta1) and how
 * they combine — a flag given explicitly overrides the file, the file overrides
 * the default, as in kubelet. Pure: the caller reads the file and the host name.
 *
 * Fields of the file worknode uses are type-checked: `staticPodPath`,
 * `containerRuntimeEndpoint`, `maxPods`, `healthzBindAddress`, `healthzPort`,
 * `port`, `address`, `fileCheckFrequency`, `syncFrequency`, `tlsCertFile`,
 * `tlsPrivateKeyFile`, `enableServer`, `clusterDNS`, `clusterDomain`,
 * `registerNode`, `registerWithTaints`, `rotateCertificates`,
 * `nodeStatusUpdateFrequency`, `nodeStatusReportFrequency`,
 * `authentication` (`x509.clientCAFile`, `webhook.enabled`, `anonymous.enabled`)
 * `authorization.mode`, `containerLogMaxSize`, `containerLogMaxFiles` and
 * `containerLogMonitorInterval`.
 *
 * With `--kubeconfig` (or `--bootstrap-kubeconfig`) the kubelet joins a cluster:
 * it registers its Node, watches the pods bound to it and reports their status.
 * Then the kubelet API may listen on any address, since it authenticates
 * (client certificates, TokenReview) and authorizes (SubjectAccessReview) every
 * request; without an API server it stays on loopback. Other KubeletConfiguration fields are
 * accepted and reported in `ignoredFields` when set; any other field is an error
 * naming it. As kubelet does, zero values take the default (except
 * `healthzPort: 0`, which disables healthz, and `enableServer: false`), and
 * relative paths in the file are relative to the file's directory.
 *
 * @module
 */
import path from "node:path";
import { ConfigError, isValidIP, parseDuration } from "@worknode/core";
import { logRotationPolicy, parseNodeLabels, parseTaint, parseTaints, type Taint } from "@worknode/kubelet";
import { describeValue, readConfigDocument } from "../config-file.js";
import { CliUsageError, type FlagSpec, parseFlags } from "../flags.js";
import { preprocessArgs } from "./proxy-config.js";

/** The apiVersion of a KubeletConfiguration file. */
export const KUBELET_CONFIG_API_VERSION = "kubelet.config.k8s.io/v1beta1";

/** Log levels of `--log-level`. */
export const KUBELET_LOG_LEVELS = ["trace", "debug", "info", "warn", "error"] as const;
/** A `--log-level` value. */
export type KubeletLogLevel = (typeof KUBELET_LOG_LEVELS)[number];

/** Defaults (kubelet's, except the kubelet address: loopback until the API has authentication). */
export const KUBELET_DEFAULTS = {
  containerRuntimeEndpoint: "unix:///run/containerd/containerd.sock",
  rootDir: "/var/lib/worknode/kubelet",
  maxPods: 110,
  healthzBindAddress: "127.0.0.1",
  healthzPort: 10248,
  port: 10250,
  address: "127.0.0.1",
  fileCheckFrequency: "20s",
  syncFrequency: "1m",
  logLevel: "info",
  nodeStatusUpdateFrequency: "10s",
  nodeStatusReportFrequency: "5m",
  containerLogMaxSize: "10Mi",
  containerLogMaxFiles: 5,
  containerLogMonitorInterval: "10s",
} as const;

/** Authorization modes of the kubelet API (`authorization.mode`). */
export const KUBELET_AUTHORIZATION_MODES = ["AlwaysAllow", "Webhook"] as const;
/** An `authorization.mode` value. */
export type KubeletAuthorizationMode = (typeof KUBELET_AUTHORIZATION_MODES)[number];

/** A taint the node registers with (`--register-with-taints`). */
export type RegisterTaint = Taint;

/** The flags of `worknode kubelet`, with kubelet's names. */
export const KUBELET_FLAGS = {
  config: {
    kind: "string",
    help: `KubeletConfiguration file (${KUBELET_CONFIG_API_VERSION}); flags given explicitly override it`,
  },
  "pod-manifest-path": {
    kind: "string",
    help: "Directory of static pod manifests to run (staticPodPath)",
  },
  "container-runtime-endpoint": {
    kind: "string",
    help: "The CRI runtime's endpoint",
    default: KUBELET_DEFAULTS.containerRuntimeEndpoint,
  },
  "root-dir": {
    kind: "string",
    help: "Directory for the kubelet's files",
    default: KUBELET_DEFAULTS.rootDir,
  },
  "hostname-override": { kind: "string", help: "Node name to use instead of the host name" },
  "max-pods": { kind: "int", help: "Most pods this node runs", default: String(KUBELET_DEFAULTS.maxPods) },
  "healthz-bind-address": {
    kind: "string",
    help: "IP address of the healthz server",
    default: KUBELET_DEFAULTS.healthzBindAddress,
  },
  "healthz-port": {
    kind: "int",
    help: "Port of the healthz server on the healthz address (0 disables)",
    default: String(KUBELET_DEFAULTS.healthzPort),
  },
  port: {
    kind: "int",
    help: "Port of the kubelet API (HTTPS: /pods, /containerLogs, /metrics)",
    default: String(KUBELET_DEFAULTS.port),
  },
  address: {
    kind: "string",
    help: "IP address of the kubelet API; loopback only until it has authentication",
    default: KUBELET_DEFAULTS.address,
  },
  "tls-cert-file": {
    kind: "string",
    help: "Serving certificate of the kubelet API (default: a self-signed one in <root-dir>/pki)",
  },
  "tls-private-key-file": { kind: "string", help: "Private key of --tls-cert-file" },
  "file-check-frequency": {
    kind: "duration",
    help: "How often the manifest directory is rescanned besides inotify",
    default: KUBELET_DEFAULTS.fileCheckFrequency,
  },
  "sync-frequency": {
    kind: "duration",
    help: "Most time between two syncs of a running pod",
    default: KUBELET_DEFAULTS.syncFrequency,
  },
  "log-level": {
    kind: "string",
    help: "trace, debug, info, warn or error",
    default: KUBELET_DEFAULTS.logLevel,
  },
  kubeconfig: {
    kind: "string",
    help: "kubeconfig of the API server; given, the kubelet registers its Node and runs the pods bound to it",
  },
  "bootstrap-kubeconfig": {
    kind: "string",
    help: "kubeconfig for TLS bootstrap: when --kubeconfig does not exist, request a client certificate with it",
  },
  "rotate-certificates": {
    kind: "boolean",
    help: "Renew the client certificate from the API server before it expires",
  },
  "register-node": {
    kind: "boolean",
    help: "Register the Node with the API server (default true with --kubeconfig)",
  },
  "node-labels": {
    kind: "string",
    help: "Labels to add when registering the Node: key=value,key2=value2",
  },
  "register-with-taints": {
    kind: "string",
    help: "Taints to register the Node with: key=value:Effect,key2:Effect",
  },
  "node-ip": {
    kind: "string",
    help: "IP address(es) of the node, at most one per family (default: the first non-loopback address)",
  },
  "cluster-dns": { kind: "string", help: "DNS server IPs for pods (comma-separated)" },
  "cluster-domain": { kind: "string", help: "Cluster domain, such as cluster.local" },
  "client-ca-file": {
    kind: "string",
    help: "CA bundle that signs client certificates the kubelet API accepts",
  },
  "anonymous-auth": {
    kind: "boolean",
    help: "Accept anonymous requests to the kubelet API (as system:anonymous; default false)",
  },
  "authentication-token-webhook": {
    kind: "boolean",
    help: "Check bearer tokens with the API server's TokenReview (default true with --kubeconfig)",
  },
  "authorization-mode": {
    kind: "string",
    help: "AlwaysAllow or Webhook (SubjectAccessReview; default with --kubeconfig)",
  },
  "container-log-max-size": {
    kind: "string",
    help: "Size at which a container log file is rotated (a quantity such as 10Mi)",
    default: KUBELET_DEFAULTS.containerLogMaxSize,
  },
  "container-log-max-files": {
    kind: "int",
    help: "Most log files kept per container, the current one included (at least 2)",
    default: String(KUBELET_DEFAULTS.containerLogMaxFiles),
  },
  "node-status-update-frequency": {
    kind: "duration",
    help: "How often the node status is computed and posted when it changed",
    default: KUBELET_DEFAULTS.nodeStatusUpdateFrequency,
  },
} as const satisfies Record<string, FlagSpec>;

/** An address and port. */
export interface KubeletListenAddress {
  readonly host: string;
  readonly port: number;
}

/** Everything `worknode kubelet` runs with, defaults applied and validated. */
export interface KubeletCommandConfig {
  /** Node name: `--hostname-override` or the host name, lowercased. */
  readonly nodeName: string;
  /** Static pod manifest directory; undefined: no static pods. */
  readonly staticPodPath: string | undefined;
  readonly containerRuntimeEndpoint: string;
  readonly rootDir: string;
  readonly maxPods: number;
  /** The healthz server; undefined when `healthzPort` is 0. */
  readonly healthz: KubeletListenAddress | undefined;
  /** The kubelet API server; undefined when `enableServer` is false. */
  readonly server:
    | (KubeletListenAddress & {
        readonly tlsCertFile: string | undefined;
        readonly tlsPrivateKeyFile: string | undefined;
        /** Where a self-signed certificate is kept: `<rootDir>/pki`. */
        readonly certDir: string;
      })
    | undefined;
  readonly fileCheckFrequencyMs: number;
  readonly syncFrequencyMs: number;
  readonly logLevel: KubeletLogLevel;
  /** The `--config` file, when given. */
  readonly configFile: string | undefined;
  /** KubeletConfiguration fields set in the file that worknode does not implement (ignored). */
  readonly ignoredFields: readonly string[];
  /** Joining a cluster: set with `--kubeconfig`; undefined in standalone mode. */
  readonly cluster: KubeletClusterConfig | undefined;
  /** `clusterDNS` (`--cluster-dns`): DNS servers for ClusterFirst pods. */
  readonly clusterDNS: readonly string[];
  /** `clusterDomain` (`--cluster-domain`). */
  readonly clusterDomain: string;
  /** `--node-ip`: the node's IPs, at most one per family; empty: detect. */
  readonly nodeIPs: readonly string[];
  /** Container log rotation: `containerLogMaxSize` (bytes), `containerLogMaxFiles`, `containerLogMonitorInterval`. */
  readonly containerLogs: {
    readonly maxSizeBytes: number;
    readonly maxFiles: number;
    readonly monitorIntervalMs: number;
  };
}

/** How the kubelet joins a cluster (see {@link KubeletCommandConfig.cluster}). */
export interface KubeletClusterConfig {
  /** `--kubeconfig`. */
  readonly kubeconfig: string;
  /** `--bootstrap-kubeconfig`, when TLS bootstrap is wanted. */
  readonly bootstrapKubeconfig: string | undefined;
  /** `rotateCertificates` (`--rotate-certificates`). */
  readonly rotateCertificates: boolean;
  /** `registerNode` (`--register-node`). */
  readonly registerNode: boolean;
  /** `--node-labels`. */
  readonly nodeLabels: Readonly<Record<string, string>>;
  /** `registerWithTaints` (`--register-with-taints`). */
  readonly registerWithTaints: readonly RegisterTaint[];
  /** `nodeStatusUpdateFrequency`. */
  readonly nodeStatusUpdateFrequencyMs: number;
  /** `nodeStatusReportFrequency`. */
  readonly nodeStatusReportFrequencyMs: number;
  /** How the kubelet API authenticates and authorizes requests. */
  readonly auth: {
    /** `authentication.x509.clientCAFile` (`--client-ca-file`). */
    readonly clientCAFile: string | undefined;
    /** `authentication.webhook.enabled` (`--authentication-token-webhook`). */
    readonly tokenWebhook: boolean;
    /** `authentication.anonymous.enabled` (`--anonymous-auth`). */
    readonly anonymous: boolean;
    /** `authorization.mode` (`--authorization-mode`). */
    readonly authorizationMode: KubeletAuthorizationMode;
  };
}

/** The settings a KubeletConfiguration file gives (zero values left out). */
export interface KubeletFileSettings {
  readonly staticPodPath?: string;
  readonly containerRuntimeEndpoint?: string;
  readonly maxPods?: number;
  readonly healthzBindAddress?: string;
  readonly healthzPort?: number;
  readonly port?: number;
  readonly address?: string;
  readonly fileCheckFrequencyMs?: number;
  readonly syncFrequencyMs?: number;
  readonly tlsCertFile?: string;
  readonly tlsPrivateKeyFile?: string;
  readonly enableServer?: boolean;
  readonly clusterDNS?: readonly string[];
  readonly clusterDomain?: string;
  readonly registerNode?: boolean;
  readonly registerWithTaints?: readonly RegisterTaint[];
  readonly rotateCertificates?: boolean;
  readonly nodeStatusUpdateFrequencyMs?: number;
  readonly nodeStatusReportFrequencyMs?: number;
  readonly clientCAFile?: string;
  readonly authenticationWebhook?: boolean;
  readonly anonymousAuth?: boolean;
  readonly authorizationMode?: string;
  readonly containerLogMaxSize?: string;
  readonly containerLogMaxFiles?: number;
  readonly containerLogMonitorIntervalMs?: number;
}

/** A parsed KubeletConfiguration file. */
export interface KubeletConfigFile {
  readonly path: string;
  readonly settings: KubeletFileSettings;
  readonly ignoredFields: readonly string[];
}

type FieldKind =
  | "string"
  | "path"
  | "int"
  | "bool"
  | "duration"
  | "ignored"
  | "strings"
  | "taints"
  | "authentication"
  | "authorization";

/** The fields worknode reads, with their kinds. */
const USED_FIELDS: Readonly<Record<string, FieldKind>> = {
  apiVersion: "string",
  kind: "string",
  staticPodPath: "path",
  containerRuntimeEndpoint: "string",
  maxPods: "int",
  healthzBindAddress: "string",
  healthzPort: "int",
  port: "int",
  address: "string",
  fileCheckFrequency: "duration",
  syncFrequency: "duration",
  tlsCertFile: "path",
  tlsPrivateKeyFile: "path",
  enableServer: "bool",
  clusterDNS: "strings",
  clusterDomain: "string",
  registerNode: "bool",
  registerWithTaints: "taints",
  rotateCertificates: "bool",
  nodeStatusUpdateFrequency: "duration",
  nodeStatusReportFrequency: "duration",
  authentication: "authentication",
  authorization: "authorization",
  containerLogMaxSize: "string",
  containerLogMaxFiles: "int",
  containerLogMonitorInterval: "duration",
};

/** The other top-level fields of KubeletConfiguration v1beta1 (Kubernetes 1.36), accepted and ignored. */
const IGNORED_FIELDS: readonly string[] = [
  "podLogsDir",
  "httpCheckFrequency",
  "staticPodURL",
  "staticPodURLHeader",
  "readOnlyPort",
  "tlsCipherSuites",
  "tlsCurvePreferences",
  "tlsMinVersion",
  "serverTLSBootstrap",
  "registryPullQPS",
  "registryBurst",
  "imagePullCredentialsVerificationPolicy",
  "preloadedImagesVerificationAllowlist",
  "eventRecordQPS",
  "eventBurst",
  "enableDebuggingHandlers",
  "enableContentionProfiling",
  "oomScoreAdj",
  "streamingConnectionIdleTimeout",
  "nodeLeaseDurationSeconds",
  "imageMinimumGCAge",
  "imageMaximumGCAge",
  "imageGCHighThresholdPercent",
  "imageGCLowThresholdPercent",
  "volumeStatsAggPeriod",
  "kubeletCgroups",
  "systemCgroups",
  "cgroupRoot",
  "cgroupsPerQOS",
  "cgroupDriver",
  "cpuManagerPolicy",
  "singleProcessOOMKill",
  "cpuManagerPolicyOptions",
  "cpuManagerReconcilePeriod",
  "draManagerReconcilePeriod",
  "memoryManagerPolicy",
  "topologyManagerPolicy",
  "topologyManagerScope",
  "topologyManagerPolicyOptions",
  "qosReserved",
  "runtimeRequestTimeout",
  "hairpinMode",
  "podCIDR",
  "podPidsLimit",
  "resolvConf",
  "runOnce",
  "cpuCFSQuota",
  "cpuCFSQuotaPeriod",
  "nodeStatusMaxImages",
  "maxOpenFiles",
  "contentType",
  "kubeAPIQPS",
  "kubeAPIBurst",
  "serializeImagePulls",
  "maxParallelImagePulls",
  "evictionHard",
  "evictionSoft",
  "evictionSoftGracePeriod",
  "evictionPressureTransitionPeriod",
  "evictionMaxPodGracePeriod",
  "evictionMinimumReclaim",
  "mergeDefaultEvictionSettings",
  "podsPerCore",
  "enableControllerAttachDetach",
  "protectKernelDefaults",
  "makeIPTablesUtilChains",
  "iptablesMasqueradeBit",
  "iptablesDropBit",
  "featureGates",
  "failSwapOn",
  "memorySwap",
  "containerLogMaxWorkers",
  "configMapAndSecretChangeDetectionStrategy",
  "systemReserved",
  "kubeReserved",
  "reservedSystemCPUs",
  "showHiddenMetricsForVersion",
  "systemReservedCgroup",
  "kubeReservedCgroup",
  "enforceNodeAllocatable",
  "allowedUnsafeSysctls",
  "volumePluginDir",
  "providerID",
  "kernelMemcgNotification",
  "logging",
  "enableSystemLogHandler",
  "enableSystemLogQuery",
  "shutdownGracePeriod",
  "shutdownGracePeriodCriticalPods",
  "shutdownGracePeriodByPodPriority",
  "crashLoopBackOff",
  "reservedMemory",
  "enableProfilingHandler",
  "enableDebugFlagsHandler",
  "seccompDefault",
  "memoryThrottlingFactor",
  "memoryReservationPolicy",
  "tracing",
  "localStorageCapacityIsolation",
  "imageServiceEndpoint",
  "failCgroupV1",
  "userNamespaces",
];

const SCHEMA: Readonly<Record<string, FieldKind>> = {
  ...USED_FIELDS,
  ...Object.fromEntries(IGNORED_FIELDS.map((f) => [f, "ignored" as const])),
};

function isZero(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === "") return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === "object") return Object.values(v as Record<string, unknown>).every(isZero);
  return false;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

function didYouMean(field: string): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const known of Object.keys(SCHEMA)) {
    const d = editDistance(field.toLowerCase(), known.toLowerCase());
    if (d < bestDistance) {
      best = known;
      bestDistance = d;
    }
  }
  return best ? ` (did you mean "${best}"?)` : "";
}

/**
 * Parses a KubeletConfiguration file (pure; see the module notes).
 * @param text the file content
 * @param file the file's path: for messages and to resolve relative paths
 * @throws ConfigError naming the file and the field
 */
export function parseKubeletConfiguration(text: string, file: string): KubeletConfigFile {
  const fail = (msg: string): never => {
    throw new ConfigError(`--config ${file}: ${msg}`);
  };
  const obj = readConfigDocument(text, file, KUBELET_CONFIG_API_VERSION, "KubeletConfiguration");

  const dir = path.dirname(file);
  const settings: Record<string, unknown> = {};
  const ignoredFields: string[] = [];
  for (const [field, v] of Object.entries(obj)) {
    const kind = SCHEMA[field];
    if (kind === undefined) fail(`unknown field "${field}"${didYouMean(field)}`);
    if (field === "apiVersion" || field === "kind") continue;
    if (kind === "ignored") {
      if (!isZero(v)) ignoredFields.push(field);
      continue;
    }
    if (v === null || v === undefined) continue;
    switch (kind) {
      case "string":
      case "path":
        if (typeof v !== "string") fail(`${field}: expected a string, got ${describeValue(v)}`);
        if (v !== "") settings[field] = kind === "path" ? path.resolve(dir, v as string) : v;
        break;
      case "int":
        if (typeof v !== "number" || !Number.isInteger(v))
          fail(`${field}: expected an integer, got ${describeValue(v)}`);
        if (v !== 0 || field === "healthzPort") settings[field] = v;
        break;
      case "bool":
        if (typeof v !== "boolean") fail(`${field}: expected true or false, got ${describeValue(v)}`);
        settings[field] = v;
        break;
      case "strings":
        if (!Array.isArray(v) || !v.every((x) => typeof x === "string"))
          fail(`${field}: expected a list of strings, got ${describeValue(v)}`);
        settings[field] = v;
        break;
      case "taints":
        settings[field] = parseTaintList(v, (msg) => fail(`${field}: ${msg}`));
        break;
      case "authentication":
        Object.assign(
          settings,
          parseAuthenticationField(v, dir, (msg) => fail(`authentication: ${msg}`)),
        );
        break;
      case "authorization": {
        const mode = objectField(v, (msg) => fail(`authorization: ${msg}`)).mode;
        if (mode !== undefined && mode !== null) {
          if (typeof mode !== "string")
            fail(`authorization.mode: expected a string, got ${describeValue(mode)}`);
          if (mode !== "") settings.authorizationMode = mode;
        }
        break;
      }
      case "duration": {
        if (typeof v !== "string")
          fail(`${field}: expected a duration such as "20s", got ${describeValue(v)}`);
        let ms = 0;
        try {
          ms = parseDuration(v as string, field);
        } catch (err) {
          fail((err as Error).message);
        }
        if (ms !== 0) settings[`${field}Ms`] = ms;
        break;
      }
    }
  }
  return { path: file, settings: settings as KubeletFileSettings, ignoredFields };
}

function objectField(v: unknown, fail: (msg: string) => never): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v))
    fail(`expected a mapping, got ${describeValue(v)}`);
  return v as Record<string, unknown>;
}

/** `authentication: { x509: { clientCAFile }, webhook: { enabled }, anonymous: { enabled } }`. */
function parseAuthenticationField(
  v: unknown,
  dir: string,
  fail: (msg: string) => never,
): Pick<KubeletFileSettings, "clientCAFile" | "authenticationWebhook" | "anonymousAuth"> {
  const auth = objectField(v, fail);
  const out: { clientCAFile?: string; authenticationWebhook?: boolean; anonymousAuth?: boolean } = {};
  for (const key of Object.keys(auth)) {
    if (!["x509", "webhook", "anonymous"].includes(key)) fail(`unknown field "${key}"`);
  }
  if (auth.x509 != null) {
    const ca = objectField(auth.x509, (m) => fail(`x509: ${m}`)).clientCAFile;
    if (ca != null && typeof ca !== "string")
      fail(`x509.clientCAFile: expected a string, got ${describeValue(ca)}`);
    if (typeof ca === "string" && ca !== "") out.clientCAFile = path.resolve(dir, ca);
  }
  for (const [key, target] of [
    ["webhook", "authenticationWebhook"],
    ["anonymous", "anonymousAuth"],
  ] as const) {
    if (auth[key] == null) continue;
    const enabled = objectField(auth[key], (m) => fail(`${key}: ${m}`)).enabled;
    if (enabled == null) continue;
    if (typeof enabled !== "boolean")
      fail(`${key}.enabled: expected true or false, got ${describeValue(enabled)}`);
    out[target] = enabled;
  }
  return out;
}

/** `registerWithTaints` of a config file: a list of `{ key, value?, effect }`. */
function parseTaintList(v: unknown, fail: (msg: string) => never): RegisterTaint[] {
  if (!Array.isArray(v)) fail(`expected a list of taints, got ${describeValue(v)}`);
  return (v as unknown[]).map((t, i) => {
    const o = objectField(t, (m) => fail(`[${i}]: ${m}`));
    const { key, value, effect } = o;
    if (typeof key !== "string") fail(`[${i}].key: expected a string, got ${describeValue(key)}`);
    if (value != null && typeof value !== "string")
      fail(`[${i}].value: expected a string, got ${describeValue(value)}`);
    if (typeof effect !== "string") fail(`[${i}].effect: expected a string, got ${describeValue(effect)}`);
    try {
      return parseTaint(value ? `${key}=${value}:${effect}` : `${key}:${effect}`);
    } catch (err) {
      return fail(`[${i}]: ${(err as Error).message}`);
    }
  });
}

/**
 * Parses kubelet's `--register-with-taints` syntax (`key=value:Effect` or
 * `key:Effect`, comma-separated) as a usage error on bad input.
 * @throws CliUsageError naming the bad taint
 */
export function parseTaintsFlag(text: string): RegisterTaint[] {
  try {
    return parseTaints(text);
  } catch (err) {
    throw new CliUsageError(`--register-with-taints: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Parses kubelet's `--node-labels` syntax (`key=value,key2=value2`) as a usage error on bad input.
 * @throws CliUsageError naming the bad label
 */
export function parseNodeLabelsFlag(text: string): Record<string, string> {
  try {
    return parseNodeLabels(text);
  } catch (err) {
    throw new CliUsageError(`--node-labels: ${(err as Error).message}`, { cause: err });
  }
}

function parseIPList(flag: string, text: string): string[] {
  const ips = text
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p !== "");
  for (const ip of ips)
    if (!isValidIP(ip)) throw new CliUsageError(`--${flag}: ${JSON.stringify(ip)} is not an IP address`);
  return ips;
}

/** Flags of {@link KUBELET_FLAGS} as given on the command line (no defaults), durations in ms. */
export interface KubeletExplicitFlags {
  readonly config?: string;
  readonly podManifestPath?: string;
  readonly containerRuntimeEndpoint?: string;
  readonly rootDir?: string;
  readonly hostnameOverride?: string;
  readonly maxPods?: number;
  readonly healthzBindAddress?: string;
  readonly healthzPort?: number;
  readonly port?: number;
  readonly address?: string;
  readonly tlsCertFile?: string;
  readonly tlsPrivateKeyFile?: string;
  readonly fileCheckFrequencyMs?: number;
  readonly syncFrequencyMs?: number;
  readonly logLevel?: string;
  readonly kubeconfig?: string;
  readonly bootstrapKubeconfig?: string;
  readonly rotateCertificates?: boolean;
  readonly registerNode?: boolean;
  readonly nodeLabels?: Readonly<Record<string, string>>;
  readonly registerWithTaints?: readonly RegisterTaint[];
  readonly nodeIPs?: readonly string[];
  readonly clusterDNS?: readonly string[];
  readonly clusterDomain?: string;
  readonly clientCAFile?: string;
  readonly anonymousAuth?: boolean;
  readonly authenticationWebhook?: boolean;
  readonly authorizationMode?: string;
  readonly nodeStatusUpdateFrequencyMs?: number;
  readonly containerLogMaxSize?: string;
  readonly containerLogMaxFiles?: number;
}

/**
 * Parses the command line (flags only, no defaults, so that explicit flags can
 * override the config file).
 * @throws CliUsageError for an unknown flag, a malformed value or an extra argument
 */
export function parseKubeletFlags(
  command: string,
  argv: readonly string[],
): { flags: KubeletExplicitFlags; help: boolean } {
  const spec: Record<string, FlagSpec> = {};
  for (const [name, f] of Object.entries(KUBELET_FLAGS)) spec[name] = { kind: f.kind, help: f.help };
  const booleanFlags = Object.entries(KUBELET_FLAGS)
    .filter(([, f]) => f.kind === "boolean")
    .map(([n]) => n);
  const pre = preprocessArgs(argv, [], booleanFlags);
  const { flags: raw, positionals, help } = parseFlags(command, spec, pre.argv);
  if (positionals.length > 0) throw new CliUsageError(`${command}: unexpected argument "${positionals[0]}"`);
  const r = {
    ...(raw as Record<string, string | number | boolean | undefined>),
    ...Object.fromEntries(pre.booleans),
  };
  const str = (n: string) => r[n] as string | undefined;
  const num = (n: string) => r[n] as number | undefined;
  const bool = (n: string) => r[n] as boolean | undefined;
  const labels = str("node-labels");
  const taints = str("register-with-taints");
  const nodeIP = str("node-ip");
  const dns = str("cluster-dns");
  const flags: KubeletExplicitFlags = {
    config: str("config"),
    podManifestPath: str("pod-manifest-path"),
    containerRuntimeEndpoint: str("container-runtime-endpoint"),
    rootDir: str("root-dir"),
    hostnameOverride: str("hostname-override"),
    maxPods: num("max-pods"),
    healthzBindAddress: str("healthz-bind-address"),
    healthzPort: num("healthz-port"),
    port: num("port"),
    address: str("address"),
    tlsCertFile: str("tls-cert-file"),
    tlsPrivateKeyFile: str("tls-private-key-file"),
    fileCheckFrequencyMs: num("file-check-frequency"),
    syncFrequencyMs: num("sync-frequency"),
    logLevel: str("log-level"),
    kubeconfig: str("kubeconfig"),
    bootstrapKubeconfig: str("bootstrap-kubeconfig"),
    rotateCertificates: bool("rotate-certificates"),
    registerNode: bool("register-node"),
    nodeLabels: labels === undefined ? undefined : parseNodeLabelsFlag(labels),
    registerWithTaints: taints === undefined ? undefined : parseTaintsFlag(taints),
    nodeIPs: nodeIP === undefined ? undefined : parseIPList("node-ip", nodeIP),
    clusterDNS: dns === undefined ? undefined : parseIPList("cluster-dns", dns),
    clusterDomain: str("cluster-domain"),
    clientCAFile: str("client-ca-file"),
    anonymousAuth: bool("anonymous-auth"),
    authenticationWebhook: bool("authentication-token-webhook"),
    authorizationMode: str("authorization-mode"),
    nodeStatusUpdateFrequencyMs: num("node-status-update-frequency"),
    containerLogMaxSize: str("container-log-max-size"),
    containerLogMaxFiles: num("container-log-max-files"),
  };
  return { flags, help };
}

function isLoopback(ip: string): boolean {
  return ip === "::1" || ip.startsWith("127.");
}

/**
 * Combines explicit flags, the config file and the defaults, and validates the
 * result (kubelet's rules and messages: `invalid configuration: <field> (--<flag>) …`).
 * @param hostname the machine's host name (node name unless overridden)
 * @throws CliUsageError for an invalid value
 */
export function resolveKubeletCommandConfig(input: {
  readonly flags: KubeletExplicitFlags;
  readonly file?: KubeletConfigFile;
  readonly hostname: string;
}): KubeletCommandConfig {
  const { flags, hostname } = input;
  const f = input.file?.settings ?? {};
  const invalid = (msg: string): never => {
    throw new CliUsageError(`invalid configuration: ${msg}`);
  };
  const rootDir = flags.rootDir ?? KUBELET_DEFAULTS.rootDir;
  const maxPods = flags.maxPods ?? f.maxPods ?? KUBELET_DEFAULTS.maxPods;
  if (maxPods < 0) invalid(`maxPods (--max-pods) ${maxPods} must not be a negative number`);
  const healthzBindAddress =
    flags.healthzBindAddress ?? f.healthzBindAddress ?? KUBELET_DEFAULTS.healthzBindAddress;
  const healthzPort = flags.healthzPort ?? f.healthzPort ?? KUBELET_DEFAULTS.healthzPort;
  if (healthzPort < 0 || healthzPort > 65535) {
    invalid(
      `healthzPort (--healthz-port) ${healthzPort} must be between 1 and 65535, inclusive (0 disables it)`,
    );
  }
  if (healthzPort !== 0 && !isValidIP(healthzBindAddress)) {
    invalid(
      `healthzBindAddress (--healthz-bind-address) ${JSON.stringify(healthzBindAddress)} is not an IP address`,
    );
  }
  const cluster = resolveClusterConfig(flags, f, invalid);
  const enableServer = f.enableServer ?? true;
  const port = flags.port ?? f.port ?? KUBELET_DEFAULTS.port;
  const address = flags.address ?? f.address ?? KUBELET_DEFAULTS.address;
  if (enableServer) {
    if (port < 1 || port > 65535) invalid(`port (--port) ${port} must be between 1 and 65535, inclusive`);
    if (!isValidIP(address)) invalid(`address (--address) ${JSON.stringify(address)} is not an IP address`);
    if (!isLoopback(address) && cluster === undefined) {
      invalid(
        `address (--address) ${address} is not a loopback address: without an API server (--kubeconfig) the kubelet API cannot authenticate requests, so it listens on 127.0.0.1 or ::1 only`,
      );
    }
  }
  const nodeIPs = flags.nodeIPs ?? [];
  if (
    nodeIPs.length > 2 ||
    (nodeIPs.length === 2 && nodeIPs[0]?.includes(":") === nodeIPs[1]?.includes(":"))
  ) {
    invalid(`--node-ip ${nodeIPs.join(",")}: give at most one IPv4 and one IPv6 address`);
  }
  let containerLogs: KubeletCommandConfig["containerLogs"] | undefined;
  try {
    const policy = logRotationPolicy(
      flags.containerLogMaxSize ?? f.containerLogMaxSize ?? KUBELET_DEFAULTS.containerLogMaxSize,
      flags.containerLogMaxFiles ?? f.containerLogMaxFiles ?? KUBELET_DEFAULTS.containerLogMaxFiles,
    );
    containerLogs = {
      ...policy,
      monitorIntervalMs:
        f.containerLogMonitorIntervalMs ?? parseDuration(KUBELET_DEFAULTS.containerLogMonitorInterval),
    };
  } catch (err) {
    invalid(`${(err as Error).message} (--container-log-max-size / --container-log-max-files)`);
  }
  const clusterDNS = flags.clusterDNS ?? f.clusterDNS ?? [];
  for (const ip of clusterDNS) {
    if (!isValidIP(ip)) invalid(`clusterDNS (--cluster-dns) ${JSON.stringify(ip)} is not an IP address`);
  }
  const tlsCertFile = flags.tlsCertFile ?? f.tlsCertFile;
  const tlsPrivateKeyFile = flags.tlsPrivateKeyFile ?? f.tlsPrivateKeyFile;
  if ((tlsCertFile === undefined) !== (tlsPrivateKeyFile === undefined)) {
    invalid(
      "tlsCertFile (--tls-cert-file) and tlsPrivateKeyFile (--tls-private-key-file) go together: give both or neither",
    );
  }
  const endpoint =
    flags.containerRuntimeEndpoint ?? f.containerRuntimeEndpoint ?? KUBELET_DEFAULTS.containerRuntimeEndpoint;
  if (!endpoint.startsWith("unix://") && !endpoint.startsWith("/")) {
    invalid(
      `containerRuntimeEndpoint (--container-runtime-endpoint) ${JSON.stringify(endpoint)} is not a unix socket endpoint (expected unix:///path/to/runtime.sock)`,
    );
  }
  const logLevel = flags.logLevel ?? KUBELET_DEFAULTS.logLevel;
  if (!(KUBELET_LOG_LEVELS as readonly string[]).includes(logLevel)) {
    invalid(`--log-level ${JSON.stringify(logLevel)} is not one of ${KUBELET_LOG_LEVELS.join(", ")}`);
  }
  const nodeName = (flags.hostnameOverride ?? hostname).trim().toLowerCase();
  if (nodeName === "") invalid("the node name is empty: give --hostname-override");
  const fileCheckFrequencyMs =
    flags.fileCheckFrequencyMs ??
    f.fileCheckFrequencyMs ??
    parseDuration(KUBELET_DEFAULTS.fileCheckFrequency);
  const syncFrequencyMs =
    flags.syncFrequencyMs ?? f.syncFrequencyMs ?? parseDuration(KUBELET_DEFAULTS.syncFrequency);
  if (syncFrequencyMs === 0) invalid("syncFrequency (--sync-frequency) must be greater than 0");
  const staticPodPath = flags.podManifestPath ?? f.staticPodPath;
  return {
    nodeName,
    staticPodPath: staticPodPath === "" ? undefined : staticPodPath,
    containerRuntimeEndpoint: endpoint,
    rootDir,
    maxPods,
    healthz: healthzPort === 0 ? undefined : { host: healthzBindAddress, port: healthzPort },
    server: enableServer
      ? { host: address, port, tlsCertFile, tlsPrivateKeyFile, certDir: path.join(rootDir, "pki") }
      : undefined,
    fileCheckFrequencyMs,
    syncFrequencyMs,
    logLevel: logLevel as KubeletLogLevel,
    configFile: input.file?.path,
    ignoredFields: input.file?.ignoredFields ?? [],
    cluster,
    clusterDNS,
    clusterDomain: flags.clusterDomain ?? f.clusterDomain ?? "",
    nodeIPs,
    containerLogs: containerLogs as KubeletCommandConfig["containerLogs"],
  };
}

function resolveClusterConfig(
  flags: KubeletExplicitFlags,
  f: KubeletFileSettings,
  invalid: (msg: string) => never,
): KubeletClusterConfig | undefined {
  if (flags.kubeconfig === undefined) {
    if (flags.bootstrapKubeconfig !== undefined)
      invalid("--bootstrap-kubeconfig needs --kubeconfig (where the obtained credentials are written)");
    return undefined;
  }
  const mode = flags.authorizationMode ?? f.authorizationMode ?? "Webhook";
  if (!(KUBELET_AUTHORIZATION_MODES as readonly string[]).includes(mode)) {
    invalid(
      `authorization.mode (--authorization-mode) ${JSON.stringify(mode)} is not one of ${KUBELET_AUTHORIZATION_MODES.join(", ")}`,
    );
  }
  const updateMs =
    flags.nodeStatusUpdateFrequencyMs ??
    f.nodeStatusUpdateFrequencyMs ??
    parseDuration(KUBELET_DEFAULTS.nodeStatusUpdateFrequency);
  const reportMs = f.nodeStatusReportFrequencyMs ?? parseDuration(KUBELET_DEFAULTS.nodeStatusReportFrequency);
  if (updateMs <= 0)
    invalid("nodeStatusUpdateFrequency (--node-status-update-frequency) must be greater than 0");
  return {
    kubeconfig: flags.kubeconfig,
    bootstrapKubeconfig: flags.bootstrapKubeconfig,
    rotateCertificates: flags.rotateCertificates ?? f.rotateCertificates ?? false,
    registerNode: flags.registerNode ?? f.registerNode ?? true,
    nodeLabels: flags.nodeLabels ?? {},
    registerWithTaints: flags.registerWithTaints ?? f.registerWithTaints ?? [],
    nodeStatusUpdateFrequencyMs: updateMs,
    nodeStatusReportFrequencyMs: Math.max(reportMs, updateMs),
    auth: {
      clientCAFile: flags.clientCAFile ?? f.clientCAFile,
      tokenWebhook: flags.authenticationWebhook ?? f.authenticationWebhook ?? true,
      anonymous: flags.anonymousAuth ?? f.anonymousAuth ?? false,
      authorizationMode: mode as KubeletAuthorizationMode,
    },
  };
}

/**
 * Parses the command line, reads the config file through `readFile` when
 * `--config` is given, and resolves the configuration.
 * @throws CliUsageError for bad flags or values, ConfigError for a bad or unreadable config file
 */
export async function loadKubeletCommandConfig(
  command: string,
  argv: readonly string[],
  env: { readonly hostname: string; readonly readFile: (file: string) => Promise<string> },
): Promise<{ config: KubeletCommandConfig; help: false } | { help: true }> {
  const { flags, help } = parseKubeletFlags(command, argv);
  if (help) return { help: true };
  let file: KubeletConfigFile | undefined;
  if (flags.config !== undefined) {
    let text: string;
    try {
      text = await env.readFile(flags.config);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ConfigError(
        `--config ${flags.config}: ${code === "ENOENT" ? "no such file" : `cannot read: ${code ?? (err as Error).message}`}`,
        { cause: err },
      );
    }
    file = parseKubeletConfiguration(text, flags.config);
  }
  return { config: resolveKubeletCommandConfig({ flags, file, hostname: env.hostname }), help: false };
}
