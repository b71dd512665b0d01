/**
 * Runtime API version negotiation: which `runtimeApiVersion` answers this client accepts. Pure.
 *
 * @module
 */
import { CriUnsupportedRuntimeError } from "./errors.js";
import type { VersionResponse } from "./generated/api.js";

/** The CRI API version this client speaks and sends in `VersionRequest.version`. */
export const CRI_API_VERSION = "v1";

/** `runtimeApiVersion` values accepted from a runtime. */
export const SUPPORTED_RUNTIME_API_VERSIONS: readonly string[] = [CRI_API_VERSION];

/**
 * Checks a runtime's `Version` answer.
 *
 * @returns the answer, when its `runtimeApiVersion` is supported.
 * @throws CriUnsupportedRuntimeError naming the runtime and the version it reported.
 */
export function checkRuntimeApiVersion(endpoint: string, version: VersionResponse): VersionResponse {
  if (SUPPORTED_RUNTIME_API_VERSIONS.includes(version.runtimeApiVersion)) return version;
  const runtime = `${version.runtimeName || "unknown runtime"} ${version.runtimeVersion}`.trim();
  throw new CriUnsupportedRuntimeError(
    endpoint,
    version.runtimeApiVersion,
    `CRI runtime ${runtime} at ${endpoint} reports runtimeApiVersion ${JSON.stringify(version.runtimeApiVersion)}; ` +
      `this client supports ${SUPPORTED_RUNTIME_API_VERSIONS.join(", ")}`,
  );
}
