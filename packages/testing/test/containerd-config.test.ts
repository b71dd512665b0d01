import { ConfigError } from "@worknode/core";
import { describe, expect, it } from "vitest";
import { overlappingRoutes, shimsOf } from "../src/containerd.js";
import {
  containerdLabLayout,
  ipv4Add,
  renderCniConflist,
  renderContainerdConfig,
  renderRegistryHostsToml,
  resolveLabNetwork,
} from "../src/containerd-config.js";

describe("containerd lab configuration", () => {
  const layout = containerdLabLayout("/tmp/lab x");

  it("puts every path inside the lab directory", () => {
    for (const [k, v] of Object.entries(layout)) {
      expect(v.startsWith("/tmp/lab x"), k).toBe(true);
    }
    expect(layout.socketPath).toBe("/tmp/lab x/containerd.sock");
  });

  it("refuses a lab directory too long for a unix socket", () => {
    expect(() => containerdLabLayout(`/tmp/${"d".repeat(100)}`)).toThrow(ConfigError);
  });

  it("renders config.toml with the lab paths, CRI settings and escaped strings", () => {
    const toml = renderContainerdConfig({
      layout,
      sandboxImage: "worknode.local/pause:3.9",
      streamAddress: "127.0.0.1",
      streamPort: 10011,
      cniBinDir: "/usr/lib/cni",
    });
    expect(toml).toContain('root = "/tmp/lab x/root"');
    expect(toml).toContain('address = "/tmp/lab x/containerd.sock"');
    expect(toml).toContain('address = "/tmp/lab x/containerd.sock.ttrpc"');
    expect(toml).toContain('sandbox_image = "worknode.local/pause:3.9"');
    expect(toml).toContain('stream_server_port = "10011"');
    expect(toml).toContain("restrict_oom_score_adj = true");
    expect(toml).toContain('Root = "/tmp/lab x/runc"');
    expect(toml).toContain('conf_dir = "/tmp/lab x/cni/net.d"');
    expect(toml).toContain('config_path = "/tmp/lab x/certs.d"');
    const quoted = renderContainerdConfig({
      layout: containerdLabLayout('/tmp/a"b'),
      sandboxImage: "p",
      streamAddress: "127.0.0.1",
      streamPort: 1,
      cniBinDir: "/c",
    });
    expect(quoted).toContain('root = "/tmp/a\\"b/root"');
  });

  it("renders the CNI bridge conflist from the network", () => {
    const net = resolveLabNetwork("wnbr3", "10.77.0.0/16");
    expect(net).toEqual({
      name: "worknode-wnbr3",
      bridge: "wnbr3",
      subnet: "10.77.0.0/16",
      gateway: "10.77.0.1",
    });
    const conf = JSON.parse(renderCniConflist(net, "/lab/ipam"));
    expect(conf.name).toBe("worknode-wnbr3");
    expect(conf.plugins[0]).toMatchObject({
      type: "bridge",
      bridge: "wnbr3",
      isGateway: true,
      ipMasq: true,
      ipam: {
        type: "host-local",
        dataDir: "/lab/ipam",
        ranges: [[{ subnet: "10.77.0.0/16", gateway: "10.77.0.1" }]],
      },
    });
    expect(conf.plugins[1]).toEqual({ type: "portmap", capabilities: { portMappings: true } });
  });

  it("validates bridge names and subnets", () => {
    expect(() => resolveLabNetwork("a-bridge-name-too-long", "10.0.0.0/16")).toThrow(ConfigError);
    expect(() => resolveLabNetwork("br;rm", "10.0.0.0/16")).toThrow(ConfigError);
    expect(() => resolveLabNetwork("br0", "fd00::/64")).toThrow(ConfigError);
    expect(() => resolveLabNetwork("br0", "10.0.0.0/31")).toThrow(ConfigError);
    expect(resolveLabNetwork("br0", "10.1.2.3/24").subnet).toBe("10.1.2.0/24");
  });

  it("adds to IPv4 addresses across octets", () => {
    expect(ipv4Add("10.0.0.255", 1)).toBe("10.0.1.0");
    expect(ipv4Add("192.168.255.255", 1)).toBe("192.169.0.0");
  });

  it("renders hosts.toml for a plain-HTTP registry", () => {
    const t = renderRegistryHostsToml("127.0.0.1:5000");
    expect(t).toContain('server = "http://127.0.0.1:5000"');
    expect(t).toContain('[host."http://127.0.0.1:5000"]');
    expect(t).toContain('capabilities = ["pull", "resolve"]');
  });

  it("finds host routes overlapping the pod subnet", () => {
    const routes = JSON.stringify([
      { dst: "default", gateway: "192.0.2.1", dev: "eth0" },
      { dst: "192.0.2.0/24", dev: "eth0" },
      { dst: "10.88.5.0/24", dev: "tun0" },
      { dst: "10.0.0.0/8", dev: "wg0" },
      { dst: "10.89.0.1", dev: "eth1" },
    ]);
    expect(overlappingRoutes(routes, "10.88.0.0/16")).toEqual([
      "10.88.5.0/24 dev tun0",
      "10.0.0.0/8 dev wg0",
    ]);
    expect(overlappingRoutes(routes, "10.88.0.0/16", "wg0")).toEqual(["10.88.5.0/24 dev tun0"]);
    expect(overlappingRoutes(routes, "172.16.0.0/16")).toEqual([]);
  });

  it("recognises the shims of one containerd by their -address", () => {
    const procs = [
      {
        pid: 10,
        ppid: 1,
        state: "S",
        argv: [
          "/usr/bin/containerd-shim-runc-v2",
          "-namespace",
          "k8s.io",
          "-address",
          "/lab/containerd.sock",
          "-id",
          "x",
        ],
      },
      {
        pid: 11,
        ppid: 1,
        state: "S",
        argv: ["/usr/bin/containerd-shim-runc-v2", "-address", "/run/containerd/containerd.sock"],
      },
      { pid: 12, ppid: 1, state: "S", argv: ["/usr/bin/node", "-address", "/lab/containerd.sock"] },
    ];
    expect(shimsOf(procs, "/lab/containerd.sock")).toEqual([10]);
  });
});
