import type { Pod } from "@worknode/core";
import { describe, expect, it } from "vitest";
import { newCrashLoopBackoff } from "../src/crash-loop.js";
import { computePodActions, type PodActions, podSandboxChanged } from "../src/pod-actions.js";
import type { ContainerRuntimeStatus, RuntimePodStatus } from "../src/runtime-status.js";
import { container, ctr, pod, runtime, sandbox, T0 } from "./helpers.js";

const app = container("app");
const side = container("side");
const init1 = container("init1");
const init2 = container("init2");
const now = T0 + 60_000;

function actions(
  p: Pod,
  rs: RuntimePodStatus,
  extra: { liveness?: string[]; startup?: string[] } = {},
): PodActions {
  return computePodActions(p, rs, {
    now,
    backoff: newCrashLoopBackoff(),
    livenessFailed: new Set(extra.liveness ?? []),
    startupFailed: new Set(extra.startup ?? []),
  });
}

interface Case {
  name: string;
  pod: Pod;
  rs: RuntimePodStatus;
  liveness?: string[];
  startup?: string[];
  expect: Partial<{
    killPod: boolean;
    createSandbox: boolean;
    attempt: number;
    sandboxId: string | undefined;
    nextInit: string | undefined;
    start: string[];
    startReasons: string[];
    kill: string[];
    killReasons: string[];
    initFailed: boolean;
  }>;
}

const withInit = (policy?: "Always" | "OnFailure" | "Never") =>
  pod({ initContainers: [init1, init2], containers: [app], ...(policy ? { restartPolicy: policy } : {}) });

const cases: Case[] = [
  {
    name: "new pod: create sandbox attempt 0 and start every app container",
    pod: pod({ containers: [app, side] }),
    rs: runtime([]),
    expect: {
      killPod: true,
      createSandbox: true,
      attempt: 0,
      sandboxId: undefined,
      start: ["app", "side"],
      startReasons: ["SandboxChanged", "SandboxChanged"],
    },
  },
  {
    name: "new pod with init containers: only the first init container starts",
    pod: withInit(),
    rs: runtime([]),
    expect: { createSandbox: true, nextInit: "init1", start: [] },
  },
  {
    name: "sandbox not ready: recreate with attempt + 1",
    pod: pod(),
    rs: runtime([sandbox({ state: "notready", attempt: 2 })], [ctr(app, "exited", { exitCode: 137 })]),
    expect: { killPod: true, createSandbox: true, attempt: 3, sandboxId: "sb1", start: ["app"] },
  },
  {
    name: "two ready sandboxes: recreate from the newest",
    pod: pod(),
    rs: runtime([sandbox({ id: "old", createdAt: T0 - 5000 }), sandbox({ id: "new", attempt: 1 })]),
    expect: { killPod: true, createSandbox: true, attempt: 2, sandboxId: "new" },
  },
  {
    name: "sandbox without IP: recreate",
    pod: pod(),
    rs: runtime([sandbox({ ip: "" })]),
    expect: { createSandbox: true, attempt: 1, sandboxId: "sb1" },
  },
  {
    name: "host-network sandbox needs no IP",
    pod: pod({ hostNetwork: true }),
    rs: runtime([sandbox({ ip: "", hostNetwork: true })], [ctr(app, "running")]),
    expect: { killPod: false, createSandbox: false, start: [], kill: [] },
  },
  {
    name: "network mode changed: recreate, no sandbox to reuse",
    pod: pod({ hostNetwork: true }),
    rs: runtime([sandbox()], [ctr(app, "running")]),
    expect: { killPod: true, createSandbox: true, attempt: 1, sandboxId: undefined },
  },
  {
    name: "Never: a dead sandbox of a pod that ran is not recreated",
    pod: pod({ restartPolicy: "Never" }),
    rs: runtime([sandbox({ state: "notready" })], [ctr(app, "exited", { exitCode: 1 })]),
    expect: { killPod: true, createSandbox: false, start: [] },
  },
  {
    name: "Never: a dead sandbox of a pod that never got containers is retried",
    pod: pod({ restartPolicy: "Never" }),
    rs: runtime([sandbox({ state: "notready" })]),
    expect: { createSandbox: true, attempt: 1, start: ["app"] },
  },
  {
    name: "OnFailure: dead sandbox, succeeded containers skipped; all done means no sandbox",
    pod: pod({ restartPolicy: "OnFailure" }),
    rs: runtime([sandbox({ state: "notready" })], [ctr(app, "exited", { exitCode: 0 })]),
    expect: { killPod: true, createSandbox: false, start: [] },
  },
  {
    name: "OnFailure: dead sandbox restarts only the failed container",
    pod: pod({ restartPolicy: "OnFailure", containers: [app, side] }),
    rs: runtime(
      [sandbox({ state: "notready" })],
      [ctr(app, "exited", { exitCode: 0 }), ctr(side, "exited", { exitCode: 2 })],
    ),
    expect: { createSandbox: true, start: ["side"] },
  },
  {
    name: "steady state: running container with matching hash is kept",
    pod: pod(),
    rs: runtime([sandbox()], [ctr(app, "running")]),
    expect: { killPod: false, createSandbox: false, attempt: 0, sandboxId: "sb1", start: [], kill: [] },
  },
  {
    name: "spec changed: kill and restart, even under Never",
    pod: pod({ restartPolicy: "Never" }),
    rs: runtime([sandbox()], [ctr(app, "running", { containerSpecHash: "deadbeef" })]),
    expect: {
      killPod: false,
      start: ["app"],
      startReasons: ["SpecChanged"],
      kill: ["app-0"],
      killReasons: ["SpecChanged"],
    },
  },
  {
    name: "liveness failure under Always: kill and restart",
    pod: pod(),
    rs: runtime([sandbox()], [ctr(app, "running")]),
    liveness: ["app"],
    expect: { killPod: false, start: ["app"], kill: ["app-0"], killReasons: ["LivenessProbe"] },
  },
  {
    name: "liveness failure under Never: kill only, and with nothing left the pod is killed",
    pod: pod({ restartPolicy: "Never" }),
    rs: runtime([sandbox()], [ctr(app, "running")]),
    liveness: ["app"],
    expect: { killPod: true, start: [], kill: ["app-0"] },
  },
  {
    name: "startup probe failure: kill and restart",
    pod: pod({ containers: [app, side] }),
    rs: runtime([sandbox()], [ctr(app, "running"), ctr(side, "running")]),
    startup: ["side"],
    expect: { killPod: false, start: ["side"], kill: ["side-0"], killReasons: ["StartupProbe"] },
  },
  {
    name: "Always: exited container restarts",
    pod: pod(),
    rs: runtime([sandbox()], [ctr(app, "exited", { exitCode: 0 })]),
    expect: { killPod: false, start: ["app"], startReasons: ["Restart"] },
  },
  {
    name: "OnFailure: exit 0 is not restarted; the pod is done",
    pod: pod({ restartPolicy: "OnFailure" }),
    rs: runtime([sandbox()], [ctr(app, "exited", { exitCode: 0 })]),
    expect: { killPod: true, start: [] },
  },
  {
    name: "OnFailure: exit 1 restarts while another container keeps running",
    pod: pod({ restartPolicy: "OnFailure", containers: [app, side] }),
    rs: runtime([sandbox()], [ctr(app, "exited", { exitCode: 1 }), ctr(side, "running")]),
    expect: { killPod: false, start: ["app"] },
  },
  {
    name: "Never: exit 1 is final; with a sibling running the pod stays",
    pod: pod({ restartPolicy: "Never", containers: [app, side] }),
    rs: runtime([sandbox()], [ctr(app, "exited", { exitCode: 1 }), ctr(side, "running")]),
    expect: { killPod: false, start: [] },
  },
  {
    name: "created but not started: start it",
    pod: pod(),
    rs: runtime([sandbox()], [ctr(app, "created")]),
    expect: { start: ["app"], startReasons: ["NotRunning"], kill: [] },
  },
  {
    name: "unknown state: kill it first, then start",
    pod: pod(),
    rs: runtime([sandbox()], [ctr(app, "unknown")]),
    expect: { start: ["app"], kill: ["app-0"], killReasons: ["Unknown"] },
  },
  {
    name: "missing app container starts",
    pod: pod({ containers: [app, side] }),
    rs: runtime([sandbox()], [ctr(app, "running")]),
    expect: { start: ["side"], startReasons: ["NotStarted"] },
  },
  {
    name: "init: first init container running → wait",
    pod: withInit(),
    rs: runtime([sandbox()], [ctr(init1, "running")]),
    expect: { killPod: false, nextInit: undefined, start: [] },
  },
  {
    name: "init: first done → second starts",
    pod: withInit(),
    rs: runtime([sandbox()], [ctr(init1, "exited", { exitCode: 0 })]),
    expect: { nextInit: "init2", start: [] },
  },
  {
    name: "init: all done → app containers start",
    pod: withInit(),
    rs: runtime([sandbox()], [ctr(init1, "exited"), ctr(init2, "exited")]),
    expect: { nextInit: undefined, start: ["app"], startReasons: ["NotStarted"] },
  },
  {
    name: "init: failed under Always → the same init container restarts",
    pod: withInit(),
    rs: runtime([sandbox()], [ctr(init1, "exited"), ctr(init2, "exited", { exitCode: 3 })]),
    expect: { nextInit: "init2", killPod: false, initFailed: false },
  },
  {
    name: "init: OOM-killed counts as failed even with exit 0",
    pod: withInit(),
    rs: runtime([sandbox()], [ctr(init1, "exited", { exitCode: 0, reason: "OOMKilled" })]),
    expect: { nextInit: "init1" },
  },
  {
    name: "init: failed under Never → the pod fails and is killed",
    pod: withInit("Never"),
    rs: runtime([sandbox()], [ctr(init1, "exited", { exitCode: 1 })]),
    expect: { killPod: true, initFailed: true, nextInit: undefined, start: [] },
  },
  {
    name: "init: unknown state → kill, then restart it",
    pod: withInit(),
    rs: runtime([sandbox()], [ctr(init1, "unknown")]),
    expect: { nextInit: "init1", kill: ["init1-0"], killReasons: ["Unknown"] },
  },
  {
    name: "init: app container already running means init is done (init containers GC'd)",
    pod: withInit(),
    rs: runtime([sandbox()], [ctr(app, "running")]),
    expect: { nextInit: undefined, start: [], killPod: false },
  },
  {
    name: "deleted pod: kill only",
    pod: pod({}, { deletionTimestamp: "2024-01-01T00:00:00Z" }),
    rs: runtime([sandbox()], [ctr(app, "exited", { exitCode: 1 })]),
    expect: { killPod: true, createSandbox: false, start: [] },
  },
];

describe("computePodActions (kubelet's table)", () => {
  it.each(cases)("$name", (c) => {
    const a = actions(c.pod, c.rs, { liveness: c.liveness, startup: c.startup });
    const e = c.expect;
    if (e.killPod !== undefined) expect(a.killPod).toBe(e.killPod);
    if (e.createSandbox !== undefined) expect(a.createSandbox).toBe(e.createSandbox);
    if (e.attempt !== undefined) expect(a.attempt).toBe(e.attempt);
    if ("sandboxId" in e) expect(a.sandboxId).toBe(e.sandboxId);
    if ("nextInit" in e) expect(a.nextInitContainerToStart).toBe(e.nextInit);
    if (e.start) expect(a.containersToStart.map((s) => s.name)).toEqual(e.start);
    if (e.startReasons) expect(a.containersToStart.map((s) => s.reason)).toEqual(e.startReasons);
    if (e.kill) expect(a.containersToKill.map((k) => k.id)).toEqual(e.kill);
    if (e.killReasons) expect(a.containersToKill.map((k) => k.reason)).toEqual(e.killReasons);
    if (e.initFailed !== undefined) expect(a.initFailed).toBe(e.initFailed);
    expect(a.backoff).toEqual([]);
  });

  it("words kill messages as kubelet does", () => {
    const a = actions(pod(), runtime([sandbox()], [ctr(app, "running", { containerSpecHash: "1" })]));
    expect(a.containersToKill[0]?.message).toBe("Container app definition changed, will be restarted");
    const b = actions(pod({ restartPolicy: "Never" }), runtime([sandbox()], [ctr(app, "running")]), {
      liveness: ["app"],
    });
    expect(b.containersToKill[0]?.message).toBe("Container app failed liveness probe");
  });
});

describe("podSandboxChanged", () => {
  it("picks the newest sandbox by creation time whatever the input order", () => {
    const r = podSandboxChanged(
      pod(),
      runtime([
        sandbox({ id: "b", attempt: 1, createdAt: T0 + 10 }),
        sandbox({ id: "a", state: "notready", createdAt: T0 }),
      ]),
    );
    expect(r).toEqual({ changed: false, attempt: 1, sandboxId: "b" });
  });
});

describe("CrashLoopBackOff", () => {
  it("doubles 10 s → 300 s measured from each exit, then resets after 10 min of running", () => {
    const backoff = newCrashLoopBackoff();
    const p = pod();
    const delays: number[] = [];
    let finishedAt = T0 + 1500;
    let restartCount = 0;
    const exited = (): ContainerRuntimeStatus =>
      ctr(app, "exited", { exitCode: 1, restartCount, finishedAt, id: `app-${restartCount}` });

    // First exit: restarts at once.
    let a = computePodActions(p, runtime([sandbox()], [exited()]), { now: finishedAt + 100, backoff });
    expect(a.containersToStart.map((c) => c.name)).toEqual(["app"]);

    for (let i = 0; i < 7; i++) {
      restartCount++;
      finishedAt += 2_000 + (delays.at(-1) ?? 10_000); // it ran ~1 s after its restart, then crashed
      const rs = runtime([sandbox()], [exited()]);
      a = computePodActions(p, rs, { now: finishedAt + 1, backoff });
      expect(a.containersToStart).toEqual([]);
      const entry = a.backoff[0];
      expect(entry?.name).toBe("app");
      expect(entry?.untilMs).toBe(finishedAt + (entry?.delayMs ?? 0));
      delays.push(entry?.delayMs ?? 0);
      // Just before the window closes: still held; at its end: starts.
      expect(computePodActions(p, rs, { now: (entry?.untilMs ?? 0) - 1, backoff }).backoff).toHaveLength(1);
      expect(computePodActions(p, rs, { now: entry?.untilMs ?? 0, backoff }).containersToStart).toHaveLength(
        1,
      );
    }
    expect(delays).toEqual([10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]);

    // Ran for 11 minutes before crashing: no back-off, and the next one starts over at 10 s.
    restartCount++;
    finishedAt += 11 * 60_000;
    a = computePodActions(p, runtime([sandbox()], [exited()]), { now: finishedAt + 1, backoff });
    expect(a.containersToStart.map((c) => c.name)).toEqual(["app"]);
    restartCount++;
    finishedAt += 3_000;
    a = computePodActions(p, runtime([sandbox()], [exited()]), { now: finishedAt + 1, backoff });
    expect(a.backoff[0]?.delayMs).toBe(10_000);
    expect(a.backoff[0]?.message).toBe("back-off 10s restarting failed container=app pod=web_default(uid-1)");
  });

  it("holds back init containers too, and a changed spec starts with a fresh back-off", () => {
    const backoff = newCrashLoopBackoff();
    const p = pod({ initContainers: [init1], containers: [app] });
    const failed = (rc: number, fin: number) =>
      ctr(init1, "exited", { exitCode: 1, restartCount: rc, finishedAt: fin, id: `i-${rc}` });
    expect(
      computePodActions(p, runtime([sandbox()], [failed(0, T0)]), { now: T0 + 1, backoff })
        .nextInitContainerToStart,
    ).toBe("init1");
    const held = computePodActions(p, runtime([sandbox()], [failed(1, T0 + 5000)]), {
      now: T0 + 6000,
      backoff,
    });
    expect(held.nextInitContainerToStart).toBeUndefined();
    expect(held.backoff[0]).toMatchObject({ name: "init1", delayMs: 10_000, untilMs: T0 + 15_000 });
    // Same state, new image: the key includes the spec hash.
    const changed = pod({
      initContainers: [{ ...init1, image: "registry.local/init1:2.0" }],
      containers: [app],
    });
    expect(
      computePodActions(changed, runtime([sandbox()], [failed(1, T0 + 5000)]), { now: T0 + 6000, backoff })
        .nextInitContainerToStart,
    ).toBe("init1");
  });

  it("keeps the back-off of a running container's earlier crash out of a liveness restart when the window has passed", () => {
    const backoff = newCrashLoopBackoff();
    const p = pod();
    const rs = runtime(
      [sandbox()],
      [ctr(app, "exited", { exitCode: 1, restartCount: 0 }), ctr(app, "running", { restartCount: 1 })],
    );
    const a = computePodActions(p, rs, { now: T0 + 120_000, backoff, livenessFailed: new Set(["app"]) });
    expect(a.containersToKill.map((k) => k.id)).toEqual(["app-1"]);
    expect(a.containersToStart.map((c) => c.name)).toEqual(["app"]);
  });
});
