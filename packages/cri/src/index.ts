/**
 * `@worknode/cri`: a typed CRI v1 client (RuntimeService and ImageService over gRPC on a unix
 * socket) for containerd, CRI-O and any CRI runtime.
 *
 * @packageDocumentation
 */
export type { CriCallOptions } from "./call-options.js";
export { CriClient } from "./client.js";
export { type CriEndpoint, MAX_UNIX_SOCKET_PATH, parseCriEndpoint } from "./endpoint.js";
export {
  type CriCallRef,
  CriCanceledError,
  CriDeadlineExceededError,
  CriError,
  CriNotFoundError,
  CriUnavailableError,
  CriUnimplementedError,
  CriUnsupportedRuntimeError,
  criErrorFromStatus,
  GrpcStatus,
  type GrpcStatusName,
  grpcStatusName,
  isCriStatus,
} from "./errors.js";
export * from "./generated/api.js";
export {
  CRI_PROTO_PACKAGE,
  type CriImageService,
  type CriRuntimeService,
  imageServiceRpcs,
  runtimeServiceRpcs,
} from "./generated/services.js";
export { CRI_API_VERSION, checkRuntimeApiVersion, SUPPORTED_RUNTIME_API_VERSIONS } from "./negotiation.js";
export {
  type CriClientOptions,
  callTimeoutMs,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_CRI_TIMEOUT_MS,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_PULL_TIMEOUT_MS,
  type ResolvedCriClientOptions,
  resolveCriClientOptions,
} from "./options.js";
export * from "./streaming/index.js";
export { encodeRequest, type RpcDescriptor } from "./transport.js";
