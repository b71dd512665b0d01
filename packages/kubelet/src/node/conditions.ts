/**
 * The node conditions the kubelet reports (kubelet's `nodestatus` setters), computed
 * purely from the runtime's health, the PLEG's health and the pressure signals, with
 * kubelet's time rules: `lastHeartbeatTime` is the time of every computation,
 * `lastTransitionTime` changes only when a condition's status changes.
 *
 * @module
 */
import type { NodeStatus } from "./node-builder.js";

/** A node condition in wire form. */
export type NodeCondition = NonNullable<NodeStatus["conditions"]>[number];

/** A runtime condition from the CRI `Status` RPC (`RuntimeReady`, `NetworkReady`). */
export interface RuntimeConditionInfo {
  /** Condition type. */
  readonly type: string;
  /** Whether it holds. */
  readonly status: boolean;
  /** CamelCase reason. */
  readonly reason: string;
  /** Human-readable message. */
  readonly message: string;
}

/** What the runtime said about its health, or why it could not say. */
export type RuntimeHealth =
  | { readonly ok: true; readonly conditions: readonly RuntimeConditionInfo[] }
  | { readonly ok: false; readonly error: string };

/** Inputs of {@link computeNodeConditions}. */
export interface NodeHealth {
  /** The CRI `Status` answer; `undefined` before the first check. */
  readonly runtime: RuntimeHealth | undefined;
  /** Error of the PLEG health check (kubelet: "PLEG is not healthy: …"), or `undefined` when healthy. */
  readonly plegError?: string;
  /** Further reasons the node is not ready (storage, shutdown manager …). */
  readonly otherErrors?: readonly string[];
  /** Memory pressure (eviction signal `memory.available`). */
  readonly memoryPressure: boolean;
  /** Disk pressure (`nodefs` / `imagefs` signals). */
  readonly diskPressure: boolean;
  /** PID pressure (`pid.available`). */
  readonly pidPressure: boolean;
}

/** Reason of a Ready node. */
export const REASON_KUBELET_READY = "KubeletReady";
/** Reason of a not-ready node. */
export const REASON_KUBELET_NOT_READY = "KubeletNotReady";
/** Message of a Ready node. */
export const MESSAGE_KUBELET_READY = "kubelet is posting ready status";

/** The condition types the kubelet owns, in the order it reports them. */
export const NODE_CONDITION_TYPES = ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"] as const;

/** Formats epoch milliseconds as a `metav1.Time` (RFC 3339, whole seconds). */
export function formatKubeTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Formats epoch milliseconds as a `metav1.MicroTime` (RFC 3339 with microseconds). */
export function formatKubeMicroTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

function runtimeConditionError(prefix: string, c: RuntimeConditionInfo): string {
  return `${prefix}: ${c.type}=false reason:${c.reason} message:${c.message}`;
}

/**
 * Why the node is not ready (empty when it is), in kubelet's words: runtime errors
 * (unreachable runtime, `RuntimeReady=false`, unhealthy PLEG), then network errors
 * (`NetworkReady=false`), then the others.
 */
export function notReadyReasons(health: NodeHealth): string[] {
  const runtimeErrors: string[] = [];
  const networkErrors: string[] = [];
  if (!health.runtime) {
    runtimeErrors.push("container runtime status check may not have completed yet");
  } else if (!health.runtime.ok) {
    runtimeErrors.push(`container runtime is down: ${health.runtime.error}`);
  } else {
    const runtimeReady = health.runtime.conditions.find((c) => c.type === "RuntimeReady");
    const networkReady = health.runtime.conditions.find((c) => c.type === "NetworkReady");
    if (!runtimeReady) {
      runtimeErrors.push("container runtime not ready: RuntimeReady condition is missing");
    } else if (!runtimeReady.status) {
      runtimeErrors.push(runtimeConditionError("container runtime not ready", runtimeReady));
    }
    if (!networkReady) {
      networkErrors.push("container runtime network not ready: NetworkReady condition is missing");
    } else if (!networkReady.status) {
      networkErrors.push(runtimeConditionError("container runtime network not ready", networkReady));
    }
  }
  if (health.plegError) runtimeErrors.push(health.plegError);
  return [...runtimeErrors, ...networkErrors, ...(health.otherErrors ?? [])];
}

/** Joins errors as Kubernetes' error aggregates do: one as is, several as `[a, b]`. */
function aggregate(errors: readonly string[]): string {
  return errors.length === 1 ? (errors[0] ?? "") : `[${errors.join(", ")}]`;
}

/** The status, reason and message of one condition, without times. */
export interface ConditionValue {
  /** `True` or `False`. */
  readonly status: "True" | "False";
  /** CamelCase reason. */
  readonly reason: string;
  /** Human-readable message. */
  readonly message: string;
}

function pressure(
  active: boolean,
  yes: [reason: string, message: string],
  no: [reason: string, message: string],
): ConditionValue {
  const [reason, message] = active ? yes : no;
  return { status: active ? "True" : "False", reason, message };
}

/** The status, reason and message of each kubelet-owned condition (no times). */
export function desiredConditionValues(
  health: NodeHealth,
): Record<(typeof NODE_CONDITION_TYPES)[number], ConditionValue> {
  const errors = notReadyReasons(health);
  return {
    MemoryPressure: pressure(
      health.memoryPressure,
      ["KubeletHasInsufficientMemory", "kubelet has insufficient memory available"],
      ["KubeletHasSufficientMemory", "kubelet has sufficient memory available"],
    ),
    DiskPressure: pressure(
      health.diskPressure,
      ["KubeletHasDiskPressure", "kubelet has disk pressure"],
      ["KubeletHasNoDiskPressure", "kubelet has no disk pressure"],
    ),
    PIDPressure: pressure(
      health.pidPressure,
      ["KubeletHasInsufficientPID", "kubelet has insufficient PID available"],
      ["KubeletHasSufficientPID", "kubelet has sufficient PID available"],
    ),
    Ready:
      errors.length === 0
        ? { status: "True", reason: REASON_KUBELET_READY, message: MESSAGE_KUBELET_READY }
        : { status: "False", reason: REASON_KUBELET_NOT_READY, message: aggregate(errors) },
  };
}

/**
 * The node's conditions at `nowMs`: the kubelet-owned ones from `health`, with
 * `lastHeartbeatTime` = now and `lastTransitionTime` kept from `previous` unless the
 * status changed; conditions of other types in `previous` are kept unchanged.
 */
export function computeNodeConditions(
  previous: readonly NodeCondition[] | undefined,
  health: NodeHealth,
  nowMs: number,
): NodeCondition[] {
  const now = formatKubeTime(nowMs);
  const values = desiredConditionValues(health);
  const owned = NODE_CONDITION_TYPES.map((type): NodeCondition => {
    const v = values[type];
    const prev = previous?.find((c) => c.type === type);
    const transition =
      prev && prev.status === v.status && prev.lastTransitionTime ? prev.lastTransitionTime : now;
    return {
      type,
      status: v.status,
      reason: v.reason,
      message: v.message,
      lastHeartbeatTime: now,
      lastTransitionTime: transition,
    };
  });
  const others = (previous ?? []).filter(
    (c) => !(NODE_CONDITION_TYPES as readonly string[]).includes(c.type),
  );
  return [...others, ...owned];
}

/** Inputs of {@link shouldPostNodeStatus}. */
export interface PostDecisionInput {
  /** The status last posted (or read from the API server); `undefined` when none is known. */
  readonly lastPosted: NodeStatus | undefined;
  /** The status just computed. */
  readonly desired: NodeStatus;
  /** When a status was last posted (epoch ms); `undefined` for never. */
  readonly lastPostMs: number | undefined;
  /** Now (epoch ms). */
  readonly nowMs: number;
  /** kubelet's `nodeStatusReportFrequency`. */
  readonly reportFrequencyMs: number;
}

/** Why a status is (or is not) posted. */
export type PostDecision = "changed" | "report-due" | "unchanged";

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function withoutHeartbeats(status: NodeStatus): unknown {
  const conditions = [...(status.conditions ?? [])]
    .map(({ lastHeartbeatTime: _ignored, ...rest }) => rest)
    .sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
  return { ...status, conditions };
}

/**
 * True when two statuses differ in anything but the conditions' heartbeat times
 * (kubelet's `nodeStatusHasChanged`).
 */
export function nodeStatusChanged(a: NodeStatus, b: NodeStatus): boolean {
  return canonical(withoutHeartbeats(a)) !== canonical(withoutHeartbeats(b));
}

/**
 * kubelet's "should I post?" rule: post when the status changed (ignoring heartbeat
 * times), or when `nodeStatusReportFrequency` has passed since the last post.
 */
export function shouldPostNodeStatus(input: PostDecisionInput): PostDecision {
  if (!input.lastPosted || nodeStatusChanged(input.lastPosted, input.desired)) return "changed";
  if (input.lastPostMs === undefined || input.nowMs - input.lastPostMs >= input.reportFrequencyMs) {
    return "report-due";
  }
  return "unchanged";
}
