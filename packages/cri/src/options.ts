/**
 * Options of {@link CriClient} and their validation. Pure.
 *
 * @module
 */
import { ConfigError, type Logger } from "@worknode/core";
import { type CriEndpoint, parseCriEndpoint } from "./endpoint.js";

/** Default deadline of a CRI call: the kubelet's `--runtime-request-timeout` (2 minutes). */
export const DEFAULT_CRI_TIMEOUT_MS = 120_000;
/** Default deadline of PullImage (the kubelet gives pulls no request timeout; 10 minutes bounds a stuck pull). */
export const DEFAULT_PULL_TIMEOUT_MS = 600_000;
/**
 * Default time a call waits for the connection when the channel is not ready (first call, or
 * after the runtime restarted). A dead socket fails after this long instead of at the deadline.
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 2_000;
/** Default largest response accepted: 16 MiB, as the kubelet (`maxMsgSize`). */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** Options of `new CriClient(options)`. */
export interface CriClientOptions {
  /** Runtime endpoint: `unix:///run/containerd/containerd.sock`, a bare socket path, or `tcp://host:port`. */
  readonly endpoint: string;
  /** Default deadline of every call in ms (default {@link DEFAULT_CRI_TIMEOUT_MS}); `0` = none. */
  readonly timeoutMs?: number;
  /** Default deadline of PullImage in ms (default {@link DEFAULT_PULL_TIMEOUT_MS}); `0` = none. */
  readonly pullTimeoutMs?: number;
  /** How long a call waits for a connection that is not ready (default {@link DEFAULT_CONNECT_TIMEOUT_MS}). */
  readonly connectTimeoutMs?: number;
  /** Largest response message in bytes (default {@link DEFAULT_MAX_MESSAGE_BYTES}). */
  readonly maxMessageBytes?: number;
  /** Logger for failed calls (debug level) and connection changes; default silent. */
  readonly logger?: Logger;
}

/** {@link CriClientOptions} with defaults applied and values checked. */
export interface ResolvedCriClientOptions {
  /** The parsed endpoint. */
  readonly endpoint: CriEndpoint;
  /** Default deadline in ms; 0 = none. */
  readonly timeoutMs: number;
  /** PullImage deadline in ms; 0 = none. */
  readonly pullTimeoutMs: number;
  /** Connection wait in ms. */
  readonly connectTimeoutMs: number;
  /** Largest response in bytes. */
  readonly maxMessageBytes: number;
  /** gRPC channel options derived from the above. */
  readonly channelOptions: Readonly<Record<string, number>>;
}

function nonNegativeInt(name: string, value: number | undefined, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new ConfigError(`CriClient option ${name} must be an integer >= ${min}, got ${value}`);
  }
  return value;
}

/**
 * Validates options and applies defaults.
 *
 * @throws ConfigError for a bad endpoint or a negative / non-integer number.
 */
export function resolveCriClientOptions(options: CriClientOptions): ResolvedCriClientOptions {
  const endpoint = parseCriEndpoint(options.endpoint);
  const timeoutMs = nonNegativeInt("timeoutMs", options.timeoutMs, DEFAULT_CRI_TIMEOUT_MS);
  const pullTimeoutMs = nonNegativeInt("pullTimeoutMs", options.pullTimeoutMs, DEFAULT_PULL_TIMEOUT_MS);
  const connectTimeoutMs = nonNegativeInt(
    "connectTimeoutMs",
    options.connectTimeoutMs,
    DEFAULT_CONNECT_TIMEOUT_MS,
  );
  const maxMessageBytes = nonNegativeInt(
    "maxMessageBytes",
    options.maxMessageBytes,
    DEFAULT_MAX_MESSAGE_BYTES,
    1,
  );
  // Reconnect quickly after a runtime restart: back-off starts at 100 ms and is capped at half the
  // connect wait (at most 1 s), so a call waiting connectTimeoutMs sees at least one new attempt.
  const maxBackoff = Math.max(100, Math.min(1_000, Math.floor(connectTimeoutMs / 2)));
  return {
    endpoint,
    timeoutMs,
    pullTimeoutMs,
    connectTimeoutMs,
    maxMessageBytes,
    channelOptions: {
      "grpc.max_receive_message_length": maxMessageBytes,
      "grpc.max_send_message_length": maxMessageBytes,
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": maxBackoff,
    },
  };
}

/**
 * The deadline of one call in ms (0 = none): the call's own `timeoutMs`, else the client's
 * default for this RPC (PullImage has its own; streaming RPCs have none).
 */
export function callTimeoutMs(
  resolved: Pick<ResolvedCriClientOptions, "timeoutMs" | "pullTimeoutMs">,
  rpc: string,
  serverStreaming: boolean,
  perCall: number | undefined,
): number {
  if (perCall !== undefined) {
    if (!Number.isFinite(perCall) || perCall < 0) {
      throw new ConfigError(`CRI ${rpc}: timeoutMs must be >= 0, got ${perCall}`);
    }
    return perCall;
  }
  if (serverStreaming) return 0;
  return rpc === "PullImage" ? resolved.pullTimeoutMs : resolved.timeoutMs;
}
