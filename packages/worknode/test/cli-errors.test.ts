import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../src/main.js";

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], signal: AbortSignal = AbortSignal.abort()): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const status = await runCli(argv, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    signal,
  });
  return { status, stdout, stderr };
}

function expectOneLineError(r: Run, status: number, pattern: RegExp): void {
  expect(r.status).toBe(status);
  expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe("worknode CLI: bad input gives one actionable line and a non-zero status", () => {
  let dir: string;
  let socketPath: string;
  let server: Server;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "worknode-cli-"));
    await writeFile(path.join(dir, "services.yaml"), "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n");
    socketPath = path.join(dir, "runtime.sock");
    server = createServer((s) => s.end());
    await new Promise<void>((r) => server.listen(socketPath, () => r()));
  });

  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });

  it("lists commands with --help and rejects unknown commands", async () => {
    const help = await run(["--help"]);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain("node");
    expectOneLineError(await run(["frobnicate"]), 2, /unknown command "frobnicate"/);
  });

  it("prints the node command's kubelet-style flags", async () => {
    const r = await run(["node", "--help"]);
    expect(r.status).toBe(0);
    for (const flag of [
      "--pod-manifest-path",
      "--container-runtime-endpoint",
      "--hostname-override",
      "--root-dir",
    ]) {
      expect(r.stdout).toContain(flag);
    }
  });

  it("rejects an unknown flag", async () => {
    expectOneLineError(await run(["node", "--pod-manifest-pth", dir]), 2, /unknown flag --pod-manifest-pth/);
  });

  it("rejects a malformed duration", async () => {
    expectOneLineError(
      await run(["node", "--pod-manifest-path", dir, "--file-check-frequency", "20"]),
      2,
      /--file-check-frequency: "20" is not a duration/,
    );
  });

  it("rejects a missing manifest directory and a missing services file", async () => {
    expectOneLineError(
      await run(["node", "--pod-manifest-path", path.join(dir, "nope")]),
      1,
      /--pod-manifest-path: .*nope does not exist/,
    );
    expectOneLineError(
      await run(["node", "--services-file", path.join(dir, "missing.yaml")]),
      1,
      /--services-file: .*missing.yaml does not exist/,
    );
  });

  it("rejects an unreachable runtime socket", async () => {
    expectOneLineError(
      await run([
        "node",
        "--services-file",
        path.join(dir, "services.yaml"),
        "--container-runtime-endpoint",
        `unix://${path.join(dir, "dead.sock")}`,
      ]),
      1,
      /cannot reach the container runtime at unix:\/\/.*dead\.sock: no such socket/,
    );
    expectOneLineError(
      await run([
        "node",
        "--services-file",
        path.join(dir, "services.yaml"),
        "--container-runtime-endpoint",
        "tcp://x",
      ]),
      1,
      /not a unix socket endpoint/,
    );
  });
});
