/**
 * An {@link ObjectSource} fed with complete snapshots of the desired objects:
 * each {@link SnapshotObjectSource.replace} diffs the new set against the
 * cache by key and content and emits exactly the adds, updates and deletes
 * that happened. Used by the file sources; also handy as a fake source in tests.
 *
 * @module
 */
import { type KubeObject, objectKey } from "../kube/objects.js";
import type { InvalidObjectError } from "../util/errors.js";
import { type Logger, silentLogger } from "../util/logging.js";
import { contentHash } from "./parse.js";
import type { ObjectEventHandler, ObjectSource } from "./types.js";

/** Options of {@link SnapshotObjectSource}. */
export interface SnapshotObjectSourceOptions {
  /** Object kind delivered, such as `Service`. */
  readonly kind: string;
  /** Logger for failing handlers; default silent. */
  readonly logger?: Logger;
}

/** Counts of the events emitted by one {@link SnapshotObjectSource.replace}. */
export interface SnapshotReplaceResult {
  readonly added: number;
  readonly updated: number;
  readonly deleted: number;
}

interface Entry<T> {
  readonly obj: T;
  readonly hash: string;
}

/**
 * An object source whose state is replaced as a whole. Objects are keyed by
 * {@link objectKey} and compared by content (canonical JSON), so replacing with
 * an equal object emits nothing. Objects handed out are shared: treat them as read-only.
 */
export class SnapshotObjectSource<T extends KubeObject> implements ObjectSource<T> {
  /** Object kind delivered. */
  readonly kind: string;
  private readonly logger: Logger;
  private readonly entries = new Map<string, Entry<T>>();
  private readonly handlers = new Set<ObjectEventHandler<T>>();
  private readonly hashes = new WeakMap<object, string>();
  private synced = false;

  constructor(options: SnapshotObjectSourceOptions) {
    this.kind = options.kind;
    this.logger = options.logger ?? silentLogger();
  }

  /** Attaches a handler; it first receives an `onAdd` per current object (and `onSynced` when synced). */
  addHandler(handler: ObjectEventHandler<T>): () => void {
    this.handlers.add(handler);
    for (const key of [...this.entries.keys()].sort()) {
      this.call(handler, "onAdd", () => handler.onAdd?.(this.entries.get(key)!.obj));
    }
    if (this.synced) this.call(handler, "onSynced", () => handler.onSynced?.());
    return () => {
      this.handlers.delete(handler);
    };
  }

  /** True once the first {@link SnapshotObjectSource.replace} happened. */
  hasSynced(): boolean {
    return this.synced;
  }

  /** The current objects. */
  list(): readonly T[] {
    return [...this.entries.values()].map((e) => e.obj);
  }

  /** The current object with the given `namespace/name` key, if any. */
  get(key: string): T | undefined {
    return this.entries.get(key)?.obj;
  }

  /**
   * Makes `objects` the complete current state: emits `onDelete` for keys that
   * are gone, `onUpdate` for objects whose content changed and `onAdd` for new
   * keys (in that order, each sorted by key), then `onSynced` the first time.
   * When two objects share a key, the last one wins.
   */
  replace(objects: Iterable<T>): SnapshotReplaceResult {
    const next = new Map<string, Entry<T>>();
    for (const obj of objects) next.set(objectKey(obj), { obj, hash: this.hashOf(obj) });
    const deleted: Entry<T>[] = [];
    const updated: [Entry<T>, Entry<T>][] = [];
    const added: Entry<T>[] = [];
    for (const key of [...this.entries.keys()].sort()) {
      if (!next.has(key)) deleted.push(this.entries.get(key)!);
    }
    for (const key of [...next.keys()].sort()) {
      const now = next.get(key)!;
      const before = this.entries.get(key);
      if (!before) added.push(now);
      else if (before.hash !== now.hash) updated.push([before, now]);
    }
    for (const e of deleted) this.entries.delete(objectKey(e.obj));
    for (const [, now] of updated) this.entries.set(objectKey(now.obj), now);
    for (const e of added) this.entries.set(objectKey(e.obj), e);
    const handlers = [...this.handlers];
    for (const e of deleted) this.emit(handlers, "onDelete", (h) => h.onDelete?.(e.obj));
    for (const [b, n] of updated) this.emit(handlers, "onUpdate", (h) => h.onUpdate?.(b.obj, n.obj));
    for (const e of added) this.emit(handlers, "onAdd", (h) => h.onAdd?.(e.obj));
    if (!this.synced) {
      this.synced = true;
      this.emit(handlers, "onSynced", (h) => h.onSynced?.());
    }
    return { added: added.length, updated: updated.length, deleted: deleted.length };
  }

  /** Delivers `error` to every handler's `onInvalid`. */
  reportInvalid(error: InvalidObjectError): void {
    this.emit([...this.handlers], "onInvalid", (h) => h.onInvalid?.(error));
  }

  private hashOf(obj: T): string {
    let h = this.hashes.get(obj);
    if (h === undefined) {
      h = contentHash(obj);
      this.hashes.set(obj, h);
    }
    return h;
  }

  private emit(
    handlers: readonly ObjectEventHandler<T>[],
    event: string,
    fn: (h: ObjectEventHandler<T>) => void,
  ): void {
    for (const h of handlers) {
      if (this.handlers.has(h)) this.call(h, event, () => fn(h));
    }
  }

  private call(_handler: ObjectEventHandler<T>, event: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.logger.error({ err, kind: this.kind, event }, "object event handler threw");
    }
  }
}
