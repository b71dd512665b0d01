import { describe, expect, it } from "vitest";
import {
  ANNOTATION_CONTROLLER_MANAGED_ATTACH_DETACH,
  buildNode,
  computeAllocatable,
  containerRuntimeVersion,
  goArch,
  goOs,
  KUBELET_VERSION,
  type MachineInfo,
  NodeLabelError,
  nodeAddresses,
  osImageFromOsRelease,
  parseOsRelease,
  parseQuantity,
  reconcileNode,
} from "../../src/index.js";

const machine: MachineInfo = {
  machineID: "0123456789abcdef0123456789abcdef",
  systemUUID: "4c4c4544-0000-1000-8000-000000000000",
  bootID: "d1b2f9e0-0000-4000-8000-000000000001",
  kernelVersion: "6.1.0-28-amd64",
  osImage: "Debian GNU/Linux 12 (bookworm)",
  operatingSystem: "linux",
  architecture: "amd64",
  hostname: "host-1",
  cpuCount: 4,
  memoryBytes: 8 * 1024 * 1024 * 1024,
  rootFsBytes: 100 * 1024 * 1024 * 1024,
};
const runtime = { runtimeName: "containerd", runtimeVersion: "v1.6.20" };

describe("buildNode", () => {
  const node = buildNode({
    nodeName: "node-1",
    nodeIPs: ["10.0.0.5", "fd00::5"],
    labels: { "example.com/rack": "r1" },
    taints: [{ key: "dedicated", value: "ops", effect: "NoSchedule" }],
    machine,
    runtime,
    kubeletPort: 10250,
  });

  it("sets the kubelet's default labels over the user's, and the attach/detach annotation", () => {
    expect(node.metadata?.labels).toEqual({
      "example.com/rack": "r1",
      "kubernetes.io/hostname": "node-1",
      "kubernetes.io/os": "linux",
      "kubernetes.io/arch": "amd64",
      "beta.kubernetes.io/os": "linux",
      "beta.kubernetes.io/arch": "amd64",
    });
    expect(node.metadata?.annotations).toEqual({ [ANNOTATION_CONTROLLER_MANAGED_ATTACH_DETACH]: "true" });
  });

  it("registers the taints", () => {
    expect(node.spec?.taints).toEqual([{ key: "dedicated", value: "ops", effect: "NoSchedule" }]);
  });

  it("reports InternalIPs then the Hostname", () => {
    expect(node.status?.addresses).toEqual([
      { type: "InternalIP", address: "10.0.0.5" },
      { type: "InternalIP", address: "fd00::5" },
      { type: "Hostname", address: "node-1" },
    ]);
    expect(nodeAddresses(["10.0.0.5", "10.0.0.5"], "h")).toHaveLength(2);
  });

  it("reports capacity and allocatable minus the default hard eviction thresholds", () => {
    expect(node.status?.capacity).toEqual({
      cpu: "4",
      memory: "8388608Ki",
      pods: "110",
      "ephemeral-storage": "104857600Ki",
    });
    expect(node.status?.allocatable).toEqual({
      cpu: "4",
      memory: `${8388608 - 102400}Ki`, // 100Mi memory.available
      pods: "110",
      "ephemeral-storage": `${104857600 - 10485760}Ki`, // 10 % nodefs.available
    });
  });

  it("reports the node info with the runtime as <name>://<version> and a semver kubelet version", () => {
    expect(node.status?.nodeInfo).toMatchObject({
      machineID: machine.machineID,
      systemUUID: machine.systemUUID,
      bootID: machine.bootID,
      kernelVersion: machine.kernelVersion,
      osImage: machine.osImage,
      containerRuntimeVersion: "containerd://v1.6.20",
      kubeletVersion: KUBELET_VERSION,
      operatingSystem: "linux",
      architecture: "amd64",
    });
    expect(KUBELET_VERSION).toMatch(/^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/);
    expect(containerRuntimeVersion({ runtimeName: "cri-o", runtimeVersion: "1.30.0" })).toBe(
      "cri-o://1.30.0",
    );
  });

  it("reports the kubelet port", () => {
    expect(node.status?.daemonEndpoints).toEqual({ kubeletEndpoint: { Port: 10250 } });
  });

  it("applies capacity overrides, max pods and a hostname override", () => {
    const n = buildNode({
      nodeName: "n",
      hostname: "n.example.com",
      nodeIPs: [],
      machine,
      runtime,
      maxPods: 20,
      capacity: { cpu: "2" },
      systemReserved: { cpu: "500m" },
    });
    expect(n.status?.capacity?.cpu).toBe("2");
    expect(n.status?.capacity?.pods).toBe("20");
    expect(n.status?.allocatable?.cpu).toBe("1500m");
    expect(n.metadata?.labels?.["kubernetes.io/hostname"]).toBe("n.example.com");
    expect(n.status?.addresses).toEqual([{ type: "Hostname", address: "n.example.com" }]);
    expect(n.spec?.taints).toBeUndefined();
  });

  it("refuses labels a kubelet may not set", () => {
    expect(() =>
      buildNode({
        nodeName: "n",
        nodeIPs: [],
        machine,
        runtime,
        labels: { "node-role.kubernetes.io/x": "" },
      }),
    ).toThrow(NodeLabelError);
  });
});

describe("computeAllocatable", () => {
  it("subtracts system-reserved, kube-reserved and eviction thresholds, never below zero", () => {
    const a = computeAllocatable(
      { cpu: "2", memory: "1Gi", pods: "110", "ephemeral-storage": "1000" },
      {
        systemReserved: { cpu: "100m", memory: "100Mi" },
        kubeReserved: { cpu: "200m", memory: "2Gi" },
        evictionHard: { "memory.available": "1Mi", "nodefs.available": "15%" },
      },
    );
    expect(a).toEqual({ cpu: "1700m", memory: "0", pods: "110", "ephemeral-storage": "850" });
  });

  it("keeps capacity with no reservations and no thresholds", () => {
    expect(computeAllocatable({ cpu: "3", memory: "3Gi" }, { evictionHard: {} })).toEqual({
      cpu: "3",
      memory: "3Gi",
    });
  });

  it("rejects bad quantities and percentages", () => {
    expect(() => computeAllocatable({ cpu: "1" }, { systemReserved: { cpu: "lots" } })).toThrow(
      /--system-reserved cpu/,
    );
    expect(() =>
      computeAllocatable({ memory: "1Gi" }, { evictionHard: { "nodefs.available": "120%" } }),
    ).toThrow(/invalid percentage/);
  });

  it("produces quantities that parse back", () => {
    const a = computeAllocatable({ memory: "8129732Ki", "ephemeral-storage": "101430960Ki" });
    expect(parseQuantity(a.memory ?? "").value()).toBe((8129732 - 102400) * 1024);
    expect(a["ephemeral-storage"]).toMatch(/^\d+(Ki)?$/);
  });
});

describe("machine info helpers", () => {
  it("maps Node.js names to Go's", () => {
    expect(goArch("x64")).toBe("amd64");
    expect(goArch("arm64")).toBe("arm64");
    expect(goArch("ia32")).toBe("386");
    expect(goOs("linux")).toBe("linux");
    expect(goOs("win32")).toBe("windows");
  });

  it("reads PRETTY_NAME from os-release, with quotes and fallbacks", () => {
    const fields = parseOsRelease(
      'NAME="Debian GNU/Linux"\nVERSION="12 (bookworm)"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n# c\nID=debian\n',
    );
    expect(fields.ID).toBe("debian");
    expect(osImageFromOsRelease(fields)).toBe("Debian GNU/Linux 12 (bookworm)");
    expect(osImageFromOsRelease({ NAME: "Foo", VERSION: "1" })).toBe("Foo 1");
    expect(osImageFromOsRelease({})).toBe("Linux");
  });
});

describe("reconcileNode", () => {
  const desired = buildNode({
    nodeName: "n",
    nodeIPs: [],
    machine,
    runtime,
    labels: { "node.kubernetes.io/pool": "a" },
  });

  it("updates the labels the kubelet owns and keeps foreign ones, guarded by the resourceVersion", () => {
    const existing = {
      metadata: {
        name: "n",
        resourceVersion: "42",
        labels: { "kubernetes.io/os": "windows", "example.com/team": "x", "kubernetes.io/hostname": "n" },
        annotations: { other: "y" },
      },
      spec: { taints: [{ key: "user", effect: "NoSchedule" }] },
    };
    const patch = reconcileNode(existing, desired);
    expect(patch).toEqual({
      metadata: {
        resourceVersion: "42",
        labels: {
          "kubernetes.io/os": "linux",
          "kubernetes.io/arch": "amd64",
          "beta.kubernetes.io/os": "linux",
          "beta.kubernetes.io/arch": "amd64",
          "node.kubernetes.io/pool": "a",
        },
        annotations: { [ANNOTATION_CONTROLLER_MANAGED_ATTACH_DETACH]: "true" },
      },
    });
    // a merge patch: foreign labels and the taints are not mentioned, so they stay
    expect(JSON.stringify(patch)).not.toContain("example.com/team");
    expect(JSON.stringify(patch)).not.toContain("taints");
  });

  it("returns nothing when the node already matches", () => {
    expect(
      reconcileNode(
        { metadata: { ...desired.metadata, labels: { ...desired.metadata?.labels, extra: "1" } } },
        desired,
      ),
    ).toBeUndefined();
  });
});
