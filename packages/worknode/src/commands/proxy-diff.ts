/**
 * `worknode proxy plan --diff`, the pure part: reading `iptables-save` output into
 * chain → rule lines, keeping what the proxy owns (its KUBE-* chains and its jump
 * rules in the built-in chains), and a unified-style diff per chain.
 *
 * Both sides are `iptables-save` output (the planned side comes from a scratch
 * network namespace the payload was applied to), so rules compare as the kernel
 * prints them, with no guessing at how iptables canonicalises a rule.
 *
 * @module
 */
import {
  isServiceChainName,
  JUMP_RULES,
  KUBE_EXTERNAL_SERVICES,
  KUBE_FORWARD,
  KUBE_MARK_MASQ,
  KUBE_NODEPORTS,
  KUBE_POSTROUTING,
  KUBE_PROXY_CANARY,
  KUBE_PROXY_FIREWALL,
  KUBE_SERVICES,
} from "@worknode/proxy-iptables";

/** Table → chain → rule lines (`-A CHAIN …`), in file order. Declared chains without rules map to []. */
export type SavedRules = Map<string, Map<string, string[]>>;

/**
 * Parses `iptables-save` output (or an `iptables-restore` payload's `*table`, `:chain`
 * and `-A` lines). Comments, counters and `COMMIT` are skipped; `-X chain` removes a
 * declared chain.
 */
export function parseIptablesSave(text: string): SavedRules {
  const out: SavedRules = new Map();
  let table: Map<string, string[]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (line === "" || line.startsWith("#") || line === "COMMIT") continue;
    if (line.startsWith("*")) {
      const name = line.slice(1);
      table = out.get(name) ?? new Map<string, string[]>();
      out.set(name, table);
      continue;
    }
    if (!table) continue;
    if (line.startsWith(":")) {
      const chain = line.slice(1).split(" ")[0] ?? "";
      if (!table.has(chain)) table.set(chain, []);
      continue;
    }
    const m = /^-([AX]) (\S+)/.exec(line);
    if (!m) continue;
    const chain = m[2]!;
    if (m[1] === "X") {
      table.delete(chain);
      continue;
    }
    const rules = table.get(chain) ?? [];
    rules.push(line);
    table.set(chain, rules);
  }
  return out;
}

const TOP_LEVEL: Readonly<Record<string, readonly string[]>> = {
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

/** Built-in chains holding the proxy's jump rules, per table. */
function jumpSources(table: string): Set<string> {
  return new Set(JUMP_RULES.filter((r) => r.table === table).map((r) => r.from));
}

/** Whether the proxy owns a chain of a table (its top-level, per-service and canary chains). */
export function isOwnedChain(table: string, chain: string): boolean {
  return (TOP_LEVEL[table] ?? []).includes(chain) || (table === "nat" && isServiceChainName(chain));
}

/**
 * What of a save the proxy owns: its own chains with all their rules, and in the
 * built-in chains only the rules jumping to one of its chains (sorted: they are
 * inserted one by one, so their order says nothing about the plan).
 */
export function ownedRules(saved: SavedRules): SavedRules {
  const out: SavedRules = new Map();
  for (const [table, chains] of saved) {
    const sources = jumpSources(table);
    const kept = new Map<string, string[]>();
    for (const [chain, rules] of chains) {
      if (isOwnedChain(table, chain)) {
        kept.set(chain, [...rules]);
      } else if (sources.has(chain)) {
        const jumps = rules.filter((r) => {
          const target = /(?:^| )-j (\S+)/.exec(r)?.[1];
          return target !== undefined && isOwnedChain(table, target);
        });
        kept.set(chain, jumps.sort());
      }
    }
    out.set(table, kept);
  }
  return out;
}

/** One line of a chain diff. */
export interface DiffLine {
  readonly op: "+" | "-";
  readonly text: string;
}

/** The difference in one chain. */
export interface ChainDiff {
  readonly table: string;
  readonly chain: string;
  /** `added`: only planned; `removed`: only on the node (a full sync deletes it); `changed`: rules differ. */
  readonly status: "added" | "removed" | "changed";
  readonly lines: readonly DiffLine[];
}

/** Above this many cells (n × m) the middle of a chain is shown as removed + added instead of an LCS. */
const LCS_LIMIT = 4_000_000;

/** An edit script from `a` to `b`: common prefix and suffix, then an LCS of the middle. */
export function diffLines(a: readonly string[], b: readonly string[]): DiffLine[] {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const midA = a.slice(start, endA);
  const midB = b.slice(start, endB);
  const n = midA.length;
  const m = midB.length;
  if (n === 0) return midB.map((text) => ({ op: "+" as const, text }));
  if (m === 0) return midA.map((text) => ({ op: "-" as const, text }));
  if (n * m > LCS_LIMIT) {
    return [
      ...midA.map((text) => ({ op: "-" as const, text })),
      ...midB.map((text) => ({ op: "+" as const, text })),
    ];
  }
  // lcs[i][j]: LCS length of midA[i..] and midB[j..], as one flat array.
  const w = m + 1;
  const lcs = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * w + j] =
        midA[i] === midB[j]
          ? lcs[(i + 1) * w + j + 1]! + 1
          : Math.max(lcs[(i + 1) * w + j]!, lcs[i * w + j + 1]!);
    }
  }
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (midA[i] === midB[j]) {
      i++;
      j++;
    } else if (lcs[(i + 1) * w + j]! >= lcs[i * w + j + 1]!) {
      out.push({ op: "-", text: midA[i++]! });
    } else {
      out.push({ op: "+", text: midB[j++]! });
    }
  }
  while (i < n) out.push({ op: "-", text: midA[i++]! });
  while (j < m) out.push({ op: "+", text: midB[j++]! });
  return out;
}

const TABLE_ORDER = ["filter", "nat", "mangle"];

/**
 * The per-chain differences between the node's owned rules and the planned ones,
 * tables in filter, nat, mangle order; chains in planned order, then removed chains.
 */
export function diffOwnedRules(current: SavedRules, planned: SavedRules): ChainDiff[] {
  const tables = [...new Set([...TABLE_ORDER, ...current.keys(), ...planned.keys()])];
  const out: ChainDiff[] = [];
  for (const table of tables) {
    const cur = current.get(table) ?? new Map<string, string[]>();
    const plan = planned.get(table) ?? new Map<string, string[]>();
    for (const [chain, rules] of plan) {
      const before = cur.get(chain);
      if (before === undefined) {
        if (rules.length === 0 && !isOwnedChain(table, chain)) continue; // a built-in chain without our jumps
        out.push({ table, chain, status: "added", lines: rules.map((text) => ({ op: "+", text })) });
        continue;
      }
      const lines = diffLines(before, rules);
      if (lines.length > 0) out.push({ table, chain, status: "changed", lines });
    }
    for (const chain of [...cur.keys()].sort()) {
      if (plan.has(chain)) continue;
      const rules = cur.get(chain) ?? [];
      if (!isOwnedChain(table, chain)) {
        // Jump rules in a built-in chain the plan does not touch in this table.
        if (rules.length > 0) {
          out.push({ table, chain, status: "changed", lines: rules.map((text) => ({ op: "-", text })) });
        }
        continue;
      }
      out.push({ table, chain, status: "removed", lines: rules.map((text) => ({ op: "-", text })) });
    }
  }
  return out;
}

/** The words of a {@link formatDiffs} output: what its objects and lines are called. */
export interface DiffWording {
  /** The node side of the `---` header, e.g. `node (IPv4, iptables-save)`. */
  readonly nodeSide: string;
  /** Notes after a new / deleted object's name, e.g. ` (new chain)`. */
  readonly added: string;
  readonly removed: string;
  /** Singular names of an object and of a line in the summary, e.g. `chain` and `rule`. */
  readonly object: string;
  readonly line: string;
}

/**
 * Formats object diffs unified-style: a `---`/`+++` header naming both sides, then per
 * object `@@ table NAME<note> @@` and its `-`/`+` lines, then a summary line
 * (`# <family>: no differences` when there are none).
 */
export function formatDiffs(diffs: readonly ChainDiff[], family: string, words: DiffWording): string {
  const lines = [`--- ${words.nodeSide}`, `+++ plan (${family})`];
  let added = 0;
  let removed = 0;
  for (const d of diffs) {
    const note = d.status === "added" ? words.added : d.status === "removed" ? words.removed : "";
    lines.push(`@@ ${d.table} ${d.chain}${note} @@`);
    for (const l of d.lines) {
      lines.push(`${l.op}${l.text}`);
      if (l.op === "+") added++;
      else removed++;
    }
  }
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  lines.push(
    diffs.length === 0
      ? `# ${family}: no differences`
      : `# ${family}: ${plural(diffs.length, words.object)} differ: ${plural(added, words.line)} to add, ${removed} to remove`,
  );
  return `${lines.join("\n")}\n`;
}

/**
 * Formats iptables chain diffs unified-style ({@link formatDiffs}): per chain
 * `@@ table CHAIN (new chain|deleted chain) @@` and its `-`/`+` rule lines.
 */
export function formatChainDiffs(diffs: readonly ChainDiff[], family: string, nodeLabel = "node"): string {
  return formatDiffs(diffs, family, {
    nodeSide: `${nodeLabel} (${family}, iptables-save)`,
    added: " (new chain)",
    removed: " (deleted chain)",
    object: "chain",
    line: "rule",
  });
}

/**
 * Adds to a `--noflush` payload (filter and nat sections) what a full sync writes
 * besides it: the canary chains and the jump rules from the built-in chains, so that
 * applying the result to an empty namespace gives everything a sync leaves behind.
 */
export function withBaseRules(payload: string): string {
  const declarations = new Map<string, string[]>();
  const rules = new Map<string, string[]>();
  const add = (to: Map<string, string[]>, table: string, line: string) => {
    const l = to.get(table) ?? [];
    l.push(line);
    to.set(table, l);
  };
  for (const table of ["filter", "nat", "mangle"]) add(declarations, table, `:${KUBE_PROXY_CANARY} - [0:0]`);
  for (const r of JUMP_RULES) {
    const comment = r.comment.includes(" ") ? `"${r.comment}"` : r.comment;
    add(
      rules,
      r.table,
      `-A ${r.from} ${[...r.extra, "-m", "comment", "--comment", comment].join(" ")} -j ${r.to}`,
    );
  }
  const out: string[] = [];
  const seen = new Set<string>();
  let table: string | undefined;
  for (const line of payload.split("\n")) {
    if (line === "") continue;
    if (line === "COMMIT" && table !== undefined) out.push(...(rules.get(table) ?? []));
    out.push(line);
    if (line.startsWith("*")) {
      table = line.slice(1);
      seen.add(table);
      out.push(...(declarations.get(table) ?? []));
    }
  }
  for (const t of ["filter", "nat", "mangle"]) {
    if (seen.has(t)) continue;
    out.push(`*${t}`, ...(declarations.get(t) ?? []), ...(rules.get(t) ?? []), "COMMIT");
  }
  return `${out.join("\n")}\n`;
}
