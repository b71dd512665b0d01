/**
 * Doubles for CLI tests of the proxy modes: a proxy backend that runs nothing and records the
 * proxiers it makes, a proxier that records its syncs, a command runner that records its calls,
 * and a run of `worknode proxy` until its first sync.
 */
import type { CommandOutput, CommandRunner, IPFamily, Proxier, SyncInput, SyncStats } from "@worknode/core";
import { createProxyCommand } from "../../src/commands/proxy.js";
import type {
  CliProxier,
  CliProxierOptions,
  ProxyBackend,
  ProxyBackendOptions,
} from "../../src/commands/proxy-backend.js";
import type { ProxyMode } from "../../src/commands/proxy-config.js";
import { captureIO } from "./proxy-setup.js";

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

/** One call a {@link recordingRunner} recorded. */
export interface RecordedCall {
  readonly command: string;
  readonly args: string[];
  readonly stdin: string | undefined;
}

/**
 * A command runner that records every call and answers from `answer` (default: exit 0, no
 * output); `iptables -D` fails (the rule is not there), which ends iptables' cleanup loop.
 */
export function recordingRunner(
  answer: (command: string, args: readonly string[]) => Partial<CommandOutput> = () => ({}),
): { runner: CommandRunner; calls: RecordedCall[] } {
  const calls: RecordedCall[] = [];
  const runner: CommandRunner = {
    async exec(command, args, stdin) {
      calls.push({ command, args: [...args], stdin });
      if (command.includes("tables") && args.includes("-D")) {
        return { code: 1, stdout: "", stderr: "Bad rule (does a matching rule exist in that chain?)." };
      }
      return { code: 0, stdout: "", stderr: "", ...answer(command, args) };
    },
  };
  return { runner, calls };
}

/** A proxier that records its syncs and the options the CLI made it with. */
export class RecordingProxier implements Proxier {
  readonly syncs: SyncInput[] = [];
  constructor(
    readonly mode: string,
    readonly options: CliProxierOptions,
  ) {}
  async sync(input: SyncInput): Promise<SyncStats> {
    this.syncs.push(input);
    return { servicePorts: input.snapshot.services.size, endpoints: 0 };
  }
  async cleanup(): Promise<void> {}
}

/** What {@link recordingBackends} saw: the modes and backend options asked for, the proxiers made. */
export interface RecordingBackendsState extends RecordingBackendState<RecordingProxier> {
  readonly modes: ProxyMode[];
  readonly options: (ProxyBackendOptions | undefined)[];
}

/** Backends per mode (`backendFor` of `createProxyCommand`) that record what they were asked for. */
export function recordingBackends(families: IPFamily[] = ["IPv4"]): {
  backendFor: (mode: ProxyMode, options?: ProxyBackendOptions) => ProxyBackend;
  state: RecordingBackendsState;
} {
  const state: RecordingBackendsState = { modes: [], options: [], proxiers: [], cleanups: 0 };
  const backendFor = (mode: ProxyMode, options?: ProxyBackendOptions): ProxyBackend => {
    state.modes.push(mode);
    state.options.push(options);
    return recordingBackend((o) => new RecordingProxier(mode, o), families, { mode, state }).backend;
  };
  return { backendFor, state };
}

/** Runs `worknode proxy --services-file <servicesFile> <argv…>` until its first sync, then stops it. */
export async function runUntilFirstSync(
  argv: string[],
  backends: ReturnType<typeof recordingBackends>,
  servicesFile: string,
): Promise<{ status: number; proxier: RecordingProxier; stderr: string }> {
  const controller = new AbortController();
  const { io, out } = captureIO(controller.signal);
  const cmd = createProxyCommand({
    backendFor: backends.backendFor,
    nodeIPs: () => ["192.168.1.10"],
    hostname: () => "node-1",
    onReady: (info) => {
      const check = () => {
        if (info.controller.health.isHealthy() && backends.state.proxiers[0]?.syncs.length)
          controller.abort();
        else setTimeout(check, 10);
      };
      check();
    },
  });
  const status = await cmd.run(
    [
      "--services-file",
      servicesFile,
      "--healthz-bind-address=",
      "--metrics-bind-address=",
      "--log-level=warn",
      ...argv,
    ],
    io,
  );
  return { status, proxier: backends.state.proxiers[0] as RecordingProxier, stderr: out.stderr };
}
