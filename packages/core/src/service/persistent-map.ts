/**
 * An immutable map whose updates cost O(changes), amortised: the store behind
 * {@link ServiceSnapshot} maps.
 *
 * @module
 */

const DELETED: unique symbol = Symbol("deleted");
type Slot<V> = V | typeof DELETED;

/** Smallest overlay that is never folded into the base. */
const MIN_OVERLAY = 256;

/**
 * An immutable `ReadonlyMap` made of a shared, never-mutated base `Map` and a
 * small overlay of changes. {@link PersistentMap.withChanges} copies only the
 * overlay; once the overlay grows past about 2·√n entries it is folded into a
 * fresh base. Each version stays valid forever, so snapshots can keep older
 * versions while newer ones are built.
 *
 * Cost: `get`/`has` are one or two native `Map` look-ups; `withChanges(c)` is
 * O(|c| + overlay), with a full O(n) copy once every ~√n changed keys (amortised O(√n)
 * worst case per changed key, far below the O(n) of copying a `Map` per commit).
 * Iteration visits base entries first (skipping overridden keys), then overlay entries.
 * Values must not be `undefined`.
 */
export class PersistentMap<K, V> implements ReadonlyMap<K, V> {
  private readonly base: ReadonlyMap<K, V>;
  private readonly overlay: ReadonlyMap<K, Slot<V>>;
  /** Number of entries. */
  readonly size: number;

  private constructor(base: ReadonlyMap<K, V>, overlay: ReadonlyMap<K, Slot<V>>, size: number) {
    this.base = base;
    this.overlay = overlay;
    this.size = size;
  }

  /** An empty map. */
  static empty<K, V>(): PersistentMap<K, V> {
    return new PersistentMap<K, V>(new Map(), new Map(), 0);
  }

  /** A map holding `entries` (later duplicates win). */
  static from<K, V>(entries: Iterable<readonly [K, V]>): PersistentMap<K, V> {
    const base = new Map<K, V>(entries);
    return new PersistentMap<K, V>(base, new Map(), base.size);
  }

  get(key: K): V | undefined {
    if (this.overlay.size > 0) {
      const slot = this.overlay.get(key);
      if (slot !== undefined) return slot === DELETED ? undefined : slot;
    }
    return this.base.get(key);
  }

  has(key: K): boolean {
    if (this.overlay.size > 0) {
      const slot = this.overlay.get(key);
      if (slot !== undefined) return slot !== DELETED;
    }
    return this.base.has(key);
  }

  /**
   * Returns a new map with `changes` applied (`undefined` value: delete the key);
   * this map is left untouched. Returns `this` when `changes` is empty.
   */
  withChanges(changes: ReadonlyMap<K, V | undefined>): PersistentMap<K, V> {
    if (changes.size === 0) return this;
    if (this.overlay.size + changes.size > this.foldThreshold()) return this.folded(changes);
    const overlay = new Map<K, Slot<V>>(this.overlay);
    let size = this.size;
    for (const [key, value] of changes) {
      const present = this.has(key);
      if (value === undefined) {
        if (!present) continue;
        size--;
        if (this.base.has(key)) overlay.set(key, DELETED);
        else overlay.delete(key);
      } else {
        if (!present) size++;
        if (this.base.get(key) === value) overlay.delete(key);
        else overlay.set(key, value);
      }
    }
    return new PersistentMap<K, V>(this.base, overlay, size);
  }

  /** Overlay size past which the overlay is folded into a new base. */
  private foldThreshold(): number {
    return Math.max(MIN_OVERLAY, 2 * Math.sqrt(this.base.size));
  }

  /** A new flat version: base and overlay merged, then `changes` applied. O(n). */
  private folded(changes: ReadonlyMap<K, V | undefined>): PersistentMap<K, V> {
    const base = new Map<K, V>(this.base);
    for (const [key, slot] of this.overlay) {
      if (slot === DELETED) base.delete(key);
      else base.set(key, slot);
    }
    for (const [key, value] of changes) {
      if (value === undefined) base.delete(key);
      else base.set(key, value);
    }
    return new PersistentMap<K, V>(base, new Map(), base.size);
  }

  *entries(): MapIterator<[K, V]> {
    const overlay = this.overlay;
    if (overlay.size === 0) {
      yield* this.base.entries();
      return;
    }
    for (const entry of this.base) {
      if (!overlay.has(entry[0])) yield entry;
    }
    for (const [key, slot] of overlay) {
      if (slot !== DELETED) yield [key, slot];
    }
  }

  *keys(): MapIterator<K> {
    for (const [key] of this.entries()) yield key;
  }

  *values(): MapIterator<V> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }

  forEach(callback: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    for (const [key, value] of this.entries()) callback.call(thisArg, value, key, this);
  }
}
