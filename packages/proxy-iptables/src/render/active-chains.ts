/**
 * {@link ChainSet}: the immutable set of per-service chains a render leaves in use,
 * updated in O(changes) from one render to the next.
 *
 * @module
 */
import { PersistentMap } from "@worknode/core";

/**
 * An immutable `ReadonlySet` of chain names. {@link ChainSet.withChanges} derives a new
 * set sharing storage with this one (core's `PersistentMap`), so a partial render of a
 * large snapshot does not copy the hundred thousand chain names of the previous one.
 */
export class ChainSet implements ReadonlySet<string> {
  private constructor(private readonly map: PersistentMap<string, true>) {}

  /** A set holding `chains`. */
  static from(chains: Iterable<string>): ChainSet {
    const entries: [string, true][] = [];
    for (const c of chains) entries.push([c, true]);
    return new ChainSet(PersistentMap.from(entries));
  }

  /**
   * A new set (always a new object, even when equal): this one without `removed`, plus
   * `added` (`added` wins over `removed`).
   */
  withChanges(removed: Iterable<string>, added: Iterable<string>): ChainSet {
    const changes = new Map<string, true | undefined>();
    for (const c of removed) changes.set(c, undefined);
    for (const c of added) changes.set(c, true);
    return new ChainSet(this.map.withChanges(changes));
  }

  /** Number of chains. */
  get size(): number {
    return this.map.size;
  }

  has(chain: string): boolean {
    return this.map.has(chain);
  }

  *keys(): SetIterator<string> {
    for (const [c] of this.map.entries()) yield c;
  }

  values(): SetIterator<string> {
    return this.keys();
  }

  *entries(): SetIterator<[string, string]> {
    for (const [c] of this.map.entries()) yield [c, c];
  }

  [Symbol.iterator](): SetIterator<string> {
    return this.keys();
  }

  forEach(callback: (value: string, key: string, set: ReadonlySet<string>) => void, thisArg?: unknown): void {
    for (const [c] of this.map.entries()) callback.call(thisArg, c, c, this);
  }
}
