/**
 * A pod's DNS configuration (pkg/kubelet/network/dns/dns.go `GetPodDNS`):
 * the sandbox's resolv.conf servers, searches and options.
 *
 * - `dnsPolicy: None` starts empty; `ClusterFirst` (the default; host-network pods
 *   fall back to `Default`) and `ClusterFirstWithHostNet` use the cluster DNS
 *   servers, searches `<ns>.svc.<domain> svc.<domain> <domain>` + the host's, and
 *   `ndots:5`; without cluster DNS servers (standalone) they fall back to `Default`;
 * - `Default` uses the host's resolv.conf (or `127.0.0.1` / `::1` per node IP family
 *   and search `.` when kubelet runs with an empty `--resolv-conf`);
 * - `spec.dnsConfig` is appended (servers and searches de-duplicated, options merged
 *   with the pod's value winning), then limits apply: 3 servers, 32 search domains
 *   of at most 2048 characters in total.
 *
 * Options keep first-seen order (kubelet emits a Go map in random order).
 *
 * @module
 */
import type { Pod } from "@worknode/core";
import { ipFamilyOf } from "@worknode/core";

/** CRI `DNSConfig`. */
export interface DnsConfigSpec {
  readonly servers: string[];
  readonly searches: string[];
  readonly options: string[];
}

/** Servers, searches and options read from a resolv.conf. */
export interface ResolvConf {
  readonly servers: readonly string[];
  readonly searches: readonly string[];
  readonly options: readonly string[];
}

/** The kubelet's DNS settings. */
export interface DnsContext {
  /** `clusterDNS` server IPs; empty in standalone mode. */
  readonly clusterDNS: readonly string[];
  /** `clusterDomain`, such as `cluster.local`; empty for none. */
  readonly clusterDomain: string;
  /** The host's resolv.conf, parsed; `undefined` when `--resolv-conf` is empty. */
  readonly hostResolvConf: ResolvConf | undefined;
  /** Node IPs (only used when `hostResolvConf` is undefined). */
  readonly nodeIPs: readonly string[];
}

/** Maximum nameservers in a pod's resolv.conf. */
export const MAX_DNS_NAMESERVERS = 3;
/** Maximum search domains. */
export const MAX_DNS_SEARCH_PATHS = 32;
/** Maximum total length of the search line. */
export const MAX_DNS_SEARCH_LIST_CHARS = 2048;

/** kubelet's `parseResolvConf`: nameservers, the last `search` line (without `.` and trailing dots), and options. */
export function parseResolvConf(text: string): ResolvConf {
  const servers: string[] = [];
  let searches: string[] = [];
  let options: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const fields = line.split(/\s+/);
    const [kw, ...rest] = fields;
    if (kw === "nameserver" && rest[0]) servers.push(rest[0]);
    else if (kw === "search") searches = rest.filter((s) => s !== ".").map((s) => s.replace(/\.$/, ""));
    else if (kw === "options") options = mergeOptions(options, rest.map(splitOption));
  }
  return { servers, searches, options };
}

function splitOption(op: string): { name: string; value?: string } {
  const i = op.indexOf(":");
  return i === -1 ? { name: op } : { name: op.slice(0, i), value: op.slice(i + 1) };
}

function mergeOptions(
  existing: readonly string[],
  add: ReadonlyArray<{ name: string; value?: string | undefined }>,
): string[] {
  const m = new Map<string, string>();
  for (const op of existing) {
    const s = splitOption(op);
    m.set(s.name, s.value ?? "");
  }
  for (const op of add) m.set(op.name, op.value ?? "");
  return [...m].map(([k, v]) => (v ? `${k}:${v}` : k));
}

function unique(items: readonly string[]): string[] {
  return [...new Set(items)];
}

type DnsType = "none" | "cluster" | "host";

function podDnsType(pod: Pod): DnsType {
  const p = pod.spec?.dnsPolicy ?? "ClusterFirst";
  if (p === "None") return "none";
  if (p === "ClusterFirstWithHostNet") return "cluster";
  if (p === "ClusterFirst") return pod.spec?.hostNetwork ? "host" : "cluster";
  if (p === "Default") return "host";
  return "cluster";
}

/**
 * True when the pod asks for cluster DNS but the kubelet has no `clusterDNS`
 * servers, so it falls back to `Default` (kubelet then records a
 * `MissingClusterDNS` warning event).
 */
export function clusterDnsMissing(pod: Pod, ctx: Pick<DnsContext, "clusterDNS">): boolean {
  return podDnsType(pod) === "cluster" && ctx.clusterDNS.length === 0;
}

/** kubelet's `MissingClusterDNS` event message for a pod. */
export function missingClusterDnsMessage(formattedPod: string): string {
  return `pod: "${formattedPod}". kubelet does not have ClusterDNS IP configured and cannot create Pod using "ClusterFirst" policy. Falling back to "Default" policy.`;
}

/** The pod's DNS configuration (see the module notes). */
export function podDnsConfig(pod: Pod, ctx: DnsContext): DnsConfigSpec {
  const host = ctx.hostResolvConf;
  let servers: string[] = [...(host?.servers ?? [])];
  let searches: string[] = [...(host?.searches ?? [])];
  let options: string[] = [...(host?.options ?? [])];
  let type = podDnsType(pod);
  if (type === "cluster" && ctx.clusterDNS.length === 0) type = "host";
  if (type === "none") {
    servers = [];
    searches = [];
    options = [];
  } else if (type === "cluster") {
    servers = [...ctx.clusterDNS];
    if (ctx.clusterDomain) {
      const d = ctx.clusterDomain;
      searches = unique([`${pod.metadata?.namespace ?? ""}.svc.${d}`, `svc.${d}`, d, ...searches]);
    }
    options = ["ndots:5"];
  } else if (!host) {
    servers = ctx.nodeIPs.map((ip) => (ipFamilyOf(ip) === "IPv6" ? "::1" : "127.0.0.1"));
    if (servers.length === 0) servers = ["127.0.0.1"];
    searches = ["."];
  }
  const dc = pod.spec?.dnsConfig;
  if (dc) {
    servers = unique([...servers, ...(dc.nameservers ?? [])]);
    searches = unique([...searches, ...(dc.searches ?? [])]);
    options = mergeOptions(
      options,
      (dc.options ?? []).map((o) => ({ name: o.name ?? "", value: o.value })),
    );
  }
  return fitLimits({ servers, searches, options });
}

function fitLimits(c: DnsConfigSpec): DnsConfigSpec {
  let searches = c.searches.slice(0, MAX_DNS_SEARCH_PATHS);
  while (searches.join(" ").length > MAX_DNS_SEARCH_LIST_CHARS) searches = searches.slice(0, -1);
  return { servers: c.servers.slice(0, MAX_DNS_NAMESERVERS), searches, options: c.options };
}
