/**
 * `worknode proxy`: a drop-in for kube-proxy (iptables or nftables mode, or worknode's ebpf mode) with kube-proxy's flag
 * names and semantics, reading Services and EndpointSlices from an API server
 * (`--kubeconfig`) or from a local file (`--services-file`); `--cleanup` removes
 * its rules; `worknode proxy plan` shows the rules without applying them.
 *
 * @module
 */
import { hostname } from "node:os";
import { KubeConfig } from "@kubernetes/client-node";
import { ConfigError, createCommandRunner, createLogger, describeError, KubeApiClient } from "@worknode/core";
import { CliUsageError, parseFlags, renderHelp } from "../flags.js";
import type { CliIO, Command } from "../main.js";
import { createProxyBackend, type ProxyBackend, type ProxyBackendOptions } from "./proxy-backend.js";
import {
  checkLogLevel,
  type KubeProxyConfigFile,
  PROXY_FLAGS,
  type ProxyMode,
  type ProxySettings,
  parseKubeProxyConfiguration,
  preprocessArgs,
  resolveProxySettings,
  withoutDefaults,
} from "./proxy-config.js";
import { hostNodeIPs } from "./proxy-node-ips.js";
import { type PlanDeps, readFlagFile, runPlan } from "./proxy-plan.js";
import { DEFAULT_API_SYNC_TIMEOUT_MS, type ProxyReadyInfo, type ProxySource, runProxy } from "./proxy-run.js";

const COMMAND = "worknode proxy";
const USAGE =
  "worknode proxy (--kubeconfig FILE | --services-file FILE) [flags]\n       worknode proxy plan --services-file FILE [--diff] [flags]";
const SUMMARY =
  "Run the service proxy (kube-proxy's iptables or nftables mode, or eBPF socket load balancing) from an API server or a services file";

/** What `worknode proxy` takes from the machine; every field has a real default. */
export interface ProxyCommandDeps {
  /** One backend for every mode (tests); when unset, {@link ProxyCommandDeps.backendFor} picks it. */
  readonly backend?: ProxyBackend;
  /**
   * The backend of the selected `--proxy-mode` (default: that mode on this host), with the
   * ebpf mode's paths (`--ebpf-cgroup-path`, `--ebpf-pin-path`) when given or in ebpf mode.
   */
  readonly backendFor: (mode: ProxyMode, options?: ProxyBackendOptions) => ProxyBackend;
  /** Runner of `plan --diff` (default: spawn on this host). */
  readonly planRunner: PlanDeps["runner"];
  /** The node's addresses (default: the host's interfaces). */
  readonly nodeIPs: (primaryIP: string | undefined) => string[];
  /** The host name (default: `os.hostname()`). */
  readonly hostname: () => string;
  /** API mode: how long to wait for the first lists (default 30 s). */
  readonly apiSyncTimeoutMs: number;
  /** Called once the proxy runs (tests). */
  readonly onReady?: (info: ProxyReadyInfo) => void;
}

function loadKubeConfig(path: string, where: string): { kubeConfig: KubeConfig; server: string } {
  const kubeConfig = new KubeConfig();
  try {
    kubeConfig.loadFromFile(path);
  } catch (err) {
    throw new ConfigError(`${where}: cannot load ${path}: ${describeError(err)}`, { cause: err });
  }
  try {
    return { kubeConfig, server: new KubeApiClient(kubeConfig).server };
  } catch (err) {
    throw new ConfigError(`${where}: ${path}: ${describeError(err)}`, { cause: err });
  }
}

/** Creates the `proxy` command; the defaults talk to this host, tests replace them. */
export function createProxyCommand(overrides: Partial<ProxyCommandDeps> = {}): Command {
  const deps: ProxyCommandDeps = {
    ...(overrides.backend ? { backend: overrides.backend } : {}),
    backendFor: overrides.backendFor ?? ((mode, options) => createProxyBackend(mode, undefined, options)),
    planRunner: overrides.planRunner ?? createCommandRunner(),
    nodeIPs: overrides.nodeIPs ?? hostNodeIPs,
    hostname: overrides.hostname ?? hostname,
    apiSyncTimeoutMs: overrides.apiSyncTimeoutMs ?? DEFAULT_API_SYNC_TIMEOUT_MS,
    ...(overrides.onReady ? { onReady: overrides.onReady } : {}),
  };
  return {
    name: "proxy",
    summary: SUMMARY,
    async run(argv: readonly string[], io: CliIO): Promise<number> {
      if (argv[0] === "plan") {
        return runPlan(argv.slice(1), io, {
          nodeIPs: deps.nodeIPs,
          hostname: deps.hostname,
          runner: deps.planRunner,
        });
      }
      const pre = preprocessArgs(
        argv,
        ["healthz-bind-address", "metrics-bind-address"],
        ["masquerade-all", "cleanup", "iptables-localhost-nodeports"],
      );
      const { flags, positionals, help } = parseFlags(COMMAND, withoutDefaults(PROXY_FLAGS), pre.argv);
      if (help) {
        io.stdout(
          `${renderHelp(USAGE, SUMMARY, PROXY_FLAGS)}\nSubcommands:\n  plan    Print (or --diff) the rules for a services file without applying them; see "worknode proxy plan --help"\n`,
        );
        return 0;
      }
      if (positionals.length > 0) throw new CliUsageError(`unexpected argument "${positionals[0]}"`);
      const logLevel = checkLogLevel(flags["log-level"] ?? "info");

      const configPath = flags.config;
      let file: KubeProxyConfigFile | undefined;
      if (configPath !== undefined) {
        file = parseKubeProxyConfiguration(await readFlagFile("config", configPath), configPath);
      }
      const bool = (name: "masquerade-all" | "cleanup" | "iptables-localhost-nodeports") =>
        pre.booleans.get(name) ?? flags[name];
      const masqueradeAll = bool("masquerade-all");
      const localhostNodePorts = bool("iptables-localhost-nodeports");
      const explicit: ProxySettings = {
        ...(flags["proxy-mode"] !== undefined ? { mode: flags["proxy-mode"] } : {}),
        ...(flags.kubeconfig !== undefined ? { kubeconfig: flags.kubeconfig } : {}),
        ...(flags["hostname-override"] !== undefined ? { hostnameOverride: flags["hostname-override"] } : {}),
        ...(flags["bind-address"] !== undefined ? { bindAddress: flags["bind-address"] } : {}),
        ...(flags["cluster-cidr"] !== undefined ? { clusterCIDR: flags["cluster-cidr"] } : {}),
        ...(masqueradeAll !== undefined ? { masqueradeAll } : {}),
        ...(flags["nodeport-addresses"] !== undefined
          ? { nodePortAddresses: flags["nodeport-addresses"].split(",") }
          : {}),
        ...(flags["iptables-min-sync-period"] !== undefined
          ? { minSyncPeriodMs: flags["iptables-min-sync-period"] }
          : {}),
        ...(flags["iptables-sync-period"] !== undefined
          ? { syncPeriodMs: flags["iptables-sync-period"] }
          : {}),
        ...(flags["iptables-masquerade-bit"] !== undefined
          ? { masqueradeBit: flags["iptables-masquerade-bit"] }
          : {}),
        ...(localhostNodePorts !== undefined ? { localhostNodePorts } : {}),
        ...(flags["ebpf-cgroup-path"] !== undefined || flags["ebpf-pin-path"] !== undefined
          ? {
              ebpf: {
                ...(flags["ebpf-cgroup-path"] !== undefined ? { cgroupPath: flags["ebpf-cgroup-path"] } : {}),
                ...(flags["ebpf-pin-path"] !== undefined ? { pinPath: flags["ebpf-pin-path"] } : {}),
              },
            }
          : {}),
        ...(pre.emptied.has("healthz-bind-address")
          ? { healthzBindAddress: null }
          : flags["healthz-bind-address"] !== undefined
            ? { healthzBindAddress: flags["healthz-bind-address"] }
            : {}),
        ...(pre.emptied.has("metrics-bind-address")
          ? { metricsBindAddress: null }
          : flags["metrics-bind-address"] !== undefined
            ? { metricsBindAddress: flags["metrics-bind-address"] }
            : {}),
      };
      const settings = resolveProxySettings(explicit, file?.settings, configPath);
      const backend =
        deps.backend ??
        deps.backendFor(settings.mode, settings.ebpf !== undefined ? { ebpf: settings.ebpf } : undefined);

      const logger = createLogger({
        name: "worknode-proxy",
        level: logLevel,
        destination: { write: (line: string) => io.stderr(line) },
      });
      if (file && file.ignoredFields.length > 0) {
        logger.warn(
          { fields: file.ignoredFields },
          "the config file sets kube-proxy fields worknode does not implement; they are ignored",
        );
      }
      if (settings.unusedFlags !== undefined) {
        logger.warn(
          { mode: settings.mode, flags: settings.unusedFlags },
          "these flags do not apply to this proxy mode (as in kube-proxy); they are ignored",
        );
      }

      if (bool("cleanup") === true) {
        const cleaned = await backend.cleanup(logger);
        logger.info({ families: cleaned }, "cleanup done");
        return 0;
      }

      const servicesPath = flags["services-file"];
      const kubeconfigPath = settings.kubeconfig;
      if (servicesPath !== undefined && kubeconfigPath !== undefined) {
        const fromFile =
          flags.kubeconfig === undefined ? ` (--config ${configPath} sets clientConnection.kubeconfig)` : "";
        throw new CliUsageError(
          `give either --kubeconfig (API mode) or --services-file (standalone), not both${fromFile}`,
        );
      }
      if (servicesPath === undefined && kubeconfigPath === undefined) {
        throw new CliUsageError(
          `nothing to proxy: give --kubeconfig (API mode) or --services-file (standalone)`,
        );
      }
      let source: ProxySource;
      if (servicesPath !== undefined) {
        await readFlagFile("services-file", servicesPath);
        source = { kind: "services-file", path: servicesPath };
      } else {
        const where =
          flags.kubeconfig !== undefined
            ? "--kubeconfig"
            : `--config ${configPath}: clientConnection.kubeconfig`;
        await readFlagFile(flags.kubeconfig !== undefined ? "kubeconfig" : "config", kubeconfigPath!).catch(
          (err: unknown) => {
            throw new ConfigError(`${where}: ${describeError(err).replace(/^--[a-z]+: /, "")}`);
          },
        );
        source = { kind: "api", ...loadKubeConfig(kubeconfigPath!, where) };
      }

      const nodeName = settings.hostnameOverride ?? deps.hostname().toLowerCase();
      return runProxy({
        settings,
        source,
        nodeName,
        nodeIPs: deps.nodeIPs(settings.primaryIP),
        backend,
        logger,
        logLevel,
        signal: io.signal,
        apiSyncTimeoutMs: deps.apiSyncTimeoutMs,
        ...(deps.onReady ? { onReady: deps.onReady } : {}),
      });
    },
  };
}

/** The `proxy` command, on this host. */
export const proxyCommand: Command = createProxyCommand();
