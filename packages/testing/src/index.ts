/**
 * `@worknode/testing`: harnesses that start and stop real components for
 * system tests — worknode's own and integrators'.
 *
 * @packageDocumentation
 */
export {};
