import { describe, expect, it } from "vitest";
import {
  buildEndpoints,
  buildServicePorts,
  type StaleConntrack,
  staleConntrackEntries,
} from "../../src/service/index.js";
import { endpointIP, makeEndpointSlice, makeService, serviceIP, serviceIPv6 } from "../fixtures/services.js";

const show = (s: readonly StaleConntrack[]) =>
  s.map((e) => `${e.serviceIP}|${e.port}|${e.protocol}|${e.endpoint ?? "*"}`).sort();

function port(opts: Parameters<typeof makeService>[1]) {
  return buildServicePorts(makeService(1, opts)).ports[0]!;
}

function eps(n: number, opts: Parameters<typeof makeEndpointSlice>[2] = {}) {
  const slices = [makeEndpointSlice(1, n, { protocol: "UDP", ...opts })];
  return buildEndpoints(slices, { nodeName: "n" }).endpoints.get("ns-1/svc-1:p0/UDP") ?? [];
}

describe("staleConntrackEntries", () => {
  it("flushes the old frontend when the port number changes", () => {
    const before = port({ protocol: "UDP" });
    const after = { ...before, port: 5353 };
    const e = eps(1);
    expect(show(staleConntrackEntries(before, after, e, e))).toEqual([`${serviceIP(1)}|80|UDP|*`]);
  });

  it("flushes the old node port when it changes or the type drops it", () => {
    const np = port({ protocol: "UDP", type: "NodePort" });
    const cip = port({ protocol: "UDP" });
    const e = eps(1);
    expect(show(staleConntrackEntries(np, { ...np, nodePort: np.nodePort + 1 }, e, e))).toEqual([
      `|${np.nodePort}|UDP|*`,
    ]);
    expect(show(staleConntrackEntries(np, cip, e, e))).toEqual([`|${np.nodePort}|UDP|*`]);
  });

  it("flushes dropped external IPs only", () => {
    const withExt = port({ protocol: "UDP", externalIPs: ["192.0.2.1", "192.0.2.2"] });
    const fewer = port({ protocol: "UDP", externalIPs: ["192.0.2.2"] });
    const e = eps(1);
    expect(show(staleConntrackEntries(withExt, fewer, e, e))).toEqual(["192.0.2.1|80|UDP|*"]);
  });

  it("pairs a gone endpoint with same-family service IPs only", () => {
    const dual = port({ protocol: "UDP", dualStack: true });
    expect(dual.clusterIPs).toEqual([serviceIP(1), serviceIPv6(1)]);
    expect(show(staleConntrackEntries(dual, dual, eps(2), eps(1)))).toEqual([
      `${serviceIP(1)}|80|UDP|${endpointIP(1, 1)}:8080`,
    ]);
  });

  it("does nothing when nothing stale remains, and never for TCP", () => {
    const udp = port({ protocol: "UDP" });
    expect(staleConntrackEntries(udp, udp, eps(2), eps(2))).toEqual([]);
    expect(staleConntrackEntries(udp, udp, eps(1), eps(3))).toEqual([]);
    expect(staleConntrackEntries(udp, udp, eps(1, { notReady: () => true }), [])).toEqual([]);
    const tcp = port({});
    expect(staleConntrackEntries(tcp, undefined, eps(2), undefined)).toEqual([]);
  });
});
