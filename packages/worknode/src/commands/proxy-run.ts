/**
 * The running `worknode proxy`: sources (services file or API server) → service
 * change tracker → {@link ProxyController} → backend, with kube-proxy's healthz and
 * metrics servers. In API mode this node's Node object is watched too and its labels
 * (the zone, for topology hints and `trafficDistribution`) go to the backend. Stops on
 * the CLI's abort signal and leaves the rules in place, as kube-proxy does.
 *
 * @module
 */
import type { KubeConfig } from "@kubernetes/client-node";
import {
  createMetricsRegistry,
  describeError,
  type EndpointSlice,
  Informer,
  type IPFamily,
  KUBE_RESOURCES,
  type Logger,
  type ObjectSource,
  type ProxyController,
  type RunnableSource,
  type Service,
  ServicesFileSource,
  UnavailableError,
} from "@worknode/core";
import type { ProxyBackend } from "./proxy-backend.js";
import type { LogLevel, ResolvedProxySettings } from "./proxy-config.js";
import { followNodeLabels } from "./proxy-node-labels.js";
import { createProxyPipeline } from "./proxy-pipeline.js";
import { startProxyServers } from "./proxy-servers.js";

/** How long API mode waits for the first list of Services and EndpointSlices before giving up. */
export const DEFAULT_API_SYNC_TIMEOUT_MS = 30_000;

/**
 * kube-proxy's informer label selector: objects that belong to another proxy
 * (`service.kubernetes.io/service-proxy-name`) or to headless Services are not listed.
 */
export const KUBE_PROXY_LABEL_SELECTOR =
  "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless";

/** Where Services and EndpointSlices come from. */
export type ProxySource =
  | { readonly kind: "services-file"; readonly path: string }
  | { readonly kind: "api"; readonly kubeConfig: KubeConfig; readonly server: string };

/** Options of {@link runProxy}. */
export interface RunProxyOptions {
  readonly settings: ResolvedProxySettings;
  readonly source: ProxySource;
  readonly nodeName: string;
  /** The node's addresses, primary ones first. */
  readonly nodeIPs: readonly string[];
  readonly backend: ProxyBackend;
  readonly logger: Logger;
  readonly logLevel: LogLevel;
  /** Ends the proxy (SIGINT / SIGTERM). */
  readonly signal: AbortSignal;
  /** API mode: fail when the first list has not succeeded within this time. */
  readonly apiSyncTimeoutMs?: number;
  /** Called once everything runs, with the bound server addresses (tests). */
  readonly onReady?: (info: ProxyReadyInfo) => void;
}

/** What a started proxy reports to {@link RunProxyOptions.onReady}. */
export interface ProxyReadyInfo {
  readonly families: readonly IPFamily[];
  readonly healthz?: { readonly host: string; readonly port: number };
  readonly metrics?: { readonly host: string; readonly port: number };
  readonly controller: ProxyController;
}

interface StartedSources {
  readonly services: ObjectSource<Service>;
  readonly endpointSlices: ObjectSource<EndpointSlice>;
  readonly runnables: readonly RunnableSource[];
  /**
   * API mode: the logger of the Node informer, quiet until the first lists succeeded
   * like the sources' (see `afterSync`).
   */
  readonly nodeInformerLogger?: Logger;
  /** Raises the sources' log level once they synced (API mode keeps them quiet until then). */
  readonly afterSync: () => void;
}

function createSources(
  o: RunProxyOptions,
  registry: ReturnType<typeof createMetricsRegistry>,
): StartedSources {
  if (o.source.kind === "services-file") {
    const file = new ServicesFileSource({
      path: o.source.path,
      logger: o.logger.child({ source: "services-file" }),
      registry,
    });
    return {
      services: file.services,
      endpointSlices: file.endpointSlices,
      runnables: [file],
      afterSync: () => {},
    };
  }
  // Until the first list succeeds the informers' retries stay quiet: if it never does, the
  // one-line error says why. Afterwards they log at the configured level.
  const informerLogger = o.logger.child({ component: "informer" }, { level: "silent" });
  const nodeInformerLogger = o.logger.child({ component: "node-informer" }, { level: "silent" });
  const common = {
    kubeConfig: o.source.kubeConfig,
    labelSelector: KUBE_PROXY_LABEL_SELECTOR,
    logger: informerLogger,
    metrics: registry,
    syncTimeoutMs: o.apiSyncTimeoutMs ?? DEFAULT_API_SYNC_TIMEOUT_MS,
    userAgent: "worknode-proxy",
  };
  const services = new Informer<Service>({ ...common, resource: KUBE_RESOURCES.services });
  const endpointSlices = new Informer<EndpointSlice>({ ...common, resource: KUBE_RESOURCES.endpointSlices });
  return {
    services,
    endpointSlices,
    runnables: [services, endpointSlices],
    nodeInformerLogger,
    afterSync: () => {
      informerLogger.level = o.logLevel;
      nodeInformerLogger.level = o.logLevel;
    },
  };
}

/**
 * Runs the proxy until `signal` aborts; resolves to the exit status (0). Fails with a
 * one-line error when no family of the proxy mode (iptables or nftables) works, a server
 * address cannot be bound, or (API mode) the API server does not deliver its first lists
 * in time.
 */
export async function runProxy(o: RunProxyOptions): Promise<number> {
  const { logger, settings } = o;
  const registry = createMetricsRegistry({ processMetrics: true });
  const { families, proxier, tracker, controller, serviceHealth } = await createProxyPipeline({
    backend: o.backend,
    settings,
    nodeName: o.nodeName,
    nodeIPs: o.nodeIPs,
    registry,
    logger,
  });

  // Every metric must exist before the metrics server starts: it serves a merge of the
  // registries as they are at that moment.
  const sources = createSources(o, registry);
  const stoppers: Array<() => Promise<void>> = [];
  try {
    const servers = await startProxyServers({
      healthzBindAddress: settings.healthzBindAddress,
      metricsBindAddress: settings.metricsBindAddress,
      controller,
      proxier,
      registry,
      logger,
    });
    stoppers.push(() => servers.close());
    stoppers.push(() => serviceHealth.close());
    const { healthz, metrics } = servers;

    sources.services.addHandler(tracker.serviceHandler);
    sources.endpointSlices.addHandler(tracker.endpointSliceHandler);
    controller.trackSourcesSynced(sources.services, sources.endpointSlices);
    controller.start();
    stoppers.push(() => controller.stop());
    for (const s of sources.runnables) stoppers.push(() => s.stop());

    if (o.source.kind === "api") {
      logger.info(
        { server: o.source.server, timeoutMs: o.apiSyncTimeoutMs ?? DEFAULT_API_SYNC_TIMEOUT_MS },
        "waiting for this node's Node, Services and EndpointSlices from the API server",
      );
    }
    // A signal while waiting for the first lists stops the sources, which ends the wait.
    const stopSources = () => {
      for (const s of sources.runnables) void s.stop().catch(() => {});
    };
    o.signal.addEventListener("abort", stopSources, { once: true });
    try {
      if (o.source.kind === "api") {
        // First the Node, so that its labels are in place for the first sync.
        const watcher = await followNodeLabels({
          kubeConfig: o.source.kubeConfig,
          nodeName: o.nodeName,
          proxier,
          controller,
          logger,
          ...(sources.nodeInformerLogger ? { informerLogger: sources.nodeInformerLogger } : {}),
          registry,
          syncTimeoutMs: o.apiSyncTimeoutMs ?? DEFAULT_API_SYNC_TIMEOUT_MS,
          signal: o.signal,
        });
        stoppers.push(() => watcher.stop());
      }
      await Promise.all(sources.runnables.map((s) => s.start()));
    } catch (err) {
      if (o.signal.aborted) return 0;
      if (o.source.kind === "api") {
        throw new UnavailableError(
          o.source.server,
          `cannot list from the API server at ${o.source.server}: ${describeError(err)}`,
          {
            cause: err,
          },
        );
      }
      throw err;
    } finally {
      o.signal.removeEventListener("abort", stopSources);
    }
    sources.afterSync();
    o.onReady?.({ families, controller, ...(healthz ? { healthz } : {}), ...(metrics ? { metrics } : {}) });
    logger.info(
      {
        mode: proxier.mode,
        node: o.nodeName,
        nodeIPs: o.nodeIPs,
        families,
        source: o.source.kind === "api" ? o.source.server : o.source.path,
      },
      "worknode proxy is running; stop with Ctrl-C (rules stay in place)",
    );
    await new Promise<void>((resolve) => {
      if (o.signal.aborted) resolve();
      else o.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    logger.info("stopping; the rules stay in place (worknode proxy --cleanup removes them)");
    return 0;
  } finally {
    for (const stop of stoppers.reverse()) {
      await stop().catch((err: unknown) => logger.warn({ err: describeError(err) }, "stop failed"));
    }
  }
}
