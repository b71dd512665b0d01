import { ConfigError } from "@worknode/core";
import { describe, expect, it } from "vitest";
import {
  checkNodePortAddresses,
  checkProxyMode,
  parseClusterCIDRs,
  parseHostPort,
  parseKubeProxyConfiguration,
  preprocessArgs,
  resolveProxySettings,
} from "../src/commands/proxy-config.js";
import { CliUsageError } from "../src/flags.js";

const HEADER = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n";

/** A config as kubeadm writes it: every field present, most of them zero. */
const KUBEADM_STYLE = `${HEADER}bindAddress: 0.0.0.0
bindAddressHardFail: false
clientConnection:
  acceptContentTypes: ""
  burst: 0
  contentType: ""
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
  qps: 0
clusterCIDR: 10.244.0.0/16,fd00:10:244::/56
configSyncPeriod: 0s
conntrack:
  maxPerCore: null
  min: null
  tcpCloseWaitTimeout: null
  tcpEstablishedTimeout: null
detectLocal:
  bridgeInterface: ""
  interfaceNamePrefix: ""
detectLocalMode: ""
enableProfiling: false
healthzBindAddress: ""
hostnameOverride: ""
iptables:
  localhostNodePorts: null
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
ipvs:
  excludeCIDRs: null
  minSyncPeriod: 0s
  scheduler: ""
  strictARP: false
  syncPeriod: 0s
  tcpFinTimeout: 0s
  tcpTimeout: 0s
  udpTimeout: 0s
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
  verbosity: 0
metricsBindAddress: ""
mode: ""
nftables:
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
nodePortAddresses: null
oomScoreAdj: null
portRange: ""
showHiddenMetricsForVersion: ""
winkernel:
  enableDSR: false
  forwardHealthCheckVip: false
  networkName: ""
  rootHnsEndpointName: ""
  sourceVip: ""
`;

describe("KubeProxyConfiguration files", () => {
  it("reads a kubeadm-style file: zero values are unset, kube-proxy's own defaults apply", () => {
    const file = parseKubeProxyConfiguration(KUBEADM_STYLE, "kube-proxy.yaml");
    expect(file.settings).toEqual({
      kubeconfig: "/var/lib/kube-proxy/kubeconfig.conf",
      bindAddress: "0.0.0.0",
      clusterCIDR: "10.244.0.0/16,fd00:10:244::/56",
    });
    expect(file.ignoredFields).toEqual([]);
    const r = resolveProxySettings({}, file.settings, "kube-proxy.yaml");
    expect(r).toMatchObject({
      mode: "iptables",
      minSyncPeriodMs: 1000,
      syncPeriodMs: 30_000,
      masqueradeBit: 14,
      masqueradeAll: false,
      localhostNodePorts: true,
      healthzBindAddress: { host: "0.0.0.0", port: 10256 },
      metricsBindAddress: { host: "127.0.0.1", port: 10249 },
      clusterCIDRs: ["10.244.0.0/16", "fd00:10:244::/56"],
      kubeconfig: "/var/lib/kube-proxy/kubeconfig.conf",
      primaryIP: undefined,
    });
  });

  it("takes every supported field", () => {
    const file = parseKubeProxyConfiguration(
      `${HEADER}mode: iptables
clusterCIDR: 10.0.0.0/8
hostnameOverride: Node-7
bindAddress: 192.168.1.5
healthzBindAddress: 127.0.0.1:11256
metricsBindAddress: "[::1]:11249"
nodePortAddresses: [192.168.0.0/16, primary]
iptables:
  minSyncPeriod: 2s
  syncPeriod: 1m0s
  masqueradeAll: true
  masqueradeBit: 15
  localhostNodePorts: false
`,
      "c.yaml",
    );
    const r = resolveProxySettings({}, file.settings, "c.yaml");
    expect(r).toEqual({
      mode: "iptables",
      hostnameOverride: "node-7",
      primaryIP: "192.168.1.5",
      clusterCIDRs: ["10.0.0.0/8"],
      masqueradeAll: true,
      nodePortAddresses: ["192.168.0.0/16", "primary"],
      minSyncPeriodMs: 2000,
      syncPeriodMs: 60_000,
      masqueradeBit: 15,
      localhostNodePorts: false,
      healthzBindAddress: { host: "127.0.0.1", port: 11256 },
      metricsBindAddress: { host: "::1", port: 11249 },
      kubeconfig: undefined,
    });
  });

  it("lists kube-proxy fields worknode ignores when they are set", () => {
    const file = parseKubeProxyConfiguration(
      `${HEADER}ipvs: {scheduler: rr, strictARP: true}\nconntrack: {maxPerCore: 32768}\nfeatureGates: {Foo: true}\n`,
      "c.yaml",
    );
    expect(file.ignoredFields).toEqual([
      "ipvs.scheduler",
      "ipvs.strictARP",
      "conntrack.maxPerCore",
      "featureGates",
    ]);
  });

  it("names an unknown field, nested ones with their path, with a suggestion", () => {
    expect(() => parseKubeProxyConfiguration(`${HEADER}iptables:\n  masqueradeAl: true\n`, "c.yaml")).toThrow(
      new ConfigError(
        '--config c.yaml: unknown field "iptables.masqueradeAl" (did you mean "masqueradeAll"?)',
      ),
    );
    expect(() => parseKubeProxyConfiguration(`${HEADER}frobnicate: 1\n`, "c.yaml")).toThrow(
      '--config c.yaml: unknown field "frobnicate"',
    );
    expect(() => parseKubeProxyConfiguration(`${HEADER}ipvs: {schedular: rr}\n`, "c.yaml")).toThrow(
      'unknown field "ipvs.schedular" (did you mean "scheduler"?)',
    );
  });

  it("names a field of the wrong type", () => {
    expect(() =>
      parseKubeProxyConfiguration(`${HEADER}iptables: {masqueradeBit: fourteen}\n`, "c.yaml"),
    ).toThrow('--config c.yaml: iptables.masqueradeBit: expected a whole number, got "fourteen"');
    expect(() => parseKubeProxyConfiguration(`${HEADER}iptables: {syncPeriod: 30}\n`, "c.yaml")).toThrow(
      "iptables.syncPeriod: expected a duration",
    );
    expect(() => parseKubeProxyConfiguration(`${HEADER}iptables: {minSyncPeriod: soon}\n`, "c.yaml")).toThrow(
      'iptables.minSyncPeriod: "soon" is not a duration',
    );
    expect(() => parseKubeProxyConfiguration(`${HEADER}nodePortAddresses: 10.0.0.0/8\n`, "c.yaml")).toThrow(
      "nodePortAddresses: expected a list of strings",
    );
    expect(() => parseKubeProxyConfiguration(`${HEADER}iptables: true\n`, "c.yaml")).toThrow(
      "iptables: expected a mapping, got true",
    );
  });

  it("rejects the wrong apiVersion or kind, YAML errors and several documents", () => {
    expect(() =>
      parseKubeProxyConfiguration("apiVersion: v1\nkind: KubeProxyConfiguration\n", "c.yaml"),
    ).toThrow('--config c.yaml: apiVersion: "v1" (expected kubeproxy.config.k8s.io/v1alpha1)');
    expect(() =>
      parseKubeProxyConfiguration("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: Pod\n", "c.yaml"),
    ).toThrow('kind: "Pod" (expected KubeProxyConfiguration)');
    expect(() => parseKubeProxyConfiguration(`${HEADER}mode: [unclosed\n`, "c.yaml")).toThrow(
      /--config c\.yaml: YAML syntax error at line \d+/,
    );
    expect(() => parseKubeProxyConfiguration(`${HEADER}---\n${HEADER}`, "c.yaml")).toThrow(
      "several YAML documents",
    );
    expect(() => parseKubeProxyConfiguration("", "c.yaml")).toThrow("empty file");
  });

  it("names the config field when a value is invalid, and the flag when the flag is", () => {
    const file = parseKubeProxyConfiguration(`${HEADER}iptables: {masqueradeBit: 40}\n`, "c.yaml").settings;
    expect(() => resolveProxySettings({}, file, "c.yaml")).toThrow(
      "--config c.yaml: iptables.masqueradeBit: 40 is not in 0-31",
    );
    expect(() => resolveProxySettings({ masqueradeBit: 32 }, undefined)).toThrow(
      "--iptables-masquerade-bit: 32 is not in 0-31",
    );
    const cidr = parseKubeProxyConfiguration(`${HEADER}clusterCIDR: 10.0.0.0/33\n`, "c.yaml").settings;
    expect(() => resolveProxySettings({}, cidr, "c.yaml")).toThrow(
      '--config c.yaml: clusterCIDR: "10.0.0.0/33" is not a CIDR',
    );
  });
});

describe("precedence: explicit flags, then the file, then kube-proxy's defaults", () => {
  const file = parseKubeProxyConfiguration(
    `${HEADER}mode: iptables
clusterCIDR: 10.0.0.0/8
hostnameOverride: from-file
healthzBindAddress: 127.0.0.1:1111
metricsBindAddress: 127.0.0.1:2222
iptables: {masqueradeAll: true, minSyncPeriod: 5s, syncPeriod: 50s, masqueradeBit: 10, localhostNodePorts: false}
clientConnection: {kubeconfig: /from/file}
`,
    "c.yaml",
  ).settings;

  it("iptables.localhostNodePorts: an explicit false in the file counts; an explicit flag beats it", () => {
    expect(resolveProxySettings({}, file, "c.yaml").localhostNodePorts).toBe(false);
    expect(resolveProxySettings({ localhostNodePorts: true }, file, "c.yaml").localhostNodePorts).toBe(true);
    expect(resolveProxySettings({}, undefined).localhostNodePorts).toBe(true);
    expect(() =>
      parseKubeProxyConfiguration(`${HEADER}iptables: {localhostNodePorts: "no"}\n`, "c.yaml"),
    ).toThrow(/--config c\.yaml: iptables\.localhostNodePorts: expected true or false/);
  });

  it("an explicit flag beats the file; an absent one leaves the file's value", () => {
    const r = resolveProxySettings(
      {
        hostnameOverride: "from-flag",
        minSyncPeriodMs: 0,
        masqueradeAll: false,
        healthzBindAddress: "[::]:3333",
      },
      file,
      "c.yaml",
    );
    expect(r.hostnameOverride).toBe("from-flag");
    expect(r.minSyncPeriodMs).toBe(0);
    expect(r.masqueradeAll).toBe(false);
    expect(r.healthzBindAddress).toEqual({ host: "::", port: 3333 });
    expect(r.syncPeriodMs).toBe(50_000);
    expect(r.masqueradeBit).toBe(10);
    expect(r.clusterCIDRs).toEqual(["10.0.0.0/8"]);
    expect(r.metricsBindAddress).toEqual({ host: "127.0.0.1", port: 2222 });
    expect(r.kubeconfig).toBe("/from/file");
  });

  it("an empty bind-address flag disables that server", () => {
    const r = resolveProxySettings({ healthzBindAddress: null, metricsBindAddress: null }, file);
    expect(r.healthzBindAddress).toBeUndefined();
    expect(r.metricsBindAddress).toBeUndefined();
  });

  it("defaults follow the family of --bind-address", () => {
    const r = resolveProxySettings({ bindAddress: "fd00::5" }, undefined);
    expect(r.primaryIP).toBe("fd00::5");
    expect(r.healthzBindAddress).toEqual({ host: "::", port: 10256 });
    expect(r.metricsBindAddress).toEqual({ host: "::1", port: 10249 });
    expect(resolveProxySettings({ bindAddress: "::" }, undefined).primaryIP).toBeUndefined();
  });

  it("checks the sync periods against each other", () => {
    expect(() => resolveProxySettings({ minSyncPeriodMs: 10_000, syncPeriodMs: 5_000 }, undefined)).toThrow(
      "--iptables-sync-period: must be at least the minimum sync period (10000 ms)",
    );
    expect(() => resolveProxySettings({ syncPeriodMs: 0, minSyncPeriodMs: 0 }, undefined)).toThrow(
      "--iptables-sync-period: must be greater than 0",
    );
  });
});

describe("flag values", () => {
  it("proxy modes: iptables, nftables and ebpf run, kube-proxy's others are not implemented, the rest is a usage error", () => {
    expect(checkProxyMode("iptables")).toBe("iptables");
    expect(checkProxyMode("nftables")).toBe("nftables");
    expect(checkProxyMode("ebpf")).toBe("ebpf");
    for (const m of ["userspace", "ipvs"]) {
      const err = (() => {
        try {
          checkProxyMode(m);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(ConfigError);
      expect(err).not.toBeInstanceOf(CliUsageError);
      expect((err as Error).message).toBe(
        `--proxy-mode: proxy mode "${m}" is not implemented yet (implemented: iptables, nftables, ebpf)`,
      );
    }
    expect(() => checkProxyMode("kernelspace")).toThrow(CliUsageError);
    expect(() => checkProxyMode("kernelspace")).toThrow('unknown proxy mode "kernelspace"');
  });

  it("host:port addresses", () => {
    expect(parseHostPort("0.0.0.0:10256", "--x", 1)).toEqual({ host: "0.0.0.0", port: 10256 });
    expect(parseHostPort("[::]:10256", "--x", 1)).toEqual({ host: "::", port: 10256 });
    expect(parseHostPort("10.1.2.3", "--x", 99)).toEqual({ host: "10.1.2.3", port: 99 });
    expect(parseHostPort("fd00::1", "--x", 99)).toEqual({ host: "fd00::1", port: 99 });
    expect(() => parseHostPort("localhost:10256", "--x", 1)).toThrow(
      '--x: "localhost:10256" is not an IP:port',
    );
    expect(() => parseHostPort("1.2.3.4:70000", "--x", 1)).toThrow(
      '--x: port in "1.2.3.4:70000" is not 0-65535',
    );
  });

  it("cluster CIDRs: one per family", () => {
    expect(parseClusterCIDRs("10.244.1.0/16, fd00::/64")).toEqual(["10.244.0.0/16", "fd00::/64"]);
    expect(() => parseClusterCIDRs("10.0.0.0/8,10.1.0.0/16")).toThrow("has two IPv4 CIDRs");
    expect(parseClusterCIDRs(undefined)).toEqual([]);
  });

  it("node port addresses: CIDRs and kube-proxy's keywords", () => {
    expect(checkNodePortAddresses(["10.0.0.0/8", "primary", "localhost", "all", ""])).toEqual([
      "10.0.0.0/8",
      "primary",
      "localhost",
      "all",
    ]);
    expect(() => checkNodePortAddresses(["10.0.0.1"])).toThrow(
      '--nodeport-addresses: "10.0.0.1" is not a CIDR or one of primary, localhost, all',
    );
  });

  it("pflag syntax: empty values and --bool=false", () => {
    const p = preprocessArgs(
      [
        "--healthz-bind-address=",
        "--metrics-bind-address",
        "",
        "--masquerade-all=false",
        "--cleanup=true",
        "--x",
        "y",
      ],
      ["healthz-bind-address", "metrics-bind-address"],
      ["masquerade-all", "cleanup"],
    );
    expect(p.argv).toEqual(["--x", "y"]);
    expect([...p.emptied].sort()).toEqual(["healthz-bind-address", "metrics-bind-address"]);
    expect(Object.fromEntries(p.booleans)).toEqual({ "masquerade-all": false, cleanup: true });
    expect(() => preprocessArgs(["--cleanup=yes"], [], ["cleanup"])).toThrow(
      '--cleanup: "yes" is not a boolean (true or false)',
    );
  });
});
