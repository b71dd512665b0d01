import { ProxySyncError } from "@worknode/core";
import {
  commitAll,
  FakeCommandRunner,
  fixtureService,
  fixtureSlice,
  fixtureSliceV6,
  slice,
  svc,
} from "@worknode/testing";
import { describe, expect, it } from "vitest";
import { NftablesProxier, parseNftErrorLine } from "../src/index.js";

function setup(opts: { families?: ("IPv4" | "IPv6")[] } = {}) {
  const services = [fixtureService(1, { clusterIP: ["172.30.0.41", "fd00:30::41"] }), fixtureService(2)];
  const slices = [
    fixtureSlice(1, ["10.180.0.1"]),
    fixtureSliceV6(1, ["fd00:10::1"]),
    fixtureSlice(2, ["10.180.0.2"]),
  ];
  const c = commitAll(services, slices);
  const runner = new FakeCommandRunner();
  const proxier = new NftablesProxier({
    nodeName: "test-node",
    nodeIPs: ["192.168.0.2", "2001:db8::1"],
    runner,
    clusterCIDRs: ["10.0.0.0/8", "fd00:10::/64"],
    ...(opts.families !== undefined ? { families: opts.families } : {}),
  });
  return { ...c, services, slices, runner, proxier };
}

describe("parseNftErrorLine", () => {
  it("reads the line number of nft's error location", () => {
    expect(parseNftErrorLine("/dev/stdin:12:5-9: Error: syntax error, unexpected junk\n")).toBe(12);
    expect(parseNftErrorLine("-:3:1-20: Error: Could not process rule: No such file or directory")).toBe(3);
    expect(
      parseNftErrorLine(
        "/dev/stdin:7:1-60: Error: Could not process rule: No such file or directory\nadd rule ip kube-proxy x y\n^^^^",
      ),
    ).toBe(7);
    expect(parseNftErrorLine("Error: Could not process rule: Operation not permitted")).toBeUndefined();
    expect(parseNftErrorLine("")).toBeUndefined();
  });
});

describe("NftablesProxier", () => {
  it("first sync is full, the second partial; payloads go through stdin of nft -f -", async () => {
    const { snapshot, changes, tracker, slices, runner, proxier } = setup();
    expect(proxier.mode).toBe("nftables");
    expect(proxier.families).toEqual(["IPv4"]);
    const stats = await proxier.sync({ snapshot, changes, full: false });
    expect(stats).toEqual({ servicePorts: 2, endpoints: 2, written: expect.any(Number) });
    expect(stats.written).toBeGreaterThan(0);
    expect(runner.calls).toHaveLength(1);
    const call = runner.calls[0]!;
    expect(call.command).toBe("nft");
    expect(call.args).toEqual(["-f", "-"]);
    expect(call.stdin).toBe(proxier.lastApplied()!.payload);
    expect(call.stdin!.startsWith("add table ip kube-proxy")).toBe(true);
    expect(call.stdin).toContain("delete table ip kube-proxy\n");
    expect(proxier.lastApplied()!.full).toBe(true);
    expect(proxier.lastApplied("IPv6")).toBeUndefined();

    runner.reset();
    tracker.endpointSliceHandler.onUpdate!(slices[2]!, fixtureSlice(2, ["10.180.0.22"]));
    const next = tracker.commit();
    await proxier.sync({ snapshot: next.snapshot, changes: next.changes, full: false });
    expect(runner.calls).toHaveLength(1);
    expect(runner.calls[0]!.args).toEqual(["-f", "-"]);
    const partial = runner.calls[0]!.stdin!;
    expect(proxier.lastApplied()!.full).toBe(false);
    expect(partial).not.toContain("delete table");
    expect(partial).toContain("dnat to 10.180.0.22:80");
    expect(partial).not.toContain("svc1");

    // Nothing changed: no transaction, only the canary (is the table still there?).
    runner.reset();
    const none = tracker.commit();
    await proxier.sync({ snapshot: none.snapshot, changes: none.changes, full: false });
    expect(runner.calls).toEqual([
      { command: "nft", args: ["list", "chain", "ip", "kube-proxy", "services"] },
    ]);
    runner.reset();
    // The controller asks for a full sync.
    await proxier.sync({ snapshot: none.snapshot, changes: none.changes, full: true });
    expect(runner.calls).toHaveLength(1);
    expect(proxier.lastApplied()!.full).toBe(true);
  });

  it("programs each family with its own table", async () => {
    const { snapshot, changes, runner, proxier } = setup({ families: ["IPv4", "IPv6"] });
    const stats = await proxier.sync({ snapshot, changes, full: false });
    expect(stats.servicePorts).toBe(3); // 2 IPv4 + 1 IPv6
    const nft = runner.of("nft");
    expect(nft).toHaveLength(2);
    expect(nft[0]!.stdin!.startsWith("add table ip kube-proxy")).toBe(true);
    expect(nft[1]!.stdin!.startsWith("add table ip6 kube-proxy")).toBe(true);
    expect(nft[1]!.stdin).toContain("dnat to [fd00:10::1]:80");
    expect(nft[1]!.stdin).toContain("ip6 saddr != fd00:10::/64");
    expect(proxier.lastApplied("IPv6")!.payload).toBe(nft[1]!.stdin);
  });

  it("a failing nft: ProxySyncError with the failing payload line; the next sync is full", async () => {
    const { snapshot, changes, tracker, slices, runner, proxier } = setup();
    await proxier.sync({ snapshot, changes, full: false });
    tracker.endpointSliceHandler.onUpdate!(slices[2]!, fixtureSlice(2, ["10.180.0.22"]));
    const next = tracker.commit();
    runner.respond = (c) =>
      c.command === "nft"
        ? { code: 1, stderr: "/dev/stdin:3:5-9: Error: Could not process rule\n" }
        : undefined;
    const err = await proxier
      .sync({ snapshot: next.snapshot, changes: next.changes, full: false })
      .catch((e) => e);
    expect(err).toBeInstanceOf(ProxySyncError);
    const payload = proxier.lastApplied()!.payload;
    expect((err as ProxySyncError).failingLine).toBe(payload.split("\n")[2]);
    expect((err as ProxySyncError).mode).toBe("nftables");
    expect((err as ProxySyncError).message).toContain("at line 3");
    expect((err as ProxySyncError).message).toContain("Could not process rule");

    // Line 12 of a full payload.
    runner.respond = (c) =>
      c.command === "nft" ? { code: 1, stderr: "/dev/stdin:12:5-9: Error: syntax error\n" } : undefined;
    const err2 = await proxier
      .sync({ snapshot: next.snapshot, changes: next.changes, full: false })
      .catch((e) => e);
    expect(err2).toBeInstanceOf(ProxySyncError);
    const full = proxier.lastApplied()!;
    expect(full.full).toBe(true);
    expect((err2 as ProxySyncError).failingLine).toBe(full.payload.split("\n")[11]);
    expect((err2 as ProxySyncError).failingLine).toBeTruthy();
    const metrics = await proxier.metrics.metrics();
    expect(metrics).toMatch(/kubeproxy_sync_proxy_rules_nftables_sync_failures_total\{ip_family="IPv4"\} 2/);

    // After failures the next sync is full again, and then partial.
    runner.respond = () => undefined;
    runner.reset();
    const none = tracker.commit();
    await proxier.sync({ snapshot: none.snapshot, changes: none.changes, full: false });
    expect(proxier.lastApplied()!.full).toBe(true);
    expect(runner.calls).toHaveLength(1);
    expect(runner.calls[0]!.stdin).toContain("dnat to 10.180.0.22:80");
    runner.reset();
    await proxier.sync({ snapshot: none.snapshot, changes: none.changes, full: false });
    expect(runner.calls).toEqual([
      { command: "nft", args: ["list", "chain", "ip", "kube-proxy", "services"] },
    ]);
  });

  it("an nft error without a location: no failing line", async () => {
    const { snapshot, changes, runner, proxier } = setup();
    runner.respond = () => ({ code: 1, stderr: "Error: Could not process rule: Operation not permitted\n" });
    const err = await proxier.sync({ snapshot, changes, full: false }).catch((e) => e);
    expect(err).toBeInstanceOf(ProxySyncError);
    expect((err as ProxySyncError).failingLine).toBeUndefined();
  });

  it("cleanup() deletes the table of both families, whatever the families", async () => {
    const { runner, proxier } = setup();
    await proxier.cleanup();
    expect(runner.calls).toEqual([
      { command: "nft", args: ["-f", "-"], stdin: "add table ip kube-proxy\ndelete table ip kube-proxy\n" },
      { command: "nft", args: ["-f", "-"], stdin: "add table ip6 kube-proxy\ndelete table ip6 kube-proxy\n" },
    ]);
    // A failure of one family: the other is still tried, then an error.
    runner.reset();
    runner.respond = (c) => (c.stdin?.includes("ip6") ? { code: 1, stderr: "Error: boom" } : undefined);
    await expect(proxier.cleanup()).rejects.toThrow(ProxySyncError);
    expect(runner.calls).toHaveLength(2);
  });

  it("cleanup() makes the next sync full", async () => {
    const { snapshot, changes, tracker, runner, proxier } = setup();
    await proxier.sync({ snapshot, changes, full: false });
    await proxier.cleanup();
    runner.reset();
    const none = tracker.commit();
    await proxier.sync({ snapshot: none.snapshot, changes: none.changes, full: false });
    expect(proxier.lastApplied()!.full).toBe(true);
    expect(runner.calls).toHaveLength(1);
  });

  it("setNodeLabels makes the next sync full; equal labels do not", async () => {
    const { snapshot, changes, tracker, runner, proxier } = setup();
    await proxier.sync({ snapshot, changes, full: false });
    expect(proxier.setNodeLabels(undefined)).toBe(false);
    const none = tracker.commit();
    runner.reset();
    await proxier.sync({ snapshot: none.snapshot, changes: none.changes, full: false });
    expect(runner.calls).toEqual([
      { command: "nft", args: ["list", "chain", "ip", "kube-proxy", "services"] },
    ]);
    runner.reset();
    expect(proxier.setNodeLabels({ "topology.kubernetes.io/zone": "zone-a" })).toBe(true);
    expect(proxier.currentNodeLabels).toEqual({ "topology.kubernetes.io/zone": "zone-a" });
    await proxier.sync({ snapshot: none.snapshot, changes: none.changes, full: false });
    expect(runner.calls).toHaveLength(1);
    expect(proxier.lastApplied()!.full).toBe(true);
    expect(proxier.setNodeLabels({ "topology.kubernetes.io/zone": "zone-a" })).toBe(false);
    runner.reset();
    await proxier.sync({ snapshot: none.snapshot, changes: none.changes, full: false });
    expect(runner.calls).toEqual([
      { command: "nft", args: ["list", "chain", "ip", "kube-proxy", "services"] },
    ]);
  });

  it("a sync without changes finds the table gone (canary) and syncs fully; canaryCheck: false skips the check", async () => {
    const { snapshot, changes, tracker, runner, proxier } = setup();
    await proxier.sync({ snapshot, changes, full: false });
    const none = tracker.commit();
    runner.reset();
    runner.respond = (c) =>
      c.args[0] === "list" ? { code: 1, stderr: "Error: No such file or directory" } : undefined;
    await proxier.sync({ snapshot: none.snapshot, changes: none.changes, full: false });
    expect(runner.calls.map((c) => c.args[0])).toEqual(["list", "-f"]);
    expect(proxier.lastApplied()!.full).toBe(true);
    expect(runner.calls[1]!.stdin).toContain("add table ip kube-proxy");
    expect(runner.calls[1]!.stdin).toContain("dnat to 10.180.0.2:80");

    const off = new NftablesProxier({ nodeName: "test-node", runner, canaryCheck: false });
    await off.sync({ snapshot, changes, full: true });
    runner.reset();
    await off.sync({ snapshot: none.snapshot, changes: none.changes, full: false });
    expect(runner.calls).toEqual([]);
  });

  it("a change in one family is not followed by a canary check of the other", async () => {
    const { snapshot, changes, tracker, slices, runner, proxier } = setup({ families: ["IPv4", "IPv6"] });
    await proxier.sync({ snapshot, changes, full: false });
    runner.reset();
    tracker.endpointSliceHandler.onUpdate!(slices[2]!, fixtureSlice(2, ["10.180.0.22"]));
    const next = tracker.commit();
    await proxier.sync({ snapshot: next.snapshot, changes: next.changes, full: false });
    expect(runner.calls.map((c) => c.args.join(" "))).toEqual(["-f -"]);
    expect(runner.calls[0]!.stdin).toContain("ip kube-proxy");
    expect(proxier.lastApplied("IPv6")!.payload).toBe("");
  });

  it("deletes stale UDP conntrack entries after the nft transaction", async () => {
    const dns = [{ name: "dns", port: 53, protocol: "UDP" as const }];
    const s = svc({ ns: "kube-system", name: "dns", clusterIP: "172.30.0.10", ports: dns });
    const sl = slice({
      ns: "kube-system",
      service: "dns",
      ports: dns,
      endpoints: [{ ip: "10.180.0.53" }, { ip: "10.180.0.54" }],
    });
    const c = commitAll([s], [sl]);
    const runner = new FakeCommandRunner();
    const proxier = new NftablesProxier({ nodeName: "test-node", runner });
    await proxier.sync({ snapshot: c.snapshot, changes: c.changes, full: false });
    runner.reset();
    c.tracker.endpointSliceHandler.onUpdate!(
      sl,
      slice({ ns: "kube-system", service: "dns", ports: dns, endpoints: [{ ip: "10.180.0.53" }] }),
    );
    const next = c.tracker.commit();
    expect(next.changes.staleConntrack.length).toBeGreaterThan(0);
    await proxier.sync({ snapshot: next.snapshot, changes: next.changes, full: false });
    expect(runner.calls.map((x) => x.command)).toEqual(["nft", "conntrack"]);
    expect(runner.calls[1]!.args).toEqual([
      "-D",
      "-p",
      "udp",
      "--orig-dst",
      "172.30.0.10",
      "--dport",
      "53",
      "--dst-nat",
      "10.180.0.54",
    ]);

    // conntrack: false turns it off; a failing conntrack does not fail the sync.
    const quiet = new NftablesProxier({ nodeName: "test-node", runner, conntrack: false });
    runner.reset();
    await quiet.sync({ snapshot: next.snapshot, changes: next.changes, full: false });
    expect(runner.of("conntrack")).toEqual([]);
    runner.reset();
    runner.respond = (x) => (x.command === "conntrack" ? { code: 2, stderr: "conntrack: boom" } : undefined);
    const loud = new NftablesProxier({ nodeName: "test-node", runner });
    await expect(
      loud.sync({ snapshot: next.snapshot, changes: next.changes, full: false }),
    ).resolves.toBeDefined();
    expect(runner.of("conntrack")).toHaveLength(1);
  });

  it("no conntrack run when the nft transaction fails", async () => {
    const dns = [{ name: "dns", port: 53, protocol: "UDP" as const }];
    const s = svc({ ns: "kube-system", name: "dns", clusterIP: "172.30.0.10", ports: dns });
    const c = commitAll([s], []);
    const runner = new FakeCommandRunner();
    const proxier = new NftablesProxier({ nodeName: "test-node", runner });
    await proxier.sync({ snapshot: c.snapshot, changes: c.changes, full: false });
    c.tracker.serviceHandler.onDelete!(s);
    const next = c.tracker.commit();
    expect(next.changes.staleConntrack.length).toBeGreaterThan(0);
    runner.reset();
    runner.respond = (x) =>
      x.command === "nft" ? { code: 1, stderr: "/dev/stdin:1:1-2: Error: x" } : undefined;
    await expect(
      proxier.sync({ snapshot: next.snapshot, changes: next.changes, full: false }),
    ).rejects.toThrow(ProxySyncError);
    expect(runner.of("conntrack")).toEqual([]);
  });

  it("plan() renders a full transaction without running anything; options shape the render", async () => {
    const { snapshot, changes, runner } = setup();
    const proxier = new NftablesProxier({
      nodeName: "test-node",
      runner,
      table: "kp-test",
      masqueradeAll: true,
      masqueradeBit: 5,
      nodeIPs: ["192.168.0.2"],
      nodePortAddresses: ["192.168.0.0/24"],
    });
    const r = proxier.plan({ snapshot, changes });
    expect(runner.calls).toEqual([]);
    expect(r.stats.full).toBe(true);
    expect(r.payload.startsWith("add table ip kp-test ")).toBe(true);
    expect(r.payload).toContain("mark set mark or 0x20");
    expect(r.payload).toContain("add element ip kp-test nodeport-ips { 192.168.0.2 }");
    expect(r.payload).toContain("ip daddr 172.30.0.41 tcp dport 80 jump mark-for-masquerade");
    expect(proxier.renderOptions("IPv6")).toEqual({
      family: "IPv6",
      masqueradeAll: true,
      nodePortAddresses: ["192.168.0.0/24"],
      masqueradeBit: 5,
      table: "kp-test",
    });
    await proxier.cleanup();
    expect(runner.calls.map((x) => x.stdin)).toEqual([
      "add table ip kp-test\ndelete table ip kp-test\n",
      "add table ip6 kp-test\ndelete table ip6 kp-test\n",
    ]);
  });

  it("clusterCIDRs are picked per family", () => {
    const { proxier } = setup();
    expect(proxier.renderOptions("IPv4").clusterCIDR).toBe("10.0.0.0/8");
    expect(proxier.renderOptions("IPv6").clusterCIDR).toBe("fd00:10::/64");
  });
});
