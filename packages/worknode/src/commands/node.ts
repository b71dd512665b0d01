/**
 * `worknode node`: the assembled node agent (kubelet + service proxy) in
 * standalone mode — static pods from a manifest directory, Services from a
 * services file, no API server.
 *
 * Today it runs the pieces that exist: it checks the container runtime's
 * socket, watches and validates the static pods and the services file, keeps
 * the service model up to date through the change tracker, and serves
 * `/healthz` and `/metrics`. Running the pods' containers (kubelet pod
 * workers) and programming Services (a proxy backend) are not implemented yet.
 *
 * @module
 */
import { access, stat } from "node:fs/promises";
import { hostname } from "node:os";
import {
  BoundedFrequencyRunner,
  ConfigError,
  createLogger,
  createMetricsRegistry,
  Gauge,
  type Logger,
  ManifestDirSource,
  type Pod,
  ServiceChangeTracker,
  ServicesFileSource,
  startMetricsServer,
} from "@worknode/core";
import { type FlagSpec, parseFlags, renderHelp } from "../flags.js";
import type { CliIO, Command } from "../main.js";
import { checkRuntimeEndpoint } from "../runtime-endpoint.js";

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
  "healthz-bind-address": {
    kind: "string",
    help: "Address of the healthz and metrics server",
    default: "127.0.0.1",
  },
  "healthz-port": {
    kind: "int",
    help: "Port of the healthz and metrics server (0 disables)",
    default: "10248",
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

function podSummary(pod: Pod): string {
  const containers = (pod.spec?.containers ?? []).map((c) => c.name).join(",");
  return `${pod.metadata?.namespace}/${pod.metadata?.name} [${containers}]`;
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
    return runStandaloneNode({
      nodeName,
      manifestPath,
      servicesPath,
      endpoint,
      rescanIntervalMs: flags["file-check-frequency"],
      minSyncIntervalMs: flags["iptables-min-sync-period"],
      healthz:
        flags["healthz-port"] > 0
          ? { host: flags["healthz-bind-address"], port: flags["healthz-port"] }
          : undefined,
      logger,
      signal: io.signal,
    });
  },
};

interface StandaloneNodeOptions {
  nodeName: string;
  manifestPath: string | undefined;
  servicesPath: string | undefined;
  endpoint: string;
  rescanIntervalMs: number;
  minSyncIntervalMs: number;
  healthz: { host: string; port: number } | undefined;
  logger: Logger;
  signal: AbortSignal;
}

async function runStandaloneNode(o: StandaloneNodeOptions): Promise<number> {
  const { logger } = o;
  const registry = createMetricsRegistry({ processMetrics: true });
  const staticPods = new Gauge({
    name: "worknode_node_static_pods",
    help: "Static pods currently defined in the manifest directory",
    registers: [registry],
  });
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

  const stoppers: Array<() => Promise<void>> = [];
  try {
    let ready = false;
    if (o.healthz) {
      const server = await startMetricsServer({
        host: o.healthz.host,
        port: o.healthz.port,
        registries: [registry],
        health: () => ({ ok: ready, message: ready ? "ok" : "starting" }),
      });
      stoppers.push(() => server.close());
      logger.info({ address: server.address }, "serving /healthz and /metrics");
    }

    if (o.manifestPath) {
      const pods = new ManifestDirSource({
        path: o.manifestPath,
        nodeName: o.nodeName,
        logger: logger.child({ source: "static-pods" }),
        registry,
        rescanIntervalMs: o.rescanIntervalMs,
      });
      const count = () => staticPods.set(pods.list().length);
      pods.addHandler({
        onAdd: (p) => {
          count();
          logger.info(
            { pod: podSummary(p) },
            "static pod seen (not run: kubelet pod workers are not implemented yet)",
          );
        },
        onUpdate: (_, p) => {
          count();
          logger.info({ pod: podSummary(p) }, "static pod changed");
        },
        onDelete: (p) => {
          count();
          logger.info({ pod: podSummary(p) }, "static pod removed");
        },
        onInvalid: (err) => logger.error({ reasons: err.reasons }, err.message),
      });
      await pods.start();
      stoppers.push(() => pods.stop());
    }

    if (o.servicesPath) {
      const services = new ServicesFileSource({
        path: o.servicesPath,
        logger: logger.child({ source: "services-file" }),
        registry,
        rescanIntervalMs: o.rescanIntervalMs,
      });
      const tracker = new ServiceChangeTracker({
        nodeName: o.nodeName,
        logger: logger.child({ component: "tracker" }),
      });
      services.services.addHandler(tracker.serviceHandler);
      services.endpointSlices.addHandler(tracker.endpointSliceHandler);
      const invalid = { onInvalid: (err: Error) => logger.error(err.message) };
      services.services.addHandler(invalid);
      services.endpointSlices.addHandler(invalid);
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
            "service model updated (not programmed: no proxy backend is implemented yet)",
          );
        },
      });
      tracker.onPendingChange(() => runner.run());
      await services.start();
      runner.start();
      runner.run();
      stoppers.push(async () => {
        await runner.stop();
        await services.stop();
      });
    }

    ready = true;
    logger.info(
      { node: o.nodeName, runtime: o.endpoint, manifests: o.manifestPath, services: o.servicesPath },
      "worknode node is running in standalone mode; stop with Ctrl-C",
    );
    await new Promise<void>((resolve) => {
      if (o.signal.aborted) resolve();
      o.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    logger.info("stopping");
    return 0;
  } finally {
    for (const stop of stoppers.reverse()) await stop().catch((err) => logger.warn({ err }, "stop failed"));
  }
}
