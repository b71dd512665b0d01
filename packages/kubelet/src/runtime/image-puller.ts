/**
 * Images as kubelet's image manager ensures them (`EnsureImageExists`): the
 * pull policy decides, a failed pull puts the image of that pod into back-off,
 * and the failure is reported with kubelet's waiting reasons `ErrImagePull`,
 * `ImagePullBackOff` and `ErrImageNeverPull`. Registry credentials (from the
 * pod's `imagePullSecrets`, matched by the credential keyring) are tried in
 * turn, as kubelet does; none means an anonymous pull. Each step records
 * kubelet's events (`Pulling`, `Pulled`, `Failed`, `BackOff`,
 * `ErrImageNeverPull`) on the container.
 *
 * @module
 */

import type { Pod } from "@worknode/core";
import {
  type Clock,
  describeError,
  KeyedBackoff,
  type Logger,
  realClock,
  silentLogger,
  WorknodeError,
} from "@worknode/core";
import type { CriClient, DeepPartial, PodSandboxConfig } from "@worknode/cri";
import type { RegistryAuth } from "../api-objects/credential-keyring.js";
import { CRASH_LOOP_MAX_MS } from "../crash-loop.js";
import { EventReason, type EventRecorder, podReference } from "../events/event-recorder.js";
import { type Container, formatGoDuration, imagePullPolicy, shouldPullImage } from "../pod-spec.js";

/** kubelet's initial image pull back-off (10 s), doubling to 300 s. */
export const IMAGE_PULL_BACKOFF_INITIAL_MS = 10_000;

/** Waiting reasons of image failures. */
export type ImageFailureReason =
  | "ErrImagePull"
  | "ImagePullBackOff"
  | "ErrImageNeverPull"
  | "InvalidImageName";

/** An image could not be made available; `reason` is the container's waiting reason. */
export class ImagePullError extends WorknodeError {
  constructor(
    readonly reason: ImageFailureReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super("IMAGE_PULL", message, options);
  }
}

/** A pull back-off with kubelet's numbers (10 s → ×2 → 300 s), or another initial delay (tests). */
export function newImagePullBackoff(initialMs = IMAGE_PULL_BACKOFF_INITIAL_MS): KeyedBackoff {
  return new KeyedBackoff({ initialMs, maxMs: Math.max(initialMs, CRASH_LOOP_MAX_MS) });
}

/** Options of {@link ImagePuller}. */
export interface ImagePullerOptions {
  readonly client: CriClient;
  /** Pull back-off, keyed by `<pod uid>_<image>`; default {@link newImagePullBackoff}. */
  readonly backoff?: KeyedBackoff;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** A pull for a pod starts (`clock.monotonic()` ms): for `kubelet_pod_start_sli_duration_seconds`. */
  readonly onPullStarted?: (podUID: string, at: number) => void;
  /** A pull for a pod ended, successfully or not (`clock.monotonic()` ms). */
  readonly onPullFinished?: (podUID: string, at: number) => void;
}

/** Per-call options of {@link ImagePuller.ensureImage}. */
export interface EnsureImageOptions {
  /** Registry credentials to try in order (from `imagePullSecrets`); none: anonymous. */
  readonly credentials?: readonly RegistryAuth[];
  /** Where the pull events of the container go. */
  readonly recorder?: EventRecorder;
}

/** Makes container images available according to their pull policy. */
export class ImagePuller {
  private readonly backoff: KeyedBackoff;
  private readonly clock: Clock;
  private readonly logger: Logger;
  /** Pulls in progress by image, shared between workers. */
  private readonly pulling = new Map<string, Promise<string>>();

  constructor(private readonly options: ImagePullerOptions) {
    this.backoff = options.backoff ?? newImagePullBackoff();
    this.clock = options.clock ?? realClock;
    this.logger = (options.logger ?? silentLogger()).child({ component: "image-puller" });
  }

  /**
   * Ensures the container's image is present and returns its reference (image ID).
   *
   * @throws {@link ImagePullError} with `ErrImagePull`, `ImagePullBackOff`, `ErrImageNeverPull`
   *   or `InvalidImageName`
   */
  async ensureImage(
    pod: Pod,
    container: Container,
    sandboxConfig?: DeepPartial<PodSandboxConfig>,
    options: EnsureImageOptions = {},
  ): Promise<string> {
    const image = container.image ?? "";
    const ref = podReference(pod, container);
    const record = (type: "Normal" | "Warning", reason: string, message: string) =>
      options.recorder?.event(ref, type, reason, message);
    if (!image) throw new ImagePullError("InvalidImageName", `container ${container.name} has no image`);
    const present = await this.presentRef(image);
    if (!shouldPullImage(container, present !== undefined)) {
      if (present !== undefined) {
        record("Normal", EventReason.PulledImage, `Container image "${image}" already present on machine`);
        return present;
      }
      const msg = `Container image "${image}" is not present with pull policy of ${imagePullPolicy(container)}`;
      record("Warning", EventReason.ErrImageNeverPull, msg);
      throw new ImagePullError("ErrImageNeverPull", msg);
    }
    const key = `${pod.metadata?.uid ?? ""}_${image}`;
    const now = this.clock.now();
    if (this.backoff.isInBackoff(key, now)) {
      record("Normal", EventReason.BackOffPullImage, `Back-off pulling image "${image}"`);
      throw new ImagePullError("ImagePullBackOff", `Back-off pulling image "${image}"`);
    }
    record("Normal", EventReason.PullingImage, `Pulling image "${image}"`);
    const uid = pod.metadata?.uid ?? "";
    this.options.onPullStarted?.(uid, this.clock.monotonic());
    const started = this.clock.now();
    try {
      const imageRef = await this.pullWithCredentials(
        image,
        sandboxConfig,
        options.credentials ?? [],
      ).finally(() => this.options.onPullFinished?.(uid, this.clock.monotonic()));
      const took = formatGoDuration(this.clock.now() - started);
      const size = await this.options.client.image
        .imageStatus({ image: { image: imageRef } })
        .then((st) => String(st.image?.size ?? 0))
        .catch(() => "0");
      record(
        "Normal",
        EventReason.PulledImage,
        `Successfully pulled image "${image}" in ${took} (${took} including waiting). Image size: ${size} bytes.`,
      );
      return imageRef;
    } catch (e) {
      this.backoff.next(key, this.clock.now());
      this.logger.info({ image, err: describeError(e) }, "image pull failed");
      const msg = `Failed to pull image "${image}": ${describeError(e)}`;
      record("Warning", EventReason.FailedToPullImage, msg);
      record("Warning", EventReason.FailedToPullImage, "Error: ErrImagePull");
      throw new ImagePullError("ErrImagePull", msg, { cause: e });
    }
  }

  /** Tries each credential in turn (kubelet's puller); the last error wins. */
  private async pullWithCredentials(
    image: string,
    sandboxConfig: DeepPartial<PodSandboxConfig> | undefined,
    credentials: readonly RegistryAuth[],
  ): Promise<string> {
    if (credentials.length === 0) return this.pull(image, sandboxConfig);
    let last: unknown;
    for (const auth of credentials) {
      try {
        return await this.pull(image, sandboxConfig, auth);
      } catch (e) {
        last = e;
      }
    }
    throw last;
  }

  private async presentRef(image: string): Promise<string | undefined> {
    const st = await this.options.client.image.imageStatus({ image: { image } });
    return st.image?.id || undefined;
  }

  private pull(
    image: string,
    sandboxConfig?: DeepPartial<PodSandboxConfig>,
    auth?: RegistryAuth,
  ): Promise<string> {
    const key = auth ? `${image}\u0000${auth.serverAddress}\u0000${auth.username}` : image;
    let p = this.pulling.get(key);
    if (!p) {
      p = this.options.client.image
        .pullImage({
          image: { image },
          ...(auth ? { auth } : {}),
          ...(sandboxConfig ? { sandboxConfig } : {}),
        })
        .then((r) => r.imageRef)
        .finally(() => this.pulling.delete(key));
      this.pulling.set(key, p);
    }
    return p;
  }
}
