/**
 * What the kubelet changes on a Node that already exists when it registers (kubelet's
 * `reconcileExistingNode`): it updates the labels it owns (its default labels and the
 * `--node-labels` it was given) and the annotations it sets, keeps every label and
 * annotation others set, and never touches taints: like the real kubelet,
 * `--register-with-taints` applies only when the Node is created (NodeRestriction forbids
 * a node to change its taints anyway).
 *
 * @module
 */
import type { Node } from "@worknode/core";

/** A JSON merge patch of a Node's metadata. */
export interface NodeMetadataPatch {
  /** Guards the patch with the version it was computed from (409 Conflict when stale). */
  readonly metadata: {
    readonly resourceVersion?: string;
    readonly labels?: Readonly<Record<string, string>>;
    readonly annotations?: Readonly<Record<string, string>>;
  };
}

function changedEntries(
  existing: Readonly<Record<string, string>>,
  desired: Readonly<Record<string, string>>,
): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  let any = false;
  for (const [k, v] of Object.entries(desired)) {
    if (existing[k] !== v) {
      out[k] = v;
      any = true;
    }
  }
  return any ? out : undefined;
}

/**
 * The merge patch that brings `existing` in line with `desired` (built by `buildNode`),
 * or `undefined` when nothing needs to change.
 */
export function reconcileNode(existing: Node, desired: Node): NodeMetadataPatch | undefined {
  const labels = changedEntries(existing.metadata?.labels ?? {}, desired.metadata?.labels ?? {});
  const annotations = changedEntries(
    existing.metadata?.annotations ?? {},
    desired.metadata?.annotations ?? {},
  );
  if (!labels && !annotations) return undefined;
  const rv = existing.metadata?.resourceVersion;
  return {
    metadata: {
      ...(rv ? { resourceVersion: rv } : {}),
      ...(labels ? { labels } : {}),
      ...(annotations ? { annotations } : {}),
    },
  };
}
