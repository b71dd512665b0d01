/**
 * Merging of {@link ChangeSet}s, so that the changes of a failed sync are carried
 * into the next one instead of being lost.
 *
 * @module
 */
import type { ChangeSet, ServicePortKey, StaleConntrack } from "../service/model.js";

/** A change set that changes nothing. */
export function emptyChangeSet(): ChangeSet {
  return {
    changedServicePorts: new Set(),
    deletedServicePorts: new Set(),
    staleConntrack: [],
    triggerTimes: new Map(),
  };
}

/** True when `changes` lists no change at all. */
export function isEmptyChangeSet(changes: ChangeSet): boolean {
  return (
    changes.changedServicePorts.size === 0 &&
    changes.deletedServicePorts.size === 0 &&
    changes.staleConntrack.length === 0 &&
    changes.triggerTimes.size === 0
  );
}

function staleConntrackKey(s: StaleConntrack): string {
  return `${s.serviceIP}|${s.port}|${s.protocol}|${s.endpoint ?? "*"}`;
}

/**
 * Combines two consecutive change sets into one that describes both, as if the
 * two commits had been one:
 *
 * - `changedServicePorts`: union;
 * - `deletedServicePorts`: union, except ports that `newer` lists as changed but
 *   not deleted (deleted, then re-created: they exist again);
 * - `staleConntrack`: union without duplicates (flushing is idempotent and must not be skipped);
 * - `triggerTimes`: union keeping the earliest time per port (latency counts from the first change).
 *
 * Pure; neither input is modified. Returns one of the inputs unchanged when the other is empty.
 * @param older the change set that came first (for example of a sync that failed)
 * @param newer the change set committed after it
 */
export function mergeChangeSets(older: ChangeSet, newer: ChangeSet): ChangeSet {
  if (isEmptyChangeSet(older)) return newer;
  if (isEmptyChangeSet(newer)) return older;

  const changed = new Set<ServicePortKey>(older.changedServicePorts);
  for (const k of newer.changedServicePorts) changed.add(k);

  const deleted = new Set<ServicePortKey>(newer.deletedServicePorts);
  for (const k of older.deletedServicePorts) {
    const recreated = newer.changedServicePorts.has(k) && !newer.deletedServicePorts.has(k);
    if (!recreated) deleted.add(k);
  }

  let staleConntrack: readonly StaleConntrack[];
  if (older.staleConntrack.length === 0) staleConntrack = newer.staleConntrack;
  else if (newer.staleConntrack.length === 0) staleConntrack = older.staleConntrack;
  else {
    const seen = new Set<string>();
    const merged: StaleConntrack[] = [];
    for (const list of [older.staleConntrack, newer.staleConntrack]) {
      for (const s of list) {
        const key = staleConntrackKey(s);
        if (seen.has(key)) continue;
        seen.add(key);
        merged.push(s);
      }
    }
    staleConntrack = merged;
  }

  const triggerTimes = new Map<ServicePortKey, number>(older.triggerTimes);
  for (const [k, t] of newer.triggerTimes) {
    const prev = triggerTimes.get(k);
    if (prev === undefined || t < prev) triggerTimes.set(k, t);
  }

  return { changedServicePorts: changed, deletedServicePorts: deleted, staleConntrack, triggerTimes };
}
