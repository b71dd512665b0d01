/**
 * `@worknode/cri`: not implemented yet — see this package's README for its status.
 *
 * @packageDocumentation
 */

/** Implementation state of this package, so that tools and users can tell an empty package apart. */
export const implementationStatus = "not-yet" as const;
