/**
 * `worknode`: the batteries-included CLI. The package also exports the
 * dispatcher so the same commands can be embedded or tested.
 *
 * @packageDocumentation
 */

export { createProxyCommand, type ProxyCommandDeps, proxyCommand } from "./commands/proxy.js";
export {
  CliUsageError,
  type FlagKind,
  type FlagSpec,
  type FlagValue,
  type ParsedFlags,
  parseFlags,
  renderHelp,
} from "./flags.js";
export { type CliIO, type Command, runCli } from "./main.js";
export { checkRuntimeEndpoint, runtimeSocketPath } from "./runtime-endpoint.js";
export { VERSION } from "./version.js";
