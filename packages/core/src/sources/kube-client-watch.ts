/**
 * Incremental decoding of a Kubernetes watch stream: newline-delimited JSON
 * `{"type": …, "object": …}` events arriving in arbitrary chunks.
 *
 * @module
 */
import { WorknodeError } from "../util/errors.js";

/** A watch stream could not be decoded (bad JSON, bad event shape, oversized line). */
export class WatchDecodeError extends WorknodeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("WATCH_DECODE", message, options);
  }
}

/** Types of watch events. */
export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

/** One decoded watch event; `object` is unchecked JSON. */
export interface WatchEvent {
  readonly type: WatchEventType;
  readonly object: unknown;
}

const EVENT_TYPES: ReadonlySet<string> = new Set(["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]);

/**
 * Checks the shape of a decoded watch line.
 * @throws WatchDecodeError when it is not an event with a known type and an object
 */
export function toWatchEvent(value: unknown): WatchEvent {
  if (typeof value !== "object" || value === null) throw new WatchDecodeError("watch event is not an object");
  const { type, object } = value as { type?: unknown; object?: unknown };
  if (typeof type !== "string" || !EVENT_TYPES.has(type)) {
    throw new WatchDecodeError(`unknown watch event type ${JSON.stringify(type)}`);
  }
  if (typeof object !== "object" || object === null) {
    throw new WatchDecodeError(`watch event ${type} has no object`);
  }
  return { type: type as WatchEventType, object };
}

const NEWLINE = 0x0a;

/**
 * Splits a byte stream into newline-terminated JSON documents and parses each.
 * Chunks may split a document (or a multi-byte UTF-8 character) anywhere; a
 * document is decoded only once its terminating newline arrived, and the bytes
 * of a document are copied once, so large objects cost O(size).
 */
export class JsonLinesDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  /** @param maxLineBytes longest accepted document; default 128 MiB */
  constructor(private readonly maxLineBytes = 128 * 1024 * 1024) {}

  /** True while bytes of an unterminated document are buffered. */
  get hasPartial(): boolean {
    return this.pendingBytes > 0;
  }

  /** Number of buffered bytes of the unterminated document. */
  get partialBytes(): number {
    return this.pendingBytes;
  }

  /**
   * Consumes a chunk and calls `onValue` for every document it completes, in order.
   * Documents completed before a bad one are delivered before the error is thrown.
   * @throws WatchDecodeError on invalid JSON or a document longer than `maxLineBytes`
   */
  push(chunk: Buffer, onValue: (value: unknown) => void): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(NEWLINE, start);
      if (nl < 0) {
        if (start < chunk.length) {
          this.pendingBytes += chunk.length - start;
          if (this.pendingBytes > this.maxLineBytes) {
            this.reset();
            throw new WatchDecodeError(`watch event longer than ${this.maxLineBytes} bytes`);
          }
          this.pending.push(chunk.subarray(start));
        }
        return;
      }
      let line: Buffer;
      if (this.pending.length > 0) {
        this.pending.push(chunk.subarray(start, nl));
        line = Buffer.concat(this.pending, this.pendingBytes + (nl - start));
        this.reset();
      } else {
        line = chunk.subarray(start, nl);
      }
      start = nl + 1;
      const text = line.toString("utf8");
      if (text.trim() === "") continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        throw new WatchDecodeError(`invalid JSON in watch stream: ${(err as Error).message}`, { cause: err });
      }
      onValue(value);
    }
  }

  /** Drops any buffered partial document. */
  reset(): void {
    this.pending = [];
    this.pendingBytes = 0;
  }
}
