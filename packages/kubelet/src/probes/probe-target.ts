/**
 * Where and how a probe connects, without I/O: the container spec of a probed
 * container, named / numeric ports, the target host, the exec command after
 * `$(VAR)` expansion and the httpGet request — following kubelet's prober
 * (pkg/kubelet/prober/prober.go and pkg/probe/http/request.go).
 *
 * @module
 */
import type { Pod } from "@worknode/core";
import { WorknodeError } from "@worknode/core";
import { expandVariables } from "../expansion.js";
import type { Container } from "../pod-spec.js";
import type { ProbeSpec } from "../probe-tracker.js";

/**
 * A probe could not run at all (no handler, unknown named port, the runtime
 * failed to exec): kubelet's "probe errored". kubelet discards such a result
 * instead of counting it as a failure.
 */
export class ProbeError extends WorknodeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("PROBE", message, options);
  }
}

/** The Kubernetes minor version probes claim in `User-Agent: kube-probe/<major.minor>`. */
export const DEFAULT_PROBE_KUBE_VERSION = "1.36";

/** kubelet's probe user agent, `kube-probe/<major.minor>`. */
export function probeUserAgent(kubeVersion: string = DEFAULT_PROBE_KUBE_VERSION): string {
  return `kube-probe/${kubeVersion}`;
}

/** The handler kinds of a probe. */
export type ProbeHandlerKind = "exec" | "httpGet" | "tcpSocket" | "grpc";

/** Which handler a probe uses (the first set of exec, httpGet, tcpSocket, grpc), or undefined when none is set. */
export function probeHandlerKind(probe: ProbeSpec): ProbeHandlerKind | undefined {
  if (probe.exec) return "exec";
  if (probe.httpGet) return "httpGet";
  if (probe.tcpSocket) return "tcpSocket";
  if (probe.grpc) return "grpc";
  return undefined;
}

/** Finds a container spec of the pod by name (app containers first, then init containers). */
export function findContainerSpec(pod: Pod, name: string): Container | undefined {
  return (
    pod.spec?.containers?.find((c) => c.name === name) ??
    pod.spec?.initContainers?.find((c) => c.name === name)
  );
}

/**
 * kubelet's `ResolveContainerPort`: a number is used as is, a string is looked up
 * among the container's named ports (and, failing that, parsed as a number).
 * @throws ProbeError when the name is unknown or the port is outside 1–65535
 */
export function resolveProbePort(
  port: number | string | undefined,
  container: Container | undefined,
): number {
  let resolved: number;
  if (typeof port === "number") resolved = port;
  else if (typeof port === "string") {
    const named = container?.ports?.find((p) => p.name === port);
    if (named) resolved = named.containerPort;
    else if (/^[+-]?\d+$/.test(port)) resolved = Number(port);
    else throw new ProbeError(`couldn't find port: ${port} in container ${container?.name ?? "<unknown>"}`);
  } else throw new ProbeError("probe port is not set");
  if (!Number.isInteger(resolved) || resolved <= 0 || resolved >= 65536) {
    throw new ProbeError(`invalid port number: ${resolved}`);
  }
  return resolved;
}

/** The probe's target host: its own `host` when set, else the pod IP. */
export function probeHost(host: string | undefined, podIP: string): string {
  return host ? host : podIP;
}

/** `host:port` with IPv6 addresses in brackets (Go's `net.JoinHostPort`). */
export function joinHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The exec probe's command with `$(VAR)` expanded from the container's `env`
 * values only (kubelet's `ExpandContainerCommandOnlyStatic`: `valueFrom`
 * variables count as empty strings; a later definition wins).
 */
export function expandProbeCommand(command: readonly string[], container: Container | undefined): string[] {
  const vars = new Map<string, string>();
  for (const e of container?.env ?? []) vars.set(e.name, e.value ?? "");
  return command.map((c) => expandVariables(c, (name) => vars.get(name)));
}

/** A resolved httpGet probe request. */
export interface HttpProbeRequest {
  /** `http` or `https`. */
  readonly scheme: "http" | "https";
  /** Host to connect to (IP or name, IPv6 without brackets). */
  readonly host: string;
  /** Port to connect to. */
  readonly port: number;
  /** Request target: path and query, always starting with `/`. */
  readonly path: string;
  /** Headers in order, as `[name, value]`; `Host` among them overrides the Host header. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
}

/**
 * Builds the httpGet request kubelet would send: the URL from scheme, host (or
 * pod IP), port and path; the probe's headers, then `User-Agent: kube-probe/x.y`
 * and `Accept: *\/*` unless the probe sets them (either set to an empty value is not sent).
 * @throws ProbeError for an unknown scheme or port
 */
export function buildHttpProbeRequest(
  probe: ProbeSpec,
  container: Container | undefined,
  podIP: string,
  userAgent: string = probeUserAgent(),
): HttpProbeRequest {
  const action = probe.httpGet;
  if (!action) throw new ProbeError("probe has no httpGet action");
  const scheme = (action.scheme ?? "HTTP").toLowerCase();
  if (scheme !== "http" && scheme !== "https") throw new ProbeError(`unsupported scheme: ${action.scheme}`);
  const port = resolveProbePort(action.port, container);
  const host = probeHost(action.host, podIP);
  if (!host) throw new ProbeError("no address to probe: the pod has no IP yet and the probe sets no host");
  let path = (action.path ?? "").split("#")[0] ?? "";
  if (!path.startsWith("/")) path = `/${path}`;

  let headers: Array<readonly [string, string]> = (action.httpHeaders ?? []).map(
    (h) => [h.name, h.value] as const,
  );
  const named = (n: string) => headers.filter(([name]) => name.toLowerCase() === n);
  const ua = named("user-agent");
  if (ua.length === 0) headers.push(["User-Agent", userAgent]);
  else if (ua[0]![1] === "") headers = headers.filter(([name]) => name.toLowerCase() !== "user-agent");
  const accept = named("accept");
  if (accept.length === 0) headers.push(["Accept", "*/*"]);
  else if (accept[0]![1] === "") headers = headers.filter(([name]) => name.toLowerCase() !== "accept");
  return { scheme, host, port, path, headers };
}
