/**
 * {@link ProbeHandlers}: the full probe runner — exec, httpGet, tcpSocket and grpc
 * — that the pod workers call once per probe tick (it implements the runtime's
 * `ProbeRunner` contract).
 *
 * As kubelet's prober: the handler is picked from the probe (exec, httpGet,
 * tcpSocket, grpc); a run that *errors* (the probe could not run: no handler,
 * unknown named port, runtime exec failure, …) is retried up to 3 times and then
 * rejects with {@link ProbeError}, which the worker discards; a probe that runs
 * and fails (including its timeout) resolves `failure`.
 *
 * @module
 */
import type { Clock, Logger, Pod } from "@worknode/core";
import { describeError, realClock, silentLogger } from "@worknode/core";
import type { ProbeKind, ProbeSpec } from "../probe-tracker.js";
import type { ProbeRunner } from "../runtime/probe-runner.js";
import { DEFAULT_RUNTIME_REQUEST_TIMEOUT_MS, type ProbeExecRuntime, runExecProbe } from "./exec-probe.js";
import { runGrpcProbe } from "./grpc-probe.js";
import { runHttpProbe } from "./http-probe.js";
import type { ProbeOutcome } from "./outcome.js";
import {
  buildHttpProbeRequest,
  DEFAULT_PROBE_KUBE_VERSION,
  expandProbeCommand,
  findContainerSpec,
  ProbeError,
  probeHandlerKind,
  probeHost,
  probeUserAgent,
  resolveProbePort,
} from "./probe-target.js";
import type { ProberMetrics } from "./prober-metrics.js";
import { runTcpProbe } from "./tcp-probe.js";

/** kubelet's `maxProbeRetries`: attempts of a probe run that errors. */
export const MAX_PROBE_RETRIES = 3;

/** Options of {@link ProbeHandlers}. */
export interface ProbeHandlersOptions {
  /** Runtime for exec probes (`CriClient.runtime`). */
  readonly runtime: ProbeExecRuntime;
  /** Kubernetes `major.minor` in the `kube-probe/…` user agent; default 1.36. */
  readonly kubeVersion?: string;
  /** Added to an exec probe's timeout as the CRI call deadline; default 2 min (kubelet's). */
  readonly runtimeRequestTimeoutMs?: number;
  /** Prober metrics to record every run in (`prober_probe_total`, `prober_probe_duration_seconds`). */
  readonly metrics?: ProberMetrics;
  /** Attempts of a run that errors; default 3. */
  readonly retries?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** An empty target host would mean localhost to the socket layer: refuse it (the pod has no IP yet). */
function requireHost(host: string, containerName: string): string {
  if (!host) throw new ProbeError(`no address to probe container ${containerName}: the pod has no IP yet`);
  return host;
}

/** Runs probes of every handler kind (see the module notes). */
export class ProbeHandlers implements ProbeRunner {
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly userAgent: string;

  constructor(private readonly options: ProbeHandlersOptions) {
    this.clock = options.clock ?? realClock;
    this.logger = options.logger ?? silentLogger();
    this.userAgent = probeUserAgent(options.kubeVersion ?? DEFAULT_PROBE_KUBE_VERSION);
  }

  /**
   * Runs `probe` against the container once (with up to 3 attempts while it
   * errors) and answers `success` or `failure`.
   * @throws ProbeError when the probe could not run (discard the attempt)
   */
  async run(
    kind: ProbeKind,
    pod: Pod,
    containerName: string,
    containerId: string,
    podIP: string,
    probe: ProbeSpec,
    timeoutMs: number,
  ): Promise<"success" | "failure"> {
    const started = this.clock.monotonic();
    const target = {
      container: containerName,
      pod: pod.metadata?.name ?? "",
      namespace: pod.metadata?.namespace ?? "",
      podUid: pod.metadata?.uid ?? "",
    };
    try {
      const outcome = await this.runWithRetries(pod, containerName, containerId, podIP, probe, timeoutMs);
      this.options.metrics?.record(
        kind,
        outcome.result === "success" ? "successful" : "failed",
        target,
        (this.clock.monotonic() - started) / 1000,
      );
      if (outcome.result === "failure") {
        this.logger.debug({ ...target, probe: kind, output: outcome.output }, "probe failed");
      }
      return outcome.result;
    } catch (err) {
      this.options.metrics?.record(kind, "unknown", target, (this.clock.monotonic() - started) / 1000);
      this.logger.debug({ ...target, probe: kind, err: describeError(err) }, "probe errored");
      throw err;
    }
  }

  /**
   * One probe run with kubelet's retries on error, returning the outcome with its message.
   * @throws ProbeError after the last attempt errored
   */
  async runWithRetries(
    pod: Pod,
    containerName: string,
    containerId: string,
    podIP: string,
    probe: ProbeSpec,
    timeoutMs: number,
  ): Promise<ProbeOutcome> {
    const attempts = Math.max(1, this.options.retries ?? MAX_PROBE_RETRIES);
    let last: unknown;
    for (let i = 0; i < attempts; i++) {
      try {
        return await this.runOnce(pod, containerName, containerId, podIP, probe, timeoutMs);
      } catch (err) {
        last = err;
      }
    }
    throw last instanceof ProbeError ? last : new ProbeError(describeError(last), { cause: last });
  }

  /**
   * One attempt of the probe's handler.
   * @throws ProbeError when the probe cannot run
   */
  async runOnce(
    pod: Pod,
    containerName: string,
    containerId: string,
    podIP: string,
    probe: ProbeSpec,
    timeoutMs: number,
  ): Promise<ProbeOutcome> {
    const container = findContainerSpec(pod, containerName);
    switch (probeHandlerKind(probe)) {
      case "exec":
        return runExecProbe(
          this.options.runtime,
          containerId,
          expandProbeCommand(probe.exec?.command ?? [], container),
          timeoutMs,
          this.options.runtimeRequestTimeoutMs ?? DEFAULT_RUNTIME_REQUEST_TIMEOUT_MS,
        );
      case "httpGet": {
        const request = buildHttpProbeRequest(probe, container, podIP, this.userAgent);
        return runHttpProbe(request, timeoutMs, this.clock);
      }
      case "tcpSocket": {
        const port = resolveProbePort(probe.tcpSocket?.port, container);
        const host = requireHost(probeHost(probe.tcpSocket?.host, podIP), containerName);
        return runTcpProbe(host, port, timeoutMs, this.clock);
      }
      case "grpc": {
        const port = resolveProbePort(probe.grpc?.port, container);
        const host = requireHost(podIP, containerName);
        return runGrpcProbe(host, port, probe.grpc?.service ?? "", timeoutMs, this.userAgent);
      }
      default:
        throw new ProbeError(`missing probe handler for ${containerName}`);
    }
  }
}
