/**
 * Typed errors of CRI streaming sessions (exec, attach, port-forward over the runtime's
 * streaming server).
 *
 * @module
 */
import { WorknodeError } from "@worknode/core";

/** One cause of a v1 `Status` (`details.causes[]`). */
export interface StreamStatusCause {
  /** Machine-readable reason, such as `ExitCode`. */
  readonly reason?: string;
  /** The cause's value or text, such as `"3"` for an exit code. */
  readonly message?: string;
  /** The field the cause is about, if any. */
  readonly field?: string;
}

/**
 * The Kubernetes `metav1.Status` the streaming server writes on the error channel (v4
 * protocols), such as `{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":
 * [{"reason":"ExitCode","message":"3"}]}}`.
 */
export interface StreamStatus {
  /** `Success` or `Failure`. */
  readonly status?: string;
  /** Human-readable description. */
  readonly message?: string;
  /** Machine-readable reason, such as `NonZeroExitCode` or `InternalError`. */
  readonly reason?: string;
  /** HTTP-like code of the failure (500 for runtime errors). */
  readonly code?: number;
  /** Extra details: the exit code is a cause with reason `ExitCode`. */
  readonly details?: { readonly causes?: readonly StreamStatusCause[] };
}

/** Which streaming operation failed. */
export type CriStreamOperation = "exec" | "attach" | "portForward";

/**
 * A streaming session failed: the server refused the upgrade ({@link CriStreamError.httpStatus}),
 * the command could not run ({@link CriStreamError.status} from the error channel), the port
 * could not be forwarded, or the connection broke before an outcome arrived.
 *
 * A command that ran and exited non-zero is **not** an error: exec / attach resolve with its exit code.
 */
export class CriStreamError extends WorknodeError {
  /** The operation: `exec`, `attach` or `portForward`. */
  readonly operation: CriStreamOperation;
  /** The server's status from the error channel, when it sent one. */
  readonly status: StreamStatus | undefined;
  /** The HTTP status of a refused upgrade, when the server refused it. */
  readonly httpStatus: number | undefined;

  constructor(
    operation: CriStreamOperation,
    message: string,
    options?: { cause?: unknown; status?: StreamStatus; httpStatus?: number },
  ) {
    super("CRI_STREAM_FAILED", `CRI ${operation} stream: ${message}`, options);
    this.operation = operation;
    this.status = options?.status;
    this.httpStatus = options?.httpStatus;
  }
}

/** A frame broke the channel protocol (unknown channel, bad base64, empty message). */
export class CriStreamProtocolError extends WorknodeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("CRI_STREAM_PROTOCOL", `CRI stream protocol error: ${message}`, options);
  }
}
