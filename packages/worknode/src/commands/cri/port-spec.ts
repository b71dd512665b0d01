/**
 * Pure parsing of `worknode cri port-forward`'s `[LOCAL:]REMOTE` arguments, as kubectl and
 * crictl read them: `8080:80` listens on 8080, `80` listens on 80, `:80` on a free port.
 *
 * @module
 */
import { ConfigError } from "@worknode/core";

/** One forwarding: a local port (0: pick a free one) to a port in the pod. */
export interface PortSpec {
  readonly localPort: number;
  readonly remotePort: number;
}

function port(text: string, what: string, spec: string, allowZero: boolean): number {
  if (!/^\d{1,5}$/.test(text))
    throw new ConfigError(`port-forward: ${what} port in "${spec}" is not a number`);
  const n = Number(text);
  if (n > 65535 || (n === 0 && !allowZero))
    throw new ConfigError(`port-forward: ${what} port in "${spec}" must be in 1-65535`);
  return n;
}

/**
 * Parses one `[LOCAL:]REMOTE` argument.
 *
 * @throws ConfigError for anything else.
 */
export function parsePortSpec(spec: string): PortSpec {
  const parts = spec.split(":");
  if (parts.length === 1) {
    const remotePort = port(parts[0]!, "remote", spec, false);
    return { localPort: remotePort, remotePort };
  }
  if (parts.length !== 2) throw new ConfigError(`port-forward: "${spec}" is not [LOCAL:]REMOTE`);
  const [local, remote] = parts as [string, string];
  return {
    localPort: local === "" ? 0 : port(local, "local", spec, true),
    remotePort: port(remote, "remote", spec, false),
  };
}
