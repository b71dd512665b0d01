/**
 * Traffic through the eBPF socket load balancer on the real kernel. The programs are attached
 * to a cgroup made by the test (`<cgroup2 root>/wnebp-sys`, never the root cgroup) and pinned
 * under `/sys/fs/bpf/wnebp-sys` (never the default pin path). The test worker moves itself into
 * that cgroup, so every client the proxy lab spawns (`ip netns exec …`) is born in it and has
 * its sockets balanced, whatever network namespace it runs in:
 *
 *   wnebp-cli  (192.168.170.2, fd00:170::2) ──veth── wnebp-node (192.168.170.1, fd00:170::1)
 *   wnebp-cli2 (192.168.180.2)              ──veth── wnebp-node (192.168.180.1)
 *   wnebp-node: bridge wnebpbr0 10.247.0.1/24, fd00:247::1/64 ──veth── wnebp-pa (.11), wnebp-pb (.12),
 *                                                                      wnebp-pc (.13), wnebp-pd (.14)
 *
 * Each pod answers TCP on 8080 with `<name> <peer ip>:<peer port>` and UDP on 5353 with its
 * name. Cluster IPs (172.30.170.0/24, fd00:30:170::/64) exist only in the BPF maps: no route,
 * no address and no rule anywhere knows them.
 */

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createCommandRunner, type EndpointSlice, ProxySyncError, type Service } from "@worknode/core";
import {
  createTestCgroup,
  createTrafficLab,
  DNS_PORTS,
  type EpSpec,
  emptyChangeSet,
  type LabAnswer,
  type LabNetns,
  LiveServiceObjects,
  namePeer,
  type ProxyLab,
  RecordingCommandRunner,
  slice,
  svc,
  type TestCgroup,
  type TrafficLabPlan,
  httpPorts as tcp,
  trafficLabAddresses,
} from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bpftool, readBackends, readFrontends } from "../src/bpf-tool.js";
import { EbpfProxier, type EbpfProxierOptions, frontendId, PROGRAMS } from "../src/index.js";
import {
  BACKENDS_MAP,
  encodeBackendKey,
  encodeBackendValue,
  SERVICES_MAP,
  toHexWords,
} from "../src/maps/layout.js";

const PLAN: TrafficLabPlan = {
  prefix: "wnebp",
  clientNet: "192.168.170",
  clientNet6: "fd00:170",
  client2Net: "192.168.180",
  podNet: "10.247.0",
  podNet6: "fd00:247",
  pods: ["pa", "pb", "pc", "pd"],
};
type PodName = "pa" | "pb" | "pc" | "pd";
const {
  nodeIP: NODE_IP,
  bridgeIP: BRIDGE_IP,
  bridgeIP6: BRIDGE_IP6,
  nodeIPs: NODE_IPS,
  podIP,
  podIP6,
} = trafficLabAddresses(PLAN);
const PIN_PATH = "/sys/fs/bpf/wnebp-sys";
const LB_IP = "203.0.113.170";
const LB_LOCAL_IP = "203.0.113.171";
const EXTERNAL_IP = "198.51.100.170";
const NODE_PORT = 30170;
const NODE_PORT_LOCAL = 30171;

const CIP = {
  web: "172.30.170.10",
  sticky: "172.30.170.11",
  empty: "172.30.170.12",
  lb: "172.30.170.14",
  lbLocal: "172.30.170.15",
  itpLocal: "172.30.170.16",
  hair: "172.30.170.17",
  gone: "172.30.170.18",
  udp: "172.30.170.20",
  udpTerm: "172.30.170.21",
  udpKeep: "172.30.170.22",
  v6: "fd00:30:170::10",
  udpTerm6: "fd00:30:170::21",
} as const;

let lab: ProxyLab;
let node: LabNetns;
let cgroup: TestCgroup;
let objects: LiveServiceObjects;
let runner: RecordingCommandRunner;
let proxier: EbpfProxier;

function proxierOptions(): EbpfProxierOptions {
  return {
    nodeName: "node-1",
    nodeIPs: NODE_IPS,
    clusterCIDRs: ["10.247.0.0/24", "fd00:247::/64"],
    families: ["IPv4", "IPv6"],
    cgroupPath: cgroup.path,
    pinPath: PIN_PATH,
    runner,
  };
}

function endpoints(
  names: readonly PodName[],
  opts: { node?: (n: PodName) => string; ready?: (n: PodName) => boolean; v6?: boolean } = {},
): EpSpec[] {
  return names.map((n) => ({
    ip: opts.v6 ? podIP6(n) : podIP(n),
    node: opts.node?.(n) ?? "node-1",
    ready: opts.ready?.(n) ?? true,
  }));
}

const onNode2 = (n: PodName) => (n === "pc" ? "node-2" : "node-1");

async function tcpFrom(from: LabNetns, host: string, port: number, count = 1, timeoutMs = 3_000) {
  return lab.tcp(from, host, port, { count, timeoutMs });
}
const names = (as: readonly LabAnswer[]) => as.map((a) => (a.ok ? a.name : `error:${a.error}`));
const one = async (from: LabNetns, host: string, port: number, timeoutMs = 3_000) =>
  namePeer((await tcpFrom(from, host, port, 1, timeoutMs))[0]!);

/** One unconnected UDP `sendto` + `recvfrom`: the reply and the address `recvfrom` reports. */
const UDP_RECVFROM = `
import json, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(b"ping", (host, port))
data, addr = s.recvfrom(512)
print(json.dumps({"name": data.decode().strip(), "from": addr[0], "port": addr[1]}))
`;
async function udpRecvfrom(from: LabNetns, host: string, port: number) {
  const r = await from.exec("python3", ["-c", UDP_RECVFROM, host, String(port)], { timeoutMs: 10_000 });
  return JSON.parse(r.stdout.trim()) as { name: string; from: string; port: number };
}

async function bpftoolJson<T>(args: readonly string[]): Promise<T> {
  const out = await createCommandRunner().exec("bpftool", ["-j", ...args]);
  if (out.code !== 0) throw new Error(`bpftool ${args.join(" ")}: ${out.stderr}`);
  return (out.stdout.trim() === "" ? [] : JSON.parse(out.stdout)) as T;
}

/**
 * A long-lived python3 client in a namespace holding connected UDP sockets, one per target
 * (`4`: AF_INET, `6`: AF_INET6, also for a v4-mapped address), driven line by line on stdin:
 * `ask <socket>` sends a datagram and reads the answer (or the errors of send and recv),
 * `peer <socket>` is getpeername(), `connect <socket>` connects the socket to its target again.
 */
const UDP_CONNECTED_CLIENT = `
import errno, json, socket, sys
targets = json.loads(sys.argv[1])
socks = {}
def err(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
def connect(name):
    fam, host, port = targets[name]
    if name not in socks:
        socks[name] = socket.socket(socket.AF_INET6 if fam == 6 else socket.AF_INET, socket.SOCK_DGRAM)
    socks[name].connect((host, port))
for name in targets:
    connect(name)
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    op, name = line.split()
    s = socks[name]
    res = {}
    if op == "connect":
        try:
            connect(name)
            res["connect"] = "ok"
        except OSError as e:
            res["connect"] = err(e)
    elif op == "peer":
        try:
            res["peer"] = s.getpeername()[0]
        except OSError as e:
            res["peer"] = err(e)
    else:
        try:
            s.send(b"ping")
            res["send"] = "ok"
        except OSError as e:
            res["send"] = err(e)
        s.settimeout(2 if res["send"] == "ok" else 0.5)
        try:
            res["recv"] = s.recv(512).decode().strip()
        except OSError as e:
            res["recv"] = err(e)
    print(json.dumps(res), flush=True)
`;

interface ConnectedUdpClient {
  /** Sends one command line and returns the client's JSON answer. */
  run(op: "ask" | "peer" | "connect", socket: string): Promise<Record<string, string>>;
  stop(): void;
}

/** Starts {@link UDP_CONNECTED_CLIENT} in netns `netns` (a child of the test, so in the test cgroup). */
async function connectedUdpClient(
  netns: string,
  targets: Record<string, [4 | 6, string, number]>,
): Promise<ConnectedUdpClient> {
  const child = spawn(
    "ip",
    ["netns", "exec", netns, "python3", "-c", UDP_CONNECTED_CLIENT, JSON.stringify(targets)],
    {
      stdio: ["pipe", "pipe", "pipe"],
    },
  );
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<Record<string, string>> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`UDP client: no answer (stderr: ${stderr})`)), 10_000);
    });
    try {
      const line = await Promise.race([lines.next(), timeout]);
      if (line.done) throw new Error(`UDP client exited (stderr: ${stderr})`);
      return JSON.parse(line.value) as Record<string, string>;
    } finally {
      clearTimeout(timer);
    }
  };
  try {
    expect(await next()).toEqual({ ready: true });
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  }
  return {
    async run(op, socket) {
      child.stdin.write(`${op} ${socket}\n`);
      return next();
    },
    stop() {
      child.stdin.end();
      child.kill("SIGKILL");
    },
  };
}

/** The pinned `iter/udp` links of worknode's socket termination (any pin path). */
async function destroyIteratorLinks(): Promise<{ id: number; prog_id: number }[]> {
  const links = await bpftoolJson<{ id: number; type: string; prog_id: number }[]>(["link", "show"]);
  const out: { id: number; prog_id: number }[] = [];
  for (const l of links.filter((l) => l.type === "iter")) {
    const prog = await bpftoolJson<{ name?: string }>(["prog", "show", "id", String(l.prog_id)]).catch(
      () => ({ name: undefined }),
    );
    // The kernel keeps 15 characters of wn_iter_udp_destroy; bpftool shows the full name from BTF.
    if (prog.name?.startsWith("wn_iter_udp_des")) out.push({ id: l.id, prog_id: l.prog_id });
  }
  return out;
}

/** The programs attached to the test cgroup itself. */
const attached = () =>
  bpftoolJson<{ id: number; attach_type: string; name: string }[]>(["cgroup", "show", cgroup.path]);
const worknodePrograms = async () =>
  (await attached()).filter((p) => PROGRAMS.some((q) => q.name === p.name));

const fullSync = () =>
  proxier.sync({ snapshot: objects.tracker.snapshot(), changes: emptyChangeSet(), full: true });

/** Applies the object changes to the tracker, commits and syncs (partial). */
const apply: LiveServiceObjects["apply"] = (svcs, slcs) => objects.apply(svcs, slcs, proxier);

beforeAll(async () => {
  cgroup = await createTestCgroup("wnebp-sys");
  runner = new RecordingCommandRunner(createCommandRunner());
  // Leftovers of a crashed run under the same pin path.
  await new EbpfProxier(proxierOptions()).cleanup();
  await cgroup.enter();
  expect(await cgroup.pids()).toContain(process.pid);
  lab = (await createTrafficLab(PLAN)).lab;
  node = lab.node;

  const services: Record<string, Service> = {};
  const slices: Record<string, EndpointSlice> = {};
  const add = (name: string, s: Service, sl?: EndpointSlice) => {
    services[name] = s;
    if (sl) slices[name] = sl;
  };
  const ns = "default";
  add(
    "web",
    svc({ ns, name: "web", clusterIP: CIP.web, ports: tcp() }),
    slice({
      ns,
      service: "web",
      ports: tcp(),
      endpoints: endpoints(["pa", "pb", "pc", "pd"], { ready: (n) => n !== "pd" }),
    }),
  );
  add(
    "sticky",
    svc({ ns, name: "sticky", clusterIP: CIP.sticky, ports: tcp(), affinity: 600 }),
    slice({ ns, service: "sticky", ports: tcp(), endpoints: endpoints(["pa", "pb", "pc"]) }),
  );
  add("empty", svc({ ns, name: "empty", clusterIP: CIP.empty, ports: tcp() }));
  add(
    "lb",
    svc({
      ns,
      name: "lb",
      type: "LoadBalancer",
      clusterIP: CIP.lb,
      ports: tcp(NODE_PORT),
      lbIPs: [LB_IP],
      externalIPs: [EXTERNAL_IP],
    }),
    slice({ ns, service: "lb", ports: tcp(), endpoints: endpoints(["pa"]) }),
  );
  // externalTrafficPolicy Local with its only endpoint on another node.
  add(
    "lblocal",
    svc({
      ns,
      name: "lblocal",
      type: "LoadBalancer",
      clusterIP: CIP.lbLocal,
      ports: tcp(NODE_PORT_LOCAL),
      lbIPs: [LB_LOCAL_IP],
      etp: "Local",
      healthCheckNodePort: 32170,
    }),
    slice({ ns, service: "lblocal", ports: tcp(), endpoints: endpoints(["pc"], { node: onNode2 }) }),
  );
  // internalTrafficPolicy Local: pb is on this node, pc on another one.
  add(
    "itplocal",
    svc({ ns, name: "itplocal", clusterIP: CIP.itpLocal, ports: tcp(), itp: "Local" }),
    slice({ ns, service: "itplocal", ports: tcp(), endpoints: endpoints(["pb", "pc"], { node: onNode2 }) }),
  );
  add(
    "hair",
    svc({ ns, name: "hair", clusterIP: CIP.hair, ports: tcp() }),
    slice({ ns, service: "hair", ports: tcp(), endpoints: endpoints(["pa"]) }),
  );
  add(
    "gone",
    svc({ ns, name: "gone", clusterIP: CIP.gone, ports: tcp() }),
    slice({ ns, service: "gone", ports: tcp(), endpoints: endpoints(["pd"]) }),
  );
  add(
    "udp",
    svc({ ns, name: "udp", clusterIP: CIP.udp, ports: DNS_PORTS }),
    slice({ ns, service: "udp", ports: DNS_PORTS, endpoints: endpoints(["pa", "pb"]) }),
  );
  // Socket termination: udpterm (dual-stack) loses pc to pd; udpkeep (pb) never changes.
  add(
    "udpterm",
    svc({ ns, name: "udpterm", clusterIP: [CIP.udpTerm, CIP.udpTerm6], ports: DNS_PORTS }),
    slice({ ns, service: "udpterm", ports: DNS_PORTS, endpoints: endpoints(["pc"]) }),
  );
  slices.udpterm6 = slice({
    ns,
    service: "udpterm",
    name: "udpterm-v6",
    ports: DNS_PORTS,
    ipv6: true,
    endpoints: endpoints(["pc"], { v6: true }),
  });
  add(
    "udpkeep",
    svc({ ns, name: "udpkeep", clusterIP: CIP.udpKeep, ports: DNS_PORTS }),
    slice({ ns, service: "udpkeep", ports: DNS_PORTS, endpoints: endpoints(["pb"]) }),
  );
  const v6Ports = [...tcp(), ...DNS_PORTS];
  add(
    "v6",
    svc({ ns, name: "v6", clusterIP: CIP.v6, ports: v6Ports }),
    slice({
      ns,
      service: "v6",
      ports: v6Ports,
      ipv6: true,
      endpoints: endpoints(["pa", "pb", "pc"], { v6: true }),
    }),
  );

  objects = new LiveServiceObjects(services, slices, "node-1");
  proxier = new EbpfProxier(proxierOptions());
  await proxier.sync({ ...objects.initial, full: true });
}, 180_000);

afterAll(async () => {
  const errors: unknown[] = [];
  const attempt = async (f: () => Promise<unknown> | undefined) => {
    try {
      await f();
    } catch (e) {
      errors.push(e);
    }
  };
  await attempt(() => proxier?.cleanup());
  await attempt(() => proxier?.close());
  await attempt(() => lab?.destroy());
  await attempt(() => cgroup?.leave());
  await attempt(() => cgroup?.remove());
  if (errors.length > 0) throw errors[0];
});

describe("cluster IPs", () => {
  it("spread the node's connections over all ready endpoints, without SNAT", async () => {
    const answers = await tcpFrom(node, CIP.web, 80, 40);
    expect(new Set(names(answers))).toEqual(new Set(["pa", "pb", "pc"]));
    // The socket connects straight to the pod: the pod sees the node's own bridge address.
    expect(new Set(answers.map(namePeer))).toEqual(
      new Set(["pa", "pb", "pc"].map((n) => `${n} ${BRIDGE_IP}`)),
    );
  });

  it("serve pods, including a pod reaching itself through its service (hairpin)", async () => {
    const fromPod = await tcpFrom(lab.pod("pd"), CIP.web, 80, 30);
    expect(new Set(fromPod.map(namePeer))).toEqual(
      new Set(["pa", "pb", "pc"].map((n) => `${n} ${podIP("pd")}`)),
    );
    const hairpin = await tcpFrom(lab.pod("pa"), CIP.hair, 80, 3);
    for (const a of hairpin) expect(namePeer(a)).toBe(`pa ${podIP("pa")}`);
    expect(await one(lab.pod("pb"), CIP.hair, 80)).toBe(`pa ${podIP("pb")}`);
  });

  it("a service without endpoints refuses at once (ECONNREFUSED, not a timeout)", async () => {
    const [r] = await tcpFrom(node, CIP.empty, 80, 1, 5_000);
    expect(r).toMatchObject({ ok: false, error: "ECONNREFUSED" });
    expect(r!.ms).toBeLessThan(1_000);
    const [p] = await tcpFrom(lab.pod("pa"), CIP.empty, 80, 1, 5_000);
    expect(p).toMatchObject({ ok: false, error: "ECONNREFUSED" });
  });

  it("UDP gets its answer, and recvfrom shows the service address as the reply's source", async () => {
    const connected = names(await lab.udp(node, CIP.udp, 53, { count: 20 }));
    expect(new Set(connected)).toEqual(new Set(["pa", "pb"]));
    for (let i = 0; i < 3; i++) {
      const r = await udpRecvfrom(node, CIP.udp, 53);
      expect(["pa", "pb"]).toContain(r.name);
      expect({ from: r.from, port: r.port }).toEqual({ from: CIP.udp, port: 53 });
    }
  });

  it("IPv6: TCP and UDP to an IPv6 cluster IP", async () => {
    const answers = await tcpFrom(node, CIP.v6, 80, 30);
    expect(new Set(answers.map(namePeer))).toEqual(
      new Set(["pa", "pb", "pc"].map((n) => `${n} ${BRIDGE_IP6}`)),
    );
    const udp = names(await lab.udp(node, CIP.v6, 53, { count: 20 }));
    expect(new Set(udp)).toEqual(new Set(["pa", "pb", "pc"]));
    const r = await udpRecvfrom(node, CIP.v6, 53);
    expect(["pa", "pb", "pc"]).toContain(r.name);
    expect({ from: r.from, port: r.port }).toEqual({ from: CIP.v6, port: 53 });
  });

  it("sessionAffinity ClientIP keeps 20 connections on one endpoint", async () => {
    const replies = names(await tcpFrom(node, CIP.sticky, 80, 20));
    expect(replies[0]).toMatch(/^p[abc]$/);
    expect(new Set(replies).size).toBe(1);
  });

  it("sessionAffinity lets go of an endpoint that left the service and sticks to a current one", async () => {
    const [first] = names(await tcpFrom(node, CIP.sticky, 80, 1));
    const rest = (["pa", "pb", "pc"] as const).filter((n) => n !== first);
    await apply(
      {},
      { sticky: slice({ ns: "default", service: "sticky", ports: tcp(), endpoints: endpoints(rest) }) },
    );
    const after = names(await tcpFrom(node, CIP.sticky, 80, 10));
    expect(after).not.toContain(first);
    expect(rest).toContain(after[0]);
    expect(new Set(after).size).toBe(1);
    // The endpoint back: the client stays where affinity put it.
    await apply(
      {},
      {
        sticky: slice({
          ns: "default",
          service: "sticky",
          ports: tcp(),
          endpoints: endpoints(["pa", "pb", "pc"]),
        }),
      },
    );
    expect(new Set(names(await tcpFrom(node, CIP.sticky, 80, 10)))).toEqual(new Set([after[0]]));
  });
});

describe("node ports, external and load-balancer IPs, traffic policies", () => {
  it("NodePort on the node's IP and 127.0.0.1, external IP and load-balancer IP reach the endpoint", async () => {
    expect(await one(node, NODE_IP, NODE_PORT)).toBe(`pa ${BRIDGE_IP}`);
    expect(await one(node, "127.0.0.1", NODE_PORT)).toBe(`pa ${BRIDGE_IP}`);
    expect(await one(node, EXTERNAL_IP, 80)).toBe(`pa ${BRIDGE_IP}`);
    expect(await one(node, LB_IP, 80)).toBe(`pa ${BRIDGE_IP}`);
    // externalTrafficPolicy Local short-circuits node-originated traffic to the cluster endpoints.
    expect(await one(node, NODE_IP, NODE_PORT_LOCAL)).toBe(`pc ${BRIDGE_IP}`);
    expect(await one(node, "127.0.0.1", NODE_PORT_LOCAL)).toBe(`pc ${BRIDGE_IP}`);
    expect(await one(node, LB_LOCAL_IP, 80)).toBe(`pc ${BRIDGE_IP}`);
  });

  it("internalTrafficPolicy Local uses only this node's endpoints", async () => {
    expect(new Set(names(await tcpFrom(node, CIP.itpLocal, 80, 20)))).toEqual(new Set(["pb"]));
  });
});

describe("syncs", () => {
  it("a partial sync after one endpoint change writes only that service's entries, and traffic follows", async () => {
    runner.inputs.length = 0;
    const next = await apply(
      {},
      { web: slice({ ns: "default", service: "web", ports: tcp(), endpoints: endpoints(["pb", "pc"]) }) },
    );
    expect([...next.changes.changedServicePorts]).toEqual(["default/web:http/TCP"]);
    const applied = proxier.lastApplied()!;
    expect(applied.full).toBe(false);
    // What ran is what the proxier reports, one line per operation.
    expect(runner.inputsOf("bpftool")).toEqual([applied.script]);
    expect(applied.script.trimEnd().split("\n")).toHaveLength(applied.ops.length);
    const frontendOps = applied.ops.filter((o) => o.op === "putFrontend" || o.op === "deleteFrontend");
    expect(frontendOps).toHaveLength(1);
    expect(frontendOps[0]).toMatchObject({
      op: "putFrontend",
      frontend: { ip: CIP.web, port: 80 },
      value: { count: 2 },
    });
    const newId = frontendOps[0]!.op === "putFrontend" ? frontendOps[0]!.value.id : -1;
    const puts = applied.ops.filter((o) => o.op === "putBackend");
    expect(puts.map((o) => (o.op === "putBackend" ? `${o.id}/${o.slot} ${o.backend.ip}` : ""))).toEqual([
      `${newId}/0 ${podIP("pb")}`,
      `${newId}/1 ${podIP("pc")}`,
    ]);
    // The old group's three slots go, and nothing else.
    const deletes = applied.ops.filter((o) => o.op === "deleteBackend");
    expect(deletes).toHaveLength(3);
    for (const d of deletes) expect(d.op === "deleteBackend" && d.id !== newId).toBe(true);
    for (const other of Object.values(CIP).filter((ip) => ip !== CIP.web))
      expect(applied.script).not.toContain(frontendId({ ip: other, port: 80, protocol: "TCP" }));

    expect(new Set(names(await tcpFrom(node, CIP.web, 80, 30)))).toEqual(new Set(["pb", "pc"]));
    expect(await one(node, NODE_IP, NODE_PORT)).toBe(`pa ${BRIDGE_IP}`);
  });

  it("a restarted proxier reuses the pinned maps, drops services gone from its snapshot and replaces the programs", async () => {
    expect(await one(node, CIP.gone, 80)).toBe(`pd ${BRIDGE_IP}`);
    const servicesMap = join(proxier.mapsPath, SERVICES_MAP);
    const mapIdBefore = (await bpftoolJson<{ id: number }>(["map", "show", "pinned", servicesMap])).id;
    const oldPrograms = await worknodePrograms();
    expect(oldPrograms).toHaveLength(8);
    // `gone` is deleted while no proxier runs.
    await objects.apply({ gone: undefined }, { gone: undefined });

    const restarted = new EbpfProxier(proxierOptions());
    // Connections keep working while the new proxier takes over.
    const during = tcpFrom(node, CIP.web, 80, 40);
    await restarted.sync({ snapshot: objects.tracker.snapshot(), changes: emptyChangeSet(), full: true });
    expect(names(await during).filter((n) => n.startsWith("error"))).toEqual([]);
    await proxier.close();
    proxier = restarted;

    expect((await bpftoolJson<{ id: number }>(["map", "show", "pinned", servicesMap])).id).toBe(mapIdBefore);
    const applied = proxier.lastApplied()!;
    expect(applied.full).toBe(true);
    // Everything else was already in the maps: only `gone` is removed.
    expect(applied.ops.filter((o) => o.op === "putFrontend" || o.op === "putBackend")).toEqual([]);
    expect(applied.ops.filter((o) => o.op === "deleteFrontend")).toEqual([
      { op: "deleteFrontend", frontend: { ip: CIP.gone, port: 80, protocol: "TCP" } },
    ]);
    expect(applied.ops.filter((o) => o.op === "deleteBackend")).toHaveLength(1);

    const programs = await attached();
    expect(programs).toHaveLength(8);
    expect(programs.map((p) => p.name).sort()).toEqual(PROGRAMS.map((p) => p.name).sort());
    expect(new Set(programs.map((p) => p.attach_type)).size).toBe(8);
    const oldIds = new Set(oldPrograms.map((p) => p.id));
    for (const p of programs) expect(oldIds.has(p.id)).toBe(false);

    expect(new Set(names(await tcpFrom(node, CIP.web, 80, 20)))).toEqual(new Set(["pb", "pc"]));
    expect(await one(node, LB_IP, 80)).toBe(`pa ${BRIDGE_IP}`);
    expect((await tcpFrom(node, CIP.gone, 80, 1, 1_500))[0]!.ok).toBe(false);
  });

  it("a frontend deleted behind the proxier's back comes back with the next full sync", async () => {
    const key = frontendId({ ip: CIP.web, port: 80, protocol: "TCP" });
    const out = await createCommandRunner().exec("bpftool", [
      "map",
      "delete",
      "pinned",
      join(proxier.mapsPath, SERVICES_MAP),
      "key",
      "hex",
      ...key.split(" "),
    ]);
    expect(out.code).toBe(0);
    expect((await tcpFrom(node, CIP.web, 80, 1, 1_500))[0]!.ok).toBe(false);

    await fullSync();
    const frontendOps = proxier
      .lastApplied()!
      .ops.filter((o) => o.op === "putFrontend" || o.op === "deleteFrontend");
    expect(frontendOps).toMatchObject([
      { op: "putFrontend", frontend: { ip: CIP.web, port: 80 }, value: { count: 2 } },
    ]);
    expect(new Set(names(await tcpFrom(node, CIP.web, 80, 20)))).toEqual(new Set(["pb", "pc"]));
  });

  it("a batch that fails half-way throws ProxySyncError with its line, leaves no black hole, and the next full sync repairs everything", async () => {
    // Behind the proxier's back, delete the last slot of web's current backend group. The next
    // partial sync moves web to a new group (slots, then the frontend) and then fails on the
    // deletion of that very slot: a real failure in the middle of a real batch.
    const maps = proxier.mapsPath;
    const web = (await readFrontends(createCommandRunner(), join(maps, SERVICES_MAP))).find(
      (f) => f.frontend.ip === CIP.web && f.frontend.port === 80,
    )!;
    const slotKey = toHexWords(encodeBackendKey(web.value.id, web.value.count - 1));
    await bpftool(createCommandRunner(), [
      "map",
      "delete",
      "pinned",
      join(maps, BACKENDS_MAP),
      "key",
      "hex",
      ...slotKey.split(" "),
    ]);

    const error = await apply(
      {},
      {
        web: slice({ ns: "default", service: "web", ports: tcp(), endpoints: endpoints(["pa", "pb", "pc"]) }),
      },
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ProxySyncError);
    const failingLine = `map delete pinned ${join(maps, BACKENDS_MAP)} key hex ${slotKey}`;
    expect((error as ProxySyncError).failingLine).toBe(failingLine);
    const script = proxier.lastApplied()!.script.trimEnd().split("\n");
    expect((error as ProxySyncError).message).toContain(`at line ${script.indexOf(failingLine) + 1}`);
    // The lines before it went through: web already uses its new group. Nothing went dark.
    expect(new Set(names(await tcpFrom(node, CIP.web, 80, 30)))).toEqual(new Set(["pa", "pb", "pc"]));
    expect(names(await tcpFrom(node, CIP.sticky, 80, 5)).filter((n) => !/^p[abc]$/.test(n))).toEqual([]);
    expect(await one(node, NODE_IP, NODE_PORT)).toBe(`pa ${BRIDGE_IP}`);
    expect(await one(node, CIP.hair, 80)).toBe(`pa ${BRIDGE_IP}`);

    await fullSync();
    expect(proxier.lastApplied()!.full).toBe(true);
    // The maps now hold exactly the snapshot: no orphan slot of the old group is left.
    expect((await proxier.diff({ snapshot: objects.tracker.snapshot() })).ops).toEqual([]);
    const slots = await readBackends(createCommandRunner(), join(maps, BACKENDS_MAP));
    expect(slots.filter((b) => b.id === web.value.id)).toEqual([]);
    expect(new Set(names(await tcpFrom(node, CIP.web, 80, 30)))).toEqual(new Set(["pa", "pb", "pc"]));
  });
});

describe("socket termination", () => {
  it("a connected UDP socket to a removed endpoint is destroyed in its pod's namespace, and reconnects to the new one; other sockets stay", async () => {
    const metric = async (name: string) =>
      (await proxier.metrics.getSingleMetric(name)?.get())?.values[0]?.value ?? 0;
    const destroyedBefore = await metric("worknode_proxy_ebpf_sockets_destroyed_total");
    const failuresBefore = await metric("worknode_proxy_ebpf_socket_destroy_failures_total");
    // One iterator is pinned (the restarted proxier replaced the first one's).
    expect(await destroyIteratorLinks()).toHaveLength(1);

    const client = await connectedUdpClient(lab.pod("pa").name, {
      v4: [4, CIP.udpTerm, 53],
      mapped: [6, `::ffff:${CIP.udpTerm}`, 53],
      v6: [6, CIP.udpTerm6, 53],
      keep: [4, CIP.udpKeep, 53],
    });
    try {
      const ok = (name: string) => ({ send: "ok", recv: name });
      for (const s of ["v4", "mapped", "v6"]) expect(await client.run("ask", s), s).toEqual(ok("pc"));
      expect(await client.run("ask", "keep")).toEqual(ok("pb"));
      expect(await client.run("peer", "v4")).toEqual({ peer: CIP.udpTerm });

      // pc leaves udpterm (both families), pd takes its place.
      runner.inputs.length = 0;
      const next = await apply(
        {},
        {
          udpterm: slice({
            ns: "default",
            service: "udpterm",
            ports: DNS_PORTS,
            endpoints: endpoints(["pd"]),
          }),
          udpterm6: slice({
            ns: "default",
            service: "udpterm",
            name: "udpterm-v6",
            ports: DNS_PORTS,
            ipv6: true,
            endpoints: endpoints(["pd"], { v6: true }),
          }),
        },
      );
      expect(next.changes.staleConntrack.map((e) => e.endpoint)).toEqual(
        expect.arrayContaining([`${podIP("pc")}:5353`, `[${podIP6("pc")}]:5353`]),
      );
      // The sync wrote the map, then the gone backends, then removed them again.
      const batches = runner.inputsOf("bpftool");
      expect(batches).toHaveLength(3);
      const gonePin = "/wn_gone_backends";
      const keys = [
        { ip: podIP("pc"), port: 5353 },
        { ip: podIP6("pc"), port: 5353 },
      ].map((b) => toHexWords(encodeBackendValue(b)));
      const lines = (batch: string) => batch.trimEnd().split("\n").sort();
      expect(lines(batches[1]!)).toEqual(
        keys.map((k) =>
          expect.stringMatching(new RegExp(`^map update pinned \\S+${gonePin} key hex ${k} value hex 01$`)),
        ),
      );
      expect(lines(batches[2]!)).toEqual(
        keys.map((k) => expect.stringMatching(new RegExp(`^map delete pinned \\S+${gonePin} key hex ${k}$`))),
      );
      expect(await metric("worknode_proxy_ebpf_sockets_destroyed_total")).toBe(destroyedBefore + 3);
      expect(await metric("worknode_proxy_ebpf_socket_destroy_failures_total")).toBe(failuresBefore);

      // The destroyed sockets are disconnected; the kernel reports the abort once, to recv.
      for (const s of ["v4", "mapped", "v6"]) {
        expect(await client.run("peer", s), s).toEqual({ peer: "ENOTCONN" });
        expect(await client.run("ask", s), s).toEqual({ send: "EDESTADDRREQ", recv: "ECONNABORTED" });
      }
      // The other service's socket was left alone.
      expect(await client.run("peer", "keep")).toEqual({ peer: CIP.udpKeep });
      expect(await client.run("ask", "keep")).toEqual(ok("pb"));

      // Connecting again picks the service's current endpoint.
      for (const s of ["v4", "mapped", "v6"]) {
        expect(await client.run("connect", s), s).toEqual({ connect: "ok" });
        expect(await client.run("ask", s), s).toEqual(ok("pd"));
      }
      expect(await client.run("peer", "v4")).toEqual({ peer: CIP.udpTerm });

      // A sync without removed UDP endpoints destroys nothing and runs no iterator.
      runner.inputs.length = 0;
      await apply(
        {},
        {
          udpkeep: slice({
            ns: "default",
            service: "udpkeep",
            ports: DNS_PORTS,
            endpoints: endpoints(["pb", "pd"]),
          }),
        },
      );
      expect(runner.inputsOf("bpftool")).toHaveLength(1);
      expect(await client.run("ask", "keep")).toMatchObject({ send: "ok" });
      expect(await client.run("ask", "v4")).toEqual(ok("pd"));
    } finally {
      client.stop();
    }
  });
});

describe("cleanup", () => {
  it("cleanup() detaches every program, removes the pins, and the cluster IP is no longer balanced", async () => {
    expect(await worknodePrograms()).toHaveLength(8);
    expect(await destroyIteratorLinks()).toHaveLength(1);
    await proxier.cleanup();
    expect(await worknodePrograms()).toEqual([]);
    expect(existsSync(PIN_PATH)).toBe(false);
    // The socket-termination iterator went with its pin.
    expect(await destroyIteratorLinks()).toEqual([]);
    const [r] = await tcpFrom(node, CIP.web, 80, 1, 1_500);
    expect(r!.ok).toBe(false);
    await proxier.cleanup(); // idempotent
    expect(await worknodePrograms()).toEqual([]);
  });
});
