/**
 * Typed CRI errors and the pure mapping from a gRPC status to them.
 *
 * Every failed call rejects with a {@link CriError} carrying the gRPC status code, the RPC and the
 * endpoint. Callers branch on the subclass (`instanceof CriNotFoundError`) or on
 * {@link CriError.grpcCode}, never on message text.
 *
 * @module
 */
import { WorknodeError } from "@worknode/core";

/** gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** A gRPC status code name, such as `NOT_FOUND`. */
export type GrpcStatusName = keyof typeof GrpcStatus;

const STATUS_NAMES = new Map<number, GrpcStatusName>(
  Object.entries(GrpcStatus).map(([name, code]) => [code, name as GrpcStatusName]),
);

/** Returns the name of a gRPC status code (`5` → `NOT_FOUND`), or `CODE_<n>` for unknown codes. */
export function grpcStatusName(code: number): string {
  return STATUS_NAMES.get(code) ?? `CODE_${code}`;
}

/** Where a failed CRI call went: the RPC, its service and the runtime endpoint. */
export interface CriCallRef {
  /** Service of the RPC: `RuntimeService` or `ImageService`. */
  readonly service: string;
  /** RPC name as in the proto, such as `PullImage`. */
  readonly rpc: string;
  /** Runtime endpoint, such as `unix:///run/containerd/containerd.sock`. */
  readonly endpoint: string;
}

/** A CRI call failed. Subclasses name the status codes callers usually branch on. */
export class CriError extends WorknodeError {
  /** gRPC status code returned by the runtime (or by the client library for local failures). */
  readonly grpcCode: number;
  /** RPC name as in the proto, such as `PullImage`. */
  readonly rpc: string;
  /** Service of the RPC: `RuntimeService` or `ImageService`. */
  readonly service: string;
  /** Runtime endpoint the call went to. */
  readonly endpoint: string;
  /** The runtime's error text (the gRPC status details), without the prefix this class adds. */
  readonly details: string;

  constructor(
    code: string,
    ref: CriCallRef,
    grpcCode: number,
    details: string,
    options?: { cause?: unknown },
  ) {
    super(
      code,
      `CRI ${ref.rpc} on ${ref.endpoint} failed: ${grpcStatusName(grpcCode)}${details ? `: ${details}` : ""}`,
      options,
    );
    this.grpcCode = grpcCode;
    this.rpc = ref.rpc;
    this.service = ref.service;
    this.endpoint = ref.endpoint;
    this.details = details;
  }
}

/**
 * The object the call names does not exist (gRPC `NOT_FOUND`). Also used for PullImage of a
 * reference the registry does not have: containerd answers that with `UNKNOWN` and a
 * "…: not found" message; {@link CriNotFoundError.inferred} is then true and `grpcCode` stays
 * the runtime's code.
 */
export class CriNotFoundError extends CriError {
  /** True when the class was inferred from the message rather than from a `NOT_FOUND` code. */
  readonly inferred: boolean;

  constructor(
    ref: CriCallRef,
    grpcCode: number,
    details: string,
    options?: { cause?: unknown; inferred?: boolean },
  ) {
    super("CRI_NOT_FOUND", ref, grpcCode, details, options);
    this.inferred = options?.inferred ?? false;
  }
}

/** The runtime does not implement this RPC (gRPC `UNIMPLEMENTED`), typically an older runtime. */
export class CriUnimplementedError extends CriError {
  constructor(ref: CriCallRef, details: string, options?: { cause?: unknown }) {
    super("CRI_UNIMPLEMENTED", ref, GrpcStatus.UNIMPLEMENTED, details, options);
  }
}

/** The runtime could not be reached or went away during the call (gRPC `UNAVAILABLE`). */
export class CriUnavailableError extends CriError {
  constructor(ref: CriCallRef, details: string, options?: { cause?: unknown }) {
    super("CRI_UNAVAILABLE", ref, GrpcStatus.UNAVAILABLE, details, options);
  }
}

/** The call's deadline expired (gRPC `DEADLINE_EXCEEDED`). */
export class CriDeadlineExceededError extends CriError {
  constructor(ref: CriCallRef, details: string, options?: { cause?: unknown }) {
    super("CRI_DEADLINE_EXCEEDED", ref, GrpcStatus.DEADLINE_EXCEEDED, details, options);
  }
}

/** The call was cancelled, through its AbortSignal or by closing the client (gRPC `CANCELLED`). */
export class CriCanceledError extends CriError {
  constructor(ref: CriCallRef, details: string, options?: { cause?: unknown }) {
    super("CRI_CANCELED", ref, GrpcStatus.CANCELLED, details, options);
  }
}

/** The runtime does not serve a CRI API version this client speaks (found by `connect()`). */
export class CriUnsupportedRuntimeError extends WorknodeError {
  /** Runtime endpoint. */
  readonly endpoint: string;
  /** `runtimeApiVersion` the runtime reported, or `undefined` when it has no `runtime.v1` service at all. */
  readonly runtimeApiVersion: string | undefined;

  constructor(
    endpoint: string,
    runtimeApiVersion: string | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super("CRI_UNSUPPORTED_RUNTIME", message, options);
    this.endpoint = endpoint;
    this.runtimeApiVersion = runtimeApiVersion;
  }
}

/** A message such as containerd's PullImage failure for a reference the registry does not have. */
const PULL_NOT_FOUND = /(?:^|[:\s])not found\s*$|manifest unknown|name unknown|repository does not exist/i;

/**
 * Maps a gRPC status to the matching {@link CriError} subclass. Pure.
 *
 * @param ref - The call that failed.
 * @param grpcCode - The gRPC status code.
 * @param details - The status details (the runtime's message).
 * @param cause - The original error, kept as `cause`.
 */
export function criErrorFromStatus(
  ref: CriCallRef,
  grpcCode: number,
  details: string,
  cause?: unknown,
): CriError {
  const options = cause === undefined ? undefined : { cause };
  switch (grpcCode) {
    case GrpcStatus.NOT_FOUND:
      return new CriNotFoundError(ref, grpcCode, details, options);
    case GrpcStatus.UNIMPLEMENTED:
      return new CriUnimplementedError(ref, details, options);
    case GrpcStatus.UNAVAILABLE:
      return new CriUnavailableError(ref, details, options);
    case GrpcStatus.DEADLINE_EXCEEDED:
      return new CriDeadlineExceededError(ref, details, options);
    case GrpcStatus.CANCELLED:
      return new CriCanceledError(ref, details, options);
    default:
      if (ref.rpc === "PullImage" && grpcCode === GrpcStatus.UNKNOWN && PULL_NOT_FOUND.test(details)) {
        return new CriNotFoundError(ref, grpcCode, details, { ...options, inferred: true });
      }
      return new CriError(`CRI_${grpcStatusName(grpcCode)}`, ref, grpcCode, details, options);
  }
}

/**
 * True when `err` is a {@link CriError} with one of the given gRPC status names, e.g.
 * `isCriStatus(e, "NOT_FOUND", "UNIMPLEMENTED")`. A {@link CriNotFoundError} inferred from the
 * message counts as `NOT_FOUND`.
 */
export function isCriStatus(err: unknown, ...names: readonly GrpcStatusName[]): err is CriError {
  if (!(err instanceof CriError)) return false;
  return names.some(
    (name) => GrpcStatus[name] === err.grpcCode || (name === "NOT_FOUND" && err instanceof CriNotFoundError),
  );
}
