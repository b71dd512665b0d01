/**
 * Kubernetes `Status` objects for the kubelet API's error answers.
 *
 * @module
 */

/** A `metav1.Status` failure. */
export interface KubeFailureStatus {
  readonly kind: "Status";
  readonly apiVersion: "v1";
  readonly metadata: Record<string, never>;
  readonly status: "Failure";
  readonly message: string;
  readonly reason: string;
  readonly code: number;
}

/** The `StatusReason` the API server uses for an HTTP status code. */
export function statusReasonForCode(code: number): string {
  switch (code) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 409:
      return "Conflict";
    case 429:
      return "TooManyRequests";
    case 503:
      return "ServiceUnavailable";
    default:
      return code >= 500 ? "InternalError" : "Unknown";
  }
}

/** A failure `Status` with the reason of its code. */
export function failureStatus(code: number, message: string): KubeFailureStatus {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason: statusReasonForCode(code),
    code,
  };
}
