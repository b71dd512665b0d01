import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Pod } from "@worknode/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { countPodGauges } from "../../src/server/kubelet-metrics.js";
import { containerLogPathFromStatus } from "../../src/server/log-locator.js";

type Status = NonNullable<NonNullable<Pod["status"]>["containerStatuses"]>[number];

function pod(status: Partial<Status>): Pod {
  return {
    metadata: { name: "p", namespace: "ns", uid: "u1" },
    spec: { containers: [{ name: "c", image: "i" }] },
    status: {
      containerStatuses: [{ name: "c", image: "i", imageID: "", ready: false, restartCount: 0, ...status }],
    },
  };
}

describe("containerLogPathFromStatus", () => {
  let root: string;
  let dir: string;

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), "log-locator-"));
    dir = path.join(root, "ns_p_u1", "c");
    await mkdir(dir, { recursive: true });
    for (const n of [0, 1, 2]) await writeFile(path.join(dir, `${n}.log`), "");
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const running = { running: { startedAt: "2024-01-01T00:00:00Z" } };
  const lastTerminated = { terminated: { exitCode: 1, containerID: "containerd://x" } };

  it("running container: current is <restartCount>.log, previous the one before", () => {
    const p = pod({ restartCount: 2, state: running, lastState: lastTerminated });
    expect(containerLogPathFromStatus(p, "c", false, root)).toBe(path.join(dir, "2.log"));
    expect(containerLogPathFromStatus(p, "c", true, root)).toBe(path.join(dir, "1.log"));
  });

  it("container waiting to restart: both current and previous are the last terminated instance", () => {
    const p = pod({
      restartCount: 1,
      state: { waiting: { reason: "CrashLoopBackOff" } },
      lastState: lastTerminated,
    });
    expect(containerLogPathFromStatus(p, "c", false, root)).toBe(path.join(dir, "1.log"));
    expect(containerLogPathFromStatus(p, "c", true, root)).toBe(path.join(dir, "1.log"));
  });

  it("no logs before the first start, no previous without a terminated instance", () => {
    const waiting = pod({ state: { waiting: { reason: "ContainerCreating" } } });
    expect(containerLogPathFromStatus(waiting, "c", false, root)).toBeUndefined();
    const first = pod({ restartCount: 0, state: running });
    expect(containerLogPathFromStatus(first, "c", true, root)).toBeUndefined();
    expect(containerLogPathFromStatus(first, "nope", false, root)).toBeUndefined();
  });

  it("falls back to the newest files when the status's count has no file", () => {
    const p = pod({ restartCount: 7, state: running, lastState: lastTerminated });
    expect(containerLogPathFromStatus(p, "c", false, root)).toBe(path.join(dir, "2.log"));
    expect(containerLogPathFromStatus(p, "c", true, root)).toBe(path.join(dir, "1.log"));
  });
});

describe("countPodGauges", () => {
  it("counts pods with a ready sandbox or a running container, and containers by state", () => {
    const a = pod({
      state: { running: {} },
      restartCount: 1,
      lastState: { terminated: { exitCode: 0, containerID: "x" } },
    });
    const b: Pod = {
      status: { conditions: [{ type: "PodReadyToStartContainers", status: "True" }], containerStatuses: [] },
    };
    const c = pod({ state: { terminated: { exitCode: 0, containerID: "y" } } });
    const d = pod({ state: { waiting: { reason: "ErrImagePull" } } });
    expect(countPodGauges([a, b, c, d])).toEqual({
      runningPods: 2,
      containers: { created: 0, running: 1, exited: 2, unknown: 0 },
    });
  });
});
