/**
 * What the Node lifecycle needs from the container runtime: its name and version
 * (CRI `Version`) and its conditions (CRI `Status`), with an adapter for `CriClient`.
 *
 * @module
 */
import type { CriClient } from "@worknode/cri";
import type { RuntimeConditionInfo } from "./conditions.js";
import type { RuntimeVersionInfo } from "./node-builder.js";

/** The runtime as the Node lifecycle sees it. */
export interface NodeRuntime {
  /** The runtime's name and version (CRI `version`). */
  version(): Promise<RuntimeVersionInfo>;
  /** The runtime's conditions (CRI `status`). */
  status(): Promise<readonly RuntimeConditionInfo[]>;
}

/** A {@link NodeRuntime} over a CRI client (`runtime.version` / `runtime.status`, 5 s deadline each). */
export function criNodeRuntime(client: CriClient, timeoutMs = 5_000): NodeRuntime {
  return {
    async version() {
      const v = await client.runtime.version({ version: "v1" }, { timeoutMs });
      return { runtimeName: v.runtimeName, runtimeVersion: v.runtimeVersion };
    },
    async status() {
      const s = await client.runtime.status({ verbose: false }, { timeoutMs });
      return (s.status?.conditions ?? []).map((c) => ({
        type: c.type,
        status: c.status,
        reason: c.reason,
        message: c.message,
      }));
    },
  };
}
