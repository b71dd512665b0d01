/**
 * Service environment variables (pkg/kubelet/envvars and kubelet's
 * `getServiceEnvVarMap`): for every Service with a cluster IP in the pod's
 * namespace (when `enableServiceLinks` is not false), plus the `kubernetes`
 * Service of the `default` namespace (always), `<NAME>_SERVICE_HOST`,
 * `<NAME>_SERVICE_PORT`, `<NAME>_SERVICE_PORT_<PORT NAME>` and the Docker link
 * variables `<NAME>_PORT`, `<NAME>_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR]`.
 *
 * @module
 */
import type { Pod, Service } from "@worknode/core";
import type { EnvEntry } from "../env.js";

/** Services whose variables every pod gets, from the `default` namespace. */
export const MASTER_SERVICES: readonly string[] = ["kubernetes"];

/** `my-svc` → `MY_SVC` (envvars `makeEnvVariableName`). */
export function serviceEnvName(name: string): string {
  return name.toUpperCase().replaceAll("-", "_");
}

function hasClusterIP(s: Service): boolean {
  const ip = s.spec?.clusterIP;
  return ip !== undefined && ip !== "" && ip !== "None";
}

function joinHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The variables of one Service (envvars `FromServices` for one entry). */
export function serviceVariables(s: Service): EnvEntry[] {
  const prefix = serviceEnvName(s.metadata?.name ?? "");
  const ip = s.spec?.clusterIP ?? "";
  const ports = s.spec?.ports ?? [];
  const out: EnvEntry[] = [{ key: `${prefix}_SERVICE_HOST`, value: ip }];
  if (ports[0]) out.push({ key: `${prefix}_SERVICE_PORT`, value: String(ports[0].port) });
  for (const p of ports) {
    if (p.name) out.push({ key: `${prefix}_SERVICE_PORT_${serviceEnvName(p.name)}`, value: String(p.port) });
  }
  ports.forEach((p, i) => {
    const proto = p.protocol || "TCP";
    const url = `${proto.toLowerCase()}://${joinHostPort(ip, p.port)}`;
    if (i === 0) out.push({ key: `${prefix}_PORT`, value: url });
    const pp = `${prefix}_PORT_${p.port}_${proto.toUpperCase()}`;
    out.push(
      { key: pp, value: url },
      { key: `${pp}_PROTO`, value: proto.toLowerCase() },
      { key: `${pp}_PORT`, value: String(p.port) },
      { key: `${pp}_ADDR`, value: ip },
    );
  });
  return out;
}

/**
 * The service variables of a pod (see the module notes); services are taken in
 * name order, so the result is stable.
 */
export function serviceEnvironment(pod: Pod, services: readonly Service[]): EnvEntry[] {
  const ns = pod.metadata?.namespace ?? "";
  const links = pod.spec?.enableServiceLinks !== false;
  const chosen = new Map<string, Service>();
  for (const s of services) {
    if (!hasClusterIP(s)) continue;
    const name = s.metadata?.name ?? "";
    const sns = s.metadata?.namespace ?? "";
    if (sns === "default" && MASTER_SERVICES.includes(name)) {
      if (!chosen.has(name)) chosen.set(name, s);
    } else if (sns === ns && links) {
      chosen.set(name, s);
    }
  }
  return [...chosen.keys()].sort().flatMap((n) => serviceVariables(chosen.get(n) as Service));
}
