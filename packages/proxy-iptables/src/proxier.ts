/**
 * {@link IptablesProxier}: the iptables backend. Renders with {@link renderRules}
 * and applies with `iptables-restore --noflush` (`ip6tables-restore` for IPv6).
 *
 * @module
 */
import {
  type CommandRunner,
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

import {
  chainsInSave,
  IptablesClient,
  JUMP_RULES,
  jumpRuleArgs,
  KUBELET_JUMP_RULES,
  parseRestoreErrorLine,
  type Table,
} from "./iptables.js";
import {
  isServiceChainName,
  KUBE_EXTERNAL_SERVICES,
  KUBE_FIREWALL,
  KUBE_FORWARD,
  KUBE_KUBELET_CANARY,
  KUBE_MARK_MASQ,
  KUBE_NODEPORTS,
  KUBE_POSTROUTING,
  KUBE_PROXY_CANARY,
  KUBE_PROXY_FIREWALL,
  KUBE_SERVICES,
} from "./render/chain-names.js";
import {
  localhostNodePortsActive,
  type RenderOptions,
  type RenderResult,
  renderRules,
} from "./render/render.js";

/** The sysctl localhost node ports need (kube-proxy sets it when they are enabled). */
export const ROUTE_LOCALNET_SYSCTL = "net.ipv4.conf.all.route_localnet";

/**
 * Options of an {@link IptablesProxier}: the node and kube-proxy's common settings
 * (`masqueradeBit` is `--iptables-masquerade-bit`; `families` IPv4 uses iptables, IPv6
 * ip6tables), and the iptables mode's own.
 */
export interface IptablesProxierOptions extends ProxierNodeOptions {
  /** `--random-fully` on the MASQUERADE rule (default true: every iptables since 1.6.2 has it). */
  readonly randomFully?: boolean;
  /** Leave out the INVALID-drop rule (`nf_conntrack_tcp_be_liberal` is set); default false. */
  readonly conntrackTCPLiberal?: boolean;
  /**
   * `--iptables-localhost-nodeports` (default true, as kube-proxy): node ports also answer
   * on 127.0.0.1 (IPv4 only, and only when `nodePortAddresses` is unset or includes a
   * loopback address). Full syncs then set `net.ipv4.conf.all.route_localnet=1` and the
   * payload carries the `KUBE-FIREWALL` rule dropping martian packets to 127.0.0.0/8.
   */
  readonly localhostNodePorts?: boolean;
  /** Use the `iptables-legacy*` programs instead of the default (`iptables*`). */
  readonly legacy?: boolean;
  /**
   * Before a partial sync, check that the `KUBE-PROXY-CANARY` chain of the mangle table
   * still exists and sync fully when it does not (someone flushed the tables); default true.
   */
  readonly canaryCheck?: boolean;
}

interface FamilyState {
  /** Per-service nat chains in the kernel after the last successful sync. */
  activeChains: ReadonlySet<string>;
}

/** What one family's last sync sent. */
export interface AppliedPayload {
  readonly family: IPFamily;
  readonly full: boolean;
  /** The exact `iptables-restore` input (filter then nat). */
  readonly payload: string;
  readonly render: RenderResult;
}

const OWNED_CHAINS: Readonly<Record<Table, readonly string[]>> = {
  nat: [KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ, KUBE_PROXY_CANARY],
  filter: [
    KUBE_SERVICES,
    KUBE_EXTERNAL_SERVICES,
    KUBE_FORWARD,
    KUBE_NODEPORTS,
    KUBE_PROXY_FIREWALL,
    KUBE_PROXY_CANARY,
  ],
  mangle: [KUBE_PROXY_CANARY],
};

/**
 * The iptables service-proxy backend, a drop-in for kube-proxy's iptables mode.
 *
 * - **Full sync** (first sync, after failures, when the controller asks, or when the
 *   canary chain vanished): makes sure the canary chains, our top-level chains and the
 *   jump rules from the built-in chains exist (`-N`, `-C`, `-I`: idempotent), reads the
 *   nat table's chains with `iptables-save`, and restores a payload rewriting every chain
 *   and deleting stale per-service chains (left over from an earlier run too).
 * - **Partial sync**: restores a payload rewriting the top-level chains and only the
 *   per-service chains of changed service ports, deleting the chains they no longer use.
 * - Each family is one `iptables-restore --noflush --counters` call with filter and nat:
 *   the kernel applies each table atomically, so a failed restore leaves the previous
 *   rules in place. The failure is thrown as a {@link ProxySyncError} with the failing
 *   payload line; the next sync of that family is full.
 * - After a successful sync, stale UDP/SCTP conntrack entries (`changes.staleConntrack`)
 *   are deleted with `conntrack -D` (failures are logged, not thrown).
 */
export class IptablesProxier implements Proxier {
  /** `--proxy-mode` name. */
  readonly mode = "iptables";
  /** Backend metrics (kube-proxy's iptables metric names). */
  readonly metrics: Registry;

  private readonly support: ProxierSupport;
  private readonly clients: ReadonlyMap<IPFamily, IptablesClient>;
  private readonly state = new Map<IPFamily, FamilyState>();
  private readonly last = new Map<IPFamily, AppliedPayload>();
  private readonly rulesTotal: Gauge<"table" | "ip_family">;
  private readonly rulesLast: Gauge<"table" | "ip_family">;
  private readonly restoreFailures: Counter<"ip_family">;
  private readonly partialRestoreFailures: Counter<"ip_family">;

  constructor(private readonly options: IptablesProxierOptions) {
    this.support = new ProxierSupport(options);
    const clients = new Map<IPFamily, IptablesClient>();
    for (const f of this.support.families)
      clients.set(f, new IptablesClient(f, this.support.runner, { legacy: options.legacy ?? false }));
    this.clients = clients;
    this.metrics = new Registry();
    const registers = [this.metrics];
    this.rulesTotal = new Gauge({
      name: "kubeproxy_sync_proxy_rules_iptables_total",
      help: "Total number of iptables rules owned by kube-proxy (nat: as of the last full sync)",
      labelNames: ["table", "ip_family"],
      registers,
    });
    this.rulesLast = new Gauge({
      name: "kubeproxy_sync_proxy_rules_iptables_last",
      help: "Number of iptables rules written by kube-proxy in the last sync",
      labelNames: ["table", "ip_family"],
      registers,
    });
    this.restoreFailures = new Counter({
      name: "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
      help: "Cumulative proxy iptables restore failures",
      labelNames: ["ip_family"],
      registers,
    });
    this.partialRestoreFailures = new Counter({
      name: "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total",
      help: "Cumulative proxy iptables partial restore failures",
      labelNames: ["ip_family"],
      registers,
    });
  }

  /** The health-check node port server, when {@link ProxierNodeOptions.healthCheck} is set. */
  get serviceHealth(): ServiceHealthServer | undefined {
    return this.support.serviceHealth;
  }

  private get runner(): CommandRunner {
    return this.support.runner;
  }

  private get logger(): Logger {
    return this.support.logger;
  }

  /** The families this proxier programs. */
  get families(): readonly IPFamily[] {
    return [...this.clients.keys()];
  }

  /** What the last sync of `family` sent to `iptables-restore` (whether or not it succeeded). */
  lastApplied(family: IPFamily = "IPv4"): AppliedPayload | undefined {
    return this.last.get(family);
  }

  /** The render options of one family. */
  renderOptions(family: IPFamily): RenderOptions {
    const o = this.options;
    const clusterCIDR = this.support.clusterCIDR(family);
    return {
      family,
      masqueradeAll: o.masqueradeAll ?? false,
      randomFully: o.randomFully ?? true,
      ...(clusterCIDR !== undefined ? { clusterCIDR } : {}),
      ...(o.nodePortAddresses !== undefined ? { nodePortAddresses: o.nodePortAddresses } : {}),
      ...(o.masqueradeBit !== undefined ? { masqueradeBit: o.masqueradeBit } : {}),
      ...(o.conntrackTCPLiberal !== undefined ? { conntrackTCPLiberal: o.conntrackTCPLiberal } : {}),
      localhostNodePorts: o.localhostNodePorts ?? true,
    };
  }

  /**
   * Renders what a full sync of `family` would write, without touching the node
   * (`worknode proxy plan`). `previousChains` defaults to none (nothing is deleted).
   */
  plan(
    input: Pick<SyncInput, "snapshot" | "changes">,
    family: IPFamily = "IPv4",
    previousChains?: ReadonlySet<string>,
  ): RenderResult {
    return renderRules({
      snapshot: input.snapshot,
      changes: input.changes,
      full: true,
      ...(previousChains !== undefined ? { previousChains } : {}),
      node: this.support.node(),
      options: this.renderOptions(family),
    });
  }

  /** The node labels the rules are rendered with (the option, or what {@link setNodeLabels} set). */
  get currentNodeLabels(): Readonly<Record<string, string>> | undefined {
    return this.support.nodeLabels;
  }

  /**
   * Node-aware proxying: the labels of this node's Node object changed (its zone drives
   * topology hints and `trafficDistribution` unless the `zone` option is set). As
   * kube-proxy's `OnNodeUpdate`, the next sync of every family is full. Equal labels
   * change nothing.
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
    for (const [family, client] of this.clients) {
      const r = await this.syncFamily(family, client, input);
      servicePorts += r.stats.servicePorts;
      endpoints += r.stats.endpoints;
      written += r.stats.natRules + r.stats.filterRules;
    }
    await this.support.afterSync(input);
    return { servicePorts, endpoints, written };
  }

  /**
   * Stops what runs in this process: the health-check listeners the proxier created
   * (not a {@link ServiceHealthServer} passed in). The rules stay; see {@link cleanup}.
   */
  async close(): Promise<void> {
    await this.support.close();
  }

  private async syncFamily(
    family: IPFamily,
    client: IptablesClient,
    input: SyncInput,
  ): Promise<RenderResult> {
    const state = this.state.get(family);
    let full = input.full || state === undefined;
    if (
      !full &&
      (this.options.canaryCheck ?? true) &&
      !(await client.hasChain("mangle", KUBE_PROXY_CANARY))
    ) {
      this.logger.warn({ family }, "iptables canary chain is gone (tables flushed?): syncing fully");
      full = true;
    }
    let previousChains: ReadonlySet<string>;
    try {
      if (full) {
        await this.ensureBase(client, family);
        previousChains = chainsInSave(await client.save("nat"));
      } else {
        previousChains = state!.activeChains;
      }
    } catch (err) {
      this.state.delete(family);
      throw new ProxySyncError(this.mode, `${family}: preparing the tables failed: ${describeError(err)}`, {
        cause: err,
      });
    }

    const render = renderRules({
      snapshot: input.snapshot,
      changes: input.changes,
      full,
      previousChains,
      node: this.support.node(),
      options: this.renderOptions(family),
    });
    const payload = render.filter + render.nat;
    this.last.set(family, { family, full, payload, render });
    const out = await client.restore(payload);
    if (out.code !== 0) {
      this.state.delete(family);
      this.restoreFailures.inc({ ip_family: family });
      if (!full) this.partialRestoreFailures.inc({ ip_family: family });
      const lineNo = parseRestoreErrorLine(out.stderr);
      const failingLine = lineNo !== undefined ? payload.split("\n")[lineNo - 1] : undefined;
      const detail = out.stderr.trim().split("\n")[0] ?? "";
      this.logger.error(
        { family, full, line: lineNo, failingLine, stderr: out.stderr },
        "iptables-restore failed",
      );
      throw new ProxySyncError(
        this.mode,
        `${client.binaries.restore} failed (exit ${out.code})${lineNo !== undefined ? ` at line ${lineNo}` : ""}: ${detail}`,
        failingLine !== undefined ? { failingLine } : {},
      );
    }
    this.state.set(family, { activeChains: render.activeChains });
    this.rulesLast.set({ table: "nat", ip_family: family }, render.stats.natRules);
    this.rulesLast.set({ table: "filter", ip_family: family }, render.stats.filterRules);
    this.rulesTotal.set({ table: "filter", ip_family: family }, render.stats.filterRules);
    if (full) this.rulesTotal.set({ table: "nat", ip_family: family }, render.stats.natRules);
    this.logger.debug({ family, full, ...render.stats }, "iptables rules synced");
    return render;
  }

  /**
   * Canary chains, our top-level chains, the jump rules from the built-in chains (then
   * kube-proxy's copies of the kubelet's KUBE-FIREWALL jumps), and `route_localnet=1`
   * when localhost node ports are in effect for the family.
   */
  private async ensureBase(client: IptablesClient, family: IPFamily): Promise<void> {
    for (const table of ["mangle", "nat", "filter"] as const)
      await client.ensureChain(table, KUBE_PROXY_CANARY);
    for (const rule of [...JUMP_RULES, ...KUBELET_JUMP_RULES]) {
      await client.ensureChain(rule.table, rule.to);
      await client.ensureRuleFirst(rule.table, rule.from, jumpRuleArgs(rule));
    }
    if (localhostNodePortsActive(this.renderOptions(family))) {
      const out = await this.runner.exec("sysctl", ["-w", `${ROUTE_LOCALNET_SYSCTL}=1`]);
      if (out.code !== 0) {
        throw new ProxySyncError(
          this.mode,
          `setting ${ROUTE_LOCALNET_SYSCTL}=1 for localhost node ports failed: ${out.stderr.trim()} (disable localhostNodePorts / --iptables-localhost-nodeports=false to run without it)`,
        );
      }
    }
  }

  /**
   * Removes every jump rule and KUBE-* chain this backend writes (top-level, per-service
   * and canary chains), in every family; idempotent. Throws a {@link ProxySyncError}
   * listing what failed, after trying everything.
   *
   * `KUBE-FIREWALL` and its jumps are removed too, unless the filter table has the
   * kubelet's `KUBE-KUBELET-CANARY` chain: then a kubelet that manages iptables shares
   * the chain, and it is left to it (kube-proxy never removes it).
   */
  async cleanup(): Promise<void> {
    const errors: string[] = [];
    for (const [family, client] of this.clients) {
      this.state.delete(family);
      let kubeletOwnsFirewall = false;
      try {
        kubeletOwnsFirewall = chainsInSave(await client.save("filter")).has(KUBE_KUBELET_CANARY);
      } catch (err) {
        errors.push(`${family} filter: ${describeError(err)}`);
      }
      const jumps = kubeletOwnsFirewall ? JUMP_RULES : [...JUMP_RULES, ...KUBELET_JUMP_RULES];
      for (const rule of jumps) {
        try {
          await client.deleteRule(rule.table, rule.from, jumpRuleArgs(rule));
        } catch (err) {
          errors.push(`${family} ${rule.table} ${rule.from}: ${describeError(err)}`);
        }
      }
      for (const table of ["nat", "filter", "mangle"] as const) {
        try {
          const existing = chainsInSave(await client.save(table));
          const owned = [...existing].filter(
            (c) =>
              OWNED_CHAINS[table].includes(c) ||
              (table === "nat" && isServiceChainName(c)) ||
              (table === "filter" && c === KUBE_FIREWALL && !kubeletOwnsFirewall),
          );
          if (owned.length === 0) continue;
          const payload = `*${table}\n${owned.map((c) => `:${c} - [0:0]\n`).join("")}${owned.map((c) => `-X ${c}\n`).join("")}COMMIT\n`;
          const out = await client.restore(payload);
          if (out.code !== 0) errors.push(`${family} ${table}: ${out.stderr.trim()}`);
        } catch (err) {
          errors.push(`${family} ${table}: ${describeError(err)}`);
        }
      }
    }
    if (errors.length > 0) throw new ProxySyncError(this.mode, `cleanup incomplete:\n${errors.join("\n")}`);
  }
}
