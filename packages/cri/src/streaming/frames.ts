/**
 * Pure encoding and decoding of the `*.channel.k8s.io` WebSocket frames: a channel number
 * first (a byte in the binary protocols, an ASCII digit in the base64 ones), then the data.
 * Also the resize message, the error channel's outcome and port-forward's port prefix.
 *
 * @module
 */
import { CriStreamProtocolError, type StreamStatus } from "./errors.js";

/** One decoded frame: its channel and its (possibly empty) data. */
export interface ChannelFrame {
  readonly channel: number;
  readonly data: Buffer;
}

/** The strict base64 alphabet with padding, as Go's `base64.StdEncoding` writes and accepts it. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Encodes `data` for `channel`: `[channel, ...data]` in the binary protocols, or
 * `"<digit><base64>"` in the base64 ones.
 *
 * @throws CriStreamProtocolError for a channel outside 0–255 (0–9 in base64).
 */
export function encodeChannelFrame(channel: number, data: Uint8Array, base64: boolean): Buffer | string {
  if (!Number.isInteger(channel) || channel < 0 || channel > (base64 ? 9 : 255))
    throw new CriStreamProtocolError(`channel ${channel} cannot be encoded`);
  if (base64) return `${String.fromCharCode(48 + channel)}${Buffer.from(data).toString("base64")}`;
  const frame = Buffer.allocUnsafe(data.length + 1);
  frame[0] = channel;
  frame.set(data, 1);
  return frame;
}

/**
 * Decodes one WebSocket message. Empty data is valid (the server sends an empty stdout frame
 * to say the session is ready).
 *
 * @throws CriStreamProtocolError for an empty message, a non-digit channel or invalid base64.
 */
export function decodeChannelFrame(message: Uint8Array | string, base64: boolean): ChannelFrame {
  if (base64) {
    const text = typeof message === "string" ? message : Buffer.from(message).toString("latin1");
    if (text.length === 0) throw new CriStreamProtocolError("empty message");
    const channel = text.charCodeAt(0) - 48;
    if (channel < 0 || channel > 9) throw new CriStreamProtocolError(`bad channel character "${text[0]}"`);
    const payload = text.slice(1);
    if (!BASE64.test(payload)) throw new CriStreamProtocolError(`invalid base64 on channel ${channel}`);
    return { channel, data: Buffer.from(payload, "base64") };
  }
  const bytes = typeof message === "string" ? Buffer.from(message, "latin1") : Buffer.from(message);
  if (bytes.length === 0) throw new CriStreamProtocolError("empty message");
  return { channel: bytes[0]!, data: bytes.subarray(1) };
}

/** A terminal size in character cells. */
export interface TerminalSize {
  readonly width: number;
  readonly height: number;
}

/**
 * Encodes a resize-channel message: `{"Width":w,"Height":h}` (the server decodes a stream of
 * such JSON objects).
 *
 * @throws CriStreamProtocolError for sizes that are not whole numbers in 0–65535.
 */
export function encodeResize(size: TerminalSize): Buffer {
  for (const v of [size.width, size.height])
    if (!Number.isInteger(v) || v < 0 || v > 0xffff)
      throw new CriStreamProtocolError(`terminal size ${size.width}x${size.height} is not valid`);
  return Buffer.from(JSON.stringify({ Width: size.width, Height: size.height }));
}

/** How a remote command ended, from its error channel. */
export type RemoteCommandOutcome =
  | { readonly kind: "exited"; readonly exitCode: number }
  | { readonly kind: "failed"; readonly status: StreamStatus };

/**
 * Reads the bytes the server wrote on the error channel, all frames joined.
 *
 * v4 (`statusJson`): a `metav1.Status`. `Success` → exit code 0; `Failure` with reason
 * `NonZeroExitCode` → the `ExitCode` cause; any other failure → `failed`.
 * Pre-v4: no bytes mean success; otherwise the bytes are an error message (`failed`).
 *
 * @throws CriStreamProtocolError for v4 bytes that are not a status object, or an
 *   `ExitCode` cause that is not a whole number.
 */
export function parseRemoteCommandOutcome(bytes: Uint8Array, statusJson: boolean): RemoteCommandOutcome {
  const text = Buffer.from(bytes).toString("utf8");
  if (!statusJson) {
    return text.trim() === ""
      ? { kind: "exited", exitCode: 0 }
      : { kind: "failed", status: { status: "Failure", message: text } };
  }
  let status: StreamStatus;
  try {
    status = JSON.parse(text) as StreamStatus;
  } catch (err) {
    throw new CriStreamProtocolError(`error channel holds no status JSON: ${JSON.stringify(text)}`, {
      cause: err,
    });
  }
  if (typeof status !== "object" || status === null || Array.isArray(status))
    throw new CriStreamProtocolError(`error channel holds no status object: ${JSON.stringify(text)}`);
  if (status.status === "Success") return { kind: "exited", exitCode: 0 };
  if (status.reason === "NonZeroExitCode") {
    const cause = status.details?.causes?.find((c) => c.reason === "ExitCode");
    if (cause) {
      const exitCode = Number(cause.message);
      if (!Number.isInteger(exitCode))
        throw new CriStreamProtocolError(`exit code "${String(cause.message)}" is not a whole number`);
      return { kind: "exited", exitCode };
    }
  }
  return { kind: "failed", status };
}

/**
 * Strips port-forward's prefix: the first two bytes the server writes on each data and error
 * channel are the port number (uint16, little endian). The prefix may arrive split over frames.
 */
export class PortPrefixReader {
  #pending: Buffer = Buffer.alloc(0);
  #port: number | undefined;

  /** The port read from the prefix, once its two bytes have arrived. */
  get port(): number | undefined {
    return this.#port;
  }

  /** Feeds one frame's data; returns the payload that follows the prefix (possibly empty). */
  push(data: Uint8Array): Buffer {
    if (this.#port !== undefined) return Buffer.from(data);
    const joined = Buffer.concat([this.#pending, data]);
    if (joined.length < 2) {
      this.#pending = joined;
      return Buffer.alloc(0);
    }
    this.#port = joined.readUInt16LE(0);
    this.#pending = Buffer.alloc(0);
    return joined.subarray(2);
  }
}
