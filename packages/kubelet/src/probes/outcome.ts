/**
 * What one run of a probe handler produced.
 *
 * @module
 */

/** The result of one probe run and kubelet's message for it (used in logs and events). */
export interface ProbeOutcome {
  /** `success` or `failure` (kubelet's `Warning` — a redirect not followed — counts as success). */
  readonly result: "success" | "failure";
  /** Short explanation, such as `HTTP probe failed with statuscode: 503`; empty on plain success. */
  readonly output: string;
}

/** A successful outcome. */
export function probeSuccess(output = ""): ProbeOutcome {
  return { result: "success", output };
}

/** A failed outcome with its reason. */
export function probeFailure(output: string): ProbeOutcome {
  return { result: "failure", output };
}
