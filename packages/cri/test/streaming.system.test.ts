// CRI streaming (exec, attach, port-forward over the streaming server's WebSocket protocols)
// against the lab's real containerd 1.6 and busybox containers in a real pod.
import { randomBytes, randomUUID } from "node:crypto";
import http from "node:http";
import { PassThrough, Writable } from "node:stream";
import { type ContainerdLab, startContainerdLab } from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ContainerConfig,
  ContainerState,
  CriClient,
  CriStreamError,
  type CriStreamingClient,
  type DeepPartial,
  openPortForwardStream,
  type PodSandboxConfig,
  startSpdyRemoteCommand,
  startWebSocketRemoteCommand,
  V4_CHANNEL_PROTOCOL,
} from "../src/index.js";

const LAB_CONTAINERD = {
  labDir: "/tmp/wnstr-lab",
  bridgeName: "wnstr0",
  podSubnet: "10.89.0.0/16",
  streamPort: 10056,
};

let lab: ContainerdLab;
let client: CriClient;
let streaming: CriStreamingClient;
let podId = "";
let httpdId = "";
let catId = "";

/** A Writable collecting everything written to it. */
class Collector extends Writable {
  chunks: Buffer[] = [];
  override _write(chunk: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.chunks.push(chunk);
    cb();
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
  get text(): string {
    return this.bytes.toString("utf8");
  }
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function startContainer(
  sandboxConfig: DeepPartial<PodSandboxConfig>,
  config: DeepPartial<ContainerConfig>,
): Promise<string> {
  const { containerId } = await client.runtime.createContainer({
    podSandboxId: podId,
    sandboxConfig,
    config,
  });
  await client.runtime.startContainer({ containerId });
  for (let i = 0; i < 100; i++) {
    const { status } = await client.runtime.containerStatus({ containerId });
    if (status?.state === ContainerState.CONTAINER_RUNNING) return containerId;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`container ${config.metadata?.name} did not start`);
}

function httpGet(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path: "/", agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on("error", reject);
  });
}

beforeAll(async () => {
  lab = await startContainerdLab({ log: (l) => console.error(`[lab] ${l}`), containerd: LAB_CONTAINERD });
  client = new CriClient({ endpoint: lab.endpoint });
  await client.connect();
  streaming = client.streaming;
  await client.image.pullImage({ image: { image: lab.busyboxImage } });
  const sandboxConfig: DeepPartial<PodSandboxConfig> = {
    metadata: { name: "streaming", uid: randomUUID(), namespace: "default", attempt: 0 },
    linux: {},
  };
  ({ podSandboxId: podId } = await client.runtime.runPodSandbox({ config: sandboxConfig }));
  httpdId = await startContainer(sandboxConfig, {
    metadata: { name: "httpd", attempt: 0 },
    image: { image: lab.busyboxImage },
    command: [
      "sh",
      "-c",
      "mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www",
    ],
    linux: {},
  });
  catId = await startContainer(sandboxConfig, {
    metadata: { name: "cat", attempt: 0 },
    image: { image: lab.busyboxImage },
    command: ["cat"],
    stdin: true,
    linux: {},
  });
}, 900_000);

afterAll(async () => {
  if (podId) {
    await client.runtime.stopPodSandbox({ podSandboxId: podId }).catch(() => {});
    await client.runtime.removePodSandbox({ podSandboxId: podId }).catch(() => {});
  }
  client?.close();
  await lab?.stop();
});

describe("CRI streaming exec", () => {
  it("separates stdout and stderr and resolves with the exit code", async () => {
    const stdout = new Collector();
    const stderr = new Collector();
    const session = await streaming.startExec({
      containerId: httpdId,
      cmd: ["sh", "-c", "echo out; echo err >&2; exit 3"],
      stdout,
      stderr,
    });
    expect(session.protocol).toBe(V4_CHANNEL_PROTOCOL);
    expect(await session.result).toEqual({ exitCode: 3 });
    expect(stdout.text).toBe("out\n");
    expect(stderr.text).toBe("err\n");
    expect(await streaming.exec({ containerId: httpdId, cmd: ["true"], stdout })).toEqual({ exitCode: 0 });
  });

  it("rejects with the server's status when the command cannot run", async () => {
    const err = await streaming
      .exec({ containerId: httpdId, cmd: ["/no/such/binary"], stdout: new Collector() })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CriStreamError);
    const e = err as CriStreamError;
    expect(e.operation).toBe("exec");
    expect(e.status?.status).toBe("Failure");
    expect(e.status?.message).toMatch(/no such file|not found/i);
  });

  it("round-trips more than 1 MiB of binary stdin through cat", async () => {
    const payload = randomBytes(1536 * 1024 + 17);
    const stdin = new PassThrough();
    const stdout = new Collector();
    const session = await streaming.startExec({ containerId: httpdId, cmd: ["cat"], stdin, stdout });
    stdin.end(payload);
    await waitFor("cat's echo", () => stdout.bytes.length >= payload.length, 60_000);
    expect(stdout.bytes.equals(payload)).toBe(true);
    // v4 has no stdin half-close: closing the session closes cat's stdin.
    session.close();
    await expect(session.result).rejects.toBeInstanceOf(CriStreamError);
  });

  it("feeds stdin to a command that ends on its own and reports its exit code", async () => {
    const payload = randomBytes(1024 * 1024 + 3);
    const stdin = new PassThrough();
    const stdout = new Collector();
    const result = streaming.exec({
      containerId: httpdId,
      cmd: ["sh", "-c", `head -c ${payload.length}; exit 7`],
      stdin,
      stdout,
    });
    stdin.end(payload);
    expect(await result).toEqual({ exitCode: 7 });
    expect(stdout.bytes.equals(payload)).toBe(true);
  });

  it("runs on a TTY whose size follows resize", async () => {
    const stdin = new PassThrough();
    const stdout = new Collector();
    const session = await streaming.startExec({
      containerId: httpdId,
      cmd: ["sh"],
      tty: true,
      stdin,
      stdout,
      stderr: new Collector(),
      terminalSize: { width: 100, height: 30 },
    });
    const sttyUntil = async (expected: string) => {
      const deadline = Date.now() + 20_000;
      while (!stdout.text.includes(expected)) {
        if (Date.now() > deadline) throw new Error(`no "${expected}" in ${JSON.stringify(stdout.text)}`);
        stdin.write("stty size\n");
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    await sttyUntil("30 100");
    await session.resize(120, 40);
    await sttyUntil("40 120");
    stdin.write("echo to-stderr >&2; exit 5\n");
    expect(await session.result).toEqual({ exitCode: 5 });
    // A TTY merges stderr into stdout.
    expect(stdout.text).toContain("to-stderr");
  });

  it("rejects with the abort reason when aborted", async () => {
    const controller = new AbortController();
    const result = streaming.exec({
      containerId: httpdId,
      cmd: ["sleep", "30"],
      stdout: new Collector(),
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(new Error("stop it")), 300);
    await expect(result).rejects.toThrow("stop it");
  });
});

describe("CRI streaming exec over SPDY/3.1", () => {
  it("separates stdout and stderr and resolves with the exit code", async () => {
    const stdout = new Collector();
    const stderr = new Collector();
    const session = await streaming.startExec({
      containerId: httpdId,
      cmd: ["sh", "-c", "echo out; echo err >&2; exit 3"],
      stdout,
      stderr,
      transport: "spdy",
    });
    expect(session.protocol).toBe("SPDY/3.1+v4.channel.k8s.io");
    expect(await session.result).toEqual({ exitCode: 3 });
    expect(stdout.text).toBe("out\n");
    expect(stderr.text).toBe("err\n");
  });

  it("closes the command's stdin when stdin ends: cat echoes > 1 MiB of binary and exits 0", async () => {
    const payload = randomBytes(1536 * 1024 + 17);
    const stdin = new PassThrough();
    const stdout = new Collector();
    const result = streaming.exec({ containerId: httpdId, cmd: ["cat"], stdin, stdout, transport: "spdy" });
    stdin.end(payload);
    expect(await result).toEqual({ exitCode: 0 });
    expect(stdout.bytes.equals(payload)).toBe(true);
  });

  it("rejects with the server's status when the command cannot run", async () => {
    const err = await streaming
      .exec({ containerId: httpdId, cmd: ["/no/such/binary"], stdout: new Collector(), transport: "spdy" })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CriStreamError);
    expect((err as CriStreamError).status?.message).toMatch(/no such file|not found/i);
  });

  it("runs on a TTY whose size follows resize", async () => {
    const stdin = new PassThrough();
    const stdout = new Collector();
    const session = await streaming.startExec({
      containerId: httpdId,
      cmd: ["sh"],
      tty: true,
      stdin,
      stdout,
      terminalSize: { width: 90, height: 25 },
      transport: "spdy",
    });
    const sttyUntil = async (expected: string) => {
      const deadline = Date.now() + 20_000;
      while (!stdout.text.includes(expected)) {
        if (Date.now() > deadline) throw new Error(`no "${expected}" in ${JSON.stringify(stdout.text)}`);
        stdin.write("stty size\n");
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    await sttyUntil("25 90");
    await session.resize(132, 43);
    await sttyUntil("43 132");
    stdin.write("exit 6\n");
    expect(await session.result).toEqual({ exitCode: 6 });
  });
});

describe("one-time streaming URLs", () => {
  it("are refused on reuse with the HTTP status, over both transports", async () => {
    const { url } = await client.runtime.exec({ containerId: httpdId, cmd: ["true"], stdout: true });
    const first = await startWebSocketRemoteCommand(url, "exec", { stdout: new Collector() });
    expect(await first.result).toEqual({ exitCode: 0 });
    for (const again of [
      () => startWebSocketRemoteCommand(url, "exec", { stdout: new Collector() }),
      () =>
        startSpdyRemoteCommand(
          url,
          "exec",
          { stdout: new Collector() },
          { stdin: false, stdout: true, stderr: false, tty: false },
        ),
      () => openPortForwardStream(url, 80),
    ]) {
      const err = await again().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CriStreamError);
      expect((err as CriStreamError).httpStatus).toBe(404);
    }
  });
});

describe("CRI streaming attach", () => {
  it("connects stdin and stdout to a running cat", async () => {
    const stdin = new PassThrough();
    const stdout = new Collector();
    const session = await streaming.startAttach({
      containerId: catId,
      stdin,
      stdout,
      stderr: new Collector(),
    });
    stdin.write("ping over attach\n");
    await waitFor("cat's answer", () => stdout.text.includes("ping over attach\n"));
    session.close();
    await session.result.catch(() => {});
    // The container is still running after a detach.
    const { status } = await client.runtime.containerStatus({ containerId: catId });
    expect(status?.state).toBe(ContainerState.CONTAINER_RUNNING);
  });
});

describe("CRI streaming attach over SPDY/3.1", () => {
  it("connects stdin and stdout to a running cat", async () => {
    const stdin = new PassThrough();
    const stdout = new Collector();
    const session = await streaming.startAttach({
      containerId: catId,
      stdin,
      stdout,
      stderr: new Collector(),
      transport: "spdy",
    });
    stdin.write("ping over spdy attach\n");
    await waitFor("cat's answer", () => stdout.text.includes("ping over spdy attach\n"));
    session.close();
    await session.result.catch(() => {});
  });
});

describe("CRI streaming port-forward", () => {
  it("carries a raw HTTP exchange over one stream", async () => {
    const stream = await streaming.portForward({ podSandboxId: podId, port: 8080 });
    expect(stream.port).toBe(8080);
    const chunks: Buffer[] = [];
    stream.on("data", (d: Buffer) => chunks.push(d));
    const ended = new Promise((resolve, reject) => {
      stream.on("end", resolve);
      stream.on("error", reject);
    });
    stream.write("GET / HTTP/1.0\r\nHost: pod\r\n\r\n");
    await ended;
    const response = Buffer.concat(chunks).toString("utf8");
    expect(response).toMatch(/^HTTP\/1\.[01] 200 OK\r\n/);
    expect(response).toContain("hello-from-pod");
    stream.destroy();
  });

  it("fails the stream with the runtime's error for a closed port", async () => {
    const stream = await streaming.portForward({ podSandboxId: podId, port: 9 });
    const err = await new Promise<unknown>((resolve) => {
      stream.on("error", resolve);
      stream.on("end", () => resolve(undefined));
      stream.resume();
    });
    expect(err).toBeInstanceOf(CriStreamError);
    expect((err as Error).message).toMatch(/connection refused/);
  });

  it("forwards several concurrent local connections to httpd in the pod", async () => {
    const errors: Error[] = [];
    const listener = await streaming.forwardPort({
      podSandboxId: podId,
      remotePort: 8080,
      onError: (e) => errors.push(e),
    });
    try {
      expect(listener.host).toBe("127.0.0.1");
      expect(listener.localPort).toBeGreaterThan(0);
      const responses = await Promise.all(Array.from({ length: 6 }, () => httpGet(listener.localPort)));
      for (const r of responses) expect(r).toEqual({ status: 200, body: "hello-from-pod\n" });
      expect(errors).toEqual([]);
    } finally {
      await listener.close();
    }
  });
});
