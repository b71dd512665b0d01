// `worknode cri` against a real containerd (the lab's, on its own bridge and subnet) or the
// runtime named by $WORKNODE_CRI_ENDPOINT. The streaming commands (exec, attach, port-forward)
// run the CLI as a child process, with piped stdin or on a tmux terminal.
import { execFile, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { rmSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { ContainerState, CriClient } from "@worknode/cri";
import { type ContainerdLab, ensureAptPackages, startContainerdLab } from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../src/main.js";

let lab: ContainerdLab;
let client: CriClient;
let logRoot: string;
let podId: string;
let containerId: string;
let sandboxConfig: {
  metadata: { name: string; uid: string; namespace: string; attempt: number };
  logDirectory: string;
  linux: object;
};

const ROOT = path.resolve(import.meta.dirname, "../../..");
const CLI = path.join(ROOT, "packages/worknode/src/cli.ts");
const TSX = pathToFileURL(path.join(ROOT, "node_modules/tsx/dist/loader.mjs")).href;
const NODE_ARGS = ["--conditions=@worknode/source", "--import", TSX, CLI];
const TMUX_SOCKET = "wnstr-cli";
const run = promisify(execFile);

interface ChildRun {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs `worknode cri <argv>` as a child process, feeding it `stdin` (then closing it). */
function cliChild(argv: string[], stdin: Buffer | string = ""): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...NODE_ARGS, "cri", argv[0]!, "--runtime-endpoint", lab.endpoint, ...argv.slice(1)],
      { stdio: ["pipe", "pipe", "pipe"], timeout: 120_000 },
    );
    const out: Buffer[] = [];
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout: Buffer.concat(out), stderr }));
    child.stdin.on("error", () => {});
    child.stdin.end(stdin);
  });
}

async function tmux(...args: string[]): Promise<string> {
  return (await run("tmux", ["-L", TMUX_SOCKET, ...args])).stdout;
}

/** Where the pane's command writes its exit status (see {@link recordingExit}). */
const PANE_STATUS_FILE = path.join(tmpdir(), `wn-cri-tmux-status-${process.pid}`);

/**
 * A command line for a tmux pane that runs `argv` and then writes its exit status to
 * {@link PANE_STATUS_FILE} (tmux's own `pane_dead_status` is not always filled in).
 */
function recordingExit(...argv: string[]): string[] {
  rmSync(PANE_STATUS_FILE, { force: true });
  return ["sh", "-c", `"$@"; echo "status $?" > '${PANE_STATUS_FILE}'`, "sh", ...argv];
}

/** How the command in the tmux pane ended: `status N`. */
async function paneExit(what: string): Promise<string> {
  try {
    return await waitFor(what, async () => {
      const text = await readFile(PANE_STATUS_FILE, "utf8").catch(() => "");
      return text.endsWith("\n") ? text.trim() : undefined;
    });
  } catch (err) {
    const screen = await tmux("capture-pane", "-p", "-t", "wn").catch(() => "(no pane)");
    throw new Error(`${(err as Error).message}; screen:\n${screen}`);
  }
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function startContainer(name: string, command: string[], extra: object = {}): Promise<string> {
  const { containerId: id } = await client.runtime.createContainer({
    podSandboxId: podId,
    sandboxConfig,
    config: {
      metadata: { name, attempt: 0 },
      image: { image: lab.busyboxImage },
      command,
      logPath: `${name}/0.log`,
      linux: {},
      ...extra,
    },
  });
  await client.runtime.startContainer({ containerId: id });
  await waitFor(`${name} running`, async () => {
    const { status } = await client.runtime.containerStatus({ containerId: id });
    return status?.state === ContainerState.CONTAINER_RUNNING ? true : undefined;
  });
  return id;
}

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
      labDir: "/tmp/wnstr-lab",
      bridgeName: "wnstr0",
      podSubnet: "10.89.0.0/16",
      streamPort: 10056,
    },
  });
  client = new CriClient({ endpoint: lab.endpoint });
  await client.connect();
  logRoot = await mkdtemp(path.join(tmpdir(), "wncli-logs-"));
  await client.image.pullImage({ image: { image: lab.busyboxImage } });
  sandboxConfig = {
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
      command: [
        "sh",
        "-c",
        "echo hello from stdout; echo oops >&2; mkdir -p /www; echo hello from httpd > /www/index.html; exec httpd -f -p 8080 -h /www",
      ],
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
  await run("tmux", ["-L", TMUX_SOCKET, "kill-server"]).catch(() => {});
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

  it("exec -s runs a command with ExecSync and returns its exit status and output", async () => {
    const r = await cli("exec", "-s", containerId.slice(0, 12), "sh", "-c", "echo out; echo err >&2; exit 3");
    expect(r).toEqual({ status: 3, stdout: "out\n", stderr: "err\n" });
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

describe("worknode cri streaming commands (child processes)", () => {
  it("exec streams stdout and stderr apart and exits with the command's code", async () => {
    const r = await cliChild([
      "exec",
      containerId.slice(0, 12),
      "sh",
      "-c",
      "echo out; echo err >&2; exit 3",
    ]);
    expect({ status: r.status, stdout: r.stdout.toString(), stderr: r.stderr }).toEqual({
      status: 3,
      stdout: "out\n",
      stderr: "err\n",
    });
  });

  it("exec -i pipes stdin to the command", async () => {
    const r = await cliChild(["exec", "-i", containerId, "sh"], "echo hi-from-stdin; exit 4\n");
    expect({ status: r.status, stdout: r.stdout.toString(), stderr: r.stderr }).toEqual({
      status: 4,
      stdout: "hi-from-stdin\n",
      stderr: "",
    });
  });

  it("exec -i closes the command's stdin when ours ends (SPDY, crictl's default transport)", async () => {
    const r = await cliChild(["exec", "-i", containerId, "sh", "-c", "cat; echo done"], "line 1\nline 2\n");
    expect({ status: r.status, stdout: r.stdout.toString(), stderr: r.stderr }).toEqual({
      status: 0,
      stdout: "line 1\nline 2\ndone\n",
      stderr: "",
    });
  });

  it("exec --transport websocket streams too", async () => {
    const r = await cliChild([
      "exec",
      "--transport",
      "websocket",
      containerId,
      "sh",
      "-c",
      "echo ws; exit 2",
    ]);
    expect({ status: r.status, stdout: r.stdout.toString(), stderr: r.stderr }).toEqual({
      status: 2,
      stdout: "ws\n",
      stderr: "",
    });
  });

  it("exec -i carries binary stdin and stdout unchanged", async () => {
    const payload = randomBytes(300_000);
    const r = await cliChild(
      ["exec", "-i", containerId, "--", "head", "-c", String(payload.length)],
      payload,
    );
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout.equals(payload)).toBe(true);
  });

  it("exec refuses -t without -i and -it without a terminal, as crictl does", async () => {
    const noI = await cliChild(["exec", "-t", containerId, "sh"]);
    expect(noI.status).toBe(1);
    expect(noI.stderr).toMatch(/tty=true must be specified with interactive=true/);
    const piped = await cliChild(["exec", "-it", containerId, "sh"], "exit 0\n");
    expect(piped.status).toBe(1);
    expect(piped.stderr).toMatch(/input is not a terminal/);
  });

  it("exec -it runs on a raw terminal that follows the window size (tmux)", async () => {
    await ensureAptPackages(["tmux"]);
    await tmux("kill-server").catch(() => {});
    await tmux(
      "new-session",
      "-d",
      "-s",
      "wn",
      "-x",
      "100",
      "-y",
      "30",
      ...recordingExit(process.execPath, ...NODE_ARGS),
      "cri",
      "exec",
      "-it",
      "--runtime-endpoint",
      lab.endpoint,
      containerId,
      "sh",
    );
    await tmux("set-option", "-t", "wn", "remain-on-exit", "on");
    const screenShows = (text: string) =>
      waitFor(`"${text}" on the terminal`, async () => {
        await tmux("send-keys", "-t", "wn", "stty size", "Enter");
        await new Promise((r) => setTimeout(r, 300));
        return (await tmux("capture-pane", "-p", "-t", "wn")).includes(text) ? true : undefined;
      });
    await screenShows("30 100");
    await tmux("resize-window", "-t", "wn", "-x", "120", "-y", "40");
    await screenShows("40 120");
    await tmux("send-keys", "-t", "wn", "exit 9", "Enter");
    expect(await paneExit("the CLI to exit")).toBe("status 9");
    await tmux("kill-server");
  });

  it("exec -it detaches on ctrl-p ctrl-q with status 0, as crictl does (tmux)", async () => {
    await tmux("kill-server").catch(() => {});
    await tmux(
      "new-session",
      "-d",
      "-s",
      "wn",
      "-x",
      "80",
      "-y",
      "24",
      ...recordingExit(process.execPath, ...NODE_ARGS),
      "cri",
      "exec",
      "-it",
      "--runtime-endpoint",
      lab.endpoint,
      containerId,
      "sh",
    );
    await tmux("set-option", "-t", "wn", "remain-on-exit", "on");
    await waitFor("the shell's answer", async () => {
      await tmux("send-keys", "-t", "wn", "echo ready-$((40+2))", "Enter");
      await new Promise((r) => setTimeout(r, 300));
      return (await tmux("capture-pane", "-p", "-t", "wn")).includes("ready-42") ? true : undefined;
    });
    await tmux("send-keys", "-t", "wn", "C-p", "C-q");
    expect(await paneExit("the CLI to detach")).toBe("status 0");
    await tmux("kill-server");
  });

  it("attach -i connects stdin and stdout to a container's main process", async () => {
    const reader = await startContainer("reader", ["sh", "-c", "read line; echo got:$line; exit 0"], {
      stdin: true,
      stdinOnce: true,
    });
    const r = await cliChild(["attach", "-i", reader.slice(0, 12)], "over-attach\n");
    expect({ status: r.status, stdout: r.stdout.toString(), stderr: r.stderr }).toEqual({
      status: 0,
      stdout: "got:over-attach\n",
      stderr: "",
    });
  });

  it("port-forward listens on 127.0.0.1 and forwards HTTP to the pod until interrupted", async () => {
    const child = spawn(
      process.execPath,
      [...NODE_ARGS, "cri", "port-forward", "--runtime-endpoint", lab.endpoint, podId.slice(0, 12), ":8080"],
      { stdio: ["ignore", "pipe", "pipe"], timeout: 120_000 },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    try {
      const port = await waitFor("the Forwarding line", async () => {
        const m = /^Forwarding from 127\.0\.0\.1:(\d+) -> 8080$/m.exec(stdout);
        return m ? Number(m[1]) : undefined;
      });
      const get = () =>
        new Promise<string>((resolve, reject) => {
          http
            .get({ host: "127.0.0.1", port, path: "/", agent: false }, (res) => {
              let body = "";
              res.on("data", (d: Buffer) => {
                body += d.toString();
              });
              res.on("end", () => resolve(`${res.statusCode} ${body}`));
            })
            .on("error", reject);
        });
      expect(await Promise.all([get(), get(), get()])).toEqual(Array(3).fill("200 hello from httpd\n"));
      expect(stdout.match(new RegExp(`^Handling connection for ${port}$`, "gm"))).toHaveLength(3);
    } finally {
      child.kill("SIGINT");
    }
    expect(await exited).toBe(0);
    expect(stderr).toBe("");
  });
});
