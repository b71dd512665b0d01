/**
 * The contract between the pod workers (which decide *when* to probe, through
 * `ProbeTracker`) and probe handlers (which run one probe). Full handlers for
 * exec, httpGet, tcpSocket and grpc implement {@link ProbeRunner}; the
 * {@link ExecProbeRunner} here runs exec probes only, through CRI `ExecSync`.
 *
 * @module
 */
import type { V1Probe } from "@kubernetes/client-node";
import type { Pod, Wire } from "@worknode/core";
import { type CriClient, isCriStatus } from "@worknode/cri";

/** The probe types. */
export type ProbeRunKind = "liveness" | "readiness" | "startup";

/** Runs one probe of a container once. */
export interface ProbeRunner {
  /**
   * Runs `probe` against the container and answers `success` or `failure`
   * (a probe that times out fails). Rejects only when the probe could not be run
   * at all (the worker then discards the attempt).
   */
  run(
    kind: ProbeRunKind,
    pod: Pod,
    containerName: string,
    containerId: string,
    podIP: string,
    probe: Wire<V1Probe>,
    timeoutMs: number,
  ): Promise<"success" | "failure">;
}

/** A probe handler kind the runner does not implement. */
export class UnsupportedProbeError extends Error {
  constructor(what: string) {
    super(`probe handler not supported: ${what}`);
    this.name = "UnsupportedProbeError";
  }
}

/**
 * Runs exec probes through CRI `ExecSync` (exit code 0 = success; a timeout
 * fails); other handlers reject with {@link UnsupportedProbeError}.
 */
export class ExecProbeRunner implements ProbeRunner {
  constructor(private readonly client: CriClient) {}

  /** See {@link ProbeRunner.run}. */
  async run(
    _kind: ProbeRunKind,
    _pod: Pod,
    _containerName: string,
    containerId: string,
    _podIP: string,
    probe: Wire<V1Probe>,
    timeoutMs: number,
  ): Promise<"success" | "failure"> {
    const cmd = probe.exec?.command;
    if (!cmd?.length) throw new UnsupportedProbeError(Object.keys(probe).join(","));
    const timeoutS = Math.max(1, Math.ceil(timeoutMs / 1000));
    try {
      const res = await this.client.runtime.execSync(
        { containerId, cmd, timeout: timeoutS },
        { timeoutMs: timeoutMs + 5000 },
      );
      return res.exitCode === 0 ? "success" : "failure";
    } catch (e) {
      if (isCriStatus(e, "DEADLINE_EXCEEDED")) return "failure";
      throw e;
    }
  }
}
