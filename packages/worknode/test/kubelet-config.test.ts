import { ConfigError } from "@worknode/core";
import { describe, expect, it } from "vitest";
import {
  KUBELET_DEFAULTS,
  type KubeletCommandConfig,
  loadKubeletCommandConfig,
} from "../src/commands/kubelet-config.js";
import { CliUsageError } from "../src/flags.js";

const HEADER = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n";

async function load(argv: string[], files: Record<string, string> = {}): Promise<KubeletCommandConfig> {
  const r = await loadKubeletCommandConfig("worknode kubelet", argv, {
    hostname: "Node-A",
    readFile: async (f) => {
      const text = files[f];
      if (text === undefined) throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
      return text;
    },
  });
  if (r.help) throw new Error("unexpected help");
  return r.config;
}

describe("worknode kubelet configuration: defaults", () => {
  it("uses kubelet's defaults and the lowercased host name", async () => {
    expect(await load([])).toEqual({
      nodeName: "node-a",
      staticPodPath: undefined,
      containerRuntimeEndpoint: "unix:///run/containerd/containerd.sock",
      rootDir: "/var/lib/worknode/kubelet",
      maxPods: 110,
      healthz: { host: "127.0.0.1", port: 10248 },
      server: {
        host: "127.0.0.1",
        port: 10250,
        tlsCertFile: undefined,
        tlsPrivateKeyFile: undefined,
        certDir: "/var/lib/worknode/kubelet/pki",
      },
      fileCheckFrequencyMs: 20_000,
      syncFrequencyMs: 60_000,
      logLevel: "info",
      configFile: undefined,
      ignoredFields: [],
      cluster: undefined,
      clusterDNS: [],
      clusterDomain: "",
      nodeIPs: [],
      containerLogs: { maxSizeBytes: 10 * 1024 * 1024, maxFiles: 5, monitorIntervalMs: 10_000 },
    });
  });

  it("reads every flag", async () => {
    const c = await load([
      "--pod-manifest-path=/etc/kubernetes/manifests",
      "--container-runtime-endpoint",
      "unix:///run/crio/crio.sock",
      "--root-dir=/tmp/kl",
      "--hostname-override=Worker-1",
      "--max-pods=30",
      "--healthz-bind-address=::1",
      "--healthz-port=0",
      "--port=11250",
      "--address=::1",
      "--tls-cert-file=/c.pem",
      "--tls-private-key-file=/k.pem",
      "--file-check-frequency=5s",
      "--sync-frequency=1m30s",
      "--log-level=debug",
    ]);
    expect(c).toMatchObject({
      nodeName: "worker-1",
      staticPodPath: "/etc/kubernetes/manifests",
      containerRuntimeEndpoint: "unix:///run/crio/crio.sock",
      rootDir: "/tmp/kl",
      maxPods: 30,
      healthz: undefined,
      server: {
        host: "::1",
        port: 11250,
        tlsCertFile: "/c.pem",
        tlsPrivateKeyFile: "/k.pem",
        certDir: "/tmp/kl/pki",
      },
      fileCheckFrequencyMs: 5000,
      syncFrequencyMs: 90_000,
      logLevel: "debug",
    });
  });
});

describe("worknode kubelet configuration: --config file and precedence", () => {
  const file = `${HEADER}staticPodPath: manifests
containerRuntimeEndpoint: unix:///run/k3s/containerd.sock
maxPods: 50
healthzBindAddress: 127.0.0.2
healthzPort: 20248
port: 20250
address: 127.0.0.1
fileCheckFrequency: 10s
syncFrequency: 30s
tlsCertFile: /pki/c.pem
tlsPrivateKeyFile: pki/k.pem
`;

  it("takes values from the file, resolving relative paths against the file's directory", async () => {
    const c = await load(["--config", "/etc/worknode/kubelet.yaml"], { "/etc/worknode/kubelet.yaml": file });
    expect(c).toMatchObject({
      staticPodPath: "/etc/worknode/manifests",
      containerRuntimeEndpoint: "unix:///run/k3s/containerd.sock",
      maxPods: 50,
      healthz: { host: "127.0.0.2", port: 20248 },
      server: {
        host: "127.0.0.1",
        port: 20250,
        tlsCertFile: "/pki/c.pem",
        tlsPrivateKeyFile: "/etc/worknode/pki/k.pem",
      },
      fileCheckFrequencyMs: 10_000,
      syncFrequencyMs: 30_000,
      configFile: "/etc/worknode/kubelet.yaml",
    });
  });

  it("lets explicit flags override the file, even when they repeat a default", async () => {
    const c = await load(
      [
        "--config=/k.yaml",
        "--max-pods=110",
        "--healthz-port",
        "10248",
        "--pod-manifest-path=/m",
        "--sync-frequency=1m",
      ],
      { "/k.yaml": file },
    );
    expect(c.maxPods).toBe(110);
    expect(c.healthz).toEqual({ host: "127.0.0.2", port: 10248 });
    expect(c.staticPodPath).toBe("/m");
    expect(c.syncFrequencyMs).toBe(60_000);
    expect(c.server?.port).toBe(20250);
  });

  it("treats zero values as unset (defaults), except healthzPort 0 which disables healthz", async () => {
    const c = await load(["--config=/k.yaml"], {
      "/k.yaml": `${HEADER}maxPods: 0\nport: 0\naddress: ""\nfileCheckFrequency: 0s\nhealthzPort: 0\n`,
    });
    expect(c.maxPods).toBe(KUBELET_DEFAULTS.maxPods);
    expect(c.server?.port).toBe(10250);
    expect(c.server?.host).toBe("127.0.0.1");
    expect(c.fileCheckFrequencyMs).toBe(20_000);
    expect(c.healthz).toBeUndefined();
  });

  it("disables the kubelet API with enableServer: false", async () => {
    const c = await load(["--config=/k.yaml"], {
      "/k.yaml": `${HEADER}enableServer: false\naddress: 0.0.0.0\n`,
    });
    expect(c.server).toBeUndefined();
  });

  it("accepts kubelet fields it does not implement and lists those that are set", async () => {
    const c = await load(["--config=/k.yaml"], {
      "/k.yaml": `${HEADER}cgroupDriver: systemd\nreadOnlyPort: 0\nevictionHard: { memory.available: 100Mi }\ntlsMinVersion: ""\n`,
    });
    expect(c.ignoredFields).toEqual(["cgroupDriver", "evictionHard"]);
  });
});

describe("worknode kubelet configuration: bad input", () => {
  async function configError(text: string): Promise<string> {
    const err = await load(["--config=/k.yaml"], { "/k.yaml": text }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect(err).not.toBeInstanceOf(CliUsageError);
    const msg = (err as Error).message;
    expect(msg.split("\n")).toHaveLength(1);
    expect(msg).toMatch(/^--config \/k\.yaml: /);
    return msg;
  }

  it("names an unknown field, with a suggestion", async () => {
    expect(await configError(`${HEADER}staticPodPth: /x\n`)).toBe(
      '--config /k.yaml: unknown field "staticPodPth" (did you mean "staticPodPath"?)',
    );
    expect(await configError(`${HEADER}frobnicate: 1\n`)).toBe(
      '--config /k.yaml: unknown field "frobnicate"',
    );
  });

  it("requires apiVersion and kind", async () => {
    expect(await configError("kind: KubeletConfiguration\n")).toContain("apiVersion: missing");
    expect(await configError("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: Pod\n")).toContain(
      'kind: "Pod" (expected KubeletConfiguration)',
    );
  });

  it("rejects wrong types, bad durations, YAML errors, several documents and a missing file", async () => {
    expect(await configError(`${HEADER}maxPods: many\n`)).toContain(
      'maxPods: expected an integer, got "many"',
    );
    expect(await configError(`${HEADER}enableServer: yes please\n`)).toContain(
      "enableServer: expected true or false",
    );
    expect(await configError(`${HEADER}syncFrequency: 10\n`)).toContain("syncFrequency: expected a duration");
    expect(await configError(`${HEADER}fileCheckFrequency: soon\n`)).toContain('"soon" is not a duration');
    expect(await configError(`${HEADER}port: [1\n`)).toContain("YAML syntax error at line");
    expect(await configError(`${HEADER}---\n${HEADER}`)).toContain("several YAML documents");
    expect(await configError("")).toContain("empty file");
    const missing = await load(["--config=/nope.yaml"]).catch((e: Error) => e);
    expect(missing).toBeInstanceOf(ConfigError);
    expect((missing as Error).message).toBe("--config /nope.yaml: no such file");
  });

  it("rejects bad flag syntax and values as usage errors", async () => {
    const usage = async (argv: string[]) => {
      const err = await load(argv).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CliUsageError);
      return (err as Error).message;
    };
    expect(await usage(["--pod-manifest-pth=/x"])).toContain("unknown flag --pod-manifest-pth");
    expect(await usage(["--max-pods=lots"])).toContain('--max-pods: "lots" is not a whole number');
    expect(await usage(["--file-check-frequency=20"])).toContain("is not a duration");
    expect(await usage(["extra"])).toContain('unexpected argument "extra"');
    expect(await usage(["--healthz-port=70000"])).toContain(
      "healthzPort (--healthz-port) 70000 must be between",
    );
    expect(await usage(["--port=0"])).toContain("port (--port) 0 must be between 1 and 65535");
    expect(await usage(["--address=0.0.0.0"])).toContain("is not a loopback address");
    expect(await usage(["--address=localhost"])).toContain(
      'address (--address) "localhost" is not an IP address',
    );
    expect(await usage(["--healthz-bind-address=nope"])).toContain("is not an IP address");
    expect(await usage(["--tls-cert-file=/c.pem"])).toContain("give both or neither");
    expect(await usage(["--container-runtime-endpoint=tcp://1.2.3.4:1"])).toContain(
      "is not a unix socket endpoint",
    );
    expect(await usage(["--log-level=loud"])).toContain("--log-level");
    expect(await usage(["--sync-frequency=0s"])).toContain(
      "syncFrequency (--sync-frequency) must be greater than 0",
    );
  });

  it("validates values that come from the file with the same rules", async () => {
    const err = await load(["--config=/k.yaml"], { "/k.yaml": `${HEADER}address: 10.0.0.1\n` }).catch(
      (e: Error) => e,
    );
    expect((err as Error).message).toContain("address (--address) 10.0.0.1 is not a loopback address");
  });
});

describe("worknode kubelet configuration: joining a cluster", () => {
  it("is standalone without --kubeconfig, and joins with kubeconfig-style defaults with it", async () => {
    expect((await load([])).cluster).toBeUndefined();
    const c = await load(["--kubeconfig=/etc/kubernetes/kubelet.conf"]);
    expect(c.cluster).toEqual({
      kubeconfig: "/etc/kubernetes/kubelet.conf",
      bootstrapKubeconfig: undefined,
      rotateCertificates: false,
      registerNode: true,
      nodeLabels: {},
      registerWithTaints: [],
      nodeStatusUpdateFrequencyMs: 10_000,
      nodeStatusReportFrequencyMs: 300_000,
      auth: { clientCAFile: undefined, tokenWebhook: true, anonymous: false, authorizationMode: "Webhook" },
    });
  });

  it("reads the cluster flags, Go-style booleans included", async () => {
    const c = await load([
      "--kubeconfig=/k.conf",
      "--bootstrap-kubeconfig=/b.conf",
      "--rotate-certificates",
      "--register-node=false",
      "--node-labels=role=edge,example.com/tier=gold",
      "--register-with-taints=dedicated=infra:NoSchedule,example.com/maint:NoExecute",
      "--node-ip=10.1.2.3,fd00::3",
      "--cluster-dns=10.96.0.10",
      "--cluster-domain=cluster.local",
      "--client-ca-file=/ca.pem",
      "--anonymous-auth=true",
      "--authentication-token-webhook=false",
      "--authorization-mode=AlwaysAllow",
      "--node-status-update-frequency=4s",
      "--address=0.0.0.0",
    ]);
    expect(c.cluster).toMatchObject({
      kubeconfig: "/k.conf",
      bootstrapKubeconfig: "/b.conf",
      rotateCertificates: true,
      registerNode: false,
      nodeLabels: { role: "edge", "example.com/tier": "gold" },
      registerWithTaints: [
        { key: "dedicated", value: "infra", effect: "NoSchedule" },
        { key: "example.com/maint", effect: "NoExecute" },
      ],
      nodeStatusUpdateFrequencyMs: 4000,
      auth: {
        clientCAFile: "/ca.pem",
        tokenWebhook: false,
        anonymous: true,
        authorizationMode: "AlwaysAllow",
      },
    });
    expect(c.nodeIPs).toEqual(["10.1.2.3", "fd00::3"]);
    expect(c.clusterDNS).toEqual(["10.96.0.10"]);
    expect(c.clusterDomain).toBe("cluster.local");
    expect(c.server?.host).toBe("0.0.0.0");
  });

  it("takes the cluster settings of a KubeletConfiguration file, paths relative to it", async () => {
    const c = await load(["--config=/etc/wn/k.yaml", "--kubeconfig=/k.conf"], {
      "/etc/wn/k.yaml": `${HEADER}clusterDNS: [10.96.0.10]
clusterDomain: cluster.local
registerWithTaints:
  - key: dedicated
    value: infra
    effect: NoSchedule
rotateCertificates: true
nodeStatusReportFrequency: 1m
containerLogMaxSize: 32Ki
containerLogMaxFiles: 3
containerLogMonitorInterval: 5s
authentication:
  x509: { clientCAFile: pki/ca.crt }
  webhook: { enabled: true }
  anonymous: { enabled: false }
authorization:
  mode: Webhook
`,
    });
    expect(c.clusterDNS).toEqual(["10.96.0.10"]);
    expect(c.clusterDomain).toBe("cluster.local");
    expect(c.ignoredFields).toEqual([]);
    expect(c.containerLogs).toEqual({ maxSizeBytes: 32 * 1024, maxFiles: 3, monitorIntervalMs: 5000 });
    expect(c.cluster).toMatchObject({
      rotateCertificates: true,
      registerWithTaints: [{ key: "dedicated", value: "infra", effect: "NoSchedule" }],
      nodeStatusReportFrequencyMs: 60_000,
      auth: {
        clientCAFile: "/etc/wn/pki/ca.crt",
        tokenWebhook: true,
        anonymous: false,
        authorizationMode: "Webhook",
      },
    });
  });

  it("rejects bad cluster flags and fields with the reason", async () => {
    const usage = async (argv: string[], files: Record<string, string> = {}) => {
      const err = await load(argv, files).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    };
    expect(await usage(["--kubeconfig=/k", "--register-with-taints=a=b"])).toContain(
      '--register-with-taints: invalid taint "a=b": expected key=value:Effect',
    );
    expect(await usage(["--kubeconfig=/k", "--register-with-taints=a=b:Sometimes"])).toContain(
      "effect must be one of NoSchedule, PreferNoSchedule, NoExecute",
    );
    expect(await usage(["--node-labels=novalue"])).toContain(
      'invalid node label "novalue": expected key=value',
    );
    expect(await usage(["--node-labels=bad key=x"])).toContain("--node-labels: invalid node labels");
    expect(await usage(["--node-ip=10.0.0.1,10.0.0.2"])).toContain("at most one IPv4 and one IPv6");
    expect(await usage(["--node-ip=host"])).toContain('--node-ip: "host" is not an IP address');
    expect(await usage(["--cluster-dns=dns"])).toContain('--cluster-dns: "dns" is not an IP address');
    expect(await usage(["--kubeconfig=/k", "--authorization-mode=RBAC"])).toContain(
      'authorization.mode (--authorization-mode) "RBAC" is not one of AlwaysAllow, Webhook',
    );
    expect(await usage(["--bootstrap-kubeconfig=/b"])).toContain("--bootstrap-kubeconfig needs --kubeconfig");
    expect(await usage(["--container-log-max-files=1"])).toContain(
      "containerLogMaxFiles: 1 must be an integer greater than 1",
    );
    expect(await usage(["--container-log-max-size=lots"])).toContain(
      "containerLogMaxSize: lots is not a quantity",
    );
    expect(await usage(["--register-node=maybe"])).toContain('--register-node: "maybe" is not a boolean');
    expect(await usage(["--address=0.0.0.0"])).toContain("without an API server (--kubeconfig)");
    expect(
      await usage(["--config=/k.yaml"], {
        "/k.yaml": `${HEADER}authentication:\n  x509: { clientCAFile: 3 }\n`,
      }),
    ).toContain("authentication: x509.clientCAFile: expected a string, got 3");
    expect(
      await usage(["--config=/k.yaml"], {
        "/k.yaml": `${HEADER}registerWithTaints: [{ key: a, effect: Never }]\n`,
      }),
    ).toContain('registerWithTaints: [0]: invalid taint "a:Never"');
  });
});
