/**
 * Turns EndpointSlices into per-service-port endpoint lists (kube-proxy's
 * EndpointSliceCache), validating what a proxy relies on.
 *
 * @module
 */
import { type EndpointSlice, LABEL_SERVICE_NAME } from "../kube/objects.js";
import { type IPFamily, normalizeIP } from "../net/ip.js";
import { InvalidObjectError } from "../util/errors.js";
import { joinHostPort, serviceKey, servicePortKey } from "./keys.js";
import { ignoredByLabels } from "./labels.js";
import type { Endpoint, Protocol, ServicePort, ServicePortKey } from "./model.js";

/** Annotation the EndpointSlice controller sets to the time of the change that triggered an update. */
export const ANNOTATION_LAST_CHANGE_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time";

const EMPTY: readonly never[] = Object.freeze([]);

/** One port of a parsed EndpointSlice. */
export interface ParsedSlicePort {
  /** Port name (`""` when unnamed or unset). */
  readonly name: string;
  readonly protocol: Protocol;
  /** Target port number on the endpoints. */
  readonly port: number;
}

/** One endpoint of a parsed EndpointSlice, before it is paired with a port. */
export interface ParsedSliceEndpoint {
  readonly ip: string;
  readonly family: IPFamily;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  readonly nodeName?: string;
  readonly zone?: string;
  readonly zoneHints: readonly string[];
  readonly nodeHints: readonly string[];
  readonly isLocal: boolean;
}

/**
 * The part of an EndpointSlice a proxy uses, validated and normalised: ports sorted
 * by name and protocol, endpoints sorted by IP, so that two slices that differ only
 * in ordering compare equal with {@link parsedSlicesEqual}.
 */
export interface ParsedEndpointSlice {
  readonly namespace: string;
  /** The slice's own name. */
  readonly name: string;
  /** The Service it belongs to (label `kubernetes.io/service-name`). */
  readonly serviceName: string;
  /** `namespace/serviceName`. */
  readonly serviceKey: string;
  readonly ports: readonly ParsedSlicePort[];
  readonly endpoints: readonly ParsedSliceEndpoint[];
  /** `endpoints.kubernetes.io/last-change-trigger-time` in ms since the epoch, when set and valid. */
  readonly triggerTime?: number;
}

/** Options of {@link parseEndpointSlice} and {@link buildEndpoints}. */
export interface EndpointSliceOptions {
  /** The proxy's node name: endpoints whose `nodeName` equals it are local. */
  readonly nodeName: string;
  /** The proxy's name for the `service-proxy-name` label (see {@link ignoredByLabels}). */
  readonly proxyName?: string;
  /** Where the object came from, for error messages. */
  readonly origin?: string;
}

/** Result of {@link parseEndpointSlice}. */
export interface ParseEndpointSliceResult {
  /** The usable part of the slice; absent when the slice is skipped or wholly invalid. */
  readonly slice?: ParsedEndpointSlice;
  /**
   * Problems found. When `slice` is also set, only the offending ports or endpoints
   * were dropped and the rest is kept.
   */
  readonly error?: InvalidObjectError;
  /** Set when the slice is valid but not for this proxy (FQDN addresses, labels). */
  readonly skipped?: string;
}

function show(v: unknown): string {
  return typeof v === "string" ? `"${v}"` : (JSON.stringify(v) ?? String(v));
}

/** Interned single-name hint lists: most endpoints carry exactly one zone hint. */
const singleHints = new Map<string, readonly string[]>();

function hintNames(list: unknown): readonly string[] {
  if (!Array.isArray(list) || list.length === 0) return EMPTY;
  if (list.length === 1) {
    const n = (list[0] as { name?: unknown } | null)?.name;
    if (typeof n !== "string" || n === "") return EMPTY;
    let interned = singleHints.get(n);
    if (interned === undefined) {
      if (singleHints.size >= 10_000) singleHints.clear();
      interned = Object.freeze([n]);
      singleHints.set(n, interned);
    }
    return interned;
  }
  const names: string[] = [];
  for (const h of list) {
    const n = (h as { name?: unknown } | null)?.name;
    if (typeof n === "string" && n !== "" && !names.includes(n)) names.push(n);
  }
  if (names.length === 0) return EMPTY;
  return names.sort();
}

/**
 * Validates and normalises one EndpointSlice.
 *
 * Skipped (no error): `addressType: FQDN` slices and slices that {@link ignoredByLabels}
 * excludes. Wholly invalid: missing name, namespace or `kubernetes.io/service-name`
 * label, unknown address type. Partly invalid (the rest is kept): ports with a missing or
 * invalid number or an unknown protocol, duplicate port name/protocol pairs, endpoints
 * without addresses or whose first address is not an IP of the slice's family.
 *
 * Conditions follow the API: `ready` unset counts as true, `serving` unset counts as
 * `ready`, `terminating` unset counts as false. (kube-proxy reads an unset `serving` as
 * true; the two differ only for a not-ready endpoint without a `serving` condition, which
 * the EndpointSlice controller never writes.) Only the first address of an endpoint
 * is used, as kube-proxy does. A port without a name is the unnamed port (`""`).
 */
export function parseEndpointSlice(
  slice: EndpointSlice,
  opts: EndpointSliceOptions,
): ParseEndpointSliceResult {
  const meta = slice?.metadata;
  const namespace = typeof meta?.namespace === "string" ? meta.namespace : "";
  const name = typeof meta?.name === "string" ? meta.name : "";
  const ref = {
    kind: "EndpointSlice",
    ...(namespace ? { namespace } : {}),
    ...(name ? { name } : {}),
    ...(opts.origin ? { origin: opts.origin } : {}),
  };
  const reasons: string[] = [];
  const serviceName = meta?.labels?.[LABEL_SERVICE_NAME];
  if (!name) reasons.push("metadata.name is missing");
  if (!namespace) reasons.push("metadata.namespace is missing");
  if (typeof serviceName !== "string" || serviceName === "") {
    reasons.push(`label ${LABEL_SERVICE_NAME} is missing`);
  }
  if (reasons.length > 0) return { error: new InvalidObjectError(ref, reasons) };

  const ignored = ignoredByLabels(meta?.labels, opts.proxyName);
  if (ignored !== undefined) return { skipped: ignored };
  const addressType: unknown = slice.addressType;
  if (addressType === "FQDN") return { skipped: "addressType FQDN" };
  if (addressType !== "IPv4" && addressType !== "IPv6") {
    return { error: new InvalidObjectError(ref, [`addressType: unknown address type ${show(addressType)}`]) };
  }

  const ports: ParsedSlicePort[] = [];
  const seen = new Set<string>();
  (Array.isArray(slice.ports) ? slice.ports : EMPTY).forEach((raw, i) => {
    const p = (raw ?? {}) as { name?: unknown; port?: unknown; protocol?: unknown };
    const at = `ports[${i}]`;
    const portName = p.name === undefined || p.name === null ? "" : p.name;
    const protocol: unknown = p.protocol ?? "TCP";
    const before = reasons.length;
    if (typeof portName !== "string") reasons.push(`${at}.name: ${show(portName)} is not a string`);
    if (typeof p.port !== "number" || !Number.isInteger(p.port) || p.port < 1 || p.port > 65535) {
      reasons.push(`${at}.port: ${show(p.port)} is not a valid port number (1-65535)`);
    }
    if (protocol !== "TCP" && protocol !== "UDP" && protocol !== "SCTP") {
      reasons.push(`${at}.protocol: unknown protocol ${show(protocol)} (TCP, UDP or SCTP)`);
    }
    if (reasons.length > before) return;
    const id = `${portName}/${protocol}`;
    if (seen.has(id)) {
      reasons.push(`${at}: duplicate port name and protocol ${id}`);
      return;
    }
    seen.add(id);
    ports.push({ name: portName as string, protocol: protocol as Protocol, port: p.port as number });
  });
  ports.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.protocol < b.protocol ? -1 : 1));

  const family: IPFamily = addressType;
  const endpoints: ParsedSliceEndpoint[] = [];
  const rawEndpoints: readonly unknown[] = Array.isArray(slice.endpoints) ? slice.endpoints : EMPTY;
  for (let i = 0; i < rawEndpoints.length; i++) {
    const e = (rawEndpoints[i] ?? {}) as NonNullable<EndpointSlice["endpoints"]>[number];
    const first: unknown = Array.isArray(e.addresses) ? e.addresses[0] : undefined;
    if (first === undefined) {
      reasons.push(`endpoints[${i}].addresses: no address`);
      continue;
    }
    const ip = typeof first === "string" ? normalizeIP(first) : undefined;
    if (ip === undefined) {
      reasons.push(`endpoints[${i}].addresses[0]: ${show(first)} is not a valid IP address`);
      continue;
    }
    if ((ip.includes(":") ? "IPv6" : "IPv4") !== family) {
      reasons.push(
        `endpoints[${i}].addresses[0]: ${ip} is not an ${family} address (the slice's addressType)`,
      );
      continue;
    }
    const c = e.conditions;
    const ready = c?.ready !== false;
    const serving = c?.serving === undefined || c.serving === null ? ready : c.serving !== false;
    const terminating = c?.terminating === true;
    const nodeName = typeof e.nodeName === "string" && e.nodeName !== "" ? e.nodeName : undefined;
    const zone = typeof e.zone === "string" && e.zone !== "" ? e.zone : undefined;
    // Always the same keys in the same order: one object shape for every endpoint.
    endpoints.push({
      ip,
      family,
      ready,
      serving,
      terminating,
      nodeName,
      zone,
      zoneHints: hintNames(e.hints?.forZones),
      nodeHints: hintNames(e.hints?.forNodes),
      isLocal: nodeName !== undefined && opts.nodeName !== "" && nodeName === opts.nodeName,
    });
  }
  endpoints.sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));

  let triggerTime: number | undefined;
  const stamp = meta?.annotations?.[ANNOTATION_LAST_CHANGE_TRIGGER_TIME];
  if (typeof stamp === "string" && stamp !== "") {
    const t = Date.parse(stamp);
    if (Number.isFinite(t)) triggerTime = t;
  }

  const parsed: ParsedEndpointSlice = {
    namespace,
    name,
    serviceName: serviceName as string,
    serviceKey: serviceKey(namespace, serviceName as string),
    ports,
    endpoints,
    ...(triggerTime !== undefined ? { triggerTime } : {}),
  };
  return reasons.length > 0
    ? { slice: parsed, error: new InvalidObjectError(ref, reasons) }
    : { slice: parsed };
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameParsedEndpoint(a: ParsedSliceEndpoint, b: ParsedSliceEndpoint): boolean {
  return (
    a.ip === b.ip &&
    a.ready === b.ready &&
    a.serving === b.serving &&
    a.terminating === b.terminating &&
    a.nodeName === b.nodeName &&
    a.zone === b.zone &&
    a.isLocal === b.isLocal &&
    sameStrings(a.zoneHints, b.zoneHints) &&
    sameStrings(a.nodeHints, b.nodeHints)
  );
}

/**
 * True when two parsed slices yield the same endpoints (the trigger time is ignored).
 */
export function parsedSlicesEqual(a: ParsedEndpointSlice, b: ParsedEndpointSlice): boolean {
  if (a === b) return true;
  if (a.serviceKey !== b.serviceKey || a.ports.length !== b.ports.length) return false;
  if (a.endpoints.length !== b.endpoints.length) return false;
  for (let i = 0; i < a.ports.length; i++) {
    const p = a.ports[i]!;
    const q = b.ports[i]!;
    if (p.name !== q.name || p.protocol !== q.protocol || p.port !== q.port) return false;
  }
  for (let i = 0; i < a.endpoints.length; i++) {
    if (!sameParsedEndpoint(a.endpoints[i]!, b.endpoints[i]!)) return false;
  }
  return true;
}

/** True when two endpoints are equal in every field. */
export function endpointsEqual(a: Endpoint, b: Endpoint): boolean {
  return a === b || (a.port === b.port && sameParsedEndpoint(a, b));
}

/** True when two endpoint lists hold equal endpoints in the same order. */
export function endpointListsEqual(a: readonly Endpoint[], b: readonly Endpoint[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!endpointsEqual(a[i]!, b[i]!)) return false;
  return true;
}

/** Preference among duplicates of one address: ready, then serving, then local. */
function rank(e: Endpoint): number {
  return (e.ready ? 4 : 0) + (e.serving ? 2 : 0) + (e.isLocal ? 1 : 0);
}

function byAddress(a: Endpoint, b: Endpoint): number {
  return a.address < b.address ? -1 : a.address > b.address ? 1 : 0;
}

function makeEndpoint(ep: ParsedSliceEndpoint, port: number): Endpoint {
  // Fixed key order: one object shape for every endpoint.
  return {
    ip: ep.ip,
    family: ep.family,
    port,
    address: joinHostPort(ep.ip, port),
    ready: ep.ready,
    serving: ep.serving,
    terminating: ep.terminating,
    nodeName: ep.nodeName,
    zone: ep.zone,
    zoneHints: ep.zoneHints,
    nodeHints: ep.nodeHints,
    isLocal: ep.isLocal,
  };
}

/**
 * Replaces entries of `list` (sorted by address) by the equal ones of `old` (sorted
 * the same way); returns `old` itself when every entry is equal.
 */
function reuse(list: Endpoint[], old: readonly Endpoint[] | undefined): readonly Endpoint[] {
  if (!old || old.length === 0) return list;
  let same = old.length === list.length;
  let j = 0;
  for (let i = 0; i < list.length; i++) {
    const e = list[i]!;
    while (j < old.length && old[j]!.address < e.address) j++;
    const prior = old[j];
    if (prior !== undefined && prior.address === e.address && endpointsEqual(prior, e)) {
      list[i] = prior;
      if (same && i !== j) same = false;
    } else {
      same = false;
    }
  }
  return same ? old : list;
}

/**
 * Merges parsed slices of **one** Service into endpoint lists per {@link ServicePortKey}.
 *
 * A slice port contributes to the service port with the same name and protocol; when
 * `servicePorts` is given, slice ports matching none of them are dropped. The same
 * `ip:port` appearing in several slices (endpoints move between slices) is kept once,
 * preferring a ready copy, then a serving one, then a local one; on a tie the copy from
 * the slice whose name sorts first wins. Each list is sorted by address. Endpoint objects
 * equal to one in `previous` (same key) are reused from it, and so is a whole list that
 * did not change, so callers can compare by identity.
 */
export function mergeEndpointSlices(
  slices: Iterable<ParsedEndpointSlice>,
  servicePorts?: readonly ServicePort[],
  previous?: ReadonlyMap<ServicePortKey, readonly Endpoint[]>,
): Map<ServicePortKey, readonly Endpoint[]> {
  const sorted = Array.from(slices);
  if (sorted.length > 1) sorted.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const byKey = new Map<ServicePortKey, Map<string, Endpoint>>();
  for (const slice of sorted) {
    for (const port of slice.ports) {
      const key = servicePortKey({
        namespace: slice.namespace,
        name: slice.serviceName,
        port: port.name,
        protocol: port.protocol,
      });
      if (servicePorts && !servicePorts.some((sp) => sp.key === key)) continue;
      let set = byKey.get(key);
      if (!set) {
        set = new Map();
        byKey.set(key, set);
      }
      for (const ep of slice.endpoints) {
        const candidate = makeEndpoint(ep, port.port);
        const have = set.get(candidate.address);
        if (have === undefined || rank(candidate) > rank(have)) set.set(candidate.address, candidate);
      }
    }
  }

  const out = new Map<ServicePortKey, readonly Endpoint[]>();
  for (const [key, set] of byKey) {
    if (set.size === 0) continue;
    const list = Array.from(set.values()).sort(byAddress);
    out.set(key, reuse(list, previous?.get(key)));
  }
  return out;
}

/** Result of {@link buildEndpoints}. */
export interface BuildEndpointsResult {
  /** Endpoints per service port (keys with no endpoints are absent). */
  readonly endpoints: Map<ServicePortKey, readonly Endpoint[]>;
  /** Invalid slices (or slices with invalid parts, whose valid parts are kept). */
  readonly errors: readonly InvalidObjectError[];
}

/**
 * Builds the endpoint lists of service ports from EndpointSlices (of one or several
 * Services): {@link parseEndpointSlice} on each, then {@link mergeEndpointSlices} per Service.
 * When `servicePorts` is given, only endpoints of those service ports are returned.
 */
export function buildEndpoints(
  slices: Iterable<EndpointSlice>,
  opts: EndpointSliceOptions & { readonly servicePorts?: readonly ServicePort[] },
): BuildEndpointsResult {
  const errors: InvalidObjectError[] = [];
  const byService = new Map<string, ParsedEndpointSlice[]>();
  for (const raw of slices) {
    const r = parseEndpointSlice(raw, opts);
    if (r.error) errors.push(r.error);
    if (!r.slice) continue;
    const list = byService.get(r.slice.serviceKey);
    if (list) list.push(r.slice);
    else byService.set(r.slice.serviceKey, [r.slice]);
  }
  const endpoints = new Map<ServicePortKey, readonly Endpoint[]>();
  for (const list of byService.values()) {
    for (const [key, eps] of mergeEndpointSlices(list, opts.servicePorts)) endpoints.set(key, eps);
  }
  return { endpoints, errors };
}
