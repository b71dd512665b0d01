/**
 * Service fixtures every `Proxier` backend's tests render, in kube-proxy's test naming:
 * Service `svc<n>` in namespace `ns<n>` with cluster IP `172.30.0.4<n>` and port `p80`, its
 * endpoints in 10.180.0.0/16 (IPv6: fd00:10::/64). The backends' expected outputs differ; the
 * inputs are the same.
 *
 * @module
 */
import { ConfigError, type EndpointSlice, type Service } from "@worknode/core";
import { type EpSpec, type PortSpec, type SliceSpec, type SvcSpec, slice, svc } from "./service-objects.js";

/** Port `p80`: 80/TCP. */
export const P80: readonly PortSpec[] = [{ name: "p80", port: 80 }];

/** Services and their EndpointSlices. */
export interface ServiceFixture {
  readonly services: Service[];
  readonly slices: EndpointSlice[];
}

function checkN(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > 9)
    throw new ConfigError(`fixture service number must be 1-9: ${n}`);
}

/**
 * Service `svc<n>` in namespace `ns<n>` (n 1-9), ClusterIP `172.30.0.4<n>`, port `p80`;
 * `extra` sets or overrides any other field.
 *
 * @throws ConfigError when `n` is not 1-9
 */
export function fixtureService(n: number, extra: Partial<SvcSpec> = {}): Service {
  checkN(n);
  return svc({ ns: `ns${n}`, name: `svc${n}`, clusterIP: `172.30.0.4${n}`, ports: P80, ...extra });
}

/**
 * An EndpointSlice of `svc<n>` with port `p80` over `endpoints` (an address alone is a ready
 * endpoint without a node); `extra` sets or overrides any other field (e.g. `ipv6`, `name`).
 *
 * @throws ConfigError when `n` is not 1-9
 */
export function fixtureSlice(
  n: number,
  endpoints: readonly (string | EpSpec)[],
  extra: Partial<SliceSpec> = {},
): EndpointSlice {
  checkN(n);
  return slice({
    ns: `ns${n}`,
    service: `svc${n}`,
    ports: P80,
    endpoints: endpoints.map((e) => (typeof e === "string" ? { ip: e } : e)),
    ...extra,
  });
}

/**
 * The IPv6 EndpointSlice `svc<n>-v6` of a dual-stack `svc<n>`.
 *
 * @throws ConfigError when `n` is not 1-9
 */
export function fixtureSliceV6(n: number, endpoints: readonly (string | EpSpec)[]): EndpointSlice {
  return fixtureSlice(n, endpoints, { name: `svc${n}-v6`, ipv6: true });
}

/**
 * Three ClusterIP services: `svc1` (endpoint 10.180.0.1), `svc2` (10.180.0.2 and 10.180.0.22)
 * and `svc3` (10.180.0.3): the start of partial-render tests.
 */
export function threeServices(): ServiceFixture {
  return {
    services: [fixtureService(1), fixtureService(2), fixtureService(3)],
    slices: [
      fixtureSlice(1, ["10.180.0.1"]),
      fixtureSlice(2, ["10.180.0.2", "10.180.0.22"]),
      fixtureSlice(3, ["10.180.0.3"]),
    ],
  };
}

/**
 * Dual-stack NodePort `svc1` (cluster IPs 172.30.0.41 and fd00:30::41, node port 3001) with
 * endpoint 10.180.0.1 and IPv6 endpoints fd00:10::1 and fd00:10::2.
 */
export function dualStackNodePort(): ServiceFixture {
  return {
    services: [fixtureNodePort(1, 3001, { clusterIP: ["172.30.0.41", "fd00:30::41"] })],
    slices: [fixtureSlice(1, ["10.180.0.1"]), fixtureSliceV6(1, ["fd00:10::1", "fd00:10::2"])],
  };
}

/**
 * NodePort `svc<n>` (see {@link fixtureService}) with port `p80` on node port `nodePort`.
 *
 * @throws ConfigError when `n` is not 1-9
 */
export function fixtureNodePort(n: number, nodePort: number, extra: Partial<SvcSpec> = {}): Service {
  return fixtureService(n, { type: "NodePort", ports: [{ name: "p80", port: 80, nodePort }], ...extra });
}

/**
 * LoadBalancer `svc<n>` (see {@link fixtureService}) with port `p80` on node port `nodePort`;
 * its load-balancer IPs, source ranges and policies come in `extra`.
 *
 * @throws ConfigError when `n` is not 1-9
 */
export function fixtureLoadBalancer(n: number, nodePort: number, extra: Partial<SvcSpec> = {}): Service {
  return fixtureService(n, { type: "LoadBalancer", ports: [{ name: "p80", port: 80, nodePort }], ...extra });
}

/**
 * LoadBalancer `svc2` with `externalTrafficPolicy: Local`: node port 3001, load-balancer IP
 * 1.2.3.4; `extra` adds fields (external IPs, a health-check node port …).
 */
export function localLoadBalancer(extra: Partial<SvcSpec> = {}): Service {
  return fixtureLoadBalancer(2, 3001, { lbIPs: ["1.2.3.4"], etp: "Local", ...extra });
}

/**
 * Render options of the IPv6 golden renders: masquerade-all, node ports on 2001:db8::/64 and
 * 192.168.0.0/24 (only the first is of the family).
 */
export function ipv6MasqueradeAllOptions(): {
  family: "IPv6";
  masqueradeAll: boolean;
  nodePortAddresses: string[];
} {
  return { family: "IPv6", masqueradeAll: true, nodePortAddresses: ["2001:db8::/64", "192.168.0.0/24"] };
}
