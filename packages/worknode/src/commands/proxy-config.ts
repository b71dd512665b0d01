/**
 * Configuration of `worknode proxy`: kube-proxy's flag names, the
 * KubeProxyConfiguration file (`--config`, kubeproxy.config.k8s.io/v1alpha1) and
 * how the two combine (flags given explicitly override the file, then defaults).
 * Pure: no I/O apart from what the caller hands in.
 *
 * @module
 */
import { ConfigError, ipFamilyOf, isValidIP, parseCidr, parseDuration } from "@worknode/core";
import { checkPinPath, DEFAULT_PIN_PATH } from "@worknode/proxy-ebpf";
import { describeValue, readConfigDocument } from "../config-file.js";
import { CliUsageError, type FlagSpec } from "../flags.js";

/** Proxy modes implemented today (iptables is the default, as in kube-proxy). */
export const IMPLEMENTED_PROXY_MODES = ["iptables", "nftables", "ebpf"] as const;
/** Proxy modes known from kube-proxy and worknode's plans, not implemented yet. */
export const PLANNED_PROXY_MODES = ["userspace", "ipvs"] as const;
/** Every proxy mode worknode knows, in the order error messages list them. */
export const KNOWN_PROXY_MODES = ["iptables", "userspace", "nftables", "ipvs", "ebpf"] as const;
/** An implemented proxy mode. */
export type ProxyMode = (typeof IMPLEMENTED_PROXY_MODES)[number];

/** Log levels of `--log-level`. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error"] as const;
/** A `--log-level` value. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** kube-proxy's default healthz port. */
export const DEFAULT_HEALTHZ_PORT = 10256;
/** kube-proxy's default metrics port. */
export const DEFAULT_METRICS_PORT = 10249;
/** kube-proxy's default `--iptables-masquerade-bit`. */
export const DEFAULT_MASQUERADE_BIT = 14;
/** kube-proxy's default `--iptables-min-sync-period` (1 s). */
export const DEFAULT_MIN_SYNC_PERIOD_MS = 1_000;
/** kube-proxy's default `--iptables-sync-period` (30 s). */
export const DEFAULT_SYNC_PERIOD_MS = 30_000;
/** The apiVersion of a KubeProxyConfiguration file. */
export const KUBE_PROXY_CONFIG_API_VERSION = "kubeproxy.config.k8s.io/v1alpha1";

/** Keywords `--nodeport-addresses` accepts besides CIDRs (kube-proxy's). */
export const NODE_PORT_ADDRESS_KEYWORDS = ["primary", "localhost", "all"] as const;

/** The flags of `worknode proxy` (kube-proxy's names), with the defaults shown in `--help`. */
export const PROXY_FLAGS = {
  config: {
    kind: "string",
    help: "KubeProxyConfiguration file (kubeproxy.config.k8s.io/v1alpha1); flags given explicitly override it",
  },
  "proxy-mode": {
    kind: "string",
    help: "Which proxy mode to use: iptables, nftables or ebpf (cgroup socket load balancing; userspace and ipvs are not implemented yet)",
    default: "iptables",
  },
  "ebpf-cgroup-path": {
    kind: "string",
    help: "ebpf mode: cgroup v2 directory whose sockets (and its descendants') are balanced (default: the root of the cgroup v2 hierarchy, every process of the node)",
  },
  "ebpf-pin-path": {
    kind: "string",
    help: "ebpf mode: bpffs directory of the pinned programs and maps (its parent must be a bpffs mount); other modes remove what is pinned there at start",
    default: DEFAULT_PIN_PATH,
  },
  kubeconfig: {
    kind: "string",
    help: "Kubeconfig of the API server to take Services and EndpointSlices from (API mode)",
  },
  "services-file": {
    kind: "string",
    help: "Standalone mode: multi-document YAML of Service and EndpointSlice objects, watched for changes",
  },
  "hostname-override": { kind: "string", help: "Node name to use instead of the host name" },
  "bind-address": {
    kind: "string",
    help: "Overrides the node's primary IP (as kube-proxy's flag: no socket is bound to it); 0.0.0.0 or :: to detect",
    default: "0.0.0.0",
  },
  "cluster-cidr": {
    kind: "string",
    help: "Pod CIDR(s) of the cluster, comma-separated dual-stack pair; traffic to cluster IPs from outside is masqueraded",
  },
  "masquerade-all": { kind: "boolean", help: "SNAT all traffic sent through Service cluster IPs" },
  "nodeport-addresses": {
    kind: "string",
    help: "Comma-separated CIDRs (or primary, localhost, all) of the node addresses that accept NodePort traffic",
  },
  "iptables-min-sync-period": {
    kind: "duration",
    help: "Minimum interval between rule syncs (0 syncs on every change); also applies in nftables mode, as in kube-proxy 1.31+",
    default: "1s",
  },
  "iptables-sync-period": {
    kind: "duration",
    help: "Maximum interval between rule syncs; also applies in nftables mode, as in kube-proxy 1.31+",
    default: "30s",
  },
  "iptables-masquerade-bit": {
    kind: "int",
    help: "Bit of the fwmark space marking packets that need SNAT, 0-31 (iptables mode; nftables mode takes nftables.masqueradeBit from --config)",
    default: "14",
  },
  "iptables-localhost-nodeports": {
    kind: "boolean",
    help: "NodePorts also answer on 127.0.0.1 (iptables mode: sets net.ipv4.conf.all.route_localnet=1 and installs KUBE-FIREWALL); =false turns it off (iptables and ebpf modes)",
    default: true,
  },
  "healthz-bind-address": {
    kind: "string",
    help: 'Address:port of the /healthz and /livez server ("" disables)',
    default: "0.0.0.0:10256",
  },
  "metrics-bind-address": {
    kind: "string",
    help: 'Address:port of the /metrics server ("" disables)',
    default: "127.0.0.1:10249",
  },
  cleanup: {
    kind: "boolean",
    help: "Remove every rule any proxy mode wrote (iptables, ip6tables, the nftables tables ip/ip6 kube-proxy and the ebpf mode's cgroup programs and pins), then exit",
  },
  "log-level": { kind: "string", help: "trace, debug, info, warn or error", default: "info" },
} as const satisfies Record<string, FlagSpec>;

/** The flags of `worknode proxy plan`. */
export const PLAN_FLAGS = {
  "services-file": {
    kind: "string",
    help: "Multi-document YAML of Service and EndpointSlice objects to plan for (required)",
  },
  "proxy-mode": PROXY_FLAGS["proxy-mode"],
  diff: {
    kind: "boolean",
    help: "Compare with the rules on this node now (iptables-save, nft list table, or the ebpf mode's pinned maps) instead of printing the payloads; needs root",
  },
  "ebpf-pin-path": PROXY_FLAGS["ebpf-pin-path"],
  config: {
    kind: "string",
    help: "KubeProxyConfiguration file whose rule-shaping fields apply; flags given explicitly override it",
  },
  "hostname-override": PROXY_FLAGS["hostname-override"],
  "bind-address": PROXY_FLAGS["bind-address"],
  "cluster-cidr": PROXY_FLAGS["cluster-cidr"],
  "masquerade-all": PROXY_FLAGS["masquerade-all"],
  "nodeport-addresses": PROXY_FLAGS["nodeport-addresses"],
  "iptables-masquerade-bit": PROXY_FLAGS["iptables-masquerade-bit"],
  "iptables-localhost-nodeports": PROXY_FLAGS["iptables-localhost-nodeports"],
} as const satisfies Record<string, FlagSpec>;

/** A flag table without its defaults: parsing with it tells which flags were given explicitly. */
export type WithoutDefaults<S extends Record<string, FlagSpec>> = {
  readonly [K in keyof S]: { readonly kind: S[K]["kind"]; readonly help: string };
};

/** Returns `spec` without defaults (see {@link WithoutDefaults}). */
export function withoutDefaults<S extends Record<string, FlagSpec>>(spec: S): WithoutDefaults<S> {
  const out: Record<string, FlagSpec> = {};
  for (const [name, f] of Object.entries(spec)) out[name] = { kind: f.kind, help: f.help };
  return out as WithoutDefaults<S>;
}

/** What {@link preprocessArgs} took out of the argument list. */
export interface PreprocessedArgs {
  /** The arguments left for `parseFlags`. */
  readonly argv: string[];
  /** Flags given with an empty value (`--healthz-bind-address=""`): explicitly disabled. */
  readonly emptied: ReadonlySet<string>;
  /** Boolean flags given as `--flag=true|false`, with their value. */
  readonly booleans: ReadonlyMap<string, boolean>;
}

/**
 * Handles the pflag syntax `parseArgs` does not: an empty value for the flags in
 * `emptyAllowed` (`--x=` or `--x ""`, which disables a server in kube-proxy) and
 * `--bool=true|false` for the boolean flags in `booleanFlags`.
 */
export function preprocessArgs(
  argv: readonly string[],
  emptyAllowed: readonly string[],
  booleanFlags: readonly string[],
): PreprocessedArgs {
  const out: string[] = [];
  const emptied = new Set<string>();
  const booleans = new Map<string, boolean>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      out.push(...argv.slice(i));
      break;
    }
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/s.exec(arg);
    const name = m?.[1];
    const inline = m?.[2];
    if (name !== undefined && emptyAllowed.includes(name)) {
      if (inline === "") {
        emptied.add(name);
        continue;
      }
      if (inline === undefined && argv[i + 1] === "") {
        emptied.add(name);
        i++;
        continue;
      }
    }
    if (name !== undefined && inline !== undefined && booleanFlags.includes(name)) {
      if (inline !== "true" && inline !== "false") {
        throw new CliUsageError(`--${name}: "${inline}" is not a boolean (true or false)`);
      }
      booleans.set(name, inline === "true");
      continue;
    }
    out.push(arg);
  }
  return { argv: out, emptied, booleans };
}

// ---------------------------------------------------------------------------------------
// Settings: what flags and the config file can say, before defaults

/** An address and port to serve on. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * The settings both the flags and the config file can give. `undefined`: not given;
 * `null` for a bind address: explicitly disabled.
 */
export interface ProxySettings {
  readonly mode?: string;
  readonly kubeconfig?: string;
  readonly hostnameOverride?: string;
  readonly bindAddress?: string;
  readonly clusterCIDR?: string;
  readonly masqueradeAll?: boolean;
  readonly nodePortAddresses?: readonly string[];
  readonly minSyncPeriodMs?: number;
  readonly syncPeriodMs?: number;
  readonly masqueradeBit?: number;
  readonly localhostNodePorts?: boolean;
  readonly healthzBindAddress?: string | null;
  readonly metricsBindAddress?: string | null;
  /**
   * Config file only: the `nftables:` section, which replaces `masqueradeAll`,
   * `masqueradeBit` and the sync periods of the `iptables:` section when the mode is
   * nftables (kube-proxy's v1alpha1 conversion).
   */
  readonly nftables?: NftablesFileSettings;
  /** `--ebpf-cgroup-path` / `--ebpf-pin-path`, or the file's `ebpf:` section (a worknode extension). */
  readonly ebpf?: EbpfSettings;
}

/** Where the ebpf mode attaches and pins (`--ebpf-cgroup-path`, `--ebpf-pin-path`, the file's `ebpf:` section). */
export interface EbpfSettings {
  /** cgroup v2 directory whose sockets are balanced; unset: the cgroup v2 root. */
  readonly cgroupPath?: string;
  /** bpffs directory of the pinned programs and maps; unset: `/sys/fs/bpf/worknode`. */
  readonly pinPath?: string;
}

/** The `nftables:` section of a KubeProxyConfiguration file (zero values left out). */
export interface NftablesFileSettings {
  readonly masqueradeAll?: boolean;
  readonly masqueradeBit?: number;
  readonly minSyncPeriodMs?: number;
  readonly syncPeriodMs?: number;
}

/** A parsed KubeProxyConfiguration file. */
export interface KubeProxyConfigFile {
  /** The settings it gives (zero values, which kube-proxy defaults, are left out). */
  readonly settings: ProxySettings;
  /** kube-proxy fields worknode does not implement that the file sets to a non-zero value (dotted paths). */
  readonly ignoredFields: readonly string[];
}

type FieldKind = "string" | "bool" | "int" | "duration" | "stringList" | "ignored";
interface Schema {
  readonly [field: string]: FieldKind | Schema;
}

/** Every field of kube-proxy's v1alpha1 KubeProxyConfiguration (and a few removed ones older files carry). */
const CONFIG_SCHEMA: Schema = {
  apiVersion: "string",
  kind: "string",
  featureGates: "ignored",
  clientConnection: {
    kubeconfig: "string",
    acceptContentTypes: "ignored",
    contentType: "ignored",
    qps: "ignored",
    burst: "ignored",
  },
  logging: {
    format: "ignored",
    flushFrequency: "ignored",
    verbosity: "ignored",
    vmodule: "ignored",
    options: "ignored",
  },
  hostnameOverride: "string",
  bindAddress: "string",
  healthzBindAddress: "string",
  metricsBindAddress: "string",
  bindAddressHardFail: "ignored",
  enableProfiling: "ignored",
  showHiddenMetricsForVersion: "ignored",
  mode: "string",
  iptables: {
    masqueradeBit: "int",
    masqueradeAll: "bool",
    localhostNodePorts: "bool",
    snatNodeInternalIP: "ignored",
    syncPeriod: "duration",
    minSyncPeriod: "duration",
  },
  ipvs: {
    syncPeriod: "ignored",
    minSyncPeriod: "ignored",
    scheduler: "ignored",
    excludeCIDRs: "ignored",
    strictARP: "ignored",
    tcpTimeout: "ignored",
    tcpFinTimeout: "ignored",
    udpTimeout: "ignored",
  },
  nftables: {
    masqueradeBit: "int",
    masqueradeAll: "bool",
    syncPeriod: "duration",
    minSyncPeriod: "duration",
  },
  // worknode's own: kube-proxy has no ebpf mode.
  ebpf: {
    cgroupPath: "string",
    pinPath: "string",
  },
  winkernel: {
    networkName: "ignored",
    sourceVip: "ignored",
    enableDSR: "ignored",
    rootHnsEndpointName: "ignored",
    forwardHealthCheckVip: "ignored",
  },
  detectLocalMode: "ignored",
  detectLocal: { bridgeInterface: "ignored", interfaceNamePrefix: "ignored" },
  clusterCIDR: "string",
  nodePortAddresses: "stringList",
  oomScoreAdj: "ignored",
  conntrack: {
    max: "ignored",
    maxPerCore: "ignored",
    min: "ignored",
    tcpEstablishedTimeout: "ignored",
    tcpCloseWaitTimeout: "ignored",
    tcpBeLiberal: "ignored",
    udpTimeout: "ignored",
    udpStreamTimeout: "ignored",
  },
  configSyncPeriod: "ignored",
  portRange: "ignored",
  udpIdleTimeout: "ignored",
  windowsRunAsService: "ignored",
};

/** Values kube-proxy treats as "not set" (its defaulting replaces them). */
function isZero(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === "" || v === "0s" || v === "0")
    return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === "object") return Object.values(v as Record<string, unknown>).every(isZero);
  return false;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

function suggestion(field: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of known) {
    const d = editDistance(field.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best === undefined ? "" : ` (did you mean "${best}"?)`;
}

/**
 * Parses a KubeProxyConfiguration YAML file (pure). Fields worknode uses are type-checked;
 * kube-proxy fields it does not implement are accepted (and listed in `ignoredFields` when
 * set to a non-zero value); any other field is an error naming it.
 *
 * @param text the file content
 * @param path the file name, for messages
 * @throws ConfigError naming the file and the field
 */
export function parseKubeProxyConfiguration(text: string, path: string): KubeProxyConfigFile {
  const fail = (msg: string): never => {
    throw new ConfigError(`--config ${path}: ${msg}`);
  };
  const value = readConfigDocument(text, path, KUBE_PROXY_CONFIG_API_VERSION, "KubeProxyConfiguration");
  const ignoredFields: string[] = [];
  const checked = new Map<string, unknown>();
  const walk = (obj: Record<string, unknown>, schema: Schema, prefix: string) => {
    for (const [field, v] of Object.entries(obj)) {
      const dotted = prefix + field;
      const kind = schema[field];
      if (kind === undefined)
        return fail(`unknown field "${dotted}"${suggestion(field, Object.keys(schema))}`);
      if (kind === "ignored") {
        if (!isZero(v)) ignoredFields.push(dotted);
        continue;
      }
      if (typeof kind === "object") {
        if (v === null || v === undefined) continue;
        if (typeof v !== "object" || Array.isArray(v))
          return fail(`${dotted}: expected a mapping, got ${describeValue(v)}`);
        walk(v as Record<string, unknown>, kind, `${dotted}.`);
        continue;
      }
      if (v === null || v === undefined) continue;
      switch (kind) {
        case "string":
          if (typeof v !== "string") return fail(`${dotted}: expected a string, got ${describeValue(v)}`);
          break;
        case "bool":
          if (typeof v !== "boolean")
            return fail(`${dotted}: expected true or false, got ${describeValue(v)}`);
          break;
        case "int":
          if (typeof v !== "number" || !Number.isInteger(v)) {
            return fail(`${dotted}: expected a whole number, got ${describeValue(v)}`);
          }
          break;
        case "duration":
          if (typeof v !== "string")
            return fail(`${dotted}: expected a duration such as "1s", got ${describeValue(v)}`);
          try {
            parseDuration(v, dotted);
          } catch (err) {
            return fail((err as Error).message);
          }
          break;
        case "stringList":
          if (!Array.isArray(v) || v.some((e) => typeof e !== "string")) {
            return fail(`${dotted}: expected a list of strings, got ${describeValue(v)}`);
          }
          break;
      }
      checked.set(dotted, v);
    }
  };
  walk(value, CONFIG_SCHEMA, "");

  const str = (k: string) => {
    const v = checked.get(k);
    return typeof v === "string" && v !== "" ? v : undefined;
  };
  const dur = (k: string) => {
    const v = str(k);
    if (v === undefined) return undefined;
    const ms = parseDuration(v, k);
    return ms === 0 ? undefined : ms;
  };
  const masqueradeBit = checked.get("iptables.masqueradeBit");
  const masqueradeAll = checked.get("iptables.masqueradeAll");
  // A pointer in kube-proxy's type: an explicit false counts, unlike other zero values.
  const localhostNodePorts = checked.get("iptables.localhostNodePorts");
  const nodePortAddresses = checked.get("nodePortAddresses");
  const nftMasqueradeBit = checked.get("nftables.masqueradeBit");
  const nftables: NftablesFileSettings = {
    ...(checked.get("nftables.masqueradeAll") === true ? { masqueradeAll: true } : {}),
    ...(typeof nftMasqueradeBit === "number" ? { masqueradeBit: nftMasqueradeBit } : {}),
    ...(dur("nftables.minSyncPeriod") !== undefined
      ? { minSyncPeriodMs: dur("nftables.minSyncPeriod") }
      : {}),
    ...(dur("nftables.syncPeriod") !== undefined ? { syncPeriodMs: dur("nftables.syncPeriod") } : {}),
  };
  const ebpf: EbpfSettings = {
    ...(str("ebpf.cgroupPath") !== undefined ? { cgroupPath: str("ebpf.cgroupPath") } : {}),
    ...(str("ebpf.pinPath") !== undefined ? { pinPath: str("ebpf.pinPath") } : {}),
  };
  const settings: ProxySettings = {
    ...(str("mode") !== undefined ? { mode: str("mode") } : {}),
    ...(str("clientConnection.kubeconfig") !== undefined
      ? { kubeconfig: str("clientConnection.kubeconfig") }
      : {}),
    ...(str("hostnameOverride") !== undefined ? { hostnameOverride: str("hostnameOverride") } : {}),
    ...(str("bindAddress") !== undefined ? { bindAddress: str("bindAddress") } : {}),
    ...(str("clusterCIDR") !== undefined ? { clusterCIDR: str("clusterCIDR") } : {}),
    ...(masqueradeAll === true ? { masqueradeAll: true } : {}),
    ...(Array.isArray(nodePortAddresses) && nodePortAddresses.length > 0
      ? { nodePortAddresses: nodePortAddresses as string[] }
      : {}),
    ...(dur("iptables.minSyncPeriod") !== undefined
      ? { minSyncPeriodMs: dur("iptables.minSyncPeriod") }
      : {}),
    ...(dur("iptables.syncPeriod") !== undefined ? { syncPeriodMs: dur("iptables.syncPeriod") } : {}),
    ...(typeof masqueradeBit === "number" ? { masqueradeBit } : {}),
    ...(typeof localhostNodePorts === "boolean" ? { localhostNodePorts } : {}),
    ...(str("healthzBindAddress") !== undefined ? { healthzBindAddress: str("healthzBindAddress") } : {}),
    ...(str("metricsBindAddress") !== undefined ? { metricsBindAddress: str("metricsBindAddress") } : {}),
    ...(Object.keys(nftables).length > 0 ? { nftables } : {}),
    ...(Object.keys(ebpf).length > 0 ? { ebpf } : {}),
  };
  return { settings, ignoredFields };
}

// ---------------------------------------------------------------------------------------
// Resolution

/** The resolved settings shared by `worknode proxy` and `worknode proxy plan`. */
export interface ResolvedProxySettings {
  readonly mode: ProxyMode;
  /** `--hostname-override`, trimmed and lowercased; undefined: use the host name. */
  readonly hostnameOverride: string | undefined;
  /** The node's primary IP from `--bind-address`; undefined when unset or unspecified (0.0.0.0, ::). */
  readonly primaryIP: string | undefined;
  /** `--cluster-cidr`: at most one CIDR per family. */
  readonly clusterCIDRs: readonly string[];
  readonly masqueradeAll: boolean;
  /** `--nodeport-addresses` entries: CIDRs and keywords (expanded against the node's IPs later). */
  readonly nodePortAddresses: readonly string[];
  readonly minSyncPeriodMs: number;
  readonly syncPeriodMs: number;
  readonly masqueradeBit: number;
  /** `--iptables-localhost-nodeports` / `iptables.localhostNodePorts` (default true). */
  readonly localhostNodePorts: boolean;
  /** Undefined: disabled. */
  readonly healthzBindAddress: HostPort | undefined;
  /** Undefined: disabled. */
  readonly metricsBindAddress: HostPort | undefined;
  /** `clientConnection.kubeconfig` or `--kubeconfig`. */
  readonly kubeconfig: string | undefined;
  /**
   * The ebpf mode's cgroup and pin directory, checked; the pin path defaulted. Present in
   * ebpf mode and whenever a flag or the file gives one (the other modes remove the ebpf
   * mode's leftovers there when they start, and `--cleanup` does).
   */
  readonly ebpf?: ResolvedEbpfSettings;
  /**
   * Flags given explicitly that the resolved mode does not use (`--iptables-masquerade-bit`
   * and `--iptables-localhost-nodeports` in nftables mode, as kube-proxy ignores them;
   * `--iptables-masquerade-bit` and `--masquerade-all` in ebpf mode, which does no NAT);
   * absent when there are none. The caller warns about them.
   */
  readonly unusedFlags?: readonly string[];
}

/** {@link EbpfSettings} resolved: the pin path always set. */
export interface ResolvedEbpfSettings {
  /** Undefined: the root of the cgroup v2 hierarchy (found when the backend starts). */
  readonly cgroupPath: string | undefined;
  readonly pinPath: string;
}

/**
 * Checks the ebpf mode's paths: both absolute, the pin path also free of blanks and quotes
 * (it goes into `bpftool batch` lines unquoted) and not `/` itself.
 * @param where names the flag or field of each path, for messages
 * @throws ConfigError naming it
 */
export function checkEbpfSettings(
  given: EbpfSettings,
  where: (field: keyof EbpfSettings) => string = (f) =>
    f === "cgroupPath" ? "--ebpf-cgroup-path" : "--ebpf-pin-path",
): ResolvedEbpfSettings {
  const { cgroupPath } = given;
  if (cgroupPath !== undefined && !cgroupPath.startsWith("/")) {
    throw new ConfigError(`${where("cgroupPath")}: "${cgroupPath}" is not an absolute path`);
  }
  const pinPath = (given.pinPath ?? DEFAULT_PIN_PATH).replace(/(.)\/+$/, "$1");
  try {
    checkPinPath(pinPath);
  } catch {
    throw new ConfigError(
      `${where("pinPath")}: "${pinPath}" must be an absolute path without blanks or quotes`,
    );
  }
  if (pinPath === "/") throw new ConfigError(`${where("pinPath")}: "/" cannot be the pin directory`);
  return { cgroupPath: cgroupPath?.replace(/(.)\/+$/, "$1"), pinPath };
}

/**
 * Checks a proxy mode: implemented modes pass; kube-proxy's other modes are a
 * {@link ConfigError} ("not implemented yet", exit 1); anything else a {@link CliUsageError}.
 */
export function checkProxyMode(mode: string, where = "--proxy-mode"): ProxyMode {
  if ((IMPLEMENTED_PROXY_MODES as readonly string[]).includes(mode)) return mode as ProxyMode;
  if ((PLANNED_PROXY_MODES as readonly string[]).includes(mode)) {
    throw new ConfigError(
      `${where}: proxy mode "${mode}" is not implemented yet (implemented: ${IMPLEMENTED_PROXY_MODES.join(", ")})`,
    );
  }
  throw new CliUsageError(`${where}: unknown proxy mode "${mode}" (known: ${KNOWN_PROXY_MODES.join(", ")})`);
}

/**
 * Parses `host:port`, `[ipv6]:port` or a bare IP (port `defaultPort`).
 * @throws ConfigError naming `what`
 */
export function parseHostPort(text: string, what: string, defaultPort: number): HostPort {
  const bare = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  if (isValidIP(bare)) return { host: bare, port: defaultPort };
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]]+):(\d+)$/.exec(text);
  const host = m?.[1];
  const port = Number(m?.[2]);
  if (host === undefined || !isValidIP(host)) {
    throw new ConfigError(
      `${what}: "${text}" is not an IP:port address (examples: 0.0.0.0:10256, [::]:10256)`,
    );
  }
  if (!Number.isInteger(port) || port > 65535)
    throw new ConfigError(`${what}: port in "${text}" is not 0-65535`);
  return { host, port };
}

/**
 * Parses `--cluster-cidr` (comma-separated, at most one CIDR per family).
 * @throws ConfigError naming `what`
 */
export function parseClusterCIDRs(text: string | undefined, what = "--cluster-cidr"): string[] {
  if (text === undefined || text.trim() === "") return [];
  const out: string[] = [];
  const families = new Set<string>();
  for (const part of text.split(",").map((p) => p.trim())) {
    const cidr = parseCidr(part);
    if (cidr === undefined) throw new ConfigError(`${what}: "${part}" is not a CIDR`);
    if (families.has(cidr.family)) {
      throw new ConfigError(`${what}: "${text}" has two ${cidr.family} CIDRs (give at most one per family)`);
    }
    families.add(cidr.family);
    out.push(`${cidr.address}/${cidr.prefix}`);
  }
  return out;
}

/**
 * Checks `--nodeport-addresses` entries: CIDRs or the keywords primary, localhost, all.
 * @throws ConfigError naming `what`
 */
export function checkNodePortAddresses(entries: readonly string[], what = "--nodeport-addresses"): string[] {
  const out: string[] = [];
  for (const raw of entries) {
    const e = raw.trim();
    if (e === "") continue;
    if ((NODE_PORT_ADDRESS_KEYWORDS as readonly string[]).includes(e)) {
      out.push(e);
      continue;
    }
    const cidr = parseCidr(e);
    if (cidr === undefined) {
      throw new ConfigError(
        `${what}: "${e}" is not a CIDR or one of ${NODE_PORT_ADDRESS_KEYWORDS.join(", ")}`,
      );
    }
    out.push(`${cidr.address}/${cidr.prefix}`);
  }
  return out;
}

/**
 * Combines explicit flags, the config file and kube-proxy's defaults (in that order of
 * precedence) and validates the result.
 *
 * Invalid values of explicit flags are {@link CliUsageError}s (exit 2), invalid values
 * from the file {@link ConfigError}s (exit 1); a known but unimplemented mode is a
 * ConfigError either way.
 *
 * @param flags settings from flags given explicitly
 * @param file settings from `--config`, if any
 * @param configPath the config file name, for messages
 * @throws ConfigError / CliUsageError naming the flag or field
 */
export function resolveProxySettings(
  flags: ProxySettings,
  file: ProxySettings | undefined,
  configPath?: string,
): ResolvedProxySettings {
  const f = file ?? {};
  const where = (flag: string, field: string, fromFlag: boolean) =>
    fromFlag || configPath === undefined ? `--${flag}` : `--config ${configPath}: ${field}`;
  const pick = <K extends keyof ProxySettings>(k: K): { value: ProxySettings[K]; fromFlag: boolean } =>
    flags[k] !== undefined ? { value: flags[k], fromFlag: true } : { value: f[k], fromFlag: false };
  /** Runs a check; its ConfigError becomes a usage error when the value came from a flag. */
  const check = <T>(fromFlag: boolean, fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      if (fromFlag && err instanceof ConfigError && !(err instanceof CliUsageError)) {
        throw new CliUsageError(err.message, { cause: err });
      }
      throw err;
    }
  };
  const fail = (fromFlag: boolean, message: string): never =>
    check(fromFlag, () => {
      throw new ConfigError(message);
    });

  const mode = pick("mode");
  const resolvedMode = checkProxyMode(mode.value ?? "iptables", where("proxy-mode", "mode", mode.fromFlag));
  // The mode-specific fields of the file: kube-proxy's v1alpha1 conversion takes masqueradeAll,
  // the masquerade bit and the sync periods from the section of the mode in use.
  const nft = resolvedMode === "nftables";
  const section = nft ? "nftables" : "iptables";
  const nf = f.nftables ?? {};
  /** Like `pick`, for the fields the mode's section of the file gives. */
  const pickModal = <K extends keyof NftablesFileSettings>(
    k: K,
    flagApplies = true,
  ): { value: NftablesFileSettings[K]; fromFlag: boolean } => {
    if (flagApplies && flags[k] !== undefined) return { value: flags[k], fromFlag: true };
    return { value: nft ? nf[k] : f[k], fromFlag: false };
  };
  const ebpfMode = resolvedMode === "ebpf";
  const unusedFlags: string[] = [];
  if ((nft || ebpfMode) && flags.masqueradeBit !== undefined) unusedFlags.push("--iptables-masquerade-bit");
  if (nft && flags.localhostNodePorts !== undefined) unusedFlags.push("--iptables-localhost-nodeports");
  // Socket load balancing rewrites addresses in connect(): no packet is ever masqueraded.
  if (ebpfMode && flags.masqueradeAll !== undefined) unusedFlags.push("--masquerade-all");

  const ebpfGiven: EbpfSettings = {
    ...(f.ebpf?.cgroupPath !== undefined ? { cgroupPath: f.ebpf.cgroupPath } : {}),
    ...(f.ebpf?.pinPath !== undefined ? { pinPath: f.ebpf.pinPath } : {}),
    ...(flags.ebpf?.cgroupPath !== undefined ? { cgroupPath: flags.ebpf.cgroupPath } : {}),
    ...(flags.ebpf?.pinPath !== undefined ? { pinPath: flags.ebpf.pinPath } : {}),
  };
  const ebpf =
    ebpfMode || Object.keys(ebpfGiven).length > 0
      ? check(flags.ebpf?.cgroupPath !== undefined || flags.ebpf?.pinPath !== undefined, () =>
          checkEbpfSettings(ebpfGiven, (field) => {
            const flag = field === "cgroupPath" ? "ebpf-cgroup-path" : "ebpf-pin-path";
            return where(flag, `ebpf.${field}`, flags.ebpf?.[field] !== undefined);
          }),
        )
      : undefined;

  const bind = pick("bindAddress");
  let primaryIP: string | undefined;
  if (bind.value !== undefined) {
    const w = where("bind-address", "bindAddress", bind.fromFlag);
    if (!isValidIP(bind.value)) fail(bind.fromFlag, `${w}: "${bind.value}" is not an IP address`);
    primaryIP = bind.value === "0.0.0.0" || bind.value === "::" ? undefined : bind.value;
  }
  const ipv6Primary = bind.value !== undefined && ipFamilyOf(bind.value) === "IPv6";

  const cidr = pick("clusterCIDR");
  const clusterCIDRs = check(cidr.fromFlag, () =>
    parseClusterCIDRs(cidr.value, where("cluster-cidr", "clusterCIDR", cidr.fromFlag)),
  );

  const npa = pick("nodePortAddresses");
  const nodePortAddresses = check(npa.fromFlag, () =>
    checkNodePortAddresses(npa.value ?? [], where("nodeport-addresses", "nodePortAddresses", npa.fromFlag)),
  );

  // kube-proxy 1.31+ applies --iptables-(min-)sync-period to every mode but ipvs.
  const minSync = pickModal("minSyncPeriodMs");
  const sync = pickModal("syncPeriodMs");
  const minSyncPeriodMs = minSync.value ?? DEFAULT_MIN_SYNC_PERIOD_MS;
  const syncPeriodMs = sync.value ?? DEFAULT_SYNC_PERIOD_MS;
  const syncWhere = where("iptables-sync-period", `${section}.syncPeriod`, sync.fromFlag);
  if (!(syncPeriodMs > 0)) fail(sync.fromFlag, `${syncWhere}: must be greater than 0`);
  if (syncPeriodMs < minSyncPeriodMs) {
    fail(
      sync.fromFlag || minSync.fromFlag,
      `${syncWhere}: must be at least the minimum sync period (${minSyncPeriodMs} ms)`,
    );
  }

  // --iptables-masquerade-bit is the iptables mode's; nftables mode has only the file's field.
  const bit = pickModal("masqueradeBit", !nft);
  const masqueradeBit = bit.value ?? DEFAULT_MASQUERADE_BIT;
  if (!Number.isInteger(masqueradeBit) || masqueradeBit < 0 || masqueradeBit > 31) {
    fail(
      bit.fromFlag,
      `${where("iptables-masquerade-bit", `${section}.masqueradeBit`, bit.fromFlag)}: ${masqueradeBit} is not in 0-31`,
    );
  }

  const bindAddr = (
    k: "healthzBindAddress" | "metricsBindAddress",
    flag: string,
    defaultV4: string,
    defaultV6: string,
    port: number,
  ): HostPort | undefined => {
    const p = pick(k);
    if (p.value === null) return undefined;
    const text = p.value ?? (ipv6Primary ? defaultV6 : defaultV4);
    return check(p.fromFlag, () => parseHostPort(text, where(flag, k, p.fromFlag), port));
  };

  const host = pick("hostnameOverride").value?.trim().toLowerCase();
  return {
    mode: resolvedMode,
    hostnameOverride: host === "" ? undefined : host,
    primaryIP,
    clusterCIDRs,
    masqueradeAll: pickModal("masqueradeAll").value ?? false,
    nodePortAddresses,
    minSyncPeriodMs,
    syncPeriodMs,
    masqueradeBit,
    // kube-proxy's nftables mode never serves node ports on 127.0.0.1; the ebpf mode does, as iptables.
    localhostNodePorts: nft ? false : (pick("localhostNodePorts").value ?? true),
    healthzBindAddress: bindAddr(
      "healthzBindAddress",
      "healthz-bind-address",
      `0.0.0.0:${DEFAULT_HEALTHZ_PORT}`,
      `[::]:${DEFAULT_HEALTHZ_PORT}`,
      DEFAULT_HEALTHZ_PORT,
    ),
    metricsBindAddress: bindAddr(
      "metricsBindAddress",
      "metrics-bind-address",
      `127.0.0.1:${DEFAULT_METRICS_PORT}`,
      `[::1]:${DEFAULT_METRICS_PORT}`,
      DEFAULT_METRICS_PORT,
    ),
    kubeconfig: pick("kubeconfig").value,
    ...(ebpf !== undefined ? { ebpf } : {}),
    ...(unusedFlags.length > 0 ? { unusedFlags } : {}),
  };
}

/** Checks a `--log-level` value. @throws CliUsageError */
export function checkLogLevel(level: string): LogLevel {
  if ((LOG_LEVELS as readonly string[]).includes(level)) return level as LogLevel;
  throw new CliUsageError(`--log-level: "${level}" is not one of ${LOG_LEVELS.join(", ")}`);
}
