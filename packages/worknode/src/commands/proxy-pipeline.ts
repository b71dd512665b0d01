/**
 * The proxy pipeline both `worknode proxy` and `worknode node` run: the
 * backend's families, its proxier, a change tracker and the controller that
 * syncs one into the other. The caller feeds the tracker from its sources.
 *
 * @module
 */
import {
  type IPFamily,
  type Logger,
  nodePortHealthBindAddresses,
  ProxyController,
  type Registry,
  ServiceChangeTracker,
  ServiceHealthServer,
} from "@worknode/core";
import { type CliProxier, noUsableFamilyError, type ProxyBackend } from "./proxy-backend.js";
import { expandNodePortAddresses } from "./proxy-node-ips.js";

/** The settings the pipeline uses (kube-proxy's names); the mode is the backend's. */
export interface ProxyPipelineSettings {
  readonly clusterCIDRs: readonly string[];
  readonly masqueradeAll: boolean;
  readonly nodePortAddresses: readonly string[];
  readonly masqueradeBit: number;
  readonly localhostNodePorts: boolean;
  readonly minSyncPeriodMs: number;
  readonly syncPeriodMs: number;
}

/** A built, not yet started pipeline. */
export interface ProxyPipeline {
  readonly families: readonly IPFamily[];
  readonly proxier: CliProxier;
  readonly tracker: ServiceChangeTracker;
  readonly controller: ProxyController;
  /**
   * The health-check node ports of `externalTrafficPolicy: Local` services (kube-proxy's
   * service health server), updated by the proxier after every sync; the caller closes it.
   */
  readonly serviceHealth: ServiceHealthServer;
}

/**
 * Detects the backend's usable families and builds proxier, tracker and controller.
 * @throws UnavailableError when no family of the backend's mode (iptables or nftables) works;
 *   EbpfUnavailableError when the ebpf mode lacks bpffs, cgroup v2 or bpftool
 */
export async function createProxyPipeline(o: {
  readonly backend: ProxyBackend;
  readonly settings: ProxyPipelineSettings;
  readonly nodeName: string;
  readonly nodeIPs: readonly string[];
  readonly registry: Registry;
  readonly logger: Logger;
}): Promise<ProxyPipeline> {
  const { settings, logger, registry } = o;
  const families = await o.backend.detectFamilies();
  if (families.length === 0) throw noUsableFamilyError(o.backend.mode);
  // As kube-proxy at start: a node moving between modes must not keep the other mode's
  // rules (they would intercept service traffic first). Failures are logged, not fatal.
  try {
    await o.backend.cleanupOtherModes?.(logger);
  } catch (err) {
    logger.warn({ err }, "removing the other proxy modes' leftovers failed");
  }
  const nodePortAddresses = expandNodePortAddresses(settings.nodePortAddresses, o.nodeIPs);
  let controller: ProxyController | undefined;
  const bindAddresses = nodePortHealthBindAddresses(nodePortAddresses, o.nodeIPs);
  const serviceHealth = new ServiceHealthServer({
    // As kube-proxy: the node IPs inside --nodeport-addresses, or every address.
    ...(bindAddresses !== undefined ? { bindAddresses } : {}),
    proxyHealthy: () => controller?.health.isHealthy() ?? false,
    logger: logger.child({ component: "service-health" }),
  });
  const proxier = o.backend.createProxier({
    nodeName: o.nodeName,
    nodeIPs: o.nodeIPs,
    families,
    clusterCIDRs: settings.clusterCIDRs,
    masqueradeAll: settings.masqueradeAll,
    nodePortAddresses,
    masqueradeBit: settings.masqueradeBit,
    localhostNodePorts: settings.localhostNodePorts,
    logger: logger.child({ component: "proxier" }),
    serviceHealth,
  });
  const tracker = new ServiceChangeTracker({
    nodeName: o.nodeName,
    logger: logger.child({ component: "tracker" }),
    metrics: registry,
  });
  controller = new ProxyController({
    tracker,
    proxier,
    minSyncPeriodMs: settings.minSyncPeriodMs,
    syncPeriodMs: settings.syncPeriodMs,
    // nftables full syncs replace the whole table (and reset ClientIP affinity): as
    // kube-proxy's nftables mode, periodic syncs are partial and full ones hourly. The
    // ebpf mode does the same (a full sync reads every map back from the kernel).
    periodicFullSync: o.backend.mode !== "nftables" && o.backend.mode !== "ebpf",
    registry,
    logger: logger.child({ component: "controller" }),
  });
  return { families, proxier, tracker, controller, serviceHealth };
}
