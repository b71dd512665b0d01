/**
 * Killing a container as kubelet does (`killContainer`): run its preStop hook
 * (exec, httpGet or sleep) within the grace period, then `StopContainer` with
 * what is left of it (at least 2 s), after which the runtime sends SIGKILL.
 *
 * @module
 */
import type { V1LifecycleHandler } from "@kubernetes/client-node";
import { type Clock, describeError, type Logger, realClock, silentLogger, type Wire } from "@worknode/core";
import { type CriClient, isCriStatus } from "@worknode/cri";

/** A lifecycle handler (preStop / postStart) in wire form. */
export type LifecycleHandler = Wire<V1LifecycleHandler>;

/** kubelet's minimum grace period for StopContainer (2 s). */
export const MINIMUM_GRACE_PERIOD_SECONDS = 2;

/** What is needed to kill one container instance. */
export interface KillTarget {
  /** Runtime container ID. */
  readonly id: string;
  /** Container name (for logs). */
  readonly name: string;
  /** Grace period in seconds (pod deletion / termination grace period). */
  readonly gracePeriodSeconds: number;
  /** The preStop handler to run first, if any. */
  readonly preStop?: LifecycleHandler;
  /** Pod IP for an httpGet hook without `host`. */
  readonly podIP?: string;
  /** The container's ports, to resolve a named httpGet port. */
  readonly ports?: readonly { name?: string; containerPort: number }[];
}

/** Options of one {@link ContainerKiller.kill}. */
export interface KillOptions {
  /**
   * Settles when it is this container's turn to stop (a sidecar waits for the app
   * containers and later sidecars). Awaited after the preStop hook, at most for the
   * rest of the grace period; the time waited is taken from the grace period.
   */
  readonly after?: Promise<unknown>;
}

/** Options of {@link ContainerKiller}. */
export interface ContainerKillerOptions {
  readonly client: CriClient;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** Runs preStop hooks and stops containers with their grace period. */
export class ContainerKiller {
  private readonly clock: Clock;
  private readonly logger: Logger;

  constructor(private readonly options: ContainerKillerOptions) {
    this.clock = options.clock ?? realClock;
    this.logger = (options.logger ?? silentLogger()).child({ component: "container-killer" });
  }

  /**
   * Kills one container: preStop hook, then (with `opts.after`) wait for its turn,
   * then StopContainer with the remaining grace period.
   */
  async kill(target: KillTarget, opts: KillOptions = {}): Promise<void> {
    let grace = Math.max(0, target.gracePeriodSeconds);
    if (target.preStop && grace > 0) {
      const t0 = this.clock.monotonic();
      await this.runHook(target, target.preStop, grace).catch((e: unknown) => {
        this.logger.info({ container: target.name, err: describeError(e) }, "preStop hook failed");
      });
      grace -= Math.floor((this.clock.monotonic() - t0) / 1000);
    }
    if (opts.after && grace > 0) {
      const t0 = this.clock.monotonic();
      await this.waitAtMost(opts.after, grace * 1000);
      grace -= Math.floor((this.clock.monotonic() - t0) / 1000);
    }
    grace = Math.max(grace, MINIMUM_GRACE_PERIOD_SECONDS);
    try {
      await this.options.client.runtime.stopContainer(
        { containerId: target.id, timeout: grace },
        { timeoutMs: (grace + 30) * 1000 },
      );
    } catch (e) {
      if (!isCriStatus(e, "NOT_FOUND")) throw e;
    }
  }

  private async waitAtMost(p: Promise<unknown>, ms: number): Promise<void> {
    let timer: { cancel(): void } | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = this.clock.setTimeout(resolve, ms);
    });
    try {
      await Promise.race([
        p.then(
          () => undefined,
          () => undefined,
        ),
        timeout,
      ]);
    } finally {
      timer?.cancel();
    }
  }

  /** Runs a lifecycle handler (also used for postStart) with a deadline of `timeoutSeconds`. */
  async runHook(target: KillTarget, h: LifecycleHandler, timeoutSeconds: number): Promise<void> {
    if (h.exec?.command?.length) {
      const res = await this.options.client.runtime.execSync(
        { containerId: target.id, cmd: h.exec.command, timeout: timeoutSeconds },
        { timeoutMs: (timeoutSeconds + 5) * 1000 },
      );
      if (res.exitCode !== 0)
        throw new Error(
          `exec hook exited with ${res.exitCode}: ${Buffer.from(res.stderr).toString().trim()}`,
        );
      return;
    }
    if (h.sleep) {
      await this.clock.sleep(Math.min(h.sleep.seconds, timeoutSeconds) * 1000);
      return;
    }
    if (h.httpGet) {
      const g = h.httpGet;
      let port: number | undefined;
      if (typeof g.port === "number") port = g.port;
      else if (/^\d+$/.test(String(g.port))) port = Number(g.port);
      else port = target.ports?.find((p) => p.name === g.port)?.containerPort;
      if (port === undefined) throw new Error(`httpGet hook: unknown port ${String(g.port)}`);
      const host = g.host || target.podIP;
      if (!host) throw new Error("httpGet hook: no host and no pod IP");
      const scheme = (g.scheme ?? "HTTP").toLowerCase();
      const hostPart = host.includes(":") ? `[${host}]` : host;
      const path = g.path ? (g.path.startsWith("/") ? g.path : `/${g.path}`) : "/";
      const headers: Record<string, string> = {};
      for (const hd of g.httpHeaders ?? []) headers[hd.name] = hd.value;
      const res = await fetch(`${scheme}://${hostPart}:${port}${path}`, {
        headers,
        signal: AbortSignal.timeout(timeoutSeconds * 1000),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.status < 200 || res.status >= 400) throw new Error(`httpGet hook: HTTP ${res.status}`);
    }
  }
}
