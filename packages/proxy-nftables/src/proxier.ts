/**
 * {@link NftablesProxier}: the nftables backend. Renders with {@link renderNftables} and
 * applies each family's transaction with one `nft -f -` (the payload on standard input).
 *
 * @module
 */
import {
  type CommandRunner,
  Counter,
  conntrackDeletions,
  createCommandRunner,
  describeError,
  flushConntrack,
  Gauge,
  type IPFamily,
  type Logger,
  nodePortHealthBindAddresses,
  type Proxier,
  ProxySyncError,
  Registry,
  ServiceHealthServer,
  type ServiceHealthServerOptions,
  type SyncInput,
  type SyncStats,
  sameLabels,
  silentLogger,
} from "@worknode/core";
import { NFTABLES_TABLE, nftFamily } from "./render/names.js";
import {
  type NftRenderNode,
  type NftRenderOptions,
  type NftRenderResult,
  type NftRenderState,
  renderNftables,
} from "./render/render.js";

/** Options of an {@link NftablesProxier}. */
export interface NftablesProxierOptions {
  /** This node's name (`--hostname-override`). */
  readonly nodeName: string;
  /** This node's addresses (`--nodeport-addresses`, load-balancer source ranges). */
  readonly nodeIPs?: readonly string[];
  /** This node's zone, for topology hints. */
  readonly zone?: string;
  /** This node's labels (zone fallback for topology hints). */
  readonly nodeLabels?: Readonly<Record<string, string>>;
  /** Families programmed: `["IPv4"]` (default), `["IPv6"]` or both (`ip` and `ip6` tables). */
  readonly families?: readonly IPFamily[];
  /** `--cluster-cidr`: pod CIDRs (one per family is used). */
  readonly clusterCIDRs?: readonly string[];
  /** `--masquerade-all`. */
  readonly masqueradeAll?: boolean;
  /** `--nodeport-addresses` CIDRs. */
  readonly nodePortAddresses?: readonly string[];
  /** Masquerade mark bit (default 14: mark 0x4000). */
  readonly masqueradeBit?: number;
  /** Table name in both families (default `kube-proxy`). */
  readonly table?: string;
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
   * Services, updated after every successful sync: options for a server the proxier
   * creates (and closes in {@link NftablesProxier.close}), or a {@link ServiceHealthServer}
   * the caller owns. Unset: no health-check servers.
   */
  readonly healthCheck?: ServiceHealthServerOptions | ServiceHealthServer;
}

/** What one family's last sync sent to `nft`. */
export interface NftAppliedPayload {
  readonly family: IPFamily;
  readonly full: boolean;
  /** The exact `nft -f -` input. */
  readonly payload: string;
  readonly render: NftRenderResult;
}

/** `/dev/stdin:12:5-9: Error: …` → 12. */
export function parseNftErrorLine(stderr: string): number | undefined {
  const m = /(?:stdin|-):(\d+):\d+/.exec(stderr);
  return m !== null ? Number(m[1]) : undefined;
}

function familyOf(ip: string): IPFamily {
  return ip.includes(":") ? "IPv6" : "IPv4";
}

/**
 * The nftables service-proxy backend, in kube-proxy's nftables layout.
 *
 * - **Full sync** (first sync, after a failure, when the controller asks, or when the
 *   node labels changed): one transaction that replaces the family's table atomically.
 * - **Partial sync**: one transaction with the chains and elements of the changed
 *   service ports only; its size and the time nft takes do not grow with the number of
 *   unchanged services beyond nft's own listing of the table's chains.
 * - A failed transaction changes nothing in the kernel (nft applies all or nothing). It
 *   is thrown as a {@link ProxySyncError} with the failing payload line, and the next
 *   sync of that family is full.
 * - After a successful sync, stale UDP/SCTP conntrack entries are deleted and the
 *   health-check node ports are updated.
 */
export class NftablesProxier implements Proxier {
  /** `--proxy-mode` name. */
  readonly mode = "nftables";
  /** Backend metrics. */
  readonly metrics: Registry;
  /** The health-check node port server, when {@link NftablesProxierOptions.healthCheck} is set. */
  readonly serviceHealth: ServiceHealthServer | undefined;

  private readonly runner: CommandRunner;
  private readonly familyList: readonly IPFamily[];
  private readonly state = new Map<IPFamily, NftRenderState>();
  private readonly last = new Map<IPFamily, NftAppliedPayload>();
  private readonly logger: Logger;
  private readonly ownsServiceHealth: boolean;
  private readonly syncFailures: Counter<"ip_family">;
  private readonly cleanupFailures: Counter;
  private readonly elementsGauge: Gauge<"ip_family">;
  private readonly chainsGauge: Gauge<"ip_family">;
  private nodeLabels: Readonly<Record<string, string>> | undefined;

  constructor(private readonly options: NftablesProxierOptions) {
    this.nodeLabels = options.nodeLabels;
    this.runner =
      options.runner ?? createCommandRunner(options.netns !== undefined ? { netns: options.netns } : {});
    this.familyList = options.families ?? ["IPv4"];
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
    this.metrics = new Registry();
    const registers = [this.metrics];
    this.syncFailures = new Counter({
      name: "kubeproxy_sync_proxy_rules_nftables_sync_failures_total",
      help: "Total number of nftables sync failures",
      labelNames: ["ip_family"],
      registers,
    });
    this.cleanupFailures = new Counter({
      name: "kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total",
      help: "Total number of nftables cleanup failures",
      registers,
    });
    this.elementsGauge = new Gauge({
      name: "worknode_proxy_nftables_service_ips_elements",
      help: "Elements of the service-ips map after the last successful sync",
      labelNames: ["ip_family"],
      registers,
    });
    this.chainsGauge = new Gauge({
      name: "worknode_proxy_nftables_service_chains",
      help: "Per-service-port chains after the last successful sync",
      labelNames: ["ip_family"],
      registers,
    });
  }

  /** The families this proxier programs. */
  get families(): readonly IPFamily[] {
    return this.familyList;
  }

  /** What the last sync of `family` sent to `nft` (whether or not it succeeded). */
  lastApplied(family: IPFamily = "IPv4"): NftAppliedPayload | undefined {
    return this.last.get(family);
  }

  /** The render options of one family. */
  renderOptions(family: IPFamily): NftRenderOptions {
    const o = this.options;
    const clusterCIDR = o.clusterCIDRs?.find((c) => familyOf(c.split("/")[0] ?? "") === family);
    return {
      family,
      masqueradeAll: o.masqueradeAll ?? false,
      ...(clusterCIDR !== undefined ? { clusterCIDR } : {}),
      ...(o.nodePortAddresses !== undefined ? { nodePortAddresses: o.nodePortAddresses } : {}),
      ...(o.masqueradeBit !== undefined ? { masqueradeBit: o.masqueradeBit } : {}),
      ...(o.table !== undefined ? { table: o.table } : {}),
    };
  }

  private node(): NftRenderNode {
    const o = this.options;
    const labels = this.nodeLabels;
    return {
      name: o.nodeName,
      nodeIPs: o.nodeIPs ?? [],
      ...(o.zone !== undefined ? { zone: o.zone } : {}),
      ...(labels !== undefined ? { labels } : {}),
    };
  }

  /** Renders what a full sync of `family` would write, without touching the node (`worknode proxy plan`). */
  plan(input: Pick<SyncInput, "snapshot" | "changes">, family: IPFamily = "IPv4"): NftRenderResult {
    return renderNftables({
      snapshot: input.snapshot,
      changes: input.changes,
      full: true,
      node: this.node(),
      options: this.renderOptions(family),
    });
  }

  /** The node labels the rules are rendered with. */
  get currentNodeLabels(): Readonly<Record<string, string>> | undefined {
    return this.nodeLabels;
  }

  /**
   * The labels of this node's Node object changed (its zone drives topology hints): the
   * next sync of every family is full. Equal labels change nothing.
   * @returns whether the labels changed
   */
  setNodeLabels(labels: Readonly<Record<string, string>> | undefined): boolean {
    if (
      (this.nodeLabels === undefined) === (labels === undefined) &&
      sameLabels(this.nodeLabels ?? {}, labels ?? {})
    )
      return false;
    this.nodeLabels = labels === undefined ? undefined : { ...labels };
    this.state.clear();
    this.logger.info({ labels: this.nodeLabels }, "node labels changed: next sync is full");
    return true;
  }

  /** Programs every family; see the class documentation. */
  async sync(input: SyncInput): Promise<SyncStats> {
    let servicePorts = 0;
    let endpoints = 0;
    let written = 0;
    for (const family of this.familyList) {
      const r = await this.syncFamily(family, input);
      servicePorts += r.stats.servicePorts;
      endpoints += r.stats.endpoints;
      written += r.stats.rulesWritten + r.stats.elementsWritten;
    }
    if ((this.options.conntrack ?? true) && input.changes.staleConntrack.length > 0) {
      const deletions = conntrackDeletions(input.changes.staleConntrack, this.familyList);
      const result = await flushConntrack(this.runner, deletions);
      for (const e of result.errors) this.logger.warn({ error: e }, "conntrack cleanup failed");
    }
    if (this.serviceHealth !== undefined) await this.serviceHealth.sync(input.snapshot);
    return { servicePorts, endpoints, written };
  }

  private async syncFamily(family: IPFamily, input: SyncInput): Promise<NftRenderResult> {
    const previous = this.state.get(family);
    const full = input.full || previous === undefined;
    // The render takes the previous state over: until this sync succeeds there is none.
    this.state.delete(family);
    const render = renderNftables({
      snapshot: input.snapshot,
      changes: input.changes,
      full,
      ...(previous !== undefined ? { previous } : {}),
      node: this.node(),
      options: this.renderOptions(family),
    });
    const payload = render.payload;
    this.last.set(family, { family, full: render.stats.full, payload, render });
    if (payload !== "") {
      const out = await this.runner.exec("nft", ["-f", "-"], payload);
      if (out.code !== 0) {
        this.syncFailures.inc({ ip_family: family });
        const lineNo = parseNftErrorLine(out.stderr);
        const failingLine = lineNo !== undefined ? payload.split("\n")[lineNo - 1] : undefined;
        const detail = out.stderr.trim().split("\n")[0] ?? "";
        this.logger.error(
          { family, full: render.stats.full, line: lineNo, failingLine, stderr: out.stderr.slice(0, 4000) },
          "nft transaction failed",
        );
        throw new ProxySyncError(
          this.mode,
          `nft -f - failed (exit ${out.code})${lineNo !== undefined ? ` at line ${lineNo}` : ""}: ${detail}`,
          failingLine !== undefined ? { failingLine } : {},
        );
      }
    }
    this.state.set(family, render.state);
    this.elementsGauge.set({ ip_family: family }, render.state.elementCount("service-ips"));
    this.chainsGauge.set({ ip_family: family }, render.stats.chains);
    this.logger.debug({ family, ...render.stats }, "nftables rules synced");
    return render;
  }

  /**
   * Stops what runs in this process: the health-check listeners the proxier created
   * (not a {@link ServiceHealthServer} passed in). The rules stay; see {@link cleanup}.
   */
  async close(): Promise<void> {
    if (this.ownsServiceHealth) await this.serviceHealth?.close();
  }

  /**
   * Deletes the table of both families (`ip` and `ip6`, whatever `families` says, as
   * kube-proxy's cleanup does); idempotent. Throws a {@link ProxySyncError} listing what
   * failed, after trying everything.
   */
  async cleanup(): Promise<void> {
    const table = this.options.table ?? NFTABLES_TABLE;
    const errors: string[] = [];
    for (const family of ["IPv4", "IPv6"] as const) {
      this.state.delete(family);
      const t = `${nftFamily(family)} ${table}`;
      // `add` first, so that deleting a table that is not there is not an error.
      try {
        const out = await this.runner.exec("nft", ["-f", "-"], `add table ${t}\ndelete table ${t}\n`);
        if (out.code !== 0) errors.push(`${family}: ${out.stderr.trim()}`);
      } catch (err) {
        errors.push(`${family}: ${describeError(err)}`);
      }
    }
    if (errors.length > 0) {
      this.cleanupFailures.inc();
      throw new ProxySyncError(this.mode, `cleanup incomplete:\n${errors.join("\n")}`);
    }
  }
}
