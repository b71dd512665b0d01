/**
 * `worknode proxy --proxy-mode ebpf` as a real process on the real kernel. The CLI runs on the
 * host (not under `ip netns exec`, which remounts /sys and would hide bpffs and the cgroup
 * tree), with its programs attached to a cgroup made by this test (`<cgroup2 root>/wncebp-*`,
 * never the root cgroup) and its maps pinned under `/sys/fs/bpf/wncebp-*` (never the default
 * pin path). Only processes in that cgroup are balanced:
 *
 *   netns wncebp-<suffix>: lo up, 10.248.0.11/32 (answers "server-a" on 8080),
 *                                 10.248.0.12/32 (answers "server-b" on 8080)
 *   clients: in that namespace AND in the test cgroup (joined before `ip netns exec`)
 *
 * Cluster IPs (172.30.180.0/24) exist only in the BPF maps. Checks traffic and refusal, that
 * an edit of the services file is followed, that `plan --diff` finds nothing to change against
 * what the proxy wrote, that `--cleanup` detaches everything and removes the pins, and that the
 * host's own iptables / nftables rules are untouched (serving one cgroup, the ebpf mode leaves
 * the other modes alone when it starts; `--cleanup` removes every mode's leftovers, and the host
 * has none).
 */
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { PROGRAMS } from "@worknode/proxy-ebpf";
import { createTestCgroup, runCommand, type TestCgroup } from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CLI_NODE_ARGS,
  type CollectedOutput,
  eventually,
  spawnCliProxy,
  webServicesYaml,
} from "./helpers/proxy-setup.js";

const SUFFIX = randomBytes(3).toString("hex");
const NS = `wncebp-${SUFFIX}`;
const CGROUP_NAME = `wncebp-${SUFFIX}`;
const PIN_PATH = `/sys/fs/bpf/wncebp-${SUFFIX}`;
const SERVER_A = "10.248.0.11";
const SERVER_B = "10.248.0.12";
const CLUSTER_IP = "172.30.180.10";
const EMPTY_IP = "172.30.180.12";

const servicesYaml = (endpointIP: string) =>
  webServicesYaml({ clusterIP: CLUSTER_IP, endpointIP, emptyName: "empty", emptyIP: EMPTY_IP });

const SERVER_SCRIPT = `const net = require("node:net");
const servers = [[process.argv[1], "server-a"], [process.argv[2], "server-b"]];
let up = 0;
for (const [ip, name] of servers)
  net.createServer((c) => c.end(name)).listen(8080, ip, () => { if (++up === servers.length) console.log("listening"); });`;
const CLIENT_SCRIPT = `const [host, port] = process.argv.slice(1);
const s = require("node:net").connect({ host, port: Number(port) });
const done = (t) => { process.stdout.write(t); process.exit(0); };
let data = "";
s.on("data", (d) => { data += d; });
s.on("end", () => done(data));
s.on("error", (e) => done("error:" + e.code));
setTimeout(() => done("error:timeout"), 2000);`;
/** Joins the cgroup `$0`, then runs `ip netns exec "$@"`: paths are arguments, never part of the script. */
const JOIN_THEN_EXEC = 'echo $$ > "$0/cgroup.procs" && exec ip netns exec "$@"';

let dir: string;
let servicesFile: string;
let cgroup: TestCgroup;
let healthzPort: number;
let metricsPort: number;
const children: ChildProcess[] = [];

/** What the host's own rules look like: iptables-save / ip6tables-save (without their dated comments) and nft list ruleset. */
interface HostRules {
  readonly iptables: string;
  readonly ip6tables: string;
  readonly nft: string;
}

async function hostRules(): Promise<HostRules> {
  const save = async (bin: string) =>
    (await runCommand(bin, [])).stdout
      .split("\n")
      .filter((l) => !l.startsWith("#"))
      .join("\n");
  return {
    iptables: await save("iptables-save"),
    ip6tables: await save("ip6tables-save"),
    nft: (await runCommand("nft", ["list", "ruleset"])).stdout,
  };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const address = s.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** A TCP client in the namespace; in the test cgroup unless `inCgroup` is false. */
async function connect(host: string, inCgroup = true): Promise<string> {
  const client = [NS, process.execPath, "-e", CLIENT_SCRIPT, host, "80"];
  const r = inCgroup
    ? await runCommand("sh", ["-c", JOIN_THEN_EXEC, cgroup.path, ...client], { timeoutMs: 30_000 })
    : await runCommand("ip", ["netns", "exec", ...client], { timeoutMs: 30_000 });
  return r.stdout;
}

/** Runs the CLI on the host to completion. */
function cli(args: readonly string[]) {
  return runCommand(process.execPath, [...CLI_NODE_ARGS, ...args], {
    allowFailure: true,
    timeoutMs: 120_000,
  });
}

/** The worknode programs attached to the test cgroup. */
async function worknodePrograms(): Promise<{ id: number; name: string; attach_type: string }[]> {
  const out = (await runCommand("bpftool", ["-j", "cgroup", "show", cgroup.path])).stdout.trim();
  const all = (out === "" ? [] : JSON.parse(out)) as { id: number; name: string; attach_type: string }[];
  return all.filter((p) => PROGRAMS.some((q) => q.name === p.name));
}

async function deleteNetns(name: string): Promise<void> {
  const list = (await runCommand("ip", ["netns", "list"])).stdout;
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

let before: HostRules;

beforeAll(async () => {
  before = await hostRules();
  dir = await mkdtemp(path.join(tmpdir(), "worknode-wncebp-"));
  servicesFile = path.join(dir, "services.yaml");
  await writeFile(servicesFile, servicesYaml(SERVER_A));
  healthzPort = await freePort();
  metricsPort = await freePort();
  cgroup = await createTestCgroup(CGROUP_NAME);
  await runCommand("ip", ["netns", "add", NS]);
  await runCommand("ip", ["-n", NS, "link", "set", "lo", "up"]);
  for (const ip of [SERVER_A, SERVER_B])
    await runCommand("ip", ["-n", NS, "addr", "add", `${ip}/32`, "dev", "lo"]);
  const server = spawn(
    "ip",
    ["netns", "exec", NS, process.execPath, "-e", SERVER_SCRIPT, SERVER_A, SERVER_B],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  children.push(server);
  await new Promise<void>((resolve, reject) => {
    server.stdout?.once("data", () => resolve());
    server.once("exit", (code) => reject(new Error(`the servers exited (${code})`)));
  });
}, 120_000);

afterAll(async () => {
  const errors: unknown[] = [];
  const attempt = async (f: () => Promise<unknown>) => {
    try {
      await f();
    } catch (e) {
      errors.push(e);
    }
  };
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  // Whatever the tests left: detach from the test cgroup and remove the pins (idempotent).
  if (cgroup !== undefined)
    await attempt(async () => {
      const r = await cli([
        "proxy",
        "--cleanup",
        "--proxy-mode",
        "ebpf",
        "--ebpf-cgroup-path",
        cgroup.path,
        "--ebpf-pin-path",
        PIN_PATH,
      ]);
      if (r.exitCode !== 0) throw new Error(`cleanup failed: ${r.stderr}`);
    });
  await attempt(() => rm(PIN_PATH, { recursive: true, force: true }));
  await attempt(() => deleteNetns(NS));
  if (cgroup !== undefined) await attempt(() => cgroup.remove());
  if (dir !== undefined) await attempt(() => rm(dir, { recursive: true, force: true }));
  if (errors.length > 0) throw errors[0];
});

describe("worknode proxy --proxy-mode ebpf --services-file on the host, programs on a test cgroup", () => {
  let proxy: ChildProcess;
  let out: CollectedOutput;
  const ebpfFlags = () => ["--ebpf-cgroup-path", cgroup.path, "--ebpf-pin-path", PIN_PATH];

  it("balances the cluster IP to its endpoint for the cgroup's processes, and refuses an endpoint-less one", async () => {
    expect(existsSync(PIN_PATH)).toBe(false);
    expect(await worknodePrograms()).toEqual([]);
    // Nothing knows the cluster IP before the proxy runs: the namespace has no route to it.
    expect(await connect(CLUSTER_IP)).toBe("error:ENETUNREACH");
    const started = spawnCliProxy(
      (command, args) => {
        const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
        children.push(child);
        return child;
      },
      [
        "--proxy-mode",
        "ebpf",
        ...ebpfFlags(),
        "--services-file",
        servicesFile,
        "--hostname-override",
        "node-1",
      ],
      { healthz: `127.0.0.1:${healthzPort}`, metrics: `127.0.0.1:${metricsPort}` },
    );
    proxy = started.child;
    out = started.out;
    await started.waitServing(
      "traffic to the cluster IP reaching server-a",
      async () => (await connect(CLUSTER_IP)) === "server-a",
    );
    expect(out.text).toContain("worknode proxy is running");
    expect(out.text).toContain('"mode":"ebpf"');
    expect(await connect(EMPTY_IP)).toBe("error:ECONNREFUSED");
    // Only the test cgroup is balanced: the same client outside it is not.
    expect(await connect(CLUSTER_IP, false)).toBe("error:ENETUNREACH");
    const programs = await worknodePrograms();
    expect(programs.map((p) => p.name).sort()).toEqual(PROGRAMS.map((p) => p.name).sort());
    expect(existsSync(PIN_PATH)).toBe(true);
    const healthz = await fetch(`http://127.0.0.1:${healthzPort}/healthz`);
    expect(healthz.status).toBe(200);
    // Serving one cgroup, it runs beside the other modes: their rules on the host are left alone.
    expect(out.text).toContain("the other modes' rules are left alone");
    expect(out.text).not.toContain("iptables rules removed");
    expect(await hostRules()).toEqual(before);
  });

  it("follows an edit of the services file (the endpoint moves to server-b) within seconds", async () => {
    await writeFile(servicesFile, servicesYaml(SERVER_B));
    const start = Date.now();
    await eventually(
      "traffic to the cluster IP reaching server-b",
      async () => {
        if (proxy.exitCode !== null)
          throw new Error(`worknode proxy exited (${proxy.exitCode}):\n${out.text}`);
        return (await connect(CLUSTER_IP)) === "server-b";
      },
      10_000,
    );
    expect(Date.now() - start).toBeLessThan(10_000);
    for (let i = 0; i < 5; i++) expect(await connect(CLUSTER_IP)).toBe("server-b");
    expect(await connect(EMPTY_IP)).toBe("error:ECONNREFUSED");
  });

  it("plan --diff finds nothing to change against the maps the proxy wrote, and shows an endpoint change", async () => {
    const args = ["proxy", "plan", "--proxy-mode", "ebpf", "--hostname-override", "node-1", "--diff"];
    const same = await cli([...args, "--services-file", servicesFile, "--ebpf-pin-path", PIN_PATH]);
    expect(same.stderr).toBe("");
    expect(same.exitCode).toBe(0);
    expect(same.stdout).toContain(`--- node (ebpf maps pinned in ${PIN_PATH}`);
    expect(same.stdout).toContain("# ebpf: no differences");

    const old = path.join(dir, "old.yaml");
    await writeFile(old, servicesYaml(SERVER_A));
    const d = await cli([...args, "--services-file", old, "--ebpf-pin-path", PIN_PATH]);
    expect(d.exitCode).toBe(0);
    expect(d.stdout).toContain("@@ map backend slots @@");
    expect(d.stdout).toMatch(
      new RegExp(`^\\+backend \\d+/0 -> ${SERVER_A.replaceAll(".", "\\.")}:8080$`, "m"),
    );
    expect(d.stdout).toMatch(/^# ebpf: \d+ maps? differ/m);
    // plan never applies anything.
    expect(await connect(CLUSTER_IP)).toBe("server-b");
  });

  it("stops on SIGTERM with status 0 and leaves the programs attached", async () => {
    proxy.kill("SIGTERM");
    expect(await out.exited).toBe(0);
    expect(await worknodePrograms()).toHaveLength(PROGRAMS.length);
    expect(await connect(CLUSTER_IP)).toBe("server-b");
  });

  it("--cleanup detaches every worknode program from the cgroup and removes the pin dir, idempotently", async () => {
    const args = ["proxy", "--cleanup", "--proxy-mode", "ebpf", ...ebpfFlags()];
    const r = await cli(args);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain("ebpf programs detached and pins removed");
    // --cleanup removes every mode's leftovers, on the host too.
    expect(r.stderr).toContain("nftables table removed (or was absent)");
    expect(await worknodePrograms()).toEqual([]);
    expect(existsSync(PIN_PATH)).toBe(false);
    expect(await connect(CLUSTER_IP)).toBe("error:ENETUNREACH");
    const again = await cli(args);
    expect(again.exitCode).toBe(0);
    expect(again.stderr).toContain("no ebpf mode pin directory on bpffs; nothing to clean up");
    expect(await worknodePrograms()).toEqual([]);
  });

  it("left the host's own iptables, ip6tables and nftables rules exactly as they were", async () => {
    expect(before.iptables).not.toContain("KUBE-");
    expect(before.nft).not.toContain("kube-proxy");
    const after = await hostRules();
    expect(after.iptables).toBe(before.iptables);
    expect(after.ip6tables).toBe(before.ip6tables);
    expect(after.nft).toBe(before.nft);
  });
});
