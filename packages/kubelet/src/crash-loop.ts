/**
 * CrashLoopBackOff bookkeeping with kubelet's numbers: 10 s initial, doubling,
 * 300 s cap, and a key that saw no new failure for 600 s (twice the cap) starts
 * over — which is why a container that ran for 10 minutes restarts at once.
 *
 * kubelet asks client-go's `Backoff.IsInBackOffSince(key, finishedAt)`: the delay
 * is measured from the exit time of the latest exited instance, not from the
 * last update. {@link KeyedBackoff} only offers `isInBackoff(key, now)` (measured
 * from the last update), so {@link isInBackoffSince} derives kubelet's answer
 * from its public methods (see there).
 *
 * @module
 */

import type { Pod } from "@worknode/core";
import { KeyedBackoff } from "@worknode/core";
import type { Container } from "./pod-spec.js";

/** kubelet's initial container restart back-off (10 s). */
export const CRASH_LOOP_INITIAL_MS = 10_000;
/** kubelet's maximum container restart back-off (`MaxContainerBackOff`, 300 s). */
export const CRASH_LOOP_MAX_MS = 300_000;
/** A key untouched this long starts over (client-go: twice the maximum). */
export const CRASH_LOOP_RESET_MS = 2 * CRASH_LOOP_MAX_MS;

/** A {@link KeyedBackoff} with kubelet's CrashLoopBackOff numbers (also used for image pull back-off). */
export function newCrashLoopBackoff(): KeyedBackoff {
  return new KeyedBackoff({
    initialMs: CRASH_LOOP_INITIAL_MS,
    maxMs: CRASH_LOOP_MAX_MS,
    resetAfterMs: CRASH_LOOP_RESET_MS,
  });
}

/**
 * kubelet's back-off key of a container (`GetStableKey`):
 * `<pod>_<namespace>_<uid>_<container>_<spec hash>`, so a changed spec starts a fresh back-off.
 */
export function crashLoopKey(pod: Pod, container: Container, specHash: string): string {
  const m = pod.metadata;
  return `${m?.name ?? ""}_${m?.namespace ?? ""}_${m?.uid ?? ""}_${container.name}_${specHash}`;
}

/**
 * client-go's `IsInBackOffSince(key, eventMs)` at time `nowMs`: true when the key
 * has a delay `d`, its last update is no more than `resetAfterMs` before the event,
 * and `nowMs - eventMs < d`.
 *
 * The "last update" is private to {@link KeyedBackoff}; it is probed through
 * `isInBackoff(key, t)`, which is true iff `t - lastUpdate < d`. With
 * `t = eventMs - resetAfterMs + d - 1` that is `lastUpdate > eventMs - resetAfterMs - 1`,
 * i.e. `lastUpdate >= eventMs - resetAfterMs`
 * for integer milliseconds, i.e. "not expired". `resetAfterMs` must be the value the
 * back-off was built with (default: kubelet's 600 s).
 */
export function isInBackoffSince(
  backoff: KeyedBackoff,
  key: string,
  eventMs: number,
  nowMs: number,
  resetAfterMs = CRASH_LOOP_RESET_MS,
): boolean {
  const d = backoff.get(key);
  if (d <= 0) return false;
  const notExpired = backoff.isInBackoff(key, Math.floor(eventMs) - resetAfterMs + d - 1);
  return notExpired && nowMs - eventMs < d;
}
