import type {
  ChangeSet,
  Commit,
  ServicePortKey,
  ServiceSnapshot,
  ServiceStateTracker,
  StaleConntrack,
} from "../../src/service/model.js";

/** Builds a change set from plain arrays. */
export function changeSet(parts: {
  changed?: ServicePortKey[];
  deleted?: ServicePortKey[];
  stale?: StaleConntrack[];
  triggers?: [ServicePortKey, number][];
}): ChangeSet {
  const deleted = parts.deleted ?? [];
  return {
    changedServicePorts: new Set([...(parts.changed ?? []), ...deleted]),
    deletedServicePorts: new Set(deleted),
    staleConntrack: parts.stale ?? [],
    triggerTimes: new Map(parts.triggers ?? []),
  };
}

/**
 * A ServiceStateTracker returning scripted commits: `pushChange(changes)` queues a
 * change set as pending and wakes listeners; `commit()` returns all pending change
 * sets (merged by the test's own simple union) under a new generation.
 */
export class FakeTracker implements ServiceStateTracker {
  readonly serviceHandler = {};
  readonly endpointSliceHandler = {};
  private pending: ChangeSet[] = [];
  private listeners = new Set<() => void>();
  private current: ServiceSnapshot = { services: new Map(), endpoints: new Map(), generation: 0 };
  /** Every commit returned so far. */
  readonly commits: Commit[] = [];
  /** When set, the next commit() throws this. */
  commitError: unknown;

  pushChange(changes: ChangeSet): void {
    this.pending.push(changes);
    for (const l of this.listeners) l();
  }

  hasPendingChanges(): boolean {
    return this.pending.length > 0;
  }

  commit(): Commit {
    if (this.commitError !== undefined) {
      const e = this.commitError;
      this.commitError = undefined;
      throw e;
    }
    const sets = this.pending;
    this.pending = [];
    const changes: ChangeSet = {
      changedServicePorts: new Set(sets.flatMap((s) => [...s.changedServicePorts])),
      deletedServicePorts: new Set(sets.flatMap((s) => [...s.deletedServicePorts])),
      staleConntrack: sets.flatMap((s) => [...s.staleConntrack]),
      triggerTimes: new Map(sets.flatMap((s) => [...s.triggerTimes])),
    };
    if (sets.length > 0) {
      this.current = { ...this.current, generation: this.current.generation + 1 };
    }
    const commit = { snapshot: this.current, changes };
    this.commits.push(commit);
    return commit;
  }

  snapshot(): ServiceSnapshot {
    return this.current;
  }

  onPendingChange(callback: () => void): () => void {
    this.listeners.add(callback);
    return () => this.listeners.delete(callback);
  }

  get listenerCount(): number {
    return this.listeners.size;
  }
}
