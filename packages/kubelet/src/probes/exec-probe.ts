/**
 * The exec probe handler: runs the probe command in the container through the
 * CRI `ExecSync` call with the probe's timeout; exit status 0 is success.
 *
 * As kubelet does (ExecProbeTimeout on): the runtime is told the timeout in whole
 * seconds, the call itself gets the timeout plus the runtime request timeout
 * (2 min) as its deadline, and a deadline error is a probe *failure*
 * ("command timed out"). Any other runtime error means the probe could not run
 * ({@link ProbeError}), and kubelet discards that result.
 *
 * @module
 */
import { describeError, WorknodeError } from "@worknode/core";
import { type ProbeOutcome, probeFailure, probeSuccess } from "./outcome.js";
import { ProbeError } from "./probe-target.js";

/**
 * The slice of the CRI runtime service the exec probe uses. `CriClient.runtime`
 * from `@worknode/cri` satisfies it; tests pass a small fake.
 */
export interface ProbeExecRuntime {
  /** CRI `ExecSync`: runs `cmd` in the container, waits at most `timeout` seconds. */
  execSync(
    request: { containerId: string; cmd: string[]; timeout: bigint },
    options?: { timeoutMs?: number; signal?: AbortSignal },
  ): Promise<{ exitCode: number; stdout: Uint8Array; stderr: Uint8Array }>;
}

/** kubelet's default runtime request timeout (`--runtime-request-timeout`, 2 min). */
export const DEFAULT_RUNTIME_REQUEST_TIMEOUT_MS = 120_000;

/** At most this many bytes of the command's output are kept for the outcome message (kubelet: 10 KiB). */
const MAX_OUTPUT_BYTES = 10 * 1024;

function isDeadlineError(err: unknown): boolean {
  return err instanceof WorknodeError && err.code === "CRI_DEADLINE_EXCEEDED";
}

function outputText(stdout: Uint8Array, stderr: Uint8Array): string {
  const all = Buffer.concat([Buffer.from(stdout), Buffer.from(stderr)]);
  return all.subarray(0, MAX_OUTPUT_BYTES).toString("utf8");
}

/**
 * Runs an exec probe.
 * @param cmd the command, already expanded (see `expandProbeCommand`)
 * @throws ProbeError when the runtime fails for another reason than the timeout
 */
export async function runExecProbe(
  runtime: ProbeExecRuntime,
  containerId: string,
  cmd: readonly string[],
  timeoutMs: number,
  runtimeRequestTimeoutMs: number = DEFAULT_RUNTIME_REQUEST_TIMEOUT_MS,
): Promise<ProbeOutcome> {
  if (cmd.length === 0) throw new ProbeError("exec probe has no command");
  const timeoutSeconds = Math.max(1, Math.trunc(timeoutMs / 1000));
  try {
    const res = await runtime.execSync(
      { containerId, cmd: [...cmd], timeout: BigInt(timeoutSeconds) },
      { timeoutMs: timeoutMs + runtimeRequestTimeoutMs },
    );
    const output = outputText(res.stdout, res.stderr);
    if (res.exitCode === 0) return probeSuccess(output);
    return probeFailure(`command ${JSON.stringify(cmd.join(" "))} exited with ${res.exitCode}: ${output}`);
  } catch (err) {
    if (isDeadlineError(err)) {
      return probeFailure(`command ${JSON.stringify(cmd.join(" "))} timed out after ${timeoutSeconds}s`);
    }
    throw new ProbeError(`exec probe in container ${containerId} failed to run: ${describeError(err)}`, {
      cause: err,
    });
  }
}
