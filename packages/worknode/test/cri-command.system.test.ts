// `worknode cri` against a real containerd (the lab's, on its own bridge and subnet) or the
// runtime named by $WORKNODE_CRI_ENDPOINT.
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { ContainerState, CriClient } from "@worknode/cri";
import { type ContainerdLab, startContainerdLab } from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../src/main.js";

let lab: ContainerdLab;
let client: CriClient;
let logRoot: string;
let podId: string;
let containerId: string;

async function cli(...argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const status = await runCli(["cri", argv[0]!, "--runtime-endpoint", lab.endpoint, ...argv.slice(1)], {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    signal: AbortSignal.timeout(60_000),
  });
  return { status, stdout, stderr };
}

beforeAll(async () => {
  lab = await startContainerdLab({
    log: (l) => console.error(`[lab] ${l}`),
    containerd: {
      labDir: "/tmp/wncli-lab",
      bridgeName: "wncli0",
      podSubnet: "10.81.0.0/16",
      streamPort: 10041,
    },
  });
  client = new CriClient({ endpoint: lab.endpoint });
  await client.connect();
  logRoot = await mkdtemp(path.join(tmpdir(), "wncli-logs-"));
  await client.image.pullImage({ image: { image: lab.busyboxImage } });
  const sandboxConfig = {
    metadata: { name: "cli-web", uid: randomUUID(), namespace: "default", attempt: 0 },
    logDirectory: logRoot,
    linux: {},
  };
  ({ podSandboxId: podId } = await client.runtime.runPodSandbox({ config: sandboxConfig }));
  ({ containerId } = await client.runtime.createContainer({
    podSandboxId: podId,
    sandboxConfig,
    config: {
      metadata: { name: "httpd", attempt: 0 },
      image: { image: lab.busyboxImage },
      command: ["sh", "-c", "echo hello from stdout; echo oops >&2; exec httpd -f -p 8080 -h /www"],
      logPath: "httpd/0.log",
      linux: {},
    },
  }));
  await client.runtime.startContainer({ containerId });
  for (let i = 0; i < 100; i++) {
    const { status } = await client.runtime.containerStatus({ containerId });
    if (status?.state === ContainerState.CONTAINER_RUNNING) break;
    await new Promise((r) => setTimeout(r, 100));
  }
}, 900_000);

afterAll(async () => {
  if (podId) {
    await client.runtime.stopPodSandbox({ podSandboxId: podId }).catch(() => {});
    await client.runtime.removePodSandbox({ podSandboxId: podId }).catch(() => {});
  }
  client?.close();
  await lab?.stop();
  if (logRoot) await rm(logRoot, { recursive: true, force: true });
});

describe("worknode cri", () => {
  it("ps lists the running container with crictl's columns, and -o json the full objects", async () => {
    const table = await cli("ps");
    expect(table.status).toBe(0);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^CONTAINER\s+IMAGE\s+CREATED\s+STATE\s+NAME\s+ATTEMPT\s+POD ID\s+POD$/);
    const row = lines.find((l) => l.startsWith(containerId.slice(0, 13)));
    expect(row).toMatch(/\s+Running\s+httpd\s+0\s+/);
    expect(row).toContain(podId.slice(0, 13));
    expect(row).toMatch(/cli-web$/);
    const asJson = JSON.parse((await cli("ps", "-o", "json")).stdout) as {
      containers: Array<{ id: string; state: string }>;
    };
    expect(asJson.containers.find((c) => c.id === containerId)?.state).toBe("CONTAINER_RUNNING");
    expect((await cli("ps", "-q")).stdout.split("\n")).toContain(containerId);
  });

  it("pods and images list what the runtime has", async () => {
    const pods = await cli("pods", "--name", "cli-web");
    expect(pods.stdout).toMatch(
      new RegExp(`^${podId.slice(0, 13)}\\s+.*ago\\s+Ready\\s+cli-web\\s+default\\s+0`, "m"),
    );
    const images = await cli("images");
    expect(images.stdout).toMatch(/^127\.0\.0\.1:5000\/busybox\s+1\s+[0-9a-f]{13}\s+\d/m);
  });

  it("pull fetches from the registry and reports the image reference", async () => {
    const r = await cli("pull", lab.busyboxImage);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Image is up to date for sha256:[0-9a-f]{64}\n$/);
    const missing = await cli("pull", "127.0.0.1:5000/does-not-exist:1");
    expect(missing.status).toBe(1);
    expect(missing.stderr.trimEnd().split("\n")).toHaveLength(1);
  });

  it("exec runs a command by id prefix and returns its exit status and output", async () => {
    const r = await cli("exec", containerId.slice(0, 12), "sh", "-c", "echo out; echo err >&2; exit 3");
    expect(r).toEqual({ status: 3, stdout: "out\n", stderr: "err\n" });
    const it = await cli("exec", "-t", containerId, "sh");
    expect(it.status).toBe(1);
    expect(it.stderr).toMatch(/interactive exec .* not implemented yet/);
  });

  it("logs prints the container's stdout and stderr from its CRI log file", async () => {
    let r = await cli("logs", containerId);
    for (let i = 0; i < 50 && !r.stdout.includes("hello from stdout"); i++) {
      await new Promise((res) => setTimeout(res, 100));
      r = await cli("logs", containerId);
    }
    expect(r.stdout).toBe("hello from stdout\n");
    expect(r.stderr).toBe("oops\n");
    const ts = await cli("logs", "--timestamps", "--tail", "1", containerId);
    expect(ts.stdout + ts.stderr).toMatch(/^\d{4}-\d\d-\d\dT\S+Z (hello from stdout|oops)\n$/);
  });

  it("inspect prints the container status as JSON", async () => {
    const r = await cli("inspect", containerId);
    const out = JSON.parse(r.stdout) as { status: { id: string; state: string; metadata: { name: string } } };
    expect(out.status).toMatchObject({
      id: containerId,
      state: "CONTAINER_RUNNING",
      metadata: { name: "httpd" },
    });
  });

  it("fails with one line for an unknown container and an unreachable runtime", async () => {
    const unknown = await cli("inspect", "ffffffffffff");
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(
      /^worknode cri: error: no container with id \(or id prefix\) "ffffffffffff"\n$/,
    );
    let stderr = "";
    const status = await runCli(["cri", "ps", "--runtime-endpoint", "unix:///tmp/wncli-nothing-here.sock"], {
      stdout: () => {},
      stderr: (t) => {
        stderr += t;
      },
      signal: AbortSignal.timeout(30_000),
    });
    expect(status).toBe(1);
    expect(stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(stderr).toMatch(/wncli-nothing-here\.sock/);
  });
});
