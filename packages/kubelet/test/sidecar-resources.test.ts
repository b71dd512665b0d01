// Native sidecar containers (KEP-753) in resource accounting: pod requests / limits as
// component-helpers' PodRequests / PodLimits, admission, QoS class and oom_score_adj.
import { describe, expect, it } from "vitest";
import { admitPod } from "../src/admission.js";
import type { Container } from "../src/pod-spec.js";
import { containerOomScoreAdj, podQosClass } from "../src/qos.js";
import { podLimits, podRequests } from "../src/resources.js";
import { container, pod } from "./helpers.js";

const Mi = 1024 ** 2;
const Gi = 1024 ** 3;

const requesting = (name: string, cpu: string, memory: string, sidecar = false): Container =>
  container(name, {
    resources: { requests: { cpu, memory } },
    ...(sidecar ? { restartPolicy: "Always" } : {}),
  });
const limited = (name: string, cpu: string, memory: string, sidecar = false): Container =>
  container(name, {
    resources: { limits: { cpu, memory } },
    ...(sidecar ? { restartPolicy: "Always" } : {}),
  });

describe("podRequests with sidecars", () => {
  it("is max(apps + all sidecars, max of init(i) + sidecars declared before i) plus overhead", () => {
    const p = pod({
      initContainers: [
        requesting("side1", "200m", "100Mi", true),
        requesting("init1", "1", "500Mi"),
        requesting("side2", "300m", "200Mi", true),
        requesting("init2", "600m", "1Gi"),
      ],
      containers: [requesting("a", "500m", "300Mi")],
      overhead: { cpu: "100m", memory: "10Mi" },
    });
    // cpu: apps + sidecars = 500 + 200 + 300 = 1000; init1 = 1000 + side1 200 = 1200 (side2 comes
    // after init1 and is not counted); init2 = 600 + 500 = 1100 → 1200.
    // memory: apps + sidecars = 600Mi; init1 = 600Mi; init2 = 1Gi + 300Mi → 1324Mi.
    expect(podRequests(p)).toEqual({ cpuMilli: 1200 + 100, memoryBytes: 1324 * Mi + 10 * Mi });
  });

  it("adds every sidecar to the app containers' sum when that is the larger term", () => {
    const p = pod({
      initContainers: [requesting("side1", "250m", "64Mi", true), requesting("side2", "250m", "64Mi", true)],
      containers: [requesting("a", "1", "1Gi"), requesting("b", "500m", "512Mi")],
    });
    expect(podRequests(p)).toEqual({ cpuMilli: 2000, memoryBytes: 1.5 * Gi + 128 * Mi });
  });

  it("a sidecar's own term is the sidecars up to it, never more than the running sum", () => {
    const p = pod({
      initContainers: [requesting("side1", "1", "1Gi", true), requesting("side2", "2", "2Gi", true)],
      containers: [container("a")],
    });
    expect(podRequests(p)).toEqual({ cpuMilli: 3000, memoryBytes: 3 * Gi });
  });

  it("sidecar requests default to their limits", () => {
    const p = pod({
      initContainers: [limited("side", "300m", "128Mi", true)],
      containers: [requesting("a", "200m", "64Mi")],
    });
    expect(podRequests(p)).toEqual({ cpuMilli: 500, memoryBytes: 192 * Mi });
  });
});

describe("podLimits with sidecars", () => {
  it("sums apps and sidecars against the init peak including earlier sidecars", () => {
    const p = pod({
      initContainers: [
        limited("side", "500m", "256Mi", true),
        limited("init", "2", "128Mi"),
        limited("late-side", "100m", "64Mi", true),
      ],
      containers: [limited("a", "1", "1Gi")],
      overhead: { cpu: "50m", memory: "8Mi" },
    });
    // cpu: 1000 + 500 + 100 = 1600 vs init = 2000 + 500 = 2500 → 2500.
    // memory: 1Gi + 256Mi + 64Mi vs init = 128Mi + 256Mi → 1344Mi.
    expect(podLimits(p)).toEqual({ cpuMilli: 2500 + 50, memoryBytes: 1344 * Mi + 8 * Mi });
  });

  it("containers without a limit add nothing; overhead only on a declared resource", () => {
    const p = pod({
      initContainers: [
        container("side", { restartPolicy: "Always", resources: { limits: { cpu: "300m" } } }),
      ],
      containers: [requesting("a", "1", "1Gi")],
      overhead: { cpu: "50m", memory: "8Mi" },
    });
    expect(podLimits(p)).toEqual({ cpuMilli: 350, memoryBytes: 0 });
    expect(podLimits(pod({ overhead: { cpu: "50m", memory: "8Mi" } }))).toEqual({
      cpuMilli: 0,
      memoryBytes: 0,
    });
  });
});

describe("admitPod with sidecars", () => {
  const node = { allocatable: { cpuMilli: 2000, memoryBytes: 4 * Gi }, name: "node-1" };
  const cpuPod = (initContainers: Container[], apps: Container[]) =>
    pod({ initContainers, containers: apps });
  const cpu = (name: string, amount: string, sidecar = false) =>
    container(name, {
      resources: { requests: { cpu: amount } },
      ...(sidecar ? { restartPolicy: "Always" } : {}),
    });

  it("admits a pod that fits only when its sidecar is not counted twice", () => {
    // Effective: max(app 1000 + side 800, init 1200 + side 800) = 2000 = allocatable. Counting
    // the sidecar both in the apps' sum and in the init peak would need 3800.
    const p = cpuPod([cpu("side", "800m", true), cpu("init", "1200m")], [cpu("a", "1")]);
    expect(podRequests(p).cpuMilli).toBe(2000);
    expect(admitPod(p, [], node)).toEqual({ admit: true });
    expect(admitPod(p, [cpuPod([], [cpu("b", "1m")])], node)).toEqual({
      admit: false,
      reason: "OutOfcpu",
      message: "Node didn't have enough resource: cpu, requested: 2000, used: 1, capacity: 2000",
    });
  });

  it("rejects a pod whose sidecar's request is added to the apps'", () => {
    // Without sidecars counted it would be max(1500, 800) = 1500 and fit.
    const p = cpuPod([cpu("side", "800m", true)], [cpu("a", "1500m")]);
    expect(admitPod(p, [], node)).toEqual({
      admit: false,
      reason: "OutOfcpu",
      message: "Node didn't have enough resource: cpu, requested: 2300, used: 0, capacity: 2000",
    });
    const mem = pod({
      initContainers: [
        container("side", { restartPolicy: "Always", resources: { requests: { memory: "1Gi" } } }),
      ],
      containers: [container("a", { resources: { requests: { memory: "3500Mi" } } })],
    });
    expect(admitPod(mem, [], node)).toMatchObject({
      reason: "OutOfmemory",
      message: expect.stringContaining(`requested: ${4 * Gi + 428 * Mi}`),
    });
  });

  it("counts the sidecars of running pods in the used amount", () => {
    const running = cpuPod([cpu("side", "600m", true)], [cpu("a", "600m")]);
    expect(admitPod(cpuPod([], [cpu("b", "800m")]), [running], node)).toEqual({ admit: true });
    expect(admitPod(cpuPod([], [cpu("b", "900m")]), [running], node)).toEqual({
      admit: false,
      reason: "OutOfcpu",
      message: "Node didn't have enough resource: cpu, requested: 900, used: 1200, capacity: 2000",
    });
  });
});

describe("QoS and oom_score_adj with sidecars", () => {
  const g = { limits: { cpu: "1", memory: "1Gi" } };

  it("sidecars count like any container for the QoS class", () => {
    const side = (resources?: Container["resources"]) =>
      container("side", { restartPolicy: "Always", ...(resources ? { resources } : {}) });
    const app = container("a", { resources: g });
    expect(podQosClass(pod({ initContainers: [side(g)], containers: [app] }))).toBe("Guaranteed");
    expect(podQosClass(pod({ initContainers: [side()], containers: [app] }))).toBe("Burstable");
    expect(
      podQosClass(
        pod({ initContainers: [side({ requests: { memory: "64Mi" } })], containers: [container("a")] }),
      ),
    ).toBe("Burstable");
    expect(podQosClass(pod({ initContainers: [side()], containers: [container("a")] }))).toBe("BestEffort");
  });

  it("a sidecar's oom_score_adj is at most that of the app with the smallest memory request", () => {
    const cap = 8 * Gi;
    const a = container("a", { resources: { requests: { memory: "2Gi" } } });
    const b = container("b", { resources: { requests: { memory: "1Gi" } } });
    const small = container("side", { restartPolicy: "Always", resources: { requests: { cpu: "10m" } } });
    const big = container("side", { restartPolicy: "Always", resources: { requests: { memory: "4Gi" } } });
    const plainInit = container("init", { resources: { requests: { cpu: "10m" } } });
    const p1 = pod({ initContainers: [small, plainInit], containers: [a] });
    expect(containerOomScoreAdj(p1, a, cap)).toBe(750);
    expect(containerOomScoreAdj(p1, small, cap)).toBe(750);
    // A regular init container keeps its own value.
    expect(containerOomScoreAdj(p1, plainInit, cap)).toBe(999);
    // The smallest app request (b, 1Gi → 875) bounds the sidecar.
    expect(containerOomScoreAdj(pod({ initContainers: [small], containers: [a, b] }), small, cap)).toBe(875);
    // A sidecar requesting more than the apps keeps its own, lower value.
    expect(containerOomScoreAdj(pod({ initContainers: [big], containers: [a] }), big, cap)).toBe(500);
    // restartPolicy Always on a container that is not an init container of the pod is no sidecar.
    expect(containerOomScoreAdj(pod({ initContainers: [], containers: [a] }), small, cap)).toBe(999);
  });
});
