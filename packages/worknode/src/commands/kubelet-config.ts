/**
 * Configuration of `worknode kubelet`: kubelet's flag names, the
 * KubeletConfiguration file (`--config`, kubelet.config.k8s.io/v1beta1) and how
 * they combine — a flag given explicitly overrides the file, the file overrides
 * the default, as in kubelet. Pure: the caller reads the file and the host name.
 *
 * Fields of the file worknode uses are type-checked: `staticPodPath`,
 * `containerRuntimeEndpoint`, `maxPods`, `healthzBindAddress`, `healthzPort`,
 * `port`, `address`, `fileCheckFrequency`, `syncFrequency`, `tlsCertFile`,
 * `tlsPrivateKeyFile`, `enableServer`. Other KubeletConfiguration fields are
 * accepted and reported in `ignoredFields` when set; any other field is an error
 * naming it. As kubelet does, zero values take the default (except
 * `healthzPort: 0`, which disables healthz, and `enableServer: false`), and
 * relative paths in the file are relative to the file's directory.
 *
 * @module
 */
import path from "node:path";
import { ConfigError, isValidIP, parseDuration } from "@worknode/core";
import { describeValue, readConfigDocument } from "../config-file.js";
import { CliUsageError, type FlagSpec, parseFlags } from "../flags.js";

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
} as const;

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
}

/** A parsed KubeletConfiguration file. */
export interface KubeletConfigFile {
  readonly path: string;
  readonly settings: KubeletFileSettings;
  readonly ignoredFields: readonly string[];
}

type FieldKind = "string" | "path" | "int" | "bool" | "duration" | "ignored";

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
  "rotateCertificates",
  "serverTLSBootstrap",
  "authentication",
  "authorization",
  "registryPullQPS",
  "registryBurst",
  "imagePullCredentialsVerificationPolicy",
  "preloadedImagesVerificationAllowlist",
  "eventRecordQPS",
  "eventBurst",
  "enableDebuggingHandlers",
  "enableContentionProfiling",
  "oomScoreAdj",
  "clusterDomain",
  "clusterDNS",
  "streamingConnectionIdleTimeout",
  "nodeStatusUpdateFrequency",
  "nodeStatusReportFrequency",
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
  "containerLogMaxSize",
  "containerLogMaxFiles",
  "containerLogMaxWorkers",
  "containerLogMonitorInterval",
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
  "registerWithTaints",
  "registerNode",
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
  const { flags: raw, positionals, help } = parseFlags(command, spec, argv);
  if (positionals.length > 0) throw new CliUsageError(`${command}: unexpected argument "${positionals[0]}"`);
  const r = raw as Record<string, string | number | boolean | undefined>;
  const str = (n: string) => r[n] as string | undefined;
  const num = (n: string) => r[n] as number | undefined;
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
  const enableServer = f.enableServer ?? true;
  const port = flags.port ?? f.port ?? KUBELET_DEFAULTS.port;
  const address = flags.address ?? f.address ?? KUBELET_DEFAULTS.address;
  if (enableServer) {
    if (port < 1 || port > 65535) invalid(`port (--port) ${port} must be between 1 and 65535, inclusive`);
    if (!isValidIP(address)) invalid(`address (--address) ${JSON.stringify(address)} is not an IP address`);
    if (!isLoopback(address)) {
      invalid(
        `address (--address) ${address} is not a loopback address: the kubelet API has no authentication yet, so it listens on 127.0.0.1 or ::1 only`,
      );
    }
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
