/**
 * Probe decisions without I/O: when to probe and what a result means, as
 * kubelet's probe workers decide (pkg/kubelet/prober/worker.go). The pod worker
 * runs the handler (exec, httpGet, tcpSocket, grpc) with `timeoutMs` and feeds the
 * outcome back.
 *
 * Per container and probe type a {@link ProbeTracker}:
 * - starts from kubelet's initial result: readiness `failure`, liveness `success`,
 *   startup `unknown`; a new container instance (new ID) resets it;
 * - ticks every `periodSeconds`, first at once; a tick probes only when the
 *   container runs, `initialDelaySeconds` have passed since it started (whole
 *   seconds, as kubelet truncates), and the startup gate allows it (startup probes
 *   until the container started, liveness and readiness only after);
 * - publishes a result after `successThreshold` successes or `failureThreshold`
 *   failures in a row; a failed liveness or startup probe then holds (stops
 *   probing) until the container is replaced; errors are discarded;
 * - while the pod is being deleted, liveness and startup report success and stop.
 *
 * {@link ContainerProbes} combines the three trackers of a container into
 * `started` / `ready` / `livenessFailed` / `startupFailed`.
 *
 * @module
 */
import type { V1Probe } from "@kubernetes/client-node";
import type { Clock, Wire } from "@worknode/core";
import type { Container } from "./pod-spec.js";

/** A probe spec in wire form. */
export type ProbeSpec = Wire<V1Probe>;
/** The three probe types. */
export type ProbeKind = "liveness" | "readiness" | "startup";
/** A published probe result. */
export type ProbeResult = "success" | "failure" | "unknown";

/** Probe timing and thresholds with Kubernetes defaults applied, in milliseconds. */
export interface ProbeSettings {
  readonly initialDelaySeconds: number;
  readonly periodMs: number;
  readonly timeoutMs: number;
  readonly successThreshold: number;
  readonly failureThreshold: number;
}

/** Defaults: period 10 s, timeout 1 s, success 1, failure 3, initial delay 0. */
export const PROBE_DEFAULTS = {
  periodSeconds: 10,
  timeoutSeconds: 1,
  successThreshold: 1,
  failureThreshold: 3,
  initialDelaySeconds: 0,
} as const;

function positive(v: number | undefined, d: number): number {
  return v !== undefined && v > 0 ? v : d;
}

/** A probe's settings with defaults (liveness and startup probes always use a success threshold of 1). */
export function probeSettings(probe: ProbeSpec, kind: ProbeKind): ProbeSettings {
  return {
    initialDelaySeconds: Math.max(0, probe.initialDelaySeconds ?? PROBE_DEFAULTS.initialDelaySeconds),
    periodMs: positive(probe.periodSeconds, PROBE_DEFAULTS.periodSeconds) * 1000,
    timeoutMs: positive(probe.timeoutSeconds, PROBE_DEFAULTS.timeoutSeconds) * 1000,
    successThreshold:
      kind === "readiness" ? positive(probe.successThreshold, PROBE_DEFAULTS.successThreshold) : 1,
    failureThreshold: positive(probe.failureThreshold, PROBE_DEFAULTS.failureThreshold),
  };
}

/** kubelet's initial result of a probe type for a new container instance. */
export function initialProbeResult(kind: ProbeKind): ProbeResult {
  return kind === "readiness" ? "failure" : kind === "liveness" ? "success" : "unknown";
}

/** What a tick decided. */
export type TickDecision =
  /** run the handler now (with `timeoutMs`) and call `record` */
  | "probe"
  /** nothing to do this tick */
  | "skip"
  /** the tracker is done (pod terminating); stop ticking */
  | "stop";

/** The per-container × probe-type state machine (see the module notes). */
export class ProbeTracker {
  /** Settings with defaults applied. */
  readonly settings: ProbeSettings;
  private currentResult: ProbeResult;
  private lastRaw: "success" | "failure" | undefined;
  private run = 0;
  private hold = false;
  private stopped = false;
  private containerId: string | undefined;
  private startedAt = 0;
  private nextTick = 0;

  constructor(
    readonly kind: ProbeKind,
    probe: ProbeSpec,
    private readonly clock: Clock,
  ) {
    this.settings = probeSettings(probe, kind);
    this.currentResult = initialProbeResult(kind);
  }

  /** The published result. */
  get result(): ProbeResult {
    return this.currentResult;
  }

  /** True after a liveness / startup failure, until the container is replaced. */
  get onHold(): boolean {
    return this.hold;
  }

  /** When the next tick is due (epoch ms); tick at once when the container changed. */
  get nextTickAt(): number {
    return this.nextTick;
  }

  /**
   * Tells the tracker which container instance runs now. A new ID resets the
   * result to the initial one, the counters and the hold, and makes a tick due at once.
   */
  observeContainer(containerId: string, startedAtMs: number): void {
    if (containerId === this.containerId) return;
    this.containerId = containerId;
    this.startedAt = startedAtMs;
    this.currentResult = initialProbeResult(this.kind);
    this.lastRaw = undefined;
    this.run = 0;
    this.hold = false;
    this.nextTick = this.clock.now();
  }

  /** The pod is being deleted: liveness and startup report success and stop; readiness goes on. */
  podTerminating(): void {
    if (this.kind === "readiness") return;
    this.currentResult = "success";
    this.stopped = true;
  }

  /**
   * One tick of the probe loop: decides whether to probe now and schedules the
   * next tick one period later.
   *
   * @param running the container (the one last observed) is running
   * @param started the container passed its startup probe (or has none)
   */
  tick(running: boolean, started: boolean): TickDecision {
    const now = this.clock.now();
    if (this.stopped) return "stop";
    this.nextTick = now + this.settings.periodMs;
    if (!running || this.containerId === undefined || this.hold) return "skip";
    if (Math.trunc((now - this.startedAt) / 1000) < this.settings.initialDelaySeconds) return "skip";
    if (this.kind === "startup" ? started : !started) return "skip";
    return "probe";
  }

  /**
   * Feeds the outcome of a probe run. `error` (the probe could not run) is
   * discarded. Returns true when the published result changed.
   */
  record(outcome: "success" | "failure" | "error"): boolean {
    if (outcome === "error" || this.stopped) return false;
    if (this.lastRaw === outcome) this.run++;
    else {
      this.lastRaw = outcome;
      this.run = 1;
    }
    const threshold = outcome === "failure" ? this.settings.failureThreshold : this.settings.successThreshold;
    if (this.run < threshold) return false;
    const changed = this.currentResult !== outcome;
    this.currentResult = outcome;
    if (outcome === "failure" && this.kind !== "readiness") {
      this.hold = true;
      this.run = 0;
    }
    return changed;
  }
}

/** Probe-derived state of a container instance. */
export interface ContainerProbeState {
  /** Startup probe succeeded, or the container has none. */
  readonly started: boolean;
  /** Started, and the readiness probe succeeded (or the container has none). */
  readonly ready: boolean;
  /** The liveness probe failed: kill and restart per policy. */
  readonly livenessFailed: boolean;
  /** The startup probe failed: kill and restart per policy. */
  readonly startupFailed: boolean;
}

/** The probe trackers of one container, combined. */
export class ContainerProbes {
  /** Tracker per configured probe type. */
  readonly trackers: ReadonlyMap<ProbeKind, ProbeTracker>;

  constructor(container: Container, clock: Clock) {
    const t = new Map<ProbeKind, ProbeTracker>();
    if (container.startupProbe) t.set("startup", new ProbeTracker("startup", container.startupProbe, clock));
    if (container.livenessProbe)
      t.set("liveness", new ProbeTracker("liveness", container.livenessProbe, clock));
    if (container.readinessProbe)
      t.set("readiness", new ProbeTracker("readiness", container.readinessProbe, clock));
    this.trackers = t;
  }

  /** Passes the current container instance to every tracker. */
  observeContainer(containerId: string, startedAtMs: number): void {
    for (const t of this.trackers.values()) t.observeContainer(containerId, startedAtMs);
  }

  /** Passes pod termination to every tracker. */
  podTerminating(): void {
    for (const t of this.trackers.values()) t.podTerminating();
  }

  /** Combined state for status generation and `computePodActions`. */
  state(): ContainerProbeState {
    const startup = this.trackers.get("startup");
    const liveness = this.trackers.get("liveness");
    const readiness = this.trackers.get("readiness");
    const started = !startup || startup.result === "success";
    return {
      started,
      ready: started && (!readiness || readiness.result === "success"),
      livenessFailed: liveness?.result === "failure",
      startupFailed: startup?.result === "failure",
    };
  }
}
