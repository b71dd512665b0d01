import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Duplex } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeletAuthenticator } from "../../src/server/auth/authenticator.js";
import { KubeletAuth } from "../../src/server/auth/kubelet-auth.js";
import { KubeletServer } from "../../src/server/kubelet-server.js";
import type { StreamingBackend } from "../../src/server/streaming-backend.js";
import { upgradeRequestHead } from "../../src/server/streaming-proxy.js";
import {
  parseStreamFlags,
  parseStreamingRequest,
  type StreamingRequest,
  StreamingRequestError,
} from "../../src/server/streaming-request.js";

describe("streaming request parsing", () => {
  it("parses exec with the API server's parameters", () => {
    const q = new URLSearchParams("command=sh&command=-c&command=echo+hi&input=1&output=1&error=1");
    expect(parseStreamingRequest("/exec/default/web/app", q)).toEqual({
      kind: "exec",
      namespace: "default",
      pod: "web",
      container: "app",
      command: ["sh", "-c", "echo hi"],
      streams: { stdin: true, stdout: true, stderr: true, tty: false },
    });
    expect(parseStreamingRequest("/exec/default/web/uid-1/app", q)).toMatchObject({
      uid: "uid-1",
      container: "app",
    });
  });

  it("turns stderr off with a tty and wants at least one stream", () => {
    expect(parseStreamFlags(new URLSearchParams("output=1&error=1&tty=1"))).toEqual({
      stdin: false,
      stdout: true,
      stderr: false,
      tty: true,
    });
    expect(() => parseStreamFlags(new URLSearchParams("output=true&tty=1"))).toThrow(
      "you must specify at least 1 of stdin, stdout, stderr",
    );
  });

  it("parses attach and portForward", () => {
    expect(parseStreamingRequest("/attach/ns/p/c", new URLSearchParams("input=1&output=1&tty=1"))).toEqual({
      kind: "attach",
      namespace: "ns",
      pod: "p",
      container: "c",
      command: [],
      streams: { stdin: true, stdout: true, stderr: false, tty: true },
    });
    expect(parseStreamingRequest("/portForward/ns/p", new URLSearchParams())).toEqual({
      kind: "portForward",
      namespace: "ns",
      pod: "p",
      ports: [],
    });
    expect(
      parseStreamingRequest("/portForward/ns/p/uid-9", new URLSearchParams("port=80,8080&port=9090")),
    ).toEqual({
      kind: "portForward",
      namespace: "ns",
      pod: "p",
      uid: "uid-9",
      ports: [80, 8080, 9090],
    });
  });

  it.each([
    ["/exec/ns/p", "output=1&command=ls", 404],
    ["/exec/ns//c", "output=1&command=ls", 404],
    ["/exec/ns/p/c", "output=1", 400],
    ["/portForward/ns", "", 404],
    ["/portForward/ns/p", "port=0", 400],
  ])("refuses %s?%s with %i", (p, q, status) => {
    let err: unknown;
    try {
      parseStreamingRequest(p, new URLSearchParams(q));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StreamingRequestError);
    expect((err as StreamingRequestError).status).toBe(status);
  });

  it("forwards the upgrade headers to the runtime, rewriting Host and dropping credentials", () => {
    const head = upgradeRequestHead("POST", new URL("http://127.0.0.1:10010/exec/Tok3n"), [
      "Host",
      "10.0.0.1:10250",
      "Authorization",
      "Bearer secret",
      "Connection",
      "Upgrade",
      "Upgrade",
      "SPDY/3.1",
      "X-Stream-Protocol-Version",
      "v4.channel.k8s.io",
      "X-Stream-Protocol-Version",
      "v3.channel.k8s.io",
    ]);
    expect(head).toBe(
      [
        "POST /exec/Tok3n HTTP/1.1",
        "Host: 127.0.0.1:10010",
        "Connection: Upgrade",
        "Upgrade: SPDY/3.1",
        "X-Stream-Protocol-Version: v4.channel.k8s.io",
        "X-Stream-Protocol-Version: v3.channel.k8s.io",
        "",
        "",
      ].join("\r\n"),
    );
  });
});

/**
 * A stand-in for the runtime's streaming server on loopback: answers an upgrade with 101, then
 * echoes upper-cased; records the request heads it got.
 */
function fakeStreamingServer(): { server: Server; heads: string[] } {
  const heads: string[] = [];
  const server = createServer((sock: Socket) => {
    let buf = Buffer.alloc(0);
    let upgraded = false;
    sock.on("data", (chunk: Buffer) => {
      if (upgraded) {
        sock.write(chunk.toString().toUpperCase());
        return;
      }
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      heads.push(buf.subarray(0, end).toString());
      upgraded = true;
      sock.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n");
      const rest = buf.subarray(end + 4);
      if (rest.length > 0) sock.write(rest.toString().toUpperCase());
    });
    sock.on("error", () => undefined);
  });
  return { server, heads };
}

describe("KubeletServer streaming and auth", () => {
  const upstream = fakeStreamingServer();
  const requests: StreamingRequest[] = [];
  let server: KubeletServer;
  let base: string;
  let certDir: string;

  beforeAll(async () => {
    upstream.server.listen(0, "127.0.0.1");
    await once(upstream.server, "listening");
    const port = (upstream.server.address() as { port: number }).port;
    const backend: StreamingBackend = {
      streamingUrl(r) {
        requests.push(r);
        if (r.kind !== "portForward" && r.pod === "missing") {
          return Promise.reject(new StreamingRequestError(404, "pod does not exist"));
        }
        return Promise.resolve(new URL(`http://127.0.0.1:${port}/${r.kind}/token-${requests.length}`));
      },
      run: (_ns, _pod, _uid, _c, cmd) => Promise.resolve(Buffer.from(`ran ${cmd.join("|")}\n`)),
    };
    const auth = new KubeletAuth({
      nodeName: "node-1",
      authenticator: new KubeletAuthenticator({
        tokenReviewer: {
          review: (t) =>
            Promise.resolve(
              t === "admin" || t === "viewer"
                ? { authenticated: true, user: { username: t, groups: [] } }
                : { authenticated: false },
            ),
        },
      }),
      authorizer: {
        authorize: (a) =>
          Promise.resolve({ allowed: a.user.username === "admin" || a.subresource === "stats" }),
      },
    });
    certDir = mkdtempSync(path.join(tmpdir(), "wn-streaming-"));
    server = new KubeletServer({
      nodeName: "node-1",
      server: { host: "127.0.0.1", port: 0, certDir, auth },
      provider: { pods: () => [], containerLogPath: () => undefined, healthy: () => true, registries: [] },
      streaming: backend,
    });
    await server.start();
    base = `https://127.0.0.1:${server.serverAddress?.port}`;
  });

  afterAll(async () => {
    await server?.stop();
    upstream.server.close();
    if (certDir) rmSync(certDir, { recursive: true, force: true });
  });

  function upgrade(
    urlPath: string,
    token: string | undefined,
  ): Promise<{ status: number; socket?: Duplex; body: string; headers: Record<string, unknown> }> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest(new URL(urlPath, base), {
        method: "POST",
        rejectUnauthorized: false,
        agent: false,
        headers: {
          connection: "Upgrade",
          upgrade: "SPDY/3.1",
          "x-stream-protocol-version": "v4.channel.k8s.io",
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
      });
      req.on("upgrade", (res, socket) =>
        resolve({ status: res.statusCode ?? 0, socket, body: "", headers: res.headers }),
      );
      req.on("response", (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          body += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      });
      req.on("error", reject);
      req.end();
    });
  }

  it("proxies an authorized upgrade to the runtime's streaming URL and pipes both ways", async () => {
    const r = await upgrade("/exec/default/web/app?command=cat&input=1&output=1", "admin");
    expect(r.status).toBe(101);
    const socket = r.socket!;
    const got = new Promise<string>((resolve) => socket.once("data", (c: Buffer) => resolve(c.toString())));
    socket.write("hello through the kubelet");
    expect(await got).toBe("HELLO THROUGH THE KUBELET");
    socket.destroy();
    const head = upstream.heads.at(-1) ?? "";
    expect(head.split("\r\n")[0]).toBe(`POST /exec/token-${requests.length} HTTP/1.1`);
    expect(head).toMatch(/^Upgrade: SPDY\/3\.1$/im);
    expect(head).toMatch(/^x-stream-protocol-version: v4\.channel\.k8s\.io$/im);
    expect(head).not.toMatch(/authorization/i);
    expect(requests.at(-1)).toMatchObject({
      kind: "exec",
      command: ["cat"],
      streams: { stdin: true, stdout: true },
    });
  });

  it("proxies port-forward upgrades to the pod's sandbox URL", async () => {
    const r = await upgrade("/portForward/default/web", "admin");
    expect(r.status).toBe(101);
    r.socket?.destroy();
    expect(requests.at(-1)).toEqual({ kind: "portForward", namespace: "default", pod: "web", ports: [] });
  });

  it("answers errors as Status objects", async () => {
    const missing = await upgrade("/exec/default/missing/app?command=ls&output=1", "admin");
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body)).toEqual({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: "pod does not exist",
      reason: "NotFound",
      code: 404,
    });
    const noStreams = await upgrade("/exec/default/web/app?command=ls", "admin");
    expect(noStreams.status).toBe(400);
    expect(JSON.parse(noStreams.body).message).toBe("you must specify at least 1 of stdin, stdout, stderr");
  });

  it("refuses a streaming request without an upgrade", async () => {
    const res = await fetchText("/exec/default/web/app?command=ls&output=1", "admin", "POST");
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ reason: "BadRequest", message: "Upgrade request required" });
  });

  it("authenticates and authorizes upgrades before asking the runtime", async () => {
    const before = requests.length;
    const anonymous = await upgrade("/exec/default/web/app?command=ls&output=1", undefined);
    expect(anonymous).toMatchObject({ status: 401, body: "Unauthorized" });
    const viewer = await upgrade("/exec/default/web/app?command=ls&output=1", "viewer");
    expect(viewer).toMatchObject({
      status: 403,
      body: "Forbidden (user=viewer, verb=create, resource=nodes, subresource(s)=[proxy])\n",
    });
    expect(requests.length).toBe(before);
  });

  it("authenticates and authorizes plain requests", async () => {
    expect(await fetchText("/pods", undefined)).toMatchObject({ status: 401, body: "Unauthorized" });
    expect(await fetchText("/pods", "nobody")).toMatchObject({ status: 401 });
    expect(await fetchText("/pods", "viewer")).toMatchObject({
      status: 403,
      body: "Forbidden (user=viewer, verb=get, resource=nodes, subresource(s)=[pods proxy])\n",
    });
    expect((await fetchText("/pods", "admin")).status).toBe(200);
    // the viewer may read stats; this server has no stats provider
    expect((await fetchText("/stats/summary", "viewer")).status).toBe(404);
  });

  it("runs commands on /run", async () => {
    const res = await fetchText("/run/default/web/app?cmd=ls%20-l%20/", "admin", "POST");
    expect(res).toMatchObject({ status: 200, body: "ran ls|-l|/\n" });
  });

  function fetchText(
    urlPath: string,
    token: string | undefined,
    method = "GET",
  ): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest(new URL(urlPath, base), {
        method,
        rejectUnauthorized: false,
        agent: false,
        headers: token ? { authorization: `Bearer ${token}` } : {},
      });
      req.on("response", (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          body += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      req.end();
    });
  }
});
