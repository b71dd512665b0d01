// Native sidecar containers (KEP-753): init containers with `restartPolicy: Always`, in the
// pure decision layer (pod actions, status, conditions, merge, termination order) and in
// killPodRuntime's stop order.
import type { Pod } from "@worknode/core";
import type { CriClient } from "@worknode/cri";
import { describe, expect, it } from "vitest";
import { newCrashLoopBackoff } from "../src/crash-loop.js";
import { computePodActions, type PodActions, type PodActionsContext } from "../src/pod-actions.js";
import type { PodStatus } from "../src/pod-spec.js";
import { generatePodStatus, type PodStatusContext } from "../src/pod-status.js";
import { ContainerKiller } from "../src/runtime/container-killer.js";
import { killPodRuntime } from "../src/runtime/pod-killer.js";
import type { RuntimePodStatus } from "../src/runtime-status.js";
import { mergeStatusChecked } from "../src/status-merge.js";
import { terminationPrerequisites } from "../src/termination-order.js";
import { container, ctr, pod, runtime, sandbox, T0 } from "./helpers.js";

const side = container("side", { restartPolicy: "Always" });
const side2 = container("side2", { restartPolicy: "Always" });
const init = container("init");
const app = container("app");
const now = T0 + 60_000;

function sidecarPod(
  policy: "Always" | "OnFailure" | "Never" = "Always",
  initContainers = [side, init],
  extra: Partial<NonNullable<Pod["spec"]>> = {},
): Pod {
  return pod({ initContainers, containers: [app], restartPolicy: policy, ...extra });
}

function actions(p: Pod, rs: RuntimePodStatus, extra: Partial<PodActionsContext> = {}): PodActions {
  return computePodActions(p, rs, { now, backoff: newCrashLoopBackoff(), ...extra });
}

const starts = (a: PodActions) => ({
  init: a.initContainersToStart.map((c) => c.name),
  app: a.containersToStart.map((c) => c.name),
});

describe("sidecars: init order (rule 1)", () => {
  it("a new pod starts the sidecar first", () => {
    const a = actions(sidecarPod(), runtime([]));
    expect(a.createSandbox).toBe(true);
    expect(starts(a)).toEqual({ init: ["side"], app: [] });
    expect(a.nextInitContainerToStart).toBe("side");
  });

  it("a running sidecar lets the next init container start; apps still wait", () => {
    const a = actions(sidecarPod(), runtime([sandbox()], [ctr(side, "running")]));
    expect(a.killPod).toBe(false);
    expect(starts(a)).toEqual({ init: ["init"], app: [] });
  });

  it("a created (not started) sidecar is started, nothing after it", () => {
    const a = actions(sidecarPod(), runtime([sandbox()], [ctr(side, "created")]));
    expect(starts(a)).toEqual({ init: ["side"], app: [] });
  });

  it("with a startup probe, the next init container waits until the probe succeeded", () => {
    const probed = container("side", { restartPolicy: "Always", startupProbe: { tcpSocket: { port: 1 } } });
    const p = sidecarPod("Always", [probed, init]);
    const rs = runtime([sandbox()], [ctr(probed, "running")]);
    expect(starts(actions(p, rs))).toEqual({ init: [], app: [] });
    expect(starts(actions(p, rs, { startupSucceeded: new Set(["side"]) }))).toEqual({
      init: ["init"],
      app: [],
    });
    const failed = actions(p, rs, { startupFailed: new Set(["side"]) });
    expect(failed.containersToKill.map((k) => [k.name, k.reason])).toEqual([["side", "StartupProbe"]]);
    expect(failed.containersToKill[0]?.message).toBe("Init container side failed startup probe");
    expect(starts(failed)).toEqual({ init: ["side"], app: [] });
  });

  it("while the regular init container runs, nothing else starts", () => {
    const a = actions(sidecarPod(), runtime([sandbox()], [ctr(side, "running"), ctr(init, "running")]));
    expect(starts(a)).toEqual({ init: [], app: [] });
    expect(a.killPod).toBe(false);
  });

  it("a regular init container done → app containers start, the sidecar keeps running", () => {
    const a = actions(
      sidecarPod(),
      runtime([sandbox()], [ctr(side, "running"), ctr(init, "exited", { exitCode: 0 })]),
    );
    expect(starts(a)).toEqual({ init: [], app: ["app"] });
    expect(a.containersToKill).toEqual([]);
  });

  it("a sidecar declared last: apps start once it runs", () => {
    const p = sidecarPod("Always", [init, side]);
    expect(
      starts(actions(p, runtime([sandbox()], [ctr(init, "exited", { exitCode: 0 }), ctr(side, "running")]))),
    ).toEqual({ init: [], app: ["app"] });
    expect(starts(actions(p, runtime([sandbox()], [ctr(init, "exited", { exitCode: 0 })])))).toEqual({
      init: ["side"],
      app: [],
    });
  });

  it("a failed regular init container still fails the pod under Never", () => {
    const a = actions(
      sidecarPod("Never"),
      runtime([sandbox()], [ctr(side, "running"), ctr(init, "exited", { exitCode: 1 })]),
    );
    expect(a.killPod).toBe(true);
    expect(a.initFailed).toBe(true);
    expect(starts(a)).toEqual({ init: [], app: [] });
  });
});

describe("sidecars: restarts (rule 2)", () => {
  for (const policy of ["Always", "OnFailure", "Never"] as const) {
    it(`an exited sidecar restarts beside running apps under ${policy}, exit 0 included`, () => {
      const a = actions(
        sidecarPod(policy),
        runtime(
          [sandbox()],
          [ctr(side, "exited", { exitCode: 0 }), ctr(init, "exited", { exitCode: 0 }), ctr(app, "running")],
        ),
      );
      expect(a.killPod).toBe(false);
      expect(starts(a)).toEqual({ init: ["side"], app: [] });
      expect(a.initContainersToStart[0]?.reason).toBe("Restart");
    });
  }

  it("a sidecar exiting during initialization restarts, under Never too", () => {
    const a = actions(sidecarPod("Never"), runtime([sandbox()], [ctr(side, "exited", { exitCode: 2 })]));
    expect(a.killPod).toBe(false);
    expect(starts(a)).toEqual({ init: ["side"], app: [] });
  });

  it("restarts go through CrashLoopBackOff", () => {
    const backoff = newCrashLoopBackoff();
    const p = sidecarPod("Never");
    const exited = (rc: number, fin: number) =>
      ctr(side, "exited", { exitCode: 1, restartCount: rc, finishedAt: fin, id: `s-${rc}` });
    const others = [ctr(init, "exited", { exitCode: 0 }), ctr(app, "running")];
    const first = computePodActions(p, runtime([sandbox()], [exited(0, T0), ...others]), {
      now: T0 + 1,
      backoff,
    });
    expect(first.initContainersToStart.map((c) => c.name)).toEqual(["side"]);
    const held = computePodActions(p, runtime([sandbox()], [exited(1, T0 + 5000), ...others]), {
      now: T0 + 6000,
      backoff,
    });
    expect(held.initContainersToStart).toEqual([]);
    expect(held.backoff[0]).toMatchObject({ name: "side", delayMs: 10_000, untilMs: T0 + 15_000 });
    expect(held.killPod).toBe(false);
  });

  it("a sidecar garbage-collected after initialization is started again; regular ones are not", () => {
    const a = actions(sidecarPod(), runtime([sandbox()], [ctr(app, "running")]));
    expect(starts(a)).toEqual({ init: ["side"], app: [] });
  });

  it("liveness failure and spec change kill and restart a running sidecar", () => {
    const rs = (s = ctr(side, "running")) =>
      runtime([sandbox()], [s, ctr(init, "exited", { exitCode: 0 }), ctr(app, "running")]);
    const live = actions(sidecarPod("Never"), rs(), { livenessFailed: new Set(["side"]) });
    expect(live.containersToKill.map((k) => [k.id, k.reason])).toEqual([["side-0", "LivenessProbe"]]);
    expect(starts(live)).toEqual({ init: ["side"], app: [] });
    const changed = actions(sidecarPod(), rs(ctr(side, "running", { containerSpecHash: "0" })));
    expect(changed.containersToKill.map((k) => [k.id, k.reason])).toEqual([["side-0", "SpecChanged"]]);
    expect(changed.containersToKill[0]?.message).toBe("Init container side definition changed");
    expect(starts(changed)).toEqual({ init: ["side"], app: [] });
  });

  it("an unknown-state sidecar is killed and started again", () => {
    const a = actions(
      sidecarPod("Never"),
      runtime([sandbox()], [ctr(side, "unknown"), ctr(init, "exited", { exitCode: 0 }), ctr(app, "running")]),
    );
    expect(a.containersToKill.map((k) => [k.id, k.reason])).toEqual([["side-0", "Unknown"]]);
    expect(starts(a)).toEqual({ init: ["side"], app: [] });
  });
});

describe("sidecars: a finished pod (rule 3)", () => {
  const done = (exitCode: number, sideState: "running" | "exited" = "running") =>
    runtime(
      [sandbox()],
      [
        ctr(side, sideState, sideState === "exited" ? { exitCode: 137 } : {}),
        ctr(init, "exited", { exitCode: 0 }),
        ctr(app, "exited", { exitCode }),
      ],
    );

  it("Never: apps done → the pod is killed (sidecars stopped), the sidecar is not restarted", () => {
    const a = actions(sidecarPod("Never"), done(0));
    expect(a.killPod).toBe(true);
    expect(starts(a)).toEqual({ init: [], app: [] });
    const b = actions(sidecarPod("Never"), done(0, "exited"));
    expect(b.killPod).toBe(true);
    expect(starts(b)).toEqual({ init: [], app: [] });
  });

  it("OnFailure: apps succeeded → killed; a failed app restarts and so does an exited sidecar", () => {
    expect(actions(sidecarPod("OnFailure"), done(0)).killPod).toBe(true);
    const a = actions(sidecarPod("OnFailure"), done(1, "exited"));
    expect(a.killPod).toBe(false);
    expect(starts(a)).toEqual({ init: ["side"], app: ["app"] });
  });

  it("OnFailure: after the kill the stopped sandbox is not recreated (apps were created)", () => {
    const rs = runtime(
      [sandbox({ state: "notready" })],
      [
        ctr(side, "exited", { exitCode: 143 }),
        ctr(init, "exited", { exitCode: 0 }),
        ctr(app, "exited", { exitCode: 0 }),
      ],
    );
    const a = actions(sidecarPod("OnFailure"), rs);
    expect(a.createSandbox).toBe(false);
    expect(starts(a)).toEqual({ init: [], app: [] });
  });

  const ctx: PodStatusContext = { now, nodeIPs: ["192.168.1.10"] };
  it("phase comes from the app containers only", () => {
    const stopped = (appExit: number, sideExit: number) =>
      runtime(
        [sandbox({ state: "notready" })],
        [
          ctr(side, "exited", { exitCode: sideExit }),
          ctr(init, "exited", { exitCode: 0 }),
          ctr(app, "exited", { exitCode: appExit }),
        ],
      );
    const t = { ...ctx, podIsTerminal: true };
    expect(generatePodStatus(sidecarPod("Never"), stopped(0, 137), t).phase).toBe("Succeeded");
    expect(generatePodStatus(sidecarPod("OnFailure"), stopped(0, 1), ctx).phase).toBe("Succeeded");
    expect(generatePodStatus(sidecarPod("Never"), stopped(1, 0), t).phase).toBe("Failed");
    // While the sidecar still runs after the apps finished, the pod is Running.
    const s = generatePodStatus(sidecarPod("Never"), done(0), ctx);
    expect(s.phase).toBe("Running");
  });
});

describe("sidecars: termination order (rule 4)", () => {
  it("sidecars wait for every app container and every later sidecar", () => {
    const p = pod({
      initContainers: [side, init, side2],
      containers: [app, container("app2")],
    });
    const all = new Set(["side", "side2", "app", "app2"]);
    expect(terminationPrerequisites(p, all)).toEqual(
      new Map([
        ["side2", ["app", "app2"]],
        ["side", ["app", "app2", "side2"]],
      ]),
    );
    expect(terminationPrerequisites(p, new Set(["side", "app"]))).toEqual(new Map([["side", ["app"]]]));
    expect(terminationPrerequisites(pod(), new Set(["app"]))).toEqual(new Map());
  });

  it("killPodRuntime stops apps first, then sidecars in reverse declaration order", async () => {
    const order: string[] = [];
    let releaseApp: () => void = () => {};
    const appStopping = new Promise<void>((r) => {
      releaseApp = r;
    });
    const client = {
      runtime: {
        stopContainer: async ({ containerId }: { containerId: string }) => {
          order.push(`stop ${containerId}`);
          // The app takes a while to stop: the sidecars must not be stopped meanwhile.
          if (containerId === "app-0") await appStopping;
          order.push(`stopped ${containerId}`);
          return {};
        },
        stopPodSandbox: async () => ({}),
      },
    } as unknown as CriClient;
    const killer = new ContainerKiller({ client });
    const p = pod({
      initContainers: [side, init, side2],
      containers: [app],
      terminationGracePeriodSeconds: 30,
    });
    const rs = runtime(
      [sandbox()],
      [
        ctr(side, "running"),
        ctr(init, "exited", { exitCode: 0 }),
        ctr(side2, "running"),
        ctr(app, "running"),
      ],
    );
    const killing = killPodRuntime(client, killer, rs, { pod: p });
    await new Promise((r) => setTimeout(r, 20));
    expect(order).toEqual(["stop app-0"]);
    releaseApp();
    await killing;
    expect(order).toEqual([
      "stop app-0",
      "stopped app-0",
      "stop side2-0",
      "stopped side2-0",
      "stop side-0",
      "stopped side-0",
    ]);
  });
});

describe("sidecars: status and conditions (rule 5)", () => {
  const ctx: PodStatusContext = { now, nodeIPs: ["192.168.1.10"] };
  const cond = (s: PodStatus, type: string) => s.conditions?.find((c) => c.type === type);

  it("a running sidecar is started and ready in initContainerStatuses; Initialized waits for init", () => {
    const s = generatePodStatus(sidecarPod(), runtime([sandbox()], [ctr(side, "running")]), ctx);
    expect(s.initContainerStatuses?.map((c) => [c.name, c.started, c.ready])).toEqual([
      ["side", true, true],
      ["init", false, false],
    ]);
    expect(s.phase).toBe("Pending");
    expect(cond(s, "Initialized")).toMatchObject({
      status: "False",
      message: "containers with incomplete status: [init]",
    });
  });

  it("Initialized once regular init containers completed and sidecars started", () => {
    const s = generatePodStatus(
      sidecarPod(),
      runtime([sandbox()], [ctr(side, "running"), ctr(init, "exited", { exitCode: 0 })]),
      ctx,
    );
    expect(cond(s, "Initialized")?.status).toBe("True");
    const notStarted = generatePodStatus(
      sidecarPod("Always", [init, side]),
      runtime([sandbox()], [ctr(init, "exited", { exitCode: 0 })]),
      ctx,
    );
    expect(cond(notStarted, "Initialized")).toMatchObject({
      status: "False",
      message: "containers with incomplete status: [side]",
    });
    expect(notStarted.phase).toBe("Pending");
  });

  it("readiness and startup probes gate the sidecar's started / ready and the pod's Ready", () => {
    const probed = container("side", {
      restartPolicy: "Always",
      startupProbe: { tcpSocket: { port: 1 } },
      readinessProbe: { tcpSocket: { port: 1 } },
    });
    const p = sidecarPod("Always", [probed, init]);
    const rs = runtime(
      [sandbox()],
      [ctr(probed, "running"), ctr(init, "exited", { exitCode: 0 }), ctr(app, "running")],
    );
    let s = generatePodStatus(p, rs, ctx);
    expect(s.initContainerStatuses?.[0]).toMatchObject({ started: false, ready: false });
    expect(cond(s, "ContainersReady")).toMatchObject({
      status: "False",
      message: "containers with unready status: [side]",
    });
    expect(cond(s, "Ready")?.status).toBe("False");
    // The app ran, so the pod counts as initialized even while the sidecar is not started.
    expect(cond(s, "Initialized")?.status).toBe("True");
    s = generatePodStatus(p, rs, { ...ctx, probeResults: new Map([["side", { started: true }]]) });
    expect(s.initContainerStatuses?.[0]).toMatchObject({ started: true, ready: false });
    expect(cond(s, "Ready")?.status).toBe("False");
    s = generatePodStatus(p, rs, {
      ...ctx,
      probeResults: new Map([["side", { started: true, ready: true }]]),
    });
    expect(s.initContainerStatuses?.[0]).toMatchObject({ started: true, ready: true });
    expect(cond(s, "ContainersReady")?.status).toBe("True");
    expect(cond(s, "Ready")?.status).toBe("True");
    expect(s.phase).toBe("Running");
  });

  it("an exited sidecar: restartCount, lastState, CrashLoopBackOff waiting, pod not ready", () => {
    const rs = runtime(
      [sandbox()],
      [
        ctr(side, "exited", { exitCode: 1, restartCount: 0 }),
        ctr(side, "exited", { exitCode: 0, restartCount: 1 }),
        ctr(init, "exited", { exitCode: 0 }),
        ctr(app, "running"),
      ],
    );
    const s = generatePodStatus(sidecarPod("Never"), rs, {
      ...ctx,
      waitingReasons: new Map([["side", { reason: "CrashLoopBackOff", message: "back-off 10s" }]]),
    });
    expect(s.initContainerStatuses?.[0]).toMatchObject({
      name: "side",
      restartCount: 1,
      ready: false,
      started: false,
      state: { waiting: { reason: "CrashLoopBackOff" } },
      lastState: { terminated: { exitCode: 0 } },
    });
    expect(s.phase).toBe("Running");
    expect(cond(s, "Ready")).toMatchObject({ status: "False" });
  });

  it("status merge lets a sidecar leave the terminated state under Never", () => {
    const p = sidecarPod("Never");
    const exited = generatePodStatus(
      p,
      runtime(
        [sandbox()],
        [ctr(side, "exited", { exitCode: 1 }), ctr(init, "exited", { exitCode: 0 }), ctr(app, "running")],
      ),
      ctx,
    );
    const back = generatePodStatus(
      p,
      runtime(
        [sandbox()],
        [
          ctr(side, "exited", { exitCode: 1 }),
          ctr(side, "running", { restartCount: 1 }),
          ctr(init, "exited", { exitCode: 0 }),
          ctr(app, "running"),
        ],
      ),
      { ...ctx, previous: exited },
    );
    const m = mergeStatusChecked(p, exited, back);
    expect(m.rejected).toBeUndefined();
    expect(m.status.initContainerStatuses?.[0]?.state?.running).toBeDefined();
    // A regular init container still may not.
    const p2 = pod({ initContainers: [init], containers: [app], restartPolicy: "Never" });
    const a = generatePodStatus(p2, runtime([sandbox()], [ctr(init, "exited", { exitCode: 0 })]), ctx);
    const b = generatePodStatus(p2, runtime([sandbox()], [ctr(init, "running", { restartCount: 1 })]), ctx);
    expect(mergeStatusChecked(p2, a, b).rejected).toContain("init");
  });
});
