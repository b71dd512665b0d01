import { describe, expect, it } from "vitest";
import {
  ConfigError,
  describeError,
  InvalidObjectError,
  UnavailableError,
  WorknodeError,
} from "../../src/util/errors.js";
import { Counter, createMetricsRegistry, startMetricsServer } from "../../src/util/metrics.js";

describe("typed errors", () => {
  it("name the object and carry a stable code", () => {
    const e = new InvalidObjectError(
      { kind: "Service", namespace: "default", name: "web", origin: "svc.yaml:3" },
      ["spec.ports[0].port: must be 1-65535"],
    );
    expect(e).toBeInstanceOf(WorknodeError);
    expect(e.code).toBe("INVALID_OBJECT");
    expect(e.name).toBe("InvalidObjectError");
    expect(e.message).toBe("invalid Service default/web (svc.yaml:3): spec.ports[0].port: must be 1-65535");
    expect(new ConfigError("bad flag").code).toBe("CONFIG");
    expect(describeError(new UnavailableError("unix:///x.sock", "dial failed\nstack"))).toBe("dial failed");
  });
});

describe("metrics server", () => {
  it("serves registered metrics and health on loopback", async () => {
    const registry = createMetricsRegistry();
    const c = new Counter({ name: "worknode_test_total", help: "test counter", registers: [registry] });
    c.inc(3);
    let healthy = true;
    const server = await startMetricsServer({
      host: "127.0.0.1",
      port: 0,
      registries: [registry],
      health: () => ({ ok: healthy }),
    });
    try {
      const base = `http://127.0.0.1:${server.address.port}`;
      const body = await (await fetch(`${base}/metrics`)).text();
      expect(body).toContain("worknode_test_total 3");
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      healthy = false;
      expect((await fetch(`${base}/healthz`)).status).toBe(503);
      expect((await fetch(`${base}/nope`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });

  it("fails with UnavailableError when the port is taken", async () => {
    const a = await startMetricsServer({ host: "127.0.0.1", port: 0, registries: [createMetricsRegistry()] });
    try {
      await expect(
        startMetricsServer({
          host: "127.0.0.1",
          port: a.address.port,
          registries: [createMetricsRegistry()],
        }),
      ).rejects.toBeInstanceOf(UnavailableError);
    } finally {
      await a.close();
    }
  });
});

describe("metrics server with several registries", () => {
  it("serves metrics registered after it started", async () => {
    const a = createMetricsRegistry();
    const b = createMetricsRegistry();
    new Counter({ name: "worknode_early_total", help: "early", registers: [a] }).inc();
    const server = await startMetricsServer({ host: "127.0.0.1", port: 0, registries: [a, b] });
    try {
      new Counter({ name: "worknode_late_total", help: "late", registers: [b] }).inc(2);
      const body = await (await fetch(`http://127.0.0.1:${server.address.port}/metrics`)).text();
      expect(body).toContain("worknode_early_total 1");
      expect(body).toContain("worknode_late_total 2");
    } finally {
      await server.close();
    }
  });
});
