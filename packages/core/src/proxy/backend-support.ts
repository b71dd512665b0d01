/**
 * What every kernel-programming `Proxier` backend shares besides its rules: the options
 * that describe the node and kube-proxy's common settings, and {@link ProxierSupport},
 * which holds the command runner, the node's labels, the health-check node port server,
 * and the work after each sync (stale conntrack entries, health-check listeners).
 *
 * @module
 */
import type { IPFamily } from "../net/ip.js";
import { sameLabels } from "../service/node-labels.js";
import type { NodeTopology } from "../service/topology.js";
import { type CommandRunner, createCommandRunner } from "../util/command.js";
import { type Logger, silentLogger } from "../util/logging.js";
import { conntrackDeletions, flushConntrack } from "./conntrack-cleanup.js";
import type { SyncInput } from "./proxier.js";
import {
  nodePortHealthBindAddresses,
  ServiceHealthServer,
  type ServiceHealthServerOptions,
} from "./service-health.js";

/** Options every kernel backend takes (kube-proxy's node and common settings). */
export interface ProxierNodeOptions {
  /** This node's name (`--hostname-override`). */
  readonly nodeName: string;
  /** This node's addresses (`--nodeport-addresses`, load-balancer source ranges). */
  readonly nodeIPs?: readonly string[];
  /** This node's zone, for topology hints. */
  readonly zone?: string;
  /** This node's labels (zone fallback for topology hints). */
  readonly nodeLabels?: Readonly<Record<string, string>>;
  /** Families programmed: `["IPv4"]` (default), `["IPv6"]` or both. */
  readonly families?: readonly IPFamily[];
  /** `--cluster-cidr`: pod CIDRs (one per family is used). */
  readonly clusterCIDRs?: readonly string[];
  /** `--masquerade-all`. */
  readonly masqueradeAll?: boolean;
  /** `--nodeport-addresses` CIDRs. */
  readonly nodePortAddresses?: readonly string[];
  /** Masquerade mark bit (default 14: mark 0x4000). */
  readonly masqueradeBit?: number;
  /** Run every command inside this network namespace (ignored when `runner` is given). */
  readonly netns?: string;
  /** Command runner (default: spawn, optionally inside `netns`). */
  readonly runner?: CommandRunner;
  /** Delete stale UDP/SCTP conntrack entries after syncs with the `conntrack` tool (default true). */
  readonly conntrack?: boolean;
  /** Logger; default silent. */
  readonly logger?: Logger;
  /**
   * Serve the health-check node ports of `externalTrafficPolicy: Local` LoadBalancer
   * Services (kube-proxy's service health server), updated after every successful sync:
   * options for a server the backend creates (and closes), or a {@link ServiceHealthServer}
   * the caller owns. With options and no `bindAddresses`, the listeners bind the node IPs
   * inside `nodePortAddresses` when those are set, as kube-proxy does, and every address
   * otherwise. Unset: no health-check servers.
   */
  readonly healthCheck?: ServiceHealthServerOptions | ServiceHealthServer;
}

/** The node as renderers see it: {@link NodeTopology} plus its addresses. */
export interface ProxyNode extends NodeTopology {
  /** The node's own addresses. */
  readonly nodeIPs: readonly string[];
}

function familyOf(ip: string): IPFamily {
  return ip.includes(":") ? "IPv6" : "IPv4";
}

/** The shared, rule-independent half of a kernel backend; see the module documentation. */
export class ProxierSupport {
  readonly runner: CommandRunner;
  readonly logger: Logger;
  readonly families: readonly IPFamily[];
  /** The health-check node port server, when {@link ProxierNodeOptions.healthCheck} is set. */
  readonly serviceHealth: ServiceHealthServer | undefined;
  private readonly ownsServiceHealth: boolean;
  private labels: Readonly<Record<string, string>> | undefined;

  constructor(private readonly options: ProxierNodeOptions) {
    this.labels = options.nodeLabels;
    this.runner =
      options.runner ?? createCommandRunner(options.netns !== undefined ? { netns: options.netns } : {});
    this.families = options.families ?? ["IPv4"];
    this.logger = options.logger ?? silentLogger();
    const hc = options.healthCheck;
    if (hc instanceof ServiceHealthServer) {
      this.serviceHealth = hc;
      this.ownsServiceHealth = false;
    } else if (hc !== undefined) {
      const bindAddresses =
        hc.bindAddresses ?? nodePortHealthBindAddresses(options.nodePortAddresses, options.nodeIPs);
      this.serviceHealth = new ServiceHealthServer({
        logger: this.logger,
        ...hc,
        ...(bindAddresses !== undefined ? { bindAddresses } : {}),
      });
      this.ownsServiceHealth = true;
    } else {
      this.serviceHealth = undefined;
      this.ownsServiceHealth = false;
    }
  }

  /** The node labels rules are rendered with (the option, or what {@link setNodeLabels} set). */
  get nodeLabels(): Readonly<Record<string, string>> | undefined {
    return this.labels;
  }

  /**
   * Records the labels of this node's Node object; equal labels change nothing.
   * @returns whether they changed (the backend's next sync should then be full, as kube-proxy's `OnNodeUpdate`)
   */
  setNodeLabels(labels: Readonly<Record<string, string>> | undefined): boolean {
    if ((this.labels === undefined) === (labels === undefined) && sameLabels(this.labels ?? {}, labels ?? {}))
      return false;
    this.labels = labels === undefined ? undefined : { ...labels };
    this.logger.info({ labels: this.labels }, "node labels changed: next sync is full");
    return true;
  }

  /** The `--cluster-cidr` of `family`, if one is set. */
  clusterCIDR(family: IPFamily): string | undefined {
    return this.options.clusterCIDRs?.find((c) => familyOf(c.split("/")[0] ?? "") === family);
  }

  /** The node as renderers see it. */
  node(): ProxyNode {
    const o = this.options;
    const labels = this.labels;
    return {
      name: o.nodeName,
      nodeIPs: o.nodeIPs ?? [],
      ...(o.zone !== undefined ? { zone: o.zone } : {}),
      ...(labels !== undefined ? { labels } : {}),
    };
  }

  /**
   * The work after a successful sync: deletes `changes.staleConntrack` with `conntrack -D`
   * (unless the `conntrack` option is false; failures are logged) and updates the
   * health-check listeners (listeners that cannot be opened are logged and retried next sync).
   */
  async afterSync(input: SyncInput): Promise<void> {
    if ((this.options.conntrack ?? true) && input.changes.staleConntrack.length > 0) {
      const deletions = conntrackDeletions(input.changes.staleConntrack, this.families);
      const result = await flushConntrack(this.runner, deletions);
      for (const e of result.errors) this.logger.warn({ error: e }, "conntrack cleanup failed");
    }
    if (this.serviceHealth !== undefined) await this.serviceHealth.sync(input.snapshot);
  }

  /** Closes the health-check listeners the support created (not a server passed in). */
  async close(): Promise<void> {
    if (this.ownsServiceHealth) await this.serviceHealth?.close();
  }
}
