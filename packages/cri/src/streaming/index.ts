/**
 * CRI streaming: exec, attach and port-forward over the runtime's streaming server.
 *
 * @module
 */
export {
  ChannelSocket,
  type ChannelSocketOptions,
  MAX_FRAME_DATA_BYTES,
  webSocketUrl,
} from "./channel-socket.js";
export {
  CriStreamError,
  type CriStreamOperation,
  CriStreamProtocolError,
  type StreamStatus,
  type StreamStatusCause,
} from "./errors.js";
export {
  type ForwardPortOptions,
  listenForward,
  type PortForwardDialer,
  PortForwardListener,
} from "./forward-port.js";
export {
  type ChannelFrame,
  decodeChannelFrame,
  encodeChannelFrame,
  encodeResize,
  PortPrefixReader,
  parseRemoteCommandOutcome,
  type RemoteCommandOutcome,
  type TerminalSize,
} from "./frames.js";
export { openPortForwardStream, PortForwardStream } from "./port-forward.js";
export {
  BASE64_CHANNEL_PROTOCOL,
  CHANNEL_PROTOCOL,
  type ChannelProtocolTraits,
  PORT_FORWARD_PROTOCOLS,
  portForwardChannels,
  protocolTraits,
  REMOTE_COMMAND_PROTOCOLS,
  RemoteCommandChannel,
  V4_BASE64_CHANNEL_PROTOCOL,
  V4_CHANNEL_PROTOCOL,
} from "./protocol.js";
export {
  pumpStdin,
  RemoteCommandReceiver,
  type RemoteCommandResult,
  RemoteCommandSession,
  type RemoteCommandStreams,
  type RemoteCommandTransport,
  type RemoteCommandTransportName,
  startSession,
} from "./remote-command.js";
export {
  encodeDataFrames,
  encodeHeaderBlock,
  encodePing,
  encodeRstStream,
  encodeSynStream,
  SPDY_FLAG_FIN,
  SPDY_MAX_FRAME_PAYLOAD,
  SPDY_VERSION,
  type SpdyFrame,
  SpdyFrameParser,
  SpdyFrameType,
  SpdyHeaderWriter,
} from "./spdy-frames.js";
export {
  remoteCommandStreamIds,
  type SpdyStreamFlags,
  type SpdyStreamKind,
  startSpdyRemoteCommand,
} from "./spdy-remote-command.js";
export {
  type AttachStreamOptions,
  CriStreamingClient,
  type ExecStreamOptions,
  type PortForwardOptions,
} from "./streaming-client.js";
export { startWebSocketRemoteCommand } from "./websocket-remote-command.js";
