import { FakeClock } from "@worknode/core";
import { describe, expect, it } from "vitest";
import { ContainerProbes, ProbeTracker, probeSettings } from "../src/probe-tracker.js";
import { container } from "./helpers.js";

describe("probeSettings", () => {
  it("applies Kubernetes defaults", () => {
    expect(probeSettings({}, "readiness")).toEqual({
      initialDelaySeconds: 0,
      periodMs: 10_000,
      timeoutMs: 1_000,
      successThreshold: 1,
      failureThreshold: 3,
    });
    expect(
      probeSettings(
        {
          periodSeconds: 2,
          timeoutSeconds: 5,
          successThreshold: 3,
          failureThreshold: 1,
          initialDelaySeconds: 7,
        },
        "readiness",
      ),
    ).toEqual({
      initialDelaySeconds: 7,
      periodMs: 2_000,
      timeoutMs: 5_000,
      successThreshold: 3,
      failureThreshold: 1,
    });
    expect(probeSettings({ successThreshold: 3 }, "liveness").successThreshold).toBe(1);
  });
});

describe("ProbeTracker", () => {
  it("starts from kubelet's initial results", () => {
    const clock = new FakeClock();
    expect(new ProbeTracker("readiness", {}, clock).result).toBe("failure");
    expect(new ProbeTracker("liveness", {}, clock).result).toBe("success");
    expect(new ProbeTracker("startup", {}, clock).result).toBe("unknown");
  });

  it("waits initialDelaySeconds, then probes every period", async () => {
    const clock = new FakeClock();
    const t = new ProbeTracker("readiness", { initialDelaySeconds: 15, periodSeconds: 10 }, clock);
    expect(t.tick(true, true)).toBe("skip"); // no container observed yet
    t.observeContainer("c1", clock.now());
    expect(t.nextTickAt).toBe(clock.now());
    expect(t.tick(true, true)).toBe("skip"); // 0 s < 15 s
    expect(t.nextTickAt).toBe(clock.now() + 10_000);
    await clock.advance(10_000);
    expect(t.tick(true, true)).toBe("skip"); // 10 s
    await clock.advance(4_999);
    expect(t.tick(true, true)).toBe("skip"); // 14.999 s truncates to 14 < 15
    await clock.advance(1_000);
    expect(t.tick(true, true)).toBe("probe"); // 15.999 s truncates to 15
  });

  it("truncates the elapsed time to whole seconds like kubelet", async () => {
    const clock = new FakeClock();
    const t = new ProbeTracker("readiness", { initialDelaySeconds: 2 }, clock);
    t.observeContainer("c1", clock.now());
    await clock.advance(1_999);
    expect(t.tick(true, true)).toBe("skip");
    await clock.advance(1);
    expect(t.tick(true, true)).toBe("probe");
  });

  it("publishes after the thresholds", () => {
    const clock = new FakeClock();
    const t = new ProbeTracker("readiness", { successThreshold: 2, failureThreshold: 3 }, clock);
    t.observeContainer("c1", clock.now());
    expect(t.record("success")).toBe(false);
    expect(t.result).toBe("failure");
    expect(t.record("success")).toBe(true);
    expect(t.result).toBe("success");
    expect(t.record("failure")).toBe(false);
    expect(t.record("error")).toBe(false); // discarded, does not break the run
    expect(t.record("failure")).toBe(false);
    expect(t.record("failure")).toBe(true);
    expect(t.result).toBe("failure");
    // readiness keeps probing after failure
    expect(t.onHold).toBe(false);
  });

  it("a liveness failure holds until the container is replaced", () => {
    const clock = new FakeClock();
    const t = new ProbeTracker("liveness", { failureThreshold: 2 }, clock);
    t.observeContainer("c1", clock.now());
    t.record("failure");
    expect(t.result).toBe("success");
    expect(t.record("failure")).toBe(true);
    expect(t.result).toBe("failure");
    expect(t.onHold).toBe(true);
    expect(t.tick(true, true)).toBe("skip");
    t.observeContainer("c1", clock.now()); // same instance: nothing changes
    expect(t.onHold).toBe(true);
    t.observeContainer("c2", clock.now());
    expect(t.onHold).toBe(false);
    expect(t.result).toBe("success");
    expect(t.tick(true, true)).toBe("probe");
  });

  it("gates liveness and readiness on startup, and startup on not started", () => {
    const clock = new FakeClock();
    const live = new ProbeTracker("liveness", {}, clock);
    const start = new ProbeTracker("startup", {}, clock);
    live.observeContainer("c1", clock.now());
    start.observeContainer("c1", clock.now());
    expect(live.tick(true, false)).toBe("skip");
    expect(start.tick(true, false)).toBe("probe");
    expect(start.tick(true, true)).toBe("skip");
    expect(live.tick(true, true)).toBe("probe");
    expect(live.tick(false, true)).toBe("skip");
  });

  it("stops liveness and startup while the pod terminates", () => {
    const clock = new FakeClock();
    const t = new ProbeTracker("liveness", { failureThreshold: 1 }, clock);
    t.observeContainer("c1", clock.now());
    t.record("failure");
    t.podTerminating();
    expect(t.result).toBe("success");
    expect(t.tick(true, true)).toBe("stop");
    const r = new ProbeTracker("readiness", {}, clock);
    r.observeContainer("c1", clock.now());
    r.podTerminating();
    expect(r.tick(true, true)).toBe("probe");
  });
});

describe("ContainerProbes", () => {
  it("combines startup, liveness and readiness into started / ready / failures", () => {
    const clock = new FakeClock();
    const c = container("app", {
      startupProbe: { failureThreshold: 2 },
      livenessProbe: { failureThreshold: 1 },
      readinessProbe: {},
    });
    const p = new ContainerProbes(c, clock);
    p.observeContainer("c1", clock.now());
    expect(p.state()).toEqual({ started: false, ready: false, livenessFailed: false, startupFailed: false });
    p.trackers.get("startup")?.record("success");
    expect(p.state()).toMatchObject({ started: true, ready: false });
    p.trackers.get("readiness")?.record("success");
    expect(p.state()).toMatchObject({ started: true, ready: true });
    p.trackers.get("liveness")?.record("failure");
    expect(p.state().livenessFailed).toBe(true);
    const none = new ContainerProbes(container("x"), clock);
    expect(none.state()).toEqual({ started: true, ready: true, livenessFailed: false, startupFailed: false });
  });
});
