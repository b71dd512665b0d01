/**
 * {@link ChannelSocket}: one WebSocket to the runtime's streaming server speaking a
 * `*.channel.k8s.io` subprotocol — frames in and out by channel number, backpressure through
 * `pause` / `resume` and the send callback.
 *
 * @module
 */
import WebSocket from "ws";
import { CriStreamError, type CriStreamOperation } from "./errors.js";
import { type ChannelFrame, decodeChannelFrame, encodeChannelFrame } from "./frames.js";
import { type ChannelProtocolTraits, protocolTraits } from "./protocol.js";

/** Largest data chunk sent in one frame (the server reads whole messages into memory). */
export const MAX_FRAME_DATA_BYTES = 32 * 1024;

/** How to open a {@link ChannelSocket}. */
export interface ChannelSocketOptions {
  /** The streaming URL the runtime returned (`http://…` or `https://…`). */
  readonly url: string;
  /** Subprotocols to offer, preferred first. */
  readonly protocols: readonly string[];
  /** The operation, for error messages. */
  readonly operation: CriStreamOperation;
  /** Called for every decoded frame, in arrival order. */
  readonly onFrame: (frame: ChannelFrame) => void;
  /** Called once when the connection is gone, with the error that ended it, if any. */
  readonly onClose: (error: Error | undefined) => void;
  /** Cancels the connection attempt. */
  readonly signal?: AbortSignal;
}

/** Turns the runtime's `http(s)://` streaming URL into the `ws(s)://` URL to dial. */
export function webSocketUrl(url: string, operation: CriStreamOperation): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (err) {
    throw new CriStreamError(operation, `the runtime returned an invalid streaming URL "${url}"`, {
      cause: err,
    });
  }
  if (parsed.protocol === "http:") parsed.protocol = "ws:";
  else if (parsed.protocol === "https:") parsed.protocol = "wss:";
  else if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:")
    throw new CriStreamError(operation, `unsupported streaming URL scheme in "${url}"`);
  return parsed.toString();
}

/** A connected channel WebSocket. */
export class ChannelSocket {
  /** The negotiated subprotocol (`""` when the server chose none). */
  readonly protocol: string;
  /** How the negotiated subprotocol encodes frames and statuses. */
  readonly traits: ChannelProtocolTraits;
  readonly #ws: WebSocket;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    this.protocol = ws.protocol;
    this.traits = protocolTraits(ws.protocol);
  }

  /**
   * Dials the streaming URL and resolves once the upgrade succeeded. Frames that arrive before
   * the promise settles are already delivered to `onFrame`.
   *
   * @throws CriStreamError when the server refuses the upgrade (with its HTTP status and body)
   *   or cannot be reached; the abort reason when `signal` aborts first.
   */
  static open(options: ChannelSocketOptions): Promise<ChannelSocket> {
    const { operation } = options;
    const url = webSocketUrl(options.url, operation);
    return new Promise((resolve, reject) => {
      options.signal?.throwIfAborted();
      const ws = new WebSocket(url, [...options.protocols], { perMessageDeflate: false });
      let socket: ChannelSocket | undefined;
      let closed = false;
      let failure: Error | undefined;
      const onAbort = () => {
        failure = options.signal?.reason as Error;
        ws.terminate();
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      const finish = () => {
        if (closed) return;
        closed = true;
        options.signal?.removeEventListener("abort", onAbort);
        if (socket) options.onClose(failure);
        else
          reject(failure ?? new CriStreamError(operation, `connection to ${url} closed during the upgrade`));
      };
      ws.on("unexpected-response", (_req, res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          if (body.length < 4096) body += d;
        });
        res.on("end", () => {
          failure = new CriStreamError(
            operation,
            `the streaming server refused the upgrade: HTTP ${res.statusCode}${body.trim() ? `: ${body.trim()}` : ""}`,
            { httpStatus: res.statusCode },
          );
          ws.terminate();
          finish();
        });
      });
      ws.on("open", () => {
        socket = new ChannelSocket(ws);
        resolve(socket);
      });
      ws.on("message", (data: Buffer, isBinary: boolean) => {
        if (!socket) return;
        try {
          options.onFrame(decodeChannelFrame(isBinary ? data : data.toString("utf8"), socket.traits.base64));
        } catch (err) {
          failure = err as Error;
          ws.terminate();
        }
      });
      ws.on("error", (err) => {
        failure ??= new CriStreamError(operation, `connection to ${url} failed: ${err.message}`, {
          cause: err,
        });
      });
      ws.on("close", finish);
    });
  }

  /** True while frames can still be sent. */
  get writable(): boolean {
    return this.#ws.readyState === WebSocket.OPEN;
  }

  /**
   * Sends `data` on `channel`, split into frames of at most {@link MAX_FRAME_DATA_BYTES};
   * resolves once the frames were handed to the socket.
   */
  async send(channel: number, data: Uint8Array): Promise<void> {
    let offset = 0;
    do {
      const piece = data.subarray(offset, offset + MAX_FRAME_DATA_BYTES);
      offset += piece.length;
      const frame = encodeChannelFrame(channel, piece, this.traits.base64);
      await new Promise<void>((resolve, reject) => {
        this.#ws.send(frame, { binary: !this.traits.base64 }, (err) => (err ? reject(err) : resolve()));
      });
    } while (offset < data.length);
  }

  /** Stops reading frames (backpressure). */
  pause(): void {
    this.#ws.pause();
  }

  /** Reads frames again after {@link pause}. */
  resume(): void {
    this.#ws.resume();
  }

  /** Closes the connection with a normal close handshake. */
  close(): void {
    if (this.#ws.readyState === WebSocket.CONNECTING || this.#ws.readyState === WebSocket.OPEN)
      this.#ws.close(1000);
  }

  /** Drops the connection at once. */
  terminate(): void {
    this.#ws.terminate();
  }
}
