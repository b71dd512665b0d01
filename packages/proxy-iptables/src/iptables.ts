/**
 * Thin, typed access to the iptables tools of one IP family: `iptables-restore
 * --noflush` with the payload on stdin, `iptables-save`, and the idempotent
 * `-N` / `-C` / `-I` / `-D` calls for the jump rules from the built-in chains.
 *
 * @module
 */
import type { CommandOutput, CommandRunner, IPFamily } from "@worknode/core";
import {
  KUBE_EXTERNAL_SERVICES,
  KUBE_FIREWALL,
  KUBE_FORWARD,
  KUBE_NODEPORTS,
  KUBE_POSTROUTING,
  KUBE_PROXY_FIREWALL,
  KUBE_SERVICES,
} from "./render/chain-names.js";

/** A table this backend writes to. */
export type Table = "nat" | "filter" | "mangle";

/** A rule in a built-in chain that jumps into one of our chains (kube-proxy's `iptablesJumpChains`). */
export interface JumpRule {
  readonly table: Table;
  /** Built-in chain the rule lives in. */
  readonly from: string;
  /** Our chain it jumps to. */
  readonly to: string;
  /** Matches before the comment. */
  readonly extra: readonly string[];
  readonly comment: string;
}

const NEW = ["-m", "conntrack", "--ctstate", "NEW"] as const;

/** The jump rules, in kube-proxy's order (each is inserted at the top of its chain). */
export const JUMP_RULES: readonly JumpRule[] = [
  {
    table: "filter",
    from: "INPUT",
    to: KUBE_EXTERNAL_SERVICES,
    extra: NEW,
    comment: "kubernetes externally-visible service portals",
  },
  {
    table: "filter",
    from: "FORWARD",
    to: KUBE_EXTERNAL_SERVICES,
    extra: NEW,
    comment: "kubernetes externally-visible service portals",
  },
  {
    table: "filter",
    from: "INPUT",
    to: KUBE_NODEPORTS,
    extra: [],
    comment: "kubernetes health check service ports",
  },
  { table: "filter", from: "FORWARD", to: KUBE_SERVICES, extra: NEW, comment: "kubernetes service portals" },
  { table: "filter", from: "OUTPUT", to: KUBE_SERVICES, extra: NEW, comment: "kubernetes service portals" },
  { table: "filter", from: "FORWARD", to: KUBE_FORWARD, extra: [], comment: "kubernetes forwarding rules" },
  {
    table: "filter",
    from: "INPUT",
    to: KUBE_PROXY_FIREWALL,
    extra: NEW,
    comment: "kubernetes load balancer firewall",
  },
  {
    table: "filter",
    from: "OUTPUT",
    to: KUBE_PROXY_FIREWALL,
    extra: NEW,
    comment: "kubernetes load balancer firewall",
  },
  {
    table: "filter",
    from: "FORWARD",
    to: KUBE_PROXY_FIREWALL,
    extra: NEW,
    comment: "kubernetes load balancer firewall",
  },
  { table: "nat", from: "OUTPUT", to: KUBE_SERVICES, extra: [], comment: "kubernetes service portals" },
  { table: "nat", from: "PREROUTING", to: KUBE_SERVICES, extra: [], comment: "kubernetes service portals" },
  {
    table: "nat",
    from: "POSTROUTING",
    to: KUBE_POSTROUTING,
    extra: [],
    comment: "kubernetes postrouting rules",
  },
];

/**
 * kube-proxy's duplicates of the kubelet's jump rules (`iptablesKubeletJumpChains`):
 * INPUT and OUTPUT jump to `KUBE-FIREWALL`, without a comment. Ensured on full syncs
 * after {@link JUMP_RULES}, so they end up first in their chains.
 */
export const KUBELET_JUMP_RULES: readonly JumpRule[] = [
  { table: "filter", from: "INPUT", to: KUBE_FIREWALL, extra: [], comment: "" },
  { table: "filter", from: "OUTPUT", to: KUBE_FIREWALL, extra: [], comment: "" },
];

/** The rule arguments of a jump rule (after `-t table -X chain`); no comment match when `comment` is empty. */
export function jumpRuleArgs(rule: JumpRule): string[] {
  const comment = rule.comment === "" ? [] : ["-m", "comment", "--comment", rule.comment];
  return [...rule.extra, ...comment, "-j", rule.to];
}

/** Program names of one family. */
export interface IptablesBinaries {
  readonly iptables: string;
  readonly restore: string;
  readonly save: string;
}

/** The binaries of a family: `iptables*` / `ip6tables*`, optionally the `-legacy` variants. */
export function binariesFor(family: IPFamily, legacy = false): IptablesBinaries {
  const base = family === "IPv6" ? "ip6tables" : "iptables";
  const suffix = legacy ? "-legacy" : "";
  return { iptables: `${base}${suffix}`, restore: `${base}${suffix}-restore`, save: `${base}${suffix}-save` };
}

/** A failed iptables call, with what the program said. */
export class IptablesCommandError extends Error {
  constructor(
    readonly command: string,
    readonly args: readonly string[],
    readonly output: CommandOutput,
  ) {
    super(
      `${command} ${args.join(" ")} exited with ${output.code}: ${output.stderr.trim() || output.stdout.trim()}`,
    );
    this.name = "IptablesCommandError";
  }
}

/**
 * The 1-based line of an `iptables-restore` payload its error output blames
 * (`Error occurred at line: N` from iptables-nft, `line N failed` from legacy), if any.
 */
export function parseRestoreErrorLine(stderr: string): number | undefined {
  const m = /Error occurred at line: (\d+)/.exec(stderr) ?? /line (\d+) failed/.exec(stderr);
  return m ? Number(m[1]) : undefined;
}

/** The chain names declared in `iptables-save` output of one table. */
export function chainsInSave(save: string): Set<string> {
  const out = new Set<string>();
  for (const line of save.split("\n")) {
    if (!line.startsWith(":")) continue;
    const end = line.indexOf(" ");
    out.add(end < 0 ? line.slice(1) : line.slice(1, end));
  }
  return out;
}

/** The iptables tools of one family, through a {@link CommandRunner}. */
export class IptablesClient {
  readonly binaries: IptablesBinaries;

  constructor(
    readonly family: IPFamily,
    private readonly runner: CommandRunner,
    options: { readonly legacy?: boolean } = {},
  ) {
    this.binaries = binariesFor(family, options.legacy);
  }

  /** Runs `iptables -w 5 <args>`. */
  run(args: readonly string[]): Promise<CommandOutput> {
    return this.runner.exec(this.binaries.iptables, ["-w", "5", ...args]);
  }

  /** `iptables-restore -w 5 --noflush --counters` with `payload` on stdin. */
  restore(payload: string): Promise<CommandOutput> {
    return this.runner.exec(this.binaries.restore, ["-w", "5", "--noflush", "--counters"], payload);
  }

  /** `iptables-save -t <table>`; throws {@link IptablesCommandError} on failure. */
  async save(table: Table): Promise<string> {
    const args = ["-t", table];
    const out = await this.runner.exec(this.binaries.save, args);
    if (out.code !== 0) throw new IptablesCommandError(this.binaries.save, args, out);
    return out.stdout;
  }

  /** Whether a chain exists in a table. */
  async hasChain(table: Table, chain: string): Promise<boolean> {
    return (await this.run(["-t", table, "-S", chain])).code === 0;
  }

  /** Creates a chain unless it exists. @returns true when it was created */
  async ensureChain(table: Table, chain: string): Promise<boolean> {
    const args = ["-t", table, "-N", chain];
    const out = await this.run(args);
    if (out.code === 0) return true;
    if (/exists/i.test(out.stderr)) return false;
    throw new IptablesCommandError(this.binaries.iptables, args, out);
  }

  /** Inserts a rule at the top of a chain unless an identical rule is present (`-C` then `-I`). @returns true when inserted */
  async ensureRuleFirst(table: Table, chain: string, rule: readonly string[]): Promise<boolean> {
    const check = await this.run(["-t", table, "-C", chain, ...rule]);
    if (check.code === 0) return false;
    const args = ["-t", table, "-I", chain, ...rule];
    const out = await this.run(args);
    if (out.code !== 0) throw new IptablesCommandError(this.binaries.iptables, args, out);
    return true;
  }

  /** Deletes every copy of a rule from a chain. @returns how many were deleted */
  async deleteRule(table: Table, chain: string, rule: readonly string[]): Promise<number> {
    let n = 0;
    for (;;) {
      const out = await this.run(["-t", table, "-D", chain, ...rule]);
      if (out.code !== 0) return n;
      n++;
    }
  }
}
