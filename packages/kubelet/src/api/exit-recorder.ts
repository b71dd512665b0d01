/**
 * A {@link ContainerKiller} that remembers how each container it killed ended
 * (exit code, reason, times, read with `ContainerStatus` right after the stop),
 * so the final status of a deleted pod can show real exit codes although its
 * containers are removed right after.
 *
 * @module
 */
import type { CriClient } from "@worknode/cri";
import {
  ContainerKiller,
  type ContainerKillerOptions,
  type KillOptions,
  type KillTarget,
} from "../runtime/container-killer.js";
import type { ContainerExit } from "./pod-deletion.js";

/** Exits kept at most (oldest dropped first). */
const MAX_EXITS = 4096;

function nsToMs(ns: bigint): number {
  return Number(ns / 1_000_000n);
}

/** A container killer recording the exits of the containers it stops. */
export class ExitRecordingKiller extends ContainerKiller {
  private readonly exits = new Map<string, ContainerExit>();
  private readonly cri: CriClient;

  constructor(options: ContainerKillerOptions) {
    super(options);
    this.cri = options.client;
  }

  /** Kills the container (see {@link ContainerKiller.kill}), then records how it ended. */
  override async kill(target: KillTarget, opts?: KillOptions): Promise<void> {
    await super.kill(target, opts);
    try {
      const st = (await this.cri.runtime.containerStatus({ containerId: target.id })).status;
      if (!st || st.finishedAt <= 0n) return;
      if (this.exits.size >= MAX_EXITS) {
        const oldest = this.exits.keys().next().value;
        if (oldest !== undefined) this.exits.delete(oldest);
      }
      this.exits.set(target.id, {
        exitCode: st.exitCode,
        ...(st.reason ? { reason: st.reason } : {}),
        finishedAt: nsToMs(st.finishedAt),
        ...(st.startedAt > 0n ? { startedAt: nsToMs(st.startedAt) } : {}),
      });
    } catch {
      // Best effort: without a record the final status shows the exit as unknown.
    }
  }

  /** Takes (and forgets) the recorded exits of the given container IDs. */
  take(ids: Iterable<string>): Map<string, ContainerExit> {
    const out = new Map<string, ContainerExit>();
    for (const id of ids) {
      const e = this.exits.get(id);
      if (!e) continue;
      out.set(id, e);
      this.exits.delete(id);
    }
    return out;
  }
}
