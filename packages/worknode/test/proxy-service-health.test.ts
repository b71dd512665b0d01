/**
 * `worknode proxy` serves the health-check node ports of `externalTrafficPolicy: Local`
 * LoadBalancer Services, as kube-proxy does: the real iptables backend over a command runner
 * that only records (no kernel is touched), and real HTTP listeners on a free port.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createProxyCommand } from "../src/commands/proxy.js";
import { createIptablesBackend } from "../src/commands/proxy-backend.js";
import { captureIO, eventually } from "./helpers/proxy-setup.js";
import { recordingRunner } from "./helpers/recording-backend.js";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "worknode-svc-health-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A TCP port nothing listens on now. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      srv.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
    });
  });
}

function localLoadBalancer(healthCheckNodePort: number, endpointNode: string): string {
  return `apiVersion: v1
kind: Service
metadata: {name: shop, namespace: default}
spec:
  type: LoadBalancer
  clusterIP: 172.30.0.40
  externalTrafficPolicy: Local
  healthCheckNodePort: ${healthCheckNodePort}
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30040}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: shop-1
  namespace: default
  labels: {kubernetes.io/service-name: shop}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.244.0.40]
  conditions: {ready: true}
  nodeName: ${endpointNode}
`;
}

async function health(port: number): Promise<{ status: number; body: unknown } | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`);
    return { status: res.status, body: await res.json() };
  } catch {
    return undefined;
  }
}

describe("worknode proxy: health-check node ports", () => {
  it("answers 200 with the local endpoint count, 503 once the endpoint is on another node, and closes at exit", async () => {
    const port = await freePort();
    const servicesFile = path.join(dir, "services.yaml");
    await writeFile(servicesFile, localLoadBalancer(port, "node-1"));
    const { runner } = recordingRunner();
    const controller = new AbortController();
    const { io } = captureIO(controller.signal);
    const run = createProxyCommand({
      backendFor: () => createIptablesBackend(runner),
      nodeIPs: () => ["127.0.0.1"],
      hostname: () => "node-1",
    }).run(
      [
        "--services-file",
        servicesFile,
        "--healthz-bind-address=",
        "--metrics-bind-address=",
        "--iptables-min-sync-period=0s",
        "--log-level=warn",
      ],
      io,
    );
    try {
      await eventually(
        "the health-check node port answers",
        async () => (await health(port))?.status === 200,
      );
      expect((await health(port))?.body).toEqual({
        service: { namespace: "default", name: "shop" },
        localEndpoints: 1,
        serviceProxyHealthy: true,
      });
      await writeFile(servicesFile, localLoadBalancer(port, "node-2"));
      await eventually("503 without a local endpoint", async () => (await health(port))?.status === 503);
      expect((await health(port))?.body).toMatchObject({ localEndpoints: 0 });
    } finally {
      controller.abort();
      expect(await run).toBe(0);
    }
    expect(await health(port)).toBeUndefined();
  });
});
