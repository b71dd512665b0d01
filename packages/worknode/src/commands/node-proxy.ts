/**
 * The proxy half of `worknode node`: the services file's Services, their
 * EndpointSlices from the file or — for a Service with a selector and no slice —
 * generated from the node's own pods by the {@link LocalEndpointSliceController},
 * the change tracker, the {@link ProxyController} and the backend of the proxy mode
 * (iptables, nftables or ebpf), with
 * kube-proxy's healthz and metrics servers.
 *
 *   services file ─ Services ──────────────────────────────┐
 *                 └ EndpointSlices ─┐                      ├─ tracker ─ controller ─ iptables
 *   kubelet pods (labels, IPs, readiness) ─ local slices ──┘          (or nftables)
 *
 * On stop the rules stay in place, as kube-proxy leaves them when it exits (a
 * restarted agent takes them over with its first full sync; `--cleanup` removes them).
 *
 * @module
 */
import type { KubeConfig } from "@kubernetes/client-node";
import {
  createMetricsRegistry,
  describeError,
  type IPFamily,
  LocalEndpointSliceController,
  type Logger,
  type ObjectSource,
  type Pod,
  type ProxyController,
  ServicesFileSource,
} from "@worknode/core";
import type { CliProxier, ProxyBackend } from "./proxy-backend.js";
import type { HostPort, ProxyMode } from "./proxy-config.js";
import { followNodeLabels } from "./proxy-node-labels.js";
import { createProxyPipeline } from "./proxy-pipeline.js";
import { startProxyServers } from "./proxy-servers.js";

/** The proxy settings of `worknode node` (kube-proxy's flags, resolved). */
export interface NodeProxySettings {
  /** `--proxy-mode` (the backend passed to {@link startNodeProxy} must program it). */
  readonly mode: ProxyMode;
  /** `--cluster-cidr`, at most one per family. */
  readonly clusterCIDRs: readonly string[];
  /** `--masquerade-all`. */
  readonly masqueradeAll: boolean;
  /** `--nodeport-addresses` entries (CIDRs or primary / localhost / all). */
  readonly nodePortAddresses: readonly string[];
  /** `--iptables-masquerade-bit`. */
  readonly masqueradeBit: number;
  /** `--iptables-localhost-nodeports` (iptables and ebpf modes). */
  readonly localhostNodePorts: boolean;
  /** `--iptables-min-sync-period` in milliseconds. */
  readonly minSyncPeriodMs: number;
  /** `--iptables-sync-period` in milliseconds. */
  readonly syncPeriodMs: number;
  /** Where `/healthz` and `/livez` are served; undefined: not served. */
  readonly healthzBindAddress: HostPort | undefined;
  /** Where `/metrics` is served; undefined: not served. */
  readonly metricsBindAddress: HostPort | undefined;
}

/** Options of {@link startNodeProxy}. */
export interface StartNodeProxyOptions {
  readonly settings: NodeProxySettings;
  /** The node's name (endpoints' `nodeName`, static pod names). */
  readonly nodeName: string;
  /** The node's addresses, primary ones first. */
  readonly nodeIPs: readonly string[];
  /** The services file. */
  readonly servicesPath: string;
  /** How often the services file is rescanned besides inotify. */
  readonly rescanIntervalMs: number;
  /** The node's pods with their status (the kubelet's); must be started by the caller. */
  readonly pods: ObjectSource<Pod>;
  /** The host side of the backend of `settings.mode`. */
  readonly backend: ProxyBackend;
  /**
   * Node-aware proxying: when set, this node's Node object is watched on that API server
   * and its labels (the zone, for topology hints and `trafficDistribution`) go to the
   * backend, each change forcing a full sync, as kube-proxy does. Services and pods stay
   * standalone.
   */
  readonly kubeConfig?: KubeConfig;
  readonly logger: Logger;
}

/** A proxy started by {@link startNodeProxy}. */
export interface RunningNodeProxy {
  /** The IP families programmed. */
  readonly families: readonly IPFamily[];
  readonly proxier: CliProxier;
  readonly controller: ProxyController;
  /** The local endpoint-slice controller (its `endpointSlices` feed the tracker). */
  readonly endpointSlices: LocalEndpointSliceController;
  /** Bound address of `/healthz`, when served. */
  readonly healthz: HostPort | undefined;
  /** Bound address of `/metrics`, when served. */
  readonly metrics: HostPort | undefined;
  /** Stops syncing, the sources and the servers; the rules stay in place. */
  stop(): Promise<void>;
}

/**
 * Starts the proxy half of `worknode node` and resolves once the services file was read
 * (the first sync follows as soon as the pods source is synced too).
 * @throws UnavailableError when no family of the mode works or an address cannot be bound
 */
export async function startNodeProxy(o: StartNodeProxyOptions): Promise<RunningNodeProxy> {
  const { logger, settings } = o;
  const registry = createMetricsRegistry();
  const { families, proxier, tracker, controller, serviceHealth } = await createProxyPipeline({
    backend: o.backend,
    settings,
    nodeName: o.nodeName,
    nodeIPs: o.nodeIPs,
    registry,
    logger,
  });
  const file = new ServicesFileSource({
    path: o.servicesPath,
    logger: logger.child({ source: "services-file" }),
    registry,
    rescanIntervalMs: o.rescanIntervalMs,
  });
  const endpointSlices = new LocalEndpointSliceController({
    services: file.services,
    endpointSlices: file.endpointSlices,
    pods: o.pods,
    nodeName: o.nodeName,
    logger: logger.child({ component: "local-endpoint-slices" }),
  });

  const stoppers: Array<() => Promise<void>> = [];
  const stop = async (): Promise<void> => {
    for (const s of stoppers.splice(0).reverse()) {
      await s().catch((err: unknown) => logger.warn({ err: describeError(err) }, "stop failed"));
    }
  };
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

    if (o.kubeConfig !== undefined) {
      const watcher = await followNodeLabels({
        kubeConfig: o.kubeConfig,
        nodeName: o.nodeName,
        proxier,
        controller,
        logger,
        registry,
      });
      stoppers.push(() => watcher.stop());
    }
    file.services.addHandler(tracker.serviceHandler);
    endpointSlices.endpointSlices.addHandler(tracker.endpointSliceHandler);
    controller.trackSourcesSynced(file.services, endpointSlices.endpointSlices);
    controller.start();
    stoppers.push(() => controller.stop());
    endpointSlices.start();
    stoppers.push(async () => endpointSlices.stop());
    stoppers.push(() => file.stop());
    await file.start();
    logger.info(
      { mode: proxier.mode, families, nodeIPs: o.nodeIPs, services: o.servicesPath },
      "service proxy running (Services with a selector and no EndpointSlice get slices from this node's pods)",
    );
    return { families, proxier, controller, endpointSlices, healthz, metrics, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
