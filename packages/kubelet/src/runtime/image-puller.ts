/**
 * Images as kubelet's image manager ensures them (`EnsureImageExists`): the
 * pull policy decides, a failed pull puts the image of that pod into back-off,
 * and the failure is reported with kubelet's waiting reasons `ErrImagePull`,
 * `ImagePullBackOff` and `ErrImageNeverPull`.
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
import { CRASH_LOOP_MAX_MS } from "../crash-loop.js";
import { type Container, imagePullPolicy, shouldPullImage } from "../pod-spec.js";

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
  ): Promise<string> {
    const image = container.image ?? "";
    if (!image) throw new ImagePullError("InvalidImageName", `container ${container.name} has no image`);
    const present = await this.presentRef(image);
    if (!shouldPullImage(container, present !== undefined)) {
      if (present !== undefined) return present;
      throw new ImagePullError(
        "ErrImageNeverPull",
        `Container image "${image}" is not present with pull policy of ${imagePullPolicy(container)}`,
      );
    }
    const key = `${pod.metadata?.uid ?? ""}_${image}`;
    const now = this.clock.now();
    if (this.backoff.isInBackoff(key, now)) {
      throw new ImagePullError("ImagePullBackOff", `Back-off pulling image "${image}"`);
    }
    try {
      const ref = await this.pull(image, sandboxConfig);
      return ref;
    } catch (e) {
      this.backoff.next(key, this.clock.now());
      this.logger.info({ image, err: describeError(e) }, "image pull failed");
      throw new ImagePullError("ErrImagePull", `Failed to pull image "${image}": ${describeError(e)}`, {
        cause: e,
      });
    }
  }

  private async presentRef(image: string): Promise<string | undefined> {
    const st = await this.options.client.image.imageStatus({ image: { image } });
    return st.image?.id || undefined;
  }

  private pull(image: string, sandboxConfig?: DeepPartial<PodSandboxConfig>): Promise<string> {
    let p = this.pulling.get(image);
    if (!p) {
      p = this.options.client.image
        .pullImage({ image: { image }, ...(sandboxConfig ? { sandboxConfig } : {}) })
        .then((r) => r.imageRef)
        .finally(() => this.pulling.delete(image));
      this.pulling.set(image, p);
    }
    return p;
  }
}
