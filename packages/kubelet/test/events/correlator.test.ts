import { describe, expect, it } from "vitest";
import {
  AGGREGATED_MESSAGE_PREFIX,
  type CoreEvent,
  EventCorrelator,
  eventName,
} from "../../src/events/correlator.js";
import { podReference } from "../../src/events/event-recorder.js";

const pod = {
  metadata: { name: "web", namespace: "ns", uid: "u1" },
  spec: { initContainers: [{ name: "init" }], containers: [{ name: "app" }] },
};

let seq = 0;
function ev(reason: string, message: string, nowMs: number, container = "app"): CoreEvent {
  const t = new Date(nowMs).toISOString();
  return {
    apiVersion: "v1",
    kind: "Event",
    metadata: { name: eventName("web", nowMs, seq++), namespace: "ns" },
    involvedObject: podReference(pod, container),
    reason,
    message,
    type: "Warning",
    source: { component: "kubelet", host: "node-1" },
    count: 1,
    firstTimestamp: t,
    lastTimestamp: t,
    reportingComponent: "kubelet",
    reportingInstance: "node-1",
  };
}

describe("event references", () => {
  it("points at the pod and its container by field path", () => {
    expect(podReference(pod, "app")).toEqual({
      apiVersion: "v1",
      kind: "Pod",
      namespace: "ns",
      name: "web",
      uid: "u1",
      fieldPath: "spec.containers{app}",
    });
    expect(podReference(pod, "init").fieldPath).toBe("spec.initContainers{init}");
    expect(podReference(pod).fieldPath).toBeUndefined();
  });

  it("names events <object>.<hex nanoseconds>", () => {
    expect(eventName("web", 1000)).toBe(`web.${(1000n * 1_000_000n).toString(16)}`);
    expect(eventName("web", 1000, 1)).not.toBe(eventName("web", 1000));
  });
});

describe("event correlation", () => {
  it("creates the first event and patches repeats with count and lastTimestamp", () => {
    const c = new EventCorrelator();
    const first = c.correlate(ev("BackOff", "Back-off restarting failed container app", 0), 0);
    expect(first.action).toBe("create");
    const second = c.correlate(ev("BackOff", "Back-off restarting failed container app", 5000), 5000);
    expect(second.action).toBe("patch");
    if (second.action !== "patch") throw new Error("unreachable");
    expect(second.event.metadata.name).toBe(first.event.metadata.name);
    expect(second.patch).toEqual({
      count: 2,
      lastTimestamp: new Date(5000).toISOString(),
      message: "Back-off restarting failed container app",
    });
    expect(second.event.firstTimestamp).toBe(new Date(0).toISOString());
    const third = c.correlate(ev("BackOff", "Back-off restarting failed container app", 6000), 6000);
    expect(third.action === "patch" && third.patch.count).toBe(3);
  });

  it("keeps events of other containers, reasons or messages apart", () => {
    const c = new EventCorrelator();
    expect(c.correlate(ev("Started", "Started container app", 0), 0).action).toBe("create");
    expect(c.correlate(ev("Started", "Started container init", 0, "init"), 0).action).toBe("create");
    expect(c.correlate(ev("Created", "Started container app", 0), 0).action).toBe("create");
  });

  it("creates afresh after forget (the patched event was gone)", () => {
    const c = new EventCorrelator();
    const r = c.correlate(ev("Pulled", "m", 0), 0);
    c.forget(r.key);
    expect(c.correlate(ev("Pulled", "m", 1), 1).action).toBe("create");
  });

  it("aggregates similar events with different messages from the 10th on", () => {
    const c = new EventCorrelator();
    const results = Array.from({ length: 12 }, (_, i) =>
      c.correlate(ev("Unhealthy", `probe failed: ${i}`, i), i),
    );
    expect(results.slice(0, 9).every((r) => r.action === "create" && !r.event.message.startsWith("("))).toBe(
      true,
    );
    expect(results[9]?.action).toBe("create");
    expect(results[9]?.event.message).toBe(`${AGGREGATED_MESSAGE_PREFIX}probe failed: 9`);
    expect(results[10]?.action).toBe("patch");
    expect(results[10]?.event.message).toBe(`${AGGREGATED_MESSAGE_PREFIX}probe failed: 10`);
    expect(results[10]?.event.metadata.name).toBe(results[9]?.event.metadata.name);
    // After the 10-minute window the count starts over.
    expect(c.correlate(ev("Unhealthy", "probe failed: late", 700_000), 700_000).event.message).toBe(
      "probe failed: late",
    );
  });

  it("rate limits per object: a burst of 25, then one per 5 minutes", () => {
    const c = new EventCorrelator();
    const actions = Array.from({ length: 30 }, () => c.correlate(ev("BackOff", "same", 1000), 1000).action);
    expect(actions.filter((a) => a !== "skip")).toHaveLength(25);
    expect(actions.slice(25).every((a) => a === "skip")).toBe(true);
    expect(c.correlate(ev("BackOff", "same", 1000 + 299_000), 1000 + 299_000).action).toBe("skip");
    expect(c.correlate(ev("BackOff", "same", 1000 + 301_000), 1000 + 301_000).action).toBe("patch");
    // Another pod has its own bucket.
    const other = {
      ...ev("BackOff", "same", 1000),
      involvedObject: { ...podReference(pod), name: "db", uid: "u2" },
    };
    expect(c.correlate(other, 1000 + 301_000).action).toBe("create");
  });
});
