/**
 * Deleting stale UDP / SCTP conntrack entries with Debian's `conntrack` tool, so
 * that clients of a changed service move to a live endpoint.
 *
 * @module
 */

import type { IPFamily } from "../net/ip.js";
import type { StaleConntrack } from "../service/model.js";
import type { CommandRunner } from "../util/command.js";

/** One `conntrack -D` invocation. */
export interface ConntrackDeletion {
  readonly args: readonly string[];
  /** The entry it comes from. */
  readonly entry: StaleConntrack;
}

function familyOf(ip: string): IPFamily {
  return ip.includes(":") ? "IPv6" : "IPv4";
}

/** Splits `ip:port` / `[ip]:port` into the IP. */
export function endpointIPOf(address: string): string {
  if (address.startsWith("[")) return address.slice(1, address.indexOf("]"));
  const colon = address.lastIndexOf(":");
  return colon < 0 ? address : address.slice(0, colon);
}

/**
 * The `conntrack -D` argument lists for stale entries (as kube-proxy's conntrack cleanup):
 *
 * - a service IP and port: `-D -p udp --orig-dst <ip> --dport <port>`;
 * - a service IP and port towards one endpoint: `-D -p udp --orig-dst <ip> --dport <port> --dst-nat <endpoint ip>`;
 * - a node port (`serviceIP` ""): `-D -p udp --dport <nodePort>` (plus `--dst-nat <endpoint ip>`), once per family.
 *
 * IPv6 entries get `-f ipv6`. Only entries of `families` are kept.
 */
export function conntrackDeletions(
  entries: readonly StaleConntrack[],
  families: readonly IPFamily[],
): ConntrackDeletion[] {
  const out: ConntrackDeletion[] = [];
  const seen = new Set<string>();
  for (const entry of entries) {
    const proto = entry.protocol.toLowerCase();
    const endpointIP = entry.endpoint !== undefined ? endpointIPOf(entry.endpoint) : undefined;
    const fams: IPFamily[] =
      entry.serviceIP !== ""
        ? [familyOf(entry.serviceIP)]
        : endpointIP !== undefined
          ? [familyOf(endpointIP)]
          : [...families];
    for (const fam of fams) {
      if (!families.includes(fam)) continue;
      const args = ["-D", ...(fam === "IPv6" ? ["-f", "ipv6"] : []), "-p", proto];
      if (entry.serviceIP !== "") args.push("--orig-dst", entry.serviceIP);
      args.push("--dport", String(entry.port));
      if (endpointIP !== undefined) args.push("--dst-nat", endpointIP);
      const id = args.join(" ");
      if (seen.has(id)) continue;
      seen.add(id);
      out.push({ args, entry });
    }
  }
  return out;
}

/** Result of {@link flushConntrack}. */
export interface ConntrackResult {
  /** Invocations run. */
  readonly runs: number;
  /** Invocations that failed (not counting "0 flow entries have been deleted"). */
  readonly errors: readonly string[];
}

/**
 * Runs the deletions through `runner`. `conntrack` exits 1 when nothing matched; that is
 * not an error. Never throws: failures are returned for logging.
 */
export async function flushConntrack(
  runner: CommandRunner,
  deletions: readonly ConntrackDeletion[],
  binary = "conntrack",
): Promise<ConntrackResult> {
  const errors: string[] = [];
  for (const d of deletions) {
    const out = await runner.exec(binary, d.args);
    if (out.code === 0 || /0 flow entries have been deleted/.test(out.stderr)) continue;
    errors.push(`${binary} ${d.args.join(" ")}: exit ${out.code}: ${out.stderr.trim()}`);
  }
  return { runs: deletions.length, errors };
}
