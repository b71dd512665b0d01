import type { Pod } from "@worknode/core";
import { describe, expect, it } from "vitest";
import type { ContainerStatus, PodStatus } from "../src/pod-spec.js";
import { generatePodStatus, type PodStatusContext, podPhase } from "../src/pod-status.js";
import { mergeStatus, mergeStatusChecked } from "../src/status-merge.js";
import { container, ctr, pod, runtime, sandbox, T0 } from "./helpers.js";

const app = container("app");
const side = container("side");
const init1 = container("init1");
const ctx: PodStatusContext = { now: T0 + 60_000, nodeIPs: ["192.168.1.10"] };

function cond(s: PodStatus, type: string) {
  return s.conditions?.find((c) => c.type === type);
}

function cs(
  name: string,
  state: ContainerStatus["state"],
  lastState?: ContainerStatus["lastState"],
): ContainerStatus {
  return {
    name,
    image: "i",
    imageID: "",
    ready: false,
    restartCount: 0,
    state,
    ...(lastState ? { lastState } : {}),
  };
}

describe("podPhase (kubelet's getPhase)", () => {
  const run = { running: { startedAt: "x" } };
  const ok = { terminated: { exitCode: 0 } };
  const bad = { terminated: { exitCode: 1 } };
  const wait = { waiting: { reason: "ContainerCreating" } };
  const cases: Array<[string, Pod, ContainerStatus[], string, boolean?]> = [
    ["all running", pod(), [cs("app", run)], "Running"],
    ["waiting", pod(), [cs("app", wait)], "Pending"],
    ["no status", pod(), [], "Pending"],
    [
      "waiting after a termination counts as stopped (Always → Running)",
      pod(),
      [cs("app", wait, bad)],
      "Running",
    ],
    ["Always, all exited", pod(), [cs("app", ok)], "Running"],
    ["OnFailure, all exit 0", pod({ restartPolicy: "OnFailure" }), [cs("app", ok)], "Succeeded"],
    ["OnFailure, one failed", pod({ restartPolicy: "OnFailure" }), [cs("app", bad)], "Running"],
    ["Never, one failed", pod({ restartPolicy: "Never" }), [cs("app", bad)], "Failed"],
    ["Never, all succeeded", pod({ restartPolicy: "Never" }), [cs("app", ok)], "Succeeded"],
    ["Always but terminal pod: succeeded", pod(), [cs("app", ok)], "Succeeded", true],
    ["Always but terminal pod: failed", pod(), [cs("app", bad)], "Failed", true],
    ["one running, one unknown", pod({ containers: [app, side] }), [cs("app", run)], "Pending"],
    ["init running", pod({ initContainers: [init1] }), [cs("init1", run), cs("app", wait)], "Pending"],
    [
      "init failed, Never",
      pod({ initContainers: [init1], restartPolicy: "Never" }),
      [cs("init1", bad), cs("app", wait)],
      "Failed",
    ],
    [
      "init failed, Always (will retry)",
      pod({ initContainers: [init1] }),
      [cs("init1", bad), cs("app", wait)],
      "Pending",
    ],
    [
      "init waiting after failure, Never",
      pod({ initContainers: [init1], restartPolicy: "Never" }),
      [cs("init1", wait, bad)],
      "Failed",
    ],
    [
      "init done, app running",
      pod({ initContainers: [init1] }),
      [cs("init1", ok), cs("app", run)],
      "Running",
    ],
  ];
  it.each(cases)("%s → %s", (_n, p, statuses, phase, terminal) => {
    expect(podPhase(p, statuses, terminal)).toBe(phase);
  });
});

describe("generatePodStatus", () => {
  it("a new pod without sandbox: ContainerCreating, Pending, not ready to start", () => {
    const s = generatePodStatus(pod(), runtime([]), ctx);
    expect(s.phase).toBe("Pending");
    expect(s.containerStatuses?.[0]).toMatchObject({
      name: "app",
      ready: false,
      restartCount: 0,
      state: { waiting: { reason: "ContainerCreating" } },
    });
    expect(cond(s, "PodReadyToStartContainers")?.status).toBe("False");
    expect(cond(s, "PodScheduled")?.status).toBe("True");
    expect(cond(s, "ContainersReady")).toMatchObject({
      status: "False",
      reason: "ContainersNotReady",
      message: "containers with unready status: [app]",
    });
    expect(cond(s, "Ready")).toMatchObject({ status: "False", reason: "ContainersNotReady" });
    expect(s.hostIP).toBe("192.168.1.10");
    expect(s.hostIPs).toEqual([{ ip: "192.168.1.10" }]);
    expect(s.podIP).toBeUndefined();
    expect(s.qosClass).toBe("BestEffort");
    expect(s.startTime).toBe("2023-11-14T22:14:20Z");
  });

  it("pods with init containers show PodInitializing until init is done", () => {
    const p = pod({ initContainers: [init1] });
    const s = generatePodStatus(p, runtime([sandbox()], [ctr(init1, "running")]), ctx);
    expect(s.initContainerStatuses?.[0]).toMatchObject({
      name: "init1",
      started: true,
      ready: false,
      state: { running: {} },
    });
    expect(s.containerStatuses?.[0]?.state).toEqual({ waiting: { reason: "PodInitializing" } });
    expect(cond(s, "Initialized")).toMatchObject({
      status: "False",
      reason: "ContainersNotInitialized",
      message: "containers with incomplete status: [init1]",
    });
    expect(cond(s, "PodReadyToStartContainers")?.status).toBe("True");
    const done = generatePodStatus(p, runtime([sandbox()], [ctr(init1, "exited"), ctr(app, "running")]), ctx);
    expect(done.initContainerStatuses?.[0]).toMatchObject({
      ready: true,
      state: { terminated: { exitCode: 0, reason: "Completed" } },
    });
    expect(cond(done, "Initialized")?.status).toBe("True");
    expect(done.phase).toBe("Running");
  });

  it("running and ready: ids, image refs, conditions, pod IP", () => {
    const s = generatePodStatus(
      pod({ containers: [side, app] }),
      runtime([sandbox()], [ctr(app, "running"), ctr(side, "running")]),
      ctx,
    );
    expect(s.phase).toBe("Running");
    expect(s.containerStatuses?.map((c) => c.name)).toEqual(["app", "side"]); // sorted by name
    expect(s.containerStatuses?.[0]).toMatchObject({
      containerID: "containerd://app-0",
      imageID: "sha256:app",
      image: "registry.local/app:1.0",
      ready: true,
      started: true,
      state: { running: { startedAt: "2023-11-14T22:13:21Z" } },
    });
    expect(cond(s, "ContainersReady")?.status).toBe("True");
    expect(cond(s, "Ready")?.status).toBe("True");
    expect(s.podIP).toBe("10.0.0.5");
    expect(s.podIPs).toEqual([{ ip: "10.0.0.5" }]);
  });

  it("readiness and startup probes gate ready and started", () => {
    const probed = container("app", {
      readinessProbe: { tcpSocket: { port: 80 } },
      startupProbe: { tcpSocket: { port: 80 } },
    });
    const p = pod({ containers: [probed] });
    const rs = runtime([sandbox()], [ctr(probed, "running")]);
    let s = generatePodStatus(p, rs, ctx);
    expect(s.containerStatuses?.[0]).toMatchObject({ started: false, ready: false });
    s = generatePodStatus(p, rs, { ...ctx, probeResults: new Map([["app", { started: true }]]) });
    expect(s.containerStatuses?.[0]).toMatchObject({ started: true, ready: false });
    s = generatePodStatus(p, rs, {
      ...ctx,
      probeResults: new Map([["app", { started: true, ready: true }]]),
    });
    expect(s.containerStatuses?.[0]).toMatchObject({ started: true, ready: true });
    expect(cond(s, "Ready")?.status).toBe("True");
  });

  it("readiness gates: Ready waits for the gate condition", () => {
    const p = pod({ readinessGates: [{ conditionType: "example.com/lb" }] });
    const rs = runtime([sandbox()], [ctr(app, "running")]);
    let s = generatePodStatus(p, rs, ctx);
    expect(cond(s, "ContainersReady")?.status).toBe("True");
    expect(cond(s, "Ready")).toMatchObject({
      status: "False",
      reason: "ReadinessGatesNotReady",
      message: 'corresponding condition of pod readiness gate "example.com/lb" does not exist.',
    });
    p.status = { conditions: [{ type: "example.com/lb", status: "True" }] };
    s = generatePodStatus(p, rs, ctx);
    expect(cond(s, "Ready")?.status).toBe("True");
    expect(cond(s, "example.com/lb")?.status).toBe("True");
  });

  it("restarted container: lastState from the previous instance, restart count from the newest", () => {
    const rs = runtime(
      [sandbox()],
      [
        ctr(app, "exited", { exitCode: 2, restartCount: 0, reason: "Error", message: "boom" }),
        ctr(app, "exited", { exitCode: 137, restartCount: 1, reason: "OOMKilled" }),
        ctr(app, "running", { restartCount: 2 }),
      ],
    );
    const s = generatePodStatus(pod(), rs, ctx);
    const c = s.containerStatuses?.[0];
    expect(c?.restartCount).toBe(2);
    expect(c?.containerID).toBe("containerd://app-2");
    expect(c?.lastState?.terminated).toMatchObject({
      exitCode: 137,
      reason: "OOMKilled",
      containerID: "containerd://app-1",
    });
  });

  it("reason cache: CrashLoopBackOff, ErrImagePull, CreateContainerConfigError show as waiting", () => {
    const rs = runtime([sandbox()], [ctr(app, "exited", { exitCode: 1, restartCount: 3 })]);
    const waitingReasons = new Map([
      [
        "app",
        {
          reason: "CrashLoopBackOff",
          message: "back-off 40s restarting failed container=app pod=web_default(uid-1)",
        },
      ],
    ]);
    const s = generatePodStatus(pod(), rs, { ...ctx, waitingReasons });
    const c = s.containerStatuses?.[0];
    expect(c?.state).toEqual({
      waiting: {
        reason: "CrashLoopBackOff",
        message: "back-off 40s restarting failed container=app pod=web_default(uid-1)",
      },
    });
    expect(c?.lastState?.terminated).toMatchObject({ exitCode: 1, reason: "Error" });
    expect(c?.restartCount).toBe(3);
    expect(s.phase).toBe("Running"); // waiting with a last termination counts as stopped

    const pull = generatePodStatus(pod(), runtime([sandbox()]), {
      ...ctx,
      waitingReasons: new Map([["app", { reason: "ErrImagePull", message: "not found" }]]),
    });
    expect(pull.containerStatuses?.[0]?.state).toEqual({
      waiting: { reason: "ErrImagePull", message: "not found" },
    });
    expect(pull.phase).toBe("Pending");

    // Under Never an exited container will not restart: its terminated state stays.
    const never = generatePodStatus(pod({ restartPolicy: "Never" }), rs, { ...ctx, waitingReasons });
    expect(never.containerStatuses?.[0]?.state?.terminated?.exitCode).toBe(1);
    expect(never.phase).toBe("Failed");
  });

  it("a container that disappeared from the runtime while running is reported as terminated-unknown", () => {
    const previous = generatePodStatus(pod(), runtime([sandbox()], [ctr(app, "running")]), ctx);
    const s = generatePodStatus(pod(), runtime([sandbox()]), { ...ctx, previous });
    const c = s.containerStatuses?.[0];
    expect(c?.state).toEqual({ waiting: { reason: "ContainerCreating" } });
    expect(c?.lastState?.terminated).toMatchObject({ reason: "ContainerStatusUnknown", exitCode: 137 });
    expect(c?.restartCount).toBe(1);
    expect(s.phase).toBe("Running");
  });

  it("unknown runtime state after running → terminated ContainerStatusUnknown", () => {
    const previous = generatePodStatus(pod(), runtime([sandbox()], [ctr(app, "running")]), ctx);
    const s = generatePodStatus(pod(), runtime([sandbox()], [ctr(app, "unknown")]), { ...ctx, previous });
    expect(s.containerStatuses?.[0]?.state?.terminated).toMatchObject({
      reason: "ContainerStatusUnknown",
      exitCode: 137,
    });
  });

  it("keeps a terminal phase, its reason, the start time and the old pod IPs", () => {
    const p = pod({ restartPolicy: "Never" });
    const previous: PodStatus = {
      phase: "Failed",
      reason: "DeadlineExceeded",
      message: "too slow",
      startTime: "2023-01-01T00:00:00Z",
      podIPs: [{ ip: "10.0.0.9" }],
    };
    const s = generatePodStatus(p, runtime([sandbox({ state: "notready" })], [ctr(app, "running")], []), {
      ...ctx,
      previous,
    });
    expect(s.phase).toBe("Failed");
    expect(s.reason).toBe("DeadlineExceeded");
    expect(s.startTime).toBe("2023-01-01T00:00:00Z");
    expect(s.podIP).toBe("10.0.0.9");
  });

  it("host-network pods report the node IPs as pod IPs; custom runtime name", () => {
    const s = generatePodStatus(
      pod({ hostNetwork: true }),
      runtime([sandbox({ hostNetwork: true, ip: "" })], [ctr(app, "running")], []),
      {
        ...ctx,
        nodeIPs: ["192.168.1.10", "fd00::10"],
        runtimeName: "cri-o",
      },
    );
    expect(s.podIPs).toEqual([{ ip: "192.168.1.10" }, { ip: "fd00::10" }]);
    expect(s.containerStatuses?.[0]?.containerID).toBe("cri-o://app-0");
  });

  it("succeeded pods: ContainersReady and Ready False with PodCompleted, Initialized True", () => {
    const p = pod({ restartPolicy: "OnFailure", initContainers: [init1] });
    const s = generatePodStatus(p, runtime([sandbox()], [ctr(init1, "exited"), ctr(app, "exited")]), ctx);
    expect(s.phase).toBe("Succeeded");
    expect(cond(s, "ContainersReady")).toMatchObject({ status: "False", reason: "PodCompleted" });
    expect(cond(s, "Ready")).toMatchObject({ status: "False", reason: "PodCompleted" });
    expect(cond(s, "Initialized")).toMatchObject({ status: "True", reason: "PodCompleted" });
  });
});

describe("mergeStatus", () => {
  const p = pod({ restartPolicy: "Never" });
  const t1 = { ...ctx, now: T0 };
  it("keeps transition times of unchanged conditions and the start time", () => {
    const a = generatePodStatus(p, runtime([sandbox()], [ctr(app, "running")]), t1);
    const b = generatePodStatus(p, runtime([sandbox()], [ctr(app, "running")]), {
      ...ctx,
      now: T0 + 30_000,
      previous: a,
    });
    const m = mergeStatus(p, a, b);
    expect(cond(m, "Ready")?.lastTransitionTime).toBe(cond(a, "Ready")?.lastTransitionTime);
    expect(m.startTime).toBe(a.startTime);
    const c = generatePodStatus(p, runtime([sandbox()], [ctr(app, "exited", { exitCode: 0 })]), {
      ...ctx,
      now: T0 + 30_000,
      previous: m,
    });
    const m2 = mergeStatus(p, m, c);
    expect(cond(m2, "Ready")?.status).toBe("False");
    expect(cond(m2, "Ready")?.lastTransitionTime).toBe("2023-11-14T22:13:50Z");
  });

  it("refuses a terminated → running transition unless the policy restarts", () => {
    const done = generatePodStatus(p, runtime([sandbox()], [ctr(app, "exited", { exitCode: 0 })]), t1);
    const again = generatePodStatus(
      pod({ restartPolicy: "Always" }),
      runtime([sandbox()], [ctr(app, "running", { restartCount: 1 })]),
      t1,
    );
    const r = mergeStatusChecked(p, done, again);
    expect(r.rejected).toBe("terminated container app attempted illegal transition to non-terminated state");
    expect(r.status).toBe(done);
    // OnFailure may leave a failed termination.
    const onFailure = pod({ restartPolicy: "OnFailure" });
    const failed = generatePodStatus(
      onFailure,
      runtime([sandbox()], [ctr(app, "exited", { exitCode: 1 })]),
      t1,
    );
    expect(mergeStatusChecked(onFailure, failed, again).rejected).toBeUndefined();
    // Always may leave any termination.
    expect(mergeStatusChecked(pod(), done, again).rejected).toBeUndefined();
  });

  it("never leaves a terminal phase", () => {
    const old: PodStatus = { phase: "Succeeded", reason: "Done" };
    const next: PodStatus = { phase: "Running" };
    expect(mergeStatus(pod(), old, next)).toMatchObject({ phase: "Succeeded", reason: "Done" });
  });
});
