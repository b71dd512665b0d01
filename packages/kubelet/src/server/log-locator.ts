/**
 * Which log file holds a container's output, from the pod's status and the
 * files on disk: the current instance writes
 * `<podLogsDir>/<ns>_<name>_<uid>/<container>/<restartCount>.log`, the previous
 * (terminated) one `<restartCount - 1>.log`. When the file the status points at
 * is missing (the count was rebuilt after a restart), the highest-numbered file
 * is the current one and the next lower the previous one.
 *
 * @module
 */
import { existsSync, readdirSync } from "node:fs";
import { posix } from "node:path";
import type { Pod } from "@worknode/core";
import { containerLogFile, DEFAULT_POD_LOGS_ROOT, podLogDirectory } from "../log-paths.js";

function statusOf(pod: Pod, containerName: string) {
  return (
    pod.status?.containerStatuses?.find((s) => s.name === containerName) ??
    pod.status?.initContainerStatuses?.find((s) => s.name === containerName)
  );
}

function logNumbers(dir: string): number[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const n of names) {
    const m = /^(\d+)\.log$/.exec(n);
    if (m) out.push(Number(m[1]));
  }
  return out.sort((a, b) => b - a);
}

/**
 * The log file kubelet's `validateContainerLogStatus` would pick: with
 * `previous`, the last terminated instance (`lastState.terminated`); otherwise
 * the running (or terminated) instance, or the last terminated one while the
 * container waits to restart. Undefined when there is none (the container has
 * not started yet, or there is no previous instance).
 */
export function containerLogPathFromStatus(
  pod: Pod,
  containerName: string,
  previous: boolean,
  podLogsDir: string = DEFAULT_POD_LOGS_ROOT,
): string | undefined {
  const status = statusOf(pod, containerName);
  if (!status) return undefined;
  const started = status.state?.running !== undefined || (status.state?.terminated?.containerID ?? "") !== "";
  const hasLast = status.lastState?.terminated !== undefined;
  const restartCount = status.restartCount ?? 0;
  // The status's restartCount is the attempt of the newest instance: the current one
  // when it started, else the last terminated one.
  let attempt: number;
  let rank: number;
  if (previous || !started) {
    if (!hasLast) return undefined;
    attempt = started ? restartCount - 1 : restartCount;
    rank = started ? 1 : 0;
  } else {
    attempt = restartCount;
    rank = 0;
  }
  if (attempt >= 0) {
    const path = containerLogFile(pod, containerName, attempt, podLogsDir);
    if (existsSync(path)) return path;
  }
  const dir = posix.join(podLogDirectory(pod, podLogsDir), containerName);
  const n = logNumbers(dir)[rank];
  return n === undefined ? undefined : posix.join(dir, `${n}.log`);
}
