import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { type ServiceHealthListen, ServiceHealthServer } from "@worknode/core";
import { commitAll, FakeCommandRunner, slice, svc } from "@worknode/testing";
import { afterEach, describe, expect, it } from "vitest";
import { IptablesProxier } from "../src/proxier.js";

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

async function get(port: number): Promise<{ status: number; body: unknown } | string> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`, { headers: { connection: "close" } });
    return { status: res.status, body: JSON.parse(await res.text()) };
  } catch (e) {
    return (e as { cause?: { code?: string } }).cause?.code ?? String(e);
  }
}

const http = [{ name: "http", port: 80, targetPort: 8080, nodePort: 30080 }];

describe("IptablesProxier health-check node ports", () => {
  const proxiers: IptablesProxier[] = [];
  afterEach(async () => {
    for (const p of proxiers.splice(0)) await p.close();
  });

  it("serves healthCheckNodePort after each successful sync: 200 with a local endpoint, 503 without", async () => {
    const hc = await freePort();
    const lb = svc({
      ns: "web",
      name: "front",
      type: "LoadBalancer",
      clusterIP: "172.30.0.50",
      ports: http,
      lbIPs: ["203.0.113.10"],
      etp: "Local",
      healthCheckNodePort: hc,
    });
    const local = slice({
      ns: "web",
      service: "front",
      ports: http,
      endpoints: [{ ip: "10.0.0.5", node: "node-1" }],
    });
    const { tracker, snapshot, changes } = commitAll([lb], [local], "node-1");
    const runner = new FakeCommandRunner();
    const proxier = new IptablesProxier({
      nodeName: "node-1",
      runner,
      healthCheck: { bindAddresses: ["127.0.0.1"] },
    });
    proxiers.push(proxier);
    expect(await get(hc)).toBe("ECONNREFUSED");
    await proxier.sync({ snapshot, changes, full: true });
    expect(await get(hc)).toEqual({
      status: 200,
      body: { service: { namespace: "web", name: "front" }, localEndpoints: 1, serviceProxyHealthy: true },
    });
    // The filter table lets the port in, as kube-proxy does.
    expect(proxier.lastApplied()!.payload).toContain(`--dport ${hc} -j ACCEPT`);

    tracker.endpointSliceHandler.onUpdate!(
      local,
      slice({ ns: "web", service: "front", ports: http, endpoints: [{ ip: "10.0.0.6", node: "node-2" }] }),
    );
    const next = tracker.commit();
    // A failed restore leaves the health checks as they were ...
    runner.respond = (c) => (c.command === "iptables-restore" ? { code: 1, stderr: "boom" } : undefined);
    await expect(proxier.sync({ ...next, full: false })).rejects.toThrow(/iptables-restore failed/);
    expect(await get(hc)).toMatchObject({ status: 200 });
    // ... the next successful one updates them.
    runner.respond = () => undefined;
    await proxier.sync({ ...next, full: true });
    expect(await get(hc)).toEqual({
      status: 503,
      body: { service: { namespace: "web", name: "front" }, localEndpoints: 0, serviceProxyHealthy: true },
    });

    await proxier.close();
    expect(await get(hc)).toBe("ECONNREFUSED");
  });

  it("binds the node IPs inside nodePortAddresses by default, or uses a server the caller owns", async () => {
    const hosts: (string | undefined)[] = [];
    const listen: ServiceHealthListen = async (host) => {
      hosts.push(host);
      return { close: async () => {} };
    };
    const lb = svc({
      ns: "web",
      name: "front",
      type: "LoadBalancer",
      clusterIP: "172.30.0.50",
      ports: http,
      etp: "Local",
      healthCheckNodePort: 32123,
    });
    const { snapshot, changes } = commitAll([lb], [], "node-1");
    const proxier = new IptablesProxier({
      nodeName: "node-1",
      nodeIPs: ["192.168.0.2", "10.1.0.2", "fd00::2"],
      nodePortAddresses: ["192.168.0.0/24", "fd00::/64"],
      runner: new FakeCommandRunner(),
      healthCheck: { listen },
    });
    proxiers.push(proxier);
    await proxier.sync({ snapshot, changes, full: true });
    expect(hosts).toEqual(["192.168.0.2", "fd00::2"]);
    expect(proxier.serviceHealth?.status()).toEqual([
      { namespace: "web", name: "front", port: 32123, localEndpoints: 0 },
    ]);

    const owned = new ServiceHealthServer({ listen });
    const withOwned = new IptablesProxier({
      nodeName: "node-1",
      runner: new FakeCommandRunner(),
      healthCheck: owned,
    });
    expect(withOwned.serviceHealth).toBe(owned);
    hosts.length = 0;
    await withOwned.sync({ snapshot, changes, full: true });
    expect(hosts).toEqual([undefined]);
    await withOwned.close(); // not the proxier's to close
    expect(owned.status()).toHaveLength(1);
    await owned.close();
    expect(owned.status()).toHaveLength(0);
  });
});
