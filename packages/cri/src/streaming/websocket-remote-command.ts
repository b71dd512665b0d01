/**
 * exec / attach over the streaming server's WebSocket protocol (`v4.channel.k8s.io` and the
 * older channel protocols): channel 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize.
 *
 * @module
 */
import { ChannelSocket } from "./channel-socket.js";
import type { CriStreamOperation } from "./errors.js";
import type { ChannelFrame } from "./frames.js";
import { REMOTE_COMMAND_PROTOCOLS, RemoteCommandChannel } from "./protocol.js";
import {
  RemoteCommandReceiver,
  type RemoteCommandSession,
  type RemoteCommandStreams,
  type RemoteCommandTransport,
  startSession,
} from "./remote-command.js";

/**
 * Dials an exec / attach streaming URL over WebSocket and starts the session.
 *
 * @throws CriStreamError when the upgrade fails.
 */
export async function startWebSocketRemoteCommand(
  url: string,
  operation: CriStreamOperation,
  streams: RemoteCommandStreams,
): Promise<RemoteCommandSession> {
  const receiver = new RemoteCommandReceiver(operation, streams);
  let statusJson = true;
  const onFrame = ({ channel, data }: ChannelFrame) => {
    if (channel === RemoteCommandChannel.STDOUT) receiver.stdout(data);
    else if (channel === RemoteCommandChannel.STDERR) receiver.stderr(data);
    else if (channel === RemoteCommandChannel.ERROR) receiver.error(data);
  };
  const socket = await ChannelSocket.open({
    url,
    protocols: REMOTE_COMMAND_PROTOCOLS,
    operation,
    onFrame,
    onClose: (error) => receiver.closed(error, statusJson),
    ...(streams.signal ? { signal: streams.signal } : {}),
  });
  statusJson = socket.traits.statusJson;
  const transport: RemoteCommandTransport = {
    protocol: socket.protocol,
    get writable() {
      return socket.writable;
    },
    sendStdin: (data) => socket.send(RemoteCommandChannel.STDIN, data),
    // v4 has no half-close (v5.channel.k8s.io's CLOSE signal is not served).
    endStdin: async () => {},
    sendResize: (message) => socket.send(RemoteCommandChannel.RESIZE, message),
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    close: () => socket.close(),
  };
  return startSession(transport, receiver, streams);
}
