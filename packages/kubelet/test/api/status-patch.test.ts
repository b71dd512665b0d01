import { describe, expect, it } from "vitest";
import { computeStatusPatch, guardStatus } from "../../src/api/status-patch.js";
import type { ContainerStatus, PodStatus } from "../../src/pod-spec.js";

const T1 = "2026-01-01T00:00:00Z";
const T2 = "2026-01-01T00:00:05Z";

function running(name: string, id: string): ContainerStatus {
  return {
    name,
    image: "busybox",
    imageID: "sha256:abc",
    containerID: `containerd://${id}`,
    ready: true,
    started: true,
    restartCount: 0,
    state: { running: { startedAt: T1 } },
  };
}

function terminated(name: string, id: string, exitCode: number): ContainerStatus {
  return {
    name,
    image: "busybox",
    imageID: "sha256:abc",
    containerID: `containerd://${id}`,
    ready: false,
    started: false,
    restartCount: 0,
    state: {
      terminated: { exitCode, reason: exitCode === 0 ? "Completed" : "Error", startedAt: T1, finishedAt: T2 },
    },
  };
}

function kubeletStatus(extra: Partial<PodStatus> = {}): PodStatus {
  return {
    phase: "Running",
    conditions: [
      { type: "PodReadyToStartContainers", status: "True", lastTransitionTime: T2 },
      { type: "Initialized", status: "True", lastTransitionTime: T2 },
      { type: "Ready", status: "True", lastTransitionTime: T2 },
      { type: "ContainersReady", status: "True", lastTransitionTime: T2 },
      { type: "PodScheduled", status: "True", lastTransitionTime: T2 },
    ],
    hostIP: "192.0.2.1",
    hostIPs: [{ ip: "192.0.2.1" }],
    podIP: "10.86.0.5",
    podIPs: [{ ip: "10.86.0.5" }],
    startTime: T1,
    qosClass: "BestEffort",
    containerStatuses: [running("app", "c1")],
    ...extra,
  };
}

/** What the API shows after the scheduler bound the pod. */
function scheduledApiStatus(): PodStatus {
  return {
    phase: "Pending",
    conditions: [{ type: "PodScheduled", status: "True", lastTransitionTime: T1 }],
    qosClass: "BestEffort",
  };
}

describe("computeStatusPatch", () => {
  it("sends every changed kubelet field with metadata.uid, but not the scheduler's PodScheduled", () => {
    const patch = computeStatusPatch(scheduledApiStatus(), kubeletStatus(), { uid: "u1" });
    expect(patch?.metadata).toEqual({ uid: "u1" });
    const s = patch?.status ?? {};
    expect(s.phase).toBe("Running");
    expect(s.podIP).toBe("10.86.0.5");
    expect(s.podIPs).toEqual([{ ip: "10.86.0.5" }]);
    expect(s.containerStatuses).toEqual([running("app", "c1")]);
    expect(s.qosClass).toBeUndefined(); // unchanged
    expect(s.conditions?.map((c) => c.type)).toEqual([
      "PodReadyToStartContainers",
      "Initialized",
      "Ready",
      "ContainersReady",
    ]);
  });

  it("sets PodScheduled where nobody did (mirror pods)", () => {
    const patch = computeStatusPatch({}, kubeletStatus(), { uid: "u1" });
    expect(patch?.status.conditions?.some((c) => c.type === "PodScheduled")).toBe(true);
  });

  it("returns nothing when the API already shows the status, whatever the timestamps", () => {
    const api = kubeletStatus();
    const desired = kubeletStatus({
      conditions: (api.conditions ?? []).map((c) => ({
        ...c,
        lastTransitionTime: "2030-01-01T00:00:00Z",
        lastProbeTime: T2,
      })),
    });
    expect(computeStatusPatch(api, desired, { uid: "u1" })).toBeUndefined();
  });

  it("treats empty strings, empty objects, nulls and missing fields alike", () => {
    const api = kubeletStatus({
      reason: "",
      message: "",
      containerStatuses: [{ ...running("app", "c1"), lastState: {} }],
      conditions: (kubeletStatus().conditions ?? []).map((c) => ({ ...c, lastProbeTime: null, reason: "" })),
    } as unknown as PodStatus);
    expect(computeStatusPatch(api, kubeletStatus(), { uid: "u1" })).toBeUndefined();
  });

  it("deletes a condition's reason and message and the pod's reason that no longer apply", () => {
    const api = kubeletStatus({
      reason: "NodeLost",
      conditions: (kubeletStatus().conditions ?? []).map((c) =>
        c.type === "Ready" ? { ...c, status: "False", reason: "ReadinessGatesNotReady", message: "gate" } : c,
      ),
    });
    const patch = computeStatusPatch(api, kubeletStatus(), { uid: "u1" });
    expect(patch?.status.reason).toBeNull();
    expect(patch?.status.conditions).toEqual([
      {
        type: "Ready",
        status: "True",
        reason: null,
        message: null,
        lastProbeTime: null,
        lastTransitionTime: T2,
      },
    ]);
  });

  it("never sends conditions owned by others, and sends only the kubelet conditions that changed", () => {
    const api: PodStatus = {
      ...kubeletStatus(),
      conditions: [
        ...(kubeletStatus().conditions ?? []),
        { type: "example.com/gate", status: "False", lastTransitionTime: T1 },
        { type: "DisruptionTarget", status: "True", lastTransitionTime: T1 },
      ],
    };
    const desired = kubeletStatus({
      conditions: [
        { type: "example.com/gate", status: "True", lastTransitionTime: T2 },
        ...(kubeletStatus().conditions ?? []).map((c) =>
          c.type === "Ready" ? { ...c, status: "False", reason: "ContainersNotReady" } : c,
        ),
      ],
      containerStatuses: [{ ...running("app", "c1"), ready: false }],
    });
    const patch = computeStatusPatch(api, desired, { uid: "u1" });
    expect(patch?.status.conditions).toEqual([
      {
        type: "Ready",
        status: "False",
        reason: "ContainersNotReady",
        message: null,
        lastProbeTime: null,
        lastTransitionTime: T2,
      },
    ]);
    expect(patch?.status.containerStatuses?.[0]?.ready).toBe(false);
  });

  it("does not move a startTime the API has", () => {
    const api = kubeletStatus({ startTime: T1 });
    expect(computeStatusPatch(api, kubeletStatus({ startTime: T2 }), { uid: "u1" })).toBeUndefined();
  });
});

describe("guardStatus (never backwards)", () => {
  it("keeps a terminal phase with its reason", () => {
    const api = kubeletStatus({ phase: "Failed", reason: "Evicted", message: "gone" });
    const g = guardStatus(api, kubeletStatus({ phase: "Running" }));
    expect(g.phase).toBe("Failed");
    expect(g.reason).toBe("Evicted");
    expect(
      computeStatusPatch(api, kubeletStatus({ phase: "Running" }), { uid: "u" })?.status.phase,
    ).toBeUndefined();
  });

  it("never shows a terminated container instance running again", () => {
    const api = kubeletStatus({ containerStatuses: [terminated("app", "c1", 137)] });
    const g = guardStatus(api, kubeletStatus({ containerStatuses: [running("app", "c1")] }), "Always");
    expect(g.containerStatuses?.[0]?.state?.terminated?.exitCode).toBe(137);
    expect(g.containerStatuses?.[0]?.ready).toBe(false);
  });

  it("lets a restarted instance run under restartPolicy Always", () => {
    const api = kubeletStatus({ containerStatuses: [terminated("app", "c1", 1)] });
    const next = kubeletStatus({ containerStatuses: [running("app", "c2")] });
    expect(guardStatus(api, next, "Always")).toBe(next);
  });

  it("keeps a terminated container terminated under Never, and under OnFailure after success", () => {
    const next = kubeletStatus({ containerStatuses: [running("app", "c2")] });
    const failed = kubeletStatus({ containerStatuses: [terminated("app", "c1", 1)] });
    const succeeded = kubeletStatus({ containerStatuses: [terminated("app", "c1", 0)] });
    expect(guardStatus(failed, next, "Never").containerStatuses?.[0]?.state?.terminated).toBeDefined();
    expect(guardStatus(succeeded, next, "OnFailure").containerStatuses?.[0]?.state?.terminated).toBeDefined();
    expect(guardStatus(failed, next, "OnFailure").containerStatuses?.[0]?.state?.running).toBeDefined();
  });

  it("keeps terminated containers of a terminal pod", () => {
    const api = kubeletStatus({ phase: "Succeeded", containerStatuses: [terminated("app", "c1", 0)] });
    const g = guardStatus(api, kubeletStatus({ containerStatuses: [running("app", "c2")] }), "Always");
    expect(g.phase).toBe("Succeeded");
    expect(g.containerStatuses?.[0]?.state?.terminated).toBeDefined();
  });
});
