/**
 * crictl's detach keys for terminal sessions: typing ctrl-p then ctrl-q ends the local session
 * and leaves the command running. Pure: a filter over the bytes typed on stdin.
 *
 * @module
 */

/** crictl's (and docker's) default detach sequence: ctrl-p, ctrl-q. */
export const DEFAULT_DETACH_KEYS: readonly number[] = [0x10, 0x11];

/** What one chunk of typed bytes turns into. */
export interface DetachFilterResult {
  /** Bytes to send on (a partial sequence is held back until it completes or breaks). */
  readonly data: Buffer;
  /** The whole sequence was typed: detach now (bytes after it are dropped). */
  readonly detached: boolean;
}

/** Watches typed bytes for the detach sequence, passing everything else through unchanged. */
export class DetachKeyFilter {
  readonly #keys: readonly number[];
  #matched = 0;

  /** Watches for `keys` (default {@link DEFAULT_DETACH_KEYS}). */
  constructor(keys: readonly number[] = DEFAULT_DETACH_KEYS) {
    this.#keys = keys;
  }

  /** Filters one chunk. */
  push(chunk: Uint8Array): DetachFilterResult {
    const out: number[] = [];
    for (const byte of chunk) {
      if (byte === this.#keys[this.#matched]) {
        this.#matched++;
        if (this.#matched === this.#keys.length) {
          this.#matched = 0;
          return { data: Buffer.from(out), detached: true };
        }
        continue;
      }
      // A broken partial match: the held bytes were ordinary input.
      out.push(...this.#keys.slice(0, this.#matched));
      this.#matched = 0;
      if (byte === this.#keys[0]) this.#matched = 1;
      else out.push(byte);
    }
    return { data: Buffer.from(out), detached: false };
  }
}
