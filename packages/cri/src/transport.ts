/**
 * The gRPC side of the client: one @grpc/grpc-js channel to the runtime, unary and
 * server-streaming calls with deadlines, AbortSignal cancellation, a bounded wait for the
 * connection (fast failure on a dead socket, quick recovery after a runtime restart) and the
 * mapping of failures to {@link CriError}s.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { Client, connectivityState, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import type { Logger } from "@worknode/core";
import type { CriCallOptions } from "./call-options.js";
import {
  type CriCallRef,
  CriCanceledError,
  type CriError,
  criErrorFromStatus,
  GrpcStatus,
} from "./errors.js";
import type { DeepPartial, MessageFns } from "./generated/api.js";
import { callTimeoutMs, type ResolvedCriClientOptions } from "./options.js";

/** One RPC as described by the generated tables in `generated/services.ts`. */
export interface RpcDescriptor<Req = unknown, Res = unknown> {
  /** `RuntimeService` or `ImageService`. */
  readonly service: string;
  /** RPC name as in the proto. */
  readonly name: string;
  /** gRPC method path, `/runtime.v1.<Service>/<Rpc>`. */
  readonly path: string;
  /** True for `returns (stream …)` RPCs. */
  readonly serverStreaming: boolean;
  /** Request message codec. */
  readonly request: MessageFns<Req>;
  /** Response message codec. */
  readonly response: MessageFns<Res>;
}

function isServiceError(e: unknown): e is ServiceError {
  return e instanceof Error && typeof (e as Partial<ServiceError>).code === "number";
}

/** Encodes a (partial) request with its generated codec, without copying the bytes. */
export function encodeRequest<Req>(codec: MessageFns<Req>, request: DeepPartial<Req> | undefined): Buffer {
  const bytes = codec.encode(codec.fromPartial(request ?? ({} as DeepPartial<Req>))).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** gRPC transport of a {@link CriClient}. */
export class CriTransport {
  readonly #grpc: Client;
  readonly #options: ResolvedCriClientOptions;
  readonly #logger: Logger | undefined;
  #closed = false;

  constructor(options: ResolvedCriClientOptions, logger?: Logger) {
    this.#options = options;
    this.#logger = logger;
    this.#grpc = new Client(options.endpoint.grpcTarget, credentials.createInsecure(), {
      ...options.channelOptions,
    });
  }

  /** The endpoint in canonical form. */
  get endpoint(): string {
    return this.#options.endpoint.canonical;
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the channel. Calls made afterwards reject with {@link CriCanceledError}. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#grpc.close();
  }

  #ref(d: RpcDescriptor): CriCallRef {
    return { service: d.service, rpc: d.name, endpoint: this.#options.endpoint.canonical };
  }

  /** Maps a failure of a call to a CriError, adding what the client knows about the socket. */
  #toError(d: RpcDescriptor, e: unknown): CriError {
    const ref = this.#ref(d);
    if (!isServiceError(e)) {
      return criErrorFromStatus(ref, GrpcStatus.INTERNAL, e instanceof Error ? e.message : String(e), e);
    }
    let details = e.details || e.message;
    if (e.code === GrpcStatus.UNAVAILABLE) {
      const socket = this.#options.endpoint.socketPath;
      if (socket !== undefined && !existsSync(socket))
        details = `${details} (socket ${socket} does not exist)`;
    }
    const err = criErrorFromStatus(ref, e.code, details, e);
    this.#logger?.debug({ rpc: d.name, grpcCode: e.code, details }, "CRI call failed");
    return err;
  }

  #canceled(d: RpcDescriptor, why: string, cause?: unknown): CriCanceledError {
    return new CriCanceledError(this.#ref(d), why, cause === undefined ? undefined : { cause });
  }

  /**
   * Waits (at most `connectTimeoutMs`, and never past the call's deadline) for the channel to be
   * ready when it is not. The call itself is then made with wait-for-ready off, so a runtime that
   * is still down fails at once with UNAVAILABLE and grpc-js's last connection error.
   */
  async #awaitConnection(deadline: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.#grpc.getChannel().getConnectivityState(true) === connectivityState.READY) return;
    const waitUntil = Math.min(Date.now() + this.#options.connectTimeoutMs, deadline);
    if (waitUntil <= Date.now()) return;
    await new Promise<void>((resolve) => {
      const onAbort = () => resolve();
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#grpc.waitForReady(waitUntil, () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  }

  #metadata(options: CriCallOptions | undefined): Metadata {
    const md = new Metadata();
    if (options?.metadata) for (const [k, v] of Object.entries(options.metadata)) md.set(k, v);
    return md;
  }

  /** Makes a unary call. */
  async unary<Req, Res>(
    d: RpcDescriptor<Req, Res>,
    request: DeepPartial<Req> | undefined,
    options?: CriCallOptions,
  ): Promise<Res> {
    const signal = options?.signal;
    if (this.#closed) throw this.#canceled(d, "the CRI client is closed");
    if (signal?.aborted) throw this.#canceled(d, "aborted before the call started");
    const timeout = callTimeoutMs(this.#options, d.name, false, options?.timeoutMs);
    const deadline = timeout > 0 ? Date.now() + timeout : Number.POSITIVE_INFINITY;
    const payload = encodeRequest(d.request, request);
    await this.#awaitConnection(deadline, signal);
    if (signal?.aborted) throw this.#canceled(d, "aborted while waiting for the connection");
    if (this.#closed) throw this.#canceled(d, "the CRI client is closed");
    return new Promise<Res>((resolve, reject) => {
      const call = this.#grpc.makeUnaryRequest<Buffer, Res>(
        d.path,
        (b) => b,
        (b) => d.response.decode(b),
        payload,
        this.#metadata(options),
        { deadline },
        (err, value) => {
          signal?.removeEventListener("abort", onAbort);
          if (err) reject(this.#toError(d, err));
          else resolve(value as Res);
        },
      );
      const onAbort = () => call.cancel();
      signal?.addEventListener("abort", onAbort, { once: true });
    }).catch((e: unknown) => {
      throw signal?.aborted ? this.#canceled(d, "aborted by the caller's AbortSignal", e) : e;
    });
  }

  /** Makes a server-streaming call; the stream is opened when iteration starts. */
  async *stream<Req, Res>(
    d: RpcDescriptor<Req, Res>,
    request: DeepPartial<Req> | undefined,
    options?: CriCallOptions,
  ): AsyncGenerator<Res, void, undefined> {
    const signal = options?.signal;
    if (this.#closed) throw this.#canceled(d, "the CRI client is closed");
    if (signal?.aborted) throw this.#canceled(d, "aborted before the call started");
    const timeout = callTimeoutMs(this.#options, d.name, true, options?.timeoutMs);
    const deadline = timeout > 0 ? Date.now() + timeout : Number.POSITIVE_INFINITY;
    const payload = encodeRequest(d.request, request);
    await this.#awaitConnection(deadline, signal);
    if (signal?.aborted) throw this.#canceled(d, "aborted while waiting for the connection");
    const call = this.#grpc.makeServerStreamRequest<Buffer, Res>(
      d.path,
      (b) => b,
      (b) => d.response.decode(b),
      payload,
      this.#metadata(options),
      { deadline },
    );
    const onAbort = () => call.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
    let finished = false;
    try {
      for await (const message of call) yield message as Res;
      finished = true;
    } catch (e) {
      finished = true;
      throw signal?.aborted
        ? this.#canceled(d, "aborted by the caller's AbortSignal", e)
        : this.#toError(d, e);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      if (!finished) call.cancel();
    }
  }
}
