/**
 * `@worknode/core`: the shared model, contracts, sources, runner, metrics and
 * utilities every worknode package is built on.
 *
 * @packageDocumentation
 */

export * from "./kube/objects.js";
export * from "./net/ip.js";
export * from "./proxy/index.js";
export * from "./service/index.js";
export * from "./sources/index.js";
export * from "./util/backoff.js";
export * from "./util/base32.js";
export * from "./util/clock.js";
export * from "./util/command.js";
export * from "./util/duration.js";
export * from "./util/errors.js";
export * from "./util/http-server.js";
export * from "./util/logging.js";
export * from "./util/metrics.js";
