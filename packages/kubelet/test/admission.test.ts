import { describe, expect, it } from "vitest";
import { admitPod, rejectedPodStatus } from "../src/admission.js";
import { container, pod } from "./helpers.js";

const node = {
  allocatable: { cpuMilli: 2000, memoryBytes: 4 * 1024 ** 3 },
  name: "node-1",
  labels: { zone: "a", disk: "ssd" },
};
const req = (cpu: string, memory: string) =>
  pod({ containers: [container("a", { resources: { requests: { cpu, memory } } })] });

describe("admitPod", () => {
  it("admits within limits, counting app containers' sum", () => {
    expect(admitPod(req("1", "1Gi"), [req("500m", "1Gi")], node)).toEqual({ admit: true });
  });

  it("rejects the 111th pod with OutOfpods (default maxPods 110)", () => {
    const running = Array.from({ length: 110 }, () => pod());
    expect(admitPod(pod(), running, node)).toEqual({
      admit: false,
      reason: "OutOfpods",
      message: "Node didn't have enough resource: pods, requested: 1, used: 110, capacity: 110",
    });
    expect(admitPod(pod(), running.slice(0, 9), { ...node, maxPods: 10 })).toEqual({ admit: true });
    expect(admitPod(pod(), running.slice(0, 10), { ...node, maxPods: 10 })).toMatchObject({
      reason: "OutOfpods",
    });
  });

  it("rejects with OutOfcpu / OutOfmemory and kubelet's message", () => {
    expect(admitPod(req("1500m", "1Gi"), [req("1", "1Gi")], node)).toEqual({
      admit: false,
      reason: "OutOfcpu",
      message: "Node didn't have enough resource: cpu, requested: 1500, used: 1000, capacity: 2000",
    });
    expect(admitPod(req("100m", "3Gi"), [req("1", "2Gi")], node)).toMatchObject({
      reason: "OutOfmemory",
      message: `Node didn't have enough resource: memory, requested: ${3 * 1024 ** 3}, used: ${2 * 1024 ** 3}, capacity: ${4 * 1024 ** 3}`,
    });
  });

  it("counts init containers as max(largest init, sum of apps)", () => {
    const p = pod({
      initContainers: [container("i", { resources: { requests: { cpu: "1800m" } } })],
      containers: [container("a", { resources: { requests: { cpu: "100m" } } })],
    });
    expect(admitPod(p, [], node)).toEqual({ admit: true });
    expect(admitPod(p, [req("300m", "0")], node)).toMatchObject({
      reason: "OutOfcpu",
      message: expect.stringContaining("requested: 1800"),
    });
  });

  it("a pod without requests only needs a pod slot", () => {
    expect(admitPod(pod(), [req("2", "4Gi")], node)).toEqual({ admit: true });
  });

  it("checks node selector, affinity, node name and host ports", () => {
    expect(admitPod(pod({ nodeSelector: { zone: "b" } }), [], node)).toEqual({
      admit: false,
      reason: "NodeAffinity",
      message: "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector",
    });
    const aff = (op: string, values?: string[]) =>
      pod({
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [{ matchExpressions: [{ key: "disk", operator: op, values }] }],
            },
          },
        },
      });
    expect(admitPod(aff("In", ["ssd"]), [], node).admit).toBe(true);
    expect(admitPod(aff("NotIn", ["ssd"]), [], node).admit).toBe(false);
    expect(admitPod(aff("Exists"), [], node).admit).toBe(true);
    expect(admitPod(aff("DoesNotExist"), [], node).admit).toBe(false);
    expect(admitPod(pod({ nodeName: "other" }), [], node)).toMatchObject({ reason: "NodeName" });
    const hp = (port: number, hostIP?: string, protocol = "TCP") =>
      pod({
        containers: [
          container("a", {
            ports: [{ containerPort: 80, hostPort: port, protocol, ...(hostIP ? { hostIP } : {}) }],
          }),
        ],
      });
    expect(admitPod(hp(8080), [hp(8080)], node)).toMatchObject({ reason: "NodePorts" });
    expect(admitPod(hp(8080, "127.0.0.1"), [hp(8080, "127.0.0.2")], node).admit).toBe(true);
    expect(admitPod(hp(8080, "127.0.0.1"), [hp(8080)], node)).toMatchObject({ reason: "NodePorts" });
    expect(admitPod(hp(8080, undefined, "UDP"), [hp(8080)], node).admit).toBe(true);
  });

  it("a rejected pod fails with kubelet's status", () => {
    const r = admitPod(req("3", "1Gi"), [], node);
    if (r.admit) throw new Error("expected a rejection");
    expect(rejectedPodStatus(req("3", "1Gi"), r)).toEqual({
      phase: "Failed",
      reason: "OutOfcpu",
      message:
        "Pod was rejected: Node didn't have enough resource: cpu, requested: 3000, used: 0, capacity: 2000",
      qosClass: "Burstable",
    });
  });
});
