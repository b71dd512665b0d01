import { describe, expect, it } from "vitest";
import {
  computeNodeConditions,
  formatKubeMicroTime,
  formatKubeTime,
  type NodeHealth,
  type NodeStatus,
  nodeStatusChanged,
  nodeStatusPatch,
  notReadyReasons,
  renewedLease,
  shouldPostNodeStatus,
} from "../../src/index.js";

const T0 = Date.parse("2026-01-01T00:00:00Z");
const healthy: NodeHealth = {
  runtime: {
    ok: true,
    conditions: [
      { type: "RuntimeReady", status: true, reason: "", message: "" },
      { type: "NetworkReady", status: true, reason: "", message: "" },
    ],
  },
  memoryPressure: false,
  diskPressure: false,
  pidPressure: false,
};
const byType = (cs: ReturnType<typeof computeNodeConditions>, t: string) => cs.find((c) => c.type === t);

describe("notReadyReasons", () => {
  it("is empty for a healthy node", () => {
    expect(notReadyReasons(healthy)).toEqual([]);
  });

  it("reports runtime, PLEG and network problems in kubelet's words", () => {
    expect(notReadyReasons({ ...healthy, runtime: undefined })).toEqual([
      "container runtime status check may not have completed yet",
    ]);
    expect(notReadyReasons({ ...healthy, runtime: { ok: false, error: "connection refused" } })).toEqual([
      "container runtime is down: connection refused",
    ]);
    expect(
      notReadyReasons({
        ...healthy,
        runtime: {
          ok: true,
          conditions: [
            { type: "RuntimeReady", status: true, reason: "", message: "" },
            {
              type: "NetworkReady",
              status: false,
              reason: "NetworkPluginNotReady",
              message: "Network plugin returns error: cni plugin not initialized",
            },
          ],
        },
        plegError: "PLEG is not healthy: pleg was last seen active 3m1s ago; threshold is 3m0s",
      }),
    ).toEqual([
      "PLEG is not healthy: pleg was last seen active 3m1s ago; threshold is 3m0s",
      "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
    ]);
  });
});

describe("computeNodeConditions", () => {
  it("reports Ready and no pressure, in kubelet's order, with both times now", () => {
    const cs = computeNodeConditions(undefined, healthy, T0);
    expect(cs.map((c) => c.type)).toEqual(["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]);
    expect(byType(cs, "Ready")).toEqual({
      type: "Ready",
      status: "True",
      reason: "KubeletReady",
      message: "kubelet is posting ready status",
      lastHeartbeatTime: "2026-01-01T00:00:00Z",
      lastTransitionTime: "2026-01-01T00:00:00Z",
    });
    expect(byType(cs, "MemoryPressure")).toMatchObject({
      status: "False",
      reason: "KubeletHasSufficientMemory",
    });
    expect(byType(cs, "DiskPressure")).toMatchObject({ status: "False", reason: "KubeletHasNoDiskPressure" });
    expect(byType(cs, "PIDPressure")).toMatchObject({ status: "False", reason: "KubeletHasSufficientPID" });
  });

  it("moves the heartbeat every time but the transition only when the status changes", () => {
    const first = computeNodeConditions(undefined, healthy, T0);
    const second = computeNodeConditions(first, healthy, T0 + 10_000);
    expect(byType(second, "Ready")?.lastHeartbeatTime).toBe("2026-01-01T00:00:10Z");
    expect(byType(second, "Ready")?.lastTransitionTime).toBe("2026-01-01T00:00:00Z");

    const down = computeNodeConditions(
      second,
      { ...healthy, runtime: { ok: false, error: "gone" } },
      T0 + 20_000,
    );
    expect(byType(down, "Ready")).toMatchObject({
      status: "False",
      reason: "KubeletNotReady",
      message: "container runtime is down: gone",
      lastTransitionTime: "2026-01-01T00:00:20Z",
    });
    // a new message with the same status is no transition
    const stillDown = computeNodeConditions(
      down,
      { ...healthy, runtime: undefined, plegError: "PLEG is not healthy: x" },
      T0 + 30_000,
    );
    expect(byType(stillDown, "Ready")?.lastTransitionTime).toBe("2026-01-01T00:00:20Z");
    expect(byType(stillDown, "Ready")?.message).toBe(
      "[container runtime status check may not have completed yet, PLEG is not healthy: x]",
    );
    expect(byType(stillDown, "MemoryPressure")?.lastTransitionTime).toBe("2026-01-01T00:00:00Z");
  });

  it("transitions from the node controller's Unknown and keeps conditions others own", () => {
    const previous = [
      {
        type: "Ready",
        status: "Unknown",
        reason: "NodeStatusUnknown",
        lastTransitionTime: "2025-12-31T23:00:00Z",
      },
      {
        type: "NetworkUnavailable",
        status: "False",
        reason: "RouteCreated",
        lastTransitionTime: "2025-12-31T22:00:00Z",
      },
    ];
    const cs = computeNodeConditions(previous, healthy, T0);
    expect(byType(cs, "Ready")).toMatchObject({ status: "True", lastTransitionTime: "2026-01-01T00:00:00Z" });
    expect(byType(cs, "NetworkUnavailable")).toEqual(previous[1]);
  });

  it("reports pressure from the signals", () => {
    const cs = computeNodeConditions(
      undefined,
      { ...healthy, memoryPressure: true, diskPressure: true, pidPressure: true },
      T0,
    );
    expect(byType(cs, "MemoryPressure")).toMatchObject({
      status: "True",
      reason: "KubeletHasInsufficientMemory",
    });
    expect(byType(cs, "DiskPressure")).toMatchObject({ status: "True", reason: "KubeletHasDiskPressure" });
    expect(byType(cs, "PIDPressure")).toMatchObject({ status: "True", reason: "KubeletHasInsufficientPID" });
    expect(byType(cs, "Ready")?.status).toBe("True");
  });
});

describe("shouldPostNodeStatus", () => {
  const base: NodeStatus = { capacity: { cpu: "2" }, addresses: [{ type: "Hostname", address: "n" }] };
  const at = (ms: number, health = healthy, prev?: NodeStatus): NodeStatus => ({
    ...base,
    conditions: computeNodeConditions(prev?.conditions, health, ms),
  });
  const report = 300_000;

  it("posts when nothing was posted yet", () => {
    expect(
      shouldPostNodeStatus({
        lastPosted: undefined,
        desired: at(T0),
        lastPostMs: undefined,
        nowMs: T0,
        reportFrequencyMs: report,
      }),
    ).toBe("changed");
  });

  it("does not post a status that only has newer heartbeats, until the report frequency passed", () => {
    const posted = at(T0);
    const later = at(T0 + 10_000, healthy, posted);
    expect(nodeStatusChanged(posted, later)).toBe(false);
    expect(
      shouldPostNodeStatus({
        lastPosted: posted,
        desired: later,
        lastPostMs: T0,
        nowMs: T0 + 10_000,
        reportFrequencyMs: report,
      }),
    ).toBe("unchanged");
    const due = at(T0 + report, healthy, posted);
    expect(
      shouldPostNodeStatus({
        lastPosted: posted,
        desired: due,
        lastPostMs: T0,
        nowMs: T0 + report,
        reportFrequencyMs: report,
      }),
    ).toBe("report-due");
    expect(
      shouldPostNodeStatus({
        lastPosted: posted,
        desired: due,
        lastPostMs: undefined,
        nowMs: T0,
        reportFrequencyMs: report,
      }),
    ).toBe("report-due");
  });

  it("posts at once when a condition, the capacity or an address changed", () => {
    const posted = at(T0);
    const notReady = at(T0 + 10_000, { ...healthy, runtime: undefined }, posted);
    expect(
      shouldPostNodeStatus({
        lastPosted: posted,
        desired: notReady,
        lastPostMs: T0,
        nowMs: T0 + 10_000,
        reportFrequencyMs: report,
      }),
    ).toBe("changed");
    const bigger = { ...at(T0 + 10_000, healthy, posted), capacity: { cpu: "4" } };
    expect(nodeStatusChanged(posted, bigger)).toBe(true);
    const moved = { ...at(T0 + 10_000, healthy, posted), addresses: [{ type: "Hostname", address: "m" }] };
    expect(nodeStatusChanged(posted, moved)).toBe(true);
  });

  it("ignores condition order and key order", () => {
    const posted = at(T0);
    const reordered: NodeStatus = {
      conditions: [...(posted.conditions ?? [])].reverse(),
      addresses: base.addresses,
      capacity: base.capacity,
    };
    expect(nodeStatusChanged(posted, reordered)).toBe(false);
  });
});

describe("wire helpers", () => {
  it("formats metav1.Time and MicroTime", () => {
    expect(formatKubeTime(T0 + 1_234)).toBe("2026-01-01T00:00:01Z");
    expect(formatKubeMicroTime(T0 + 1_234)).toBe("2026-01-01T00:00:01.234000Z");
  });

  it("patches status with conditions merged by type and the addresses replaced", () => {
    const patch = nodeStatusPatch({
      addresses: [{ type: "InternalIP", address: "10.0.0.1" }],
      capacity: { cpu: "1" },
    });
    expect(patch).toEqual({
      status: {
        addresses: [{ $patch: "replace" }, { type: "InternalIP", address: "10.0.0.1" }],
        capacity: { cpu: "1" },
      },
    });
  });

  it("renews a lease: holder, duration, renew time and the Node owner, keeping the resourceVersion", () => {
    const lease = renewedLease(
      {
        metadata: { name: "n", namespace: "kube-node-lease", resourceVersion: "7" },
        spec: { holderIdentity: "n" },
      },
      "n",
      40,
      T0,
      { name: "n", uid: "u-1" },
    );
    expect(lease).toEqual({
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: {
        name: "n",
        namespace: "kube-node-lease",
        resourceVersion: "7",
        ownerReferences: [{ apiVersion: "v1", kind: "Node", name: "n", uid: "u-1" }],
      },
      spec: { holderIdentity: "n", leaseDurationSeconds: 40, renewTime: "2026-01-01T00:00:00.000000Z" },
    });
    const again = renewedLease(lease, "n", 40, T0 + 10_000, { name: "n", uid: "u-1" });
    expect(again.metadata?.ownerReferences).toHaveLength(1);
    expect(renewedLease(undefined, "n", 40, T0, undefined).metadata?.ownerReferences).toBeUndefined();
  });
});
