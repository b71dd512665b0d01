/**
 * Client certificate rotation (kubelet's certificate manager with
 * `rotateCertificates`): while running, renew the current certificate at its rotation
 * deadline (a random point in 70 %–90 % of its lifetime) with a new key and a CSR
 * authenticated by the current certificate, then swap `kubelet-client-current.pem`.
 * `KubeApiClient` reads the certificate file for every request, so new requests use the
 * new certificate at once. Failures are retried with backoff (2 s doubling up to 5 min).
 *
 * @module
 */
import {
  AbortedError,
  Backoff,
  type Clock,
  describeError,
  type KubeApiClient,
  type Logger,
  realClock,
  silentLogger,
} from "@worknode/core";
import type { CertificateStore, StoredCertificate } from "./cert-store.js";
import type { CertificateValidity } from "./csr.js";
import { requestNodeClientCertificate } from "./csr-client.js";
import { DEFAULT_ROTATION_WINDOW, type RotationWindow, rotationDeadline } from "./rotation.js";

/** Longest single wait (timers cannot wait for a year); the deadline is re-checked after it. */
const MAX_WAIT_MS = 6 * 60 * 60_000;

/** Options of a {@link CertificateRotator}. */
export interface CertificateRotatorOptions {
  /** API client using the current certificate (the kubeconfig written by bootstrap). */
  readonly api: KubeApiClient;
  /** The node name. */
  readonly nodeName: string;
  /** The certificate store. */
  readonly store: CertificateStore;
  /** The rotation window; default 70 %–90 % of the lifetime. A narrower, earlier one rotates sooner. */
  readonly window?: RotationWindow;
  /** Computes the rotation deadline of a certificate (epoch ms); default {@link rotationDeadline} in `window`. */
  readonly deadline?: (validity: CertificateValidity) => number;
  /** Random source in [0, 1); default `Math.random`. */
  readonly random?: () => number;
  /** How often to look at a pending CSR; default 1 s. */
  readonly pollIntervalMs?: number;
  /** Called after each rotation with the new certificate. */
  readonly onRotated?: (certificate: StoredCertificate) => void;
  /** Clock; default the real clock. */
  readonly clock?: Clock;
  /** Logger; default silent. */
  readonly logger?: Logger;
}

/** Rotates the kubelet's client certificate; see the module notes. */
export class CertificateRotator {
  private readonly clock: Clock;
  private readonly logger: Logger;
  private controller: AbortController | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: CertificateRotatorOptions) {
    this.clock = options.clock ?? realClock;
    this.logger = options.logger ?? silentLogger();
  }

  /** The rotation deadline (epoch ms) of a certificate under these options. */
  deadlineOf(validity: CertificateValidity): number {
    if (this.options.deadline) return this.options.deadline(validity);
    return rotationDeadline(
      validity,
      (this.options.random ?? Math.random)(),
      this.options.window ?? DEFAULT_ROTATION_WINDOW,
    );
  }

  /**
   * Requests a new certificate now and makes it current.
   *
   * @returns the new current certificate
   * @throws CertificateRequestError / ApiStatusError / UnavailableError when it fails
   */
  async rotate(signal?: AbortSignal): Promise<StoredCertificate> {
    const issued = await requestNodeClientCertificate({
      api: this.options.api,
      nodeName: this.options.nodeName,
      pollIntervalMs: this.options.pollIntervalMs,
      signal,
      clock: this.clock,
      logger: this.logger,
    });
    await this.options.store.update(issued.certPem, issued.keyPem, this.clock.now());
    const current = await this.options.store.current();
    if (!current) throw new AbortedError("the rotated certificate could not be read back");
    this.logger.info(
      { serial: current.validity.serialNumber, notAfter: new Date(current.validity.notAfter).toISOString() },
      "rotated the kubelet client certificate",
    );
    this.options.onRotated?.(current);
    return current;
  }

  /** Starts rotating in the background; idempotent. */
  start(): void {
    if (this.loop) return;
    const controller = new AbortController();
    this.controller = controller;
    this.loop = this.run(controller.signal);
  }

  /** Stops rotating (a pending CSR wait is cancelled). */
  async stop(): Promise<void> {
    this.controller?.abort(new AbortedError("certificate rotator stopped"));
    await this.loop;
    this.loop = undefined;
    this.controller = undefined;
  }

  private async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff({ initialMs: 2_000, maxMs: 300_000, jitter: 0.1 });
    let deadline: { serial: string; at: number } | undefined;
    while (!signal.aborted) {
      let waitMs: number;
      const current = await this.options.store.current();
      if (!current) {
        waitMs = backoff.next();
        this.logger.warn(
          { path: this.options.store.currentPath, retryInMs: waitMs },
          "no current client certificate to rotate",
        );
      } else {
        if (deadline?.serial !== current.validity.serialNumber) {
          deadline = { serial: current.validity.serialNumber, at: this.deadlineOf(current.validity) };
          this.logger.info(
            { deadline: new Date(deadline.at).toISOString() },
            "client certificate rotation deadline",
          );
        }
        waitMs = deadline.at - this.clock.now();
        if (waitMs <= 0) {
          try {
            await this.rotate(signal);
            backoff.reset();
            continue;
          } catch (err) {
            if (signal.aborted) return;
            waitMs = backoff.next();
            this.logger.warn(
              { error: describeError(err), retryInMs: waitMs },
              "client certificate rotation failed",
            );
          }
        }
      }
      try {
        await this.clock.sleep(Math.min(waitMs, MAX_WAIT_MS), signal);
      } catch {
        return;
      }
    }
  }
}
