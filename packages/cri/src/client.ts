/**
 * {@link CriClient}: the typed CRI v1 client (RuntimeService + ImageService over one gRPC channel).
 *
 * @module
 */

import type { CriCallOptions } from "./call-options.js";
import { CriUnimplementedError, CriUnsupportedRuntimeError } from "./errors.js";
import type { VersionResponse } from "./generated/api.js";
import {
  type CriImageService,
  type CriRuntimeService,
  imageServiceRpcs,
  runtimeServiceRpcs,
} from "./generated/services.js";
import { CRI_API_VERSION, checkRuntimeApiVersion } from "./negotiation.js";
import { type CriClientOptions, type ResolvedCriClientOptions, resolveCriClientOptions } from "./options.js";
import { CriStreamingClient } from "./streaming/streaming-client.js";
import { CriTransport, type RpcDescriptor } from "./transport.js";

/** Builds the method object of one service from its generated RPC table. */
function bindService<T>(table: Readonly<Record<string, RpcDescriptor>>, transport: CriTransport): T {
  const methods: Record<string, (request?: never, options?: CriCallOptions) => unknown> = {};
  for (const [method, d] of Object.entries(table)) {
    methods[method] = d.serverStreaming
      ? (request, options) => transport.stream(d, request, options)
      : (request, options) => transport.unary(d, request, options);
  }
  return Object.freeze(methods) as T;
}

/**
 * A typed CRI v1 client.
 *
 * ```ts
 * const client = new CriClient({ endpoint: "unix:///run/containerd/containerd.sock" });
 * await client.connect(); // Version negotiation
 * const { containers } = await client.runtime.listContainers({});
 * client.close();
 * ```
 *
 * Every RPC of the proto is a method of {@link CriClient.runtime} or {@link CriClient.image},
 * named in lowerCamelCase. Requests are partial messages (unset fields take proto defaults);
 * responses are full messages. Failures reject with a `CriError` subclass.
 */
export class CriClient {
  /** `runtime.v1.RuntimeService`: sandboxes, containers, exec, stats, events, runtime status. */
  readonly runtime: CriRuntimeService;
  /** `runtime.v1.ImageService`: list, inspect, pull and remove images. */
  readonly image: CriImageService;
  /**
   * Follows the `Exec` / `Attach` / `PortForward` streaming URLs: interactive
   * commands with stdin / stdout / stderr and TTY resize, and port forwarding.
   */
  readonly streaming: CriStreamingClient;
  /** The options in force (defaults applied). */
  readonly options: ResolvedCriClientOptions;
  readonly #transport: CriTransport;
  #version: VersionResponse | undefined;

  /**
   * Creates the client. No connection is made until the first call (or {@link connect}).
   *
   * @throws ConfigError for a bad endpoint or option.
   */
  constructor(options: CriClientOptions) {
    this.options = resolveCriClientOptions(options);
    this.#transport = new CriTransport(this.options, options.logger);
    this.runtime = bindService<CriRuntimeService>(runtimeServiceRpcs, this.#transport);
    this.image = bindService<CriImageService>(imageServiceRpcs, this.#transport);
    this.streaming = new CriStreamingClient(this);
  }

  /** The endpoint in canonical form (`unix:///…` or `tcp://host:port`). */
  get endpoint(): string {
    return this.#transport.endpoint;
  }

  /** The runtime's `Version` answer from the last successful {@link connect}, if any. */
  get runtimeVersion(): VersionResponse | undefined {
    return this.#version;
  }

  /**
   * Connects and negotiates the API version: calls `Version` and accepts the runtime only when
   * it serves `runtime.v1` and reports `runtimeApiVersion` `v1`.
   *
   * @returns the runtime's `Version` answer.
   * @throws CriUnsupportedRuntimeError when the runtime serves another CRI API version.
   * @throws CriError (e.g. CriUnavailableError) when the runtime cannot be reached.
   */
  async connect(options?: CriCallOptions): Promise<VersionResponse> {
    let version: VersionResponse;
    try {
      version = await this.runtime.version({ version: CRI_API_VERSION }, options);
    } catch (e) {
      if (e instanceof CriUnimplementedError) {
        throw new CriUnsupportedRuntimeError(
          this.endpoint,
          undefined,
          `CRI runtime at ${this.endpoint} does not serve runtime.v1.RuntimeService (an older CRI API such as v1alpha2?)`,
          { cause: e },
        );
      }
      throw e;
    }
    this.#version = checkRuntimeApiVersion(this.endpoint, version);
    return version;
  }

  /** Closes the channel. Later calls reject with `CriCanceledError`. Idempotent. */
  close(): void {
    this.#transport.close();
  }
}
