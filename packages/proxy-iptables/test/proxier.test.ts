import { conntrackDeletions, endpointIPOf, ProxySyncError } from "@worknode/core";
import { commitAll, FakeCommandRunner, fixtureService, fixtureSlice, slice, svc } from "@worknode/testing";
import { describe, expect, it } from "vitest";
import { JUMP_RULES, KUBELET_JUMP_RULES, parseRestoreErrorLine } from "../src/iptables.js";
import { IptablesProxier } from "../src/proxier.js";

const p80 = [{ name: "p80", port: 80 }];

function setup() {
  const services = [fixtureService(1), fixtureService(2)];
  const slices = [fixtureSlice(1, ["10.180.0.1"]), fixtureSlice(2, ["10.180.0.2"])];
  const c = commitAll(services, slices);
  const runner = new FakeCommandRunner();
  const proxier = new IptablesProxier({ nodeName: "test-node", runner, clusterCIDRs: ["10.0.0.0/8"] });
  return { ...c, slices, runner, proxier };
}

describe("IptablesProxier", () => {
  it("first sync is full: canaries, jump rules with -C/-I, stale chains from iptables-save deleted", async () => {
    const { snapshot, changes, runner, proxier } = setup();
    runner.respond = (c) => {
      if (c.command === "iptables" && c.args.includes("-C")) return { code: 1, stderr: "iptables: Bad rule" };
      if (c.command === "iptables-save")
        return { stdout: "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SEP-LEFTOVERLEFTOVER - [0:0]\nCOMMIT\n" };
      return undefined;
    };
    const stats = await proxier.sync({ snapshot, changes, full: false });
    expect(stats).toEqual({ servicePorts: 2, endpoints: 2, written: expect.any(Number) });

    const ipt = runner.of("iptables").map((c) => c.args.join(" "));
    for (const t of ["mangle", "nat", "filter"]) expect(ipt).toContain(`-w 5 -t ${t} -N KUBE-PROXY-CANARY`);
    const inserted = ipt.filter((a) => a.includes(" -I "));
    expect(inserted).toHaveLength(JUMP_RULES.length + KUBELET_JUMP_RULES.length);
    // kube-proxy's copies of the kubelet's KUBE-FIREWALL jumps come last, so they end up first.
    expect(inserted.slice(-2)).toEqual([
      "-w 5 -t filter -I INPUT -j KUBE-FIREWALL",
      "-w 5 -t filter -I OUTPUT -j KUBE-FIREWALL",
    ]);
    // Localhost node ports are on by default (kube-proxy's default): route_localnet is set.
    expect(runner.of("sysctl").map((c) => c.args.join(" "))).toEqual([
      "-w net.ipv4.conf.all.route_localnet=1",
    ]);
    expect(inserted).toContain(
      "-w 5 -t nat -I PREROUTING -m comment --comment kubernetes service portals -j KUBE-SERVICES",
    );
    expect(inserted).toContain(
      "-w 5 -t filter -I FORWARD -m conntrack --ctstate NEW -m comment --comment kubernetes service portals -j KUBE-SERVICES",
    );
    // Each -I is preceded by its -C check with the same rule.
    const idx = ipt.indexOf(
      "-w 5 -t nat -I POSTROUTING -m comment --comment kubernetes postrouting rules -j KUBE-POSTROUTING",
    );
    expect(ipt[idx - 1]).toBe(
      "-w 5 -t nat -C POSTROUTING -m comment --comment kubernetes postrouting rules -j KUBE-POSTROUTING",
    );

    const restores = runner.of("iptables-restore");
    expect(restores).toHaveLength(1);
    expect(restores[0]!.args).toEqual(["-w", "5", "--noflush", "--counters"]);
    const payload = restores[0]!.stdin!;
    expect(payload).toBe(proxier.lastApplied()!.payload);
    expect(payload.startsWith("*filter\n")).toBe(true);
    expect(payload).toContain("-X KUBE-SEP-LEFTOVERLEFTOVER\n");
    expect(payload).toContain("-j MASQUERADE --random-fully");
    expect(proxier.lastApplied()!.full).toBe(true);
  });

  it("later syncs are partial: no jump-rule calls, only the changed service's chains", async () => {
    const { snapshot, changes, tracker, slices, runner, proxier } = setup();
    await proxier.sync({ snapshot, changes, full: true });
    runner.reset();
    tracker.endpointSliceHandler.onUpdate!(slices[1]!, fixtureSlice(2, ["10.180.0.3"]));
    const next = tracker.commit();
    await proxier.sync({ snapshot: next.snapshot, changes: next.changes, full: false });
    expect(runner.of("iptables").map((c) => c.args.join(" "))).toEqual([
      "-w 5 -t mangle -S KUBE-PROXY-CANARY",
    ]);
    expect(runner.of("iptables-save")).toHaveLength(0);
    const applied = proxier.lastApplied()!;
    expect(applied.full).toBe(false);
    expect(applied.render.chainsWritten).toEqual([
      "KUBE-SVC-GNZBNJ2PO5MGZ6GT",
      expect.stringMatching(/^KUBE-SEP-/),
    ]);
    expect(applied.render.chainsDeleted).toEqual(["KUBE-SEP-RS4RBKLTHTF2IUXJ"]);
    expect(applied.payload).not.toContain(":KUBE-SVC-XPGD46QRK7WJZT7O");
  });

  it("a vanished canary chain turns a partial sync into a full one", async () => {
    const { snapshot, changes, runner, proxier } = setup();
    await proxier.sync({ snapshot, changes, full: true });
    runner.respond = (c) =>
      c.args.includes("-S") ? { code: 1, stderr: "No chain/target/match by that name." } : undefined;
    await proxier.sync({ snapshot, changes, full: false });
    expect(proxier.lastApplied()!.full).toBe(true);
  });

  it("a failed restore throws ProxySyncError with the failing line, and the next sync is full", async () => {
    const { snapshot, changes, runner, proxier } = setup();
    await proxier.sync({ snapshot, changes, full: true });
    runner.respond = (c) =>
      c.command === "iptables-restore"
        ? {
            code: 2,
            stderr:
              "iptables-restore v1.8.9 (nf_tables): Chain 'KUBE-NOPE' does not exist\nError occurred at line: 7\nTry `iptables-restore -h' for more information.\n",
          }
        : undefined;
    const err = await proxier.sync({ snapshot, changes, full: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProxySyncError);
    const e = err as ProxySyncError;
    expect(e.mode).toBe("iptables");
    expect(e.message).toContain("at line 7");
    expect(e.failingLine).toBe(proxier.lastApplied()!.payload.split("\n")[6]);
    const failures = await proxier.metrics.getSingleMetricAsString(
      "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total",
    );
    expect(failures).toContain('ip_family="IPv4"} 1');

    runner.respond = () => undefined;
    runner.reset();
    await proxier.sync({ snapshot, changes, full: false });
    expect(proxier.lastApplied()!.full).toBe(true);
    expect(runner.of("iptables-save")).toHaveLength(1);
  });

  it("programs IPv6 with ip6tables-restore", async () => {
    const c = commitAll(
      [svc({ ns: "ns1", name: "svc1", clusterIP: ["172.30.0.41", "fd00:30::41"], ports: p80 })],
      [slice({ ns: "ns1", service: "svc1", ipv6: true, ports: p80, endpoints: [{ ip: "fd00:10::1" }] })],
    );
    const runner = new FakeCommandRunner();
    const proxier = new IptablesProxier({ nodeName: "n", runner, families: ["IPv4", "IPv6"] });
    await proxier.sync({ snapshot: c.snapshot, changes: c.changes, full: true });
    expect(runner.of("ip6tables-restore")).toHaveLength(1);
    expect(runner.of("ip6tables-restore")[0]!.stdin).toContain("--to-destination [fd00:10::1]:80");
    // IPv4 has no endpoints for the port: REJECT.
    expect(runner.of("iptables-restore")[0]!.stdin).toContain("-d 172.30.0.41 --dport 80 -j REJECT");
  });

  it("cleanup deletes the jump rules and every owned chain, and nothing else", async () => {
    const runner = new FakeCommandRunner();
    const proxier = new IptablesProxier({ nodeName: "n", runner });
    const deleted = new Set<string>();
    runner.respond = (c) => {
      if (c.command === "iptables" && c.args.includes("-D")) {
        const key = c.args.join(" ");
        if (deleted.has(key)) return { code: 1 };
        deleted.add(key);
        return undefined;
      }
      if (c.command === "iptables-save" && c.args[1] === "nat") {
        return {
          stdout:
            "*nat\n:PREROUTING ACCEPT [0:0]\n:CNI-HOSTPORT-DNAT - [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]\n:KUBE-MARK-MASQ - [0:0]\nCOMMIT\n",
        };
      }
      return undefined;
    };
    await proxier.cleanup();
    expect(deleted.size).toBe(JUMP_RULES.length + KUBELET_JUMP_RULES.length);
    const restores = runner.of("iptables-restore");
    expect(restores).toHaveLength(1);
    expect(restores[0]!.stdin).toBe(
      "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n-X KUBE-SERVICES\n-X KUBE-SVC-AAAAAAAAAAAAAAAA\n-X KUBE-MARK-MASQ\nCOMMIT\n",
    );
  });

  it("cleanup removes KUBE-FIREWALL, unless the kubelet's canary shows a kubelet shares it", async () => {
    for (const kubelet of [false, true]) {
      const runner = new FakeCommandRunner();
      const proxier = new IptablesProxier({ nodeName: "n", runner });
      runner.respond = (c) => {
        if (c.command === "iptables" && c.args.includes("-D")) return { code: 1 };
        if (c.command === "iptables-save" && c.args[1] === "filter") {
          const canary = kubelet ? ":KUBE-KUBELET-CANARY - [0:0]\n" : "";
          return { stdout: `*filter\n:INPUT ACCEPT [0:0]\n${canary}:KUBE-FIREWALL - [0:0]\nCOMMIT\n` };
        }
        return undefined;
      };
      await proxier.cleanup();
      const deletes = runner.of("iptables").filter((c) => c.args.includes("-D"));
      const firewallJumps = deletes.filter((c) => c.args.at(-1) === "KUBE-FIREWALL");
      const restores = runner.of("iptables-restore").map((c) => c.stdin);
      if (kubelet) {
        expect(firewallJumps).toHaveLength(0);
        expect(restores).toEqual([]);
      } else {
        expect(firewallJumps.map((c) => c.args.join(" "))).toEqual([
          "-w 5 -t filter -D INPUT -j KUBE-FIREWALL",
          "-w 5 -t filter -D OUTPUT -j KUBE-FIREWALL",
        ]);
        expect(restores).toEqual(["*filter\n:KUBE-FIREWALL - [0:0]\n-X KUBE-FIREWALL\nCOMMIT\n"]);
      }
    }
  });

  it("does not touch route_localnet without localhost node ports, nor for IPv6", async () => {
    for (const options of [
      { localhostNodePorts: false, families: ["IPv4"] as const },
      { families: ["IPv6"] as const },
      { nodePortAddresses: ["192.168.0.0/16"], nodeIPs: ["192.168.0.2"], families: ["IPv4"] as const },
    ]) {
      const { snapshot, changes } = setup();
      const runner = new FakeCommandRunner();
      const proxier = new IptablesProxier({ nodeName: "n", runner, ...options });
      await proxier.sync({ snapshot, changes, full: true });
      expect(runner.of("sysctl")).toEqual([]);
      expect(proxier.lastApplied(options.families[0])!.payload).not.toContain("-A KUBE-FIREWALL");
    }
  });

  it("node labels (node-aware proxying): a change makes the next sync full and renders with the zone", async () => {
    const { snapshot, changes, runner, proxier } = setup();
    await proxier.sync({ snapshot, changes, full: true });
    expect(proxier.setNodeLabels(undefined)).toBe(false);
    expect(proxier.setNodeLabels({ "topology.kubernetes.io/zone": "zone-a" })).toBe(true);
    expect(proxier.setNodeLabels({ "topology.kubernetes.io/zone": "zone-a" })).toBe(false);
    expect(proxier.currentNodeLabels).toEqual({ "topology.kubernetes.io/zone": "zone-a" });
    runner.reset();
    await proxier.sync({ snapshot, changes: { ...changes, changedServicePorts: new Set() }, full: false });
    expect(proxier.lastApplied()!.full).toBe(true);
    expect(runner.of("iptables-save")).toHaveLength(1);
    runner.reset();
    await proxier.sync({ snapshot, changes: { ...changes, changedServicePorts: new Set() }, full: false });
    expect(proxier.lastApplied()!.full).toBe(false);
  });

  it("fails the sync when route_localnet cannot be set", async () => {
    const { snapshot, changes, runner, proxier } = setup();
    runner.respond = (c) => (c.command === "sysctl" ? { code: 255, stderr: "permission denied" } : undefined);
    await expect(proxier.sync({ snapshot, changes, full: true })).rejects.toThrow(/route_localnet/);
  });
});

describe("restore errors", () => {
  it("finds the failing line in iptables-nft and legacy messages", () => {
    expect(
      parseRestoreErrorLine("iptables-restore v1.8.9 (nf_tables): x\nError occurred at line: 12\n"),
    ).toBe(12);
    expect(parseRestoreErrorLine("iptables-restore: line 4 failed\n")).toBe(4);
    expect(parseRestoreErrorLine("something else")).toBeUndefined();
  });
});

describe("conntrack deletions", () => {
  it("builds conntrack -D arguments for service IPs, endpoints and node ports", () => {
    const d = conntrackDeletions(
      [
        { serviceIP: "172.30.0.10", port: 53, protocol: "UDP" },
        { serviceIP: "172.30.0.10", port: 53, protocol: "UDP", endpoint: "10.180.0.53:53" },
        { serviceIP: "", port: 30053, protocol: "UDP" },
        { serviceIP: "", port: 30053, protocol: "SCTP", endpoint: "[fd00::5]:53" },
        { serviceIP: "fd00:30::10", port: 53, protocol: "UDP" },
      ],
      ["IPv4", "IPv6"],
    );
    expect(d.map((x) => x.args.join(" "))).toEqual([
      "-D -p udp --orig-dst 172.30.0.10 --dport 53",
      "-D -p udp --orig-dst 172.30.0.10 --dport 53 --dst-nat 10.180.0.53",
      "-D -p udp --dport 30053",
      "-D -f ipv6 -p udp --dport 30053",
      "-D -f ipv6 -p sctp --dport 30053 --dst-nat fd00::5",
      "-D -f ipv6 -p udp --orig-dst fd00:30::10 --dport 53",
    ]);
  });

  it("skips families the proxier does not program", () => {
    expect(conntrackDeletions([{ serviceIP: "fd00::1", port: 1, protocol: "UDP" }], ["IPv4"])).toEqual([]);
  });

  it("extracts endpoint IPs", () => {
    expect(endpointIPOf("10.0.0.1:80")).toBe("10.0.0.1");
    expect(endpointIPOf("[fd00::1]:80")).toBe("fd00::1");
  });
});
