import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Pod } from "@worknode/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProbeExecRuntime } from "../../src/probes/exec-probe.js";
import { ProbeHandlers } from "../../src/probes/probe-handlers.js";
import {
  buildHttpProbeRequest,
  expandProbeCommand,
  ProbeError,
  probeHandlerKind,
  resolveProbePort,
} from "../../src/probes/probe-target.js";
import { ProberMetrics } from "../../src/probes/prober-metrics.js";

const container = {
  name: "app",
  image: "busybox",
  ports: [
    { name: "http", containerPort: 8080 },
    { name: "grpc", containerPort: 9090 },
  ],
  env: [
    { name: "DIR", value: "/srv" },
    { name: "FROM_FIELD", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
    { name: "DIR", value: "/data" },
  ],
};

function pod(extra: Partial<NonNullable<Pod["spec"]>> = {}): Pod {
  return {
    metadata: { name: "web", namespace: "prod", uid: "u-1" },
    spec: { containers: [container], ...extra },
  };
}

describe("probe target resolution (pure)", () => {
  it("resolves numeric, named and numeric-string ports, rejecting unknown names and out-of-range ports", () => {
    expect(resolveProbePort(81, container)).toBe(81);
    expect(resolveProbePort("http", container)).toBe(8080);
    expect(resolveProbePort("8081", container)).toBe(8081);
    expect(() => resolveProbePort("metrics", container)).toThrow(/couldn't find port: metrics/);
    expect(() => resolveProbePort(0, container)).toThrow(ProbeError);
    expect(() => resolveProbePort(65536, container)).toThrow(/invalid port number: 65536/);
    expect(() => resolveProbePort(undefined, container)).toThrow(ProbeError);
  });

  it("expands $(VAR) in exec commands from static env values only (valueFrom counts as empty, last wins)", () => {
    expect(expandProbeCommand(["ls", "$(DIR)/x", "$(FROM_FIELD)", "$(NOPE)", "$$(DIR)"], container)).toEqual([
      "ls",
      "/data/x",
      "",
      "$(NOPE)",
      "$(DIR)",
    ]);
  });

  it("builds the httpGet request: scheme, host or pod IP, named port, path, default headers", () => {
    expect(
      buildHttpProbeRequest({ httpGet: { port: "http", path: "ready?x=1#frag" } }, container, "10.1.2.3"),
    ).toEqual({
      scheme: "http",
      host: "10.1.2.3",
      port: 8080,
      path: "/ready?x=1",
      headers: [
        ["User-Agent", "kube-probe/1.36"],
        ["Accept", "*/*"],
      ],
    });
    const r = buildHttpProbeRequest(
      {
        httpGet: {
          port: 443,
          host: "fd00::5",
          scheme: "HTTPS",
          httpHeaders: [
            { name: "accept", value: "application/json" },
            { name: "user-agent", value: "" },
          ],
        },
      },
      container,
      "10.1.2.3",
      "kube-probe/1.30",
    );
    expect(r).toEqual({
      scheme: "https",
      host: "fd00::5",
      port: 443,
      path: "/",
      headers: [["accept", "application/json"]],
    });
    expect(() =>
      buildHttpProbeRequest({ httpGet: { port: 80, scheme: "FTP" } }, container, "10.0.0.1"),
    ).toThrow(/unsupported scheme/);
    expect(() => buildHttpProbeRequest({ httpGet: { port: 80 } }, container, "")).toThrow(/no IP yet/);
  });

  it("picks the handler kind", () => {
    expect(probeHandlerKind({ exec: { command: ["true"] } })).toBe("exec");
    expect(probeHandlerKind({ httpGet: { port: 80 } })).toBe("httpGet");
    expect(probeHandlerKind({ tcpSocket: { port: 80 } })).toBe("tcpSocket");
    expect(probeHandlerKind({ grpc: { port: 80 } })).toBe("grpc");
    expect(probeHandlerKind({ periodSeconds: 3 })).toBeUndefined();
  });
});

describe("ProbeHandlers", () => {
  let server: Server;
  let port: number;
  const paths: string[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      paths.push(req.url ?? "");
      res.writeHead(req.url === "/ok" ? 200 : 500);
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  function execRuntime(exitCodes: number[]): { runtime: ProbeExecRuntime; cmds: string[][] } {
    const cmds: string[][] = [];
    return {
      cmds,
      runtime: {
        async execSync(req) {
          cmds.push(req.cmd);
          const code = exitCodes.shift();
          if (code === undefined) throw new Error("runtime: no such container");
          return { exitCode: code, stdout: new Uint8Array(), stderr: new Uint8Array() };
        },
      },
    };
  }

  it("dispatches exec probes to the runtime with the expanded command", async () => {
    const { runtime, cmds } = execRuntime([0, 3]);
    const h = new ProbeHandlers({ runtime });
    const p = { exec: { command: ["test", "-f", "$(DIR)/ready"] } };
    expect(await h.run("readiness", pod(), "app", "cid", "10.0.0.1", p, 1000)).toBe("success");
    expect(await h.run("readiness", pod(), "app", "cid", "10.0.0.1", p, 1000)).toBe("failure");
    expect(cmds).toEqual([
      ["test", "-f", "/data/ready"],
      ["test", "-f", "/data/ready"],
    ]);
  });

  it("dispatches httpGet and tcpSocket probes to the pod IP", async () => {
    const h = new ProbeHandlers({ runtime: execRuntime([]).runtime });
    const ok = { httpGet: { port, path: "/ok" } };
    const bad = { httpGet: { port, path: "/bad" } };
    expect(await h.run("liveness", pod(), "app", "cid", "127.0.0.1", ok, 1000)).toBe("success");
    expect(await h.run("liveness", pod(), "app", "cid", "127.0.0.1", bad, 1000)).toBe("failure");
    expect(await h.run("startup", pod(), "app", "cid", "127.0.0.1", { tcpSocket: { port } }, 1000)).toBe(
      "success",
    );
  });

  it("retries a probe that errors 3 times, then rejects with ProbeError", async () => {
    const { runtime, cmds } = execRuntime([]);
    const h = new ProbeHandlers({ runtime });
    await expect(
      h.run("liveness", pod(), "app", "cid", "10.0.0.1", { exec: { command: ["true"] } }, 1000),
    ).rejects.toBeInstanceOf(ProbeError);
    expect(cmds).toHaveLength(3);
  });

  it("recovers when a retry succeeds", async () => {
    const exitCodes = [0];
    let calls = 0;
    const runtime: ProbeExecRuntime = {
      async execSync() {
        calls++;
        if (calls === 1) throw new Error("transient");
        return { exitCode: exitCodes.shift() ?? 1, stdout: new Uint8Array(), stderr: new Uint8Array() };
      },
    };
    const h = new ProbeHandlers({ runtime });
    expect(await h.run("liveness", pod(), "app", "cid", "", { exec: { command: ["true"] } }, 1000)).toBe(
      "success",
    );
    expect(calls).toBe(2);
  });

  it("rejects a probe without a handler, a probe on an unknown named port, and a pod without IP", async () => {
    const h = new ProbeHandlers({ runtime: execRuntime([]).runtime });
    await expect(h.run("readiness", pod(), "app", "cid", "127.0.0.1", {}, 1000)).rejects.toThrow(
      /missing probe handler/,
    );
    await expect(
      h.run("readiness", pod(), "app", "cid", "127.0.0.1", { tcpSocket: { port: "nope" } }, 1000),
    ).rejects.toThrow(/couldn't find port/);
    await expect(h.run("readiness", pod(), "app", "cid", "", { tcpSocket: { port } }, 1000)).rejects.toThrow(
      /no IP yet/,
    );
  });

  it("records prober_probe_total and prober_probe_duration_seconds", async () => {
    const metrics = new ProberMetrics();
    const h = new ProbeHandlers({ runtime: execRuntime([0, 1]).runtime, metrics });
    const p = { exec: { command: ["true"] } };
    await h.run("liveness", pod(), "app", "cid", "", p, 1000);
    await h.run("liveness", pod(), "app", "cid", "", p, 1000);
    await h.run("readiness", pod(), "app", "cid", "", p, 1000).catch(() => undefined);
    const text = await metrics.registry.metrics();
    const labels = 'container="app",pod="web",namespace="prod",pod_uid="u-1"';
    expect(text).toContain(`prober_probe_total{probe_type="Liveness",result="successful",${labels}} 1`);
    expect(text).toContain(`prober_probe_total{probe_type="Liveness",result="failed",${labels}} 1`);
    expect(text).toContain(`prober_probe_total{probe_type="Readiness",result="unknown",${labels}} 1`);
    expect(text).toMatch(
      /prober_probe_duration_seconds_count\{probe_type="Liveness",container="app",pod="web",namespace="prod"\} 2/,
    );
  });
});
