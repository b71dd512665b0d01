import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  connectFromNetns,
  createBridge,
  createNetns,
  createVethPair,
  destroyAll,
  listNetns,
  type Netns,
  type NetnsServer,
  startNetnsServer,
  trackedNetworkResources,
} from "../src/index.js";

const run = promisify(execFile);

describe("network namespaces", () => {
  let alpha: Netns;
  let bravo: Netns;
  let tcp: NetnsServer;
  let udp: NetnsServer;
  let hostRulesBefore = "";
  let hostNftBefore = "";
  let hostAddrsBefore = "";

  beforeAll(async () => {
    hostRulesBefore = (await run("iptables-save")).stdout.replace(/^#.*$/gm, "");
    hostNftBefore = (await run("nft", ["list", "ruleset"])).stdout;
    hostAddrsBefore = (await run("ip", ["-br", "addr"])).stdout;
    alpha = await createNetns("alpha");
    bravo = await createNetns("bravo");
    await createVethPair(alpha, bravo, {
      addressA: ["10.231.0.1/24", "fd00:231::1/64"],
      addressB: ["10.231.0.2/24", "fd00:231::2/64"],
    });
    tcp = await startNetnsServer(bravo, { protocol: "tcp", port: 8080, reply: "bravo" });
    udp = await startNetnsServer(bravo, { protocol: "udp", port: 5353, reply: "bravo", echoPeer: true });
  });

  afterAll(async () => {
    await destroyAll();
  });

  it("creates uniquely named namespaces with lo up", async () => {
    expect(alpha.name).toMatch(/^wn-alpha-[0-9a-f]{6}$/);
    expect(bravo.name).not.toBe(alpha.name);
    expect(await listNetns()).toEqual(expect.arrayContaining([alpha.name, bravo.name]));
    const lo = (await alpha.exec("ip", ["-br", "link", "show", "lo"])).stdout;
    expect(lo).toMatch(/UP|UNKNOWN/);
  });

  it("carries a TCP connection across the veth pair", async () => {
    expect(tcp.port).toBe(8080);
    expect(await connectFromNetns(alpha, { protocol: "tcp", host: "10.231.0.2", port: 8080 })).toEqual({
      ok: true,
      reply: "bravo",
    });
    expect(await connectFromNetns(alpha, { protocol: "tcp", host: "fd00:231::2", port: 8080 })).toEqual({
      ok: true,
      reply: "bravo",
    });
  });

  it("carries a UDP datagram across the veth pair and shows the client's address", async () => {
    const r = await connectFromNetns(alpha, { protocol: "udp", host: "10.231.0.2", port: udp.port });
    expect(r.ok).toBe(true);
    expect(r.ok && r.reply).toMatch(/^bravo 10\.231\.0\.1:\d+$/);
  });

  it("refuses a port nobody listens on", async () => {
    expect(await connectFromNetns(alpha, { protocol: "tcp", host: "10.231.0.2", port: 8081 })).toEqual({
      ok: false,
      error: "ECONNREFUSED",
    });
  });

  it("an iptables REJECT inside one namespace changes the result, and only there", async () => {
    const rule = [
      "INPUT",
      "-p",
      "tcp",
      "--dport",
      "8080",
      "-j",
      "REJECT",
      "--reject-with",
      "icmp-port-unreachable",
    ];
    await bravo.exec("iptables", ["-A", ...rule]);
    try {
      const r = await connectFromNetns(alpha, { protocol: "tcp", host: "10.231.0.2", port: 8080 });
      expect(r.ok).toBe(false);
      expect(r.ok ? "" : r.error).toMatch(/ECONNREFUSED|EHOSTUNREACH/);
      // the host's own rules did not change
      expect((await run("iptables-save")).stdout.replace(/^#.*$/gm, "")).toBe(hostRulesBefore);
      // UDP is not matched by the TCP rule
      expect(
        (await connectFromNetns(alpha, { protocol: "udp", host: "10.231.0.2", port: udp.port })).ok,
      ).toBe(true);
    } finally {
      await bravo.exec("iptables", ["-D", ...rule]);
    }
    expect(await connectFromNetns(alpha, { protocol: "tcp", host: "10.231.0.2", port: 8080 })).toEqual({
      ok: true,
      reply: "bravo",
    });
  });

  it("an nftables table inside one namespace changes the result, and only there", async () => {
    const table = `table inet wn_test {
  chain input {
    type filter hook input priority 0; policy accept;
    udp dport ${udp.port} drop
    tcp dport 8080 reject with tcp reset
  }
}
`;
    await bravo.exec("nft", ["-f", "-"], { input: table });
    try {
      expect(
        await connectFromNetns(alpha, {
          protocol: "udp",
          host: "10.231.0.2",
          port: udp.port,
          timeoutMs: 500,
        }),
      ).toEqual({ ok: false, error: "ETIMEDOUT" });
      expect(await connectFromNetns(alpha, { protocol: "tcp", host: "10.231.0.2", port: 8080 })).toEqual({
        ok: false,
        error: "ECONNREFUSED",
      });
      expect((await run("nft", ["list", "ruleset"])).stdout).toBe(hostNftBefore);
    } finally {
      await bravo.exec("nft", ["delete", "table", "inet", "wn_test"]);
    }
    expect((await connectFromNetns(alpha, { protocol: "udp", host: "10.231.0.2", port: udp.port })).ok).toBe(
      true,
    );
  });

  it("joins namespaces through a bridge in a third namespace", async () => {
    const hub = await createNetns("hub");
    const charlie = await createNetns("charlie");
    const delta = await createNetns("delta");
    const br = await createBridge(hub);
    const c = await createVethPair(charlie, hub, { addressA: "10.232.0.3/24" });
    const d = await createVethPair(delta, hub, { addressA: "10.232.0.4/24" });
    await br.addPort(c.nameB);
    await br.addPort(d.nameB);
    await startNetnsServer(delta, { protocol: "tcp", port: 9000, reply: "delta", host: "0.0.0.0" });
    expect(await connectFromNetns(charlie, { protocol: "tcp", host: "10.232.0.4", port: 9000 })).toEqual({
      ok: true,
      reply: "delta",
    });
    // the bridge lives in the hub namespace only
    expect((await hub.exec("ip", ["-br", "link", "show", br.name])).stdout).toContain(br.name);
    await expect(run("ip", ["link", "show", br.name])).rejects.toThrow();
  });

  it("never touched the host's interfaces, and destroyAll() removes everything", async () => {
    expect((await run("ip", ["-br", "addr"])).stdout).toBe(hostAddrsBefore);
    const names = trackedNetworkResources();
    expect(names.length).toBeGreaterThan(5);
    const created = (await listNetns()).filter((n) => names.some((t) => t === `netns ${n}`));
    expect(created.length).toBe(5);
    await destroyAll();
    expect(trackedNetworkResources()).toEqual([]);
    const left = await listNetns();
    for (const n of created) expect(left).not.toContain(n);
    const stray = (await run("ps", ["-eo", "args"])).stdout.split("\n").filter((l) => l.includes("READY"));
    expect(stray).toEqual([]);
  });
});
