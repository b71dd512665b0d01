/**
 * How a Pod becomes an EndpointSlice endpoint, the rules of the
 * kube-controller-manager's EndpointSlice controller: which pods count, their
 * conditions, addresses per family and target ports. Pure functions, used by
 * the local endpoint-slice controller.
 *
 * @module
 */
import type { EndpointSlice, Pod, Service } from "../kube/objects.js";
import { type IPFamily, ipFamilyOf, normalizeIP } from "../net/ip.js";

/** One endpoint of an EndpointSlice, in wire form. */
export type SliceEndpoint = NonNullable<EndpointSlice["endpoints"]>[number];
/** One port of an EndpointSlice, in wire form. */
export type SlicePort = NonNullable<EndpointSlice["ports"]>[number];
/** One port of a Service, in wire form. */
type ServicePortSpec = NonNullable<NonNullable<Service["spec"]>["ports"]>[number];

/**
 * True when every `key: value` of `selector` is among `labels` (equality-based, as a
 * Service selector is). An empty or missing selector selects nothing: such a Service
 * has no selector at all.
 */
export function selectorMatches(
  selector: Readonly<Record<string, string>> | undefined,
  labels: Readonly<Record<string, string>> | undefined,
): boolean {
  if (!hasSelector(selector)) return false;
  for (const [k, v] of Object.entries(selector as Record<string, string>)) {
    if (labels?.[k] !== v) return false;
  }
  return true;
}

/** True when `selector` has at least one entry. */
export function hasSelector(selector: Readonly<Record<string, string>> | undefined | null): boolean {
  return selector !== undefined && selector !== null && Object.keys(selector).length > 0;
}

/** True when the pod's `Ready` condition has status `True`. */
export function isPodReady(pod: Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;
}

/** True when the pod is being deleted (`metadata.deletionTimestamp` set). */
export function isPodTerminating(pod: Pod): boolean {
  const ts = pod.metadata?.deletionTimestamp;
  return ts !== undefined && ts !== null && ts !== "";
}

/** True when the pod reached a terminal phase (`Succeeded` or `Failed`). */
export function isPodTerminal(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return phase === "Succeeded" || phase === "Failed";
}

/**
 * The pod's IP of `family`, normalised: the first matching entry of `status.podIPs`,
 * or `status.podIP` when `podIPs` is empty. `undefined` when the pod has none.
 */
export function podAddress(pod: Pod, family: IPFamily): string | undefined {
  const listed = pod.status?.podIPs?.map((p) => p.ip) ?? [];
  const candidates = listed.length > 0 ? listed : [pod.status?.podIP];
  for (const raw of candidates) {
    if (typeof raw !== "string") continue;
    const ip = normalizeIP(raw);
    if (ip !== undefined && ipFamilyOf(ip) === family) return ip;
  }
  return undefined;
}

/**
 * True when the pod may appear in EndpointSlices at all: not in a terminal phase and
 * with at least one IP. Terminating pods are kept (with `terminating: true`).
 */
export function podEligible(pod: Pod): boolean {
  if (isPodTerminal(pod)) return false;
  return podAddress(pod, "IPv4") !== undefined || podAddress(pod, "IPv6") !== undefined;
}

/**
 * The target port of `servicePort` on `pod`: a number as is (an unset or zero
 * `targetPort` means the service port), a name looked up among the ports of the
 * pod's containers and sidecar init containers (`restartPolicy: Always`) with the
 * same name and protocol. `undefined` when a name matches no container port.
 */
export function findTargetPort(pod: Pod, servicePort: ServicePortSpec): number | undefined {
  const target: unknown = servicePort.targetPort;
  if (typeof target === "number") return target > 0 ? target : servicePort.port;
  if (target === undefined || target === null || target === "") return servicePort.port;
  if (typeof target !== "string") return undefined;
  const protocol = servicePort.protocol ?? "TCP";
  const containers = [
    ...(pod.spec?.containers ?? []),
    ...(pod.spec?.initContainers ?? []).filter((c) => c.restartPolicy === "Always"),
  ];
  for (const c of containers) {
    for (const p of c.ports ?? []) {
      if (p.name === target && (p.protocol ?? "TCP") === protocol) return p.containerPort;
    }
  }
  return undefined;
}

/**
 * The EndpointSlice ports of `pod` for `service`: one per service port whose target
 * port resolves on the pod, named like the service port, in service-port order.
 */
export function podEndpointPorts(service: Service, pod: Pod): SlicePort[] {
  const ports: SlicePort[] = [];
  for (const sp of service.spec?.ports ?? []) {
    const port = findTargetPort(pod, sp);
    if (port === undefined) continue;
    ports.push({
      name: sp.name ?? "",
      port,
      protocol: sp.protocol ?? "TCP",
      ...(sp.appProtocol ? { appProtocol: sp.appProtocol } : {}),
    });
  }
  return ports;
}

/** Options of {@link podToEndpoint}. */
export interface PodToEndpointOptions {
  /** Node name written when the pod's `spec.nodeName` is empty. */
  readonly nodeName?: string;
  /** Zone of the node, written as the endpoint's `zone` when set. */
  readonly zone?: string;
}

/**
 * The endpoint of `pod` in a slice of `family` for `service`, or `undefined` when
 * the pod has no IP of that family. `serving` = pod Ready; `terminating` =
 * deletionTimestamp set; `ready` = serving and not terminating (always true when the
 * Service publishes not-ready addresses). `hostname` is set when the pod's
 * `spec.hostname` is set and its `spec.subdomain` names the Service.
 */
export function podToEndpoint(
  pod: Pod,
  service: Service,
  family: IPFamily,
  options: PodToEndpointOptions = {},
): SliceEndpoint | undefined {
  const ip = podAddress(pod, family);
  if (ip === undefined) return undefined;
  const serving = isPodReady(pod);
  const terminating = isPodTerminating(pod);
  const ready = service.spec?.publishNotReadyAddresses === true || (serving && !terminating);
  const nodeName = pod.spec?.nodeName || options.nodeName;
  const hostname = pod.spec?.hostname;
  const setHostname =
    typeof hostname === "string" &&
    hostname !== "" &&
    pod.spec?.subdomain === service.metadata?.name &&
    (pod.metadata?.namespace ?? "default") === (service.metadata?.namespace ?? "default");
  return {
    addresses: [ip],
    conditions: { ready, serving, terminating },
    ...(setHostname ? { hostname } : {}),
    ...(nodeName ? { nodeName } : {}),
    targetRef: {
      kind: "Pod",
      namespace: pod.metadata?.namespace ?? "default",
      name: pod.metadata?.name ?? "",
      ...(pod.metadata?.uid ? { uid: pod.metadata.uid } : {}),
    },
    ...(options.zone ? { zone: options.zone } : {}),
  };
}

/**
 * The address types the EndpointSlices of `service` carry: `spec.ipFamilies` when
 * set, else the family of its ClusterIP(s), else (headless, no families) both.
 */
export function serviceAddressTypes(service: Service): IPFamily[] {
  const out: IPFamily[] = [];
  const add = (f: IPFamily | undefined): void => {
    if (f !== undefined && !out.includes(f)) out.push(f);
  };
  for (const f of service.spec?.ipFamilies ?? []) {
    if (f === "IPv4" || f === "IPv6") add(f);
  }
  if (out.length > 0) return out;
  const clusterIPs = service.spec?.clusterIPs?.length ? service.spec.clusterIPs : [service.spec?.clusterIP];
  for (const ip of clusterIPs) {
    if (typeof ip === "string" && ip !== "" && ip !== "None") add(ipFamilyOf(ip));
  }
  if (out.length > 0) return out;
  return ["IPv4", "IPv6"];
}
