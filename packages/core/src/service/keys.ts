/**
 * String keys of services, service ports and endpoints.
 *
 * @module
 */
import type { Protocol, ServicePortKey, ServicePortName } from "./model.js";

/**
 * The {@link ServicePortKey} of a {@link ServicePortName}: `namespace/name:port/protocol`
 * (for example `default/web:http/TCP`, or `default/dns:/UDP` for an unnamed port).
 */
export function servicePortKey(name: ServicePortName): ServicePortKey {
  return `${name.namespace}/${name.name}:${name.port}/${name.protocol}`;
}

/** The store key of a Service, `namespace/name` (as {@link objectKey} computes it). */
export function serviceKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/**
 * Parses a {@link ServicePortKey} back into its {@link ServicePortName}; `undefined` when malformed.
 * Port names and object names cannot contain `/` or `:`, so the split is unambiguous.
 */
export function parseServicePortKey(key: ServicePortKey): ServicePortName | undefined {
  const slash = key.indexOf("/");
  const colon = key.indexOf(":", slash + 1);
  const lastSlash = key.lastIndexOf("/");
  if (slash <= 0 || colon < 0 || lastSlash <= colon) return undefined;
  const protocol = key.slice(lastSlash + 1);
  if (protocol !== "TCP" && protocol !== "UDP" && protocol !== "SCTP") return undefined;
  return {
    namespace: key.slice(0, slash),
    name: key.slice(slash + 1, colon),
    port: key.slice(colon + 1, lastSlash),
    protocol: protocol as Protocol,
  };
}

/** The Service key (`namespace/name`) a {@link ServicePortKey} belongs to. */
export function serviceKeyOfPortKey(key: ServicePortKey): string {
  const colon = key.indexOf(":", key.indexOf("/") + 1);
  return colon < 0 ? key : key.slice(0, colon);
}

/** Formats an address and port as `ip:port`, or `[ip]:port` for IPv6. */
export function joinHostPort(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}
