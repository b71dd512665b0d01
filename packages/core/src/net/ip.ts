/**
 * IP address and CIDR helpers. Every address in worknode is parsed and
 * normalised here, through ipaddr.js.
 *
 * @module
 */
import ipaddr from "ipaddr.js";

/** An IP family as Kubernetes names it. */
export type IPFamily = "IPv4" | "IPv6";

/** A parsed CIDR block. */
export interface Cidr {
  /** Normalised network address (host bits cleared). */
  readonly address: string;
  /** Prefix length. */
  readonly prefix: number;
  /** Family of the block. */
  readonly family: IPFamily;
}

/** An IPv4 dotted quad already in canonical form: four decimal octets 0–255 without leading zeros. */
const CANONICAL_IPV4 = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * Parses a textual IP address and returns it in canonical form
 * (IPv4 dotted quad; IPv6 RFC 5952 compressed, IPv4-mapped IPv6 kept as IPv6),
 * or `undefined` when it is not a valid address. Leading zeros in IPv4 octets are rejected,
 * as Kubernetes validation does.
 */
export function normalizeIP(text: string): string | undefined {
  if (typeof text !== "string" || text.length === 0 || text.length > 64) return undefined;
  // Fast path (pod IPs dominate EndpointSlices): canonical IPv4 maps to itself.
  if (CANONICAL_IPV4.test(text)) return text;
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) {
    if (text.split(".").some((o) => o.length > 1 && o.startsWith("0"))) return undefined;
    return ipaddr.IPv4.parse(text).toString();
  }
  if (text.includes(":") && ipaddr.IPv6.isValid(text) && !text.includes("%")) {
    return ipaddr.IPv6.parse(text).toRFC5952String();
  }
  return undefined;
}

/** True when `text` is a valid IPv4 or IPv6 address. */
export function isValidIP(text: string): boolean {
  return normalizeIP(text) !== undefined;
}

/** The family of a valid address, or `undefined` when `text` is not an address. */
export function ipFamilyOf(text: string): IPFamily | undefined {
  const n = normalizeIP(text);
  if (n === undefined) return undefined;
  return n.includes(":") ? "IPv6" : "IPv4";
}

/** Parses `a.b.c.d/n` or `x::/n`; returns `undefined` when invalid. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const addr = normalizeIP(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (addr === undefined || !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  const family: IPFamily = addr.includes(":") ? "IPv6" : "IPv4";
  if (prefix > (family === "IPv4" ? 32 : 128)) return undefined;
  const network =
    family === "IPv4"
      ? ipaddr.IPv4.networkAddressFromCIDR(`${addr}/${prefix}`).toString()
      : ipaddr.IPv6.networkAddressFromCIDR(`${addr}/${prefix}`).toRFC5952String();
  return { address: network, prefix, family };
}

/** Formats a {@link Cidr} as `address/prefix`. */
export function formatCidr(cidr: Cidr): string {
  return `${cidr.address}/${cidr.prefix}`;
}

/** True when the address `ip` lies inside `cidr` (false for mismatched families or invalid input). */
export function cidrContains(cidr: Cidr, ip: string): boolean {
  const n = normalizeIP(ip);
  if (n === undefined) return false;
  const parsed = ipaddr.parse(n);
  const net = ipaddr.parse(cidr.address);
  if (parsed.kind() !== net.kind()) return false;
  return parsed.match(net, cidr.prefix);
}
