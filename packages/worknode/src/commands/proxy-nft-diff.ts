/**
 * `worknode proxy plan --diff` in nftables mode, the pure part: reading
 * `nft list table <family> kube-proxy` output into its objects (chains, sets, maps and
 * the table's own attributes) and diffing them object by object.
 *
 * Both sides are `nft list table` output (the planned side comes from a scratch network
 * namespace the payload was applied to), so rules compare as the kernel and nft print
 * them. Chains are diffed line by line in order; set and map elements as unordered sets
 * (nft prints them in no guaranteed order). Elements of `dynamic` sets (ClientIP
 * affinity) are packet-path state, not rules, and are left out, as are `expires` timers.
 *
 * @module
 */
import { type ChainDiff, type DiffLine, diffLines, formatDiffs } from "./proxy-diff.js";

/** One object of an nftables table as `nft list table` prints it. */
export interface NftObject {
  /** `chain`, `set`, `map`, … or `table` for the table's own attributes. */
  readonly kind: string;
  readonly name: string;
  /** Its lines other than elements, trimmed, in printed order. */
  readonly lines: readonly string[];
  /** Its elements (sets and maps), each as printed, sorted. */
  readonly elements: readonly string[];
}

/** Object key (`chain services`, `map service-ips`, `table`) → object, in printed order. */
export type NftTable = Map<string, NftObject>;

/** The key of the table's own attributes (its comment, flags). */
export const NFT_TABLE_ATTRIBUTES = "table";

/** Splits an `elements = { … }` body into its elements (commas between elements, none inside). */
function splitElements(body: string): string[] {
  return body
    .split(",")
    .map((e) => e.replace(/\s+/g, " ").trim())
    .map((e) => e.replace(/ expires \S+/g, ""))
    .filter((e) => e !== "");
}

/**
 * Parses the output of `nft list table <family> <name>` (empty text: no table).
 * Lines outside the first `table … {` block are ignored.
 */
export function parseNftTable(text: string): NftTable {
  const out: NftTable = new Map();
  const tableAttributes: string[] = [];
  let inTable = false;
  let current: { kind: string; name: string; lines: string[]; elements: string[] } | undefined;
  let elementBuffer: string | undefined;
  const finish = () => {
    if (!current) return;
    const dynamic = current.lines.some((l) => /^flags\b.*\bdynamic\b/.test(l));
    out.set(`${current.kind} ${current.name}`, {
      kind: current.kind,
      name: current.name,
      lines: current.lines,
      elements: dynamic ? [] : [...current.elements].sort(),
    });
    current = undefined;
  };
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "") continue;
    if (!inTable) {
      if (/^table \S+ \S+ \{/.test(line)) inTable = true;
      continue;
    }
    if (elementBuffer !== undefined) {
      elementBuffer += ` ${line}`;
      if (line.endsWith("}")) {
        current?.elements.push(...splitElements(elementBuffer.replace(/\}$/, "")));
        elementBuffer = undefined;
      }
      continue;
    }
    if (current) {
      if (line === "}") {
        finish();
        continue;
      }
      const m = /^elements = \{(.*)$/.exec(line);
      if (m) {
        const rest = m[1]!;
        if (rest.trimEnd().endsWith("}")) current.elements.push(...splitElements(rest.replace(/\}\s*$/, "")));
        else elementBuffer = rest;
        continue;
      }
      // Counter values are packet-path state (nft -s leaves them out already).
      current.lines.push(line.replace(/packets \d+ bytes \d+/g, "packets 0 bytes 0"));
      continue;
    }
    if (line === "}") break; // end of the table
    const open = /^(\S+) (\S+) \{$/.exec(line);
    if (open) {
      current = { kind: open[1]!, name: open[2]!, lines: [], elements: [] };
      continue;
    }
    tableAttributes.push(line);
  }
  finish();
  if (inTable) {
    // The table's attributes first, so that they are reported first.
    const withAttributes: NftTable = new Map([
      [NFT_TABLE_ATTRIBUTES, { kind: "table", name: "", lines: tableAttributes, elements: [] }],
    ]);
    for (const [k, v] of out) withAttributes.set(k, v);
    return withAttributes;
  }
  return out;
}

function objectLines(o: NftObject): string[] {
  return [...o.lines, ...o.elements.map((e) => `element ${e}`)];
}

function elementDiff(before: readonly string[], after: readonly string[]): DiffLine[] {
  const a = new Set(before);
  const b = new Set(after);
  const out: DiffLine[] = [];
  for (const e of before) if (!b.has(e)) out.push({ op: "-", text: `element ${e}` });
  for (const e of after) if (!a.has(e)) out.push({ op: "+", text: `element ${e}` });
  return out;
}

/**
 * The per-object differences between the node's table and the planned one: objects in
 * planned order, then those only on the node (a full sync deletes them), sorted.
 * Reported as {@link ChainDiff}s whose `table` is `tableLabel` and whose `chain` is the
 * object key (`chain services`, `map service-ips`, `table`).
 */
export function diffNftTables(current: NftTable, planned: NftTable, tableLabel: string): ChainDiff[] {
  const out: ChainDiff[] = [];
  for (const [key, plan] of planned) {
    const before = current.get(key);
    if (before === undefined) {
      const lines = objectLines(plan);
      if (key === NFT_TABLE_ATTRIBUTES && lines.length === 0) continue;
      out.push({
        table: tableLabel,
        chain: key,
        status: key === NFT_TABLE_ATTRIBUTES ? "changed" : "added",
        lines: lines.map((text) => ({ op: "+", text })),
      });
      continue;
    }
    const lines = [...diffLines(before.lines, plan.lines), ...elementDiff(before.elements, plan.elements)];
    if (lines.length > 0) out.push({ table: tableLabel, chain: key, status: "changed", lines });
  }
  for (const key of [...current.keys()].sort()) {
    if (planned.has(key)) continue;
    const before = current.get(key)!;
    const lines = objectLines(before).map((text): DiffLine => ({ op: "-", text }));
    if (key === NFT_TABLE_ATTRIBUTES) {
      if (lines.length > 0) out.push({ table: tableLabel, chain: key, status: "changed", lines });
      continue;
    }
    out.push({ table: tableLabel, chain: key, status: "removed", lines });
  }
  return out;
}

/**
 * Formats nftables object diffs unified-style ({@link formatDiffs}): per object
 * `@@ <family> kube-proxy <kind> <name> (new|deleted) @@` and its `-`/`+` lines.
 */
export function formatNftDiffs(diffs: readonly ChainDiff[], family: string, source: string): string {
  return formatDiffs(diffs, family, {
    nodeSide: `node (${family}, ${source})`,
    added: " (new)",
    removed: " (deleted)",
    object: "object",
    line: "line",
  });
}
