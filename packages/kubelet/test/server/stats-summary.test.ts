import {
  type Container,
  ContainerState,
  type ContainerStats,
  type PodSandbox,
  PodSandboxState,
  type PodSandboxStats,
} from "@worknode/cri";
import { describe, expect, it } from "vitest";
import {
  nodeStatsFromSample,
  parseDefaultRouteInterface,
  parseKeyValues,
  parseMeminfo,
  parseNetDev,
  parseProcStat,
  usageNanoCores,
} from "../../src/server/node-stats.js";
import { renderResourceMetrics } from "../../src/server/resource-metrics.js";
import { buildSummary, sandboxesToReport } from "../../src/server/stats-summary.js";
import type { NodeStats } from "../../src/server/stats-types.js";

// Times as containerd reports them: nanoseconds since the epoch.
const T = 1_700_000_000_000_000_000n;
const sec = (s: number) => T + BigInt(s) * 1_000_000_000n;
const u64 = (n: number) => ({ value: BigInt(n) });

const labels = (uid: string, name: string, extra: Record<string, string> = {}) => ({
  "io.kubernetes.pod.uid": uid,
  "io.kubernetes.pod.name": name,
  "io.kubernetes.pod.namespace": "default",
  ...extra,
});

function sandbox(
  id: string,
  uid: string,
  name: string,
  state: PodSandboxState,
  createdAt: bigint,
): PodSandbox {
  return {
    id,
    metadata: { name, namespace: "default", uid, attempt: 0 },
    state,
    createdAt,
    labels: labels(uid, name),
    annotations: {},
    runtimeHandler: "",
  };
}

function container(
  id: string,
  sandboxId: string,
  uid: string,
  pod: string,
  name: string,
  state: ContainerState,
  createdAt: bigint,
): Container {
  return {
    id,
    podSandboxId: sandboxId,
    metadata: { name, attempt: 0 },
    image: {
      image: "127.0.0.1:5000/busybox:1",
      annotations: {},
      userSpecifiedImage: "",
      runtimeHandler: "",
      imageRef: "",
    },
    imageRef: "sha256:abc",
    state,
    createdAt,
    labels: labels(uid, pod, { "io.kubernetes.container.name": name }),
    annotations: {},
    imageId: "",
  };
}

function stats(
  id: string,
  name: string,
  at: bigint,
  cpuTotal: number,
  nanoCores: number | undefined,
  workingSet: number,
): ContainerStats {
  return {
    attributes: { id, metadata: { name, attempt: 0 }, labels: {}, annotations: {} },
    cpu: {
      timestamp: at,
      usageCoreNanoSeconds: u64(cpuTotal),
      usageNanoCores: nanoCores === undefined ? undefined : u64(nanoCores),
      psi: undefined,
    },
    memory: {
      timestamp: at,
      workingSetBytes: u64(workingSet),
      availableBytes: undefined,
      usageBytes: u64(workingSet + 4096),
      rssBytes: u64(workingSet - 8192),
      pageFaults: u64(1200),
      majorPageFaults: u64(3),
      psi: undefined,
    },
    writableLayer: {
      timestamp: at,
      fsId: { mountpoint: "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs" },
      usedBytes: u64(12_288),
      inodesUsed: u64(7),
    },
    swap: undefined,
    io: undefined,
  } as ContainerStats;
}

const node: NodeStats = {
  nodeName: "node-1",
  startTime: "2023-11-14T00:00:00.000Z",
  cpu: { time: "2023-11-14T22:13:20.000Z", usageCoreNanoSeconds: 5e12 },
  memory: { time: "2023-11-14T22:13:20.000Z", workingSetBytes: 1_073_741_824 },
};

/** web (ready sandbox with app + a terminated earlier instance) and an old pod with only a stopped sandbox. */
function listing() {
  const sandboxes = [
    sandbox("sb-old", "uid-web", "web", PodSandboxState.SANDBOX_NOTREADY, sec(-100)),
    sandbox("sb-web", "uid-web", "web", PodSandboxState.SANDBOX_READY, sec(-50)),
    sandbox("sb-done", "uid-done", "done", PodSandboxState.SANDBOX_NOTREADY, sec(-30)),
  ];
  const containers = [
    container("c-app-0", "sb-web", "uid-web", "web", "app", ContainerState.CONTAINER_EXITED, sec(-49)),
    container("c-app-1", "sb-web", "uid-web", "web", "app", ContainerState.CONTAINER_RUNNING, sec(-40)),
    container("c-side", "sb-web", "uid-web", "web", "sidecar", ContainerState.CONTAINER_RUNNING, sec(-48)),
    container("c-old", "sb-old", "uid-web", "web", "app", ContainerState.CONTAINER_RUNNING, sec(-99)),
  ];
  const containerStats = [
    stats("c-app-1", "app", sec(0), 2_500_000_000, 15_000_000, 8_000_000),
    stats("c-side", "sidecar", sec(0), 500_000_000, undefined, 2_000_000),
    stats("c-app-0", "app", sec(0), 100, 0, 1),
  ];
  return { sandboxes, containers, containerStats };
}

describe("buildSummary", () => {
  it("reports each pod's current sandbox and its running containers", () => {
    const { summary } = buildSummary({ node, ...listing() });
    expect(summary.node).toBe(node);
    expect(summary.pods.map((p) => p.podRef)).toEqual([
      { name: "done", namespace: "default", uid: "uid-done" },
      { name: "web", namespace: "default", uid: "uid-web" },
    ]);
    const web = summary.pods[1]!;
    expect(web.startTime).toBe(new Date(Number(sec(-50) / 1_000_000n)).toISOString());
    expect(web.containers.map((c) => c.name)).toEqual(["app", "sidecar"]);
    expect(web.containers[0]).toEqual({
      name: "app",
      startTime: "2023-11-14T22:12:40.000Z",
      cpu: {
        time: "2023-11-14T22:13:20.000Z",
        usageNanoCores: 15_000_000,
        usageCoreNanoSeconds: 2_500_000_000,
      },
      memory: {
        time: "2023-11-14T22:13:20.000Z",
        usageBytes: 8_004_096,
        workingSetBytes: 8_000_000,
        rssBytes: 7_991_808,
        pageFaults: 1200,
        majorPageFaults: 3,
      },
      rootfs: { time: "2023-11-14T22:13:20.000Z", usedBytes: 12_288, inodesUsed: 7 },
    });
    expect(summary.pods[0]!.containers).toEqual([]);
  });

  it("sums pod CPU and memory over the containers without sandbox stats", () => {
    const { summary } = buildSummary({ node, ...listing() });
    const web = summary.pods[1]!;
    expect(web.cpu).toEqual({
      time: "2023-11-14T22:13:20.000Z",
      usageNanoCores: 15_000_000,
      usageCoreNanoSeconds: 3_000_000_000,
    });
    expect(web.memory?.workingSetBytes).toBe(10_000_000);
    expect(web.network).toBeUndefined();
  });

  it("computes usageNanoCores from the previous reading when the runtime gives none", () => {
    const first = buildSummary({ node, ...listing() });
    expect(first.summary.pods[1]!.containers[1]!.cpu?.usageNanoCores).toBeUndefined();
    const l = listing();
    // 10 s later the sidecar used another 0.25 core-seconds: 25 millicores
    l.containerStats[1] = stats("c-side", "sidecar", sec(10), 750_000_000, undefined, 2_000_000);
    const second = buildSummary({ node, ...l, previousCpu: first.cpuReadings });
    expect(second.summary.pods[1]!.containers[1]!.cpu?.usageNanoCores).toBe(25_000_000);
  });

  it("takes pod CPU, memory, network and processes from sandbox stats when the runtime has them", () => {
    const sbStats: PodSandboxStats = {
      attributes: { id: "sb-web", metadata: undefined, labels: {}, annotations: {} },
      linux: {
        cpu: {
          timestamp: sec(0),
          usageCoreNanoSeconds: u64(3_100_000_000),
          usageNanoCores: u64(16_000_000),
          psi: undefined,
        },
        memory: {
          timestamp: sec(0),
          workingSetBytes: u64(10_500_000),
          availableBytes: undefined,
          usageBytes: u64(11_000_000),
          rssBytes: undefined,
          pageFaults: undefined,
          majorPageFaults: undefined,
          psi: undefined,
        },
        network: {
          timestamp: sec(0),
          defaultInterface: {
            name: "eth0",
            rxBytes: u64(5000),
            rxErrors: u64(0),
            txBytes: u64(7000),
            txErrors: u64(0),
          },
          interfaces: [],
        },
        process: { timestamp: sec(0), processCount: u64(4) },
        containers: [],
        io: undefined,
      },
      windows: undefined,
    };
    const { summary } = buildSummary({ node, ...listing(), sandboxStats: [sbStats] });
    const web = summary.pods[1]!;
    expect(web.cpu?.usageCoreNanoSeconds).toBe(3_100_000_000);
    expect(web.memory).toEqual({
      time: "2023-11-14T22:13:20.000Z",
      usageBytes: 11_000_000,
      workingSetBytes: 10_500_000,
    });
    expect(web.network).toEqual({
      time: "2023-11-14T22:13:20.000Z",
      name: "eth0",
      rxBytes: 5000,
      rxErrors: 0,
      txBytes: 7000,
      txErrors: 0,
      interfaces: [{ name: "eth0", rxBytes: 5000, rxErrors: 0, txBytes: 7000, txErrors: 0 }],
    });
    expect(web.process_stats).toEqual({ process_count: 4 });
  });

  it("gives containers' rootfs the image filesystem's capacity", () => {
    const imageFs = {
      time: "x",
      capacityBytes: 100_000_000,
      availableBytes: 60_000_000,
      inodes: 1000,
      inodesFree: 900,
    };
    const { summary } = buildSummary({ node, ...listing(), imageFs });
    expect(summary.pods[1]!.containers[0]!.rootfs).toEqual({
      time: "2023-11-14T22:13:20.000Z",
      availableBytes: 60_000_000,
      capacityBytes: 100_000_000,
      usedBytes: 12_288,
      inodesFree: 900,
      inodes: 1000,
      inodesUsed: 7,
    });
  });

  it("prefers a ready sandbox over a newer stopped one", () => {
    const picked = sandboxesToReport([
      sandbox("ready", "u", "p", PodSandboxState.SANDBOX_READY, sec(1)),
      sandbox("newer-stopped", "u", "p", PodSandboxState.SANDBOX_NOTREADY, sec(5)),
    ]);
    expect(picked.map((s) => s.id)).toEqual(["ready"]);
  });
});

describe("node stats from /proc", () => {
  const procStat = [
    "cpu  10132153 290696 3084719 46828483 16683 0 25195 0 175628 0",
    "cpu0 1393280 32966 572056 13343292 6130 0 17875 0 23933 0",
    "intr 199292 0",
    "ctxt 73482950",
    "btime 1699920000",
    "processes 405341",
  ].join("\n");
  const meminfo = [
    "MemTotal:        8000000 kB",
    "MemFree:         2000000 kB",
    "MemAvailable:    5000000 kB",
    "Inactive(file):  1000000 kB",
    "AnonPages:       1500000 kB",
    "SwapTotal:       1000000 kB",
    "SwapFree:         900000 kB",
    "HugePages_Total:       0",
  ].join("\n");
  const netDev = [
    "Inter-|   Receive                                                |  Transmit",
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed",
    "    lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0",
    "  eth0: 987654 1234 2 0 0 0 0 0 123456 1000 1 0 0 0 0 0",
    "wnsrv0: 500 5 0 0 0 0 0 0 600 6 0 0 0 0 0 0",
  ].join("\n");
  const route = [
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT",
    "eth0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0",
    "eth0\t0002A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0",
  ].join("\n");

  it("parses the proc files", () => {
    expect(parseProcStat(procStat)).toEqual({
      busyTicks: 10132153 + 290696 + 3084719 + 25195,
      bootTimeSec: 1699920000,
    });
    const m = parseMeminfo(meminfo);
    expect(m.get("MemTotal")).toBe(8_000_000 * 1024);
    expect(m.get("Inactive(file)")).toBe(1_000_000 * 1024);
    expect(m.get("HugePages_Total")).toBe(0);
    expect(parseKeyValues("pgfault 42\npgmajfault 7\n").get("pgmajfault")).toBe(7);
    expect(parseNetDev(netDev)).toEqual([
      { name: "eth0", rxBytes: 987654, rxErrors: 2, txBytes: 123456, txErrors: 1 },
      { name: "wnsrv0", rxBytes: 500, rxErrors: 0, txBytes: 600, txErrors: 0 },
    ]);
    expect(parseDefaultRouteInterface(route)).toBe("eth0");
  });

  it("derives node stats as cAdvisor's root container does", () => {
    const sample = {
      timestampMs: 1_700_000_000_000,
      bootTimeMs: 1_699_920_000_000,
      cpuUsageCoreNanoSeconds: 135_327_630_000_000,
      meminfo: parseMeminfo(meminfo),
      vmstat: parseKeyValues("pgfault 42\npgmajfault 7\n"),
      interfaces: parseNetDev(netDev),
      defaultInterface: "eth0",
      rootFs: {
        capacityBytes: 100,
        availableBytes: 40,
        usedBytes: 60,
        inodes: 10,
        inodesFree: 4,
        inodesUsed: 6,
      },
      maxPid: 4194304,
      processes: 180,
    };
    const s = nodeStatsFromSample("node-1", sample, {
      timestampMs: 1_699_999_990_000,
      usageCoreNanoSeconds: 135_327_630_000_000 - 5_000_000_000,
    });
    expect(s.startTime).toBe("2023-11-14T00:00:00.000Z");
    expect(s.cpu).toEqual({
      time: "2023-11-14T22:13:20.000Z",
      usageNanoCores: 500_000_000,
      usageCoreNanoSeconds: 135_327_630_000_000,
    });
    expect(s.memory).toEqual({
      time: "2023-11-14T22:13:20.000Z",
      availableBytes: 3_000_000 * 1024,
      usageBytes: 6_000_000 * 1024,
      workingSetBytes: 5_000_000 * 1024,
      rssBytes: 1_500_000 * 1024,
      pageFaults: 42,
      majorPageFaults: 7,
    });
    expect(s.network).toMatchObject({
      name: "eth0",
      rxBytes: 987654,
      interfaces: [{ name: "eth0" }, { name: "wnsrv0" }],
    });
    expect(s.fs).toEqual({ time: "2023-11-14T22:13:20.000Z", ...sample.rootFs });
    expect(s.rlimit).toEqual({ time: "2023-11-14T22:13:20.000Z", maxpid: 4194304, curproc: 180 });
    expect(s.swap).toEqual({
      time: "2023-11-14T22:13:20.000Z",
      swapAvailableBytes: 900_000 * 1024,
      swapUsageBytes: 100_000 * 1024,
    });
  });

  it("has no rate without a previous reading or across a counter reset", () => {
    const cur = { timestampMs: 2000, usageCoreNanoSeconds: 100 };
    expect(usageNanoCores(undefined, cur)).toBeUndefined();
    expect(usageNanoCores({ timestampMs: 1000, usageCoreNanoSeconds: 500 }, cur)).toBeUndefined();
    expect(usageNanoCores({ timestampMs: 2000, usageCoreNanoSeconds: 0 }, cur)).toBeUndefined();
  });
});

describe("renderResourceMetrics", () => {
  it("renders kubelet's resource metrics with the readings' timestamps", () => {
    const { summary } = buildSummary({ node, ...listing() });
    const text = renderResourceMetrics(summary);
    const lines = text.split("\n");
    expect(lines).toContain(
      "# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds",
    );
    expect(lines).toContain("# TYPE container_cpu_usage_seconds_total counter");
    expect(lines).toContain(
      'container_cpu_usage_seconds_total{container="app",namespace="default",pod="web"} 2.5 1700000000000',
    );
    expect(lines).toContain(
      'container_memory_working_set_bytes{container="sidecar",namespace="default",pod="web"} 2000000 1700000000000',
    );
    expect(lines).toContain(
      'container_start_time_seconds{container="app",namespace="default",pod="web"} 1699999960',
    );
    expect(lines).toContain('pod_cpu_usage_seconds_total{namespace="default",pod="web"} 3 1700000000000');
    expect(lines).toContain(
      'pod_memory_working_set_bytes{namespace="default",pod="web"} 10000000 1700000000000',
    );
    expect(lines).toContain("node_cpu_usage_seconds_total 5000 1700000000000");
    expect(lines).toContain("node_memory_working_set_bytes 1073741824 1700000000000");
    expect(lines).toContain("resource_scrape_error 0");
    expect(lines).toContain("scrape_error 0");
    // families with no samples are left out; the pod with no containers has no pod samples
    expect(text).not.toContain("swap");
    expect(text).not.toContain('pod="done"');
  });

  it("reports only the scrape errors when the summary failed", () => {
    const text = renderResourceMetrics(undefined);
    expect(text).toContain("\nresource_scrape_error 1\n");
    expect(text).toContain("\nscrape_error 1\n");
    expect(text).not.toContain("node_cpu");
  });

  it("escapes label values", () => {
    const text = renderResourceMetrics({
      node: { nodeName: "n", startTime: "2023-11-14T00:00:00.000Z" },
      pods: [
        {
          podRef: { name: 'we"ird', namespace: "ns\\x", uid: "u" },
          startTime: "2023-11-14T00:00:00.000Z",
          containers: [],
          memory: { time: "2023-11-14T00:00:00.000Z", workingSetBytes: 1 },
        },
      ],
    });
    expect(text).toContain(
      'pod_memory_working_set_bytes{namespace="ns\\\\x",pod="we\\"ird"} 1 1699920000000',
    );
  });
});
