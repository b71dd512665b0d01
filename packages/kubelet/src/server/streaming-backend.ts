/**
 * {@link CriStreamingBackend}: what the kubelet's streaming endpoints ask the
 * runtime for — CRI `Exec`, `Attach` and `PortForward` streaming URLs (the
 * kubelet then proxies the client's upgraded connection there) and `ExecSync`
 * for `/run` — with the target found through a {@link PodRuntimeLocator}.
 * CRI NotFound becomes 404, as kubelet's `streaming.WriteError` does.
 *
 * @module
 */
import { type CriClient, CriNotFoundError } from "@worknode/cri";
import type { PodRuntimeLocator } from "./runtime-locator.js";
import { type StreamingRequest, StreamingRequestError } from "./streaming-request.js";

/** Streaming and exec-sync operations of the kubelet API. */
export interface StreamingBackend {
  /**
   * The runtime's streaming URL for a parsed request.
   * @throws StreamingRequestError with the HTTP status to answer
   */
  streamingUrl(request: StreamingRequest): Promise<URL>;
  /**
   * Runs a command in a container to completion (`/run`) and returns its combined output.
   * @throws StreamingRequestError with the HTTP status to answer
   */
  run(
    namespace: string,
    pod: string,
    uid: string | undefined,
    container: string,
    cmd: readonly string[],
  ): Promise<Buffer>;
}

/** Options of {@link CriStreamingBackend}. */
export interface CriStreamingBackendOptions {
  readonly client: CriClient;
  readonly locator: PodRuntimeLocator;
  /** Timeout of `/run` commands in seconds; default 0 (none), as kubelet's `RunInContainer`. */
  readonly runTimeoutSeconds?: number;
}

function runtimeError(err: unknown): never {
  if (err instanceof StreamingRequestError) throw err;
  if (err instanceof CriNotFoundError) throw new StreamingRequestError(404, err.message);
  throw new StreamingRequestError(500, err instanceof Error ? err.message : String(err));
}

/** {@link StreamingBackend} over CRI (see the module notes). */
export class CriStreamingBackend implements StreamingBackend {
  constructor(private readonly options: CriStreamingBackendOptions) {}

  async streamingUrl(request: StreamingRequest): Promise<URL> {
    const { client, locator } = this.options;
    try {
      let url: string;
      if (request.kind === "portForward") {
        const podSandboxId = await locator.sandboxId(request.namespace, request.pod, request.uid);
        url = (await client.runtime.portForward({ podSandboxId, port: [...request.ports] })).url;
      } else {
        const containerId = await locator.containerId(
          request.namespace,
          request.pod,
          request.uid,
          request.container,
        );
        const { stdin, stdout, stderr, tty } = request.streams;
        url =
          request.kind === "exec"
            ? (
                await client.runtime.exec({
                  containerId,
                  cmd: [...request.command],
                  stdin,
                  stdout,
                  stderr,
                  tty,
                })
              ).url
            : (await client.runtime.attach({ containerId, stdin, stdout, stderr, tty })).url;
      }
      return new URL(url);
    } catch (err) {
      runtimeError(err);
    }
  }

  async run(
    namespace: string,
    pod: string,
    uid: string | undefined,
    container: string,
    cmd: readonly string[],
  ): Promise<Buffer> {
    const { client, locator } = this.options;
    try {
      const containerId = await locator.containerId(namespace, pod, uid, container);
      const r = await client.runtime.execSync({
        containerId,
        cmd: [...cmd],
        timeout: this.options.runTimeoutSeconds ?? 0,
      });
      return Buffer.concat([Buffer.from(r.stdout), Buffer.from(r.stderr)]);
    } catch (err) {
      runtimeError(err);
    }
  }
}
