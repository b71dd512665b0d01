/**
 * `worknode node`: the assembled node agent (kubelet + service proxy) in
 * standalone mode — static pods from a manifest directory, Services from a
 * services file, no API server.
 *
 * The kubelet half is the real one (`startKubelet`, as `worknode kubelet` runs
 * it): static pods run over CRI, with probes, restarts and the kubelet's
 * endpoints (`/healthz` on 127.0.0.1:10248, the kubelet API on 127.0.0.1:10250).
 * The proxy half watches and validates the services file and keeps the service
 * model up to date, but does not program the node yet: Services with a selector
 * need the local endpoint-slice controller, and wiring the iptables backend into
 * this command is still to do (`worknode proxy` programs it on its own).
 *
 * @module
 */
import { access, stat } from "node:fs/promises";
import { hostname } from "node:os";
import path from "node:path";
import {
  BoundedFrequencyRunner,
  ConfigError,
  createLogger,
  createMetricsRegistry,
  Gauge,
  type Logger,
  ServiceChangeTracker,
  ServicesFileSource,
  startMetricsServer,
} from "@worknode/core";
import { type FlagSpec, parseFlags, renderHelp } from "../flags.js";
import type { CliIO, Command } from "../main.js";
import { checkRuntimeEndpoint } from "../runtime-endpoint.js";
import { startKubelet } from "./kubelet.js";
import type { KubeletCommandConfig } from "./kubelet-config.js";

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
  "metrics-bind-address": {
    kind: "string",
    help: "host:port of the service model's /metrics (kube-proxy's flag; empty disables)",
    default: "127.0.0.1:10249",
  },
  "iptables-min-sync-period": {
    kind: "duration",
    help: "Minimum interval between service-model syncs",
    default: "1s",
  },
  "log-level": { kind: "string", help: "trace, debug, info, warn or error", default: "info" },
} as const satisfies Record<string, FlagSpec>;

const USAGE = "worknode node [flags]";
const SUMMARY =
  "Run the node agent (kubelet + service proxy) in standalone mode on static pods and a services file";
const LOG_LEVELS = ["trace", "debug", "info", "warn", "error"] as const;

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

/** The `node` command. */
export const nodeCommand: Command = {
  name: "node",
  summary: SUMMARY,
  async run(argv: readonly string[], io: CliIO): Promise<number> {
    const { flags, positionals, help } = parseFlags("worknode node", FLAGS, argv);
    if (help) {
      io.stdout(renderHelp(USAGE, SUMMARY, FLAGS));
      return 0;
    }
    if (positionals.length > 0) throw new ConfigError(`unexpected argument "${positionals[0]}"`);
    const level = flags["log-level"];
    if (!(LOG_LEVELS as readonly string[]).includes(level)) {
      throw new ConfigError(`--log-level: "${level}" is not one of ${LOG_LEVELS.join(", ")}`);
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
    };
    return runStandaloneNode({
      kubelet,
      servicesPath,
      rescanIntervalMs: flags["file-check-frequency"],
      minSyncIntervalMs: flags["iptables-min-sync-period"],
      metrics: parseHostPort("metrics-bind-address", flags["metrics-bind-address"]),
      logger,
      signal: io.signal,
    });
  },
};

function parseHostPort(flag: string, value: string): { host: string; port: number } | undefined {
  if (value === "") return undefined;
  const colon = value.lastIndexOf(":");
  const host = value.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  const port = Number(value.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(`--${flag}: "${value}" is not host:port`);
  }
  return { host, port };
}

interface StandaloneNodeOptions {
  kubelet: KubeletCommandConfig;
  servicesPath: string | undefined;
  rescanIntervalMs: number;
  minSyncIntervalMs: number;
  metrics: { host: string; port: number } | undefined;
  logger: Logger;
  signal: AbortSignal;
}

async function runStandaloneNode(o: StandaloneNodeOptions): Promise<number> {
  const { logger } = o;
  const stoppers: Array<() => Promise<void>> = [];
  try {
    if (o.kubelet.staticPodPath) {
      const running = await startKubelet(o.kubelet, { logger: logger.child({ component: "kubelet" }) });
      stoppers.push(() => running.stop());
    }
    if (o.servicesPath) stoppers.push(await startServiceModel(o));

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
    logger.info("stopping (pods keep running, as with the kubelet)");
    return 0;
  } finally {
    for (const stop of stoppers.reverse()) await stop().catch((err) => logger.warn({ err }, "stop failed"));
  }
}

/**
 * The proxy half, as far as it goes today: the services file feeds the change tracker and the
 * service model is logged and exported as metrics, but not programmed on the node.
 */
async function startServiceModel(o: StandaloneNodeOptions): Promise<() => Promise<void>> {
  const { logger } = o;
  const registry = createMetricsRegistry();
  const servicePorts = new Gauge({
    name: "worknode_node_service_ports",
    help: "Service ports in the current service model",
    registers: [registry],
  });
  const endpointsGauge = new Gauge({
    name: "worknode_node_service_endpoints",
    help: "Endpoints in the current service model",
    registers: [registry],
  });
  const services = new ServicesFileSource({
    path: o.servicesPath!,
    logger: logger.child({ source: "services-file" }),
    registry,
    rescanIntervalMs: o.rescanIntervalMs,
  });
  const tracker = new ServiceChangeTracker({
    nodeName: o.kubelet.nodeName,
    logger: logger.child({ component: "tracker" }),
  });
  services.services.addHandler(tracker.serviceHandler);
  services.endpointSlices.addHandler(tracker.endpointSliceHandler);
  const runner = new BoundedFrequencyRunner({
    name: "service-model",
    minIntervalMs: o.minSyncIntervalMs,
    maxIntervalMs: 30_000,
    logger,
    fn: async () => {
      if (!tracker.hasPendingChanges()) return;
      const { snapshot, changes } = tracker.commit();
      let endpoints = 0;
      for (const eps of snapshot.endpoints.values()) endpoints += eps.length;
      servicePorts.set(snapshot.services.size);
      endpointsGauge.set(endpoints);
      logger.info(
        {
          generation: snapshot.generation,
          servicePorts: snapshot.services.size,
          endpoints,
          changed: [...changes.changedServicePorts],
          deleted: [...changes.deletedServicePorts],
        },
        "service model updated (not programmed on the node yet)",
      );
    },
  });
  tracker.onPendingChange(() => runner.run());
  const server = o.metrics
    ? await startMetricsServer({ host: o.metrics.host, port: o.metrics.port, registries: [registry] })
    : undefined;
  await services.start();
  runner.start();
  runner.run();
  return async () => {
    await runner.stop();
    await services.stop();
    await server?.close();
  };
}
