/**
 * Traffic through the iptables backend on the real kernel, inside network namespaces
 * made by the test (never the host's own tables): load-balancer IPs and source ranges,
 * source NAT by traffic policy, health-check node ports, UDP conntrack cleanup and IPv6.
 *
 *   client  (192.168.50.2, fd00:50::2) ──veth── node (192.168.50.1, fd00:50::1)
 *   client2 (192.168.60.2)             ──veth── node (192.168.60.1)
 *   node: bridge 10.244.0.1/24, fd00:244::1/64 ──veth── pod-a (.11), pod-b (.12), pod-c (.13)
 *
 * Each pod answers TCP on 8080 with `<name> <peer ip>:<peer port>` (so the test sees the
 * source address the backend saw) and UDP on 5353 with its name.
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type CommandRunner,
  createCommandRunner,
  type EndpointSlice,
  type Service,
  type ServiceChangeTracker,
  type ServiceHealthListen,
  serviceHealthResponse,
} from "@worknode/core";
import {
  connectFromNetns,
  createBridge,
  createNetns,
  createVethPair,
  destroyAll,
  type Netns,
  startNetnsServer,
} from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IptablesProxier } from "../src/proxier.js";
import { commitAll, type EpSpec, slice, svc } from "./helpers/objects.js";

const PODS = [
  { name: "pod-a", ip: "10.244.0.11", ip6: "fd00:244::11" },
  { name: "pod-b", ip: "10.244.0.12", ip6: "fd00:244::12" },
  { name: "pod-c", ip: "10.244.0.13", ip6: "fd00:244::13" },
] as const;
type PodName = (typeof PODS)[number]["name"];
const NODE_IP = "192.168.50.1";
const NODE_IP2 = "192.168.60.1";
const NODE_IP6 = "fd00:50::1";
const CLIENT_IP = "192.168.50.2";
const CLIENT2_IP = "192.168.60.2";
const BRIDGE_IP = "10.244.0.1";
const BRIDGE_IP6 = "fd00:244::1";
const LB_IP = "203.0.113.10";
const LB_LOCAL_IP = "203.0.113.11";

const tcp = (nodePort?: number) => [
  { name: "http", port: 80, targetPort: 8080, ...(nodePort ? { nodePort } : {}) },
];
const udp = [{ name: "dns", port: 53, targetPort: 5353, protocol: "UDP" as const }];

let node: Netns;
let client: Netns;
let client2: Netns;
let tracker: ServiceChangeTracker;
let proxier: IptablesProxier;
let hcPortLocal: number;
let hcPortRemote: number;
const services: Record<string, Service> = {};
const slices: Record<string, EndpointSlice> = {};
const conntrackCalls: { args: readonly string[]; code: number }[] = [];
/** Conntrack deletions mentioning one of these IPs are not run (the control group). */
const suppressConntrackFor = new Set<string>();
let baselineV4 = "";
let baselineV6 = "";

/** Runs in the node namespace; records `conntrack` calls and drops the suppressed ones. */
function nodeRunner(): CommandRunner {
  const inner = createCommandRunner({ netns: node.name });
  return {
    async exec(command, args, stdin) {
      if (command === "conntrack" && args.some((a) => suppressConntrackFor.has(a))) {
        conntrackCalls.push({ args, code: -2 });
        return { code: 0, stdout: "", stderr: "suppressed by the test" };
      }
      const out = await inner.exec(command, args, stdin);
      if (command === "conntrack") conntrackCalls.push({ args, code: out.code });
      return out;
    },
  };
}

function endpoints(names: readonly PodName[], nodeOf: (n: PodName) => string = () => "node-1"): EpSpec[] {
  return PODS.filter((p) => names.includes(p.name)).map((p) => ({ ip: p.ip, node: nodeOf(p.name) }));
}

/** Applies the object changes to the tracker, commits and syncs (partial). */
async function apply(
  svcs: Record<string, Service | undefined>,
  slcs: Record<string, EndpointSlice | undefined>,
) {
  for (const [k, s] of Object.entries(svcs)) {
    const old = services[k];
    if (s === undefined) {
      if (old) tracker.serviceHandler.onDelete!(old);
      delete services[k];
    } else {
      if (old) tracker.serviceHandler.onUpdate!(old, s);
      else tracker.serviceHandler.onAdd!(s);
      services[k] = s;
    }
  }
  for (const [k, s] of Object.entries(slcs)) {
    const old = slices[k];
    if (s === undefined) {
      if (old) tracker.endpointSliceHandler.onDelete!(old);
      delete slices[k];
    } else {
      if (old) tracker.endpointSliceHandler.onUpdate!(old, s);
      else tracker.endpointSliceHandler.onAdd!(s);
      slices[k] = s;
    }
  }
  const next = tracker.commit();
  await proxier.sync({ snapshot: next.snapshot, changes: next.changes, full: false });
  return next;
}

async function tcpFrom(ns: Netns, host: string, port: number, timeoutMs = 3_000) {
  const r = await connectFromNetns(ns, { protocol: "tcp", host, port, timeoutMs });
  return r.ok ? r.reply : `error:${r.error}`;
}

/** `<pod> <peer ip>` of a reply (the peer port dropped). */
function podAndPeer(reply: string): string {
  const m = /^(\S+) (.*):\d+$/.exec(reply);
  return m ? `${m[1]} ${m[2]}` : reply;
}

// -------------------------------------------------------------------------------------------
// HTTP from inside a namespace, and health-check listeners inside the node namespace.

const HTTP_GET = `
const cfg = JSON.parse(process.argv[1]);
const req = require("node:http").get({ host: cfg.host, port: cfg.port, path: "/", timeout: cfg.timeoutMs }, (res) => {
  let body = "";
  res.on("data", (d) => { body += d; });
  res.on("end", () => { console.log(JSON.stringify({ ok: true, status: res.statusCode, headers: res.headers, body })); });
});
req.on("timeout", () => { req.destroy(); console.log(JSON.stringify({ ok: false, error: "ETIMEDOUT" })); });
req.on("error", (e) => { if (!req.destroyed || e.code !== "ECONNRESET") console.log(JSON.stringify({ ok: false, error: e.code || e.message })); });
`;

type HttpResult =
  | { ok: true; status: number; headers: Record<string, string>; body: string }
  | { ok: false; error: string };

async function httpFrom(ns: Netns, host: string, port: number): Promise<HttpResult> {
  const r = await ns.exec(
    process.execPath,
    ["-e", HTTP_GET, JSON.stringify({ host, port, timeoutMs: 2_000 })],
    {
      timeoutMs: 15_000,
    },
  );
  return JSON.parse(r.stdout.trim().split("\n")[0] ?? "") as HttpResult;
}

/** Forwards TCP connections on host:port inside a namespace to a Unix socket of this process. */
const FORWARDER = `
const cfg = JSON.parse(process.argv[1]);
const net = require("node:net");
const srv = net.createServer((c) => {
  const u = net.connect(cfg.sock);
  c.pipe(u); u.pipe(c);
  c.on("error", () => u.destroy()); u.on("error", () => c.destroy());
});
srv.on("error", (e) => { console.error(e.code || e.message); process.exit(1); });
srv.listen({ port: cfg.port, host: cfg.host }, () => process.stdout.write("READY\\n"));
`;

/**
 * A {@link ServiceHealthListen} that serves inside a namespace: the HTTP server runs in
 * this process on a Unix socket, and a small forwarder spawned in the namespace listens
 * on the health-check port.
 */
function listenInNetns(ns: Netns): ServiceHealthListen {
  return async (host, port, handler) => {
    const sock = join(tmpdir(), `wn-hc-${port}-${randomBytes(4).toString("hex")}.sock`);
    const server: Server = createServer(handler);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(sock, () => resolve());
    });
    const child: ChildProcess = ns.spawn(process.execPath, [
      "-e",
      FORWARDER,
      JSON.stringify({ host: host ?? "::", port, sock }),
    ]);
    const closeServer = () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    try {
      await new Promise<void>((resolve, reject) => {
        let err = "";
        child.stderr?.on("data", (d: Buffer) => {
          err += d.toString();
        });
        child.stdout?.on("data", (d: Buffer) => {
          if (d.toString().includes("READY")) resolve();
        });
        child.once("exit", (code) => reject(new Error(`forwarder exited with ${code}: ${err.trim()}`)));
      });
    } catch (e) {
      await closeServer();
      throw e;
    }
    return {
      async close() {
        const exited = new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) resolve();
          else child.once("exit", () => resolve());
        });
        child.kill("SIGTERM");
        await exited;
        await closeServer();
      },
    };
  };
}

// -------------------------------------------------------------------------------------------
// A UDP client with a fixed source port, sending every 100 ms (so its conntrack entry stays).

const UDP_CLIENT = `
const cfg = JSON.parse(process.argv[1]);
const sock = require("node:dgram").createSocket("udp4");
sock.on("message", (m) => process.stdout.write(Date.now() + " " + m.toString().trim() + "\\n"));
sock.on("error", (e) => { console.error(e.code || e.message); process.exit(1); });
sock.bind(cfg.sourcePort, () => {
  const tick = () => sock.send("ping", cfg.port, cfg.host, () => {});
  tick();
  setInterval(tick, 100);
});
`;

interface UdpClient {
  /** Replies so far, with the time (ms since epoch) they arrived. */
  readonly replies: { at: number; from: string }[];
  stop(): void;
}

function startUdpClient(ns: Netns, host: string, port: number, sourcePort: number): UdpClient {
  const child = ns.spawn(process.execPath, ["-e", UDP_CLIENT, JSON.stringify({ host, port, sourcePort })]);
  const replies: { at: number; from: string }[] = [];
  let buf = "";
  child.stdout?.on("data", (d: Buffer) => {
    buf += d.toString();
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
      const [at, from] = buf.slice(0, nl).split(" ");
      buf = buf.slice(nl + 1);
      replies.push({ at: Number(at), from: from ?? "" });
    }
  });
  return { replies, stop: () => child.kill("SIGKILL") };
}

async function until(what: string, cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `conntrack -L` entries of UDP traffic to `serviceIP` in the node: the DNAT target (reply source) of each. */
async function conntrackTargets(serviceIP: string): Promise<string[]> {
  const r = await node.exec("conntrack", ["-L", "-p", "udp", "--orig-dst", serviceIP], {
    allowFailure: true,
  });
  if (r.exitCode !== 0 && !/0 flow entries/.test(r.stderr))
    throw new Error(`conntrack -L failed: ${r.stderr}`);
  return r.stdout
    .split("\n")
    .filter((l) => l.includes(`dst=${serviceIP}`))
    .map((l) => /src=\S+ dst=\S+ sport=\d+ dport=\d+ .*?src=(\S+)/.exec(l)?.[1] ?? "?");
}

async function saveAll(): Promise<{ v4: string; v6: string }> {
  const norm = (s: string) =>
    s
      .split("\n")
      .filter((l) => !l.startsWith("#"))
      .map((l) => l.replace(/\[\d+:\d+\]/g, "[0:0]"))
      .join("\n");
  return {
    v4: norm((await node.exec("iptables-save", [])).stdout),
    v6: norm((await node.exec("ip6tables-save", [])).stdout),
  };
}

function randomPortInNode(): number {
  // The node namespace is fresh: any port in the ephemeral range below it is free.
  return 31_000 + Math.floor(Math.random() * 1_000);
}

beforeAll(async () => {
  node = await createNetns("node");
  client = await createNetns("client");
  client2 = await createNetns("client2");
  await createVethPair(client, node, {
    addressA: [`${CLIENT_IP}/24`, "fd00:50::2/64"],
    addressB: [`${NODE_IP}/24`, `${NODE_IP6}/64`],
  });
  await createVethPair(client2, node, { addressA: `${CLIENT2_IP}/24`, addressB: `${NODE_IP2}/24` });
  await client.exec("ip", ["route", "add", "default", "via", NODE_IP]);
  await client.exec("ip", ["-6", "route", "add", "default", "via", NODE_IP6]);
  await client2.exec("ip", ["route", "add", "default", "via", NODE_IP2]);
  const bridge = await createBridge(node, { addresses: [`${BRIDGE_IP}/24`, `${BRIDGE_IP6}/64`] });
  for (const pod of PODS) {
    const ns = await createNetns(pod.name.replace("-", ""));
    const pair = await createVethPair(node, ns, { addressB: [`${pod.ip}/24`, `${pod.ip6}/64`] });
    await bridge.addPort(pair.nameA);
    await ns.exec("ip", ["route", "add", "default", "via", BRIDGE_IP]);
    await ns.exec("ip", ["-6", "route", "add", "default", "via", BRIDGE_IP6]);
    await startNetnsServer(ns, { protocol: "tcp", port: 8080, reply: pod.name, echoPeer: true });
    await startNetnsServer(ns, { protocol: "udp", port: 5353, reply: pod.name });
  }
  await node.exec("sysctl", ["-q", "-w", "net.ipv4.ip_forward=1"]);
  await node.exec("sysctl", ["-q", "-w", "net.ipv6.conf.all.forwarding=1"]);
  // A real node has default routes (load-balancer IPs and dropped traffic need one).
  await node.exec("ip", ["route", "add", "default", "dev", bridge.name]);
  await node.exec("ip", ["-6", "route", "add", "default", "dev", bridge.name]);
  // The node's own rules in every table the proxy touches, for both families (so that
  // cleanup can be compared with the tables as they were).
  for (const ipt of ["iptables", "ip6tables"]) {
    await node.exec(ipt, ["-t", "nat", "-A", "POSTROUTING", "-p", "tcp", "--dport", "9", "-j", "RETURN"]);
    await node.exec(ipt, ["-t", "filter", "-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "ACCEPT"]);
    await node.exec(ipt, ["-t", "mangle", "-A", "PREROUTING", "-p", "udp", "--dport", "9", "-j", "ACCEPT"]);
  }
  const saved = await saveAll();
  baselineV4 = saved.v4;
  baselineV6 = saved.v6;

  hcPortLocal = randomPortInNode();
  hcPortRemote = hcPortLocal + 1;
  const remote = (n: PodName) => (n === "pod-c" ? "node-2" : "node-1");
  services.lb = svc({
    ns: "default",
    name: "lb",
    type: "LoadBalancer",
    clusterIP: "172.30.0.30",
    ports: tcp(30090),
    lbIPs: [LB_IP],
    sourceRanges: ["192.168.50.0/24"],
  });
  slices.lb = slice({ ns: "default", service: "lb", ports: tcp(), endpoints: endpoints(["pod-a"]) });
  services.local = svc({
    ns: "default",
    name: "local",
    type: "LoadBalancer",
    clusterIP: "172.30.0.31",
    ports: tcp(30091),
    lbIPs: [LB_LOCAL_IP],
    etp: "Local",
    healthCheckNodePort: hcPortLocal,
  });
  // pod-b runs on this node, pod-c on another one.
  slices.local = slice({
    ns: "default",
    service: "local",
    ports: tcp(),
    endpoints: endpoints(["pod-b", "pod-c"], remote),
  });
  services.remote = svc({
    ns: "default",
    name: "remote",
    type: "LoadBalancer",
    clusterIP: "172.30.0.32",
    ports: tcp(30092),
    etp: "Local",
    healthCheckNodePort: hcPortRemote,
  });
  slices.remote = slice({
    ns: "default",
    service: "remote",
    ports: tcp(),
    endpoints: endpoints(["pod-c"], remote),
  });
  services.v6 = svc({ ns: "default", name: "v6", clusterIP: "fd00:30::10", ports: tcp() });
  slices.v6 = slice({
    ns: "default",
    service: "v6",
    ports: tcp(),
    ipv6: true,
    endpoints: PODS.map((p) => ({ ip: p.ip6, node: "node-1" })),
  });
  services.dual = svc({
    ns: "default",
    name: "dual",
    clusterIP: ["172.30.0.33", "fd00:30::33"],
    ports: tcp(),
  });
  slices.dual4 = slice({
    ns: "default",
    service: "dual",
    name: "dual-v4",
    ports: tcp(),
    endpoints: endpoints(["pod-a"]),
  });
  slices.dual6 = slice({
    ns: "default",
    service: "dual",
    name: "dual-v6",
    ports: tcp(),
    ipv6: true,
    endpoints: [{ ip: PODS[1].ip6, node: "node-1" }],
  });
  const c = commitAll(Object.values(services), Object.values(slices), "node-1");
  tracker = c.tracker;
  proxier = new IptablesProxier({
    nodeName: "node-1",
    nodeIPs: [NODE_IP, NODE_IP2, BRIDGE_IP, NODE_IP6],
    clusterCIDRs: ["10.244.0.0/16", "fd00:244::/64"],
    families: ["IPv4", "IPv6"],
    runner: nodeRunner(),
    healthCheck: { listen: listenInNetns(node) },
  });
  await proxier.sync({ snapshot: c.snapshot, changes: c.changes, full: true });
}, 180_000);

afterAll(async () => {
  await proxier?.close();
  await destroyAll();
});

describe("LoadBalancer IPs and loadBalancerSourceRanges", () => {
  it("lets an allowed client reach the load-balancer IP, source-NATed to the node (Cluster policy)", async () => {
    expect(podAndPeer(await tcpFrom(client, LB_IP, 80))).toBe(`pod-a ${BRIDGE_IP}`);
  });

  it("drops a client outside the source ranges (no answer, not a refusal)", async () => {
    expect(await tcpFrom(client2, LB_IP, 80, 1_500)).toBe("error:ETIMEDOUT");
    // The same client reaches the node port: source ranges only guard the load-balancer IP.
    expect(podAndPeer(await tcpFrom(client2, NODE_IP2, 30090))).toBe(`pod-a ${BRIDGE_IP}`);
  });
});

describe("source NAT by traffic policy", () => {
  it("a node port with the Cluster policy: the backend sees the node's address", async () => {
    expect(podAndPeer(await tcpFrom(client, NODE_IP, 30090))).toBe(`pod-a ${BRIDGE_IP}`);
  });

  it("externalTrafficPolicy Local: only the local endpoint, and it sees the client's own address", async () => {
    for (let i = 0; i < 6; i++) {
      expect(podAndPeer(await tcpFrom(client, NODE_IP, 30091))).toBe(`pod-b ${CLIENT_IP}`);
    }
    expect(podAndPeer(await tcpFrom(client, LB_LOCAL_IP, 80))).toBe(`pod-b ${CLIENT_IP}`);
  });

  it("externalTrafficPolicy Local without a local endpoint: dropped, not refused", async () => {
    expect(await tcpFrom(client, NODE_IP, 30092, 1_500)).toBe("error:ETIMEDOUT");
    // Its cluster IP still reaches the endpoint on the other node (Cluster policy inside).
    expect(podAndPeer(await tcpFrom(client, "172.30.0.32", 80))).toBe(`pod-c ${BRIDGE_IP}`);
  });
});

describe("health-check node ports (listening in the node namespace)", () => {
  it("answer 200 with a local endpoint and 503 without, on the node's address", async () => {
    const ok = await httpFrom(client, NODE_IP, hcPortLocal);
    expect(ok).toMatchObject({ ok: true, status: 200 });
    if (!ok.ok) throw new Error("unreachable");
    expect(ok.body).toBe(serviceHealthResponse({ namespace: "default", name: "local" }, 1, true).body);
    expect(ok.headers["x-content-type-options"]).toBe("nosniff");
    expect(ok.headers["x-load-balancing-endpoint-weight"]).toBe("1");

    const down = await httpFrom(client, NODE_IP, hcPortRemote);
    expect(down).toMatchObject({ ok: true, status: 503 });
    if (down.ok) expect(JSON.parse(down.body)).toMatchObject({ localEndpoints: 0 });
  });

  it("follow endpoint changes and close with the service", async () => {
    // The local endpoint of "local" moves away: 503.
    await apply(
      {},
      {
        local: slice({
          ns: "default",
          service: "local",
          ports: tcp(),
          endpoints: endpoints(["pod-b", "pod-c"], () => "node-2"),
        }),
      },
    );
    expect(await httpFrom(client, NODE_IP, hcPortLocal)).toMatchObject({ ok: true, status: 503 });
    // And traffic to its node port is now dropped as well.
    expect(await tcpFrom(client, NODE_IP, 30091, 1_500)).toBe("error:ETIMEDOUT");

    await apply({ remote: undefined }, { remote: undefined });
    expect(await httpFrom(client, NODE_IP, hcPortRemote)).toEqual({ ok: false, error: "ECONNREFUSED" });
    expect(proxier.serviceHealth?.status().map((s) => s.name)).toEqual(["local"]);
  });
});

describe("IPv6 through ip6tables", () => {
  it("spreads connections to an IPv6 cluster IP over the endpoints, masqueraded to the node", async () => {
    const replies = new Set<string>();
    for (let i = 0; i < 24; i++) replies.add(podAndPeer(await tcpFrom(client, "fd00:30::10", 80)));
    expect(replies).toEqual(new Set(PODS.map((p) => `${p.name} ${BRIDGE_IP6}`)));
  });

  it("serves each family of a dual-stack service from that family's endpoints", async () => {
    expect(podAndPeer(await tcpFrom(client, "172.30.0.33", 80))).toBe(`pod-a ${BRIDGE_IP}`);
    expect(podAndPeer(await tcpFrom(client, "fd00:30::33", 80))).toBe(`pod-b ${BRIDGE_IP6}`);
    const nat6 = (await node.exec("ip6tables-save", ["-t", "nat"])).stdout;
    expect(nat6).toContain("--to-destination [fd00:244::12]:8080");
    expect(nat6).not.toContain("10.244.0.");
  });
});

describe("UDP conntrack cleanup", () => {
  it("moves a UDP client to the new endpoint when its endpoint is replaced (and only the deletion does)", async () => {
    const tested = "172.30.0.20";
    const control = "172.30.0.21";
    // The control service's conntrack deletions are not run.
    suppressConntrackFor.add(control);
    await apply(
      {
        udp: svc({ ns: "default", name: "udp", clusterIP: tested, ports: udp }),
        udpctl: svc({ ns: "default", name: "udpctl", clusterIP: control, ports: udp }),
      },
      {
        udp: slice({ ns: "default", service: "udp", ports: udp, endpoints: endpoints(["pod-a"]) }),
        udpctl: slice({ ns: "default", service: "udpctl", ports: udp, endpoints: endpoints(["pod-a"]) }),
      },
    );
    const a = startUdpClient(client, tested, 53, 40_000);
    const b = startUdpClient(client, control, 53, 40_001);
    try {
      await until("replies from pod-a", () => a.replies.length >= 3 && b.replies.length >= 3);
      expect(new Set(a.replies.map((r) => r.from))).toEqual(new Set(["pod-a"]));
      expect(new Set(b.replies.map((r) => r.from))).toEqual(new Set(["pod-a"]));
      // One long-lived entry per client, DNATed to pod-a.
      expect(await conntrackTargets(tested)).toEqual(["10.244.0.11"]);
      expect(await conntrackTargets(control)).toEqual(["10.244.0.11"]);

      conntrackCalls.length = 0;
      const next = await apply(
        {},
        {
          udp: slice({ ns: "default", service: "udp", ports: udp, endpoints: endpoints(["pod-b"]) }),
          udpctl: slice({ ns: "default", service: "udpctl", ports: udp, endpoints: endpoints(["pod-b"]) }),
        },
      );
      const syncedAt = Date.now();
      expect(next.changes.staleConntrack).toEqual(
        expect.arrayContaining([
          { serviceIP: tested, port: 53, protocol: "UDP", endpoint: "10.244.0.11:5353" },
          { serviceIP: control, port: 53, protocol: "UDP", endpoint: "10.244.0.11:5353" },
        ]),
      );
      expect(conntrackCalls).toContainEqual({
        args: ["-D", "-p", "udp", "--orig-dst", tested, "--dport", "53", "--dst-nat", "10.244.0.11"],
        code: 0,
      });

      await until("the tested client to reach pod-b", () =>
        a.replies.some((r) => r.at > syncedAt && r.from === "pod-b"),
      );
      await sleep(1_500);
      const aAfter = a.replies.filter((r) => r.at > syncedAt + 300).map((r) => r.from);
      const bAfter = b.replies.filter((r) => r.at > syncedAt).map((r) => r.from);
      // The tested client moved to the new endpoint and stays there ...
      expect(aAfter.length).toBeGreaterThan(5);
      expect(new Set(aAfter)).toEqual(new Set(["pod-b"]));
      // ... while the control client, whose entry was not deleted, still talks to pod-a.
      expect(bAfter.length).toBeGreaterThan(5);
      expect(new Set(bAfter)).toEqual(new Set(["pod-a"]));
      expect(await conntrackTargets(tested)).toEqual(["10.244.0.12"]);
      expect(await conntrackTargets(control)).toEqual(["10.244.0.11"]);
    } finally {
      a.stop();
      b.stop();
      suppressConntrackFor.clear();
    }
  });
});

describe("cleanup", () => {
  it("leaves both families' tables as they were", async () => {
    await proxier.cleanup();
    const after = await saveAll();
    expect(after.v4).toBe(baselineV4);
    expect(after.v6).toBe(baselineV6);
  });
});
