/**
 * `@worknode/proxy-iptables`: the iptables service-proxy backend, laid out rule for
 * rule like kube-proxy's iptables mode.
 *
 * @packageDocumentation
 */

/** Re-exported from `@worknode/core`, where every backend shares them. */
export {
  type CommandOutput,
  type CommandRunner,
  type CommandRunnerOptions,
  type ConntrackDeletion,
  conntrackDeletions,
  createCommandRunner,
  endpointIPOf,
  flushConntrack,
} from "@worknode/core";
export * from "./iptables.js";
export * from "./proxier.js";
export * from "./render/index.js";
