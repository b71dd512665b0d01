/**
 * Port-forward over the streaming server's WebSocket protocol: one WebSocket per forwarded
 * connection (the server serves exactly one connection per port of the `PortForward` request),
 * channel 0 carrying the data and channel 1 the server's error text, each starting with the
 * 2-byte little-endian port.
 *
 * The protocol cannot half-close: when the local side ends its writes the remote connection
 * stays open until the pod's server closes it.
 *
 * @module
 */
import { Duplex } from "node:stream";
import { ChannelSocket } from "./channel-socket.js";
import { CriStreamError } from "./errors.js";
import { type ChannelFrame, PortPrefixReader } from "./frames.js";
import { PORT_FORWARD_PROTOCOLS, portForwardChannels } from "./protocol.js";

const { data: DATA_CHANNEL, error: ERROR_CHANNEL } = portForwardChannels(0);

/**
 * One forwarded connection to a port in a pod's network namespace: write to send, read to
 * receive. It ends when the pod's server closes the connection, and is destroyed with a
 * {@link CriStreamError} when the runtime reports a forwarding error.
 */
export class PortForwardStream extends Duplex {
  /** The pod port this stream is connected to. */
  readonly port: number;
  #socket: ChannelSocket | undefined;
  #paused = false;

  /** @internal */
  constructor(port: number) {
    super({ allowHalfOpen: true });
    this.port = port;
  }

  /** @internal Binds the connected socket. */
  attach(socket: ChannelSocket): void {
    this.#socket = socket;
  }

  /** @internal Delivers data from the pod. */
  deliver(data: Buffer): void {
    if (data.length === 0) return;
    if (!this.push(data) && !this.#paused) {
      this.#paused = true;
      this.#socket?.pause();
    }
  }

  override _read(): void {
    if (this.#paused) {
      this.#paused = false;
      this.#socket?.resume();
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const socket = this.#socket;
    if (!socket?.writable) {
      callback(new CriStreamError("portForward", "the connection is closed"));
      return;
    }
    socket.send(DATA_CHANNEL, chunk).then(
      () => callback(),
      (err: Error) => callback(err),
    );
  }

  override _final(callback: (error?: Error | null) => void): void {
    // The protocol has no half-close: the remote side sees the end when the pod's server closes.
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#socket?.close();
    callback(error);
  }
}

/**
 * Dials a port-forward streaming URL (from a `PortForward` request for exactly one port) and
 * resolves with the connection's stream once the upgrade succeeded.
 *
 * @throws CriStreamError when the upgrade fails.
 */
export async function openPortForwardStream(
  url: string,
  port: number,
  signal?: AbortSignal,
): Promise<PortForwardStream> {
  const stream = new PortForwardStream(port);
  const dataPrefix = new PortPrefixReader();
  const errorPrefix = new PortPrefixReader();
  const errorText: Buffer[] = [];
  const onFrame = ({ channel, data }: ChannelFrame) => {
    if (channel === DATA_CHANNEL) stream.deliver(dataPrefix.push(data));
    else if (channel === ERROR_CHANNEL) errorText.push(errorPrefix.push(data));
  };
  const onClose = (error: Error | undefined) => {
    const text = Buffer.concat(errorText).toString("utf8").trim();
    if (error) stream.destroy(error);
    else if (text) stream.destroy(new CriStreamError("portForward", text));
    else stream.push(null);
  };
  const socket = await ChannelSocket.open({
    url,
    protocols: PORT_FORWARD_PROTOCOLS,
    operation: "portForward",
    onFrame,
    onClose,
    ...(signal ? { signal } : {}),
  });
  stream.attach(socket);
  return stream;
}
