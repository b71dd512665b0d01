/**
 * Typed errors shared by every worknode package.
 *
 * Every error thrown across a package boundary is a {@link WorknodeError}
 * subclass carrying a stable machine-readable {@link WorknodeError.code}, so
 * callers branch on `instanceof` or `code`, never on message text.
 *
 * @module
 */

/** Base class of all worknode errors. */
export class WorknodeError extends Error {
  /** Stable, machine-readable error code (for example `"INVALID_OBJECT"`). */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A reference to a Kubernetes object, used to name the object an error is about. */
export interface ObjectRef {
  /** Kind, such as `Service`, `EndpointSlice` or `Pod`. */
  readonly kind: string;
  /** Namespace; empty for cluster-scoped objects or when unknown. */
  readonly namespace?: string;
  /** Name; may be empty when the object has none. */
  readonly name?: string;
  /** Where the object came from, such as a file path and document index. */
  readonly origin?: string;
}

/** Formats an {@link ObjectRef} as `Kind ns/name (origin)` for messages. */
export function formatObjectRef(ref: ObjectRef): string {
  const id = ref.namespace ? `${ref.namespace}/${ref.name ?? "<unnamed>"}` : (ref.name ?? "<unnamed>");
  return `${ref.kind} ${id}${ref.origin ? ` (${ref.origin})` : ""}`;
}

/**
 * An input object (a Service, an EndpointSlice, a Pod manifest …) was rejected.
 * Sources report it and keep serving the valid objects.
 */
export class InvalidObjectError extends WorknodeError {
  /** The object that was rejected. */
  readonly object: ObjectRef;
  /** Why it was rejected, one line each. */
  readonly reasons: readonly string[];

  constructor(object: ObjectRef, reasons: readonly string[], options?: { cause?: unknown }) {
    super("INVALID_OBJECT", `invalid ${formatObjectRef(object)}: ${reasons.join("; ")}`, options);
    this.object = object;
    this.reasons = reasons;
  }
}

/** A configuration value (flag, config file field) is invalid. */
export class ConfigError extends WorknodeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("CONFIG", message, options);
  }
}

/** An external system (API server, runtime socket, kernel tool) could not be reached or failed. */
export class UnavailableError extends WorknodeError {
  /** What could not be reached, such as `unix:///run/containerd/containerd.sock`. */
  readonly target: string;

  constructor(target: string, message: string, options?: { cause?: unknown }) {
    super("UNAVAILABLE", message, options);
    this.target = target;
  }
}

/** A Kubernetes API request failed with an HTTP status. */
export class ApiStatusError extends WorknodeError {
  /** HTTP status code returned by the API server. */
  readonly status: number;
  /** The `reason` field of the returned `Status` object, when present (for example `Expired`). */
  readonly reason: string | undefined;

  constructor(status: number, reason: string | undefined, message: string, options?: { cause?: unknown }) {
    super("API_STATUS", message, options);
    this.status = status;
    this.reason = reason;
  }
}

/** An operation was cancelled through an AbortSignal or by stopping a component. */
export class AbortedError extends WorknodeError {
  constructor(message = "operation aborted", options?: { cause?: unknown }) {
    super("ABORTED", message, options);
  }
}

/** Returns a one-line description of any thrown value, for logs and CLI output. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message.split("\n")[0] ?? err.name;
  return String(err);
}
