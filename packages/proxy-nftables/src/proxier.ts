/**
 * {@link NftablesProxier}: the nftables backend. Renders with {@link renderNftables} and
 * applies each family's transaction with one `nft -f -` (the payload on standard input).
 *
 * @module
 */
import {
  Counter,
  describeError,
  Gauge,
  type IPFamily,
  type Logger,
  type Proxier,
  type ProxierNodeOptions,
  ProxierSupport,
  ProxySyncError,
  Registry,
  type ServiceHealthServer,
  type SyncInput,
  type SyncStats,
} from "@worknode/core";
import { NFTABLES_TABLE, nftFamily, SERVICES_CHAIN } from "./render/names.js";
import {
  type NftRenderOptions,
  type NftRenderResult,
  type NftRenderState,
  renderNftables,
} from "./render/render.js";

/** Options of an {@link NftablesProxier}: the node and kube-proxy's common settings, and the table name. */
export interface NftablesProxierOptions extends ProxierNodeOptions {
  /** Table name in both families (default `kube-proxy`). */
  readonly table?: string;
  /**
   * On a sync with nothing to change, check that the table's `services` chain is still
   * there (`nft list chain`) and sync fully when it is not (someone deleted the table or
   * flushed the ruleset); default true. The iptables backend's canary, for nftables.
   */
  readonly canaryCheck?: boolean;
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

/**
 * The nftables service-proxy backend, in kube-proxy's nftables layout.
 *
 * - **Full sync** (first sync, after a failure, when the controller asks, or when the
 *   node labels changed): one transaction that replaces the family's table atomically.
 * - **Canary**: a sync with nothing to change checks that the table is still there and
 *   syncs fully when it is not.
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
  private readonly support: ProxierSupport;
  private readonly state = new Map<IPFamily, NftRenderState>();
  private readonly last = new Map<IPFamily, NftAppliedPayload>();
  private readonly syncFailures: Counter<"ip_family">;
  private readonly cleanupFailures: Counter;
  private readonly elementsGauge: Gauge<"ip_family">;
  private readonly chainsGauge: Gauge<"ip_family">;

  constructor(private readonly options: NftablesProxierOptions) {
    this.support = new ProxierSupport(options);
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
    return this.support.families;
  }

  /** The health-check node port server, when {@link ProxierNodeOptions.healthCheck} is set. */
  get serviceHealth(): ServiceHealthServer | undefined {
    return this.support.serviceHealth;
  }

  private get logger(): Logger {
    return this.support.logger;
  }

  /** What the last sync of `family` sent to `nft` (whether or not it succeeded). */
  lastApplied(family: IPFamily = "IPv4"): NftAppliedPayload | undefined {
    return this.last.get(family);
  }

  /** The render options of one family. */
  renderOptions(family: IPFamily): NftRenderOptions {
    const o = this.options;
    const clusterCIDR = this.support.clusterCIDR(family);
    return {
      family,
      masqueradeAll: o.masqueradeAll ?? false,
      ...(clusterCIDR !== undefined ? { clusterCIDR } : {}),
      ...(o.nodePortAddresses !== undefined ? { nodePortAddresses: o.nodePortAddresses } : {}),
      ...(o.masqueradeBit !== undefined ? { masqueradeBit: o.masqueradeBit } : {}),
      ...(o.table !== undefined ? { table: o.table } : {}),
    };
  }

  /** Renders what a full sync of `family` would write, without touching the node (`worknode proxy plan`). */
  plan(input: Pick<SyncInput, "snapshot" | "changes">, family: IPFamily = "IPv4"): NftRenderResult {
    return renderNftables({
      snapshot: input.snapshot,
      changes: input.changes,
      full: true,
      node: this.support.node(),
      options: this.renderOptions(family),
    });
  }

  /** The node labels the rules are rendered with. */
  get currentNodeLabels(): Readonly<Record<string, string>> | undefined {
    return this.support.nodeLabels;
  }

  /**
   * The labels of this node's Node object changed (its zone drives topology hints): the
   * next sync of every family is full. Equal labels change nothing.
   * @returns whether the labels changed
   */
  setNodeLabels(labels: Readonly<Record<string, string>> | undefined): boolean {
    if (!this.support.setNodeLabels(labels)) return false;
    this.state.clear();
    return true;
  }

  /** Programs every family; see the class documentation. */
  async sync(input: SyncInput): Promise<SyncStats> {
    let servicePorts = 0;
    let endpoints = 0;
    let written = 0;
    for (const family of this.support.families) {
      const r = await this.syncFamily(family, input);
      servicePorts += r.stats.servicePorts;
      endpoints += r.stats.endpoints;
      written += r.stats.rulesWritten + r.stats.elementsWritten;
    }
    await this.support.afterSync(input);
    return { servicePorts, endpoints, written };
  }

  private async syncFamily(family: IPFamily, input: SyncInput): Promise<NftRenderResult> {
    const previous = this.state.get(family);
    const full = input.full || previous === undefined;
    // The render takes the previous state over: until this sync succeeds there is none.
    this.state.delete(family);
    let render = renderNftables({
      snapshot: input.snapshot,
      changes: input.changes,
      full,
      ...(previous !== undefined ? { previous } : {}),
      node: this.support.node(),
      options: this.renderOptions(family),
    });
    // The canary runs on syncs with nothing to change at all (the controller's periodic
    // ones), not on every family a change left alone.
    const nothingChanged =
      input.changes.changedServicePorts.size === 0 && input.changes.deletedServicePorts.size === 0;
    if (
      render.payload === "" &&
      nothingChanged &&
      (this.options.canaryCheck ?? true) &&
      !(await this.tableIsThere(family))
    ) {
      // Nothing changed, but someone deleted the table (or flushed the ruleset).
      this.logger.warn({ family }, "nftables table is gone: syncing fully");
      render = renderNftables({
        snapshot: input.snapshot,
        changes: input.changes,
        full: true,
        node: this.support.node(),
        options: this.renderOptions(family),
      });
    }
    const payload = render.payload;
    this.last.set(family, { family, full: render.stats.full, payload, render });
    if (payload !== "") {
      const out = await this.support.runner.exec("nft", ["-f", "-"], payload);
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

  /** Whether the family's table still has its `services` chain (the canary of a sync without changes). */
  private async tableIsThere(family: IPFamily): Promise<boolean> {
    const table = this.options.table ?? NFTABLES_TABLE;
    const out = await this.support.runner.exec("nft", [
      "list",
      "chain",
      nftFamily(family),
      table,
      SERVICES_CHAIN,
    ]);
    return out.code === 0;
  }

  /**
   * Stops what runs in this process: the health-check listeners the proxier created
   * (not a {@link ServiceHealthServer} passed in). The rules stay; see {@link cleanup}.
   */
  async close(): Promise<void> {
    await this.support.close();
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
        const out = await this.support.runner.exec("nft", ["-f", "-"], `add table ${t}\ndelete table ${t}\n`);
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
