/**
 * A "proxy lab" for service-proxy backends (iptables, nftables, IPVS …): a node network
 * namespace the backend programs, client namespaces outside the node, and pod namespaces on a
 * bridge inside the node, each pod answering TCP with `<name> <peer ip>:<peer port>` (so a test
 * sees the source address the backend left) and UDP with its name.
 *
 *   client `<prefix>-<client>` ──veth── node `<prefix>-node` ── bridge `<prefix>br0` ──veth── pod `<prefix>-<pod>`
 *
 * Every name the lab creates starts with a caller-chosen prefix, so concurrent suites with
 * different prefixes never meet; leftovers of a crashed run with the same names are removed
 * first. Everything lives inside the lab's namespaces (nothing is added to the host's own
 * interfaces or tables), and {@link ProxyLab.destroy} removes it all.
 *
 * @module
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, type ServiceHealthListen, WorknodeError } from "@worknode/core";
import {
  type CommandResult,
  isProcessAlive,
  type RunCommandOptions,
  runCommand,
  terminateProcesses,
} from "./exec.js";
import { type Netns, netnsRunners } from "./netns.js";

/**
 * A network namespace of a {@link ProxyLab}: a {@link Netns} without `destroy` (the lab kills
 * what `spawn` started and removes the namespace when it is destroyed).
 */
export type LabNetns = Pick<Netns, "name" | "exec" | "spawn">;

/** A client namespace outside the node, on its own veth link to the node. */
export interface LabClientSpec {
  /** Short name (lowercase letters and digits, 1-8): the namespace is `<prefix>-<name>`. */
  readonly name: string;
  /** The client's addresses with prefix length (`192.168.150.2/24`, `fd00:150::2/64`). */
  readonly addresses: readonly string[];
  /**
   * The node's addresses on this link, with prefix length; the client's default route of each
   * family goes through the first node address of that family.
   */
  readonly nodeAddresses: readonly string[];
}

/** A pod namespace on the node's bridge. */
export interface LabPodSpec {
  /** Short name (lowercase letters and digits, 1-8): the namespace is `<prefix>-<name>`, the reply `<name>`. */
  readonly name: string;
  /** The pod's addresses with prefix length, in the bridge's subnets. */
  readonly addresses: readonly string[];
}

/** Options of {@link createProxyLab}. */
export interface ProxyLabOptions {
  /**
   * Prefix of every namespace and interface name (lowercase letter first, then letters and
   * digits, 2-6 characters), e.g. `wnft`: namespaces `wnft-node`, `wnft-<client>`, `wnft-<pod>`,
   * bridge `wnftbr0`.
   */
  readonly prefix: string;
  /** Client namespaces (at least one). */
  readonly clients: readonly LabClientSpec[];
  /** Addresses of the node's bridge with prefix length (the pods' gateways), e.g. `10.245.0.1/24`. */
  readonly bridgeAddresses: readonly string[];
  /** Pod namespaces on the bridge. */
  readonly pods: readonly LabPodSpec[];
  /**
   * Hairpin mode on the pods' bridge ports (default true), as the CNI bridge plugin's
   * `hairpinMode` sets it: with bridge netfilter on, a pod reaching itself through a service
   * is bridged back out of the port it came in on, which a bridge only does in hairpin mode.
   */
  readonly hairpin?: boolean;
  /** Port of every pod's TCP server; default 8080. */
  readonly tcpPort?: number;
  /** Port of every pod's UDP server; default 5353. */
  readonly udpPort?: number;
}

/** A client of a {@link ProxyLab}. */
export interface LabClient extends LabNetns {
  /** Short name from its spec. */
  readonly shortName: string;
  /** Its addresses (without prefix length). */
  readonly ips: readonly string[];
  /** The node's addresses on its link (without prefix length). */
  readonly nodeIPs: readonly string[];
}

/** A pod of a {@link ProxyLab}. */
export interface LabPod extends LabNetns {
  /** Short name from its spec; the servers answer with it. */
  readonly shortName: string;
  /** Its addresses (without prefix length). */
  readonly ips: readonly string[];
}

/** One attempt of {@link ProxyLab.tcp} / {@link ProxyLab.udp}: the reply or the error code, and how long it took. */
export type LabAnswer =
  | {
      readonly ok: true;
      /** The whole reply, trimmed. */
      readonly reply: string;
      /** First word of the reply: the pod's name. */
      readonly name: string;
      /** Address the server saw as the peer (TCP replies only; IPv4-mapped prefix removed). */
      readonly peer?: string;
      readonly ms: number;
    }
  | { readonly ok: false; readonly error: string; readonly ms: number };

/** Result of {@link ProxyLab.http}. */
export type LabHttpResult =
  | {
      readonly ok: true;
      readonly status: number;
      readonly headers: Readonly<Record<string, string>>;
      readonly body: string;
    }
  | { readonly ok: false; readonly error: string };

/** Options of {@link ProxyLab.tcp} and {@link ProxyLab.udp}. */
export interface LabConnectOptions {
  /** Attempts, one after the other (each a new connection / socket); default 1. */
  readonly count?: number;
  /** Give up on an attempt after this many ms (error `ETIMEDOUT`); default 2 000. */
  readonly timeoutMs?: number;
}

/** A UDP client of {@link ProxyLab.udpStream}. */
export interface LabUdpStream {
  /** Replies so far: arrival time (ms since the epoch) and the answering pod's name. */
  readonly replies: readonly { readonly at: number; readonly from: string }[];
  /** Stops the client. */
  stop(): Promise<void>;
}

/** The lab made by {@link createProxyLab}. */
export interface ProxyLab {
  /** The node namespace the backend under test programs. */
  readonly node: LabNetns;
  /** Name of the node's bridge. */
  readonly bridge: string;
  /** The bridge's addresses (without prefix length): what masqueraded traffic comes from. */
  readonly bridgeIPs: readonly string[];
  /** The clients, in spec order. */
  readonly clients: readonly LabClient[];
  /** The pods, in spec order. */
  readonly pods: readonly LabPod[];
  /** Port of the pods' TCP servers. */
  readonly tcpPort: number;
  /** Port of the pods' UDP servers. */
  readonly udpPort: number;
  /** A client by short name. @throws ConfigError when there is none */
  client(name: string): LabClient;
  /** A pod by short name. @throws ConfigError when there is none */
  pod(name: string): LabPod;
  /** The pod owning an address. @throws ConfigError when there is none */
  podByIP(ip: string): LabPod;
  /** TCP connections from a namespace to `host:port`: each reads until the server closes. */
  tcp(from: LabNetns, host: string, port: number, opts?: LabConnectOptions): Promise<LabAnswer[]>;
  /** UDP exchanges (one datagram, one answer; ICMP errors surface as `ECONNREFUSED`). */
  udp(from: LabNetns, host: string, port: number, opts?: LabConnectOptions): Promise<LabAnswer[]>;
  /** One HTTP GET `/` from a namespace. */
  http(from: LabNetns, host: string, port: number, timeoutMs?: number): Promise<LabHttpResult>;
  /**
   * A UDP client with a fixed source port sending a datagram every 100 ms, so its conntrack
   * entry stays alive (for conntrack-cleanup tests).
   */
  udpStream(from: LabNetns, host: string, port: number, sourcePort: number): LabUdpStream;
  /** A {@link ServiceHealthListen} opening health-check listeners inside the node namespace. */
  nodeHealthListen(): ServiceHealthListen;
  /** Kills every process the lab started and deletes its namespaces (with their links and tables). Idempotent. */
  destroy(): Promise<void>;
}

/** `<name> <peer ip>:<peer port>` of a reply, as `<name> <peer ip>` (the peer port dropped). */
export function namePeer(a: LabAnswer): string {
  if (!a.ok) return `error:${a.error}`;
  return a.peer === undefined ? a.name : `${a.name} ${a.peer}`;
}

/** The reply of an answer, or `error:<code>`. */
export function answerText(a: LabAnswer): string {
  return a.ok ? a.reply : `error:${a.error}`;
}

/**
 * The UDP conntrack entries to `serviceIP` in a namespace (`conntrack -L -p udp --orig-dst`):
 * the DNAT target (the reply's source address) of each, in the listing's order.
 *
 * @throws WorknodeError when `conntrack -L` fails
 */
export async function udpConntrackTargets(ns: Pick<LabNetns, "exec">, serviceIP: string): Promise<string[]> {
  const r = await ns.exec("conntrack", ["-L", "-p", "udp", "--orig-dst", serviceIP], { allowFailure: true });
  if (r.exitCode !== 0 && !/0 flow entries/.test(r.stderr))
    throw new WorknodeError("LAB", `conntrack -L failed: ${r.stderr}`);
  return r.stdout
    .split("\n")
    .filter((l) => l.includes(`dst=${serviceIP}`))
    .map((l) => /src=\S+ dst=\S+ sport=\d+ dport=\d+ .*?src=(\S+)/.exec(l)?.[1] ?? "?");
}

const PREFIX = /^[a-z][a-z0-9]{1,5}$/;
const SHORT = /^[a-z0-9]{1,8}$/;
const ADDRESS = /^[0-9a-fA-F.:]+\/\d{1,3}$/;

const bare = (a: string) => a.slice(0, a.indexOf("/"));
const isV6 = (a: string) => a.includes(":");

async function ip(args: readonly string[], opts?: RunCommandOptions): Promise<CommandResult> {
  return runCommand("ip", args, opts);
}

async function listNamespaces(): Promise<string[]> {
  const r = await ip(["netns", "list"]);
  return r.stdout
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((n) => n !== "");
}

async function deleteNamespace(name: string): Promise<void> {
  if (!(await listNamespaces()).includes(name)) return;
  const pids = (await ip(["netns", "pids", name], { allowFailure: true })).stdout
    .split("\n")
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
  if (pids.length > 0) await terminateProcesses(pids, 1_000);
  await ip(["netns", "del", name]);
}

async function addAddress(ns: string, ifName: string, address: string): Promise<void> {
  if (!ADDRESS.test(address)) throw new ConfigError(`not an address/prefix: ${address}`);
  await ip(["-n", ns, "addr", "add", address, "dev", ifName, ...(isV6(address) ? ["nodad"] : [])]);
}

/** A veth pair: `nodeIf` in namespace `node`, its peer `eth0` in namespace `ns`. */
async function addVeth(node: string, nodeIf: string, ns: string): Promise<void> {
  await ip(["-n", node, "link", "add", nodeIf, "type", "veth", "peer", "name", "eth0", "netns", ns]);
}

/** The pods' servers: TCP replies `<name> <peer>:<port>` and closes; UDP answers `<name>`. */
const POD_SERVER = `
const cfg = JSON.parse(process.argv[1]);
const peer = (a) => String(a).replace(/^::ffff:/, "");
let ready = 0;
const up = () => { if (++ready === 2) process.stdout.write("READY\\n"); };
const fail = (e) => { console.error(e.code || e.message); process.exit(1); };
const srv = require("node:net").createServer((s) => {
  s.on("error", () => {});
  s.end(cfg.name + " " + peer(s.remoteAddress) + ":" + s.remotePort + "\\n");
});
srv.on("error", fail);
srv.listen({ port: cfg.tcpPort, host: "::" }, up);
const u = require("node:dgram").createSocket({ type: "udp6" });
u.on("message", (m, r) => u.send(cfg.name, r.port, r.address));
u.on("error", fail);
u.bind(cfg.udpPort, "::", up);
`;

/** Sequential TCP / UDP attempts or one HTTP GET; prints one JSON line. */
const CLIENT = `
const cfg = JSON.parse(process.argv[1]);
const net = require("node:net");
const dgram = require("node:dgram");
function parse(text) {
  const reply = text.trim();
  const m = /^(\\S+)(?: (.*):(\\d+))?$/.exec(reply);
  const r = { ok: true, reply, name: m ? m[1] : reply };
  if (m && m[2] !== undefined) r.peer = m[2];
  return r;
}
function attempt() {
  return new Promise((resolve) => {
    const start = Date.now();
    let done = false;
    let close = () => {};
    const finish = (r) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      close();
      resolve({ ...r, ms: Date.now() - start });
    };
    const timer = setTimeout(() => finish({ ok: false, error: "ETIMEDOUT" }), cfg.timeoutMs);
    if (cfg.mode === "tcp") {
      const s = net.connect({ host: cfg.host, port: cfg.port });
      close = () => s.destroy();
      let data = "";
      s.on("data", (d) => { data += d; });
      s.on("end", () => finish(parse(data)));
      s.on("error", (e) => finish({ ok: false, error: e.code || e.message }));
    } else {
      const sock = dgram.createSocket(cfg.host.includes(":") ? "udp6" : "udp4");
      close = () => { try { sock.close(); } catch {} };
      sock.on("message", (m) => finish(parse(m.toString())));
      sock.on("error", (e) => finish({ ok: false, error: e.code || e.message }));
      sock.connect(cfg.port, cfg.host, () => sock.send("ping"));
    }
  });
}
async function main() {
  if (cfg.mode === "http") {
    const r = await new Promise((resolve) => {
      const req = require("node:http").get(
        { hostname: cfg.host, port: cfg.port, path: "/", agent: false, timeout: cfg.timeoutMs },
        (res) => {
          let body = "";
          res.on("data", (d) => { body += d; });
          res.on("end", () => resolve({ ok: true, status: res.statusCode, headers: res.headers, body }));
        },
      );
      req.on("timeout", () => { resolve({ ok: false, error: "ETIMEDOUT" }); req.destroy(); });
      req.on("error", (e) => resolve({ ok: false, error: e.code || e.message }));
    });
    return r;
  }
  const out = [];
  for (let i = 0; i < cfg.count; i++) out.push(await attempt());
  return out;
}
main().then((r) => { process.stdout.write(JSON.stringify(r) + "\\n"); process.exit(0); });
`;

const UDP_STREAM = `
const cfg = JSON.parse(process.argv[1]);
const sock = require("node:dgram").createSocket(cfg.host.includes(":") ? "udp6" : "udp4");
sock.on("message", (m) => process.stdout.write(Date.now() + " " + m.toString().trim() + "\\n"));
sock.on("error", (e) => { console.error(e.code || e.message); process.exit(1); });
sock.bind(cfg.sourcePort, () => {
  const tick = () => sock.send("ping", cfg.port, cfg.host, () => {});
  tick();
  setInterval(tick, 100);
});
`;

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

/** Waits for a line containing `READY` on the child's stdout; rejects when it exits first. */
function waitReady(child: ChildProcess, what: string, timeoutMs = 10_000): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(
      () => reject(new WorknodeError("LAB", `${what}: no READY within ${timeoutMs} ms`)),
      timeoutMs,
    );
    child.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("READY")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(new WorknodeError("LAB", `${what}: ${e.message}`, { cause: e }));
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new WorknodeError("LAB", `${what} exited with ${code}: ${err.trim()}`));
    });
  });
}

type ClientRun = (from: LabNetns, cfg: Record<string, unknown>, timeoutMs: number) => Promise<unknown>;

/**
 * Waits until every pod answers on each of its addresses from the node, and from each client
 * on the pod addresses of the client's families (neighbour discovery done, routes in place).
 */
async function settle(
  node: LabNetns,
  clients: readonly LabClient[],
  pods: readonly LabPod[],
  tcpPort: number,
  run: ClientRun,
): Promise<void> {
  const groups: { from: LabNetns; hosts: string[] }[] = [{ from: node, hosts: pods.flatMap((p) => p.ips) }];
  for (const c of clients) {
    const hosts = pods.flatMap((p) => p.ips).filter((h) => c.ips.some((a) => isV6(a) === isV6(h)));
    groups.push({ from: c, hosts });
  }
  await Promise.all(
    groups.map(async ({ from, hosts }) => {
      for (const host of hosts) {
        const deadline = Date.now() + 15_000;
        for (;;) {
          const cfg = { mode: "tcp", host, port: tcpPort, count: 1, timeoutMs: 1_000 };
          const [a] = (await run(from, cfg, 1_000)) as LabAnswer[];
          if (a?.ok) break;
          if (Date.now() > deadline)
            throw new WorknodeError(
              "LAB",
              `${from.name} cannot reach ${host}:${tcpPort}: ${a?.error ?? "?"}`,
            );
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }),
  );
}

/**
 * A {@link ServiceHealthListen} that serves inside a namespace: the HTTP server runs in this
 * process on a Unix socket and a small forwarder spawned in the namespace listens on the
 * health-check port. Pass it as `healthCheck: { listen }` to a proxier whose node is a
 * namespace.
 */
export function serviceHealthListenIn(ns: Pick<LabNetns, "spawn">): ServiceHealthListen {
  return async (host, port, handler) => {
    const sock = join(tmpdir(), `wn-hc-${port}-${randomBytes(4).toString("hex")}.sock`);
    const server: Server = createServer(handler);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(sock, () => resolve());
    });
    const closeServer = () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    const child = ns.spawn(process.execPath, [
      "-e",
      FORWARDER,
      JSON.stringify({ host: host ?? "::", port, sock }),
    ]);
    try {
      await waitReady(child, `health-check forwarder on port ${port}`);
    } catch (e) {
      child.kill("SIGKILL");
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

/**
 * Builds a proxy lab: the node namespace (IPv4 and IPv6 forwarding on, a default route of each
 * family through the bridge as a real node has), the clients on veth links to the node (default
 * routes through the node), the bridge and the pods on it (default routes through the bridge,
 * hairpin mode on their bridge ports), and each pod's TCP and UDP server. It returns once every
 * pod answers from the node and from each client (of the client's families). IPv6 duplicate
 * address detection is off in every lab namespace. On any failure everything made so far is removed.
 *
 * @throws ConfigError for a bad prefix, name or address
 * @throws WorknodeError when a command or a server fails
 */
export async function createProxyLab(opts: ProxyLabOptions): Promise<ProxyLab> {
  const prefix = opts.prefix;
  if (!PREFIX.test(prefix))
    throw new ConfigError(`proxy lab prefix must be 2-6 lowercase letters/digits: ${prefix}`);
  const shortNames = [...opts.clients.map((c) => c.name), ...opts.pods.map((p) => p.name)];
  for (const n of shortNames) {
    if (!SHORT.test(n) || n === "node") throw new ConfigError(`bad lab member name ${JSON.stringify(n)}`);
  }
  if (new Set(shortNames).size !== shortNames.length)
    throw new ConfigError("lab member names must be unique");
  const tcpPort = opts.tcpPort ?? 8080;
  const udpPort = opts.udpPort ?? 5353;
  const nsOf = (short: string) => `${prefix}-${short}`;
  const allNames = [nsOf("node"), ...shortNames.map(nsOf)];

  const children = new Set<ChildProcess>();
  const created: string[] = [];
  const makeNs = async (name: string): Promise<LabNetns> => {
    await ip(["netns", "add", name]);
    created.push(name);
    await ip(["-n", name, "link", "set", "lo", "up"]);
    // No duplicate address detection: link-local addresses are usable at once.
    for (const conf of ["all", "default"])
      await ip(["netns", "exec", name, "sysctl", "-q", "-w", `net.ipv6.conf.${conf}.accept_dad=0`]);
    return netnsRunners(name, children);
  };

  let destroyed: Promise<void> | undefined;
  const destroy = () => {
    destroyed ??= (async () => {
      const errors: string[] = [];
      const pids = [...children].map((c) => c.pid).filter((p): p is number => p !== undefined);
      const alive = (await Promise.all(pids.map(async (p) => ((await isProcessAlive(p)) ? p : 0)))).filter(
        (p) => p > 0,
      );
      if (alive.length > 0) await terminateProcesses(alive, 1_000);
      for (const name of [...created].reverse()) {
        try {
          await deleteNamespace(name);
        } catch (e) {
          errors.push(`${name}: ${(e as Error).message}`);
        }
      }
      if (errors.length > 0)
        throw new WorknodeError("TEARDOWN", `proxy lab: could not remove:\n${errors.join("\n")}`);
    })();
    return destroyed;
  };

  try {
    // Leftovers of a crashed run carry exactly these names.
    for (const n of allNames) await deleteNamespace(n);

    const node = await makeNs(nsOf("node"));
    await node.exec("sysctl", ["-q", "-w", "net.ipv4.ip_forward=1"]);
    await node.exec("sysctl", ["-q", "-w", "net.ipv6.conf.all.forwarding=1"]);

    const clients: LabClient[] = [];
    for (const spec of opts.clients) {
      const ns = await makeNs(nsOf(spec.name));
      const nodeIf = `${prefix}c${spec.name}`;
      await addVeth(node.name, nodeIf, ns.name);
      for (const a of spec.nodeAddresses) await addAddress(node.name, nodeIf, a);
      for (const a of spec.addresses) await addAddress(ns.name, "eth0", a);
      await ip(["-n", node.name, "link", "set", nodeIf, "up"]);
      await ip(["-n", ns.name, "link", "set", "eth0", "up"]);
      const gw4 = spec.nodeAddresses.find((a) => !isV6(a));
      const gw6 = spec.nodeAddresses.find(isV6);
      if (gw4) await ns.exec("ip", ["route", "add", "default", "via", bare(gw4)]);
      if (gw6) await ns.exec("ip", ["-6", "route", "add", "default", "via", bare(gw6)]);
      clients.push({
        ...ns,
        shortName: spec.name,
        ips: spec.addresses.map(bare),
        nodeIPs: spec.nodeAddresses.map(bare),
      });
    }

    const bridge = `${prefix}br0`;
    await ip(["-n", node.name, "link", "add", bridge, "type", "bridge"]);
    for (const a of opts.bridgeAddresses) await addAddress(node.name, bridge, a);
    await ip(["-n", node.name, "link", "set", bridge, "up"]);
    const br4 = opts.bridgeAddresses.find((a) => !isV6(a));
    const br6 = opts.bridgeAddresses.find(isV6);
    // A real node has default routes: traffic to service IPs without endpoints (rejected or
    // dropped by the rules) and to load-balancer IPs needs a route before the filter hooks see it.
    if (br4) await node.exec("ip", ["route", "add", "default", "dev", bridge]);
    if (br6) await node.exec("ip", ["-6", "route", "add", "default", "dev", bridge]);

    const pods: LabPod[] = [];
    const serversUp: Promise<void>[] = [];
    for (const spec of opts.pods) {
      const ns = await makeNs(nsOf(spec.name));
      const nodeIf = `${prefix}p${spec.name}`;
      await addVeth(node.name, nodeIf, ns.name);
      await ip(["-n", node.name, "link", "set", nodeIf, "master", bridge]);
      if (opts.hairpin ?? true)
        await ip(["-n", node.name, "link", "set", nodeIf, "type", "bridge_slave", "hairpin", "on"]);
      await ip(["-n", node.name, "link", "set", nodeIf, "up"]);
      for (const a of spec.addresses) await addAddress(ns.name, "eth0", a);
      await ip(["-n", ns.name, "link", "set", "eth0", "up"]);
      if (br4 && spec.addresses.some((a) => !isV6(a)))
        await ns.exec("ip", ["route", "add", "default", "via", bare(br4)]);
      if (br6 && spec.addresses.some(isV6))
        await ns.exec("ip", ["-6", "route", "add", "default", "via", bare(br6)]);
      const child = ns.spawn(process.execPath, [
        "-e",
        POD_SERVER,
        JSON.stringify({ name: spec.name, tcpPort, udpPort }),
      ]);
      serversUp.push(waitReady(child, `servers of pod ${spec.name}`));
      pods.push({ ...ns, shortName: spec.name, ips: spec.addresses.map(bare) });
    }
    await Promise.all(serversUp);

    const run: ClientRun = async (from, cfg, timeoutMs) => {
      const r = await from.exec(process.execPath, ["-e", CLIENT, JSON.stringify(cfg)], {
        timeoutMs: timeoutMs + 15_000,
        allowFailure: true,
      });
      const line = r.stdout.trim().split("\n").at(-1) ?? "";
      try {
        return JSON.parse(line);
      } catch {
        throw new WorknodeError("LAB", `client in ${from.name} printed no result: ${r.stdout}${r.stderr}`);
      }
    };
    const attempts =
      (mode: "tcp" | "udp") => (from: LabNetns, host: string, port: number, o?: LabConnectOptions) => {
        const count = o?.count ?? 1;
        const timeoutMs = o?.timeoutMs ?? 2_000;
        return run(from, { mode, host, port, count, timeoutMs }, count * timeoutMs) as Promise<LabAnswer[]>;
      };

    await settle(node, clients, pods, tcpPort, run);

    const lab: ProxyLab = {
      node,
      bridge,
      bridgeIPs: opts.bridgeAddresses.map(bare),
      clients,
      pods,
      tcpPort,
      udpPort,
      client(name) {
        const c = clients.find((x) => x.shortName === name);
        if (!c) throw new ConfigError(`no lab client ${name}`);
        return c;
      },
      pod(name) {
        const p = pods.find((x) => x.shortName === name);
        if (!p) throw new ConfigError(`no lab pod ${name}`);
        return p;
      },
      podByIP(addr) {
        const p = pods.find((x) => x.ips.includes(addr));
        if (!p) throw new ConfigError(`no lab pod has ${addr}`);
        return p;
      },
      tcp: attempts("tcp"),
      udp: attempts("udp"),
      http: (from, host, port, timeoutMs = 2_000) =>
        run(from, { mode: "http", host, port, timeoutMs }, timeoutMs) as Promise<LabHttpResult>,
      udpStream(from, host, port, sourcePort) {
        const child = from.spawn(process.execPath, [
          "-e",
          UDP_STREAM,
          JSON.stringify({ host, port, sourcePort }),
        ]);
        const replies: { at: number; from: string }[] = [];
        let buf = "";
        child.stdout?.on("data", (d: Buffer) => {
          buf += d.toString();
          for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
            const [at, name] = buf.slice(0, nl).split(" ");
            buf = buf.slice(nl + 1);
            replies.push({ at: Number(at), from: name ?? "" });
          }
        });
        return {
          replies,
          async stop() {
            if (child.pid !== undefined && (await isProcessAlive(child.pid)))
              await terminateProcesses([child.pid], 1_000);
          },
        };
      },
      nodeHealthListen: () => serviceHealthListenIn(node),
      destroy,
    };
    return lab;
  } catch (e) {
    await destroy().catch(() => {});
    throw e;
  }
}
