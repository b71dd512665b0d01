/**
 * The contract every service-proxy backend implements.
 *
 * A backend is driven by a {@link ProxyController} (one writer per backend):
 * the controller hands it the complete snapshot plus the change set since the
 * last successful sync, and never calls `sync` concurrently.
 *
 * @module
 */
import type { Registry } from "prom-client";
import type { ChangeSet, ServiceSnapshot } from "../service/model.js";
import { WorknodeError } from "../util/errors.js";

/** Input of one {@link Proxier.sync}. */
export interface SyncInput {
  /** The complete desired state. */
  readonly snapshot: ServiceSnapshot;
  /** What changed since the last successful sync (everything, on the first sync). */
  readonly changes: ChangeSet;
  /**
   * True when the backend must rewrite everything it owns rather than only what
   * changed: at start, on the periodic full sync, and after any failed sync.
   */
  readonly full: boolean;
}

/** Counts a backend reports after a sync (for logs and metrics). */
export interface SyncStats {
  /** Service ports programmed. */
  readonly servicePorts: number;
  /** Endpoints programmed. */
  readonly endpoints: number;
  /** Backend-specific units written (rules, map entries, virtual servers …). */
  readonly written?: number;
}

/** A service-proxy backend: iptables, nftables, IPVS, eBPF, userspace … */
export interface Proxier {
  /** Mode name as `--proxy-mode` spells it (for example `iptables`). */
  readonly mode: string;
  /**
   * Programs the node so that traffic follows `input.snapshot`. Throws (ideally a
   * {@link ProxySyncError}) when programming failed; the controller then retries
   * with a full sync. A failed sync must leave the previous working state in place.
   */
  sync(input: SyncInput): Promise<SyncStats>;
  /** Removes everything this backend ever wrote on the node; idempotent. */
  cleanup(): Promise<void>;
  /** Backend-specific metrics, served beside the controller's. */
  readonly metrics?: Registry;
}

/** A backend sync failed. */
export class ProxySyncError extends WorknodeError {
  /** The backend's mode. */
  readonly mode: string;
  /** The offending input line (for example of an iptables-restore payload), when known. */
  readonly failingLine?: string;

  constructor(mode: string, message: string, options?: { cause?: unknown; failingLine?: string }) {
    super("PROXY_SYNC", message, options);
    this.mode = mode;
    if (options?.failingLine !== undefined) this.failingLine = options.failingLine;
  }
}
