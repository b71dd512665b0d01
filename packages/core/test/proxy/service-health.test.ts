import { createServer, type RequestListener } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { EndpointSlice, Service } from "../../src/kube/objects.js";
import {
  localReadyEndpointCounts,
  planServiceHealthListeners,
  type ServiceHealthListen,
  ServiceHealthServer,
  serviceHealthCheckPorts,
  serviceHealthResponse,
} from "../../src/proxy/service-health.js";
import type { ServiceSnapshot } from "../../src/service/model.js";
import { ServiceChangeTracker } from "../../src/service/tracker.js";

const NODE = "node-1";

interface SvcSpec {
  readonly name: string;
  readonly ns?: string;
  readonly type?: "ClusterIP" | "NodePort" | "LoadBalancer";
  readonly etp?: "Cluster" | "Local";
  readonly hc?: number;
  readonly ports?: readonly number[];
  readonly ip: string;
}

function service(s: SvcSpec): Service {
  const ports = s.ports ?? [80];
  const type = s.type ?? "LoadBalancer";
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { namespace: s.ns ?? "default", name: s.name },
    spec: {
      type,
      clusterIP: s.ip,
      clusterIPs: [s.ip],
      ipFamilies: ["IPv4"],
      ports: ports.map((p, i) => ({
        name: `p${p}`,
        port: p,
        protocol: "TCP",
        targetPort: p,
        ...(type !== "ClusterIP" ? { nodePort: 30000 + i + Number(s.ip.split(".")[3]) * 10 } : {}),
      })),
      ...(s.etp ? { externalTrafficPolicy: s.etp } : {}),
      ...(s.hc !== undefined ? { healthCheckNodePort: s.hc } : {}),
    },
  };
}

interface Ep {
  readonly ip: string;
  readonly node?: string;
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
}

function slice(svcName: string, ports: readonly number[], eps: readonly Ep[], ns = "default"): EndpointSlice {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    addressType: "IPv4",
    metadata: { namespace: ns, name: `${svcName}-x`, labels: { "kubernetes.io/service-name": svcName } },
    ports: ports.map((p) => ({ name: `p${p}`, port: p, protocol: "TCP" })),
    endpoints: eps.map((e) => ({
      addresses: [e.ip],
      conditions: {
        ready: e.ready ?? true,
        serving: e.serving ?? e.ready ?? true,
        terminating: e.terminating ?? false,
      },
      nodeName: e.node ?? NODE,
    })),
  };
}

/** A tracker for NODE fed with `services` and `slices`. */
function track(services: readonly Service[], slices: readonly EndpointSlice[]) {
  const tracker = new ServiceChangeTracker({ nodeName: NODE });
  for (const s of services) tracker.serviceHandler.onAdd!(s);
  for (const s of slices) tracker.endpointSliceHandler.onAdd!(s);
  const snapshot = (): ServiceSnapshot => tracker.commit().snapshot;
  return { tracker, snapshot: snapshot() };
}

describe("serviceHealthCheckPorts", () => {
  it("lists LoadBalancer Services with externalTrafficPolicy Local and a health-check port, once each", () => {
    const { snapshot } = track(
      [
        service({ name: "lb-local", ip: "10.96.0.1", etp: "Local", hc: 32001, ports: [80, 443] }),
        service({ name: "lb-cluster", ip: "10.96.0.2", etp: "Cluster", hc: 32002 }),
        service({ name: "np-local", ip: "10.96.0.3", type: "NodePort", etp: "Local", hc: 32003 }),
        service({ name: "lb-local-nohc", ip: "10.96.0.4", etp: "Local" }),
        service({ name: "other", ns: "kube-system", ip: "10.96.0.5", etp: "Local", hc: 32005 }),
      ],
      [],
    );
    const ports = serviceHealthCheckPorts(snapshot);
    expect([...ports.entries()].sort()).toEqual([
      ["default/lb-local", { namespace: "default", name: "lb-local", port: 32001 }],
      ["kube-system/other", { namespace: "kube-system", name: "other", port: 32005 }],
    ]);
    // Cached per services map.
    expect(serviceHealthCheckPorts(snapshot)).toBe(ports);
  });
});

describe("localReadyEndpointCounts", () => {
  it("counts this node's ready endpoints once per IP over all ports, like kube-proxy's LocalReadyEndpoints", () => {
    const { snapshot } = track(
      [
        service({ name: "a", ip: "10.96.0.1", etp: "Local", hc: 32001, ports: [80, 443] }),
        service({ name: "b", ip: "10.96.0.2", etp: "Local", hc: 32002 }),
        service({ name: "c", ip: "10.96.0.3", etp: "Local", hc: 32003 }),
      ],
      [
        slice(
          "a",
          [80, 443],
          [
            { ip: "10.0.0.1" },
            { ip: "10.0.0.2" },
            { ip: "10.0.0.3", node: "node-2" },
            { ip: "10.0.0.4", ready: false },
          ],
        ),
        // Only serving-terminating endpoints locally: the node must fail the check.
        slice("b", [80], [{ ip: "10.0.1.1", ready: false, serving: true, terminating: true }]),
        slice("c", [80], [{ ip: "10.0.2.1", node: "node-2" }]),
      ],
    );
    expect(localReadyEndpointCounts(snapshot)).toEqual(new Map([["default/a", 2]]));
    expect(localReadyEndpointCounts(snapshot, new Set(["default/b", "default/c"]))).toEqual(new Map());
    expect(localReadyEndpointCounts(snapshot, new Set(["default/a"]))).toEqual(new Map([["default/a", 2]]));
  });
});

describe("planServiceHealthListeners", () => {
  it("closes gone and re-ported services, opens new and re-ported ones, keeps the rest", () => {
    const want = (name: string, port: number) => [`ns/${name}`, { namespace: "ns", name, port }] as const;
    const plan = planServiceHealthListeners(
      new Map([
        ["ns/keep", 30001],
        ["ns/gone", 30002],
        ["ns/moved", 30003],
      ]),
      new Map([want("keep", 30001), want("moved", 30013), want("new", 30004)]),
    );
    expect(plan.close).toEqual(["ns/gone", "ns/moved"]);
    expect(plan.open).toEqual([
      { namespace: "ns", name: "moved", port: 30013 },
      { namespace: "ns", name: "new", port: 30004 },
    ]);
  });
});

describe("serviceHealthResponse", () => {
  it("is kube-proxy's body, headers and status", () => {
    const ok = serviceHealthResponse({ namespace: "web", name: "front" }, 2, true);
    expect(ok.status).toBe(200);
    expect(ok.body).toBe(
      '{\n\t"service": {\n\t\t"namespace": "web",\n\t\t"name": "front"\n\t},\n\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}',
    );
    expect(JSON.parse(ok.body)).toEqual({
      service: { namespace: "web", name: "front" },
      localEndpoints: 2,
      serviceProxyHealthy: true,
    });
    expect(ok.headers).toEqual({
      "Content-Type": "application/json",
      "X-Content-Type-Options": "nosniff",
      "X-Load-Balancing-Endpoint-Weight": "2",
    });
    expect(serviceHealthResponse({ namespace: "web", name: "front" }, 0, true).status).toBe(503);
    const sick = serviceHealthResponse({ namespace: "web", name: "front" }, 3, false);
    expect(sick.status).toBe(503);
    expect(JSON.parse(sick.body)).toMatchObject({ localEndpoints: 3, serviceProxyHealthy: false });
    expect(sick.headers["X-Load-Balancing-Endpoint-Weight"]).toBe("3");
  });
});

/** A port that was free a moment ago on 127.0.0.1. */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

type Probe =
  | { readonly ok: true; readonly status: number; readonly headers: Headers; readonly body: string }
  | { readonly ok: false; readonly error: string };

async function probe(port: number, path = "/"): Promise<Probe> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { connection: "close" } });
    return { ok: true, status: res.status, headers: res.headers, body: await res.text() };
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause;
    return { ok: false, error: cause?.code ?? String(e) };
  }
}

describe("ServiceHealthServer (real HTTP on 127.0.0.1)", () => {
  const servers: ServiceHealthServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });

  function newServer(opts: ConstructorParameters<typeof ServiceHealthServer>[0] = {}): ServiceHealthServer {
    const s = new ServiceHealthServer({ bindAddresses: ["127.0.0.1"], ...opts });
    servers.push(s);
    return s;
  }

  it("answers 200 with local ready endpoints and 503 without, following the snapshots", async () => {
    const port = await freePort();
    const svc = service({ name: "web", ip: "10.96.0.1", etp: "Local", hc: port, ports: [80, 443] });
    const { tracker, snapshot } = track(
      [svc],
      [slice("web", [80, 443], [{ ip: "10.0.0.1" }, { ip: "10.0.0.2" }, { ip: "10.0.0.3", node: "node-2" }])],
    );
    const hs = newServer();
    expect(await hs.sync(snapshot)).toEqual({ opened: ["default/web"], closed: [], failed: [] });
    expect(hs.status()).toEqual([{ namespace: "default", name: "web", port, localEndpoints: 2 }]);

    const up = await probe(port, "/anything?x=1");
    expect(up).toMatchObject({ ok: true, status: 200 });
    if (!up.ok) throw new Error("unreachable");
    expect(up.body).toBe(serviceHealthResponse({ namespace: "default", name: "web" }, 2, true).body);
    expect(up.headers.get("content-type")).toBe("application/json");
    expect(up.headers.get("x-content-type-options")).toBe("nosniff");
    expect(up.headers.get("x-load-balancing-endpoint-weight")).toBe("2");

    // The local endpoints go away (one moves to another node, one is not ready): 503.
    tracker.endpointSliceHandler.onUpdate!(
      slice("web", [80, 443], []),
      slice(
        "web",
        [80, 443],
        [
          { ip: "10.0.0.1", ready: false },
          { ip: "10.0.0.2", node: "node-2" },
        ],
      ),
    );
    const next = tracker.commit().snapshot;
    expect(await hs.sync(next)).toEqual({ opened: [], closed: [], failed: [] });
    const down = await probe(port);
    expect(down).toMatchObject({ ok: true, status: 503 });
    if (!down.ok) throw new Error("unreachable");
    expect(JSON.parse(down.body)).toEqual({
      service: { namespace: "default", name: "web" },
      localEndpoints: 0,
      serviceProxyHealthy: true,
    });
    expect(down.headers.get("x-load-balancing-endpoint-weight")).toBe("0");

    // The Service goes away: the port is closed.
    tracker.serviceHandler.onDelete!(svc);
    expect(await hs.sync(tracker.commit().snapshot)).toEqual({
      opened: [],
      closed: ["default/web"],
      failed: [],
    });
    expect(await probe(port)).toEqual({ ok: false, error: "ECONNREFUSED" });
    expect(hs.status()).toEqual([]);
  });

  it("moves to a new port, answers 503 while the proxy is unhealthy, and closes everything on close()", async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    let healthy = true;
    const hs = newServer({ proxyHealthy: () => healthy });
    const svc1 = service({ name: "web", ip: "10.96.0.1", etp: "Local", hc: p1 });
    const { tracker, snapshot } = track([svc1], [slice("web", [80], [{ ip: "10.0.0.1" }])]);
    await hs.sync(snapshot);
    expect(await probe(p1)).toMatchObject({ ok: true, status: 200 });

    healthy = false;
    const sick = await probe(p1);
    expect(sick).toMatchObject({ ok: true, status: 503 });
    if (sick.ok)
      expect(JSON.parse(sick.body)).toMatchObject({ localEndpoints: 1, serviceProxyHealthy: false });
    healthy = true;

    const svc2 = service({ name: "web", ip: "10.96.0.1", etp: "Local", hc: p2 });
    tracker.serviceHandler.onUpdate!(svc1, svc2);
    expect(await hs.sync(tracker.commit().snapshot)).toEqual({
      opened: ["default/web"],
      closed: ["default/web"],
      failed: [],
    });
    expect(await probe(p1)).toEqual({ ok: false, error: "ECONNREFUSED" });
    expect(await probe(p2)).toMatchObject({ ok: true, status: 200 });

    await hs.close();
    expect(await probe(p2)).toEqual({ ok: false, error: "ECONNREFUSED" });
  });

  it("reports a port it cannot bind and takes it on the next sync once it is free", async () => {
    const squatter = createServer((_q, r) => r.end("squatter"));
    await new Promise<void>((r) => squatter.listen(0, "127.0.0.1", () => r()));
    const port = (squatter.address() as AddressInfo).port;
    const hs = newServer();
    const { snapshot } = track(
      [service({ name: "web", ip: "10.96.0.1", etp: "Local", hc: port })],
      [slice("web", [80], [{ ip: "10.0.0.1" }])],
    );
    const first = await hs.sync(snapshot);
    expect(first.opened).toEqual([]);
    expect(first.failed).toHaveLength(1);
    expect(first.failed[0]).toMatchObject({ service: "default/web", port });
    expect(String(first.failed[0]!.error)).toMatch(/EADDRINUSE/);
    expect(hs.status()).toEqual([]);

    await new Promise<void>((r) => squatter.close(() => r()));
    expect((await hs.sync(snapshot)).opened).toEqual(["default/web"]);
    expect(await probe(port)).toMatchObject({ ok: true, status: 200 });
  });

  it("listens on every bind address through the injected listener, and undoes a partial open", async () => {
    const calls: string[] = [];
    const closed: string[] = [];
    let failOn: string | undefined;
    const listen: ServiceHealthListen = async (host, port, _handler: RequestListener) => {
      calls.push(`${host}:${port}`);
      if (host === failOn) throw new Error(`cannot bind ${host}`);
      return {
        close: async () => {
          closed.push(`${host}:${port}`);
        },
      };
    };
    const hs = newServer({ bindAddresses: ["192.168.0.2", "fd00::2", "192.168.0.2"], listen });
    const { snapshot } = track(
      [service({ name: "web", ip: "10.96.0.1", etp: "Local", hc: 32100 })],
      [slice("web", [80], [{ ip: "10.0.0.1" }])],
    );
    failOn = "fd00::2";
    const r = await hs.sync(snapshot);
    expect(calls).toEqual(["192.168.0.2:32100", "fd00::2:32100"]);
    expect(closed).toEqual(["192.168.0.2:32100"]);
    expect(r.failed.map((f) => f.service)).toEqual(["default/web"]);

    failOn = undefined;
    calls.length = 0;
    expect((await hs.sync(snapshot)).opened).toEqual(["default/web"]);
    expect(calls).toEqual(["192.168.0.2:32100", "fd00::2:32100"]);

    const defaults = new ServiceHealthServer({ listen });
    servers.push(defaults);
    calls.length = 0;
    await defaults.sync(snapshot);
    expect(calls).toEqual(["undefined:32100"]);
  });
});
