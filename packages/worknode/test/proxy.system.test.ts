/**
 * `worknode proxy` as a real process with real iptables, inside network namespaces
 * made by the test (the host's own tables are never touched): the CLI runs under
 * `ip netns exec` in a "node" namespace, two "pod" namespaces answer on a bridge.
 *
 *   node (bridge 10.244.0.1/24) ──veth── pod-a (10.244.0.11:8080 answers "pod-a")
 *                               └─veth── pod-b (10.244.0.12:8080 answers "pod-b")
 */
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  connectFromNetns,
  createBridge,
  createNetns,
  createVethPair,
  destroyAll,
  type Netns,
  startNetnsServer,
} from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CLI_NODE_ARGS,
  type CollectedOutput,
  eventually,
  spawnCliProxy,
  webServicesYaml,
} from "./helpers/proxy-setup.js";

const CLUSTER_IP = "172.30.0.10";
const EMPTY_IP = "172.30.0.12";
const PODS = [
  { name: "pod-a", ip: "10.244.0.11" },
  { name: "pod-b", ip: "10.244.0.12" },
] as const;

function servicesYaml(endpointIP: string): string {
  return webServicesYaml({ clusterIP: CLUSTER_IP, endpointIP, emptyName: "empty", emptyIP: EMPTY_IP });
}

let node: Netns;
let dir: string;
let servicesFile: string;

/** `iptables-save` and `ip6tables-save` of the node namespace, without comments and counters. */
async function saveNode(): Promise<string> {
  let out = "";
  for (const cmd of ["iptables-save", "ip6tables-save"]) {
    const r = await node.exec(cmd, []);
    out += r.stdout
      .split("\n")
      .filter((l) => !l.startsWith("#"))
      .map((l) => l.replace(/\[\d+:\d+\]/g, "[0:0]"))
      .join("\n");
  }
  return out;
}

/** Runs the CLI to completion inside the node namespace. */
async function cli(args: string[]) {
  return node.exec(process.execPath, [...CLI_NODE_ARGS, ...args], { allowFailure: true, timeoutMs: 120_000 });
}

async function connect(host: string) {
  const r = await connectFromNetns(node, { protocol: "tcp", host, port: 80, timeoutMs: 2_000 });
  return r.ok ? r.reply : `error:${r.error}`;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "worknode-proxy-sys-"));
  servicesFile = path.join(dir, "services.yaml");
  node = await createNetns("node");
  const bridge = await createBridge(node, { addresses: ["10.244.0.1/24"] });
  for (const pod of PODS) {
    const ns = await createNetns(pod.name.replace("-", ""));
    const pair = await createVethPair(node, ns, { addressB: `${pod.ip}/24` });
    await bridge.addPort(pair.nameA);
    await ns.exec("ip", ["route", "add", "default", "via", "10.244.0.1"]);
    await startNetnsServer(ns, { protocol: "tcp", port: 8080, reply: pod.name });
  }
  // A real node has a default route: a cluster IP must be routable for the REJECT / DNAT to apply.
  await node.exec("ip", ["route", "add", "default", "dev", bridge.name]);
  // The node has rules of its own in every table the proxy touches, in both families.
  for (const cmd of ["iptables", "ip6tables"]) {
    await node.exec(cmd, ["-t", "nat", "-A", "POSTROUTING", "-o", "eth9", "-j", "MASQUERADE"]);
    await node.exec(cmd, ["-t", "filter", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"]);
    await node.exec(cmd, [
      "-t",
      "mangle",
      "-A",
      "PREROUTING",
      "-p",
      "udp",
      "--dport",
      "5353",
      "-j",
      "ACCEPT",
    ]);
  }
}, 120_000);

afterAll(async () => {
  await destroyAll();
  await rm(dir, { recursive: true, force: true });
});

describe("worknode proxy --services-file in a node namespace", () => {
  let baseline: string;
  let proxy: ChildProcess;
  let out: CollectedOutput;

  it("programs the services file: the cluster IP reaches the backend, an endpoint-less service refuses", async () => {
    baseline = await saveNode();
    expect(baseline).toContain("--dport 22 -j ACCEPT");
    await writeFile(servicesFile, servicesYaml(PODS[0].ip));
    const started = spawnCliProxy(
      (command, args) => node.spawn(command, args),
      ["--services-file", servicesFile, "--hostname-override", "node-1", "--cluster-cidr", "10.244.0.0/16"],
    );
    proxy = started.child;
    out = started.out;
    await started.waitServing(
      "traffic to the cluster IP reaching pod-a",
      async () => (await connect(CLUSTER_IP)) === "pod-a",
    );
    expect(out.text).toContain("worknode proxy is running");
    expect(await connect(EMPTY_IP)).toBe("error:ECONNREFUSED");
    const nat = (await node.exec("iptables-save", ["-t", "nat"])).stdout;
    expect(nat).toContain('-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES');
    expect(nat).toMatch(/-A KUBE-SEP-[A-Z2-7]{16} .*-j DNAT --to-destination 10\.244\.0\.11:8080/);
    // Both families are programmed (the namespace has ip6tables too).
    expect((await node.exec("ip6tables-save", ["-t", "nat"])).stdout).toContain(":KUBE-SERVICES - ");
  });

  it("answers /healthz with kube-proxy's JSON and serves /metrics", async () => {
    const r = await node.exec("curl", ["-sS", "-w", "\n%{http_code}", "http://127.0.0.1:10256/healthz"]);
    const [body, code] = r.stdout.split("\n");
    expect(code).toBe("200");
    const json = JSON.parse(body ?? "") as Record<string, unknown>;
    expect(Object.keys(json)).toEqual(["lastUpdated", "currentTime", "nodeEligible"]);
    expect(json.nodeEligible).toBe(true);
    expect(String(json.lastUpdated)).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \+0000 UTC$/);
    const m = await node.exec("curl", ["-sS", "http://127.0.0.1:10249/metrics"]);
    expect(m.stdout).toMatch(/^kubeproxy_sync_proxy_rules_last_timestamp_seconds \d/m);
    expect(m.stdout).toMatch(
      /^kubeproxy_sync_proxy_rules_iptables_total\{table="nat",ip_family="IPv4"\} \d+/m,
    );
  });

  it("plan --diff finds nothing to change against what the proxy wrote, and shows an endpoint change", async () => {
    const same = await cli([
      "proxy",
      "plan",
      "--services-file",
      servicesFile,
      "--hostname-override",
      "node-1",
      "--cluster-cidr",
      "10.244.0.0/16",
      "--diff",
    ]);
    expect(same.stderr).toBe("");
    expect(same.exitCode).toBe(0);
    expect(same.stdout).toContain("# IPv4: no differences");

    const moved = path.join(dir, "moved.yaml");
    await writeFile(moved, servicesYaml(PODS[1].ip));
    const d = await cli([
      "proxy",
      "plan",
      "--services-file",
      moved,
      "--hostname-override",
      "node-1",
      "--cluster-cidr",
      "10.244.0.0/16",
      "--diff",
    ]);
    expect(d.exitCode).toBe(0);
    expect(d.stdout).toMatch(/^@@ nat KUBE-SEP-[A-Z2-7]{16} \(new chain\) @@$/m);
    expect(d.stdout).toMatch(/^\+-A KUBE-SEP-\S+ .*--to-destination 10\.244\.0\.12:8080$/m);
    expect(d.stdout).toMatch(/^@@ nat KUBE-SEP-[A-Z2-7]{16} \(deleted chain\) @@$/m);
    expect(d.stdout).toMatch(/^--A KUBE-SEP-\S+ .*--to-destination 10\.244\.0\.11:8080$/m);
    expect(d.stdout).toMatch(/^@@ nat KUBE-SVC-[A-Z2-7]{16} @@$/m);
    expect(d.stdout).toMatch(/# IPv4: 3 chains differ/);
    // plan never applies anything.
    expect(await connect(CLUSTER_IP)).toBe("pod-a");
  });

  it("moves traffic when the services file changes", async () => {
    await writeFile(servicesFile, servicesYaml(PODS[1].ip));
    await eventually(
      "traffic to the cluster IP reaching pod-b",
      async () => (await connect(CLUSTER_IP)) === "pod-b",
    );
  });

  it("stops on SIGTERM with status 0 and leaves the rules in place", async () => {
    proxy.kill("SIGTERM");
    expect(await out.exited).toBe(0);
    expect(out.text).toContain("the rules stay in place");
    expect(await connect(CLUSTER_IP)).toBe("pod-b");
  });

  it("--cleanup leaves iptables-save and ip6tables-save as they were before", async () => {
    const r = await cli(["proxy", "--cleanup"]);
    expect(r.exitCode).toBe(0);
    expect(await saveNode()).toBe(baseline);
    // Idempotent.
    expect((await cli(["proxy", "--cleanup"])).exitCode).toBe(0);
    expect(await saveNode()).toBe(baseline);
  });
});
