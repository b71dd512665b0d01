/**
 * A private containerd (CRI on) for system tests: its own root, state,
 * socket, runc root, CNI configuration and IPAM directory inside a lab
 * directory, a CNI bridge with a configurable name and subnet, and a teardown
 * that removes exactly what the lab created.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { mkdir, open, readdir, readFile, rm, rmdir, stat, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { ConfigError, cidrContains, parseCidr, UnavailableError, WorknodeError } from "@worknode/core";
import { planCniNatCleanup } from "./cni-cleanup.js";
import {
  type ContainerdLabLayout,
  containerdLabLayout,
  type LabNetwork,
  renderCniConflist,
  renderContainerdConfig,
  renderRegistryHostsToml,
  resolveLabNetwork,
} from "./containerd-config.js";
import { criListPodSandboxIds, criStopAndRemovePodSandbox, criVersion } from "./cri-probe.js";
import {
  descendantsOf,
  GiveUpError,
  isProcessAlive,
  listProcesses,
  type ProcessInfo,
  pollUntil,
  readPidFile,
  readProcessArgv,
  runCommand,
  signalProcess,
  terminateProcesses,
} from "./exec.js";
import { defaultContainerdLabDir, listMountsUnder, removeLabDir, unmountUnder } from "./lab-dir.js";

/** Options of {@link startContainerd}. */
export interface ContainerdOptions {
  /** Lab directory; default `<tmpdir>/worknode-containerd-<bridge>`. Keep it short (socket paths). */
  readonly labDir?: string;
  /** CNI bridge name (≤ 15 characters); default `wnbr0`. Must not exist yet. */
  readonly bridgeName?: string;
  /** Pod subnet (IPv4 CIDR); default `10.88.0.0/16`. Must not overlap the host's routes. */
  readonly podSubnet?: string;
  /** Gateway on the bridge; default the subnet's first address. */
  readonly gateway?: string;
  /** CNI network name; default `worknode-<bridge>`. */
  readonly networkName?: string;
  /** Sandbox image name CRI uses; default `worknode.local/pause:3.9`. */
  readonly sandboxImage?: string;
  /** CRI streaming server port on 127.0.0.1; default 10011. */
  readonly streamPort?: number;
  /** Plain-HTTP registries (`host:port`) containerd may pull from; default `["127.0.0.1:5000"]`. */
  readonly insecureRegistries?: readonly string[];
  /** CNI plugin directory; default `/usr/lib/cni` (Debian `containernetworking-plugins`). */
  readonly cniBinDir?: string;
  /** containerd log level; default `info`. */
  readonly logLevel?: string;
  /** How long to wait for the socket and CRI to answer, ms; default 30 000. */
  readonly startTimeoutMs?: number;
  /** Keep the lab directory on {@link ContainerdInstance.stop} (for post-mortems); default false. */
  readonly keepLabDir?: boolean;
}

/** A running lab containerd. */
export interface ContainerdInstance {
  /** Path of the containerd (and CRI) socket. */
  readonly socket: string;
  /** CRI endpoint, `unix://<socket>`. */
  readonly endpoint: string;
  /** The lab directory. */
  readonly labDir: string;
  /** Paths inside the lab directory. */
  readonly layout: ContainerdLabLayout;
  /** The CNI bridge network. */
  readonly network: LabNetwork;
  /** Sandbox image name configured for CRI. */
  readonly sandboxImage: string;
  /** Process id of containerd. */
  readonly pid: number;
  /** True when an already running containerd of this lab directory was reused. */
  readonly reused: boolean;
  /**
   * Tears the lab down: pods (through CRI), leftover runc containers, shims and containerd,
   * mounts, the CNI bridge and iptables chains, `ip_forward`, and the lab directory
   * (unless `keepLabDir`). Idempotent.
   */
  stop(opts?: { keepLabDir?: boolean }): Promise<void>;
}

/** What the lab changed on the host, recorded before containerd starts so teardown can undo it. */
interface LabHostState {
  readonly version: 1;
  readonly networkName: string;
  readonly bridge: string;
  readonly subnet: string;
  readonly ipForward: string;
  readonly hostportChainsExisted: boolean;
  readonly varLibCniExisted: boolean;
  /** `k8s.io` cgroup directories (CRI's default parent) that existed before the lab started. */
  readonly cgroupsExisted: readonly string[];
  readonly keepLabDir: boolean;
}

/** The cgroup directories CRI creates pods under (`<hierarchy>/k8s.io` for every mounted hierarchy). */
async function criCgroupDirs(): Promise<string[]> {
  const root = "/sys/fs/cgroup";
  const out = [path.join(root, "k8s.io")];
  for (const e of await readdir(root, { withFileTypes: true }).catch(() => [])) {
    if (e.isDirectory()) out.push(path.join(root, e.name, "k8s.io"));
  }
  const present: string[] = [];
  for (const d of out) if (await exists(d)) present.push(d);
  return present;
}

/** Removes an (empty of processes) cgroup tree bottom-up with rmdir only; returns false when some dir stayed. */
async function rmdirCgroupTree(dir: string): Promise<boolean> {
  let ok = true;
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (e.isDirectory()) ok = (await rmdirCgroupTree(path.join(dir, e.name))) && ok;
  }
  try {
    await rmdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") ok = false;
  }
  return ok;
}

const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward";
const VAR_LIB_CNI = "/var/lib/cni";
/** File marking a directory as a lab directory this kit created (teardown refuses others). */
const LAB_MARKER = ".worknode-containerd-lab";

const running = new Map<string, Promise<ContainerdInstance>>();

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

async function linkExists(name: string): Promise<boolean> {
  const r = await runCommand("ip", ["-j", "link", "show", "dev", name], { allowFailure: true });
  return r.exitCode === 0;
}

async function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** Host routes (IPv4, main table) whose destination overlaps `subnet`. */
export function overlappingRoutes(routesJson: string, subnet: string, ignoreDev?: string): string[] {
  const mine = parseCidr(subnet);
  if (!mine) return [];
  let routes: unknown;
  try {
    routes = JSON.parse(routesJson);
  } catch {
    return [];
  }
  if (!Array.isArray(routes)) return [];
  const out: string[] = [];
  for (const r of routes as Array<{ dst?: unknown; dev?: unknown }>) {
    if (typeof r.dst !== "string" || r.dst === "default" || r.dev === ignoreDev) continue;
    const other = parseCidr(r.dst.includes("/") ? r.dst : `${r.dst}/32`);
    if (!other || other.family !== mine.family) continue;
    if (cidrContains(mine, other.address) || cidrContains(other, mine.address))
      out.push(`${r.dst} dev ${String(r.dev)}`);
  }
  return out;
}

async function isOurContainerd(pid: number, layout: ContainerdLabLayout): Promise<boolean> {
  const argv = await readProcessArgv(pid);
  return (
    argv !== undefined && path.basename(argv[0] ?? "") === "containerd" && argv.includes(layout.configFile)
  );
}

async function ctrAnswers(socket: string): Promise<boolean> {
  if (!(await exists(socket))) return false; // ctr would wait for the socket to appear
  const r = await runCommand("ctr", ["--address", socket, "version"], {
    allowFailure: true,
    timeoutMs: 5_000,
  }).catch(() => undefined);
  return r?.exitCode === 0;
}

/** The shims serving this containerd: `containerd-shim*` processes whose `-address` is its socket. */
export function shimsOf(processes: readonly ProcessInfo[], socket: string): number[] {
  return processes
    .filter((p) => {
      if (!path.basename(p.argv[0] ?? "").startsWith("containerd-shim")) return false;
      const i = p.argv.indexOf("-address");
      return i >= 0 && p.argv[i + 1] === socket;
    })
    .map((p) => p.pid);
}

function makeInstance(
  layout: ContainerdLabLayout,
  network: LabNetwork,
  sandboxImage: string,
  pid: number,
  reused: boolean,
  keepLabDir: boolean,
): ContainerdInstance {
  let stopping: Promise<void> | undefined;
  return {
    socket: layout.socketPath,
    endpoint: `unix://${layout.socketPath}`,
    labDir: layout.labDir,
    layout,
    network,
    sandboxImage,
    pid,
    reused,
    stop(opts) {
      stopping ??= teardownContainerd(layout.labDir, { keepLabDir: opts?.keepLabDir ?? keepLabDir }).finally(
        () => running.delete(layout.labDir),
      );
      return stopping;
    },
  };
}

/**
 * Starts a lab containerd (or reuses the one already running from the same lab directory) and
 * waits until its socket answers (`ctr version`) and its CRI plugin answers a CRI `Version` call.
 *
 * @throws ConfigError when the bridge already exists, the subnet overlaps a host route or the
 *   stream port is taken
 * @throws UnavailableError when containerd does not come up (the message has its log); what the
 *   failed start created is cleaned up
 */
export function startContainerd(opts: ContainerdOptions = {}): Promise<ContainerdInstance> {
  const bridge = opts.bridgeName ?? "wnbr0";
  const layout = containerdLabLayout(opts.labDir ?? defaultContainerdLabDir(bridge));
  const inFlight = running.get(layout.labDir);
  if (inFlight) return inFlight;
  const p = doStart(layout, bridge, opts);
  running.set(layout.labDir, p);
  p.catch(() => running.delete(layout.labDir));
  return p;
}

async function doStart(
  layout: ContainerdLabLayout,
  bridge: string,
  opts: ContainerdOptions,
): Promise<ContainerdInstance> {
  const network = resolveLabNetwork(bridge, opts.podSubnet ?? "10.88.0.0/16", opts.gateway, opts.networkName);
  const sandboxImage = opts.sandboxImage ?? "worknode.local/pause:3.9";
  const streamPort = opts.streamPort ?? 10011;
  const keepLabDir = opts.keepLabDir ?? false;
  const timeoutMs = opts.startTimeoutMs ?? 30_000;

  // Reuse a containerd of this lab directory that is still running.
  const oldPid = await readPidFile(layout.pidFile);
  if (
    oldPid !== undefined &&
    (await isOurContainerd(oldPid, layout)) &&
    (await ctrAnswers(layout.socketPath))
  ) {
    await criVersion(`unix://${layout.socketPath}`);
    return makeInstance(layout, network, sandboxImage, oldPid, true, keepLabDir);
  }
  // A lab directory without a live containerd: a crashed or half-stopped lab. Clean it first.
  if (await exists(layout.labDir)) await teardownContainerd(layout.labDir, { keepLabDir: false });
  if (await exists(layout.labDir))
    throw new ConfigError(`lab directory ${layout.labDir} could not be emptied`);

  if (await linkExists(network.bridge)) {
    throw new ConfigError(
      `interface ${network.bridge} already exists: pick another bridgeName (or delete a leftover with \`ip link del ${network.bridge}\`)`,
    );
  }
  const routes = (await runCommand("ip", ["-j", "-4", "route", "show"])).stdout;
  const overlaps = overlappingRoutes(routes, network.subnet);
  if (overlaps.length > 0) {
    throw new ConfigError(`pod subnet ${network.subnet} overlaps host routes: ${overlaps.join("; ")}`);
  }
  if (!(await portFree("127.0.0.1", streamPort))) {
    throw new ConfigError(`CRI stream port 127.0.0.1:${streamPort} is in use: pick another streamPort`);
  }

  await mkdir(layout.labDir, { recursive: true, mode: 0o711 });
  await writeFile(path.join(layout.labDir, LAB_MARKER), "worknode containerd lab\n");
  const nat = await runCommand("iptables-save", ["-t", "nat"]);
  const hostState: LabHostState = {
    version: 1,
    networkName: network.name,
    bridge: network.bridge,
    subnet: network.subnet,
    ipForward: (await readFile(IP_FORWARD, "utf8")).trim(),
    hostportChainsExisted: /^:CNI-HOSTPORT-DNAT /m.test(nat.stdout),
    varLibCniExisted: await exists(VAR_LIB_CNI),
    cgroupsExisted: await criCgroupDirs(),
    keepLabDir,
  };
  await writeFile(layout.hostStateFile, `${JSON.stringify(hostState, null, 2)}\n`);

  try {
    for (const d of [
      layout.rootDir,
      layout.stateDir,
      layout.optDir,
      layout.cniConfDir,
      layout.cniIpamDir,
      layout.runcRoot,
    ]) {
      await mkdir(d, { recursive: true });
    }
    await writeFile(
      layout.configFile,
      renderContainerdConfig({
        layout,
        sandboxImage,
        streamAddress: "127.0.0.1",
        streamPort,
        cniBinDir: opts.cniBinDir ?? "/usr/lib/cni",
        ...(opts.logLevel ? { logLevel: opts.logLevel } : {}),
      }),
    );
    await writeFile(
      path.join(layout.cniConfDir, `10-${network.bridge}.conflist`),
      renderCniConflist(network, layout.cniIpamDir),
    );
    for (const reg of opts.insecureRegistries ?? ["127.0.0.1:5000"]) {
      if (!/^[\w.-]+(:\d+)?$|^\[[\d:a-f]+\](:\d+)?$/i.test(reg))
        throw new ConfigError(`bad registry host ${reg}`);
      await mkdir(path.join(layout.certsDir, reg), { recursive: true });
      await writeFile(path.join(layout.certsDir, reg, "hosts.toml"), renderRegistryHostsToml(reg));
    }

    const log = await open(layout.logFile, "a");
    let pid: number;
    try {
      const child = spawn("containerd", ["--config", layout.configFile], {
        detached: true,
        stdio: ["ignore", log.fd, log.fd],
        cwd: layout.labDir,
      });
      pid = await new Promise<number>((resolve, reject) => {
        child.once("error", reject);
        child.once("spawn", () => resolve(child.pid!));
      });
      child.unref();
    } finally {
      await log.close();
    }
    await writeFile(layout.pidFile, `${pid}\n`);

    await pollUntil(
      `containerd socket ${layout.socketPath}`,
      async () => {
        if (!(await isProcessAlive(pid))) throw new GiveUpError("containerd exited");
        return (await ctrAnswers(layout.socketPath)) ? true : undefined;
      },
      timeoutMs,
      200,
    );
    await pollUntil(
      `the CRI plugin on ${layout.socketPath}`,
      () => criVersion(`unix://${layout.socketPath}`),
      10_000,
      200,
    );
    return makeInstance(layout, network, sandboxImage, pid, false, keepLabDir);
  } catch (e) {
    const logText = await readFile(layout.logFile, "utf8").catch(() => "");
    // containerd's own error lines, and anything it printed outside its logger (flag/config errors)
    const tail = logText
      .split("\n")
      .filter((l) => l.trim() !== "" && (/level=(error|fatal)/.test(l) || !l.startsWith("time=")))
      .slice(-15)
      .join("\n");
    await teardownContainerd(layout.labDir, { keepLabDir }).catch(() => {});
    if (e instanceof ConfigError) throw e;
    throw new UnavailableError(
      `unix://${layout.socketPath}`,
      `lab containerd did not start: ${(e as Error).message}${tail ? `\n${tail}` : ""}`,
      { cause: e },
    );
  }
}

/** Options of {@link teardownContainerd}. */
export interface TeardownOptions {
  /** Keep the lab directory (its files; mounts are still removed). */
  readonly keepLabDir?: boolean;
}

/**
 * Tears down whatever a lab containerd left in `labDir` — also after a crash, a failed start, or
 * from another process. Safe to call when nothing is there.
 *
 * @throws WorknodeError listing every step that failed (after trying them all)
 */
export async function teardownContainerd(labDir: string, opts: TeardownOptions = {}): Promise<void> {
  const layout = containerdLabLayout(labDir);
  if (!(await exists(layout.labDir))) return;
  if (!(await exists(path.join(layout.labDir, LAB_MARKER)))) {
    throw new ConfigError(
      `${layout.labDir} is not a worknode containerd lab directory: refusing to tear it down`,
    );
  }
  const errors: string[] = [];
  const step = async (what: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (e) {
      errors.push(`${what}: ${(e as Error).message}`);
    }
  };
  let hostState: LabHostState | undefined;
  try {
    hostState = JSON.parse(await readFile(layout.hostStateFile, "utf8")) as LabHostState;
  } catch {
    hostState = undefined;
  }
  const endpoint = `unix://${layout.socketPath}`;
  const pid = await readPidFile(layout.pidFile);
  const alive = pid !== undefined && (await isOurContainerd(pid, layout));

  // 1. Pods, the way a kubelet removes them (CNI DEL runs, per-pod chains go away).
  if (alive) {
    await step("removing pod sandboxes", async () => {
      const ids = await criListPodSandboxIds(endpoint).catch(() => [] as string[]);
      for (const id of ids) await criStopAndRemovePodSandbox(endpoint, id, 30_000).catch(() => {});
    });
  }
  // 2. Containers runc still knows (the CRI path failed or containerd was gone).
  await step("deleting runc containers", async () => {
    const namespaces = await readdir(layout.runcRoot).catch(() => [] as string[]);
    for (const ns of namespaces) {
      const root = path.join(layout.runcRoot, ns);
      const list = await runCommand("runc", ["--root", root, "list", "-q"], { allowFailure: true });
      for (const id of list.stdout.split("\n").filter((s) => /^[\w.-]+$/.test(s))) {
        await runCommand("runc", ["--root", root, "delete", "--force", id], { allowFailure: true });
      }
    }
  });
  // 3. containerd itself, then its shims and anything left under them.
  if (alive) await step("stopping containerd", async () => void (await terminateProcesses([pid], 10_000)));
  await step("stopping shims", async () => {
    const procs = await listProcesses();
    const shims = shimsOf(procs, layout.socketPath);
    if (shims.length === 0) return;
    for (const d of descendantsOf(procs, shims)) signalProcess(d, "SIGKILL");
    const left = await terminateProcesses(shims, 3_000);
    if (left.length > 0) throw new WorknodeError("PROCESS_LEFT", `shims ${left.join(", ")} survived SIGKILL`);
  });
  // 4. Mounts (pod netns, sandbox shm, overlay rootfs) below the lab directory.
  await step("unmounting", () => unmountUnder(layout.labDir));
  // 5. Host networking the lab created.
  if (hostState) {
    const hs = hostState;
    await step("removing CNI iptables rules", async () => {
      const nat = await runCommand("iptables-save", ["-t", "nat"]);
      const payload = planCniNatCleanup(nat.stdout, hs.networkName, !hs.hostportChainsExisted);
      if (payload) await runCommand("iptables-restore", ["--noflush"], { input: payload });
    });
    await step(`deleting bridge ${hs.bridge}`, async () => {
      if (await linkExists(hs.bridge)) await runCommand("ip", ["link", "del", "dev", hs.bridge]);
    });
    await step("restoring ip_forward", async () => {
      const now = (await readFile(IP_FORWARD, "utf8")).trim();
      if (now !== hs.ipForward && /^[01]$/.test(hs.ipForward)) await writeFile(IP_FORWARD, hs.ipForward);
    });
    await step("removing pod cgroups", async () => {
      const existed = new Set(hs.cgroupsExisted ?? []);
      const left: string[] = [];
      for (const d of await criCgroupDirs()) {
        if (!existed.has(d) && !(await rmdirCgroupTree(d))) left.push(d);
      }
      if (left.length > 0)
        throw new WorknodeError("CGROUPS_LEFT", `cgroups still in use: ${left.join(", ")}`);
    });
    if (!hs.varLibCniExisted) {
      await step(`removing ${VAR_LIB_CNI}`, async () => {
        // only when empty: another CNI user may have put something there meanwhile
        for (const d of [path.join(VAR_LIB_CNI, "results"), VAR_LIB_CNI]) await rmdir(d).catch(() => {});
      });
    }
  }
  // 6. The lab directory.
  await step("removing the lab directory", async () => {
    if (opts.keepLabDir) {
      const left = await listMountsUnder(layout.labDir);
      if (left.length > 0) throw new WorknodeError("MOUNTS_LEFT", `still mounted: ${left.join(", ")}`);
      // a kept lab directory must not look like a live lab to the next start
      await rm(layout.hostStateFile, { force: true });
      await rm(layout.pidFile, { force: true });
    } else {
      await removeLabDir(layout.labDir);
    }
  });
  if (errors.length > 0) {
    throw new WorknodeError(
      "TEARDOWN",
      `lab containerd teardown in ${layout.labDir} was incomplete:\n${errors.join("\n")}`,
    );
  }
}
