import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { type AddressInfo, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../src/main.js";

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[]): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const status = await runCli(argv, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    signal: AbortSignal.abort(),
  });
  return { status, stdout, stderr };
}

function expectOneLineError(r: Run, status: number, pattern: RegExp): void {
  expect(r.status).toBe(status);
  expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(r.stderr).toMatch(/^worknode kubelet: error: /);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function canBind(port: number): Promise<boolean> {
  const s = createServer();
  return new Promise<boolean>((resolve) => {
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

describe("worknode kubelet CLI", () => {
  let dir: string;
  let socketPath: string;
  let notCri: Server;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "worknode-kubelet-cli-"));
    socketPath = path.join(dir, "not-cri.sock");
    // Accepts connections and hangs up: reachable, but no CRI runtime.
    notCri = createServer((s) => s.destroy());
    await new Promise<void>((r) => notCri.listen(socketPath, () => r()));
  });

  afterAll(async () => {
    await new Promise<void>((r) => notCri.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });

  it("is listed in the command list and prints kubelet's flags with --help", async () => {
    const list = await run(["--help"]);
    expect(list.stdout).toMatch(/^ {2}kubelet\s+Run the kubelet/m);
    const r = await run(["kubelet", "--help"]);
    expect(r.status).toBe(0);
    for (const flag of [
      "--config",
      "--pod-manifest-path",
      "--container-runtime-endpoint",
      "--root-dir",
      "--hostname-override",
      "--max-pods",
      "--healthz-bind-address",
      "--healthz-port",
      "--port",
      "--address",
      "--file-check-frequency",
      "--log-level",
    ]) {
      expect(r.stdout).toContain(flag);
    }
    expect(r.stdout).toContain('(default "unix:///run/containerd/containerd.sock")');
    expect(r.stdout).toContain('(default "/var/lib/worknode/kubelet")');
  });

  it("exits 2 with one line for bad flags and values", async () => {
    expectOneLineError(await run(["kubelet", "--max-pod=3"]), 2, /unknown flag --max-pod/);
    expectOneLineError(await run(["kubelet", "--max-pods", "-1"]), 2, /--max-pods/);
    expectOneLineError(await run(["kubelet", "--file-check-frequency", "20"]), 2, /is not a duration/);
    expectOneLineError(await run(["kubelet", "--address", "0.0.0.0"]), 2, /not a loopback address/);
  });

  it("exits 1 with one line for a bad config file", async () => {
    const file = path.join(dir, "kubelet.yaml");
    await writeFile(
      file,
      "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPod: 3\n",
    );
    expectOneLineError(
      await run(["kubelet", "--config", file]),
      1,
      /unknown field "maxPod" \(did you mean "maxPods"\?\)/,
    );
    expectOneLineError(await run(["kubelet", "--config", path.join(dir, "none.yaml")]), 1, /no such file/);
  });

  it("exits 1 naming the socket when the runtime cannot be reached", async () => {
    const missing = path.join(dir, "missing.sock");
    expectOneLineError(
      await run([
        "kubelet",
        "--container-runtime-endpoint",
        `unix://${missing}`,
        "--root-dir",
        path.join(dir, "r0"),
      ]),
      1,
      /cannot reach the container runtime at unix:\/\/.*missing\.sock: no such socket/,
    );
  });

  it("exits 1 when the socket is not a CRI runtime, and releases its ports", async () => {
    const healthzPort = await freePort();
    const apiPort = await freePort();
    const rootDir = path.join(dir, "root");
    const r = await run([
      "kubelet",
      `--container-runtime-endpoint=unix://${socketPath}`,
      `--root-dir=${rootDir}`,
      `--healthz-port=${healthzPort}`,
      `--port=${apiPort}`,
      "--hostname-override=test-node",
      "--log-level=error",
    ]);
    expectOneLineError(r, 1, /CRI|runtime/);
    // The endpoints were up (the self-signed certificate was made) and are closed again.
    expect((await stat(path.join(rootDir, "pki", "kubelet.crt"))).isFile()).toBe(true);
    expect(await canBind(healthzPort)).toBe(true);
    expect(await canBind(apiPort)).toBe(true);
  });
});
