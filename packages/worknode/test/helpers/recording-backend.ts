/** A proxy backend for CLI tests that runs nothing and records the proxiers it makes. */
import type { IPFamily } from "@worknode/core";
import type { CliProxier, CliProxierOptions, ProxyBackend } from "../../src/commands/proxy-backend.js";
import type { ProxyMode } from "../../src/commands/proxy-config.js";

/** What a {@link recordingBackend} saw: the proxiers it made, in order, and how often it cleaned up. */
export interface RecordingBackendState<P> {
  readonly proxiers: P[];
  cleanups: number;
}

/**
 * A {@link ProxyBackend} that detects `families`, makes its proxiers with `create` and only
 * counts cleanups. Backends of several modes can share one `state`.
 */
export function recordingBackend<P extends CliProxier>(
  create: (options: CliProxierOptions) => P,
  families: IPFamily[] = ["IPv4"],
  opts: { readonly mode?: ProxyMode; readonly state?: RecordingBackendState<P> } = {},
): { backend: ProxyBackend; state: RecordingBackendState<P> } {
  const state = opts.state ?? { proxiers: [], cleanups: 0 };
  const backend: ProxyBackend = {
    ...(opts.mode !== undefined ? { mode: opts.mode } : {}),
    detectFamilies: async () => families,
    createProxier: (options) => {
      const p = create(options);
      state.proxiers.push(p);
      return p;
    },
    cleanup: async () => {
      state.cleanups++;
      return families;
    },
  };
  return { backend, state };
}
