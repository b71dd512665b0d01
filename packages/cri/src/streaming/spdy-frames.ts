/**
 * Pure SPDY/3.1 framing for the client side of the streaming server's `SPDY/3.1` upgrade
 * (the transport kubectl and crictl use): SYN_STREAM with a name/value header block, DATA,
 * RST_STREAM and PING frames out; an incremental parser for whatever the server sends.
 *
 * Header blocks must be zlib streams (one stream per connection and direction). This client
 * writes them as uncompressed ("stored") deflate blocks after a zlib header without a preset
 * dictionary, which every zlib reader accepts; the server's header blocks are never needed and
 * are skipped unread.
 *
 * @module
 */
import { CriStreamProtocolError } from "./errors.js";

/** SPDY version in control frames. */
export const SPDY_VERSION = 3;

/** Control frame types. */
export const SpdyFrameType = {
  SYN_STREAM: 1,
  SYN_REPLY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  HEADERS: 8,
  WINDOW_UPDATE: 9,
} as const;

/** FLAG_FIN: the sender's last frame on the stream. */
export const SPDY_FLAG_FIN = 0x01;

/** Largest payload of one frame (24-bit length). */
export const SPDY_MAX_FRAME_PAYLOAD = 0xffffff;

/** A parsed frame. */
export type SpdyFrame =
  | { readonly kind: "data"; readonly streamId: number; readonly flags: number; readonly data: Buffer }
  | { readonly kind: "control"; readonly type: number; readonly flags: number; readonly payload: Buffer };

function controlFrame(type: number, flags: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt16BE(0x8000 | SPDY_VERSION, 0);
  header.writeUInt16BE(type, 2);
  header.writeUInt32BE(((flags & 0xff) << 24) | payload.length, 4);
  return Buffer.concat([header, payload]);
}

/** Encodes name/value pairs as SPDY/3's uncompressed header block (names lowercased). */
export function encodeHeaderBlock(headers: Readonly<Record<string, string>>): Buffer {
  const entries = Object.entries(headers);
  const parts: Buffer[] = [];
  const count = Buffer.alloc(4);
  count.writeUInt32BE(entries.length);
  parts.push(count);
  for (const [name, value] of entries) {
    for (const text of [name.toLowerCase(), value]) {
      const bytes = Buffer.from(text, "utf8");
      const len = Buffer.alloc(4);
      len.writeUInt32BE(bytes.length);
      parts.push(len, bytes);
    }
  }
  return Buffer.concat(parts);
}

/**
 * The sending half of a connection's header zlib stream: the zlib header once, then each
 * header block as stored deflate blocks followed by a sync-flush marker (byte-aligned, so every
 * block is decodable from its own frame).
 */
export class SpdyHeaderWriter {
  #started = false;

  /** Wraps one header block for the next frame. */
  wrap(block: Buffer): Buffer {
    const parts: Buffer[] = [];
    if (!this.#started) {
      // CMF 0x78 (deflate, 32 KiB window), FLG 0x01: no preset dictionary, check bits valid.
      parts.push(Buffer.from([0x78, 0x01]));
      this.#started = true;
    }
    let offset = 0;
    do {
      const piece = block.subarray(offset, offset + 0xffff);
      offset += piece.length;
      const head = Buffer.alloc(5);
      head[0] = 0x00; // BFINAL 0, BTYPE 00 (stored)
      head.writeUInt16LE(piece.length, 1);
      head.writeUInt16LE(~piece.length & 0xffff, 3);
      parts.push(head, piece);
    } while (offset < block.length);
    // An empty stored block, as zlib's Z_SYNC_FLUSH ends: it makes inflaters (Go's flate among
    // them) hand out the block's bytes now instead of reading on into the next frame.
    parts.push(Buffer.from([0x00, 0x00, 0x00, 0xff, 0xff]));
    return Buffer.concat(parts);
  }
}

/** Encodes SYN_STREAM for a new client stream with `headers`. */
export function encodeSynStream(
  streamId: number,
  headers: Readonly<Record<string, string>>,
  writer: SpdyHeaderWriter,
  flags = 0,
): Buffer {
  const block = writer.wrap(encodeHeaderBlock(headers));
  const fixed = Buffer.alloc(10);
  fixed.writeUInt32BE(streamId & 0x7fffffff, 0);
  fixed.writeUInt32BE(0, 4); // associated-to-stream-id
  fixed[8] = 0; // priority 0 (highest) in the top 3 bits
  fixed[9] = 0; // slot
  return controlFrame(SpdyFrameType.SYN_STREAM, flags, Buffer.concat([fixed, block]));
}

/**
 * Encodes DATA frames for `data` on `streamId` (split at {@link SPDY_MAX_FRAME_PAYLOAD}); with
 * `fin`, the last one carries FLAG_FIN (an empty frame when `data` is empty).
 */
export function encodeDataFrames(streamId: number, data: Uint8Array, fin = false): Buffer {
  const frames: Buffer[] = [];
  let offset = 0;
  do {
    const piece = data.subarray(offset, offset + SPDY_MAX_FRAME_PAYLOAD);
    offset += piece.length;
    const last = offset >= data.length;
    const header = Buffer.alloc(8);
    header.writeUInt32BE(streamId & 0x7fffffff, 0);
    header.writeUInt32BE((((last && fin ? SPDY_FLAG_FIN : 0) & 0xff) << 24) | piece.length, 4);
    frames.push(header, Buffer.from(piece));
  } while (offset < data.length);
  return Buffer.concat(frames);
}

/** Encodes RST_STREAM with a status code (5: CANCEL). */
export function encodeRstStream(streamId: number, status: number): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(streamId & 0x7fffffff, 0);
  payload.writeUInt32BE(status, 4);
  return controlFrame(SpdyFrameType.RST_STREAM, 0, payload);
}

/** Encodes a PING frame (the answer to a server's PING repeats its id). */
export function encodePing(id: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(id >>> 0, 0);
  return controlFrame(SpdyFrameType.PING, 0, payload);
}

/** Parses frames out of a byte stream that may split or join them arbitrarily. */
export class SpdyFrameParser {
  #buffer: Buffer = Buffer.alloc(0);

  /**
   * Feeds bytes; returns every frame completed by them.
   *
   * @throws CriStreamProtocolError for a control frame of another SPDY version.
   */
  push(bytes: Uint8Array): SpdyFrame[] {
    this.#buffer = this.#buffer.length === 0 ? Buffer.from(bytes) : Buffer.concat([this.#buffer, bytes]);
    const frames: SpdyFrame[] = [];
    while (this.#buffer.length >= 8) {
      const length = this.#buffer.readUInt32BE(4) & 0xffffff;
      if (this.#buffer.length < 8 + length) break;
      const flags = this.#buffer[4]!;
      const body = this.#buffer.subarray(8, 8 + length);
      const first = this.#buffer.readUInt32BE(0);
      if (first & 0x80000000) {
        const version = (first >>> 16) & 0x7fff;
        if (version !== SPDY_VERSION) throw new CriStreamProtocolError(`SPDY version ${version} frame`);
        frames.push({ kind: "control", type: first & 0xffff, flags, payload: Buffer.from(body) });
      } else {
        frames.push({ kind: "data", streamId: first & 0x7fffffff, flags, data: Buffer.from(body) });
      }
      this.#buffer = this.#buffer.subarray(8 + length);
    }
    return frames;
  }
}

/** The stream id a SYN_REPLY, RST_STREAM or HEADERS payload is about. */
export function controlStreamId(payload: Buffer): number {
  return payload.length >= 4 ? payload.readUInt32BE(0) & 0x7fffffff : 0;
}
