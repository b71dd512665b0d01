import type { Pod } from "@worknode/core";
import { describe, expect, it } from "vitest";
import { ANNOTATION_CONFIG_MIRROR } from "../../src/api/mirror-pod.js";
import {
  canDeletePod,
  deletionGracePeriodSeconds,
  finalPodStatus,
  noContainersRunning,
} from "../../src/api/pod-deletion.js";
import type { PodStatus } from "../../src/pod-spec.js";
import { container, pod, T0 } from "../helpers.js";

const DELETED = { deletionTimestamp: "2026-01-01T00:00:00Z", deletionGracePeriodSeconds: 7 };

function runningStatus(): PodStatus {
  return {
    phase: "Running",
    podIP: "10.86.0.9",
    podIPs: [{ ip: "10.86.0.9" }],
    startTime: "2026-01-01T00:00:00Z",
    conditions: [
      { type: "Ready", status: "True", lastTransitionTime: "2026-01-01T00:00:00Z" },
      { type: "example.com/gate", status: "True", lastTransitionTime: "2026-01-01T00:00:00Z" },
    ],
    containerStatuses: [
      {
        name: "app",
        image: "busybox",
        imageID: "sha256:1",
        containerID: "containerd://c-app",
        ready: true,
        restartCount: 0,
        state: { running: { startedAt: "2026-01-01T00:00:01Z" } },
      },
      {
        name: "side",
        image: "busybox",
        imageID: "sha256:1",
        containerID: "containerd://c-side",
        ready: true,
        restartCount: 0,
        state: { running: { startedAt: "2026-01-01T00:00:01Z" } },
      },
    ],
  };
}

const twoContainers = (meta = {}) => pod({ containers: [container("app"), container("side")] }, meta);

describe("deletionGracePeriodSeconds", () => {
  it("takes the deletion's grace, else the spec's, else 30 s", () => {
    expect(deletionGracePeriodSeconds(pod({ terminationGracePeriodSeconds: 5 }, DELETED))).toBe(7);
    expect(deletionGracePeriodSeconds(pod({ terminationGracePeriodSeconds: 5 }))).toBe(5);
    expect(deletionGracePeriodSeconds(pod())).toBe(30);
    expect(
      deletionGracePeriodSeconds(
        pod({ terminationGracePeriodSeconds: 5 }, { deletionGracePeriodSeconds: 0 }),
      ),
    ).toBe(0);
  });
});

describe("finalPodStatus", () => {
  const ctx = (exits: [string, { exitCode: number; finishedAt?: number }][]) => ({
    now: T0,
    nodeIPs: ["192.0.2.1"],
    exits: new Map(exits),
  });

  it("turns the pod Failed when a killed container exited non-zero, with the runtime's exit codes", () => {
    const p = twoContainers(DELETED);
    const s = finalPodStatus(
      p,
      runningStatus(),
      ctx([
        ["c-app", { exitCode: 137, finishedAt: T0 - 10 }],
        ["c-side", { exitCode: 0 }],
      ]),
    );
    expect(s.phase).toBe("Failed");
    const app = s.containerStatuses?.find((c) => c.name === "app");
    expect(app?.state?.terminated).toMatchObject({
      exitCode: 137,
      reason: "Error",
      containerID: "containerd://c-app",
    });
    expect(app?.state?.terminated?.startedAt).toBe("2026-01-01T00:00:01Z");
    expect(app?.ready).toBe(false);
    expect(s.containerStatuses?.find((c) => c.name === "side")?.state?.terminated?.reason).toBe("Completed");
    expect(s.conditions?.find((c) => c.type === "Ready")?.status).toBe("False");
    expect(s.conditions?.find((c) => c.type === "example.com/gate")?.status).toBe("True");
    expect(s.podIP).toBe("10.86.0.9");
    expect(s.startTime).toBe("2026-01-01T00:00:00Z");
    expect(noContainersRunning(s)).toBe(true);
  });

  it("turns the pod Succeeded when every container exited 0", () => {
    const s = finalPodStatus(
      twoContainers(DELETED),
      runningStatus(),
      ctx([
        ["c-app", { exitCode: 0 }],
        ["c-side", { exitCode: 0 }],
      ]),
    );
    expect(s.phase).toBe("Succeeded");
  });

  it("shows an exit nobody saw as ContainerStatusUnknown (137)", () => {
    const s = finalPodStatus(twoContainers(DELETED), runningStatus(), ctx([]));
    expect(s.phase).toBe("Failed");
    expect(s.containerStatuses?.[0]?.state?.terminated).toMatchObject({
      exitCode: 137,
      reason: "ContainerStatusUnknown",
    });
  });

  it("keeps an already terminal status as it is", () => {
    const done: PodStatus = {
      ...runningStatus(),
      phase: "Succeeded",
      containerStatuses: (runningStatus().containerStatuses ?? []).map((c) => ({
        ...c,
        ready: false,
        state: { terminated: { exitCode: 0, reason: "Completed", containerID: c.containerID } },
      })),
    };
    const s = finalPodStatus(twoContainers(DELETED), done, ctx([]));
    expect(s.phase).toBe("Succeeded");
    expect(s.containerStatuses?.map((c) => c.state?.terminated?.exitCode)).toEqual([0, 0]);
  });
});

describe("canDeletePod", () => {
  const stopped = (p: Pod, status: PodStatus): Pod => ({ ...p, status });
  const final = finalPodStatus(twoContainers(DELETED), runningStatus(), { now: T0, nodeIPs: [] });

  it("deletes a deleted, terminated pod whose final status reached the API", () => {
    expect(
      canDeletePod({ apiPod: stopped(twoContainers(DELETED), final), terminated: true, statusSynced: true }),
    ).toBe(true);
  });

  it("waits for the deletion, the termination and the final status", () => {
    expect(
      canDeletePod({ apiPod: stopped(twoContainers(), final), terminated: true, statusSynced: true }),
    ).toBe(false);
    expect(
      canDeletePod({ apiPod: stopped(twoContainers(DELETED), final), terminated: false, statusSynced: true }),
    ).toBe(false);
    expect(
      canDeletePod({ apiPod: stopped(twoContainers(DELETED), final), terminated: true, statusSynced: false }),
    ).toBe(false);
    expect(
      canDeletePod({
        apiPod: stopped(twoContainers(DELETED), runningStatus()),
        terminated: true,
        statusSynced: true,
      }),
    ).toBe(false);
  });

  it("never deletes a mirror pod this way", () => {
    const mirror = twoContainers({ ...DELETED, annotations: { [ANNOTATION_CONFIG_MIRROR]: "h" } });
    expect(canDeletePod({ apiPod: stopped(mirror, final), terminated: true, statusSynced: true })).toBe(
      false,
    );
  });
});
