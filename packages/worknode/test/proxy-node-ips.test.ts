import type { NetworkInterfaceInfo } from "node:os";
import { describe, expect, it } from "vitest";
import {
  expandNodePortAddresses,
  nodeIPsFromInterfaces,
  primaryNodeIPs,
} from "../src/commands/proxy-node-ips.js";

function v4(address: string, internal = false): NetworkInterfaceInfo {
  return {
    address,
    netmask: "255.255.255.0",
    family: "IPv4",
    mac: "00:00:00:00:00:00",
    internal,
    cidr: null,
  };
}
function v6(address: string, internal = false): NetworkInterfaceInfo {
  return {
    address,
    netmask: "ffff:ffff:ffff:ffff::",
    family: "IPv6",
    mac: "00:00:00:00:00:00",
    internal,
    cidr: null,
    scopeid: 0,
  };
}

const IFACES = {
  lo: [v4("127.0.0.1", true), v6("::1", true)],
  eth0: [v4("192.168.1.10"), v6("fe80::1"), v6("2001:db8::10")],
  cni0: [v4("10.244.0.1")],
};

describe("node IPs from the host's interfaces", () => {
  it("global addresses first, loopback last, no link-local", () => {
    expect(nodeIPsFromInterfaces(IFACES)).toEqual([
      "192.168.1.10",
      "2001:db8::10",
      "10.244.0.1",
      "127.0.0.1",
      "::1",
    ]);
  });

  it("--bind-address becomes the primary IP of its family", () => {
    const ips = nodeIPsFromInterfaces(IFACES, "10.244.0.1");
    expect(ips[0]).toBe("10.244.0.1");
    expect(ips.filter((ip) => ip === "10.244.0.1")).toHaveLength(1);
    expect(primaryNodeIPs(ips)).toEqual(["10.244.0.1", "2001:db8::10"]);
  });
});

describe("--nodeport-addresses keywords", () => {
  const ips = nodeIPsFromInterfaces(IFACES);

  it("primary expands to the primary IPs, localhost to the loopback ranges", () => {
    expect(expandNodePortAddresses(["primary"], ips)).toEqual(["192.168.1.10/32", "2001:db8::10/128"]);
    expect(expandNodePortAddresses(["localhost", "10.0.0.0/8"], ips)).toEqual([
      "127.0.0.0/8",
      "::1/128",
      "10.0.0.0/8",
    ]);
  });

  it("all, or a /0 of a family, means every address (of that family)", () => {
    expect(expandNodePortAddresses(["all", "10.0.0.0/8"], ips)).toEqual([]);
    expect(expandNodePortAddresses(["0.0.0.0/0", "10.0.0.0/8", "2001:db8::/64"], ips)).toEqual([
      "2001:db8::/64",
    ]);
    expect(expandNodePortAddresses([], ips)).toEqual([]);
  });
});
