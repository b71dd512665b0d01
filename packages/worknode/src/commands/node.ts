/**
 * `worknode node`: the assembled node agent (kubelet + service proxy) in
 * standalone mode — static pods from a manifest directory, Services from a
 * services file, no API server.
 *
 * The kubelet half is the real one (`startKubelet`, as `worknode kubelet` runs
 * it): static pods run over CRI, with probes, restarts and the kubelet's
 * endpoints (`/healthz` on 127.0.0.1:10248, the kubelet API on 127.0.0.1:10250).
 * The proxy half (see node-proxy.ts) programs the services file's Services with
 * the backend of `--proxy-mode` (iptables, the default, nftables or ebpf); a Service with a selector and no EndpointSlice gets
 * slices generated from the kubelet's pods (labels, pod IPs, readiness), kept up
 * to date as the pods change. Proxy flags are kube-proxy's; as kube-proxy, the
 * agent leaves its rules in place when it stops, and `--cleanup` removes them.
 *
 * @module
 */
import { access, stat } from "node:fs/promises";
import { hostname } from "node:os";
import path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { ConfigError, createLogger, describeError, type Logger } from "@worknode/core";
import { logRotationPolicy } from "@worknode/kubelet";
import { CliUsageError, type FlagSpec, parseFlags, renderHelp } from "../flags.js";
import type { CliIO, Command } from "../main.js";
import { checkRuntimeEndpoint } from "../runtime-endpoint.js";
import { type RunningKubelet, startKubelet } from "./kubelet.js";
import type { KubeletCommandConfig } from "./kubelet-config.js";
import { KubeletPodSource } from "./node-pods.js";
import { type NodeProxySettings, startNodeProxy } from "./node-proxy.js";
import { createProxyBackend, type ProxyBackend, type ProxyBackendOptions } from "./proxy-backend.js";
import {
  checkEbpfSettings,
  checkNodePortAddresses,
  checkProxyMode,
  DEFAULT_MASQUERADE_BIT,
  type ProxyMode,
  parseClusterCIDRs,
  parseHostPort,
} from "./proxy-config.js";
import { hostNodeIPs } from "./proxy-node-ips.js";

const FLAGS = {
  "pod-manifest-path": {
    kind: "string",
    help: "Directory of static pod manifests (kubelet's staticPodPath)",
  },
  "services-file": {
    kind: "string",
    help: "Multi-document YAML of Service and EndpointSlice objects to serve",
  },
  "container-runtime-endpoint": {
    kind: "string",
    help: "The CRI runtime's endpoint",
    default: "unix:///run/containerd/containerd.sock",
  },
  "hostname-override": { kind: "string", help: "Node name to use instead of the host name" },
  "root-dir": {
    kind: "string",
    help: "Directory for the agent's state",
    default: "/var/lib/worknode/kubelet",
  },
  "file-check-frequency": {
    kind: "duration",
    help: "How often the manifest directory and services file are rescanned besides inotify",
    default: "20s",
  },
  "max-pods": { kind: "int", help: "Maximum number of pods on this node", default: "110" },
  "healthz-bind-address": {
    kind: "string",
    help: "Address of the kubelet's healthz server",
    default: "127.0.0.1",
  },
  "healthz-port": {
    kind: "int",
    help: "Port of the kubelet's healthz server (0 disables)",
    default: "10248",
  },
  port: {
    kind: "int",
    help: "Port of the kubelet API (HTTPS, loopback only for now; 0 disables)",
    default: "10250",
  },
  "proxy-mode": {
    kind: "string",
    help: "Which proxy mode programs the Services (kube-proxy's --proxy-mode): iptables, nftables or ebpf (cgroup socket load balancing)",
    default: "iptables",
  },
  "ebpf-cgroup-path": {
    kind: "string",
    help: "ebpf mode: cgroup v2 directory whose sockets (and its descendants') are balanced (default: the root of the cgroup v2 hierarchy)",
  },
  "ebpf-pin-path": {
    kind: "string",
    help: "ebpf mode: bpffs directory of the pinned programs and maps; the other modes remove what is pinned there at start",
    default: "/sys/fs/bpf/worknode",
  },
  "cluster-cidr": {
    kind: "string",
    help: "Pod CIDRs (comma-separated, one per family): traffic to cluster IPs from outside them is masqueraded",
  },
  "masquerade-all": { kind: "boolean", help: "SNAT all traffic sent through Service cluster IPs" },
  "nodeport-addresses": {
    kind: "string",
    help: "Comma-separated CIDRs (or primary, localhost, all) node ports answer on; default every local address",
  },
  "iptables-masquerade-bit": {
    kind: "int",
    help: "Bit of the fwmark space marking packets to SNAT (0-31); also nftables mode's (this command has no config file)",
    default: String(DEFAULT_MASQUERADE_BIT),
  },
  "iptables-localhost-nodeports": {
    kind: "string",
    help: "true or false: node ports also answer on 127.0.0.1 (iptables mode: sets route_localnet, installs KUBE-FIREWALL); iptables and ebpf modes",
    default: "true",
  },
  "iptables-min-sync-period": {
    kind: "duration",
    help: "Minimum interval between proxy rule syncs (both modes, as in kube-proxy 1.31+)",
    default: "1s",
  },
  "iptables-sync-period": {
    kind: "duration",
    help: "Maximum interval between proxy rule syncs (a full sync; both modes, as in kube-proxy 1.31+)",
    default: "30s",
  },
  "proxy-healthz-bind-address": {
    kind: "string",
    help: "host:port of the proxy's /healthz and /livez (kube-proxy's --healthz-bind-address, renamed: the kubelet's flag has that name)",
    default: "0.0.0.0:10256",
  },
  "metrics-bind-address": {
    kind: "string",
    help: "host:port of the proxy's /metrics (kube-proxy's flag)",
    default: "127.0.0.1:10249",
  },
  kubeconfig: {
    kind: "string",
    help: "Kubeconfig of an API server to read this node's Node object from (its zone label, for topology-aware routing); pods and Services stay standalone",
  },
  cleanup: {
    kind: "boolean",
    help: "Remove every proxy rule this agent (or kube-proxy's iptables or nftables mode) wrote and the ebpf mode's programs and pins, then exit; rules are otherwise left in place on exit, as kube-proxy leaves them",
  },
  "log-level": { kind: "string", help: "trace, debug, info, warn or error", default: "info" },
} as const satisfies Record<string, FlagSpec>;

const USAGE = "worknode node [flags]";
const SUMMARY =
  "Run the node agent (kubelet + service proxy) in standalone mode on static pods and a services file";
const LOG_LEVELS = ["trace", "debug", "info", "warn", "error"] as const;

/** What the `node` command needs from the machine besides the CRI runtime; replaceable in tests. */
export interface NodeCommandDeps {
  /** One proxy backend for every mode (tests); default {@link NodeCommandDeps.proxyBackendFor}. */
  readonly proxyBackend?: ProxyBackend;
  /** The backend of the selected `--proxy-mode` (with the `--ebpf-*` paths); default that mode on this host. */
  readonly proxyBackendFor?: (mode: ProxyMode, options?: ProxyBackendOptions) => ProxyBackend;
}

/** Runs a check of flag values; its ConfigError becomes a usage error (exit 2). */
function checkUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ConfigError && !(err instanceof CliUsageError)) {
      throw new CliUsageError(err.message, { cause: err });
    }
    throw err;
  }
}

function parseBooleanValue(flag: string, value: string): boolean {
  if (value === "true") return true;
  if (value === "false") return false;
  throw new CliUsageError(`--${flag}: "${value}" is not true or false`);
}

async function requireDirectory(flag: string, path: string): Promise<void> {
  const s = await stat(path).catch(() => undefined);
  if (!s) throw new ConfigError(`--${flag}: ${path} does not exist`);
  if (!s.isDirectory()) throw new ConfigError(`--${flag}: ${path} is not a directory`);
}

async function requireFile(flag: string, path: string): Promise<void> {
  const s = await stat(path).catch(() => undefined);
  if (!s) throw new ConfigError(`--${flag}: ${path} does not exist`);
  if (!s.isFile()) throw new ConfigError(`--${flag}: ${path} is not a file`);
  await access(path).catch(() => {
    throw new ConfigError(`--${flag}: ${path} is not readable`);
  });
}

/** The `node` command with the given dependencies. */
export function createNodeCommand(deps: NodeCommandDeps = {}): Command {
  return {
    name: "node",
    summary: SUMMARY,
    run: (argv, io) => runNodeCommand(argv, io, deps),
  };
}

/** The `node` command. */
export const nodeCommand: Command = createNodeCommand();

function resolveNodeProxySettings(flags: ReturnType<typeof parseNodeFlags>["flags"]): NodeProxySettings {
  const bit = flags["iptables-masquerade-bit"];
  if (bit > 31) throw new CliUsageError(`--iptables-masquerade-bit: ${bit} is not 0-31`);
  const mode = checkProxyMode(flags["proxy-mode"]);
  const localhostNodePorts = parseBooleanValue(
    "iptables-localhost-nodeports",
    flags["iptables-localhost-nodeports"],
  );
  return {
    mode,
    clusterCIDRs: parseClusterCIDRs(flags["cluster-cidr"]),
    masqueradeAll: flags["masquerade-all"] ?? false,
    nodePortAddresses: checkNodePortAddresses((flags["nodeport-addresses"] ?? "").split(",")),
    masqueradeBit: bit,
    // kube-proxy's nftables mode never serves node ports on 127.0.0.1 (the ebpf mode does).
    localhostNodePorts: mode === "nftables" ? false : localhostNodePorts,
    minSyncPeriodMs: flags["iptables-min-sync-period"],
    syncPeriodMs: flags["iptables-sync-period"],
    healthzBindAddress: parseHostPort(
      flags["proxy-healthz-bind-address"],
      "--proxy-healthz-bind-address",
      10256,
    ),
    metricsBindAddress: parseHostPort(flags["metrics-bind-address"], "--metrics-bind-address", 10249),
  };
}

function parseNodeFlags(argv: readonly string[]) {
  return parseFlags("worknode node", FLAGS, argv);
}

async function runNodeCommand(argv: readonly string[], io: CliIO, deps: NodeCommandDeps): Promise<number> {
  const { flags, positionals, help } = parseNodeFlags(argv);
  if (help) {
    io.stdout(renderHelp(USAGE, SUMMARY, FLAGS));
    return 0;
  }
  if (positionals.length > 0) throw new ConfigError(`unexpected argument "${positionals[0]}"`);
  const level = flags["log-level"];
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new ConfigError(`--log-level: "${level}" is not one of ${LOG_LEVELS.join(", ")}`);
  }
  const proxy = resolveNodeProxySettings(flags);
  const ebpf = checkUsage(() =>
    checkEbpfSettings({
      ...(flags["ebpf-cgroup-path"] !== undefined ? { cgroupPath: flags["ebpf-cgroup-path"] } : {}),
      pinPath: flags["ebpf-pin-path"],
    }),
  );
  const backend =
    deps.proxyBackend ??
    (deps.proxyBackendFor ?? ((mode, options) => createProxyBackend(mode, undefined, options)))(proxy.mode, {
      ebpf,
    });
  if (flags.cleanup) {
    const logger = createLogger({ name: "worknode-node", level: level as (typeof LOG_LEVELS)[number] });
    const families = await backend.cleanup(logger);
    io.stdout(
      `removed the proxy rules (${families.join(", ") || "no usable iptables or nftables family, no ebpf pins"})\n`,
    );
    return 0;
  }
  const manifestPath = flags["pod-manifest-path"];
  const servicesPath = flags["services-file"];
  if (!manifestPath && !servicesPath) {
    throw new ConfigError("nothing to run: give --pod-manifest-path and/or --services-file");
  }
  if (manifestPath) await requireDirectory("pod-manifest-path", manifestPath);
  if (servicesPath) await requireFile("services-file", servicesPath);
  const endpoint = flags["container-runtime-endpoint"];
  await checkRuntimeEndpoint(endpoint);

  const nodeName = (flags["hostname-override"] ?? hostname()).toLowerCase();
  const logger = createLogger({ name: "worknode-node", level: level as (typeof LOG_LEVELS)[number] });
  const rootDir = flags["root-dir"];
  const kubelet: KubeletCommandConfig = {
    nodeName,
    staticPodPath: manifestPath,
    containerRuntimeEndpoint: endpoint,
    rootDir,
    maxPods: flags["max-pods"],
    healthz:
      flags["healthz-port"] > 0
        ? { host: flags["healthz-bind-address"], port: flags["healthz-port"] }
        : undefined,
    server:
      flags.port > 0
        ? {
            host: "127.0.0.1",
            port: flags.port,
            tlsCertFile: undefined,
            tlsPrivateKeyFile: undefined,
            certDir: path.join(rootDir, "pki"),
          }
        : undefined,
    fileCheckFrequencyMs: flags["file-check-frequency"],
    syncFrequencyMs: 60_000,
    logLevel: level as (typeof LOG_LEVELS)[number],
    configFile: undefined,
    ignoredFields: [],
    cluster: undefined,
    clusterDNS: [],
    clusterDomain: "",
    nodeIPs: [],
    containerLogs: { ...logRotationPolicy(), monitorIntervalMs: 10_000 },
  };
  return runStandaloneNode({
    kubelet,
    servicesPath,
    rescanIntervalMs: flags["file-check-frequency"],
    proxy,
    backend,
    kubeConfig: flags.kubeconfig !== undefined ? loadKubeConfig(flags.kubeconfig) : undefined,
    logger,
    signal: io.signal,
  });
}

function loadKubeConfig(file: string): KubeConfig {
  const kubeConfig = new KubeConfig();
  try {
    kubeConfig.loadFromFile(file);
  } catch (err) {
    throw new ConfigError(`--kubeconfig: cannot load ${file}: ${describeError(err)}`);
  }
  if (!kubeConfig.getCurrentCluster()) throw new ConfigError(`--kubeconfig: ${file} has no current cluster`);
  return kubeConfig;
}

interface StandaloneNodeOptions {
  kubelet: KubeletCommandConfig;
  kubeConfig: KubeConfig | undefined;
  servicesPath: string | undefined;
  rescanIntervalMs: number;
  proxy: NodeProxySettings;
  backend: ProxyBackend;
  logger: Logger;
  signal: AbortSignal;
}

async function runStandaloneNode(o: StandaloneNodeOptions): Promise<number> {
  const { logger } = o;
  const stoppers: Array<() => Promise<void>> = [];
  try {
    let running: RunningKubelet | undefined;
    if (o.kubelet.staticPodPath) {
      const started = await startKubelet(o.kubelet, { logger: logger.child({ component: "kubelet" }) });
      running = started;
      stoppers.push(() => started.stop());
    }
    if (o.servicesPath) {
      const kubelet = running?.kubelet;
      const pods = new KubeletPodSource({
        listPods: () => kubelet?.pods() ?? [],
        logger: logger.child({ source: "kubelet-pods" }),
      });
      await pods.start();
      stoppers.push(() => pods.stop());
      const proxy = await startNodeProxy({
        settings: o.proxy,
        nodeName: o.kubelet.nodeName,
        nodeIPs: hostNodeIPs(),
        servicesPath: o.servicesPath,
        rescanIntervalMs: o.rescanIntervalMs,
        pods,
        backend: o.backend,
        ...(o.kubeConfig !== undefined ? { kubeConfig: o.kubeConfig } : {}),
        logger: logger.child({ component: "proxy" }),
      });
      stoppers.push(() => proxy.stop());
    }

    logger.info(
      {
        node: o.kubelet.nodeName,
        runtime: o.kubelet.containerRuntimeEndpoint,
        manifests: o.kubelet.staticPodPath,
        services: o.servicesPath,
      },
      "worknode node is running in standalone mode; stop with Ctrl-C",
    );
    // The kubelet's timers do not hold the process open; this wait does, until SIGINT / SIGTERM.
    await new Promise<void>((resolve) => {
      if (o.signal.aborted) return resolve();
      const keepAlive = setInterval(() => {}, 1 << 30);
      o.signal.addEventListener(
        "abort",
        () => {
          clearInterval(keepAlive);
          resolve();
        },
        { once: true },
      );
    });
    logger.info(
      "stopping (pods keep running, as with the kubelet; proxy rules stay in place, as with kube-proxy — `worknode node --cleanup` removes them)",
    );
    return 0;
  } finally {
    for (const stop of stoppers.reverse()) await stop().catch((err) => logger.warn({ err }, "stop failed"));
  }
}
