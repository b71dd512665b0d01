import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runHttpProbe } from "../../src/probes/http-probe.js";
import { buildHttpProbeRequest, ProbeError } from "../../src/probes/probe-target.js";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface Seen {
  url: string;
  headers: IncomingMessage["headers"];
  rawHeaders: string[];
  port: number;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return (server.address() as AddressInfo).port;
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((r) => server.close(() => r()));
}

/** A loopback HTTP server whose routes the tests set, recording every request. */
class TestServer {
  readonly seen: Seen[] = [];
  routes = new Map<string, Handler>();
  port = 0;
  readonly server: Server;

  constructor(server?: Server) {
    this.server = server ?? createServer();
    this.server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      this.seen.push({
        url: req.url ?? "",
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        port: this.port,
      });
      const route = this.routes.get((req.url ?? "").split("?")[0] ?? "");
      if (route) route(req, res);
      else {
        res.writeHead(404);
        res.end("no route");
      }
    });
  }

  async start(): Promise<this> {
    this.port = await listen(this.server);
    return this;
  }
}

function probe(port: number | string, extra: Record<string, unknown> = {}) {
  return { httpGet: { port, path: "/healthz", ...extra } };
}

describe("httpGet probe against a real HTTP server on 127.0.0.1", () => {
  let s: TestServer;
  let other: TestServer;

  beforeAll(async () => {
    s = await new TestServer().start();
    other = await new TestServer().start();
    const status =
      (code: number, body = "") =>
      (_req: IncomingMessage, res: ServerResponse) => {
        res.writeHead(code);
        res.end(body);
      };
    s.routes.set("/healthz", status(200, "ok"));
    s.routes.set("/created", status(201));
    s.routes.set("/notmodified", status(304));
    s.routes.set("/bad", status(400));
    s.routes.set("/boom", status(503, "down"));
    s.routes.set("/redirect-same", (_req, res) => {
      res.writeHead(302, { location: "/healthz" });
      res.end();
    });
    s.routes.set("/redirect-to-bad", (_req, res) => {
      res.writeHead(301, { location: "/bad" });
      res.end();
    });
    s.routes.set("/redirect-other-port", (_req, res) => {
      res.writeHead(302, { location: `http://127.0.0.1:${other.port}/landing` });
      res.end();
    });
    other.routes.set("/landing", status(500));
    s.routes.set("/redirect-other-host", (_req, res) => {
      // 127.0.0.2 is a different host name: not followed, the 3xx itself counts as success.
      res.writeHead(302, { location: `http://127.0.0.2:${other.port}/landing` });
      res.end();
    });
    s.routes.set("/loop", (req, res) => {
      const n = Number(new URL(req.url ?? "", "http://x").searchParams.get("n") ?? "0");
      res.writeHead(302, { location: `/loop?n=${n + 1}` });
      res.end();
    });
    s.routes.set("/slow", () => {
      /* never answers */
    });
    s.routes.set("/slow-body", (_req, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write("partial");
    });
    s.routes.set("/big", (_req, res) => {
      res.writeHead(200);
      res.end("x".repeat(1024 * 1024));
    });
  });

  afterAll(async () => {
    await close(s.server);
    await close(other.server);
  });

  const run = (p: ReturnType<typeof probe>, timeoutMs = 2000) =>
    runHttpProbe(buildHttpProbeRequest(p, undefined, "127.0.0.1"), timeoutMs);

  it("succeeds on 200 and 201 and sends kubelet's headers", async () => {
    const before = s.seen.length;
    expect((await run(probe(s.port))).result).toBe("success");
    expect((await run(probe(s.port, { path: "/created" }))).result).toBe("success");
    const req = s.seen[before]!;
    expect(req.url).toBe("/healthz");
    expect(req.headers["user-agent"]).toBe("kube-probe/1.36");
    expect(req.headers.accept).toBe("*/*");
    expect(req.headers.connection).toBe("close");
    expect(req.headers.host).toBe(`127.0.0.1:${s.port}`);
  });

  it("fails on 400 and 503 with the status in the message", async () => {
    const bad = await run(probe(s.port, { path: "/bad" }));
    expect(bad).toEqual({ result: "failure", output: "HTTP probe failed with statuscode: 400" });
    expect((await run(probe(s.port, { path: "/boom" }))).result).toBe("failure");
  });

  it("treats 3xx without a followed redirect as success (304)", async () => {
    expect((await run(probe(s.port, { path: "/notmodified" }))).result).toBe("success");
  });

  it("sends the probe's headers, a Host override, and lets them replace User-Agent and Accept", async () => {
    const before = s.seen.length;
    const out = await run(
      probe(s.port, {
        path: "/healthz?full=1",
        httpHeaders: [
          { name: "X-Custom", value: "a" },
          { name: "X-Custom", value: "b" },
          { name: "Host", value: "app.example" },
          { name: "User-Agent", value: "mine/1" },
          { name: "Accept", value: "" },
        ],
      }),
    );
    expect(out.result).toBe("success");
    const req = s.seen[before]!;
    expect(req.url).toBe("/healthz?full=1");
    expect(req.headers.host).toBe("app.example");
    expect(req.headers["user-agent"]).toBe("mine/1");
    expect(req.headers.accept).toBeUndefined();
    const custom = req.rawHeaders.filter((_, i) => i % 2 === 1 && req.rawHeaders[i - 1] === "X-Custom");
    expect(custom).toEqual(["a", "b"]);
  });

  it("follows a redirect on the same host, and fails when it lands on an error", async () => {
    const before = s.seen.length;
    expect((await run(probe(s.port, { path: "/redirect-same" }))).result).toBe("success");
    expect(s.seen.slice(before).map((r) => r.url)).toEqual(["/redirect-same", "/healthz"]);
    expect((await run(probe(s.port, { path: "/redirect-to-bad" }))).result).toBe("failure");
  });

  it("follows a redirect to another port of the same host name", async () => {
    const before = other.seen.length;
    const out = await run(probe(s.port, { path: "/redirect-other-port" }));
    expect(other.seen.length).toBe(before + 1);
    expect(out.result).toBe("failure");
  });

  it("does not follow a redirect to another host: the 3xx counts as success", async () => {
    const before = other.seen.length;
    const out = await run(probe(s.port, { path: "/redirect-other-host" }));
    expect(out.result).toBe("success");
    expect(out.output).toContain("Probe terminated redirects");
    expect(other.seen.length).toBe(before);
  });

  it("stops after 10 requests in a redirect loop", async () => {
    const before = s.seen.length;
    const out = await run(probe(s.port, { path: "/loop" }));
    expect(out.result).toBe("failure");
    expect(out.output).toContain("stopped after 10 redirects");
    expect(s.seen.length - before).toBe(10);
  });

  it("fails when the server does not answer within the timeout", async () => {
    const out = await run(probe(s.port, { path: "/slow" }), 300);
    expect(out.result).toBe("failure");
    expect(out.output).toContain("Client.Timeout exceeded");
  });

  it("errors (kubelet discards the result) when the body stalls past the timeout", async () => {
    await expect(run(probe(s.port, { path: "/slow-body" }), 300)).rejects.toBeInstanceOf(ProbeError);
  });

  it("reads at most 10 KiB of a large body", async () => {
    const out = await run(probe(s.port, { path: "/big" }));
    expect(out.result).toBe("success");
    expect(out.output.length).toBe(10 * 1024);
  });

  it("fails when nothing listens on the port", async () => {
    const closed = new TestServer();
    const port = await listen(closed.server);
    await close(closed.server);
    const out = await run(probe(port));
    expect(out.result).toBe("failure");
    expect(out.output).toMatch(/ECONNREFUSED/);
  });

  it("resolves a named container port", async () => {
    const req = buildHttpProbeRequest(
      { httpGet: { port: "http-health", path: "/healthz" } },
      { name: "app", ports: [{ name: "http-health", containerPort: s.port }] },
      "127.0.0.1",
    );
    expect((await runHttpProbe(req, 2000)).result).toBe("success");
  });
});

describe("httpGet probe over HTTPS with a self-signed certificate", () => {
  let dir: string;
  let s: TestServer;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "probe-tls-"));
    const key = path.join(dir, "key.pem");
    const cert = path.join(dir, "cert.pem");
    await promisify(execFile)("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "1",
      "-subj",
      "/CN=probe-test",
    ]);
    const server = createHttpsServer({ key: await readFile(key), cert: await readFile(cert) });
    s = await new TestServer(server as unknown as Server).start();
    s.routes.set("/healthz", (_req, res) => {
      res.writeHead(200);
      res.end("secure ok");
    });
    s.routes.set("/fail", (_req, res) => {
      res.writeHead(500);
      res.end();
    });
  });

  afterAll(async () => {
    await close(s.server);
    await rm(dir, { recursive: true, force: true });
  });

  it("succeeds without verifying the certificate", async () => {
    const req = buildHttpProbeRequest(probe(s.port, { scheme: "HTTPS" }), undefined, "127.0.0.1");
    expect(await runHttpProbe(req, 2000)).toEqual({ result: "success", output: "secure ok" });
  });

  it("fails on a 500 over HTTPS", async () => {
    const req = buildHttpProbeRequest(
      probe(s.port, { scheme: "HTTPS", path: "/fail" }),
      undefined,
      "127.0.0.1",
    );
    expect((await runHttpProbe(req, 2000)).result).toBe("failure");
  });

  it("fails when speaking HTTP to the HTTPS port", async () => {
    const req = buildHttpProbeRequest(probe(s.port), undefined, "127.0.0.1");
    expect((await runHttpProbe(req, 2000)).result).toBe("failure");
  });
});
