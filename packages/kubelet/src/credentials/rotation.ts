/**
 * When the kubelet renews its client certificate: at a random point between 70 % and
 * 90 % of the certificate's lifetime (kubelet's certificate manager), computed purely.
 *
 * @module
 */
import type { CertificateValidity } from "./csr.js";

/** The window of the lifetime in which a certificate is renewed. */
export interface RotationWindow {
  /** Earliest fraction of the lifetime; default 0.7. */
  readonly min: number;
  /** Latest fraction of the lifetime; default 0.9. */
  readonly max: number;
}

/** kubelet's rotation window: 70 %–90 % of the lifetime. */
export const DEFAULT_ROTATION_WINDOW: RotationWindow = { min: 0.7, max: 0.9 };

/**
 * The rotation deadline (epoch ms) of a certificate: `notBefore + lifetime × f`, with `f`
 * drawn uniformly from the window by `random` (in [0, 1)).
 *
 * @throws RangeError for a window outside [0, 1] or with min > max
 */
export function rotationDeadline(
  validity: Pick<CertificateValidity, "notBefore" | "notAfter">,
  random: number,
  window: RotationWindow = DEFAULT_ROTATION_WINDOW,
): number {
  if (!(window.min >= 0 && window.max <= 1 && window.min <= window.max)) {
    throw new RangeError("rotation window must satisfy 0 <= min <= max <= 1");
  }
  const lifetime = Math.max(0, validity.notAfter - validity.notBefore);
  const fraction = window.min + (window.max - window.min) * Math.min(Math.max(random, 0), 1);
  return validity.notBefore + Math.floor(lifetime * fraction);
}
