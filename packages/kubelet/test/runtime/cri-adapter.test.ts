import {
  ContainerConfig,
  ContainerState,
  MountPropagation,
  NamespaceMode,
  PodSandboxConfig,
  PodSandboxState,
  Protocol,
  SecurityProfile_ProfileType,
} from "@worknode/cri";
import { describe, expect, it } from "vitest";
import { buildContainerConfig } from "../../src/container-config.js";
import { containerAnnotations, containerLabels } from "../../src/labels.js";
import {
  toContainerRuntimeStatus,
  toCriContainerConfig,
  toCriSandboxConfig,
  toSandboxStatus,
} from "../../src/runtime/cri-adapter.js";
import { groupByPod, listingFingerprint } from "../../src/runtime/runtime-state.js";
import { buildSandboxConfig } from "../../src/sandbox-config.js";
import { container, pod } from "../helpers.js";

const dns = { clusterDNS: [], clusterDomain: "", hostResolvConf: undefined, nodeIPs: ["192.0.2.1"] };

describe("CRI adapter", () => {
  it("converts a sandbox config to CRI types that encode and decode", () => {
    const p = pod({
      hostNetwork: false,
      containers: [container("app", { ports: [{ containerPort: 80, hostPort: 8080, protocol: "UDP" }] })],
      securityContext: {
        runAsUser: 1000,
        fsGroup: 2000,
        sysctls: [{ name: "net.ipv4.ip_forward", value: "1" }],
      },
    });
    const cri = toCriSandboxConfig(buildSandboxConfig(p, { ...dns, attempt: 2, podLogsRoot: "/logs" }));
    const round = PodSandboxConfig.decode(
      PodSandboxConfig.encode(PodSandboxConfig.fromPartial(cri)).finish(),
    );
    expect(round.metadata).toEqual({ name: "web", uid: "uid-1", namespace: "default", attempt: 2 });
    expect(round.logDirectory).toBe("/logs/default_web_uid-1");
    expect(round.portMappings).toEqual([
      { protocol: Protocol.UDP, containerPort: 80, hostPort: 8080, hostIp: "" },
    ]);
    expect(round.linux?.securityContext?.namespaceOptions?.network).toBe(NamespaceMode.POD);
    expect(round.linux?.securityContext?.namespaceOptions?.pid).toBe(NamespaceMode.CONTAINER);
    expect(round.linux?.securityContext?.runAsUser?.value).toBe(1000n);
    expect(round.linux?.securityContext?.supplementalGroups).toEqual([2000n]);
    expect(round.linux?.securityContext?.seccomp?.profileType).toBe(
      SecurityProfile_ProfileType.RuntimeDefault,
    );
    expect(round.linux?.sysctls).toEqual({ "net.ipv4.ip_forward": "1" });
    expect(round.labels["io.kubernetes.pod.uid"]).toBe("uid-1");
  });

  it("maps host network to NamespaceMode.NODE", () => {
    const cri = toCriSandboxConfig(buildSandboxConfig(pod({ hostNetwork: true }), { ...dns, attempt: 0 }));
    expect(cri.linux?.securityContext?.namespaceOptions?.network).toBe(NamespaceMode.NODE);
    expect(cri.hostname).toBe("");
  });

  it("converts a container config: env bytes, int64 resources, mounts, security context", () => {
    const c = container("app", {
      command: ["sh"],
      args: ["-c", "echo $(GREETING)"],
      env: [{ name: "GREETING", value: "héllo" }],
      resources: { limits: { cpu: "500m", memory: "64Mi" } },
      volumeMounts: [
        { name: "data", mountPath: "/data", readOnly: true, mountPropagation: "HostToContainer" },
      ],
      securityContext: { capabilities: { add: ["NET_ADMIN"] }, runAsUser: 7 },
    });
    const p = pod({ containers: [c], volumes: [{ name: "data", emptyDir: {} }] });
    const spec = buildContainerConfig(p, c, {
      podIPs: ["10.0.0.5"],
      hostIPs: ["192.0.2.1"],
      nodeAllocatable: { cpuMilli: 2000, memoryBytes: 2 ** 31 },
      restartCount: 3,
      memoryCapacityBytes: 2 ** 31,
      volumeHostPaths: new Map([["data", "/var/lib/k/pods/uid-1/volumes/kubernetes.io~empty-dir/data"]]),
      terminationMessageHostPath: "/tmp/tm",
    });
    const round = ContainerConfig.decode(
      ContainerConfig.encode(ContainerConfig.fromPartial(toCriContainerConfig(spec))).finish(),
    );
    expect(round.metadata).toEqual({ name: "app", attempt: 3 });
    expect(round.args).toEqual(["-c", "echo héllo"]);
    expect(round.envs.map((e) => [e.key, Buffer.from(e.value).toString("utf8")])).toEqual([
      ["GREETING", "héllo"],
    ]);
    expect(round.logPath).toBe("app/3.log");
    expect(round.linux?.resources?.cpuQuota).toBe(50_000n);
    expect(round.linux?.resources?.cpuPeriod).toBe(100_000n);
    expect(round.linux?.resources?.memoryLimitInBytes).toBe(64n * 1024n * 1024n);
    expect(round.mounts[0]).toMatchObject({
      containerPath: "/data",
      readonly: true,
      propagation: MountPropagation.PROPAGATION_HOST_TO_CONTAINER,
    });
    expect(round.mounts[1]).toMatchObject({ containerPath: "/dev/termination-log", hostPath: "/tmp/tm" });
    expect(round.linux?.securityContext?.capabilities?.addCapabilities).toEqual(["NET_ADMIN"]);
    expect(round.linux?.securityContext?.runAsUser?.value).toBe(7n);
    expect(round.annotations["io.kubernetes.container.restartCount"]).toBe("3");
  });

  it("reads CRI sandboxes and containers back into the runtime status", () => {
    const p = pod();
    const c = container("app");
    const sb = {
      id: "sb",
      metadata: { name: "web", uid: "uid-1", namespace: "default", attempt: 1 },
      state: PodSandboxState.SANDBOX_READY,
      createdAt: 5_000_000_000n,
      labels: {},
      annotations: {},
      runtimeHandler: "",
    };
    expect(toSandboxStatus(sb)).toEqual({ id: "sb", attempt: 1, state: "ready", createdAt: 5000 });
    const listed = {
      id: "c1",
      podSandboxId: "sb",
      metadata: { name: "app", attempt: 2 },
      image: { image: "img:1", annotations: {}, userSpecifiedImage: "", runtimeHandler: "", imageRef: "" },
      imageRef: "sha256:abc",
      state: ContainerState.CONTAINER_EXITED,
      createdAt: 7_000_000_000n,
      labels: containerLabels(p, c),
      annotations: containerAnnotations(p, c, 2),
      imageId: "",
    };
    const rs = toContainerRuntimeStatus(listed, undefined);
    expect(rs).toMatchObject({
      id: "c1",
      name: "app",
      state: "exited",
      restartCount: 2,
      createdAt: 7000,
      sandboxId: "sb",
    });
    expect(rs?.containerSpecHash).toMatch(/^[0-9a-f]+$/);
    expect(toContainerRuntimeStatus({ ...listed, labels: {} })).toBeUndefined();

    const grouped = groupByPod(
      [
        {
          ...sb,
          labels: {
            "io.kubernetes.pod.name": "web",
            "io.kubernetes.pod.namespace": "default",
            "io.kubernetes.pod.uid": "uid-1",
          },
        },
        { ...sb, id: "foreign" },
      ],
      [listed],
    );
    expect([...grouped.keys()]).toEqual(["uid-1"]);
    const g = grouped.get("uid-1");
    expect(g?.sandboxes.map((s) => s.id)).toEqual(["sb"]);
    expect(g?.containers.map((x) => x.id)).toEqual(["c1"]);
    const fp = listingFingerprint(g as NonNullable<typeof g>);
    expect(
      listingFingerprint({
        ...(g as NonNullable<typeof g>),
        containers: [{ ...listed, state: ContainerState.CONTAINER_RUNNING }],
      }),
    ).not.toBe(fp);
  });
});
