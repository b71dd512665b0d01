/**
 * Node registration (kubelet's `registerWithAPIServer`): create the Node; when it
 * already exists, read it and reconcile the labels and annotations the kubelet owns;
 * retry with backoff (100 ms doubling up to 7 s) until it succeeds or is stopped.
 *
 * @module
 */
import {
  AbortedError,
  ApiStatusError,
  Backoff,
  type Clock,
  describeError,
  type KubeApiClient,
  type Logger,
  type Node,
  realClock,
  silentLogger,
} from "@worknode/core";
import { reconcileNode } from "./node-reconcile.js";

/** Options of a {@link NodeRegistrar}. */
export interface NodeRegistrarOptions {
  /** API client authenticated as the node. */
  readonly api: KubeApiClient;
  /** Builds the desired Node for each attempt (machine info and runtime version may change). */
  readonly desiredNode: () => Promise<Node> | Node;
  /** Clock for the backoff; default the real clock. */
  readonly clock?: Clock;
  /** Logger; default silent. */
  readonly logger?: Logger;
  /** First retry delay; default 100 ms. */
  readonly initialBackoffMs?: number;
  /** Retry delay cap; default 7 s. */
  readonly maxBackoffMs?: number;
}

/** The path of a Node. */
export function nodePath(name: string): string {
  return `/api/v1/nodes/${encodeURIComponent(name)}`;
}

/** Registers the node with the API server; see the module notes. */
export class NodeRegistrar {
  private readonly clock: Clock;
  private readonly logger: Logger;

  constructor(private readonly options: NodeRegistrarOptions) {
    this.clock = options.clock ?? realClock;
    this.logger = options.logger ?? silentLogger();
  }

  /**
   * One registration attempt.
   *
   * @returns the Node as stored by the API server
   * @throws ApiStatusError / UnavailableError when it fails
   */
  async tryRegister(signal?: AbortSignal): Promise<Node> {
    const { api } = this.options;
    const desired = await this.options.desiredNode();
    const name = desired.metadata?.name ?? "";
    try {
      const created = await api.requestJson<Node>("POST", "/api/v1/nodes", { body: desired, signal });
      this.logger.info({ node: name }, "successfully registered node");
      return created;
    } catch (err) {
      if (!(err instanceof ApiStatusError && err.status === 409)) throw err;
    }
    const existing = await api.requestJson<Node>("GET", nodePath(name), { signal });
    const patch = reconcileNode(existing, desired);
    if (!patch) {
      this.logger.info({ node: name }, "node was previously registered");
      return existing;
    }
    const updated = await api.requestJson<Node>("PATCH", nodePath(name), {
      body: patch,
      contentType: "application/merge-patch+json",
      signal,
    });
    this.logger.info({ node: name, patch: patch.metadata }, "node was previously registered; reconciled it");
    return updated;
  }

  /**
   * Registers the node, retrying with backoff until it succeeds.
   *
   * @returns the registered Node
   * @throws AbortedError when `signal` aborts first
   */
  async register(signal?: AbortSignal): Promise<Node> {
    const backoff = new Backoff({
      initialMs: this.options.initialBackoffMs ?? 100,
      maxMs: this.options.maxBackoffMs ?? 7_000,
    });
    for (;;) {
      if (signal?.aborted) throw new AbortedError("node registration stopped");
      try {
        return await this.tryRegister(signal);
      } catch (err) {
        if (signal?.aborted) throw new AbortedError("node registration stopped", { cause: err });
        const delay = backoff.next();
        this.logger.warn(
          { error: describeError(err), retryInMs: delay },
          "unable to register node with API server",
        );
        try {
          await this.clock.sleep(delay, signal);
        } catch (e) {
          throw new AbortedError("node registration stopped", { cause: e });
        }
      }
    }
  }
}
