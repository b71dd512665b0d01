/**
 * An in-memory cache of Kubernetes objects keyed by `namespace/name`, with
 * named secondary indexes maintained incrementally.
 *
 * Every single-object operation costs O(1) plus O(v) per index, where v is the
 * number of index values of the object (usually one); `replace` costs O(n) in
 * the size of the new list and touches the indexes only for objects that changed.
 *
 * @module
 */
import { type KubeObject, objectKey } from "../kube/objects.js";
import { ConfigError } from "../util/errors.js";

/**
 * Computes the index values of an object (such as its namespace, or the value
 * of one label). An object with no value is simply not indexed.
 */
export type IndexFunc<T> = (obj: T) => readonly string[];

/** Index functions by index name. */
export type Indexers<T> = Readonly<Record<string, IndexFunc<T>>>;

/** Name of the index built by {@link indexByNamespace}, by convention. */
export const NAMESPACE_INDEX = "namespace";

/** Indexes an object by its namespace (cluster-scoped objects are not indexed). */
export function indexByNamespace(obj: KubeObject): readonly string[] {
  const ns = obj.metadata?.namespace;
  return ns ? [ns] : [];
}

/**
 * Returns an index function that indexes objects by the value of one label,
 * such as `kubernetes.io/service-name` for EndpointSlices.
 * @param label label key
 * @param namespaced when true (the default), the index value is `namespace/value`, so that
 *   labels of equal value in different namespaces do not collide
 */
export function indexByLabel(label: string, namespaced = true): IndexFunc<KubeObject> {
  return (obj) => {
    const value = obj.metadata?.labels?.[label];
    if (value === undefined) return [];
    const ns = obj.metadata?.namespace;
    return [namespaced && ns ? `${ns}/${value}` : value];
  };
}

/** The outcome of {@link IndexedStore.replace}: what changed relative to the previous content. */
export interface ReplaceResult<T> {
  /** Objects whose key was not in the store before, in list order. */
  readonly added: T[];
  /** Objects whose key was present with a different version, in list order. */
  readonly updated: Array<{ readonly oldObj: T; readonly newObj: T }>;
  /** Objects no longer present (their last stored version). */
  readonly deleted: T[];
}

/** Read access to an {@link IndexedStore}. */
export interface ReadonlyIndexedStore<T> {
  /** Number of objects. */
  readonly size: number;
  /** The object with the given key, if any. O(1). */
  get(key: string): T | undefined;
  /** True when an object with the given key exists. O(1). */
  has(key: string): boolean;
  /** All objects (a cached array, rebuilt after a change; do not mutate it). */
  list(): readonly T[];
  /** All keys. */
  keys(): IterableIterator<string>;
  /** Names of the configured indexes. */
  indexNames(): string[];
  /**
   * Objects whose index `indexName` contains `value`. O(k) in the number of matches.
   * @throws ConfigError when the index does not exist
   */
  byIndex(indexName: string, value: string): T[];
  /**
   * Keys of the objects whose index `indexName` contains `value`.
   * @throws ConfigError when the index does not exist
   */
  indexKeys(indexName: string, value: string): string[];
  /**
   * Every value present in index `indexName`.
   * @throws ConfigError when the index does not exist
   */
  indexValues(indexName: string): string[];
}

/** Options of an {@link IndexedStore}. */
export interface IndexedStoreOptions<T> {
  /** Named index functions; default none. */
  readonly indexers?: Indexers<T>;
  /** Key function; default {@link objectKey}. */
  readonly keyOf?: (obj: T) => string;
  /**
   * Tells whether two versions of one object are the same, for {@link IndexedStore.replace}.
   * Default {@link sameResourceVersion}.
   */
  readonly isUnchanged?: (oldObj: T, newObj: T) => boolean;
}

/**
 * Default change test of {@link IndexedStore.replace}: equal `metadata.resourceVersion` when
 * both objects have one, else deep equality of the JSON data.
 */
export function sameResourceVersion(a: KubeObject, b: KubeObject): boolean {
  if (a === b) return true;
  const ra = a.metadata?.resourceVersion;
  const rb = b.metadata?.resourceVersion;
  if (ra !== undefined && rb !== undefined) return ra === rb;
  return jsonEqual(a, b);
}

/** Deep equality of JSON-like data (objects, arrays, primitives). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  let count = 0;
  for (const k in ao) {
    if (!Object.hasOwn(ao, k)) continue;
    const av = ao[k];
    const bv = bo[k];
    if (av === undefined) {
      if (bv !== undefined) return false;
      continue;
    }
    if (!jsonEqual(av, bv)) return false;
    count++;
  }
  for (const k in bo) if (Object.hasOwn(bo, k) && bo[k] !== undefined) count--;
  return count === 0;
}

interface Index<T> {
  readonly fn: IndexFunc<T>;
  readonly values: Map<string, Set<string>>;
}

const NO_VALUES: readonly string[] = [];

/**
 * A keyed object cache with incrementally maintained secondary indexes, in the
 * manner of client-go's `ThreadSafeStore` + `Indexer`.
 *
 * Objects are stored as given (not copied): treat them as immutable.
 */
export class IndexedStore<T extends KubeObject> implements ReadonlyIndexedStore<T> {
  private readonly items = new Map<string, T>();
  private readonly indexes = new Map<string, Index<T>>();
  private readonly keyOf: (obj: T) => string;
  private readonly isUnchanged: (oldObj: T, newObj: T) => boolean;
  private listCache: T[] | undefined;

  constructor(options: IndexedStoreOptions<T> = {}) {
    this.keyOf = options.keyOf ?? objectKey;
    this.isUnchanged = options.isUnchanged ?? sameResourceVersion;
    for (const [name, fn] of Object.entries(options.indexers ?? {})) {
      this.indexes.set(name, { fn, values: new Map() });
    }
  }

  get size(): number {
    return this.items.size;
  }

  /** The key of `obj` under this store's key function. */
  keyFor(obj: T): string {
    return this.keyOf(obj);
  }

  get(key: string): T | undefined {
    return this.items.get(key);
  }

  has(key: string): boolean {
    return this.items.has(key);
  }

  list(): readonly T[] {
    this.listCache ??= [...this.items.values()];
    return this.listCache;
  }

  keys(): IterableIterator<string> {
    return this.items.keys();
  }

  indexNames(): string[] {
    return [...this.indexes.keys()];
  }

  /**
   * Inserts or replaces the object under its key.
   * @returns the previous version, or `undefined` when the key was new
   */
  upsert(obj: T): T | undefined {
    const key = this.keyOf(obj);
    const old = this.items.get(key);
    this.items.set(key, obj);
    this.listCache = undefined;
    this.reindex(key, old, obj);
    return old;
  }

  /** Adds an object (an upsert: an existing key is replaced). @returns the previous version, if any */
  add(obj: T): T | undefined {
    return this.upsert(obj);
  }

  /** Updates an object (an upsert: a missing key is added). @returns the previous version, if any */
  update(obj: T): T | undefined {
    return this.upsert(obj);
  }

  /**
   * Removes the object with the given key (or the key of the given object).
   * @returns the removed version, or `undefined` when the key was unknown
   */
  delete(keyOrObj: string | T): T | undefined {
    const key = typeof keyOrObj === "string" ? keyOrObj : this.keyOf(keyOrObj);
    const old = this.items.get(key);
    if (old === undefined) return undefined;
    this.items.delete(key);
    this.listCache = undefined;
    this.reindex(key, old, undefined);
    return old;
  }

  /** Removes every object. */
  clear(): void {
    this.items.clear();
    this.listCache = undefined;
    for (const index of this.indexes.values()) index.values.clear();
  }

  /**
   * Makes the content equal to `list` (after a relist) and reports the difference.
   * Unchanged objects (per `isUnchanged`) keep their stored instance and are not reported.
   * If `list` holds a key twice, the last one wins.
   */
  replace(list: Iterable<T>): ReplaceResult<T> {
    const added: T[] = [];
    const updated: Array<{ oldObj: T; newObj: T }> = [];
    const deleted: T[] = [];
    const seen = new Set<string>();
    for (const obj of list) {
      const key = this.keyOf(obj);
      seen.add(key);
      const old = this.items.get(key);
      if (old === undefined) {
        this.items.set(key, obj);
        this.reindex(key, undefined, obj);
        added.push(obj);
      } else if (old !== obj && !this.isUnchanged(old, obj)) {
        this.items.set(key, obj);
        this.reindex(key, old, obj);
        updated.push({ oldObj: old, newObj: obj });
      }
    }
    if (seen.size < this.items.size) {
      for (const [key, old] of this.items) {
        if (seen.has(key)) continue;
        this.items.delete(key);
        this.reindex(key, old, undefined);
        deleted.push(old);
      }
    }
    if (added.length > 0 || updated.length > 0 || deleted.length > 0) this.listCache = undefined;
    return { added, updated, deleted };
  }

  byIndex(indexName: string, value: string): T[] {
    const keys = this.index(indexName).values.get(value);
    if (!keys) return [];
    const out: T[] = [];
    for (const key of keys) {
      const obj = this.items.get(key);
      if (obj !== undefined) out.push(obj);
    }
    return out;
  }

  indexKeys(indexName: string, value: string): string[] {
    const keys = this.index(indexName).values.get(value);
    return keys ? [...keys] : [];
  }

  indexValues(indexName: string): string[] {
    return [...this.index(indexName).values.keys()];
  }

  private index(name: string): Index<T> {
    const index = this.indexes.get(name);
    if (!index) throw new ConfigError(`store has no index named "${name}"`);
    return index;
  }

  private reindex(key: string, oldObj: T | undefined, newObj: T | undefined): void {
    if (this.indexes.size === 0) return;
    for (const index of this.indexes.values()) {
      const oldValues = oldObj === undefined ? NO_VALUES : index.fn(oldObj);
      const newValues = newObj === undefined ? NO_VALUES : index.fn(newObj);
      // Fast path: the common single-value index whose value did not change.
      if (oldValues.length === 1 && newValues.length === 1 && oldValues[0] === newValues[0]) continue;
      for (const v of oldValues) {
        if (newValues.length > 0 && newValues.includes(v)) continue;
        const set = index.values.get(v);
        if (!set) continue;
        set.delete(key);
        if (set.size === 0) index.values.delete(v);
      }
      for (const v of newValues) {
        let set = index.values.get(v);
        if (!set) {
          set = new Set();
          index.values.set(v, set);
        }
        set.add(key);
      }
    }
  }
}
