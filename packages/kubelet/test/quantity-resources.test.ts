import { describe, expect, it } from "vitest";
import { containerOomScoreAdj, podQosClass } from "../src/qos.js";
import { parseQuantity, QuantityError } from "../src/quantity.js";
import { linuxContainerResources, milliCpuToQuota, milliCpuToShares, podRequests } from "../src/resources.js";
import { container, pod } from "./helpers.js";

describe("parseQuantity", () => {
  it.each([
    ["100m", 100, 1],
    ["1.5", 1500, 2],
    ["1", 1000, 1],
    ["0.1", 100, 1],
    [".5", 500, 1],
    ["2.", 2000, 2],
    ["128Mi", 128 * 1024 ** 2 * 1000, 128 * 1024 ** 2],
    ["1.5Gi", 1.5 * 1024 ** 3 * 1000, 1.5 * 1024 ** 3],
    ["1G", 1e12, 1e9],
    ["1k", 1e6, 1e3],
    ["1e3", 1e6, 1e3],
    ["1E3", 1e6, 1e3],
    ["1E", 1e21, 1e18],
    ["5e-3", 5, 1],
    ["250u", 1, 1],
    ["1n", 1, 1],
    ["0", 0, 0],
    ["+2", 2000, 2],
  ])("%s → milli %d, value %d (rounded up)", (text, milli, value) => {
    const q = parseQuantity(text);
    expect(q.milliValue()).toBe(milli);
    expect(q.value()).toBe(value);
  });

  it.each(["", "abc", "1K", "1.2.3", "1Mb", " 1", "1 ", "--1", "1e", "Mi"])("rejects %j", (text) => {
    expect(() => parseQuantity(text)).toThrow(QuantityError);
  });

  it("compares and adds exactly", () => {
    expect(parseQuantity("1Gi").cmp(parseQuantity("1073741824"))).toBe(0);
    expect(parseQuantity("0.1").add(parseQuantity("0.2")).cmp(parseQuantity("300m"))).toBe(0);
    expect(parseQuantity("1G").cmp(parseQuantity("1Gi"))).toBe(-1);
  });
});

describe("cpu shares and quota (kubelet's numbers)", () => {
  it.each([
    [0, 2],
    [1, 2],
    [2, 2],
    [10, 10],
    [100, 102],
    [250, 256],
    [1000, 1024],
    [1500, 1536],
    [500_000, 262_144],
  ])("MilliCPUToShares(%d) = %d", (m, s) => expect(milliCpuToShares(m)).toBe(s));

  it.each([
    [0, 0],
    [5, 1000],
    [10, 1000],
    [200, 20_000],
    [1000, 100_000],
    [2500, 250_000],
  ])("MilliCPUToQuota(%d, 100ms) = %d", (m, q) => expect(milliCpuToQuota(m)).toBe(q));

  it("builds Linux resources from requests and limits", () => {
    const c = container("a", {
      resources: { requests: { cpu: "250m", memory: "64Mi" }, limits: { cpu: "500m", memory: "128Mi" } },
    });
    expect(linuxContainerResources(c, 5)).toEqual({
      cpuPeriod: 100_000,
      cpuQuota: 50_000,
      cpuShares: 256,
      memoryLimitInBytes: 134_217_728,
      oomScoreAdj: 5,
    });
    // Only a limit: shares come from the limit.
    expect(linuxContainerResources(container("b", { resources: { limits: { cpu: "1" } } }), 0)).toMatchObject(
      { cpuShares: 1024, cpuQuota: 100_000, memoryLimitInBytes: 0 },
    );
    // Nothing: minimum shares, unlimited.
    expect(linuxContainerResources(container("c"), 1000)).toMatchObject({
      cpuShares: 2,
      cpuQuota: 0,
      cpuPeriod: 100_000,
    });
  });
});

describe("QoS class", () => {
  const g = { requests: { cpu: "1", memory: "1Gi" }, limits: { cpu: "1", memory: "1Gi" } };
  it.each([
    ["no resources", pod(), "BestEffort"],
    [
      "limits only (requests default to limits)",
      pod({ containers: [container("a", { resources: { limits: { cpu: "1", memory: "1Gi" } } })] }),
      "Guaranteed",
    ],
    ["equal requests and limits", pod({ containers: [container("a", { resources: g })] }), "Guaranteed"],
    [
      "requests below limits",
      pod({
        containers: [
          container("a", { resources: { requests: { cpu: "500m", memory: "1Gi" }, limits: g.limits } }),
        ],
      }),
      "Burstable",
    ],
    [
      "cpu limit only, no memory",
      pod({ containers: [container("a", { resources: { limits: { cpu: "1" } } })] }),
      "Burstable",
    ],
    [
      "one guaranteed, one best effort",
      pod({ containers: [container("a", { resources: g }), container("b")] }),
      "Burstable",
    ],
    [
      "init container without limits",
      pod({
        initContainers: [container("i", { resources: { requests: { cpu: "100m" } } })],
        containers: [container("a", { resources: g })],
      }),
      "Burstable",
    ],
    [
      "zero requests only",
      pod({ containers: [container("a", { resources: { requests: { cpu: "0" } } })] }),
      "BestEffort",
    ],
    [
      "ephemeral storage is ignored",
      pod({ containers: [container("a", { resources: { requests: { "ephemeral-storage": "1Gi" } } })] }),
      "BestEffort",
    ],
  ])("%s → %s", (_n, p, q) => expect(podQosClass(p)).toBe(q));

  it("oom_score_adj follows kubelet's policy", () => {
    const cap = 8 * 1024 ** 3;
    const burst = container("a", { resources: { requests: { memory: "2Gi" } } });
    expect(containerOomScoreAdj(pod({ containers: [burst] }), burst, cap)).toBe(750);
    const tiny = container("a", { resources: { requests: { cpu: "1m" } } });
    expect(containerOomScoreAdj(pod({ containers: [tiny] }), tiny, cap)).toBe(999);
    const huge = container("a", { resources: { requests: { memory: "8Gi" } } });
    expect(containerOomScoreAdj(pod({ containers: [huge] }), huge, cap)).toBe(3);
    const guaranteed = container("a", { resources: { limits: { cpu: "1", memory: "1Gi" } } });
    expect(containerOomScoreAdj(pod({ containers: [guaranteed] }), guaranteed, cap)).toBe(-997);
    expect(containerOomScoreAdj(pod(), container("a"), cap)).toBe(1000);
    expect(
      containerOomScoreAdj(pod({ priorityClassName: "system-node-critical" }), container("a"), cap),
    ).toBe(-997);
  });
});

describe("podRequests", () => {
  it("is max(sum of app containers, largest init container) plus overhead", () => {
    const p = pod({
      initContainers: [
        container("i1", { resources: { requests: { cpu: "2", memory: "100Mi" } } }),
        container("i2", { resources: { requests: { cpu: "500m", memory: "1Gi" } } }),
      ],
      containers: [
        container("a", { resources: { requests: { cpu: "300m", memory: "200Mi" } } }),
        container("b", { resources: { limits: { cpu: "400m", memory: "300Mi" } } }),
      ],
      overhead: { cpu: "100m", memory: "10Mi" },
    });
    expect(podRequests(p)).toEqual({ cpuMilli: 2100, memoryBytes: 1024 ** 3 + 10 * 1024 ** 2 });
  });
});
