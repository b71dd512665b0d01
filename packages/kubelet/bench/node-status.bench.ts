import { bench, describe } from "vitest";
import { computeNodeConditions, type NodeHealth, shouldPostNodeStatus } from "../src/node/conditions.js";
import type { MachineInfo } from "../src/node/machine-info.js";
import { buildNodeStatus, type NodeStatus } from "../src/node/node-builder.js";

// The pure part of one node status tick (every 10 s in the kubelet): build the owned status
// fields, compute the conditions and decide whether to post, against an unchanged last post.
const machine: MachineInfo = {
  machineID: "0123456789abcdef0123456789abcdef",
  systemUUID: "4c4c4544-0000-1000-8000-000000000000",
  bootID: "d1b2f9e0-0000-4000-8000-000000000001",
  kernelVersion: "6.1.0-28-amd64",
  osImage: "Debian GNU/Linux 12 (bookworm)",
  operatingSystem: "linux",
  architecture: "amd64",
  hostname: "node-1",
  cpuCount: 64,
  memoryBytes: 256 * 1024 ** 3,
  rootFsBytes: 2 * 1024 ** 4,
};
const runtime = { runtimeName: "containerd", runtimeVersion: "v1.7.20" };
const health: NodeHealth = {
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
const options = {
  nodeName: "node-1",
  nodeIPs: ["10.0.0.1", "fd00::1"],
  machine,
  runtime,
  systemReserved: { cpu: "500m", memory: "1Gi" },
  kubeReserved: { cpu: "500m", memory: "1Gi" },
};
const T0 = 1_700_000_000_000;
const posted: NodeStatus = {
  ...buildNodeStatus(options),
  conditions: computeNodeConditions(undefined, health, T0),
};
let now = T0;

describe("node status tick", () => {
  bench("build status + conditions + should-post decision (unchanged)", () => {
    now += 10_000;
    const desired: NodeStatus = {
      ...buildNodeStatus(options),
      conditions: computeNodeConditions(posted.conditions, health, now),
    };
    shouldPostNodeStatus({
      lastPosted: posted,
      desired,
      lastPostMs: T0,
      nowMs: now,
      reportFrequencyMs: 300_000,
    });
  });
});
