import { describe, expect, it } from "vitest";
import type { EndpointSlice } from "../../src/kube/objects.js";
import {
  buildEndpoints,
  buildServicePorts,
  mergeEndpointSlices,
  type ParsedEndpointSlice,
  parsedSlicesEqual,
  parseEndpointSlice,
} from "../../src/service/index.js";
import { InvalidObjectError } from "../../src/util/errors.js";
import { endpointIP, makeEndpointSlice, makeService } from "../fixtures/services.js";

type RawEndpoint = NonNullable<EndpointSlice["endpoints"]>[number];

function slice(name: string, endpoints: RawEndpoint[], extra: Partial<EndpointSlice> = {}): EndpointSlice {
  return {
    addressType: "IPv4",
    metadata: { namespace: "default", name, labels: { "kubernetes.io/service-name": "web" } },
    ports: [
      { name: "http", port: 8080, protocol: "TCP" },
      { name: "dns", port: 53, protocol: "UDP" },
    ],
    endpoints,
    ...extra,
  };
}

const opts = { nodeName: "node-a" };

describe("parseEndpointSlice", () => {
  it("normalises conditions: ready unset = true, serving unset = ready, terminating unset = false", () => {
    const r = parseEndpointSlice(
      slice("s1", [
        { addresses: ["10.0.0.1"] },
        { addresses: ["10.0.0.2"], conditions: { ready: false } },
        { addresses: ["10.0.0.3"], conditions: { ready: false, serving: true, terminating: true } },
        { addresses: ["10.0.0.4"], conditions: { ready: true, serving: false } },
      ]),
      opts,
    );
    expect(r.error).toBeUndefined();
    expect(r.slice!.endpoints.map((e) => [e.ip, e.ready, e.serving, e.terminating])).toEqual([
      ["10.0.0.1", true, true, false],
      ["10.0.0.2", false, false, false],
      ["10.0.0.3", false, true, true],
      ["10.0.0.4", true, false, false],
    ]);
  });

  it("reads node name, zone, hints and locality", () => {
    const r = parseEndpointSlice(
      slice("s1", [
        {
          addresses: ["10.0.0.1"],
          nodeName: "node-a",
          zone: "z1",
          hints: { forZones: [{ name: "z2" }, { name: "z1" }], forNodes: [{ name: "node-a" }] },
        },
        { addresses: ["10.0.0.2"], nodeName: "node-b" },
      ]),
      opts,
    );
    const [a, b] = r.slice!.endpoints;
    expect(a).toMatchObject({
      nodeName: "node-a",
      zone: "z1",
      zoneHints: ["z1", "z2"],
      nodeHints: ["node-a"],
      isLocal: true,
    });
    expect(b).toMatchObject({ nodeName: "node-b", zoneHints: [], nodeHints: [], isLocal: false });
    expect(b!.zone).toBeUndefined();
    // With no node name configured nothing is local.
    expect(
      parseEndpointSlice(slice("s1", [{ addresses: ["10.0.0.1"] }]), { nodeName: "" }).slice!.endpoints[0]!
        .isLocal,
    ).toBe(false);
  });

  it("skips FQDN slices and slices labelled for another proxy or headless, without error", () => {
    expect(parseEndpointSlice(slice("s", [], { addressType: "FQDN" }), opts)).toEqual({
      skipped: "addressType FQDN",
    });
    const other = slice("s", []);
    other.metadata!.labels!["service.kubernetes.io/service-proxy-name"] = "foo";
    expect(parseEndpointSlice(other, opts).skipped).toMatch(/another proxy/);
    expect(parseEndpointSlice(other, { ...opts, proxyName: "foo" }).slice).toBeDefined();
    const headless = slice("s", []);
    headless.metadata!.labels!["service.kubernetes.io/headless"] = "";
    expect(parseEndpointSlice(headless, opts).skipped).toMatch(/headless/);
  });

  it("rejects a slice without service label or name, or with an unknown address type", () => {
    const noLabel = slice("s", []);
    noLabel.metadata!.labels = {};
    const r = parseEndpointSlice(noLabel, opts);
    expect(r.slice).toBeUndefined();
    expect(r.error).toBeInstanceOf(InvalidObjectError);
    expect(r.error!.message).toBe(
      "invalid EndpointSlice default/s: label kubernetes.io/service-name is missing",
    );
    expect(parseEndpointSlice({ addressType: "IPv4", endpoints: [] }, opts).error!.reasons).toContain(
      "metadata.name is missing",
    );
    expect(parseEndpointSlice(slice("s", [], { addressType: "IPX" }), opts).error!.reasons).toEqual([
      'addressType: unknown address type "IPX"',
    ]);
  });

  it("keeps the valid parts of a partly invalid slice and reports the rest", () => {
    const r = parseEndpointSlice(
      slice(
        "s1",
        [
          { addresses: ["10.0.0.1"] },
          { addresses: [] },
          { addresses: ["10.0.0.999"] },
          { addresses: ["fd00::1"] },
          { addresses: ["10.0.0.2"] },
        ],
        {
          ports: [
            { name: "http", port: 8080, protocol: "TCP" },
            { name: "bad", port: 0 },
            { name: "icmp", port: 1, protocol: "ICMP" },
            { name: "http", port: 9090, protocol: "TCP" },
          ],
        },
      ),
      opts,
    );
    expect(r.slice!.ports).toEqual([{ name: "http", port: 8080, protocol: "TCP" }]);
    expect(r.slice!.endpoints.map((e) => e.ip)).toEqual(["10.0.0.1", "10.0.0.2"]);
    expect(r.error!.object).toEqual({ kind: "EndpointSlice", namespace: "default", name: "s1" });
    expect(r.error!.reasons).toEqual([
      "ports[1].port: 0 is not a valid port number (1-65535)",
      'ports[2].protocol: unknown protocol "ICMP" (TCP, UDP or SCTP)',
      "ports[3]: duplicate port name and protocol http/TCP",
      "endpoints[1].addresses: no address",
      'endpoints[2].addresses[0]: "10.0.0.999" is not a valid IP address',
      "endpoints[3].addresses[0]: fd00::1 is not an IPv4 address (the slice's addressType)",
    ]);
  });

  it("reads the last-change trigger time and ignores ordering when comparing", () => {
    const a = parseEndpointSlice(makeEndpointSlice(1, 3, { triggerTime: "2024-05-01T10:00:00Z" }), opts)
      .slice!;
    expect(a.triggerTime).toBe(Date.parse("2024-05-01T10:00:00Z"));
    const reversed = makeEndpointSlice(1, 3);
    reversed.endpoints.reverse();
    const b = parseEndpointSlice(reversed, opts).slice!;
    expect(b.triggerTime).toBeUndefined();
    expect(parsedSlicesEqual(a, b)).toBe(true);
    const c = parseEndpointSlice(makeEndpointSlice(1, 3, { notReady: (j) => j === 1 }), opts).slice!;
    expect(parsedSlicesEqual(a, c)).toBe(false);
  });
});

describe("buildEndpoints / mergeEndpointSlices", () => {
  const ports = buildServicePorts({
    metadata: { namespace: "default", name: "web" },
    spec: {
      clusterIP: "10.96.0.1",
      ports: [
        { name: "http", port: 80, protocol: "TCP" },
        { name: "dns", port: 53, protocol: "UDP" },
      ],
    },
  }).ports;

  it("pairs slice ports with service ports by name and protocol", () => {
    const s = slice("s1", [{ addresses: ["10.0.0.1"] }], {
      ports: [
        { name: "http", port: 8080, protocol: "TCP" },
        { name: "dns", port: 5353, protocol: "UDP" },
        { name: "dns", port: 5353, protocol: "TCP" }, // no such service port
        { name: "metrics", port: 9100 },
      ],
    });
    const { endpoints, errors } = buildEndpoints([s], { ...opts, servicePorts: ports });
    expect(errors).toEqual([]);
    expect([...endpoints.keys()].sort()).toEqual(["default/web:dns/UDP", "default/web:http/TCP"]);
    expect(endpoints.get("default/web:http/TCP")!.map((e) => e.address)).toEqual(["10.0.0.1:8080"]);
    expect(endpoints.get("default/web:dns/UDP")!.map((e) => e.address)).toEqual(["10.0.0.1:5353"]);
    // Without service ports every slice port gets a list.
    const all = buildEndpoints([s], opts).endpoints;
    expect([...all.keys()].sort()).toEqual([
      "default/web:dns/TCP",
      "default/web:dns/UDP",
      "default/web:http/TCP",
      "default/web:metrics/TCP",
    ]);
  });

  it("merges several slices and deduplicates an address, preferring the ready copy", () => {
    const s1 = slice("s1", [
      { addresses: ["10.0.0.1"], conditions: { ready: false, serving: false } },
      { addresses: ["10.0.0.2"] },
    ]);
    const s2 = slice("s2", [
      { addresses: ["10.0.0.1"], conditions: { ready: true }, nodeName: "node-b" },
      { addresses: ["10.0.0.3"], conditions: { ready: false, serving: true, terminating: true } },
    ]);
    for (const order of [
      [s1, s2],
      [s2, s1],
    ]) {
      const eps = buildEndpoints(order, { ...opts, servicePorts: ports }).endpoints.get(
        "default/web:http/TCP",
      )!;
      expect(eps.map((e) => [e.address, e.ready, e.serving, e.terminating, e.nodeName ?? null])).toEqual([
        ["10.0.0.1:8080", true, true, false, "node-b"],
        ["10.0.0.2:8080", true, true, false, null],
        ["10.0.0.3:8080", false, true, true, null],
      ]);
    }
  });

  it("prefers the local copy among equally ready duplicates, and keeps IPv6 addresses bracketed", () => {
    const s1: EndpointSlice = {
      ...slice("s1", [{ addresses: ["fd00::1"], nodeName: "node-b" }]),
      addressType: "IPv6",
    };
    const s2: EndpointSlice = {
      ...slice("s2", [{ addresses: ["FD00:0::1"], nodeName: "node-a" }]),
      addressType: "IPv6",
    };
    const eps = buildEndpoints([s1, s2], { ...opts, servicePorts: ports }).endpoints.get(
      "default/web:http/TCP",
    )!;
    expect(eps).toHaveLength(1);
    expect(eps[0]).toMatchObject({
      address: "[fd00::1]:8080",
      family: "IPv6",
      isLocal: true,
      nodeName: "node-a",
    });
  });

  it("merges the IPv4 and IPv6 slices of a dual-stack service into one list per port", () => {
    const v4 = slice("web-v4", [{ addresses: ["10.0.0.1"] }]);
    const v6: EndpointSlice = { ...slice("web-v6", [{ addresses: ["fd00::1"] }]), addressType: "IPv6" };
    const list = buildEndpoints([v4, v6], { ...opts, servicePorts: ports }).endpoints.get(
      "default/web:http/TCP",
    )!;
    expect(list.map((e) => [e.address, e.family])).toEqual([
      ["10.0.0.1:8080", "IPv4"],
      ["[fd00::1]:8080", "IPv6"],
    ]);
  });

  it("keeps the same endpoint in different slices with different target ports apart", () => {
    const s1 = slice("s1", [{ addresses: ["10.0.0.1"] }], {
      ports: [{ name: "http", port: 8080, protocol: "TCP" }],
    });
    const s2 = slice("s2", [{ addresses: ["10.0.0.1"] }], {
      ports: [{ name: "http", port: 8081, protocol: "TCP" }],
    });
    const eps = buildEndpoints([s1, s2], { ...opts, servicePorts: ports }).endpoints.get(
      "default/web:http/TCP",
    )!;
    expect(eps.map((e) => e.address)).toEqual(["10.0.0.1:8080", "10.0.0.1:8081"]);
  });

  it("reports invalid slices and keeps the valid ones and parts", () => {
    const good = slice("good", [{ addresses: ["10.0.0.1"] }]);
    const partly = slice("partly", [{ addresses: ["10.0.0.2"] }, { addresses: ["bogus"] }]);
    const orphan = slice("orphan", [{ addresses: ["10.0.0.3"] }]);
    orphan.metadata!.labels = {};
    const { endpoints, errors } = buildEndpoints([good, partly, orphan], { ...opts, servicePorts: ports });
    expect(endpoints.get("default/web:http/TCP")!.map((e) => e.ip)).toEqual(["10.0.0.1", "10.0.0.2"]);
    expect(errors.map((e) => e.message)).toEqual([
      'invalid EndpointSlice default/partly: endpoints[1].addresses[0]: "bogus" is not a valid IP address',
      "invalid EndpointSlice default/orphan: label kubernetes.io/service-name is missing",
    ]);
  });

  it("separates the slices of different services", () => {
    const svcPorts = [...buildServicePorts(makeService(1)).ports, ...buildServicePorts(makeService(2)).ports];
    const { endpoints } = buildEndpoints([makeEndpointSlice(1, 2), makeEndpointSlice(2, 3)], {
      ...opts,
      servicePorts: svcPorts,
    });
    expect(endpoints.get("ns-1/svc-1:p0/TCP")!.map((e) => e.ip)).toEqual([
      endpointIP(1, 0),
      endpointIP(1, 1),
    ]);
    expect(endpoints.get("ns-2/svc-2:p0/TCP")).toHaveLength(3);
  });

  it("reuses unchanged endpoint objects and lists from a previous result", () => {
    const parse = (s: EndpointSlice) => parseEndpointSlice(s, opts).slice as ParsedEndpointSlice;
    const svcPorts = buildServicePorts(makeService(1)).ports;
    const first = mergeEndpointSlices([parse(makeEndpointSlice(1, 4))], svcPorts);
    const again = mergeEndpointSlices([parse(makeEndpointSlice(1, 4))], svcPorts, first);
    expect(again.get("ns-1/svc-1:p0/TCP")).toBe(first.get("ns-1/svc-1:p0/TCP"));
    const changed = mergeEndpointSlices(
      [parse(makeEndpointSlice(1, 4, { notReady: (j) => j === 2 }))],
      svcPorts,
      first,
    );
    const before = first.get("ns-1/svc-1:p0/TCP")!;
    const after = changed.get("ns-1/svc-1:p0/TCP")!;
    expect(after).not.toBe(before);
    const idx = after.findIndex((e) => e.ip === endpointIP(1, 2));
    expect(after[idx]!.ready).toBe(false);
    after.forEach((e, i) => {
      if (i === idx) expect(e).not.toBe(before[i]);
      else expect(e).toBe(before[i]);
    });
  });
});
