import { describe, expect, it } from "vitest";
import { buildContainerConfig, volumeHostPath } from "../src/container-config.js";
import { canonicalSpecJson, fnv1a32, hashContainer } from "../src/container-hash.js";
import { parseResolvConf, podDnsConfig } from "../src/dns.js";
import { ContainerConfigError } from "../src/env.js";
import {
  containerAnnotations,
  containerLabels,
  parseContainerAnnotations,
  parseContainerLabels,
  parsePodLabels,
  sandboxLabels,
} from "../src/labels.js";
import { containerLogFile, podLogDirectory, restartCountFromLogFiles } from "../src/log-paths.js";
import { imagePullPolicy, shouldPullImage } from "../src/pod-spec.js";
import { buildSandboxConfig, podHostname, podPortMappings } from "../src/sandbox-config.js";
import { container, pod } from "./helpers.js";

describe("labels and annotations round-trip (restart safety)", () => {
  const c = container("app", {
    ports: [{ containerPort: 80, name: "http" }],
    lifecycle: { preStop: { exec: { command: ["sleep", "5"] } } },
  });
  const p = pod(
    { containers: [c], terminationGracePeriodSeconds: 45 },
    { labels: { app: "web" }, deletionGracePeriodSeconds: 10 },
  );

  it("sandbox labels carry pod labels plus identity", () => {
    expect(sandboxLabels(p)).toEqual({
      app: "web",
      "io.kubernetes.pod.name": "web",
      "io.kubernetes.pod.namespace": "default",
      "io.kubernetes.pod.uid": "uid-1",
    });
    expect(parsePodLabels(sandboxLabels(p))).toEqual({
      podName: "web",
      podNamespace: "default",
      podUid: "uid-1",
    });
    expect(parsePodLabels({ app: "web" })).toBeUndefined();
  });

  it("container labels and annotations parse back to what was stored", () => {
    expect(parseContainerLabels(containerLabels(p, c))).toEqual({
      podName: "web",
      podNamespace: "default",
      podUid: "uid-1",
      containerName: "app",
    });
    const a = containerAnnotations(p, c, 4);
    expect(a).toMatchObject({
      "io.kubernetes.container.restartCount": "4",
      "io.kubernetes.pod.terminationGracePeriod": "45",
      "io.kubernetes.pod.deletionGracePeriod": "10",
      "io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
      "io.kubernetes.container.terminationMessagePolicy": "File",
    });
    expect(parseContainerAnnotations(a)).toEqual({
      hash: hashContainer(c),
      restartCount: 4,
      terminationMessagePath: "/dev/termination-log",
      terminationMessagePolicy: "File",
      podTerminationGracePeriodSeconds: 45,
      podDeletionGracePeriodSeconds: 10,
      preStopHandler: { exec: { command: ["sleep", "5"] } },
      ports: [{ containerPort: 80, name: "http" }],
    });
  });

  it("tolerates missing or malformed annotations", () => {
    expect(
      parseContainerAnnotations({
        "io.kubernetes.container.restartCount": "x",
        "io.kubernetes.container.hash": "zz",
        "io.kubernetes.container.ports": "{",
      }),
    ).toEqual({
      hash: "",
      restartCount: 0,
      terminationMessagePath: "",
      terminationMessagePolicy: "",
    });
  });
});

describe("hashContainer", () => {
  it("is stable, key-order independent, ignores empty fields and sees real changes", () => {
    const a = hashContainer({ name: "app", image: "nginx:1", args: ["a"] });
    expect(a).toMatch(/^[0-9a-f]{1,8}$/);
    expect(hashContainer({ args: ["a"], image: "nginx:1", name: "app" })).toBe(a);
    expect(
      hashContainer({
        name: "app",
        image: "nginx:1",
        args: ["a"],
        env: [],
        command: undefined,
        workingDir: "",
      }),
    ).toBe(a);
    expect(hashContainer({ name: "app", image: "nginx:2", args: ["a"] })).not.toBe(a);
    expect(hashContainer({ name: "app", image: "nginx:1", args: ["b"] })).not.toBe(a);
    // Pinned value (FNV-1a of '{"image":"nginx:1","name":"app"}', computed independently):
    // changing the hash would restart every container after an upgrade.
    expect(canonicalSpecJson({ name: "app", image: "nginx:1" })).toBe('{"image":"nginx:1","name":"app"}');
    expect(hashContainer({ name: "app", image: "nginx:1" })).toBe("a61dcb99");
  });

  it("FNV-1a 32 matches the reference vectors", () => {
    expect(fnv1a32("").toString(16)).toBe("811c9dc5");
    expect(fnv1a32("a").toString(16)).toBe("e40c292c");
    expect(fnv1a32("foobar").toString(16)).toBe("bf9cf968");
  });
});

describe("log paths", () => {
  it("follows /var/log/pods/<ns>_<name>_<uid>/<container>/<n>.log", () => {
    expect(podLogDirectory(pod())).toBe("/var/log/pods/default_web_uid-1");
    expect(containerLogFile(pod(), "app", 3)).toBe("/var/log/pods/default_web_uid-1/app/3.log");
    expect(restartCountFromLogFiles(["0.log", "2.log", "2.log.20240101-000000", "x.log"])).toBe(3);
    expect(restartCountFromLogFiles([])).toBe(0);
  });
});

describe("image pull policy", () => {
  it.each([
    ["nginx", "Always"],
    ["nginx:latest", "Always"],
    ["registry:5000/nginx", "Always"],
    ["registry:5000/nginx:1.25", "IfNotPresent"],
    ["nginx@sha256:abc", "IfNotPresent"],
  ])("%s defaults to %s", (image, policy) => expect(imagePullPolicy({ name: "c", image })).toBe(policy));
  it("decides pulls", () => {
    expect(shouldPullImage({ name: "c", image: "a:1" }, true)).toBe(false);
    expect(shouldPullImage({ name: "c", image: "a:1" }, false)).toBe(true);
    expect(shouldPullImage({ name: "c", image: "a:1", imagePullPolicy: "Always" }, true)).toBe(true);
    expect(shouldPullImage({ name: "c", image: "a", imagePullPolicy: "Never" }, false)).toBe(false);
  });
});

describe("DNS", () => {
  const host = parseResolvConf(
    "# comment\nnameserver 1.1.1.1\nnameserver 8.8.8.8\nsearch example.com. corp.local .\noptions ndots:2 rotate\n",
  );
  it("parses resolv.conf", () => {
    expect(host).toEqual({
      servers: ["1.1.1.1", "8.8.8.8"],
      searches: ["example.com", "corp.local"],
      options: ["ndots:2", "rotate"],
    });
  });
  const ctx = {
    clusterDNS: [] as string[],
    clusterDomain: "cluster.local",
    hostResolvConf: host,
    nodeIPs: ["192.168.1.10"],
  };
  it("ClusterFirst without cluster DNS falls back to the host's", () => {
    expect(podDnsConfig(pod(), ctx)).toEqual({
      servers: ["1.1.1.1", "8.8.8.8"],
      searches: ["example.com", "corp.local"],
      options: ["ndots:2", "rotate"],
    });
  });
  it("ClusterFirst with cluster DNS", () => {
    expect(podDnsConfig(pod(), { ...ctx, clusterDNS: ["10.96.0.10"] })).toEqual({
      servers: ["10.96.0.10"],
      searches: [
        "default.svc.cluster.local",
        "svc.cluster.local",
        "cluster.local",
        "example.com",
        "corp.local",
      ],
      options: ["ndots:5"],
    });
    // host network + ClusterFirst → Default
    expect(podDnsConfig(pod({ hostNetwork: true }), { ...ctx, clusterDNS: ["10.96.0.10"] }).servers).toEqual([
      "1.1.1.1",
      "8.8.8.8",
    ]);
    expect(
      podDnsConfig(pod({ hostNetwork: true, dnsPolicy: "ClusterFirstWithHostNet" }), {
        ...ctx,
        clusterDNS: ["10.96.0.10"],
      }).servers,
    ).toEqual(["10.96.0.10"]);
  });
  it("None + dnsConfig, options merged with the pod winning, limits applied", () => {
    const p = pod({
      dnsPolicy: "None",
      dnsConfig: {
        nameservers: ["9.9.9.9", "9.9.9.9", "1.0.0.1", "4.4.4.4", "5.5.5.5"],
        searches: ["a.b"],
        options: [{ name: "ndots", value: "1" }, { name: "edns0" }],
      },
    });
    expect(podDnsConfig(p, ctx)).toEqual({
      servers: ["9.9.9.9", "1.0.0.1", "4.4.4.4"],
      searches: ["a.b"],
      options: ["ndots:1", "edns0"],
    });
    const merged = podDnsConfig(
      pod({ dnsPolicy: "Default", dnsConfig: { options: [{ name: "ndots", value: "3" }] } }),
      ctx,
    );
    expect(merged.options).toEqual(["ndots:3", "rotate"]);
  });
  it("empty --resolv-conf: localhost per node IP family and search '.'", () => {
    expect(
      podDnsConfig(pod({ dnsPolicy: "Default" }), {
        ...ctx,
        hostResolvConf: undefined,
        nodeIPs: ["192.168.1.10", "fd00::1"],
      }),
    ).toEqual({
      servers: ["127.0.0.1", "::1"],
      searches: ["."],
      options: [],
    });
  });
});

describe("sandbox config", () => {
  it("hostname: pod name cut to 63, spec.hostname, FQDN", () => {
    const long = `${"a".repeat(62)}-b`;
    expect(podHostname(pod({}, { name: long }), "cluster.local")).toBe("a".repeat(62));
    expect(podHostname(pod({ hostname: "h1" }), "cluster.local")).toBe("h1");
    expect(
      podHostname(pod({ hostname: "h1", subdomain: "s", setHostnameAsFQDN: true }), "cluster.local"),
    ).toBe("h1.s.default.svc.cluster.local");
    expect(() => podHostname(pod({ hostname: "Bad_Name" }), "c")).toThrow(ContainerConfigError);
  });

  it("port mappings keep every port, drop repeated names", () => {
    const p = pod({
      containers: [
        container("a", {
          ports: [
            { containerPort: 80, hostPort: 8080 },
            { containerPort: 80, hostPort: 8080 },
            { containerPort: 53, protocol: "UDP", hostIP: "fd00::1", hostPort: 53 },
          ],
        }),
        container("b", {
          ports: [
            { containerPort: 9090, name: "m" },
            { containerPort: 9091, name: "m" },
          ],
        }),
      ],
    });
    expect(podPortMappings(p)).toEqual([
      { protocol: "TCP", containerPort: 80, hostPort: 8080, hostIp: "" },
      { protocol: "UDP", containerPort: 53, hostPort: 53, hostIp: "fd00::1" },
      { protocol: "TCP", containerPort: 9090, hostPort: 0, hostIp: "" },
    ]);
  });

  it("builds the whole sandbox config", () => {
    const p = pod(
      {
        hostNetwork: false,
        securityContext: {
          sysctls: [{ name: "net.ipv4.ip_unprivileged_port_start", value: "0" }],
          runAsUser: 1000,
          fsGroup: 2000,
          supplementalGroups: [3000],
        },
      },
      { labels: { app: "web" }, annotations: { "kubernetes.io/config.source": "file" } },
    );
    const cfg = buildSandboxConfig(p, {
      attempt: 2,
      clusterDNS: [],
      clusterDomain: "cluster.local",
      hostResolvConf: { servers: ["1.1.1.1"], searches: [], options: [] },
      nodeIPs: [],
    });
    expect(cfg).toEqual({
      metadata: { name: "web", uid: "uid-1", namespace: "default", attempt: 2 },
      hostname: "web",
      logDirectory: "/var/log/pods/default_web_uid-1",
      dnsConfig: { servers: ["1.1.1.1"], searches: [], options: [] },
      portMappings: [],
      labels: {
        app: "web",
        "io.kubernetes.pod.name": "web",
        "io.kubernetes.pod.namespace": "default",
        "io.kubernetes.pod.uid": "uid-1",
      },
      annotations: { "kubernetes.io/config.source": "file" },
      linux: {
        cgroupParent: "",
        sysctls: { "net.ipv4.ip_unprivileged_port_start": "0" },
        securityContext: {
          namespaceOptions: { network: "POD", pid: "CONTAINER", ipc: "POD" },
          privileged: false,
          runAsUser: { value: 1000 },
          supplementalGroups: [2000, 3000],
          seccomp: { profileType: "RuntimeDefault" },
        },
      },
    });
    const hn = buildSandboxConfig(pod({ hostNetwork: true, hostPID: true }), {
      attempt: 0,
      clusterDNS: [],
      clusterDomain: "",
      hostResolvConf: undefined,
      nodeIPs: [],
    });
    expect(hn.hostname).toBe("");
    expect(hn.linux.securityContext.namespaceOptions).toEqual({ network: "NODE", pid: "NODE", ipc: "POD" });
  });
});

describe("container config", () => {
  const c = container("app", {
    command: ["/bin/httpd", "-p", "$(PORT)"],
    args: ["-h", "/www"],
    workingDir: "/www",
    env: [
      { name: "PORT", value: "8080" },
      { name: "IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
    ],
    volumeMounts: [
      { name: "data", mountPath: "/www" },
      { name: "host", mountPath: "/etc/cfg", readOnly: true, subPath: "app" },
    ],
    resources: { requests: { cpu: "100m", memory: "32Mi" }, limits: { cpu: "200m", memory: "64Mi" } },
    securityContext: {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      readOnlyRootFilesystem: true,
    },
  });
  const p = pod({
    containers: [c],
    volumes: [
      { name: "data", emptyDir: {} },
      { name: "host", hostPath: { path: "/etc/worknode" } },
    ],
    securityContext: { runAsUser: 1000 },
  });
  const ctx = {
    podIPs: ["10.0.0.5"],
    hostIPs: ["192.168.1.10"],
    nodeAllocatable: { cpuMilli: 2000, memoryBytes: 4 * 1024 ** 3 },
    memoryCapacityBytes: 4 * 1024 ** 3,
    restartCount: 2,
    imageRef: "sha256:abc",
    volumeHostPaths: new Map([
      ["data", volumeHostPath(p, "data", "/var/lib/worknode/kubelet") ?? ""],
      ["host", volumeHostPath(p, "host", "/var/lib/worknode/kubelet") ?? ""],
    ]),
    terminationMessageHostPath: "/var/lib/worknode/kubelet/pods/uid-1/containers/app/abcd",
  };

  it("builds command, env, mounts, resources, security context, labels and log path", () => {
    const cfg = buildContainerConfig(p, c, ctx);
    expect(cfg.metadata).toEqual({ name: "app", attempt: 2 });
    expect(cfg.image).toEqual({ image: "sha256:abc", userSpecifiedImage: "registry.local/app:1.0" });
    expect(cfg.command).toEqual(["/bin/httpd", "-p", "8080"]);
    expect(cfg.args).toEqual(["-h", "/www"]);
    expect(cfg.workingDir).toBe("/www");
    expect(cfg.envs).toEqual([
      { key: "PORT", value: "8080" },
      { key: "IP", value: "10.0.0.5" },
    ]);
    expect(cfg.mounts.map((m) => [m.containerPath, m.hostPath, m.readonly])).toEqual([
      ["/www", "/var/lib/worknode/kubelet/pods/uid-1/volumes/kubernetes.io~empty-dir/data", false],
      ["/etc/cfg", "/etc/worknode/app", true],
      ["/dev/termination-log", "/var/lib/worknode/kubelet/pods/uid-1/containers/app/abcd", false],
    ]);
    expect(cfg.logPath).toBe("app/2.log");
    expect(cfg.labels["io.kubernetes.container.name"]).toBe("app");
    expect(cfg.annotations["io.kubernetes.container.restartCount"]).toBe("2");
    expect(cfg.annotations["io.kubernetes.container.hash"]).toBe(hashContainer(c));
    expect(cfg.linux.resources).toEqual({
      cpuPeriod: 100_000,
      cpuQuota: 20_000,
      cpuShares: 102,
      memoryLimitInBytes: 64 * 1024 ** 2,
      oomScoreAdj: 993,
    });
    expect(cfg.linux.securityContext).toMatchObject({
      noNewPrivs: true,
      readonlyRootfs: true,
      privileged: false,
      runAsUser: { value: 1000 },
      capabilities: { addCapabilities: [], dropCapabilities: ["ALL"] },
      namespaceOptions: { network: "POD", pid: "CONTAINER", ipc: "POD" },
    });
    expect(cfg.linux.securityContext.maskedPaths).toContain("/proc/kcore");
    expect(cfg.linux.securityContext.readonlyPaths).toContain("/proc/sys");
  });

  it("privileged containers get no masked paths; bad subPath is a config error", () => {
    const priv = container("p", { securityContext: { privileged: true } });
    expect(
      buildContainerConfig(pod({ containers: [priv] }), priv, { ...ctx, volumeHostPaths: new Map() }).linux
        .securityContext.maskedPaths,
    ).toEqual([]);
    const bad = container("b", { volumeMounts: [{ name: "data", mountPath: "/x", subPath: "../etc" }] });
    expect(() => buildContainerConfig(p, bad, ctx)).toThrow(ContainerConfigError);
    const missingVol = container("m", { volumeMounts: [{ name: "nope", mountPath: "/x" }] });
    expect(() => buildContainerConfig(p, missingVol, ctx)).toThrow(/cannot find volume/);
    const expr = container("e", {
      env: [{ name: "D", value: "sub" }],
      volumeMounts: [{ name: "data", mountPath: "/x", subPathExpr: "$(D)/$(E)" }],
    });
    expect(() => buildContainerConfig(p, expr, ctx)).toThrow(/missing value for E/);
  });
});
