/**
 * Proxying an upgraded streaming connection (SPDY or WebSocket) to the
 * runtime's streaming server, as kubelet's upgrade-aware proxy does: the
 * client's HTTP Upgrade request is sent on to the CRI streaming URL with its
 * headers (Host rewritten, credentials dropped), then the two sockets are
 * piped both ways until either side closes. The runtime's answer (`101
 * Switching Protocols` or an error) reaches the client unchanged.
 *
 * @module
 */
import type { IncomingMessage } from "node:http";
import { connect as netConnect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { connect as tlsConnect } from "node:tls";

/** Request headers not sent on to the runtime (the kubelet's own credentials and proxy hops). */
const DROPPED_HEADERS = new Set(["host", "authorization", "proxy-authorization", "proxy-connection"]);

/** The request head sent to the runtime for an upgrade request (pure). */
export function upgradeRequestHead(method: string, target: URL, rawHeaders: readonly string[]): string {
  const lines = [`${method} ${target.pathname}${target.search} HTTP/1.1`, `Host: ${target.host}`];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (DROPPED_HEADERS.has(name.toLowerCase())) continue;
    const value = rawHeaders[i + 1]!.replace(/[\r\n]/g, " ");
    lines.push(`${name}: ${value}`);
  }
  return `${lines.join("\r\n")}\r\n\r\n`;
}

/** Options of {@link proxyUpgrade}. */
export interface ProxyUpgradeOptions {
  /** How long connecting to the runtime may take; default 30 s. */
  readonly connectTimeoutMs?: number;
  /** Called when connecting to the runtime fails (before anything was sent to the client). */
  readonly onConnectError: (err: Error) => void;
  /** Called once both sockets are closed. */
  readonly onClose?: () => void;
}

/**
 * Connects to `target` (the CRI streaming URL), sends the client's upgrade
 * request and `head`, and pipes the sockets both ways.
 * @returns the runtime-side socket (destroy it to end the session)
 */
export function proxyUpgrade(
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  target: URL,
  options: ProxyUpgradeOptions,
): Socket {
  const secure = target.protocol === "https:" || target.protocol === "wss:";
  const host = target.hostname.replace(/^\[|\]$/g, "");
  const port = Number(target.port) || (secure ? 443 : 80);
  const upstream: Socket = secure
    ? tlsConnect({ host, port, servername: host, rejectUnauthorized: false })
    : netConnect({ host, port });
  let connected = false;
  let closed = 0;
  const closedOne = () => {
    if (++closed === 2) options.onClose?.();
  };
  upstream.setTimeout(options.connectTimeoutMs ?? 30_000, () => {
    if (!connected) upstream.destroy(new Error(`timed out connecting to ${target.host}`));
  });
  upstream.once(secure ? "secureConnect" : "connect", () => {
    connected = true;
    upstream.setTimeout(0);
    upstream.setNoDelay(true);
    upstream.write(upgradeRequestHead(req.method ?? "GET", target, req.rawHeaders));
    if (head.length > 0) upstream.write(head);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  upstream.on("error", (err) => {
    if (!connected) {
      options.onConnectError(err);
      return;
    }
    client.destroy();
  });
  client.on("error", () => upstream.destroy());
  upstream.once("close", () => {
    closedOne();
    if (connected) client.end(() => client.destroy());
  });
  client.once("close", () => {
    closedOne();
    upstream.destroy();
  });
  return upstream;
}
