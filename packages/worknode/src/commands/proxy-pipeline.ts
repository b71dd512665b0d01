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
  ProxyController,
  type Registry,
  ServiceChangeTracker,
  UnavailableError,
} from "@worknode/core";
import type { CliProxier, ProxyBackend } from "./proxy-backend.js";
import { expandNodePortAddresses } from "./proxy-node-ips.js";

/** The settings the pipeline uses (kube-proxy's names). */
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
}

/**
 * Detects the backend's usable families and builds proxier, tracker and controller.
 * @throws UnavailableError when no iptables family works
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
  if (families.length === 0) {
    throw new UnavailableError(
      "iptables",
      "no usable iptables: `iptables -t nat -L POSTROUTING` and `ip6tables -t nat -L POSTROUTING` both failed (is iptables installed, and do we run as root?)",
    );
  }
  const proxier = o.backend.createProxier({
    nodeName: o.nodeName,
    nodeIPs: o.nodeIPs,
    families,
    clusterCIDRs: settings.clusterCIDRs,
    masqueradeAll: settings.masqueradeAll,
    nodePortAddresses: expandNodePortAddresses(settings.nodePortAddresses, o.nodeIPs),
    masqueradeBit: settings.masqueradeBit,
    localhostNodePorts: settings.localhostNodePorts,
    logger: logger.child({ component: "proxier" }),
  });
  const tracker = new ServiceChangeTracker({
    nodeName: o.nodeName,
    logger: logger.child({ component: "tracker" }),
    metrics: registry,
  });
  const controller = new ProxyController({
    tracker,
    proxier,
    minSyncPeriodMs: settings.minSyncPeriodMs,
    syncPeriodMs: settings.syncPeriodMs,
    registry,
    logger: logger.child({ component: "controller" }),
  });
  return { families, proxier, tracker, controller };
}
