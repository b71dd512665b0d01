/**
 * Turns a Kubernetes Service into the {@link ServicePort}s a proxy programs,
 * validating everything a proxy relies on.
 *
 * @module
 */
import type { Service } from "../kube/objects.js";
import { type IPFamily, normalizeIP, parseCidr } from "../net/ip.js";
import { InvalidObjectError } from "../util/errors.js";
import { servicePortKey } from "./keys.js";
import { ignoredByLabels } from "./labels.js";
import type { Protocol, ServicePort, ServiceType, SessionAffinity } from "./model.js";

/** Default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours). */
export const DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10_800;
/** Largest allowed `sessionAffinityConfig.clientIP.timeoutSeconds` (1 day). */
export const MAX_AFFINITY_TIMEOUT_SECONDS = 86_400;

/** Options of {@link buildServicePorts}. */
export interface BuildServicePortsOptions {
  /**
   * The proxy's name for the `service.kubernetes.io/service-proxy-name` label
   * (see {@link ignoredByLabels}); unset: the default proxy.
   */
  readonly proxyName?: string;
  /**
   * Allowed node ports, inclusive. Default 1–65535: the API server enforces its own
   * `--service-node-port-range`, which the proxy does not know.
   */
  readonly nodePortRange?: { readonly min: number; readonly max: number };
  /** Where the object came from (file and document), for error messages. */
  readonly origin?: string;
}

/** Result of {@link buildServicePorts}. */
export interface BuildServicePortsResult {
  /** The service ports to program, in `spec.ports` order (empty when skipped or invalid). */
  readonly ports: readonly ServicePort[];
  /** Set when the Service is invalid; it then contributes no ports. */
  readonly error?: InvalidObjectError;
  /**
   * Set when the Service is valid but not proxied: ExternalName, headless,
   * or labelled for another proxy. Not an error.
   */
  readonly skipped?: string;
}

const PROTOCOLS: ReadonlySet<string> = new Set(["TCP", "UDP", "SCTP"]);
const SERVICE_TYPES: ReadonlySet<string> = new Set(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]);
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const EMPTY: readonly never[] = Object.freeze([]);

/** True when `v` is an integer in `[min, max]`. */
function intInRange(v: unknown, min: number, max: number): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;
}

function show(v: unknown): string {
  return typeof v === "string" ? `"${v}"` : (JSON.stringify(v) ?? String(v));
}

function familyOf(ip: string): IPFamily {
  return ip.includes(":") ? "IPv6" : "IPv4";
}

function stringArray(v: unknown): readonly unknown[] {
  return Array.isArray(v) ? v : EMPTY;
}

/**
 * Builds the {@link ServicePort}s of a Service (one per `spec.ports` entry), or
 * explains why there are none.
 *
 * Returns no ports, without error, for Services a proxy does not program:
 * `type: ExternalName`, headless Services (`clusterIP` `None` or empty), and Services
 * that {@link ignoredByLabels} excludes. Returns no ports **and** an
 * {@link InvalidObjectError} naming the Service and every problem found when the
 * Service is malformed: missing name or namespace, unknown type, invalid or
 * inconsistent cluster IPs / IP families, no ports, invalid port numbers or names,
 * duplicate port names or port/protocol pairs, unknown protocols, node ports out of
 * range (or set on a ClusterIP Service), invalid external IPs, load-balancer ingress
 * IPs or source ranges, unknown traffic policies or session affinity, and affinity
 * timeouts outside 1–86400 s.
 *
 * Every address is normalised through `normalizeIP` and every CIDR through
 * {@link parseCidr} (from the `net/ip` helpers). Like kube-proxy, only VIP-mode load-balancer ingresses count
 * (`ipMode: Proxy` and hostname-only ingresses are skipped), and the health-check
 * node port is kept only for `LoadBalancer` Services with `externalTrafficPolicy: Local`.
 *
 * Pure: the same input gives equal output.
 */
export function buildServicePorts(
  svc: Service,
  opts: BuildServicePortsOptions = {},
): BuildServicePortsResult {
  const meta = svc?.metadata;
  const namespace = typeof meta?.namespace === "string" ? meta.namespace : "";
  const name = typeof meta?.name === "string" ? meta.name : "";
  const fail = (reasons: string[]): BuildServicePortsResult => ({
    ports: EMPTY,
    error: new InvalidObjectError(
      {
        kind: "Service",
        ...(namespace ? { namespace } : {}),
        ...(name ? { name } : {}),
        ...(opts.origin ? { origin: opts.origin } : {}),
      },
      reasons,
    ),
  });

  const metaReasons: string[] = [];
  if (!name) metaReasons.push("metadata.name is missing");
  if (!namespace) metaReasons.push("metadata.namespace is missing");
  if (metaReasons.length > 0) return fail(metaReasons);

  const ignored = ignoredByLabels(meta?.labels, opts.proxyName);
  if (ignored !== undefined) return { ports: EMPTY, skipped: ignored };

  const spec = svc.spec ?? {};
  const reasons: string[] = [];

  const typeValue: unknown = spec.type ?? "ClusterIP";
  if (typeof typeValue !== "string" || !SERVICE_TYPES.has(typeValue)) {
    return fail([`spec.type: unknown service type ${show(typeValue)}`]);
  }
  const type = typeValue as ServiceType;
  if (type === "ExternalName") return { ports: EMPTY, skipped: "type ExternalName" };

  // Cluster IPs.
  const rawIPs: readonly unknown[] =
    Array.isArray(spec.clusterIPs) && spec.clusterIPs.length > 0
      ? spec.clusterIPs
      : spec.clusterIP !== undefined && spec.clusterIP !== null
        ? [spec.clusterIP]
        : EMPTY;
  if (
    spec.clusterIP !== undefined &&
    Array.isArray(spec.clusterIPs) &&
    spec.clusterIPs.length > 0 &&
    spec.clusterIPs[0] !== spec.clusterIP
  ) {
    return fail([
      `spec.clusterIP ${show(spec.clusterIP)} must equal spec.clusterIPs[0] ${show(spec.clusterIPs[0])}`,
    ]);
  }
  if (rawIPs.length === 0 || rawIPs[0] === "" || rawIPs[0] === "None") {
    if (rawIPs.length > 1) return fail([`spec.clusterIPs: ${show(rawIPs[0])} must be the only entry`]);
    return { ports: EMPTY, skipped: "headless (no cluster IP)" };
  }
  const clusterIPs: string[] = [];
  if (rawIPs.length > 2)
    reasons.push(`spec.clusterIPs: at most 2 addresses (one per family), got ${rawIPs.length}`);
  rawIPs.forEach((raw, i) => {
    const ip = typeof raw === "string" ? normalizeIP(raw) : undefined;
    if (ip === undefined) reasons.push(`spec.clusterIPs[${i}]: ${show(raw)} is not a valid IP address`);
    else clusterIPs.push(ip);
  });
  const ipFamilies = clusterIPs.map(familyOf);
  if (ipFamilies.length === 2 && ipFamilies[0] === ipFamilies[1]) {
    reasons.push(`spec.clusterIPs: ${clusterIPs.join(", ")} must be of different IP families`);
  }
  if (Array.isArray(spec.ipFamilies) && spec.ipFamilies.length > 0 && reasons.length === 0) {
    const declared = spec.ipFamilies;
    if (declared.length !== ipFamilies.length || declared.some((f, i) => f !== ipFamilies[i])) {
      reasons.push(
        `spec.ipFamilies ${show(declared)} does not match the families of spec.clusterIPs ${show(ipFamilies)}`,
      );
    }
  }

  // External IPs.
  const externalIPs: string[] = [];
  stringArray(spec.externalIPs).forEach((raw, i) => {
    const ip = typeof raw === "string" ? normalizeIP(raw) : undefined;
    if (ip === undefined) reasons.push(`spec.externalIPs[${i}]: ${show(raw)} is not a valid IP address`);
    else if (!externalIPs.includes(ip)) externalIPs.push(ip);
  });

  // Load-balancer ingress IPs (status) and source ranges.
  const loadBalancerIPs: string[] = [];
  stringArray(svc.status?.loadBalancer?.ingress).forEach((raw, i) => {
    const ing = (raw ?? {}) as { ip?: unknown; ipMode?: unknown };
    if (ing.ip === undefined || ing.ip === "") return;
    const ip = typeof ing.ip === "string" ? normalizeIP(ing.ip) : undefined;
    if (ip === undefined) {
      reasons.push(`status.loadBalancer.ingress[${i}].ip: ${show(ing.ip)} is not a valid IP address`);
      return;
    }
    if (ing.ipMode !== undefined && ing.ipMode !== "VIP") return;
    if (!loadBalancerIPs.includes(ip)) loadBalancerIPs.push(ip);
  });
  const loadBalancerSourceRanges: string[] = [];
  stringArray(spec.loadBalancerSourceRanges).forEach((raw, i) => {
    const cidr = typeof raw === "string" ? parseCidr(raw.trim()) : undefined;
    if (cidr === undefined) {
      reasons.push(`spec.loadBalancerSourceRanges[${i}]: ${show(raw)} is not a valid CIDR`);
      return;
    }
    const text = `${cidr.address}/${cidr.prefix}`;
    if (!loadBalancerSourceRanges.includes(text)) loadBalancerSourceRanges.push(text);
  });

  // Policies.
  const etp: unknown = spec.externalTrafficPolicy ?? "Cluster";
  if (etp !== "Cluster" && etp !== "Local") {
    reasons.push(`spec.externalTrafficPolicy: unknown policy ${show(etp)} (Cluster or Local)`);
  }
  const itp: unknown = spec.internalTrafficPolicy ?? "Cluster";
  if (itp !== "Cluster" && itp !== "Local") {
    reasons.push(`spec.internalTrafficPolicy: unknown policy ${show(itp)} (Cluster or Local)`);
  }
  // apiservice.ExternallyAccessible: the Service type (or external IPs) lets outside traffic in.
  const typeExternallyAccessible =
    type === "NodePort" || type === "LoadBalancer" || (type === "ClusterIP" && externalIPs.length > 0);
  const externalPolicyLocal = typeExternallyAccessible && etp === "Local";
  const internalPolicyLocal = itp === "Local";

  let sessionAffinity: SessionAffinity = { type: "None" };
  const affinity: unknown = spec.sessionAffinity ?? "None";
  if (affinity === "ClientIP") {
    const timeout: unknown =
      spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_AFFINITY_TIMEOUT_SECONDS;
    if (!intInRange(timeout, 1, MAX_AFFINITY_TIMEOUT_SECONDS)) {
      reasons.push(
        `spec.sessionAffinityConfig.clientIP.timeoutSeconds: ${show(timeout)} is outside 1..${MAX_AFFINITY_TIMEOUT_SECONDS}`,
      );
    } else {
      sessionAffinity = { type: "ClientIP", timeoutSeconds: timeout };
    }
  } else if (affinity !== "None") {
    reasons.push(`spec.sessionAffinity: unknown affinity ${show(affinity)} (None or ClientIP)`);
  }

  let healthCheckNodePort = 0;
  if (type === "LoadBalancer" && externalPolicyLocal && spec.healthCheckNodePort !== undefined) {
    if (!intInRange(spec.healthCheckNodePort, 0, 65535)) {
      reasons.push(`spec.healthCheckNodePort: ${show(spec.healthCheckNodePort)} is not a valid port number`);
    } else {
      healthCheckNodePort = spec.healthCheckNodePort;
    }
  }

  const trafficDistribution: unknown = spec.trafficDistribution;
  if (trafficDistribution !== undefined && typeof trafficDistribution !== "string") {
    reasons.push(`spec.trafficDistribution: ${show(trafficDistribution)} is not a string`);
  }

  // Ports.
  const specPorts = stringArray(spec.ports);
  if (specPorts.length === 0) reasons.push("spec.ports: a Service with a cluster IP needs at least one port");
  const nodePortMin = opts.nodePortRange?.min ?? 1;
  const nodePortMax = opts.nodePortRange?.max ?? 65535;
  const seenNames = new Set<string>();
  const seenPorts = new Set<string>();
  const parsed: { name: string; port: number; protocol: Protocol; nodePort: number }[] = [];
  specPorts.forEach((raw, i) => {
    const p = (raw ?? {}) as { name?: unknown; port?: unknown; protocol?: unknown; nodePort?: unknown };
    const at = `spec.ports[${i}]`;
    const before = reasons.length;
    const portName = p.name === undefined || p.name === null ? "" : p.name;
    if (typeof portName !== "string") {
      reasons.push(`${at}.name: ${show(portName)} is not a string`);
    } else if (portName === "" && specPorts.length > 1) {
      reasons.push(`${at}.name: required when the Service has more than one port`);
    } else if (portName !== "" && (portName.length > 63 || !DNS_LABEL.test(portName))) {
      reasons.push(`${at}.name: ${show(portName)} is not a valid port name (lowercase DNS label)`);
    } else if (seenNames.has(portName)) {
      reasons.push(`${at}.name: duplicate port name ${show(portName)}`);
    } else {
      seenNames.add(portName);
    }
    const portValid = intInRange(p.port, 1, 65535);
    if (!portValid) {
      reasons.push(`${at}.port: ${show(p.port)} is not a valid port number (1-65535)`);
    }
    const protocol: unknown = p.protocol ?? "TCP";
    const protocolValid = typeof protocol === "string" && PROTOCOLS.has(protocol);
    if (!protocolValid) {
      reasons.push(`${at}.protocol: unknown protocol ${show(protocol)} (TCP, UDP or SCTP)`);
    }
    if (portValid && protocolValid) {
      const portKey = `${p.port}/${protocol}`;
      if (seenPorts.has(portKey)) reasons.push(`${at}: duplicate port ${portKey}`);
      seenPorts.add(portKey);
    }
    const nodePort: unknown = p.nodePort ?? 0;
    if (nodePort !== 0) {
      if (!intInRange(nodePort, nodePortMin, nodePortMax)) {
        reasons.push(
          `${at}.nodePort: ${show(nodePort)} is outside the node port range ${nodePortMin}-${nodePortMax}`,
        );
      } else if (type === "ClusterIP") {
        reasons.push(`${at}.nodePort: may not be set on a Service of type ClusterIP`);
      }
    }
    if (reasons.length > before) return;
    parsed.push({
      name: portName as string,
      port: p.port as number,
      protocol: protocol as Protocol,
      nodePort: nodePort as number,
    });
  });

  if (reasons.length > 0) return fail(reasons);

  const td = typeof trafficDistribution === "string" ? trafficDistribution : undefined;
  const ports = parsed.map((p): ServicePort => {
    const portName = { namespace, name, port: p.name, protocol: p.protocol };
    // Always the same keys in the same order: one object shape for every service port.
    return {
      name: portName,
      key: servicePortKey(portName),
      type,
      clusterIPs,
      port: p.port,
      protocol: p.protocol,
      nodePort: p.nodePort,
      externalIPs,
      loadBalancerIPs,
      loadBalancerSourceRanges,
      sessionAffinity,
      externalPolicyLocal,
      internalPolicyLocal,
      healthCheckNodePort,
      ipFamilies,
      trafficDistribution: td,
      externallyAccessible: p.nodePort !== 0 || externalIPs.length > 0 || loadBalancerIPs.length > 0,
    };
  });
  return { ports };
}

/**
 * kube-proxy's `UsesClusterEndpoints`: the port sends some traffic by the Cluster
 * policy (internal policy Cluster, or reachable from outside at all: even with
 * `externalTrafficPolicy: Local`, cluster-internal clients of the external IPs are
 * short-circuited to cluster endpoints).
 */
export function usesClusterEndpoints(sp: ServicePort): boolean {
  return !sp.internalPolicyLocal || sp.externallyAccessible;
}

/**
 * kube-proxy's `UsesLocalEndpoints`: the port sends some traffic only to endpoints on
 * this node (internal policy Local, or external policy Local on an externally
 * accessible port).
 */
export function usesLocalEndpoints(sp: ServicePort): boolean {
  return sp.internalPolicyLocal || (sp.externalPolicyLocal && sp.externallyAccessible);
}

/** Every service IP of a port: cluster IPs, then external IPs, then load-balancer IPs. */
export function serviceIPs(sp: ServicePort): string[] {
  const out = [...sp.clusterIPs];
  for (const ip of sp.externalIPs) if (!out.includes(ip)) out.push(ip);
  for (const ip of sp.loadBalancerIPs) if (!out.includes(ip)) out.push(ip);
  return out;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** True when two service ports are equal in every field. */
export function servicePortsEqual(a: ServicePort, b: ServicePort): boolean {
  if (a === b) return true;
  return (
    a.key === b.key &&
    a.type === b.type &&
    a.port === b.port &&
    a.protocol === b.protocol &&
    a.nodePort === b.nodePort &&
    a.externalPolicyLocal === b.externalPolicyLocal &&
    a.internalPolicyLocal === b.internalPolicyLocal &&
    a.healthCheckNodePort === b.healthCheckNodePort &&
    a.trafficDistribution === b.trafficDistribution &&
    a.externallyAccessible === b.externallyAccessible &&
    a.sessionAffinity.type === b.sessionAffinity.type &&
    (a.sessionAffinity.type !== "ClientIP" ||
      a.sessionAffinity.timeoutSeconds ===
        (b.sessionAffinity as { readonly timeoutSeconds: number }).timeoutSeconds) &&
    sameList(a.clusterIPs, b.clusterIPs) &&
    sameList(a.externalIPs, b.externalIPs) &&
    sameList(a.loadBalancerIPs, b.loadBalancerIPs) &&
    sameList(a.loadBalancerSourceRanges, b.loadBalancerSourceRanges) &&
    sameList(a.ipFamilies, b.ipFamilies)
  );
}
