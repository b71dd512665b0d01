/**
 * Per-call options of every CRI method.
 *
 * @module
 */

/** Options of one CRI call (`client.runtime.<rpc>(request, options)`). */
export interface CriCallOptions {
  /**
   * Deadline of this call in milliseconds from now. Default: the client's `timeoutMs`
   * (`pullTimeoutMs` for PullImage; none for streaming RPCs such as GetContainerEvents).
   * `0` means no deadline.
   */
  readonly timeoutMs?: number;
  /** Cancels the call; the call then rejects with {@link CriCanceledError}. */
  readonly signal?: AbortSignal;
  /** Extra gRPC metadata (headers) sent with the call. */
  readonly metadata?: Readonly<Record<string, string>>;
}
