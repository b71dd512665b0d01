import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { promisify } from "node:util";
import { UnavailableError } from "@worknode/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ContainerdInstance,
  type ContainerdLab,
  criListPodSandboxIds,
  criPullImage,
  criRunPodSandbox,
  criVersion,
  importImageIntoContainerd,
  listMountsUnder,
  listProcesses,
  shimsOf,
  startContainerd,
  startContainerdLab,
  startRegistry,
} from "../src/index.js";

const run = promisify(execFile);

async function out(cmd: string, args: string[]): Promise<string> {
  return (await run(cmd, args)).stdout;
}

async function linkExists(name: string): Promise<boolean> {
  return run("ip", ["link", "show", "dev", name]).then(
    () => true,
    () => false,
  );
}

/** Processes that belong to a lab: containerd with its config, shims with its socket, and pause. */
async function labProcesses(labDir: string, socket: string): Promise<string[]> {
  const procs = await listProcesses();
  const mine = procs.filter((p) => p.argv.some((a) => a.startsWith(labDir)));
  const shims = shimsOf(procs, socket);
  return [...mine.map((p) => `${p.pid} ${p.argv.join(" ")}`), ...shims.map((s) => `shim ${s}`)];
}

async function pauseProcesses(): Promise<number[]> {
  return (await listProcesses()).filter((p) => p.argv[0] === "/pause").map((p) => p.pid);
}

/** The CNI chains of the nat table. */
async function natChains(): Promise<string[]> {
  return (await out("iptables-save", ["-t", "nat"]))
    .split("\n")
    .filter((l) => l.startsWith(":CNI-"))
    .map((l) => l.slice(1).split(" ")[0] ?? "")
    .sort();
}

function ipForward(): string {
  return readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim();
}

describe("containerd lab (registry, images, containerd with CRI and CNI)", () => {
  let lab: ContainerdLab;
  let containerd: ContainerdInstance;
  const ipForwardBefore = ipForward();
  const natBefore = { chains: [] as string[] };
  let cgroupBefore = false;
  const pausesBefore: number[] = [];

  beforeAll(async () => {
    natBefore.chains = await natChains();
    cgroupBefore = existsSync("/sys/fs/cgroup/memory/k8s.io");
    pausesBefore.push(...(await pauseProcesses()));
    lab = await startContainerdLab({ criEndpoint: "" });
    containerd = lab.containerd!;
  });

  afterAll(async () => {
    await lab?.stop();
  });

  it("runs its own containerd from the lab directory", () => {
    expect(containerd).toBeDefined();
    expect(lab.endpoint).toBe(`unix://${containerd.labDir}/containerd.sock`);
    expect(readFileSync(`${containerd.labDir}/config.toml`, "utf8")).toContain(
      "restrict_oom_score_adj = true",
    );
  });

  it("serves the busybox manifest from the loopback registry", async () => {
    expect(lab.registry.url).toBe("http://127.0.0.1:5000");
    const res = await fetch(`${lab.registry.url}/v2/busybox/manifests/1`, {
      headers: {
        accept: [
          "application/vnd.oci.image.manifest.v1+json",
          "application/vnd.docker.distribution.manifest.v2+json",
        ].join(", "),
      },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/manifest/);
    const manifest = (await res.json()) as { layers: unknown[]; config: { digest: string } };
    expect(manifest.layers.length).toBeGreaterThan(0);
    expect(manifest.config.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(lab.busyboxImage).toBe("127.0.0.1:5000/busybox:1");
  });

  it("reuses the running registry", async () => {
    const again = await startRegistry();
    expect(again.reused).toBe(true);
    expect(again.pid).toBe(lab.registry.pid);
    await again.stop();
    const res = await fetch(`${lab.registry.url}/v2/`);
    expect(res.status).toBe(200);
  });

  it("has the pause image under the sandbox image name", async () => {
    const images = await out("ctr", ["--address", containerd.socket, "-n", "k8s.io", "images", "ls", "-q"]);
    expect(images.split("\n")).toContain("worknode.local/pause:3.9");
  });

  it("answers CRI over gRPC and reports the cri plugin ok", async () => {
    const v = await criVersion(lab.endpoint);
    expect(v.runtimeName).toBe("containerd");
    expect(v.runtimeApiVersion).toBe("v1");
    const plugins = await out("ctr", ["--address", containerd.socket, "plugins", "ls"]);
    const cri = plugins.split("\n").find((l) => /^io\.containerd\.grpc\.v1\s+cri\s/.test(l));
    expect(cri).toBeDefined();
    expect(cri).toMatch(/\sok\s*$/);
  });

  it("pulls busybox from the lab registry through CRI", async () => {
    const ref = await criPullImage(lab.endpoint, lab.busyboxImage);
    expect(ref).toMatch(/^sha256:/);
    const images = await out("ctr", ["--address", containerd.socket, "-n", "k8s.io", "images", "ls", "-q"]);
    expect(images.split("\n")).toContain(lab.busyboxImage);
  });

  it("returns the same containerd when started twice", async () => {
    const again = await startContainerd({ sandboxImage: lab.sandboxImage });
    expect(again.pid).toBe(containerd.pid);
    expect(again.socket).toBe(containerd.socket);
  });

  it("runs a pod sandbox on the CNI bridge with a hostPort", async () => {
    const id = await criRunPodSandbox(lab.endpoint, {
      name: "lab-smoke",
      uid: "lab-smoke-uid",
      tcpPortMappings: [{ containerPort: 8080, hostPort: 18081 }],
    });
    expect(await criListPodSandboxIds(lab.endpoint)).toContain(id);
    expect(await out("ip", ["-br", "addr", "show", "dev", "wnbr0"])).toContain("10.88.0.1/16");
    const nat = await out("iptables-save", ["-t", "nat"]);
    expect(nat).toContain(":CNI-HOSTPORT-DNAT");
    expect(nat).toContain('name: \\"worknode-wnbr0\\"');
    expect((await pauseProcesses()).length).toBeGreaterThan(pausesBefore.length);
    expect((await listMountsUnder(containerd.labDir)).length).toBeGreaterThan(0);
  });

  it("stop() leaves no process, mount, bridge, chain, cgroup or lab directory behind", async () => {
    const labDir = containerd.labDir;
    await lab.stop();
    expect(await labProcesses(labDir, containerd.socket)).toEqual([]);
    expect(await pauseProcesses()).toEqual(pausesBefore);
    expect(await listMountsUnder(labDir)).toEqual([]);
    expect(await linkExists("wnbr0")).toBe(false);
    expect(await natChains()).toEqual(natBefore.chains);
    expect(ipForward()).toBe(ipForwardBefore);
    expect(existsSync(labDir)).toBe(false);
    expect(existsSync("/sys/fs/cgroup/memory/k8s.io")).toBe(cgroupBefore);
    // A registry this lab started is stopped; one it found running (another lab's) is left alone.
    expect(
      await fetch(`${lab.registry.url}/v2/`).then(
        () => "up",
        () => "down",
      ),
    ).toBe(lab.registry.reused ? "up" : "down");
  });
});

describe("containerd teardown after failures", () => {
  const opts = {
    bridgeName: "wnbr7",
    podSubnet: "10.87.0.0/16",
    streamPort: 10017,
    insecureRegistries: ["127.0.0.1:5000"],
  } as const;

  it("cleans up after a crashed containerd with a running pod", async () => {
    const chainsBefore = await natChains();
    const registry = await startRegistry();
    const c = await startContainerd(opts);
    try {
      const lab = await startContainerdLab({ criEndpoint: c.endpoint, installPackages: false });
      expect(lab.containerd).toBeUndefined();
      expect(lab.runtimeVersion.runtimeName).toBe("containerd");
      await importImageIntoContainerd(lab.images.pause, c.sandboxImage, c.socket);
      await criRunPodSandbox(c.endpoint, {
        name: "crash",
        uid: "crash-uid",
        tcpPortMappings: [{ containerPort: 80, hostPort: 18087 }],
      });
      await lab.stop(); // external runtime: leaves containerd running
      expect(await criListPodSandboxIds(c.endpoint)).toHaveLength(1);
      expect(await linkExists("wnbr7")).toBe(true);
      process.kill(c.pid, "SIGKILL");
      expect(shimsOf(await listProcesses(), c.socket).length).toBeGreaterThan(0);
    } finally {
      await c.stop();
      await registry.stop();
    }
    expect(await labProcesses(c.labDir, c.socket)).toEqual([]);
    expect(await listMountsUnder(c.labDir)).toEqual([]);
    expect(await linkExists("wnbr7")).toBe(false);
    expect(await out("iptables-save", ["-t", "nat"])).not.toContain("worknode-wnbr7");
    expect(await natChains()).toEqual(chainsBefore);
    expect(existsSync(c.labDir)).toBe(false);
  });

  it("cleans up after a failed start and reports containerd's own error", async () => {
    const err = await startContainerd({ ...opts, logLevel: "no-such-level" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect(String((err as Error).message)).toMatch(/lab containerd did not start: containerd exited/);
    expect(String((err as Error).message)).toMatch(/not a valid logrus Level/);
    expect(
      await labProcesses("/tmp/worknode-containerd-wnbr7", "/tmp/worknode-containerd-wnbr7/containerd.sock"),
    ).toEqual([]);
    expect(existsSync("/tmp/worknode-containerd-wnbr7")).toBe(false);
    expect(await linkExists("wnbr7")).toBe(false);
  });
});
