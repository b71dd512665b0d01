/**
 * `worknode kubelet`: the kubelet — static pods from a manifest directory run
 * over CRI, with kubelet's HTTP endpoints (healthz on 127.0.0.1:10248, the
 * kubelet API on 10250 over HTTPS). Standalone by default (the kubelet API on
 * loopback only); with `--kubeconfig` it joins a cluster: it registers its Node,
 * runs the pods bound to it, reports their status, keeps mirror pods of its
 * static pods, and authenticates and authorizes kubelet API requests (see
 * kubelet-cluster.ts). Flags and the `--config` KubeletConfiguration file are
 * kubelet's (see kubelet-config.ts).
 *
 * @module
 */
import { mkdir, readFile, stat } from "node:fs/promises";
import { hostname } from "node:os";
import path from "node:path";
import {
  ConfigError,
  createLogger,
  createMetricsRegistry,
  type Logger,
  ManifestDirSource,
  type ObjectSource,
  type Pod,
} from "@worknode/core";
import { CriClient } from "@worknode/cri";
import {
  CriRuntimeLocator,
  CriStreamingBackend,
  CriSummaryProvider,
  containerLogPathFromStatus,
  DEFAULT_POD_LOGS_ROOT,
  defaultNodeIPs,
  Kubelet,
  KubeletMetrics,
  KubeletServer,
  ProbeHandlers,
  ProberMetrics,
} from "@worknode/kubelet";
import { renderHelp } from "../flags.js";
import type { CliIO, Command } from "../main.js";
import { checkRuntimeEndpoint } from "../runtime-endpoint.js";
import { connectKubeletToCluster, type KubeletClusterSide } from "./kubelet-cluster.js";
import { KUBELET_FLAGS, type KubeletCommandConfig, loadKubeletCommandConfig } from "./kubelet-config.js";

const USAGE = "worknode kubelet [flags]";
const SUMMARY =
  "Run the kubelet: static pods over CRI, healthz and the kubelet API; with --kubeconfig, join a cluster";

/** A running kubelet started by {@link startKubelet}. */
export interface RunningKubelet {
  /** The kubelet (pods, statuses). */
  readonly kubelet: Kubelet;
  /** Its HTTP endpoints. */
  readonly server: KubeletServer;
  /** The API-server side, when the kubelet joined a cluster (`--kubeconfig`). */
  readonly cluster: KubeletClusterSide | undefined;
  /** Stops the endpoints, the kubelet and the pod source; the pods' containers keep running. */
  stop(): Promise<void>;
}

async function checkManifestPath(dir: string, logger: Logger): Promise<void> {
  const s = await stat(dir).catch(() => undefined);
  if (!s) {
    logger.warn({ staticPodPath: dir }, "the static pod path does not exist (yet); watching for it");
    return;
  }
  if (!s.isDirectory()) throw new ConfigError(`--pod-manifest-path: ${dir} is not a directory`);
}

/**
 * Starts a kubelet from a resolved configuration: checks the runtime socket,
 * creates the root directory, starts the HTTP endpoints, the static pod source
 * and the {@link Kubelet} (whose pod workers use the full probe handlers).
 * @throws UnavailableError when the runtime cannot be reached or an address cannot be bound
 * @throws ConfigError for a static pod path that is not a directory or unreadable TLS files
 */
export async function startKubelet(
  config: KubeletCommandConfig,
  options: { readonly logger: Logger },
): Promise<RunningKubelet> {
  const { logger } = options;
  await checkRuntimeEndpoint(config.containerRuntimeEndpoint);
  if (config.staticPodPath) await checkManifestPath(config.staticPodPath, logger);
  await mkdir(config.rootDir, { recursive: true, mode: 0o700 });

  const stoppers: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const stop of stoppers.splice(0).reverse()) {
      await stop().catch((err: unknown) => logger.warn({ err }, "stop failed"));
    }
  };
  try {
    const client = new CriClient({ endpoint: config.containerRuntimeEndpoint, logger });
    stoppers.push(async () => client.close());
    const registry = createMetricsRegistry({ processMetrics: true });
    const kubeletMetrics = new KubeletMetrics({ nodeName: config.nodeName });
    const proberMetrics = new ProberMetrics();

    const nodeIPs = config.nodeIPs.length > 0 ? config.nodeIPs : defaultNodeIPs();
    const sources: ObjectSource<Pod>[] = [];
    let manifests: ManifestDirSource | undefined;
    if (config.staticPodPath) {
      manifests = new ManifestDirSource({
        path: config.staticPodPath,
        nodeName: config.nodeName,
        logger: logger.child({ source: "static-pods" }),
        registry,
        rescanIntervalMs: config.fileCheckFrequencyMs,
      });
      sources.push(manifests);
    } else {
      logger.warn("no --pod-manifest-path (staticPodPath): this kubelet has no pods to run");
    }

    const clusterConfig = config.cluster;
    const cluster = clusterConfig
      ? await connectKubeletToCluster(
          { ...config, cluster: clusterConfig },
          { client, nodeIPs, staticPods: sources, logger },
        )
      : undefined;
    const apiWiring = cluster?.kubeletOptions();
    const kubelet = new Kubelet({
      client,
      nodeName: config.nodeName,
      sources: apiWiring?.sources ?? sources,
      ...(apiWiring ? { onStatus: apiWiring.onStatus, onPodTerminated: apiWiring.onPodTerminated } : {}),
      ...(cluster ? { objects: cluster.objects, recorder: cluster.recorder } : {}),
      nodeIPs,
      clusterDNS: config.clusterDNS,
      clusterDomain: config.clusterDomain,
      onPodStarted: kubeletMetrics.observePodStart,
      containerLogRotation: {
        maxSizeBytes: config.containerLogs.maxSizeBytes,
        maxFiles: config.containerLogs.maxFiles,
      },
      containerLogMonitorIntervalMs: config.containerLogs.monitorIntervalMs,
      rootDir: config.rootDir,
      podLogsDir: DEFAULT_POD_LOGS_ROOT,
      maxPods: config.maxPods,
      resyncIntervalMs: config.syncFrequencyMs,
      probeRunner: new ProbeHandlers({
        runtime: client.runtime,
        metrics: proberMetrics,
        logger: logger.child({ component: "prober" }),
      }),
      logger,
    });
    kubeletMetrics.derivePodGaugesFrom(() => kubelet.pods());

    const locator = new CriRuntimeLocator({ client, pods: () => kubelet.pods() });
    const server = new KubeletServer({
      nodeName: config.nodeName,
      healthz: config.healthz,
      server: config.server
        ? {
            host: config.server.host,
            port: config.server.port,
            tlsCertFile: config.server.tlsCertFile,
            tlsPrivateKeyFile: config.server.tlsPrivateKeyFile,
            certDir: config.server.certDir,
            ...(cluster ? { auth: cluster.auth } : {}),
          }
        : undefined,
      stats: new CriSummaryProvider({ client, nodeName: config.nodeName, rootDir: config.rootDir }),
      streaming: new CriStreamingBackend({ client, locator }),
      provider: {
        pods: () => kubelet.pods(),
        containerLogPath: (namespace, name, container, previous) => {
          const pod = kubelet
            .pods()
            .find((p) => p.metadata?.namespace === namespace && p.metadata?.name === name);
          return pod
            ? containerLogPathFromStatus(pod, container, previous, DEFAULT_POD_LOGS_ROOT)
            : undefined;
        },
        healthy: () => kubelet.plegHealth().healthy,
        registries: [registry, kubeletMetrics.registry],
        probeRegistries: [proberMetrics.registry],
      },
      logger,
    });
    await server.start();
    stoppers.push(() => server.stop());
    logger.info(
      { healthz: server.healthzAddress, api: server.serverAddress, cert: server.certificate?.certFile },
      "serving kubelet endpoints",
    );

    if (manifests) {
      const source = manifests;
      await source.start();
      stoppers.push(() => source.stop());
    }
    if (cluster) {
      const side = cluster;
      stoppers.push(() => side.stop());
      await side.start(() => (kubelet.plegHealth().healthy ? undefined : "PLEG is not healthy"));
    }
    stoppers.push(() => kubelet.stop());
    await kubelet.start();
    return { kubelet, server, cluster, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** The `kubelet` command. */
export const kubeletCommand: Command = {
  name: "kubelet",
  summary: SUMMARY,
  async run(argv: readonly string[], io: CliIO): Promise<number> {
    const loaded = await loadKubeletCommandConfig("worknode kubelet", argv, {
      hostname: hostname(),
      readFile: (file) => readFile(path.resolve(file), "utf8"),
    });
    if (loaded.help) {
      io.stdout(renderHelp(USAGE, SUMMARY, KUBELET_FLAGS));
      return 0;
    }
    const { config } = loaded;
    const logger = createLogger({ name: "worknode-kubelet", level: config.logLevel });
    for (const field of config.ignoredFields) {
      logger.warn(
        { field, config: config.configFile },
        "KubeletConfiguration field not implemented; ignored",
      );
    }
    const running = await startKubelet(config, { logger });
    logger.info(
      {
        node: config.nodeName,
        runtime: config.containerRuntimeEndpoint,
        staticPodPath: config.staticPodPath,
      },
      config.cluster
        ? "worknode kubelet joined the cluster; stop with Ctrl-C (pods keep running)"
        : "worknode kubelet is running in standalone mode; stop with Ctrl-C",
    );
    try {
      await new Promise<void>((resolve) => {
        if (io.signal.aborted) resolve();
        io.signal.addEventListener("abort", () => resolve(), { once: true });
      });
      logger.info("stopping");
    } finally {
      await running.stop();
    }
    return 0;
  },
};
