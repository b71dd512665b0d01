import type { EndpointSlice, Service } from "@worknode/core";
import {
  commitAll,
  fixtureLoadBalancer,
  fixtureNodePort,
  fixtureService,
  fixtureSlice,
  fixtureSliceV6,
  localLoadBalancer,
  slice,
  svc,
  threeServices,
} from "@worknode/testing";
import { describe, expect, it } from "vitest";
import {
  hashAndTruncate,
  type NftRenderNode,
  type NftRenderOptions,
  type NftRenderResult,
  NftRenderStateReusedError,
  renderNftables,
  servicePortChainNames,
} from "../src/index.js";
import { applyPayload, base32, dumpModel, emptyModel, expectedHashAndTruncate } from "./helpers/nft-model.js";

const node: NftRenderNode = { name: "test-node", nodeIPs: ["192.168.0.2", "2001:db8::1"] };
const v4: NftRenderOptions = { family: "IPv4", clusterCIDR: "10.0.0.0/8", masqueradeAll: false };
const v6: NftRenderOptions = { family: "IPv6", clusterCIDR: "fd00:10::/64", masqueradeAll: false };
const p80 = [{ name: "p80", port: 80 }];
const T = "ip kube-proxy";

/** Chain names computed independently of the source (sha256 + our own base32). */
function chains(ns: string, name: string, proto = "tcp", port = "p80") {
  const base = expectedHashAndTruncate(`${ns}/${name}/${proto}/${port}`);
  return {
    cluster: `service-${base}`,
    local: `local-${base}`,
    external: `external-${base}`,
    firewall: `firewall-${base}`,
  };
}

function full(services: Service[], slices: EndpointSlice[], options: NftRenderOptions = v4, n = node) {
  const c = commitAll(services, slices);
  return {
    ...c,
    r: renderNftables({ snapshot: c.snapshot, changes: c.changes, full: true, node: n, options }),
  };
}

/** Items of every `add element <table> <set> { … }` line. */
function elements(payload: string, set: string, table = T): string[] {
  const head = `add element ${table} ${set} { `;
  return payload
    .split("\n")
    .filter((l) => l.startsWith(head))
    .flatMap((l) => l.slice(head.length, -2).split(", "));
}

/** Rules of one chain. */
function rules(payload: string, chain: string, table = T): string[] {
  const head = `add rule ${table} ${chain} `;
  return payload
    .split("\n")
    .filter((l) => l.startsWith(head))
    .map((l) => l.slice(head.length));
}

function declaredChains(payload: string, table = T): string[] {
  const head = `add chain ${table} `;
  return payload
    .split("\n")
    .filter((l) => l.startsWith(head))
    .map((l) => l.slice(head.length));
}

describe("chain names", () => {
  it("are kube-proxy's hashAndTruncate: base32(sha256(ns/name/proto/port))[:8]-…", () => {
    const n = servicePortChainNames({ namespace: "ns1", name: "svc1", port: "p80" }, "TCP");
    // Independent computation.
    expect(base32(new Uint8Array([0x66, 0x6f, 0x6f, 0x62, 0x61, 0x72]))).toBe("MZXW6YTBOI======"); // RFC 4648 test vector
    expect(n).toEqual(chains("ns1", "svc1"));
    expect(n.cluster).toMatch(/^service-[A-Z2-7]{8}-ns1\/svc1\/tcp\/p80$/);
    // Names that appear in kube-proxy's own nftables documentation and tests.
    expect(n.cluster).toBe("service-ULMVA6XW-ns1/svc1/tcp/p80");
    expect(hashAndTruncate("ns1/svc1/tcp/p80__10.180.0.1/80")).toBe(
      "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80",
    );
    expect(servicePortChainNames({ namespace: "ns", name: "dns", port: "" }, "UDP").cluster).toBe(
      chains("ns", "dns", "udp", "").cluster,
    );
    expect(servicePortChainNames({ namespace: "ns", name: "s", port: "x" }, "SCTP").local).toBe(
      chains("ns", "s", "sctp", "x").local,
    );
  });

  it("truncate at 240 characters with ...", () => {
    const short = "a".repeat(231); // 8 + 1 + 231 = 240: kept whole
    expect(hashAndTruncate(short)).toBe(expectedHashAndTruncate(short));
    expect(hashAndTruncate(short)).toHaveLength(240);
    expect(hashAndTruncate(short).endsWith("a")).toBe(true);
    const long = `ns/${"b".repeat(300)}/tcp/p80`;
    const t = hashAndTruncate(long);
    expect(t).toHaveLength(240);
    expect(t.endsWith("...")).toBe(true);
    expect(t).toBe(expectedHashAndTruncate(long));
    const n = servicePortChainNames({ namespace: "ns", name: "c".repeat(300), port: "p80" }, "TCP");
    expect(n.external).toBe(`external-${expectedHashAndTruncate(`ns/${"c".repeat(300)}/tcp/p80`)}`);
    expect(n.external.length).toBe("external-".length + 240);
  });
});

describe("full renders", () => {
  it("ClusterIP with endpoints: service-ips goto service-…, numgen picks each endpoint with 1/n", () => {
    const ips = ["10.180.0.1", "10.180.0.2", "10.180.0.3", "10.180.0.4", "10.180.0.5"];
    const { r } = full(
      [fixtureService(1)],
      [slice({ ns: "ns1", service: "svc1", ports: p80, endpoints: ips.map((ip) => ({ ip })) })],
    );
    const c = chains("ns1", "svc1");
    expect(
      r.payload.startsWith(`add table ${T} { comment "rules for kube-proxy" ; }\ndelete table ${T}\n`),
    ).toBe(true);
    expect(elements(r.payload, "service-ips")).toEqual([`172.30.0.41 . tcp . 80 : goto ${c.cluster}`]);
    expect(elements(r.payload, "cluster-ips")).toEqual(["172.30.0.41"]);
    expect(elements(r.payload, "no-endpoint-services")).toEqual([]);
    expect(elements(r.payload, "hairpin-endpoints")).toEqual(ips.map((ip) => `${ip} . ${ip}`));
    expect(declaredChains(r.payload)).toContain(c.cluster);
    expect(declaredChains(r.payload)).not.toContain(c.external);
    expect(declaredChains(r.payload)).not.toContain(c.local);
    const rs = rules(r.payload, c.cluster);
    expect(rs[0]).toBe("ip daddr 172.30.0.41 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade");
    const picks = rs.slice(1);
    expect(picks).toHaveLength(5);
    // Probability that rule i is the one that DNATs.
    let remaining = 1;
    picks.forEach((rule, i) => {
      expect(rule.endsWith(`dnat to ${ips[i]}:80`)).toBe(true);
      expect(rule.startsWith("meta l4proto tcp ")).toBe(true);
      const m = /numgen random mod (\d+) 0 /.exec(rule);
      const p = m === null ? 1 : 1 / Number(m[1]);
      if (i === picks.length - 1) expect(m).toBeNull();
      expect(remaining * p).toBeCloseTo(1 / ips.length, 12);
      remaining *= 1 - p;
    });
    expect(remaining).toBeCloseTo(0, 12);
    expect(r.stats).toMatchObject({
      full: true,
      servicePorts: 1,
      endpoints: 5,
      servicePortsWritten: 1,
      chains: 1,
    });
  });

  it("one endpoint: a plain dnat rule", () => {
    const { r } = full([fixtureService(1)], [fixtureSlice(1, ["10.180.0.1"])]);
    expect(rules(r.payload, chains("ns1", "svc1").cluster).slice(1)).toEqual([
      "meta l4proto tcp dnat to 10.180.0.1:80",
    ]);
  });

  it("no endpoints: no-endpoint-services goto reject-chain, node ports and external IPs too, no chains", () => {
    const { r } = full([fixtureNodePort(9, 3009, { externalIPs: ["192.168.99.33"] })], []);
    expect(elements(r.payload, "no-endpoint-services")).toEqual([
      "172.30.0.49 . tcp . 80 : goto reject-chain",
      "192.168.99.33 . tcp . 80 : goto reject-chain",
    ]);
    expect(elements(r.payload, "no-endpoint-nodeports")).toEqual(["tcp . 3009 : goto reject-chain"]);
    expect(elements(r.payload, "service-ips")).toEqual([]);
    expect(elements(r.payload, "service-nodeports")).toEqual([]);
    expect(elements(r.payload, "cluster-ips")).toEqual(["172.30.0.49"]);
    expect(r.payload).not.toContain("ns9/svc9");
    expect(r.chainsWritten).toEqual([]);
    expect(rules(r.payload, "reject-chain")).toEqual(["reject"]);
  });

  it("not-ready endpoints are not used; serving-terminating ones are the fallback", () => {
    const s = fixtureService(1);
    const c = chains("ns1", "svc1");
    const notReady = full([s], [fixtureSlice(1, [{ ip: "10.180.0.1", ready: false }])]).r;
    expect(elements(notReady.payload, "no-endpoint-services")).toEqual([
      "172.30.0.41 . tcp . 80 : goto reject-chain",
    ]);
    const terminating = full(
      [s],
      [
        fixtureSlice(1, [
          { ip: "10.180.0.1", ready: false, serving: true, terminating: true },
          { ip: "10.180.0.2", ready: false, serving: false, terminating: true },
        ]),
      ],
    ).r;
    expect(elements(terminating.payload, "service-ips")).toEqual([
      `172.30.0.41 . tcp . 80 : goto ${c.cluster}`,
    ]);
    expect(rules(terminating.payload, c.cluster).slice(1)).toEqual([
      "meta l4proto tcp dnat to 10.180.0.1:80",
    ]);
    const mixed = full(
      [s],
      [fixtureSlice(1, [{ ip: "10.180.0.1", ready: false, serving: true, terminating: true }, "10.180.0.3"])],
    ).r;
    expect(rules(mixed.payload, c.cluster).slice(1)).toEqual(["meta l4proto tcp dnat to 10.180.0.3:80"]);
  });

  it("externalTrafficPolicy Local without local endpoints: drop external IPs, LB IPs and node port; ClusterIP works", () => {
    const { r } = full(
      [localLoadBalancer({ externalIPs: ["192.168.99.22"], healthCheckNodePort: 30000 })],
      [fixtureSlice(2, [{ ip: "10.180.0.2", node: "other-node" }])],
    );
    const c = chains("ns2", "svc2");
    expect(elements(r.payload, "no-endpoint-services")).toEqual([
      "192.168.99.22 . tcp . 80 : drop",
      "1.2.3.4 . tcp . 80 : drop",
    ]);
    expect(elements(r.payload, "no-endpoint-nodeports")).toEqual(["tcp . 3001 : drop"]);
    expect(elements(r.payload, "service-ips")).toEqual([
      `172.30.0.42 . tcp . 80 : goto ${c.cluster}`,
      `192.168.99.22 . tcp . 80 : goto ${c.external}`,
      `1.2.3.4 . tcp . 80 : goto ${c.external}`,
    ]);
    expect(elements(r.payload, "service-nodeports")).toEqual([`tcp . 3001 : goto ${c.external}`]);
    // The external chain only short-circuits pod and node traffic; there is no local chain.
    expect(rules(r.payload, c.external)).toEqual([
      `ip saddr 10.0.0.0/8 goto ${c.cluster} comment "short-circuit pod traffic"`,
      'fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"',
      `fib saddr type local goto ${c.cluster} comment "short-circuit local traffic"`,
    ]);
    expect(declaredChains(r.payload)).not.toContain(c.local);
    expect(rules(r.payload, c.cluster).slice(1)).toEqual(["meta l4proto tcp dnat to 10.180.0.2:80"]);
  });

  it("externalTrafficPolicy Local with a local endpoint: external chain goes to the local chain", () => {
    const { r } = full(
      [localLoadBalancer()],
      [
        fixtureSlice(2, [
          { ip: "10.180.0.2", node: "other-node" },
          { ip: "10.180.0.3", node: "test-node" },
        ]),
      ],
    );
    const c = chains("ns2", "svc2");
    expect(elements(r.payload, "no-endpoint-services")).toEqual([]);
    expect(elements(r.payload, "no-endpoint-nodeports")).toEqual([]);
    expect(rules(r.payload, c.external).at(-1)).toBe(`goto ${c.local}`);
    // The local chain has no masquerade rule (not the internal chain) and only the local endpoint.
    expect(rules(r.payload, c.local)).toEqual(["meta l4proto tcp dnat to 10.180.0.3:80"]);
    expect(rules(r.payload, c.cluster).slice(1)).toEqual([
      "meta l4proto tcp numgen random mod 2 0 dnat to 10.180.0.2:80",
      "meta l4proto tcp dnat to 10.180.0.3:80",
    ]);
  });

  it("externalTrafficPolicy Cluster: the external chain masquerades, then the cluster chain", () => {
    const { r } = full(
      [fixtureNodePort(3, 3003)],
      [fixtureSlice(3, [{ ip: "10.180.0.3", node: "other-node" }])],
    );
    const c = chains("ns3", "svc3");
    expect(rules(r.payload, c.external)).toEqual(["jump mark-for-masquerade", `goto ${c.cluster}`]);
    expect(elements(r.payload, "service-nodeports")).toEqual([`tcp . 3003 : goto ${c.external}`]);
    expect(rules(r.payload, "services")).toContain(
      "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports",
    );
  });

  it("internalTrafficPolicy Local: drop without a local endpoint, local chain with one", () => {
    const s = fixtureService(8, { itp: "Local" });
    const c = chains("ns8", "svc8");
    const none = full([s], [fixtureSlice(8, [{ ip: "10.180.0.8", node: "other-node" }])]).r;
    expect(elements(none.payload, "no-endpoint-services")).toEqual(["172.30.0.48 . tcp . 80 : drop"]);
    expect(elements(none.payload, "service-ips")).toEqual([]);
    expect(none.chainsWritten).toEqual([]);
    const local = full(
      [s],
      [
        fixtureSlice(8, [
          { ip: "10.180.0.8", node: "other-node" },
          { ip: "10.180.0.9", node: "test-node" },
        ]),
      ],
    ).r;
    expect(elements(local.payload, "service-ips")).toEqual([`172.30.0.48 . tcp . 80 : goto ${c.local}`]);
    expect(local.chainsWritten).toEqual([c.local]);
    expect(rules(local.payload, c.local)).toEqual([
      "ip daddr 172.30.0.48 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade",
      "meta l4proto tcp dnat to 10.180.0.9:80",
    ]);
    expect(elements(local.payload, "hairpin-endpoints")).toEqual(["10.180.0.9 . 10.180.0.9"]);
  });

  const lb = (sourceRanges: string[] | undefined, endpoints = true) =>
    full(
      [
        fixtureLoadBalancer(5, 3002, {
          externalIPs: ["192.168.99.55"],
          lbIPs: ["5.6.7.8", "fd00:99::8"],
          ...(sourceRanges !== undefined ? { sourceRanges } : {}),
        }),
      ],
      endpoints ? [fixtureSlice(5, ["10.180.0.5"])] : [],
    ).r;

  it("loadBalancerSourceRanges: firewall chain and firewall-ips element for the LB IPs only", () => {
    const r = lb(["203.0.113.0/25", "fd00::/8"]);
    const c = chains("ns5", "svc5");
    expect(elements(r.payload, "firewall-ips")).toEqual([`5.6.7.8 . tcp . 80 : goto ${c.firewall}`]);
    expect(rules(r.payload, c.firewall)).toEqual(["ip saddr != { 203.0.113.0/25 } drop"]);
    expect(rules(r.payload, "firewall-check")).toEqual([
      "ip daddr . meta l4proto . th dport vmap @firewall-ips",
    ]);
  });

  it("loadBalancerSourceRanges containing the node IP let the LB IPs in", () => {
    const r = lb(["203.0.113.0/25", "192.168.0.0/24"]);
    expect(rules(r.payload, chains("ns5", "svc5").firewall)).toEqual([
      "ip saddr != { 203.0.113.0/25, 192.168.0.0/24, 5.6.7.8 } drop",
    ]);
  });

  it("no firewall without source ranges or without endpoints", () => {
    for (const r of [lb(undefined), lb(["203.0.113.0/25"], false), lb(["fd00::/8"])]) {
      expect(elements(r.payload, "firewall-ips")).toEqual([]);
      expect(declaredChains(r.payload)).not.toContain(chains("ns5", "svc5").firewall);
    }
  });

  it("ClientIP affinity: one dynamic set per endpoint, sticky rules first, then the numgen rules updating them", () => {
    const { r } = full(
      [fixtureService(3, { affinity: 10800 })],
      [fixtureSlice(3, ["10.180.0.1", "10.180.0.2"])],
    );
    const set1 = `affinity-${expectedHashAndTruncate("ns3/svc3/tcp/p80__10.180.0.1/80")}`;
    const set2 = `affinity-${expectedHashAndTruncate("ns3/svc3/tcp/p80__10.180.0.2/80")}`;
    expect(r.payload).toContain(
      `add set ${T} ${set1} { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }\n` +
        `add set ${T} ${set2} { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }\n`,
    );
    expect(rules(r.payload, chains("ns3", "svc3").cluster)).toEqual([
      "ip daddr 172.30.0.43 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade",
      `ip saddr @${set1} update @${set1} { ip saddr } meta l4proto tcp dnat to 10.180.0.1:80`,
      `ip saddr @${set2} update @${set2} { ip saddr } meta l4proto tcp dnat to 10.180.0.2:80`,
      `meta l4proto tcp numgen random mod 2 0 update @${set1} { ip saddr } dnat to 10.180.0.1:80`,
      `meta l4proto tcp update @${set2} { ip saddr } dnat to 10.180.0.2:80`,
    ]);
    // The sets are declared before the rules that use them.
    expect(r.payload.indexOf(`add set ${T} ${set2}`)).toBeLessThan(r.payload.indexOf(`@${set2}`));
  });

  it("masqueradeAll, clusterCIDR, neither", () => {
    const input = [[fixtureService(1)], [fixtureSlice(1, ["10.180.0.1"])]] as const;
    const c = chains("ns1", "svc1").cluster;
    const all = full([...input[0]], [...input[1]], { ...v4, masqueradeAll: true }).r;
    expect(rules(all.payload, c)[0]).toBe("ip daddr 172.30.0.41 tcp dport 80 jump mark-for-masquerade");
    const cidr = full([...input[0]], [...input[1]], v4).r;
    expect(rules(cidr.payload, c)[0]).toBe(
      "ip daddr 172.30.0.41 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade",
    );
    const neither = full([...input[0]], [...input[1]], { family: "IPv4", masqueradeAll: false }).r;
    expect(rules(neither.payload, c)).toEqual(["meta l4proto tcp dnat to 10.180.0.1:80"]);
  });

  it("nodePortAddresses: a nodeport-ips set instead of fib daddr type local", () => {
    const services = [fixtureNodePort(1, 3001)];
    const slices = [fixtureSlice(1, ["10.180.0.1"])];
    const n = { name: "test-node", nodeIPs: ["192.168.0.2", "10.9.9.9", "127.0.0.1", "2001:db8::1"] };
    const r = full(
      services,
      slices,
      { ...v4, nodePortAddresses: ["192.168.0.0/24", "127.0.0.0/8", "2001:db8::/64"] },
      n,
    ).r;
    expect(r.payload).toContain(
      `add set ${T} nodeport-ips { type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }`,
    );
    expect(elements(r.payload, "nodeport-ips")).toEqual(["192.168.0.2"]);
    expect(rules(r.payload, "services")).toContain(
      "ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports",
    );
    expect(rules(r.payload, "nodeport-endpoints-check")).toEqual([
      "ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports",
    ]);
    expect(r.payload).not.toContain("fib daddr type local");
    // Only addresses of the other family: every local address.
    const other = full(services, slices, { ...v4, nodePortAddresses: ["2001:db8::/64"] }, n).r;
    expect(other.payload).not.toContain("nodeport-ips");
    expect(other.payload).toContain("fib daddr type local ip daddr != 127.0.0.0/8");
    // No node IP inside: an empty set.
    const empty = full(services, slices, { ...v4, nodePortAddresses: ["172.16.0.0/12"] }, n).r;
    expect(empty.payload).toContain(`add set ${T} nodeport-ips`);
    expect(elements(empty.payload, "nodeport-ips")).toEqual([]);
  });

  it("IPv6: ip6 table, ipv6_addr types, [ip]:port dnat, only the family's addresses", () => {
    const T6 = "ip6 kube-proxy";
    const { r, snapshot, changes } = full(
      [
        svc({
          ns: "ns1",
          name: "svc1",
          type: "LoadBalancer",
          clusterIP: ["172.30.0.41", "fd00:30::41"],
          ports: [{ name: "p80", port: 80, nodePort: 3001 }],
          lbIPs: ["1.2.3.4", "fd00:99::4"],
          sourceRanges: ["2001:db8::/64", "192.168.0.0/24"],
          affinity: 60,
        }),
      ],
      [fixtureSlice(1, ["10.180.0.1"]), fixtureSliceV6(1, ["fd00:10::1", "fd00:10::2"])],
      v6,
    );
    const c = chains("ns1", "svc1");
    expect(r.payload.startsWith(`add table ${T6} `)).toBe(true);
    expect(r.payload).not.toMatch(/^add \S+ ip kube-proxy/m);
    expect(r.payload).toContain(`add set ${T6} cluster-ips { type ipv6_addr ;`);
    expect(r.payload).toContain(
      `add map ${T6} service-ips { type ipv6_addr . inet_proto . inet_service : verdict ;`,
    );
    expect(elements(r.payload, "cluster-ips", T6)).toEqual(["fd00:30::41"]);
    expect(elements(r.payload, "service-ips", T6)).toEqual([
      `fd00:30::41 . tcp . 80 : goto ${c.cluster}`,
      `fd00:99::4 . tcp . 80 : goto ${c.external}`,
    ]);
    expect(elements(r.payload, "firewall-ips", T6)).toEqual([`fd00:99::4 . tcp . 80 : goto ${c.firewall}`]);
    // Node IP 2001:db8::1 is inside 2001:db8::/64.
    expect(rules(r.payload, c.firewall, T6)).toEqual(["ip6 saddr != { 2001:db8::/64, fd00:99::4 } drop"]);
    expect(elements(r.payload, "hairpin-endpoints", T6)).toEqual([
      "fd00:10::1 . fd00:10::1",
      "fd00:10::2 . fd00:10::2",
    ]);
    const set1 = `affinity-${expectedHashAndTruncate("ns1/svc1/tcp/p80__fd00.10..1/80")}`;
    expect(r.payload).toContain(
      `add set ${T6} ${set1} { type ipv6_addr ; flags dynamic,timeout ; timeout 60s ; }`,
    );
    const rs = rules(r.payload, c.cluster, T6);
    expect(rs[0]).toBe(
      "ip6 daddr fd00:30::41 tcp dport 80 ip6 saddr != fd00:10::/64 jump mark-for-masquerade",
    );
    expect(rs).toContain(
      `meta l4proto tcp numgen random mod 2 0 update @${set1} { ip6 saddr } dnat to [fd00:10::1]:80`,
    );
    expect(r.payload).not.toContain("10.180.0.1");
    expect(r.payload).not.toContain("1.2.3.4");
    expect(rules(r.payload, "services", T6)).toContain(
      "fib daddr type local ip6 daddr != ::1 meta l4proto . th dport vmap @service-nodeports",
    );
    expect(rules(r.payload, "masquerading", T6)[0]).toBe(
      "ct status dnat ip6 saddr . ip6 daddr @hairpin-endpoints jump mark-for-masquerade",
    );
    expect(r.stats.endpoints).toBe(2);
    // The IPv4 render of the same snapshot has only the IPv4 addresses.
    const r4 = renderNftables({ snapshot, changes, full: true, node, options: v4 });
    expect(elements(r4.payload, "cluster-ips")).toEqual(["172.30.0.41"]);
    expect(r4.payload).not.toContain("fd00:");
    expect(r4.stats.endpoints).toBe(1);
    // An IPv4-only service is absent from the ip6 table.
    const only4 = full(
      [svc({ ns: "ns2", name: "v4only", clusterIP: "172.30.0.50", ports: p80 })],
      [slice({ ns: "ns2", service: "v4only", ports: p80, endpoints: [{ ip: "10.180.0.50" }] })],
      v6,
    ).r;
    expect(only4.payload).not.toContain("v4only");
    expect(only4.stats.servicePorts).toBe(0);
  });

  it("UDP and SCTP", () => {
    const dnsPorts = [{ name: "dns", port: 53, protocol: "UDP" as const, nodePort: 3053 }];
    const sctpPorts = [{ port: 9999, protocol: "SCTP" as const }];
    const { r } = full(
      [
        svc({ ns: "kube-system", name: "dns", type: "NodePort", clusterIP: "172.30.0.10", ports: dnsPorts }),
        svc({ ns: "ns7", name: "sctp", clusterIP: "172.30.0.47", ports: sctpPorts }),
      ],
      [
        slice({ ns: "kube-system", service: "dns", ports: dnsPorts, endpoints: [{ ip: "10.180.0.53" }] }),
        slice({ ns: "ns7", service: "sctp", ports: sctpPorts, endpoints: [{ ip: "10.180.0.7" }] }),
      ],
    );
    const dns = chains("kube-system", "dns", "udp", "dns");
    const sctp = chains("ns7", "sctp", "sctp", "");
    expect(elements(r.payload, "service-ips")).toEqual([
      `172.30.0.10 . udp . 53 : goto ${dns.cluster}`,
      `172.30.0.47 . sctp . 9999 : goto ${sctp.cluster}`,
    ]);
    expect(elements(r.payload, "service-nodeports")).toEqual([`udp . 3053 : goto ${dns.external}`]);
    expect(rules(r.payload, dns.cluster)).toEqual([
      "ip daddr 172.30.0.10 udp dport 53 ip saddr != 10.0.0.0/8 jump mark-for-masquerade",
      "meta l4proto udp dnat to 10.180.0.53:53",
    ]);
    expect(rules(r.payload, sctp.cluster)).toEqual([
      "ip daddr 172.30.0.47 sctp dport 9999 ip saddr != 10.0.0.0/8 jump mark-for-masquerade",
      "meta l4proto sctp dnat to 10.180.0.7:9999",
    ]);
  });

  it("topology hints: only the endpoints hinted for the node's zone (zone or zone label)", () => {
    const s = fixtureService(1);
    const sl = fixtureSlice(1, ["10.180.0.1", "10.180.0.2", "10.180.0.3"]);
    const zones = ["zone-a", "zone-b", "zone-a"];
    const hinted: EndpointSlice = {
      ...sl,
      endpoints: sl.endpoints.map((e, i) => ({ ...e, hints: { forZones: [{ name: zones[i]! }] } })),
    };
    const c = chains("ns1", "svc1").cluster;
    const dnats = (r: NftRenderResult) => rules(r.payload, c).filter((x) => x.includes("dnat"));
    const a = full([s], [hinted], v4, { ...node, zone: "zone-a" }).r;
    expect(dnats(a)).toEqual([
      "meta l4proto tcp numgen random mod 2 0 dnat to 10.180.0.1:80",
      "meta l4proto tcp dnat to 10.180.0.3:80",
    ]);
    const b = full([s], [hinted], v4, { ...node, labels: { "topology.kubernetes.io/zone": "zone-b" } }).r;
    expect(dnats(b)).toEqual(["meta l4proto tcp dnat to 10.180.0.2:80"]);
    // A zone no endpoint is hinted for: every endpoint.
    const z = full([s], [hinted], v4, { ...node, zone: "zone-z" }).r;
    expect(dnats(z)).toHaveLength(3);
    // Hairpin covers what is reachable.
    expect(elements(b.payload, "hairpin-endpoints")).toEqual(["10.180.0.2 . 10.180.0.2"]);
  });

  it("writes at most 1000 elements per add element line", () => {
    const services = Array.from({ length: 1205 }, (_, i) =>
      svc({ ns: "ns", name: `s${i}`, clusterIP: `172.30.${Math.floor(i / 250)}.${i % 250}`, ports: p80 }),
    );
    const { r } = full(services, []);
    const lines = r.payload.split("\n").filter((l) => l.startsWith(`add element ${T} cluster-ips `));
    expect(lines).toHaveLength(2);
    expect(elements(r.payload, "cluster-ips")).toHaveLength(1205);
    expect(new Set(elements(r.payload, "cluster-ips")).size).toBe(1205);
    expect(elements(r.payload, "no-endpoint-services")).toHaveLength(1205);
    expect(r.stats.elementsWritten).toBe(2410);
  });

  it("equal inputs give byte-identical payloads, whatever the order the objects came in", () => {
    const services = [fixtureService(1), fixtureService(2, { affinity: 100 }), fixtureService(3)];
    const slices = [fixtureSlice(1, ["10.180.0.1"]), fixtureSlice(2, ["10.180.0.2", "10.180.0.1"])];
    const a = full(services, slices).r;
    const b = full([...services].reverse(), [...slices].reverse()).r;
    const again = full(services, slices).r;
    expect(b.payload).toBe(a.payload);
    expect(again.payload).toBe(a.payload);
    expect(b.stats).toEqual(a.stats);
  });
});

/** A tracker-driven sequence of renders; every payload is applied to an {@link NftModel}. */
function sequence(services: Service[], slices: EndpointSlice[], options: NftRenderOptions = v4) {
  const c = commitAll(services, slices);
  let r = renderNftables({ snapshot: c.snapshot, changes: c.changes, full: true, node, options });
  const table = `${options.family === "IPv4" ? "ip" : "ip6"} kube-proxy`;
  let model = applyPayload(emptyModel(), r.payload, table);
  const api = {
    tracker: c.tracker,
    get last() {
      return r;
    },
    get model() {
      return model;
    },
    /** Commits the tracker's pending changes and renders them partially. */
    step(opts: NftRenderOptions = options): NftRenderResult {
      const next = c.tracker.commit();
      r = renderNftables({
        snapshot: next.snapshot,
        changes: next.changes,
        full: false,
        previous: r.state,
        node,
        options: opts,
      });
      model = applyPayload(model, r.payload, table);
      // The kernel after the partial render holds what a full render would write.
      // (Chains flushed as stale are empty and wait for the next partial render.)
      const fresh = renderNftables({
        snapshot: next.snapshot,
        changes: next.changes,
        full: true,
        node,
        options: opts,
      });
      const live = { chains: new Map(model.chains), sets: model.sets };
      for (const c of r.chainsFlushedStale) {
        expect(live.chains.get(c)).toEqual([]);
        live.chains.delete(c);
      }
      expect(dumpModel(live)).toBe(dumpModel(applyPayload(emptyModel(), fresh.payload, table)));
      return r;
    },
  };
  return api;
}

describe("partial renders", () => {
  it("an endpoint change touches only that service's chains and elements", () => {
    const { services, slices } = threeServices();
    const s = sequence(services, slices);
    s.tracker.endpointSliceHandler.onUpdate!(slices[1]!, fixtureSlice(2, ["10.180.0.2", "10.180.0.23"]));
    const r = s.step();
    const c = chains("ns2", "svc2").cluster;
    expect(r.stats).toMatchObject({
      full: false,
      servicePorts: 3,
      servicePortsWritten: 1,
      endpoints: 4,
      chains: 3,
    });
    for (const other of ["svc1", "svc3", "172.30.0.41", "172.30.0.43", "10.180.0.1 ", "10.180.0.3 "])
      expect(r.payload).not.toContain(other);
    expect(r.payload).not.toContain("delete table");
    expect(r.payload.split("\n")).toEqual([
      `add chain ${T} ${c}`,
      `flush chain ${T} ${c}`,
      `delete element ${T} hairpin-endpoints { 10.180.0.22 . 10.180.0.22 }`,
      `add element ${T} hairpin-endpoints { 10.180.0.23 . 10.180.0.23 }`,
      `add rule ${T} ${c} ip daddr 172.30.0.42 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade`,
      // (the tracker orders endpoints by "ip:port")
      `add rule ${T} ${c} meta l4proto tcp numgen random mod 2 0 dnat to 10.180.0.23:80`,
      `add rule ${T} ${c} meta l4proto tcp dnat to 10.180.0.2:80`,
      "",
    ]);
    expect(r.chainsWritten).toEqual([c]);
    expect(r.stats.elementsWritten).toBe(2);
  });

  it("a deleted service port: elements deleted, chains flushed, deleted by the next partial render", () => {
    const { services, slices } = threeServices();
    const s = sequence(services, slices);
    const c = chains("ns2", "svc2").cluster;
    s.tracker.serviceHandler.onDelete!(services[1]!);
    const r = s.step();
    expect(r.chainsFlushedStale).toEqual([c]);
    expect(r.chainsDeleted).toEqual([]);
    expect(r.payload).toContain(`delete element ${T} service-ips { 172.30.0.42 . tcp . 80 }\n`);
    expect(r.payload).toContain(`delete element ${T} cluster-ips { 172.30.0.42 }\n`);
    expect(r.payload).toContain(`delete element ${T} hairpin-endpoints { 10.180.0.22 . 10.180.0.22 }\n`);
    expect(r.payload).toContain(`flush chain ${T} ${c}\n`);
    expect(r.payload).not.toContain(`delete chain`);
    expect(r.payload).not.toContain(`add rule`);
    // The chain is emptied early (so no affinity set it used is still referenced when sets
    // are recreated); it is only deleted by a later transaction, after its map element went.
    expect(r.payload.indexOf(`flush chain ${T} ${c}`)).toBeLessThan(
      r.payload.indexOf("delete element ip kube-proxy service-ips"),
    );
    expect(r.stats).toMatchObject({ servicePorts: 2, chains: 2, endpoints: 2 });

    // An unrelated change: the stale chain goes.
    s.tracker.endpointSliceHandler.onUpdate!(slices[0]!, fixtureSlice(1, ["10.180.0.11"]));
    const next = s.step();
    expect(next.chainsDeleted).toEqual([c]);
    expect(next.payload.split("\n")[0]).toBe(`delete chain ${T} ${c}`);
    expect(next.chainsFlushedStale).toEqual([]);
    // Nothing more to delete afterwards.
    const empty = s.step();
    expect(empty.payload).toBe("");
    expect(empty.chainsDeleted).toEqual([]);
  });

  it("a stale chain taken back by the next render is not deleted", () => {
    const { services, slices } = threeServices();
    const s = sequence(services, slices);
    const c = chains("ns2", "svc2").cluster;
    s.tracker.serviceHandler.onDelete!(services[1]!);
    expect(s.step().chainsFlushedStale).toEqual([c]);
    s.tracker.serviceHandler.onAdd!(services[1]!);
    const r = s.step();
    expect(r.chainsDeleted).toEqual([]);
    expect(r.payload).not.toContain("delete chain");
    expect(r.chainsWritten).toEqual([c]);
    expect(r.payload).toContain(`add chain ${T} ${c}\nflush chain ${T} ${c}\n`);
    expect(r.payload).toContain(`add element ${T} service-ips { 172.30.0.42 . tcp . 80 : goto ${c} }`);
  });

  it("removing one port of a service keeps the shared cluster IP and deletes that port's elements", () => {
    const ports = [
      { name: "p80", port: 80 },
      { name: "p443", port: 443 },
    ];
    const s0 = svc({ ns: "ns1", name: "web", clusterIP: "172.30.0.41", ports });
    const s = sequence(
      [s0],
      [slice({ ns: "ns1", service: "web", ports, endpoints: [{ ip: "10.180.0.1" }] })],
    );
    s.tracker.serviceHandler.onUpdate!(
      s0,
      svc({ ns: "ns1", name: "web", clusterIP: "172.30.0.41", ports: [ports[0]!] }),
    );
    const r = s.step();
    const c443 = chains("ns1", "web", "tcp", "p443").cluster;
    expect(r.payload).toContain(`delete element ${T} service-ips { 172.30.0.41 . tcp . 443 }`);
    expect(r.payload).not.toContain("cluster-ips");
    expect(r.payload).not.toContain("hairpin-endpoints");
    expect(r.chainsFlushedStale).toEqual([c443]);
    expect(s.model.sets.get("cluster-ips")!.has("172.30.0.41")).toBe(true);
  });

  it("an endpoint IP of two services stays in hairpin-endpoints until its last owner goes", () => {
    const services = [
      svc({ ns: "ns1", name: "a", clusterIP: "172.30.0.41", ports: p80 }),
      svc({ ns: "ns2", name: "b", clusterIP: "172.30.0.42", ports: p80 }),
    ];
    const slices = [
      slice({ ns: "ns1", service: "a", ports: p80, endpoints: [{ ip: "10.180.0.1" }] }),
      slice({ ns: "ns2", service: "b", ports: p80, endpoints: [{ ip: "10.180.0.1" }] }),
    ];
    const s = sequence(services, slices);
    expect(elements(s.last.payload, "hairpin-endpoints")).toEqual(["10.180.0.1 . 10.180.0.1"]);
    s.tracker.serviceHandler.onDelete!(services[0]!);
    const r1 = s.step();
    expect(r1.payload).not.toContain("hairpin-endpoints");
    expect(r1.payload).toContain(`delete element ${T} cluster-ips { 172.30.0.41 }`);
    s.tracker.serviceHandler.onDelete!(services[1]!);
    const r2 = s.step();
    expect(r2.payload).toContain(`delete element ${T} hairpin-endpoints { 10.180.0.1 . 10.180.0.1 }`);
    expect(s.model.sets.get("hairpin-endpoints")!.size).toBe(0);
  });

  it("an external IP of two services: the first owner's value, the other's after it goes, deleted with the last", () => {
    const mk = (ns: string, name: string, ip: string) =>
      svc({ ns, name, clusterIP: ip, ports: p80, externalIPs: ["192.168.99.22"] });
    const services = [mk("ns1", "a", "172.30.0.41"), mk("ns2", "b", "172.30.0.42")];
    const slices = [
      slice({ ns: "ns1", service: "a", ports: p80, endpoints: [{ ip: "10.180.0.1" }] }),
      slice({ ns: "ns2", service: "b", ports: p80, endpoints: [{ ip: "10.180.0.2" }] }),
    ];
    const s = sequence(services, slices);
    const a = chains("ns1", "a");
    const b = chains("ns2", "b");
    expect(elements(s.last.payload, "service-ips")).toContain(
      `192.168.99.22 . tcp . 80 : goto ${a.external}`,
    );
    expect(elements(s.last.payload, "service-ips").filter((e) => e.startsWith("192.168.99.22"))).toHaveLength(
      1,
    );
    s.tracker.serviceHandler.onDelete!(services[0]!);
    const r1 = s.step();
    const lines = r1.payload.split("\n");
    const del = lines.indexOf(`delete element ${T} service-ips { 192.168.99.22 . tcp . 80 }`);
    const add = lines.indexOf(
      `add element ${T} service-ips { 192.168.99.22 . tcp . 80 : goto ${b.external} }`,
    );
    expect(del).toBeGreaterThanOrEqual(0);
    expect(add).toBeGreaterThan(del);
    expect([...r1.chainsFlushedStale].sort()).toEqual([a.cluster, a.external].sort());
    s.tracker.serviceHandler.onDelete!(services[1]!);
    const r2 = s.step();
    expect(r2.payload).toContain(`delete element ${T} service-ips { 192.168.99.22 . tcp . 80 }`);
    expect(r2.payload).not.toContain(`add element ${T} service-ips`);
    expect([...r2.chainsDeleted].sort()).toEqual([a.cluster, a.external].sort());
  });

  it("a changed map value is a delete then an add", () => {
    const s0 = fixtureService(8);
    const s = sequence([s0], [fixtureSlice(8, [{ ip: "10.180.0.8", node: "test-node" }])]);
    const c = chains("ns8", "svc8");
    s.tracker.serviceHandler.onUpdate!(s0, fixtureService(8, { itp: "Local" }));
    const r = s.step();
    const lines = r.payload.split("\n");
    const del = lines.indexOf(`delete element ${T} service-ips { 172.30.0.48 . tcp . 80 }`);
    const add = lines.indexOf(`add element ${T} service-ips { 172.30.0.48 . tcp . 80 : goto ${c.local} }`);
    expect(del).toBeGreaterThanOrEqual(0);
    expect(add).toBeGreaterThan(del);
    expect(r.chainsFlushedStale).toEqual([c.cluster]);
    expect(r.chainsWritten).toEqual([c.local]);
  });

  it("a changed cluster IP swaps the elements", () => {
    const { services, slices } = threeServices();
    const s = sequence(services, slices);
    s.tracker.serviceHandler.onUpdate!(
      services[0]!,
      svc({ ns: "ns1", name: "svc1", clusterIP: "172.30.0.141", ports: p80 }),
    );
    const r = s.step();
    const c = chains("ns1", "svc1").cluster;
    expect(r.payload).toContain(`delete element ${T} cluster-ips { 172.30.0.41 }`);
    expect(r.payload).toContain(`delete element ${T} service-ips { 172.30.0.41 . tcp . 80 }`);
    expect(r.payload).toContain(`add element ${T} cluster-ips { 172.30.0.141 }`);
    expect(r.payload).toContain(`add element ${T} service-ips { 172.30.0.141 . tcp . 80 : goto ${c} }`);
    expect(rules(r.payload, c)[0]).toBe(
      "ip daddr 172.30.0.141 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade",
    );
    expect(r.payload).not.toContain("hairpin-endpoints");
  });

  it("losing every endpoint moves the cluster IP to no-endpoint-services", () => {
    const { services, slices } = threeServices();
    const s = sequence(services, slices);
    s.tracker.endpointSliceHandler.onDelete!(slices[2]!);
    const r = s.step();
    expect(r.payload).toContain(`delete element ${T} service-ips { 172.30.0.43 . tcp . 80 }`);
    expect(r.payload).toContain(
      `add element ${T} no-endpoint-services { 172.30.0.43 . tcp . 80 : goto reject-chain }`,
    );
    expect(r.chainsFlushedStale).toEqual([chains("ns3", "svc3").cluster]);
  });

  it("ClientIP affinity sets are created and deleted with their endpoints", () => {
    const s0 = fixtureService(3, { affinity: 100 });
    const sl = fixtureSlice(3, ["10.180.0.1", "10.180.0.2"]);
    const s = sequence([s0], [sl]);
    const set2 = `affinity-${expectedHashAndTruncate("ns3/svc3/tcp/p80__10.180.0.2/80")}`;
    const set3 = `affinity-${expectedHashAndTruncate("ns3/svc3/tcp/p80__10.180.0.3/80")}`;
    s.tracker.endpointSliceHandler.onUpdate!(sl, fixtureSlice(3, ["10.180.0.1", "10.180.0.3"]));
    const r = s.step();
    expect(r.payload).toContain(
      `add set ${T} ${set3} { type ipv4_addr ; flags dynamic,timeout ; timeout 100s ; }`,
    );
    expect(r.payload).toContain(`delete set ${T} ${set2}\n`);
    expect(r.payload).not.toMatch(/add set .*10\.180\.0\.1\/80/);
    // Deleted after the chain that used it was rewritten.
    expect(r.payload.indexOf(`delete set ${T} ${set2}`)).toBeGreaterThan(r.payload.lastIndexOf("add rule"));
  });

  it("a changed affinity timeout reaches the kernel", () => {
    const s0 = fixtureService(3, { affinity: 100 });
    const s = sequence([s0], [fixtureSlice(3, ["10.180.0.1"])]);
    s.tracker.serviceHandler.onUpdate!(s0, fixtureService(3, { affinity: 200 }));
    const r = s.step();
    // A full render declares the set with "timeout 200s"; the partial one leaves the
    // kernel's set at 100s. (`add set` of an existing set with a new timeout updates it.)
    const set = `affinity-${expectedHashAndTruncate("ns3/svc3/tcp/p80__10.180.0.1/80")}`;
    expect(r.payload).toContain(
      `add set ${T} ${set} { type ipv4_addr ; flags dynamic,timeout ; timeout 200s ; }`,
    );
  });

  it("a state given twice throws NftRenderStateReusedError", () => {
    const { services, slices } = threeServices();
    const c = commitAll(services, slices);
    const first = renderNftables({ snapshot: c.snapshot, changes: c.changes, full: true, node, options: v4 });
    const next = c.tracker.commit();
    const input = {
      snapshot: next.snapshot,
      changes: next.changes,
      full: false,
      previous: first.state,
      node,
      options: v4,
    };
    renderNftables(input);
    expect(() => renderNftables(input)).toThrow(NftRenderStateReusedError);
    expect(() => renderNftables({ ...input, full: true })).toThrow(NftRenderStateReusedError);
  });

  it("other options than the state's make the render full", () => {
    const { services, slices } = threeServices();
    const s = sequence(services, slices);
    s.tracker.endpointSliceHandler.onDelete!(slices[0]!);
    const r = s.step({ ...v4, masqueradeAll: true });
    expect(r.stats.full).toBe(true);
    expect(r.payload.split("\n").slice(0, 2)).toEqual([
      `add table ${T} { comment "rules for kube-proxy" ; }`,
      `delete table ${T}`,
    ]);
    expect(r.payload).toContain("ip daddr 172.30.0.42 tcp dport 80 jump mark-for-masquerade");
    // full: true with a state is full as well.
    const next = s.tracker.commit();
    const f = renderNftables({
      snapshot: next.snapshot,
      changes: next.changes,
      full: true,
      previous: r.state,
      node,
      options: v4,
    });
    expect(f.stats.full).toBe(true);
  });

  it("an empty change set gives an empty payload", () => {
    const { services, slices } = threeServices();
    const s = sequence(services, slices);
    const r = s.step();
    expect(r.payload).toBe("");
    expect(r.stats).toMatchObject({
      full: false,
      servicePortsWritten: 0,
      rulesWritten: 0,
      elementsWritten: 0,
      servicePorts: 3,
    });
    expect(r.state.servicePorts).toBe(3);
  });

  it("a long series of changes leaves the kernel as a full render would (IPv4 and IPv6)", () => {
    for (const family of ["IPv4", "IPv6"] as const) {
      const N = 12;
      const ip = (i: number) => (family === "IPv4" ? `172.30.1.${i}` : `fd00:30::1:${i}`);
      const ep = (i: number, j: number) => (family === "IPv4" ? `10.180.${i}.${j}` : `fd00:10::${i}:${j}`);
      const mkSvc = (i: number, v: number) =>
        svc({
          ns: `ns${i}`,
          name: `s${i}`,
          type: v % 3 === 0 ? "LoadBalancer" : v % 3 === 1 ? "NodePort" : "ClusterIP",
          clusterIP: ip(i),
          ports: [{ name: "p80", port: 80, ...(v % 3 !== 2 ? { nodePort: 30000 + i } : {}) }],
          externalIPs: [family === "IPv4" ? `192.168.99.${i % 4}` : `fd00:99::${i % 4}`],
          ...(v % 3 === 0
            ? {
                lbIPs: [family === "IPv4" ? "1.2.3.4" : "fd00:99::1:4"],
                sourceRanges: ["192.168.0.0/16", "2001:db8::/32"],
              }
            : {}),
          ...(v % 4 === 1 ? { etp: "Local" as const } : {}),
          ...(v % 5 === 2 ? { itp: "Local" as const } : {}),
          ...(v % 2 === 1 ? { affinity: 10 + v } : {}),
        });
      const mkSlice = (i: number, v: number) =>
        slice({
          ns: `ns${i}`,
          service: `s${i}`,
          ports: p80,
          ipv6: family === "IPv6",
          endpoints: Array.from({ length: v % 4 }, (_, j) => ({
            ip: ep((i + j) % 5, (v + j) % 3),
            node: j % 2 === 0 ? "test-node" : "other-node",
          })),
        });
      const services = Array.from({ length: N }, (_, i) => mkSvc(i, i));
      const slices = Array.from({ length: N }, (_, i) => mkSlice(i, i));
      const present = services.map(() => true);
      const s = sequence(services, slices, family === "IPv4" ? v4 : v6);
      let x = 7;
      const rnd = (n: number) => {
        x = (x * 48271) % 2147483647;
        return x % n;
      };
      let sawDeleted = 0;
      for (let step = 0; step < 60; step++) {
        for (let k = 0; k < 1 + rnd(3); k++) {
          const i = rnd(N);
          const v = rnd(40);
          const what = rnd(3);
          if (what === 0) {
            const next = mkSlice(i, v);
            s.tracker.endpointSliceHandler.onUpdate!(slices[i]!, next);
            slices[i] = next;
          } else if (what === 1 && present[i]) {
            const next = mkSvc(i, v);
            s.tracker.serviceHandler.onUpdate!(services[i]!, next);
            services[i] = next;
          } else if (present[i]) {
            s.tracker.serviceHandler.onDelete!(services[i]!);
            present[i] = false;
          } else {
            s.tracker.serviceHandler.onAdd!(services[i]!);
            present[i] = true;
          }
        }
        const r = s.step();
        sawDeleted += r.chainsDeleted.length;
      }
      expect(sawDeleted).toBeGreaterThan(0);
    }
  });
});
