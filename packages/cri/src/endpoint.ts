/**
 * Parsing of CRI endpoints (`unix:///run/containerd/containerd.sock`, `/run/crio/crio.sock`,
 * `tcp://127.0.0.1:10010`) into a gRPC target. Pure.
 *
 * @module
 */
import { ConfigError } from "@worknode/core";

/** A parsed CRI endpoint. */
export interface CriEndpoint {
  /** `unix` for a unix socket, `tcp` for host:port. */
  readonly kind: "unix" | "tcp";
  /** The endpoint in canonical form: `unix:///abs/path` or `tcp://host:port`. */
  readonly canonical: string;
  /** The target string handed to @grpc/grpc-js (`unix:///abs/path` or `dns:host:port`). */
  readonly grpcTarget: string;
  /** Socket path for `unix` endpoints. */
  readonly socketPath?: string;
  /** Host and port for `tcp` endpoints. */
  readonly host?: string;
  /** Port for `tcp` endpoints. */
  readonly port?: number;
}

/** Longest unix socket path Linux accepts (`sun_path` is 108 bytes with the terminating NUL). */
export const MAX_UNIX_SOCKET_PATH = 107;

/**
 * Parses a CRI endpoint as crictl and the kubelet accept it: `unix:///path`, a bare absolute
 * path (taken as a unix socket), or `tcp://host:port`.
 *
 * @throws ConfigError when the endpoint is empty, relative, uses another scheme, or names a
 *   socket path longer than {@link MAX_UNIX_SOCKET_PATH} bytes.
 */
export function parseCriEndpoint(endpoint: string): CriEndpoint {
  const raw = endpoint.trim();
  if (raw === "") throw new ConfigError("CRI endpoint is empty");
  if (raw.startsWith("/")) return unixEndpoint(raw, endpoint);
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(raw)?.[1]?.toLowerCase();
  if (scheme === "unix") {
    // unix:///abs/path (RFC form) or unix:/abs/path; unix://relative is not accepted.
    const rest = raw.slice("unix:".length);
    const path = rest.startsWith("//") ? rest.slice(2) : rest;
    if (!path.startsWith("/")) {
      throw new ConfigError(`CRI endpoint ${JSON.stringify(endpoint)}: unix socket path must be absolute`);
    }
    return unixEndpoint(path, endpoint);
  }
  if (scheme === "tcp") {
    const rest = raw.slice("tcp://".length);
    if (!raw.toLowerCase().startsWith("tcp://")) {
      throw new ConfigError(`CRI endpoint ${JSON.stringify(endpoint)}: expected tcp://host:port`);
    }
    const m = /^(\[[0-9a-f:.]+\]|[^:/[\]]+):(\d{1,5})\/?$/i.exec(rest);
    const port = m ? Number(m[2]) : Number.NaN;
    if (!m || !(port > 0 && port < 65536)) {
      throw new ConfigError(`CRI endpoint ${JSON.stringify(endpoint)}: expected tcp://host:port`);
    }
    const host = m[1]!;
    return {
      kind: "tcp",
      canonical: `tcp://${host}:${port}`,
      grpcTarget: `dns:${host}:${port}`,
      host,
      port,
    };
  }
  throw new ConfigError(
    `CRI endpoint ${JSON.stringify(endpoint)}: unsupported scheme (use unix:///path/to/socket or tcp://host:port)`,
  );
}

function unixEndpoint(path: string, original: string): CriEndpoint {
  const normalized = path.replace(/\/{2,}/g, "/");
  if (normalized === "/" || normalized.endsWith("/")) {
    throw new ConfigError(`CRI endpoint ${JSON.stringify(original)}: socket path names a directory`);
  }
  if (Buffer.byteLength(normalized) > MAX_UNIX_SOCKET_PATH) {
    throw new ConfigError(
      `CRI endpoint ${JSON.stringify(original)}: socket path is longer than ${MAX_UNIX_SOCKET_PATH} bytes`,
    );
  }
  return {
    kind: "unix",
    canonical: `unix://${normalized}`,
    grpcTarget: `unix://${normalized}`,
    socketPath: normalized,
  };
}
