/**
 * The node's own addresses, as `worknode proxy` hands them to the backend: read
 * from the host's interfaces (like kube-proxy, which lists local addresses for
 * `--nodeport-addresses`), with `--bind-address` as the primary IP when given.
 * Also expands `--nodeport-addresses` keywords. Pure apart from {@link hostNodeIPs}.
 *
 * @module
 */
import { type NetworkInterfaceInfo, networkInterfaces } from "node:os";
import { type IPFamily, ipFamilyOf, normalizeIP, parseCidr } from "@worknode/core";

function isLinkLocalV6(ip: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(ip);
}

function isLoopback(ip: string): boolean {
  return ip === "::1" || ip.startsWith("127.");
}

/**
 * The node IPs from an interface table (`os.networkInterfaces()`): `primaryIP` first
 * (when given), then global addresses in interface order, loopback addresses last.
 * IPv6 link-local addresses are left out. The first address of each family is the
 * node's primary IP of that family for the backend.
 */
export function nodeIPsFromInterfaces(
  interfaces: Readonly<Record<string, readonly NetworkInterfaceInfo[] | undefined>>,
  primaryIP?: string,
): string[] {
  const global: string[] = [];
  const loopback: string[] = [];
  for (const list of Object.values(interfaces)) {
    for (const info of list ?? []) {
      const ip = normalizeIP(info.address);
      if (ip === undefined || isLinkLocalV6(ip)) continue;
      (isLoopback(ip) || info.internal ? loopback : global).push(ip);
    }
  }
  const primary = primaryIP !== undefined ? normalizeIP(primaryIP) : undefined;
  const out: string[] = primary !== undefined ? [primary] : [];
  for (const ip of [...global, ...loopback]) if (!out.includes(ip)) out.push(ip);
  return out;
}

/** The node IPs of this host (or of the network namespace the process runs in). */
export function hostNodeIPs(primaryIP?: string): string[] {
  return nodeIPsFromInterfaces(networkInterfaces(), primaryIP);
}

/** The primary IP of each family: the first non-loopback node IP of that family. */
export function primaryNodeIPs(nodeIPs: readonly string[]): string[] {
  const out: string[] = [];
  const seen = new Set<IPFamily>();
  for (const ip of nodeIPs) {
    const family = ipFamilyOf(ip);
    if (family === undefined || seen.has(family) || isLoopback(ip)) continue;
    seen.add(family);
    out.push(ip);
  }
  return out;
}

/**
 * Expands `--nodeport-addresses` entries into the CIDR list the backend takes:
 * `primary` becomes the primary IPs (/32, /128), `localhost` 127.0.0.0/8 and ::1/128;
 * `all`, or a /0 CIDR of a family, means every address of that family (its CIDRs are
 * dropped, which the backend reads as "every local address").
 */
export function expandNodePortAddresses(entries: readonly string[], nodeIPs: readonly string[]): string[] {
  if (entries.includes("all")) return [];
  const cidrs: string[] = [];
  for (const e of entries) {
    if (e === "primary") {
      for (const ip of primaryNodeIPs(nodeIPs)) cidrs.push(ip.includes(":") ? `${ip}/128` : `${ip}/32`);
    } else if (e === "localhost") {
      cidrs.push("127.0.0.0/8", "::1/128");
    } else {
      cidrs.push(e);
    }
  }
  const allOf = new Set<IPFamily>();
  for (const c of cidrs) {
    const parsed = parseCidr(c);
    if (parsed !== undefined && parsed.prefix === 0) allOf.add(parsed.family);
  }
  const out: string[] = [];
  for (const c of cidrs) {
    const parsed = parseCidr(c);
    if (parsed === undefined || allOf.has(parsed.family) || out.includes(c)) continue;
    out.push(c);
  }
  return out;
}
