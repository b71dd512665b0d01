/**
 * What status patch the status manager sends for a pod (kubelet's
 * `status_manager.go`: `mergePodStatus`, `needsUpdate`, `PatchPodStatus`), as
 * pure functions:
 *
 * - {@link guardStatus} keeps a status from going backwards against what the
 *   API server already shows (a terminal phase stays; a terminated container
 *   does not run again when it cannot have been restarted);
 * - {@link computeStatusPatch} compares the kubelet's status with the API's,
 *   ignoring timestamp noise, and returns a strategic merge patch carrying only
 *   what changed, with `metadata.uid` as a precondition — or nothing when the API
 *   is up to date. Conditions owned by others (`PodScheduled` set by the
 *   scheduler, readiness gates, disruption conditions) are never sent, so the
 *   API keeps them (conditions merge by `type`).
 *
 * @module
 */
import { KUBELET_CONDITION_TYPES } from "../pod-conditions.js";
import type { ContainerStatus, PodCondition, PodStatus, RestartPolicy } from "../pod-spec.js";

/** Fields of `T` set, or `null` to delete them (strategic merge patch). */
export type NullableFields<T> = { [K in keyof T]?: T[K] | null };

/** The `status` of a {@link PodStatusPatch}: changed fields; conditions merge by `type`. */
export type PodStatusPatchFields = Omit<NullableFields<PodStatus>, "conditions"> & {
  conditions?: NullableFields<PodCondition>[];
};

/** The patch body: `metadata.uid` (precondition) and the changed status fields. */
export interface PodStatusPatch {
  readonly metadata: { readonly uid: string };
  readonly status: PodStatusPatchFields;
}

/** Options of {@link computeStatusPatch}. */
export interface StatusPatchOptions {
  /** UID of the API object patched (the mirror pod's for a static pod). */
  readonly uid: string;
  /** The pod's restart policy (which container transitions are legal); default `Always`. */
  readonly restartPolicy?: RestartPolicy;
}

function isTerminalPhase(phase: string | undefined): boolean {
  return phase === "Succeeded" || phase === "Failed";
}

type StatusListKey = "containerStatuses" | "initContainerStatuses" | "ephemeralContainerStatuses";
const CONTAINER_LISTS: readonly StatusListKey[] = [
  "initContainerStatuses",
  "containerStatuses",
  "ephemeralContainerStatuses",
];

/**
 * True when the API's status `had` of a container may not be replaced by the
 * non-terminated `next`: the same instance (container ID) cannot run again, the
 * pod is terminal, or the restart policy does not restart it (`Never`, or
 * `OnFailure` after a success).
 */
function mustStayTerminated(
  had: ContainerStatus,
  next: ContainerStatus,
  policy: RestartPolicy,
  podTerminal: boolean,
): boolean {
  const t = had.state?.terminated;
  if (!t || next.state?.terminated) return false;
  if (had.containerID && had.containerID === next.containerID) return true;
  if (podTerminal) return true;
  if (policy === "Never") return true;
  return policy === "OnFailure" && t.exitCode === 0;
}

/**
 * `next` adjusted so that it never goes backwards against `api` (the status the
 * API server has): a terminal phase is kept with its reason and message, and a
 * container that terminated and cannot have been restarted keeps its
 * terminated status. Returns `next` itself when nothing needed adjusting.
 */
export function guardStatus(
  api: PodStatus | undefined,
  next: PodStatus,
  restartPolicy: RestartPolicy = "Always",
): PodStatus {
  if (!api) return next;
  let out = next;
  const apiTerminal = isTerminalPhase(api.phase);
  if (apiTerminal && next.phase !== api.phase) {
    out = { ...out, phase: api.phase as PodStatus["phase"] };
    if (api.reason) out.reason = api.reason;
    else delete out.reason;
    if (api.message) out.message = api.message;
    else delete out.message;
  }
  for (const key of CONTAINER_LISTS) {
    const had = api[key];
    const list = out[key];
    if (!had?.length || !list?.length) continue;
    let changed = false;
    const fixed = list.map((c) => {
      const o = had.find((x) => x.name === c.name);
      if (o && mustStayTerminated(o, c, restartPolicy, apiTerminal)) {
        changed = true;
        return { ...structuredClone(o), ready: false };
      }
      return c;
    });
    if (changed) out = { ...out, [key]: fixed };
  }
  return out;
}

/**
 * A value without what the API server treats as absent (`null`, `""`, empty
 * objects such as the `lastState: {}` it always returns), with sorted keys.
 */
function normalize(value: unknown): unknown {
  if (value === null || value === undefined || value === "") return undefined;
  if (Array.isArray(value)) return value.map((v) => normalize(v) ?? null);
  if (typeof value !== "object") return value;
  const o = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o).sort()) {
    const v = normalize(o[k]);
    if (v !== undefined) out[k] = v;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function canonical(value: unknown): string {
  return JSON.stringify(normalize(value) ?? null);
}

function sameValue(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

/** A condition without its timestamps, for comparison. */
function conditionContent(c: PodCondition): unknown {
  return { type: c.type, status: c.status, reason: c.reason ?? "", message: c.message ?? "" };
}

/** Kubelet-owned conditions of `next` that the API lacks or shows differently (timestamps ignored). */
function changedConditions(api: PodStatus | undefined, next: PodStatus): NullableFields<PodCondition>[] {
  const out: NullableFields<PodCondition>[] = [];
  for (const c of next.conditions ?? []) {
    if (!KUBELET_CONDITION_TYPES.has(c.type)) continue;
    const o = api?.conditions?.find((x) => x.type === c.type);
    // PodScheduled belongs to the scheduler for API pods: only set it where nobody did.
    if (c.type === "PodScheduled" && o) continue;
    if (o && sameValue(conditionContent(o), conditionContent(c))) continue;
    // Conditions merge by type: fields the new one lacks are deleted explicitly (null).
    out.push({ ...c, reason: c.reason || null, message: c.message || null, lastProbeTime: null });
  }
  return out;
}

/** Scalar status fields the kubelet owns. */
const SCALAR_FIELDS = ["phase", "reason", "message", "hostIP", "podIP", "startTime", "qosClass"] as const;
/** List fields replaced whole or merged by key (`ip`). */
const LIST_FIELDS = ["hostIPs", "podIPs", ...CONTAINER_LISTS] as const;

/**
 * The strategic merge patch that brings the API's status `api` to the
 * kubelet's `desired` (after {@link guardStatus}), or `undefined` when they
 * agree. Timestamps of unchanged conditions and probe times are noise and are
 * not compared; conditions not owned by the kubelet are never sent.
 */
export function computeStatusPatch(
  api: PodStatus | undefined,
  desired: PodStatus,
  options: StatusPatchOptions,
): PodStatusPatch | undefined {
  const next = guardStatus(api, desired, options.restartPolicy ?? "Always");
  const status: Record<string, unknown> = {};
  for (const f of SCALAR_FIELDS) {
    const v = next[f];
    if (v === undefined || v === "") {
      // A pod reason or message that no longer applies is deleted explicitly.
      if ((f === "reason" || f === "message") && api?.[f]) status[f] = null;
      continue;
    }
    // A startTime once set is the API's (kubelet never moves it).
    if (f === "startTime" && api?.startTime) continue;
    if (!sameValue(api?.[f], v)) status[f] = v;
  }
  for (const f of LIST_FIELDS) {
    const v = next[f];
    if (v === undefined) continue;
    if (!sameValue(api?.[f], v)) status[f] = v;
  }
  const conditions = changedConditions(api, next);
  if (conditions.length > 0) status.conditions = conditions;
  if (Object.keys(status).length === 0) return undefined;
  return { metadata: { uid: options.uid }, status: status as PodStatusPatchFields };
}
