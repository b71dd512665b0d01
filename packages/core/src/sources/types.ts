/**
 * The contract shared by every source of Kubernetes objects: the API
 * informer, the services file and the static-pod manifest directory.
 * Consumers (the proxy's change tracker, the kubelet's pod config) attach
 * handlers and never care where objects come from.
 *
 * @module
 */
import type { InvalidObjectError } from "../util/errors.js";

/** Callbacks of an {@link ObjectSource}. Every callback is optional. */
export interface ObjectEventHandler<T> {
  /** An object appeared. */
  onAdd?(obj: T): void;
  /** An object changed; `oldObj` is the version delivered before. */
  onUpdate?(oldObj: T, newObj: T): void;
  /** An object went away; `obj` is the last version delivered. */
  onDelete?(obj: T): void;
  /**
   * The source delivered its complete initial state (after the first list or
   * file read). Called once per handler; a handler added later is called at once.
   */
  onSynced?(): void;
  /** An input object was rejected; the source goes on serving the valid ones. */
  onInvalid?(error: InvalidObjectError): void;
}

/**
 * A stream of add / update / delete events for one kind of object, with a
 * readable cache of the current state.
 */
export interface ObjectSource<T> {
  /** Object kind delivered (such as `Service`). */
  readonly kind: string;
  /**
   * Attaches a handler. A handler attached after objects arrived first receives an
   * `onAdd` for each object already in the cache (and `onSynced` when synced).
   * @returns a function that detaches the handler
   */
  addHandler(handler: ObjectEventHandler<T>): () => void;
  /** True once the initial state has been delivered. */
  hasSynced(): boolean;
  /** The current objects. */
  list(): readonly T[];
  /** The current object with the given `namespace/name` key, if any. */
  get(key: string): T | undefined;
}

/** A source with a lifecycle: started once, stopped once. */
export interface RunnableSource {
  /** Starts delivering events; resolves once the initial state was delivered (or failed loudly). */
  start(): Promise<void>;
  /** Stops watching and releases resources; idempotent. */
  stop(): Promise<void>;
}
