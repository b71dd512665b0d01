/**
 * Where container logs go (pkg/kubelet/kuberuntime/helpers.go): the pod log
 * directory `<root>/<namespace>_<name>_<uid>` is the sandbox's `logDirectory`, and
 * each container instance writes `<container>/<restartCount>.log` relative to it.
 *
 * @module
 */
import { posix } from "node:path";
import type { Pod } from "@worknode/core";

/** kubelet's default pod log root. */
export const DEFAULT_POD_LOGS_ROOT = "/var/log/pods";

/** The pod log directory `<root>/<ns>_<name>_<uid>`. */
export function podLogDirectory(pod: Pod, root = DEFAULT_POD_LOGS_ROOT): string {
  const m = pod.metadata;
  return posix.join(root, `${m?.namespace ?? ""}_${m?.name ?? ""}_${m?.uid ?? ""}`);
}

/** A container's log path relative to the pod log directory: `<container>/<restartCount>.log` (CRI `logPath`). */
export function containerLogPath(containerName: string, restartCount: number): string {
  return posix.join(containerName, `${restartCount}.log`);
}

/** A container instance's absolute log file. */
export function containerLogFile(
  pod: Pod,
  containerName: string,
  restartCount: number,
  root = DEFAULT_POD_LOGS_ROOT,
): string {
  return posix.join(podLogDirectory(pod, root), containerLogPath(containerName, restartCount));
}

/**
 * kubelet's `calcRestartCountByLogDir`: given the file names of a container's log
 * directory, the restart count to use when the runtime lost every instance —
 * the highest `<n>.log` + 1, or 0.
 */
export function restartCountFromLogFiles(fileNames: readonly string[]): number {
  let max = -1;
  for (const f of fileNames) {
    const m = /^(\d+)\.log(?:\..*)?$/.exec(f);
    if (m) max = Math.max(max, Number(m[1]));
  }
  return max + 1;
}
