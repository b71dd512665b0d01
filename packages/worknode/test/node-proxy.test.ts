/**
 * The proxy half of `worknode node` without root: the services file and the node's pods
 * (a {@link KubeletPodSource} over a list the test controls) through the local
 * endpoint-slice controller, the tracker and the controller into a recording backend.
 * Also the `node` command's proxy flags and `--cleanup`.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  createLogger,
  type IPFamily,
  KUBE_RESOURCES,
  type Pod,
  type Proxier,
  type SyncInput,
  type SyncStats,
} from "@worknode/core";
import type { IptablesProxierOptions } from "@worknode/proxy-iptables";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeApiServer } from "../../core/test/helpers/fake-apiserver.js";
import { createNodeCommand } from "../src/commands/node.js";
import { KubeletPodSource } from "../src/commands/node-pods.js";
import { type RunningNodeProxy, startNodeProxy } from "../src/commands/node-proxy.js";
import { recordingBackend as recordingBackendOf } from "./helpers/recording-backend.js";

class RecordingProxier implements Proxier {
  readonly mode = "iptables";
  readonly syncs: SyncInput[] = [];
  readonly labels: (Readonly<Record<string, string>> | undefined)[] = [];
  constructor(readonly options: IptablesProxierOptions) {}
  setNodeLabels(labels: Readonly<Record<string, string>> | undefined): boolean {
    this.labels.push(labels);
    return true;
  }
  async sync(input: SyncInput): Promise<SyncStats> {
    this.syncs.push(input);
    return { servicePorts: input.snapshot.services.size, endpoints: 0 };
  }
  async cleanup(): Promise<void> {}
  /** Ready endpoint addresses of a service port in the latest sync. */
  ready(key: string): string[] {
    const last = this.syncs.at(-1);
    return (last?.snapshot.endpoints.get(key) ?? [])
      .filter((e) => e.ready)
      .map((e) => e.address)
      .sort();
  }
}

function recordingBackend(families: IPFamily[] = ["IPv4"]) {
  return recordingBackendOf((options) => new RecordingProxier(options), families);
}

function pod(name: string, ip: string, ready: boolean, labels: Record<string, string> = { app: "web" }): Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: `${name}-node-1`, namespace: "default", uid: `uid-${name}`, labels },
    spec: {
      nodeName: "node-1",
      containers: [{ name: "c", image: "x", ports: [{ name: "http", containerPort: 8080 }] }],
    },
    status: {
      phase: "Running",
      podIP: ip,
      podIPs: [{ ip }],
      conditions: [{ type: "Ready", status: ready ? "True" : "False" }],
    },
  };
}

const SERVICES = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec:
  clusterIP: 10.96.0.12
  ports: [{name: p, port: 9100}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ext-1, namespace: default, labels: {kubernetes.io/service-name: ext}}
addressType: IPv4
ports: [{name: p, port: 9100, protocol: TCP}]
endpoints:
- addresses: [10.88.0.200]
  conditions: {ready: true}
`;

async function waitFor(what: string, fn: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const SETTINGS = {
  mode: "iptables" as const,
  clusterCIDRs: ["10.244.0.0/16"],
  masqueradeAll: true,
  nodePortAddresses: ["primary"],
  masqueradeBit: 13,
  localhostNodePorts: false,
  minSyncPeriodMs: 0,
  syncPeriodMs: 30_000,
  healthzBindAddress: undefined,
  metricsBindAddress: undefined,
};

describe("startNodeProxy", () => {
  let dir: string;
  let servicesPath: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "wn-node-proxy-"));
    servicesPath = path.join(dir, "services.yaml");
    await writeFile(servicesPath, SERVICES);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("programs selector Services from the node's pods as their readiness changes, file slices as given", async () => {
    let pods: Pod[] = [pod("a", "10.244.0.11", true), pod("b", "10.244.0.12", true)];
    const source = new KubeletPodSource({ listPods: () => pods, refreshMs: 60_000 });
    await source.start();
    const { backend, state } = recordingBackend();
    let proxy: RunningNodeProxy | undefined;
    try {
      proxy = await startNodeProxy({
        settings: SETTINGS,
        nodeName: "node-1",
        nodeIPs: ["192.168.0.2", "127.0.0.1"],
        servicesPath,
        rescanIntervalMs: 60_000,
        pods: source,
        backend,
        logger: createLogger({ name: "test", level: "silent" }),
      });
      const p = state.proxiers[0]!;
      // The backend gets kube-proxy's settings, node-port keywords expanded.
      expect(p.options).toMatchObject({
        nodeName: "node-1",
        families: ["IPv4"],
        clusterCIDRs: ["10.244.0.0/16"],
        masqueradeAll: true,
        masqueradeBit: 13,
        localhostNodePorts: false,
        nodePortAddresses: ["192.168.0.2/32"],
      });
      await waitFor("both pods", () => p.ready("default/web:http/TCP").length === 2);
      expect(p.ready("default/web:http/TCP")).toEqual(["10.244.0.11:8080", "10.244.0.12:8080"]);
      expect(p.ready("default/ext:p/TCP")).toEqual(["10.88.0.200:9100"]);

      pods = [pod("a", "10.244.0.11", false), pod("b", "10.244.0.12", true)];
      source.refresh();
      await waitFor("a unready", () => p.ready("default/web:http/TCP").length === 1);
      expect(p.ready("default/web:http/TCP")).toEqual(["10.244.0.12:8080"]);

      pods = [pod("b", "10.244.0.12", true), pod("c", "10.244.0.13", true, { app: "other" })];
      source.refresh();
      await waitFor("a gone", () => {
        const last = p.syncs.at(-1)?.snapshot.endpoints.get("default/web:http/TCP") ?? [];
        return last.length === 1;
      });
      expect(p.ready("default/web:http/TCP")).toEqual(["10.244.0.12:8080"]);
    } finally {
      await proxy?.stop();
      await source.stop();
    }
  });

  it("with a kubeconfig, hands this node's labels to the backend and syncs on each change", async () => {
    const api = await FakeApiServer.start({ resources: [KUBE_RESOURCES.nodes] });
    api.add("nodes", { metadata: { name: "node-1", labels: { "topology.kubernetes.io/zone": "zone-a" } } });
    const source = new KubeletPodSource({
      listPods: () => [pod("a", "10.244.0.11", true)],
      refreshMs: 60_000,
    });
    await source.start();
    const { backend, state } = recordingBackend();
    let proxy: RunningNodeProxy | undefined;
    try {
      proxy = await startNodeProxy({
        settings: SETTINGS,
        nodeName: "node-1",
        nodeIPs: ["192.168.0.2"],
        servicesPath,
        rescanIntervalMs: 60_000,
        pods: source,
        backend,
        kubeConfig: api.kubeConfig(),
        logger: createLogger({ name: "test", level: "silent" }),
      });
      const p = state.proxiers[0]!;
      // The labels arrive before the first sync.
      expect(p.labels).toEqual([{ "topology.kubernetes.io/zone": "zone-a" }]);
      await waitFor("the first sync", () => p.syncs.length > 0);
      const before = p.syncs.length;
      api.modify("nodes", {
        metadata: { name: "node-1", labels: { "topology.kubernetes.io/zone": "zone-b" } },
      });
      await waitFor("the new zone", () => p.labels.length === 2);
      expect(p.labels[1]).toEqual({ "topology.kubernetes.io/zone": "zone-b" });
      await waitFor("a sync after the change", () => p.syncs.length > before);
    } finally {
      await proxy?.stop();
      await source.stop();
      await api.close();
    }
  });

  it("fails with one line when no iptables family works", async () => {
    const { backend } = recordingBackend([]);
    const source = new KubeletPodSource({ listPods: () => [] });
    await expect(
      startNodeProxy({
        settings: SETTINGS,
        nodeName: "n",
        nodeIPs: [],
        servicesPath,
        rescanIntervalMs: 60_000,
        pods: source,
        backend,
        logger: createLogger({ name: "test", level: "silent" }),
      }),
    ).rejects.toThrow(/no usable iptables/);
  });
});

describe("worknode node: proxy flags", () => {
  function io() {
    const out = { stdout: "", stderr: "" };
    return {
      out,
      io: {
        stdout: (t: string) => {
          out.stdout += t;
        },
        stderr: (t: string) => {
          out.stderr += t;
        },
        signal: AbortSignal.abort(),
      },
    };
  }

  it("--cleanup removes the proxy rules through the backend and exits without running anything", async () => {
    const { backend, state } = recordingBackend(["IPv4", "IPv6"]);
    const { io: cliIO, out } = io();
    const status = await createNodeCommand({ proxyBackend: backend }).run(["--cleanup"], cliIO);
    expect(status).toBe(0);
    expect(state.cleanups).toBe(1);
    expect(state.proxiers).toHaveLength(0);
    expect(out.stdout).toBe("removed the proxy rules (IPv4, IPv6)\n");
  });

  it("rejects bad proxy flag values before touching the machine", async () => {
    const { backend, state } = recordingBackend();
    const cmd = createNodeCommand({ proxyBackend: backend });
    const bad: [string[], RegExp][] = [
      [["--proxy-mode", "ipvs"], /proxy mode "ipvs" is not implemented yet/],
      [["--proxy-mode", "bogus"], /unknown proxy mode "bogus"/],
      [["--cluster-cidr", "10.0.0.0/33"], /--cluster-cidr: "10.0.0.0\/33" is not a CIDR/],
      [["--iptables-localhost-nodeports", "yes"], /"yes" is not true or false/],
      [["--iptables-masquerade-bit", "32"], /--iptables-masquerade-bit: 32 is not 0-31/],
      [["--nodeport-addresses", "nowhere"], /--nodeport-addresses: "nowhere" is not a CIDR/],
      [["--metrics-bind-address", "localhost"], /--metrics-bind-address: "localhost" is not an IP:port/],
    ];
    for (const [args, pattern] of bad) {
      await expect(cmd.run(["--cleanup", ...args], io().io)).rejects.toThrow(pattern);
    }
    expect(state.cleanups).toBe(0);
  });
});
