/**
 * `worknode proxy --proxy-mode nftables` as a real process with real nftables, inside
 * network namespaces made by this test (names `wncnft-*`, subnet 10.246.0.0/24; the
 * host's own rules are never touched): the CLI runs under `ip netns exec` in a "node"
 * namespace, a "pod" namespace answers on a veth pair.
 *
 *   node (10.246.0.1/24) ──veth── pod (10.246.0.11:8080 answers "pod-a")
 *
 * Checks that a ClusterIP reaches the backend and an endpoint-less one is rejected, that
 * `plan --diff` finds nothing to change against what the proxy wrote, and that
 * `--cleanup` leaves the namespace's `nft list ruleset` exactly as it was before.
 */
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { runCommand } from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CLI_NODE_ARGS,
  type CollectedOutput,
  spawnCliProxy,
  webServicesYaml,
} from "./helpers/proxy-setup.js";

const SUFFIX = randomBytes(3).toString("hex");
const NODE_NS = `wncnft-node-${SUFFIX}`;
const POD_NS = `wncnft-pod-${SUFFIX}`;
const NODE_IF = "wncnftv0";
const POD_IF = "wncnftv1";
const NODE_IP = "10.246.0.1";
const POD_IP = "10.246.0.11";
const CLUSTER_IP = "172.30.0.10";
const EMPTY_IP = "172.30.0.12";

const SERVICES_YAML = webServicesYaml({
  clusterIP: CLUSTER_IP,
  endpointIP: POD_IP,
  emptyName: "empty",
  emptyIP: EMPTY_IP,
});
const MOVED_YAML = webServicesYaml({
  clusterIP: CLUSTER_IP,
  endpointIP: "10.246.0.12",
  emptyName: "empty",
  emptyIP: EMPTY_IP,
});

const SERVER_SCRIPT =
  'require("node:net").createServer((c) => c.end("pod-a")).listen(8080, "0.0.0.0", () => console.log("listening"));';
const CLIENT_SCRIPT = `const [host, port] = process.argv.slice(1);
const s = require("node:net").connect({ host, port: Number(port) });
const done = (t) => { process.stdout.write(t); process.exit(0); };
let data = "";
s.on("data", (d) => { data += d; });
s.on("end", () => done(data));
s.on("error", (e) => done("error:" + e.code));
setTimeout(() => done("error:timeout"), 2000);`;

let dir: string;
let servicesFile: string;
const children: ChildProcess[] = [];

function ip(args: string[]) {
  return runCommand("ip", args);
}

/** Runs a program to completion inside the node namespace. */
function inNode(command: string, args: string[], allowFailure = false) {
  return runCommand("ip", ["netns", "exec", NODE_NS, command, ...args], { allowFailure, timeoutMs: 120_000 });
}

function spawnIn(ns: string, command: string, args: string[]): ChildProcess {
  const child = spawn("ip", ["netns", "exec", ns, command, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  return child;
}

async function cli(args: string[]) {
  return inNode(process.execPath, [...CLI_NODE_ARGS, ...args], true);
}

async function connect(host: string): Promise<string> {
  return (await inNode(process.execPath, ["-e", CLIENT_SCRIPT, host, "80"])).stdout;
}

async function ruleset(): Promise<string> {
  return (await inNode("nft", ["list", "ruleset"])).stdout;
}

async function deleteNetns(name: string): Promise<void> {
  const list = (await ip(["netns", "list"])).stdout;
  if (!list.split("\n").some((l) => l.split(/\s+/)[0] === name)) return;
  const pids = (await runCommand("ip", ["netns", "pids", name], { allowFailure: true })).stdout
    .split("\n")
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  await runCommand("ip", ["netns", "del", name], { allowFailure: true });
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "worknode-wncnft-"));
  servicesFile = path.join(dir, "services.yaml");
  await writeFile(servicesFile, SERVICES_YAML);
  await ip(["netns", "add", NODE_NS]);
  await ip(["netns", "add", POD_NS]);
  for (const ns of [NODE_NS, POD_NS]) await ip(["-n", ns, "link", "set", "lo", "up"]);
  await ip(["-n", NODE_NS, "link", "add", NODE_IF, "type", "veth", "peer", "name", POD_IF, "netns", POD_NS]);
  await ip(["-n", NODE_NS, "addr", "add", `${NODE_IP}/24`, "dev", NODE_IF]);
  await ip(["-n", POD_NS, "addr", "add", `${POD_IP}/24`, "dev", POD_IF]);
  await ip(["-n", NODE_NS, "link", "set", NODE_IF, "up"]);
  await ip(["-n", POD_NS, "link", "set", POD_IF, "up"]);
  await ip(["-n", POD_NS, "route", "add", "default", "via", NODE_IP]);
  // A real node has a default route: a cluster IP must be routable for the DNAT / reject to apply.
  await ip(["-n", NODE_NS, "route", "add", "default", "dev", NODE_IF]);
  const server = spawnIn(POD_NS, process.execPath, ["-e", SERVER_SCRIPT]);
  await new Promise<void>((resolve, reject) => {
    server.stdout?.once("data", () => resolve());
    server.once("exit", (code) => reject(new Error(`the pod's server exited (${code})`)));
  });
  // The node has nftables rules of its own, which the proxy must leave alone.
  await runCommand("ip", ["netns", "exec", NODE_NS, "nft", "-f", "-"], {
    input:
      "add table inet wncnft-own\nadd chain inet wncnft-own input { type filter hook input priority 0 ; }\nadd rule inet wncnft-own input tcp dport 22 accept\n",
  });
}, 120_000);

afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await deleteNetns(NODE_NS);
  await deleteNetns(POD_NS);
  await rm(dir, { recursive: true, force: true });
});

describe("worknode proxy --proxy-mode nftables --services-file in a node namespace", () => {
  let baseline: string;
  let proxy: ChildProcess;
  let out: CollectedOutput;

  it("programs the services file with nftables: the cluster IP reaches the backend, an endpoint-less one refuses", async () => {
    baseline = await ruleset();
    expect(baseline).toContain("tcp dport 22 accept");
    expect(baseline).not.toContain("kube-proxy");
    const started = spawnCliProxy(
      (command, args) => spawnIn(NODE_NS, command, args),
      [
        "--proxy-mode",
        "nftables",
        "--services-file",
        servicesFile,
        "--hostname-override",
        "node-1",
        "--cluster-cidr",
        "10.246.0.0/24",
      ],
    );
    proxy = started.child;
    out = started.out;
    await started.waitServing(
      "traffic to the cluster IP reaching the pod",
      async () => (await connect(CLUSTER_IP)) === "pod-a",
    );
    expect(out.text).toContain("worknode proxy is running");
    expect(out.text).toContain('"mode":"nftables"');
    expect(await connect(EMPTY_IP)).toBe("error:ECONNREFUSED");
    const table = (await inNode("nft", ["list", "table", "ip", "kube-proxy"])).stdout;
    expect(table).toMatch(/chain service-[A-Z0-9]{8}-default\/web\/tcp\/http \{/);
    expect(table).toContain(`dnat to ${POD_IP}:8080`);
    // Both families are programmed (the namespace has IPv6 too); no iptables rules are written.
    expect((await inNode("nft", ["list", "table", "ip6", "kube-proxy"])).stdout).toContain("chain services");
    expect((await inNode("iptables-save", [])).stdout).not.toContain("KUBE-SERVICES");
  });

  it("plan --diff finds nothing to change against what the proxy wrote, and shows an endpoint change", async () => {
    const args = [
      "proxy",
      "plan",
      "--proxy-mode",
      "nftables",
      "--hostname-override",
      "node-1",
      "--cluster-cidr",
      "10.246.0.0/24",
      "--diff",
    ];
    const same = await cli([...args, "--services-file", servicesFile]);
    expect(same.stderr).toBe("");
    expect(same.exitCode).toBe(0);
    expect(same.stdout).toContain("# IPv4: no differences");

    const moved = path.join(dir, "moved.yaml");
    await writeFile(moved, MOVED_YAML);
    const d = await cli([...args, "--services-file", moved]);
    expect(d.exitCode).toBe(0);
    expect(d.stdout).toMatch(/^@@ ip kube-proxy chain service-\S+-default\/web\/tcp\/http @@$/m);
    expect(d.stdout).toContain(`-meta l4proto tcp dnat to ${POD_IP}:8080`);
    expect(d.stdout).toContain("+meta l4proto tcp dnat to 10.246.0.12:8080");
    // plan never applies anything.
    expect(await connect(CLUSTER_IP)).toBe("pod-a");
  });

  it("stops on SIGTERM with status 0 and leaves the rules in place", async () => {
    proxy.kill("SIGTERM");
    expect(await out.exited).toBe(0);
    expect(out.text).toContain("the rules stay in place");
    expect(await connect(CLUSTER_IP)).toBe("pod-a");
  });

  it("--cleanup leaves nft list ruleset as it was before, and is idempotent", async () => {
    const r = await cli(["proxy", "--cleanup"]);
    expect(r.exitCode).toBe(0);
    expect(await ruleset()).toBe(baseline);
    expect(await connect(CLUSTER_IP)).not.toBe("pod-a");
    const again = await cli(["proxy", "--cleanup"]);
    expect(again.exitCode).toBe(0);
    expect(await ruleset()).toBe(baseline);
  });
});
