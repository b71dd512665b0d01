/**
 * The wire constants of the CRI streaming server's WebSocket protocols, as served by
 * containerd 1.6 and CRI-O (both embed the kubelet's `cri/streaming` package):
 *
 * - exec / attach (`remotecommand`) accept the subprotocols `v4.channel.k8s.io`,
 *   `v4.base64.channel.k8s.io`, `channel.k8s.io`, `base64.channel.k8s.io` and none; the
 *   stream-close capable `v5.channel.k8s.io` is **not** offered, so stdin cannot be half-closed.
 * - port-forward accepts `v4.channel.k8s.io`, `v4.base64.channel.k8s.io` and none, with one
 *   data + error channel pair per port of the `PortForward` request.
 *
 * @module
 */

/** `v4.channel.k8s.io`: binary frames, a channel byte first; v4 status JSON on the error channel. */
export const V4_CHANNEL_PROTOCOL = "v4.channel.k8s.io";
/** `v4.base64.channel.k8s.io`: text frames, an ASCII channel digit then base64 data. */
export const V4_BASE64_CHANNEL_PROTOCOL = "v4.base64.channel.k8s.io";
/** `channel.k8s.io`: binary frames; the error channel carries a plain message (pre-v4). */
export const CHANNEL_PROTOCOL = "channel.k8s.io";
/** `base64.channel.k8s.io`: the base64 form of {@link CHANNEL_PROTOCOL}. */
export const BASE64_CHANNEL_PROTOCOL = "base64.channel.k8s.io";

/** The subprotocols this client offers for exec / attach, preferred first. */
export const REMOTE_COMMAND_PROTOCOLS: readonly string[] = [
  V4_CHANNEL_PROTOCOL,
  V4_BASE64_CHANNEL_PROTOCOL,
  CHANNEL_PROTOCOL,
  BASE64_CHANNEL_PROTOCOL,
];
/** The subprotocols this client offers for port-forward, preferred first. */
export const PORT_FORWARD_PROTOCOLS: readonly string[] = [V4_CHANNEL_PROTOCOL, V4_BASE64_CHANNEL_PROTOCOL];

/** The channels of exec / attach: POSIX fds for the standard streams, then error and resize. */
export const RemoteCommandChannel = {
  STDIN: 0,
  STDOUT: 1,
  STDERR: 2,
  /** Written once by the server: the command's outcome (a v1 `Status` in v4). */
  ERROR: 3,
  /** Written by the client: `{"Width":w,"Height":h}` terminal sizes (TTY sessions). */
  RESIZE: 4,
} as const;

/** How a subprotocol encodes frames and statuses. */
export interface ChannelProtocolTraits {
  /** Frames are text: an ASCII channel digit followed by base64 data. */
  readonly base64: boolean;
  /** The error channel carries a v1 `Status` JSON (v4) rather than a plain message. */
  readonly statusJson: boolean;
}

/** The traits of a negotiated subprotocol (`""`: the server picked none, which means `channel.k8s.io`). */
export function protocolTraits(protocol: string): ChannelProtocolTraits {
  return {
    base64: protocol === V4_BASE64_CHANNEL_PROTOCOL || protocol === BASE64_CHANNEL_PROTOCOL,
    statusJson: protocol === V4_CHANNEL_PROTOCOL || protocol === V4_BASE64_CHANNEL_PROTOCOL,
  };
}

/** Port-forward channel of port number `index` (0-based, in request order): data is even, error odd. */
export function portForwardChannels(index: number): { readonly data: number; readonly error: number } {
  return { data: index * 2, error: index * 2 + 1 };
}
