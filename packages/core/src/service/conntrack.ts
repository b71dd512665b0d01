/**
 * Which UDP / SCTP conntrack entries go stale when a service port or its
 * endpoints change.
 *
 * @module
 */
import type { Endpoint, ServicePort, StaleConntrack } from "./model.js";
import { serviceIPs } from "./ports.js";

/** True for protocols whose conntrack entries outlive a backend change (UDP and SCTP). */
export function needsConntrackCleanup(sp: ServicePort | undefined): boolean {
  return sp !== undefined && (sp.protocol === "UDP" || sp.protocol === "SCTP");
}

function familyOfIP(ip: string): "IPv4" | "IPv6" {
  return ip.includes(":") ? "IPv6" : "IPv4";
}

function hasServing(eps: readonly Endpoint[] | undefined): boolean {
  if (!eps) return false;
  for (const ep of eps) if (ep.serving) return true;
  return false;
}

/**
 * The conntrack entries to flush after one service port changed from
 * (`prevPort`, `prevEndpoints`) to (`nextPort`, `nextEndpoints`); empty unless one of the
 * ports is UDP or SCTP. Three cases, following kube-proxy:
 *
 * 1. **Frontends that went away** (the port was deleted, or lost a cluster, external or
 *    load-balancer IP, or its port number or node port changed): every entry for that
 *    `serviceIP:port` (or node port), whatever the backend.
 * 2. **Endpoints that stopped serving** (gone, or no longer `serving`): the entries from each
 *    remaining frontend (every service IP of the endpoint's family, and the node port) to
 *    that endpoint, so that clients move to another backend.
 * 3. **Newly active ports** (no serving endpoint before, at least one now): every entry of
 *    each frontend, because packets sent while there was no backend created entries that
 *    bypass the new DNAT rules.
 *
 * Entries are deduplicated; the order is deterministic.
 */
export function staleConntrackEntries(
  prevPort: ServicePort | undefined,
  nextPort: ServicePort | undefined,
  prevEndpoints: readonly Endpoint[] | undefined,
  nextEndpoints: readonly Endpoint[] | undefined,
): StaleConntrack[] {
  const out: StaleConntrack[] = [];
  const seen = new Set<string>();
  const add = (entry: StaleConntrack) => {
    const id = `${entry.serviceIP}|${entry.port}|${entry.protocol}|${entry.endpoint ?? ""}`;
    if (seen.has(id)) return;
    seen.add(id);
    out.push(entry);
  };

  const prevCt = needsConntrackCleanup(prevPort);
  const nextCt = needsConntrackCleanup(nextPort);
  if (!prevCt && !nextCt) return out;

  // 1. Frontends of the previous port that the next one no longer has.
  if (prevCt && prevPort) {
    const same = nextPort !== undefined && nextPort.protocol === prevPort.protocol;
    const nextIPs = same && nextPort.port === prevPort.port ? new Set(serviceIPs(nextPort)) : undefined;
    for (const ip of serviceIPs(prevPort)) {
      if (!nextIPs?.has(ip)) add({ serviceIP: ip, port: prevPort.port, protocol: prevPort.protocol });
    }
    if (prevPort.nodePort !== 0 && !(same && nextPort.nodePort === prevPort.nodePort)) {
      add({ serviceIP: "", port: prevPort.nodePort, protocol: prevPort.protocol });
    }
  }
  if (!nextCt || !nextPort) return out;
  const ips = serviceIPs(nextPort);

  // 3. Newly active: flush everything sent to the frontends while there was no backend.
  if (!hasServing(prevEndpoints) && hasServing(nextEndpoints)) {
    for (const ip of ips) add({ serviceIP: ip, port: nextPort.port, protocol: nextPort.protocol });
    if (nextPort.nodePort !== 0) add({ serviceIP: "", port: nextPort.nodePort, protocol: nextPort.protocol });
  }

  // 2. Endpoints that were serving and are gone or no longer serving.
  if (prevEndpoints && prevEndpoints.length > 0) {
    const nextByAddress = new Map<string, Endpoint>();
    for (const ep of nextEndpoints ?? []) nextByAddress.set(ep.address, ep);
    for (const ep of prevEndpoints) {
      if (!ep.serving || nextByAddress.get(ep.address)?.serving) continue;
      for (const ip of ips) {
        if (familyOfIP(ip) !== ep.family) continue;
        add({ serviceIP: ip, port: nextPort.port, protocol: nextPort.protocol, endpoint: ep.address });
      }
      if (nextPort.nodePort !== 0) {
        add({ serviceIP: "", port: nextPort.nodePort, protocol: nextPort.protocol, endpoint: ep.address });
      }
    }
  }
  return out;
}
