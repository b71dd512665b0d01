/**
 * Pure planning of the iptables clean-up after a CNI bridge network: the
 * per-pod masquerade (`CNI-…`) and hostPort DNAT (`CNI-DN-…`) chains the
 * bridge and portmap plugins leave behind when pods were not stopped, and the
 * shared `CNI-HOSTPORT-*` chains when the lab created them.
 *
 * @module
 */

/** The shared chains of the CNI portmap plugin (nat table). */
export const CNI_HOSTPORT_CHAINS: readonly string[] = [
  "CNI-HOSTPORT-DNAT",
  "CNI-HOSTPORT-MASQ",
  "CNI-HOSTPORT-SETMARK",
];

interface SaveRule {
  readonly chain: string;
  readonly line: string;
  readonly target: string | undefined;
}

function parseNatRules(saveText: string): { chains: Set<string>; rules: SaveRule[] } {
  const chains = new Set<string>();
  const rules: SaveRule[] = [];
  let inNat = false;
  for (const raw of saveText.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("*")) {
      inNat = line === "*nat";
      continue;
    }
    if (!inNat) continue;
    if (line.startsWith(":")) {
      const name = line.slice(1).split(/\s+/)[0];
      if (name) chains.add(name);
    } else if (line.startsWith("-A ")) {
      const chain = line.split(/\s+/)[1] ?? "";
      const m = / -[jg] (\S+)/.exec(line);
      rules.push({ chain, line, target: m?.[1] });
    }
  }
  return { chains, rules };
}

/** True when an `iptables-save` rule line carries the CNI comment of network `name`. */
export function isRuleOfCniNetwork(line: string, networkName: string): boolean {
  return line.includes(`name: \\"${networkName}\\"`);
}

/**
 * Builds an `iptables-restore --noflush` payload removing what network `networkName` left in the
 * nat table: rules commented with its name (and the per-pod chains they jump to); and, when
 * `removeHostportChains` is set and no other network still uses them, the portmap plugin's shared
 * `CNI-HOSTPORT-*` chains and the jumps to them.
 *
 * @param saveText output of `iptables-save -t nat`
 * @returns the payload, or `""` when there is nothing to remove
 */
export function planCniNatCleanup(
  saveText: string,
  networkName: string,
  removeHostportChains: boolean,
): string {
  const { chains, rules } = parseNatRules(saveText);
  const deletes: string[] = [];
  const dropChains = new Set<string>();
  const ours = rules.filter((r) => isRuleOfCniNetwork(r.line, networkName));
  for (const r of ours) {
    deletes.push(`-D ${r.line.slice(3)}`);
    if (r.target?.startsWith("CNI-") && !CNI_HOSTPORT_CHAINS.includes(r.target) && chains.has(r.target)) {
      dropChains.add(r.target);
    }
  }
  // rules inside the dropped chains do not need deleting one by one: -F does it; but a dropped
  // chain must not be referenced from anywhere else
  for (const c of [...dropChains]) {
    const referencedElsewhere = rules.some(
      (r) => r.target === c && !ours.includes(r) && !dropChains.has(r.chain),
    );
    if (referencedElsewhere) dropChains.delete(c);
  }
  const ourLines = new Set(ours.map((r) => r.line));
  if (removeHostportChains && CNI_HOSTPORT_CHAINS.some((c) => chains.has(c))) {
    const foreign = rules.some(
      (r) => r.chain === "CNI-HOSTPORT-DNAT" && !ourLines.has(r.line) && !dropChains.has(r.chain),
    );
    if (!foreign) {
      for (const r of rules) {
        if (r.target && CNI_HOSTPORT_CHAINS.includes(r.target) && !CNI_HOSTPORT_CHAINS.includes(r.chain)) {
          if (!ourLines.has(r.line)) deletes.push(`-D ${r.line.slice(3)}`);
        }
      }
      for (const c of CNI_HOSTPORT_CHAINS) if (chains.has(c)) dropChains.add(c);
    }
  }
  if (deletes.length === 0 && dropChains.size === 0) return "";
  // Rules inside chains we flush anyway need no -D (and may vanish first): keep -D only for others.
  const kept = deletes.filter((d) => !dropChains.has(d.split(/\s+/)[1] ?? ""));
  const lines = ["*nat", ...kept];
  for (const c of dropChains) lines.push(`-F ${c}`);
  for (const c of dropChains) lines.push(`-X ${c}`);
  lines.push("COMMIT", "");
  return lines.join("\n");
}
